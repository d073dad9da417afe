"""NAG in the paper's setting (``nag_supernet``) end to end on mock CIFAR-10: pool, supernet,
scores, GAN, report, RS-NAG, training and export; resume; config errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.run.tb_reader import scalars
from tfnas.config import ConfigError, load_config
from tfnas.methods.nag.paper import NagSupernetSearch, decode_pairs
from tfnas.methods.weight_sharing import load_arrays
from tfnas.run.search import run_search
from tfnas.spaces.dag import padded
from tfnas.spaces.nasnet_dag import NASNET_DAG, NasnetDagSpace

CFG = "cfg/nag_tiny.cfg"


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
            f"dataset.data_dir={os.path.join(str(out_dir), 'no_data')}", "dataset.download=false",
            "dataset.train_subset=64", "dataset.eval_subset=32", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", "search.batch_size=16", "search.steps_per_epoch=2",
            "space.search_channels=4", "space.search_layers=3", "space.channels=4", "space.layers=3",
            "nag.pool=12", "train.epochs=1", *more]


def one_hot_cells(archs):
    m, t = NASNET_DAG.max_nodes, NASNET_DAG.num_types
    cells = []
    for c in range(2):
        x, a = np.zeros((len(archs), m, t), np.float32), np.zeros((len(archs), m, m), np.float32)
        for b, arch in enumerate(archs):
            cell = arch.cell(c == 1)
            a[b], types = padded(cell.adjacency(), np.array(cell.types), m)
            x[b, np.flatnonzero(types >= 0), types[types >= 0]] = 1
        cells.append((x, a))
    return cells


def test_decode_pairs_round_trips_and_rejects_broken_cells():
    space = NasnetDagSpace()
    archs = [space.sample(np.random.default_rng(k)) for k in range(5)]
    cells = one_hot_cells(archs)
    assert decode_pairs(cells) == archs
    cells[1][1][2] = 0  # the third pair's reduction cell loses every edge
    out = decode_pairs(cells)
    assert out[2] is None and out[:2] == archs[:2]


def kill_after_the_gan(monkeypatch):
    """Makes the next search die after the supernet, the scores and the GAN are saved; returns the undo."""
    original = NagSupernetSearch._report

    def dies(self, *args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(NagSupernetSearch, "_report", dies)
    return lambda: monkeypatch.setattr(NagSupernetSearch, "_report", original)


def test_tiny_config_killed_and_resumed_runs_the_whole_pipeline_and_exports(tmp_path, monkeypatch):
    calls = {"supernet": 0}
    with tfds.testing.mock_data(num_examples=64):
        undo = kill_after_the_gan(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            run_search(load_config(CFG, tiny(tmp_path)))
        state = tmp_path / "search_state"
        assert (state / "nag_pool.npz").exists() and json.loads((state / "nag.json").read_text())["epoch"] == 3
        assert not (tmp_path / "result.json").exists() and not (tmp_path / "nag_quality.csv").exists()
        undo()
        monkeypatch.setattr(NagSupernetSearch, "_train_supernet", lambda *a: calls.update(supernet=1))
        run = run_search(load_config(CFG, tiny(tmp_path)))
    assert calls["supernet"] == 0  # the saved scores were reused
    space = NasnetDagSpace(channels=4, layers=3)
    best = space.decode(run.outcome.best_arch)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["score_name"] == "rs_val_acc" and 0.0 <= result["score"] <= 100.0
    assert result["extra"]["pool"] == 12 and result["extra"]["rs_trained"] == 2
    assert result["extra"]["params"] == space.num_params(best, 10)
    rs = json.loads((state / "rs_nag.json").read_text())
    assert len(rs) == 2 and space.encode(best) in rs and rs[space.encode(best)] == max(rs.values())
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 + 3  # 2 supernet epochs, 2 likelihood + 1 GAN epochs, each once
    assert [row.split(",")[1] for row in history[1:]] == ["supernet"] * 2 + ["gan"] * 3
    points = scalars(str(tmp_path / "tensorboard" / "search"))  # per candidate, written before the kill
    pool_scores = load_arrays(str(state / "nag_pool.npz"))[0]
    assert points["candidate/pool_score"] == [(i, pytest.approx(s)) for i, s in enumerate(pool_scores)]
    assert [s for s, _ in points["candidate/supernet_loss"]] == [0, 1, 2, 3]  # 2 epochs x 2 steps
    quality = (tmp_path / "nag_quality.csv").read_text().splitlines()
    assert quality[0].startswith("score_class,params_class,samples,valid,unique,novel") and len(quality) == 10
    saved = tmp_path / "train" / "saved_model"
    code = ("import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
            "out = list(m.signatures['serving_default'](tf.zeros([2, 32, 32, 3])).values()); "
            "print(len(out), out[0].shape)")
    proc = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""}, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 (2, 10)" in proc.stdout  # logits only: no auxiliary head in the served model


@pytest.mark.slow
def test_killed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    sets = ["train.enabled=false"]
    with tfds.testing.mock_data(num_examples=64):
        whole = run_search(load_config(CFG, tiny(tmp_path / "whole", *sets)))
        undo = kill_after_the_gan(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            run_search(load_config(CFG, tiny(tmp_path / "killed", *sets)))
        undo()
        resumed = run_search(load_config(CFG, tiny(tmp_path / "killed", *sets)))
    assert resumed.outcome.best_arch == whole.outcome.best_arch
    assert resumed.outcome.score == pytest.approx(whole.outcome.score)
    for name in ("nag_quality.csv", "search_state/rs_nag.json", "history.csv"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "whole" / name).read_text(), name


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"\[space\] name: method 'nag_supernet' needs a space with NasnetDagSpace; "
                                          r"'darts' has not \(spaces that fit: nasnet_dag\)"):
        run_search(load_config(CFG, tiny(tmp_path / "a", "space.name=darts")))
    with tfds.testing.mock_data(num_examples=64), pytest.raises(ConfigError, match=r"\[nag\] holdout"):
        run_search(load_config(CFG, tiny(tmp_path / "b", "nag.holdout=0")))
