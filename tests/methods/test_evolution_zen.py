"""A short Zen-NAS evolution -> training -> SavedModel, end to end from the shipped configs."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.served import serving_outputs
from tfnas.config import load_config
from tfnas.run.search import run_search


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
            "search.population=12", "search.iterations=30", "search.record_every=10", "proxy.batch_size=8",
            f"dataset.data_dir={os.path.join(str(out_dir), 'no_data')}", "dataset.download=false",
            "dataset.train_subset=32", "dataset.eval_subset=16", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", "train.epochs=1", "train.warmup_epochs=0", *more]


def test_zen_evolution_trains_and_exports_the_found_network(tmp_path):
    cfg = load_config("cfg/zen_cifar10_1M.cfg", tiny(tmp_path))
    with tfds.testing.mock_data(num_examples=48):
        run = run_search(cfg)
    result = json.loads((tmp_path / "result.json").read_text())
    space_params = result["extra"]["params"]
    assert 0 < space_params <= 1e6 and result["extra"]["layers"] <= 18
    assert result["score_name"] == "zen" and np.isfinite(result["score"])
    assert (tmp_path / "best_arch.txt").read_text().startswith(run.outcome.best_arch)
    assert (tmp_path / "history.csv").read_text().count("\n") == 1 + 3  # header + 3 records
    assert (tmp_path / "search_progress.png").exists()
    assert run.train_metrics is not None and 0.0 <= run.train_metrics["accuracy"] <= 1.0
    # printed in percent, as the searches' accuracies are (metrics.json keeps Keras' fraction), named as the
    # evaluation's (it was "trained loss", read as the training loss); the two parameter counts named apart
    lines = run.summary().splitlines()
    assert f"trained network, evaluation accuracy: {100 * run.train_metrics['accuracy']:.2f}%" in lines
    assert f"params (the space's count, which [budget] max_params limits): {space_params:,}" in lines
    assert f"trained network, trainable parameters (Keras): {run.train_metrics['params']:,}" in lines
    saved = tmp_path / "train" / "saved_model"
    assert saved.exists()
    assert [o.shape for o in serving_outputs(saved, (2, 32, 32, 3))] == [(2, 10)]  # logits only


@pytest.mark.parametrize("cfg", ["incorporated_s_cifar100_1M", "incorporated_l_cifar10_1M", "random_cifar10_1M",
                                 "synflow_cifar10_1M", "naswot_cifar10_1M"])
def test_every_evolution_cfg_searches(tmp_path, cfg):
    sets = tiny(tmp_path, "train.enabled=false", "search.iterations=4", "search.population=12")
    run = run_search(load_config(f"cfg/{cfg}.cfg", sets))
    c = load_config(f"cfg/{cfg}.cfg", sets)
    assert run.outcome.score_name == c.proxy.name
    assert run.outcome.extra["params"] <= c.budget.max_params


def test_search_exports_tflite_and_a_format_added_later_without_training_again(tmp_path, monkeypatch):
    """``[export] format = tflite`` after a search; a rerun listing saved_model too converts only that one,
    from the trained checkpoint; a third run finds everything finished and trains nothing."""
    import tfnas.run.train_one as train_one
    from tfnas.train.litert import load_interpreter

    sets = tiny(tmp_path, "search.iterations=4", "search.record_every=2", "export.format=tflite")
    with tfds.testing.mock_data(num_examples=48):
        first = run_search(load_config("cfg/random_cifar10_1M.cfg", sets))
    flat = tmp_path / "train" / "model.tflite"
    assert first.exports == {"tflite": str(flat)} and f"exported (tflite): {flat}" in first.summary()
    assert not (tmp_path / "train" / "saved_model").exists()
    (inp,), (out,) = load_interpreter(str(flat)).get_input_details(), load_interpreter(str(flat)).get_output_details()
    assert tuple(inp["shape"]) == (1, 32, 32, 3) and tuple(out["shape"]) == (1, 10) and inp["dtype"] == np.float32
    stamp, history = os.stat(flat).st_mtime_ns, (tmp_path / "train" / "history.csv").read_text()

    with tfds.testing.mock_data(num_examples=48):
        second = run_search(load_config("cfg/random_cifar10_1M.cfg", sets + ["export.format=saved_model, tflite"]))
    saved = tmp_path / "train" / "saved_model"
    assert second.resumed and second.exports == {"saved_model": str(saved), "tflite": str(flat)}
    assert saved.is_dir() and os.stat(flat).st_mtime_ns == stamp
    assert (tmp_path / "train" / "history.csv").read_text() == history  # no epoch trained again
    assert second.train_metrics == first.train_metrics

    def fail(*args, **kwargs):
        raise AssertionError("a finished training with every export was started again")

    monkeypatch.setattr(train_one, "train_architecture", fail)
    third = run_search(load_config("cfg/random_cifar10_1M.cfg", sets + ["export.format=saved_model,tflite"]))
    assert third.exports == second.exports and f"exported (saved_model): {saved}" in third.summary()


def test_a_finished_search_refuses_another_training_config_and_trains_on_for_more_epochs(tmp_path):
    """A finished training was read back whatever [train] said: another lr or optimizer returned the old
    metrics and models without a word (where a missing export refused the same change)."""
    from tfnas.run.rundir import RunDirError

    sets = tiny(tmp_path, "search.iterations=4", "search.record_every=2", "export.enabled=false")
    with tfds.testing.mock_data(num_examples=48):
        first = run_search(load_config("cfg/random_cifar10_1M.cfg", sets))
        with pytest.raises(RunDirError, match=r"train: holds results of a different configuration \(.*lr"):
            run_search(load_config("cfg/random_cifar10_1M.cfg", sets + ["train.lr=0.01"]))
        longer = run_search(load_config("cfg/random_cifar10_1M.cfg", sets + ["train.epochs=2"]))
        # fewer epochs than its checkpoint holds: refused at once, not by the Trainer after loading the data
        with pytest.raises(RunDirError, match=r"train: holds a training of 2 epochs, more than --set train.epochs=1"):
            run_search(load_config("cfg/random_cifar10_1M.cfg", sets))
    assert first.train_metrics and longer.resumed
    rows = (tmp_path / "train" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]  # one more epoch, from the checkpoint
