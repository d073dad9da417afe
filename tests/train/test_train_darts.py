"""End to end: ``tools/train.py`` on a DARTS genotype (the shipped cfg, shrunk) -> SavedModel, on mock CIFAR-10."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.config import ConfigError, load_config
from tfnas.spaces.darts import PRESETS
from tfnas.run.train_one import train_architecture

CFG = os.path.join(os.path.dirname(__file__), "..", "..", "cfg", "train_darts_relativenas_cifar10.cfg")


def small(out_dir, *extra):
    return ["space.channels=4", "space.layers=3", "dataset.download=false", "dataset.train_subset=32",
            "dataset.eval_subset=16", "dataset.batch_size=16", "dataset.eval_batch_size=16", "train.epochs=2",
            f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device", *extra]


def test_shipped_cfg_is_the_paper_recipe():
    cfg = load_config(CFG)
    assert (cfg.space.name, cfg.space.channels, cfg.space.layers) == ("darts", 36, 20)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.weight_decay) == (600, 0.025, 0.0003)
    assert (cfg.train.aux_weight, cfg.train.drop_path, cfg.train.cutout, cfg.train.grad_clip) == (0.4, 0.3, 16, 5.0)
    assert cfg.train.weight_decay_scope == "all"  # DARTS' SGD decays model.parameters(), BN and biases too


@pytest.mark.slow  # ~50 s on 2 cores
def test_train_preset_genotype_with_aux_head_and_drop_path_then_export(tmp_path, monkeypatch):
    import tfnas.train.trainer as trainer

    losses, rates = [], []  # what the training step and the epoch loop were given (the test checked neither)
    loss, set_rate = trainer.per_example_loss, trainer.set_drop_path_rate
    monkeypatch.setattr(trainer, "per_example_loss", lambda y, out, ls, aux: losses.append((out, aux)) or
                        loss(y, out, ls, aux))
    monkeypatch.setattr(trainer, "set_drop_path_rate", lambda layers, rate: rates.append((len(layers), rate)) or
                        set_rate(layers, rate))
    out_dir = str(tmp_path / "run")
    cfg = load_config(CFG, small(out_dir))
    with tfds.testing.mock_data(num_examples=32):
        result = train_architecture(cfg)
    assert losses and all(isinstance(out, tuple) and len(out) == 2 for out, _ in losses)  # logits and aux logits
    assert {aux for _, aux in losses} == {cfg.train.aux_weight} and cfg.train.aux_weight > 0
    assert rates and all(n > 0 for n, _ in rates) and max(rate for _, rate in rates) > 0  # DropPath layers, on
    assert result.arch == str(PRESETS["relativenas"])
    assert np.isfinite(result.metrics["loss"])
    assert result.export_path and os.path.isdir(result.export_path)
    # The SavedModel serves logits in a fresh process that never imports tfnas.
    code = ("import sys, numpy as np, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
            "f = m.signatures['serving_default']; out = list(f(tf.zeros((2, 32, 32, 3))).values())[0]; "
            "assert out.shape == (2, 10), out.shape; assert 'tfnas' not in sys.modules; print('ok')")
    env = dict(os.environ, PYTHONPATH="")
    done = subprocess.run([sys.executable, "-c", code, result.export_path], capture_output=True, text=True,
                          cwd=str(tmp_path), env=env, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_bad_genotype_text_is_a_config_error(tmp_path):
    with pytest.raises((ConfigError, ValueError), match=r"--set space\.arch: genotype text .*missing normal_concat"):
        train_architecture(load_config(CFG, small(str(tmp_path), "space.arch=Genotype(normal=[('conv', 0)])")))
