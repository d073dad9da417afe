"""What a one-shot search's run directory holds it to: the config but the training after the search, except
the [train] keys the search itself reads (the weight-sharing searches' augmentation, RS-NAG's trainings)."""

import pytest

from tfnas.config import config_to_ini, load_config
from tfnas.run.rundir import RunDir, RunDirError
from tfnas.run.search import search_identity


def _written(tmp_path, path, sets=()):
    cfg = load_config(path, [f"run.out_dir={tmp_path}", *sets])
    (tmp_path / "config.cfg").write_text(config_to_ini(cfg))
    return cfg


@pytest.mark.parametrize("path, changed", [
    ("cfg/relativenas_tiny.cfg", "train.cutout=0"), ("cfg/relativenas_tiny.cfg", "train.flip=false"),
    ("cfg/slnas_tiny.cfg", "train.pad_crop=0"), ("cfg/nag_tiny.cfg", "train.lr=0.5"),
])
def test_train_keys_a_search_reads_are_part_of_its_identity(tmp_path, path, changed):
    """They were not: a killed or finished search resumed, or was read back, under other settings."""
    _written(tmp_path, path)
    cfg = load_config(path, [f"run.out_dir={tmp_path}", changed])
    with pytest.raises(RunDirError, match=r"holds results of a different configuration \(.*" + changed.split("=")[0]
                       .split(".")[1]):
        RunDir(cfg, **search_identity(cfg)).check()


@pytest.mark.parametrize("path, changed", [
    ("cfg/relativenas_tiny.cfg", "train.lr=0.5"), ("cfg/nag_tiny.cfg", "train.epochs=3"),
    ("cfg/nag_tiny.cfg", "train.color_jitter=0.4"), ("cfg/nag_tiny.cfg", "train.mixup_alpha=0.2"),  # (not RS-NAG's)
    ("cfg/nag_tiny.cfg", "train.checkpoint_every=5"),
    ("cfg/zen_cifar10_1M.cfg", "train.cutout=0"), ("cfg/zen_cifar10_1M.cfg", "export.format=tflite"),
])
def test_keys_only_the_training_after_the_search_reads_are_not(tmp_path, path, changed):
    _written(tmp_path, path)
    cfg = load_config(path, [f"run.out_dir={tmp_path}", changed])
    RunDir(cfg, **search_identity(cfg)).check()


def test_a_training_run_directory_tolerates_what_tools_train_never_reads(tmp_path):
    """`tools/train.py --help` gave `--set budget.repeats=2` as its example, and a finished training then refused it."""
    from tfnas.run.train_one import TRAIN_FREE_KEYS
    from tfnas.run.unused import tolerated

    _written(tmp_path, "cfg/train_nb201_cifar10.cfg")
    for changed in ("budget.repeats=2", "search.population=5", "proxy.name=zen"):
        cfg = load_config("cfg/train_nb201_cifar10.cfg", [f"run.out_dir={tmp_path}", changed])
        RunDir(cfg, ignore=TRAIN_FREE_KEYS, tolerate=tolerated(cfg, "train")).check()
    for changed, key in (("train.lr=0.01", "lr"), ("budget.max_flops=1000", "max_flops")):  # (tinynano's limit)
        cfg = load_config("cfg/train_nb201_cifar10.cfg", [f"run.out_dir={tmp_path}", changed])
        with pytest.raises(RunDirError, match=key):
            RunDir(cfg, ignore=TRAIN_FREE_KEYS, tolerate=tolerated(cfg, "train")).check()


def test_a_finished_searchs_training_tolerates_keys_neither_reads(tmp_path):
    """A search that trains, rerun with `--set nag.pool=10` (warned as without effect), was refused by its own
    train/ folder; so was a rerun after `tools/train.py` trained on in train/ with a search's other [search]."""
    import json

    from tfnas.run.search import _train_cfg, _training_finished

    cfg = load_config("cfg/zen_cifar10_1M.cfg", [f"run.out_dir={tmp_path}", "train.epochs=6"])
    train = tmp_path / "train"
    train.mkdir()
    (train / "config.cfg").write_text(config_to_ini(_train_cfg(cfg).replace(
        search=load_config("cfg/zen_cifar10_1M.cfg", ["search.iterations=20"]).search)))
    (train / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    (train / "saved_model").mkdir()
    for changed in ("nag.pool=10", "proxy.zen_weight=2", "controller.kind=ga"):
        assert _training_finished(load_config("cfg/zen_cifar10_1M.cfg", [f"run.out_dir={tmp_path}",
                                                                         "train.epochs=6", changed]))
    with pytest.raises(RunDirError, match="lr"):  # a key the training reads
        _training_finished(load_config("cfg/zen_cifar10_1M.cfg", [f"run.out_dir={tmp_path}", "train.epochs=6",
                                                                  "train.lr=0.5"]))


def test_tools_train_names_the_keys_a_training_never_reads(caplog):
    """`tools/train.py --set search.population=16` was taken without a word; a search's file keys (how a
    found architecture is trained) are named at -v only."""
    import logging

    from tfnas.run.unused import tolerated, warn_unused_keys

    cfg = load_config("cfg/zen_cifar10_1M.cfg", ["search.population=16", "method.name=siamese"])
    with caplog.at_level(logging.INFO, logger="tfnas.run.unused"):
        warn_unused_keys(cfg, "train")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (info,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "not used by a training" in warning and "--set search.population" in warning
    assert "--set method.name" in warning and "iterations" not in warning
    assert "[search] iterations" in info and "population" not in info
    assert ("method", "name") in tolerated(cfg, "train")


def test_config_cfg_names_the_sections_a_run_never_reads(tmp_path):
    """A training's config.cfg said `[method] name = rand` with nothing to say that no method ran."""
    from tfnas.config.loader import load_config as load
    from tfnas.run.train_one import TRAIN_FREE_KEYS
    from tfnas.run.unused import tolerated

    cfg = load_config("cfg/train_nb201_cifar10.cfg", [f"run.out_dir={tmp_path}"])
    text = RunDir(cfg, ignore=TRAIN_FREE_KEYS, tolerate=tolerated(cfg, "train")).config_text()
    comment = text.splitlines()[1]
    assert comment.startswith("# not read by this run") and "[method]" in comment and "[search]" in comment
    assert "[space]" not in comment and "[train]" not in comment and "[run]" not in comment
    (tmp_path / "config.cfg").write_text(text)
    assert config_to_ini(load(str(tmp_path / "config.cfg"))).split("\n", 1)[1] == text.split("\n", 2)[2]
    search = load_config("cfg/zen_cifar10_1M.cfg", [f"run.out_dir={tmp_path}"])
    line = RunDir(search, **search_identity(search), tolerate=tolerated(search, "search")).config_text().splitlines()[1]
    assert "[search]" not in line and "[train]" not in line and "[predictor]" in line


def test_an_interrupted_train_on_is_not_taken_for_a_finished_training(tmp_path):
    """A finished search rerun with more [train] epochs and interrupted left train/config.cfg asking for them
    beside the earlier training's metrics.json: every later rerun called the training finished and served the
    earlier one's metrics and exports."""
    import json
    import os
    import time

    from tfnas.run.search import _train_cfg, _training_finished

    sets = [f"run.out_dir={tmp_path}", "train.warmup_epochs=0"]
    cfg1, cfg4 = (load_config("cfg/zen_cifar10_1M.cfg", sets + [f"train.epochs={n}"]) for n in (1, 4))
    train = tmp_path / "train"
    train.mkdir()
    (train / "saved_model").mkdir()
    (train / "config.cfg").write_text(config_to_ini(_train_cfg(cfg1)))
    (train / "history.csv").write_text("epoch,loss\n1,2.5\n")
    time.sleep(0.01)
    (train / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    assert _training_finished(cfg1) and not _training_finished(cfg4)  # 4 epochs: trained on
    (train / "config.cfg").write_text(config_to_ini(_train_cfg(cfg4)))  # the train-on starts, and is interrupted
    assert not _training_finished(cfg4)
    (train / "history.csv").write_text("epoch,loss\n1,2.5\n2,2.4\n3,2.3\n4,2.2\n")  # all 4 trained, metrics not yet
    old = os.path.getmtime(train / "history.csv") - 10
    os.utime(train / "metrics.json", (old, old))
    assert not _training_finished(cfg4)
    (train / "metrics.json").write_text(json.dumps({"accuracy": 0.6}))  # then written: finished
    assert _training_finished(cfg4)
    with pytest.raises(RunDirError, match="holds a training of 4 epochs, more than"):
        _training_finished(cfg1)
