"""Tests of tfnas/train/runner.py and ``tfnas.cli.train_main`` (the path of ``tools/train.py``),
in-process on mocked CIFAR-10 with a tiny NB201 (channels 4, one cell per stage)."""

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.cli import train_main
from tfnas.config import ConfigError, config_to_ini, load_config
from tfnas.data import DatasetNotFoundError
from tfnas.run.train_one import train_architecture

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def overrides(out_dir, *extra):
    return [
        f"space.arch={ARCH}", "space.channels=4", "space.cells_per_stage=1", "dataset.name=cifar10",
        "dataset.download=false", "dataset.train_subset=64", "dataset.eval_subset=32", "dataset.batch_size=16",
        "dataset.eval_batch_size=32", "train.epochs=2", f"run.out_dir={out_dir}", "run.progress=false",
        "run.jit_compile=false", "run.strategy=one_device", *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two epochs trained and exported as a SavedModel, then resumed to three epochs."""
    out_dir = str(tmp_path_factory.mktemp("train_run"))
    with tfds.testing.mock_data(num_examples=64):
        first = train_architecture(load_config(None, overrides(out_dir)))
        files = sorted(os.listdir(out_dir))
        history = pd.read_csv(os.path.join(out_dir, "history.csv"))
        resumed = train_architecture(load_config(None, overrides(out_dir, "train.epochs=3")))
    return {"out_dir": out_dir, "first": first, "files": files, "history": history, "resumed": resumed}


def test_run_directory_holds_every_output(trained):
    out_dir, first = trained["out_dir"], trained["first"]
    assert {"config.cfg", "history.csv", "metrics.json", "checkpoints", "saved_model"} <= set(trained["files"])
    assert os.listdir(os.path.join(out_dir, "checkpoints"))
    assert first.run_dir == out_dir and first.arch == ARCH and first.params > 0
    assert first.export_path == os.path.abspath(os.path.join(out_dir, "saved_model"))
    cfg = load_config(os.path.join(out_dir, "config.cfg"))  # the resolved config loads back
    assert cfg.space.arch == ARCH and cfg.dataset.train_subset == 64


def test_an_export_of_the_runs_weights_must_build_the_architecture_its_config_names(trained, tmp_path):
    """Swapping a weight-free op (none <-> pooling) keeps every weight array, so the weights alone
    would fit; the run directory's config.cfg says which architecture they were trained for."""
    from tfnas.spaces.nb201 import Nb201Space
    from tfnas.train.export import export_arch

    space, out_dir = Nb201Space(channels=4, cells_per_stage=1), trained["out_dir"]
    swapped = ARCH.replace("none~1", "avg_pool_3x3~1")
    checkpoints = os.path.join(out_dir, "checkpoints")
    prefix = tf.train.latest_checkpoint(checkpoints)
    for weights in (checkpoints, prefix):
        with pytest.raises(ValueError, match=r"were trained for another architecture \(.*config\.cfg: \[space\] arch = "
                                             + __import__("re").escape(ARCH)):
            export_arch(space, swapped, 10, str(tmp_path / "m.keras"), fmt="keras", weights=weights)
    assert not (tmp_path / "m.keras").exists()
    result = export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix)
    assert result.num_params == trained["first"].params


def test_history_and_metrics_of_the_first_run(trained):
    history, first = trained["history"], trained["first"]
    assert list(history["epoch"]) == [1, 2]
    assert np.isfinite(history["loss"]).all()
    assert history["eval_acc"].notna().all()
    assert first.history.epoch == [1, 2]
    assert 0.0 <= first.metrics["accuracy"] <= 1.0 and np.isfinite(first.metrics["loss"])
    assert "arch: " + ARCH in first.table()


def test_resume_trains_only_the_new_epoch(trained):
    resumed, out_dir = trained["resumed"], trained["out_dir"]
    assert resumed.history.epoch == [3]
    metrics = json.load(open(os.path.join(out_dir, "metrics.json"), encoding="utf-8"))
    assert metrics["arch"] == ARCH and metrics["dataset"] == "cifar10"
    assert metrics["params"] == trained["first"].params
    from tfnas.registry import DATASETS  # what a user feeds the exports: (pixel / 255 - mean) / std

    source = DATASETS.get("cifar10")
    assert (metrics["input_mean"], metrics["input_std"]) == (list(source.mean), list(source.std))
    assert metrics["accuracy"] == pytest.approx(resumed.metrics["accuracy"])
    assert 3 in list(pd.read_csv(os.path.join(out_dir, "history.csv"))["epoch"])


def test_history_csv_keeps_earlier_epochs_after_resume(trained):
    assert list(pd.read_csv(os.path.join(trained["out_dir"], "history.csv"))["epoch"]) == [1, 2, 3]


def test_history_csv_of_an_interrupted_training_holds_its_finished_epochs(tmp_path, monkeypatch):
    """Ctrl-C at the end of epoch 2 of 3, after its row and before its checkpoint: the rows of
    epochs 1-2 are on disk, and the resume trains epoch 2 again (replacing its row) and 3."""
    import tfnas.run.train_one as train_one

    scalars = train_one.epoch_scalars

    def interrupt_after_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt
        return scalars(row)

    out_dir = str(tmp_path / "run")
    cfg = overrides(out_dir, "train.epochs=3", "export.enabled=false", "run.tensorboard=false")
    with tfds.testing.mock_data(num_examples=64):
        monkeypatch.setattr(train_one, "epoch_scalars", interrupt_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train_architecture(load_config(None, cfg))
        interrupted = pd.read_csv(os.path.join(out_dir, "history.csv"))
        assert list(interrupted["epoch"]) == [1, 2]
        monkeypatch.setattr(train_one, "epoch_scalars", scalars)
        resumed = train_architecture(load_config(None, cfg))
    assert resumed.history.epoch == [2, 3]
    history = pd.read_csv(os.path.join(out_dir, "history.csv"))
    assert list(history["epoch"]) == [1, 2, 3]
    assert history.iloc[:1].equals(interrupted.iloc[:1])
    assert history["seconds"][1] != interrupted["seconds"][1]  # the row of the epoch trained again


def test_saved_model_serves_in_inference(trained):
    loaded = tf.saved_model.load(os.path.join(trained["out_dir"], "saved_model"))
    logits = loaded.serve(tf.zeros([2, 32, 32, 3]))
    assert logits.shape == (2, 10)


def test_keras_export_format(tmp_path):
    with tfds.testing.mock_data(num_examples=64):
        outcome = train_architecture(load_config(None, overrides(tmp_path, "train.epochs=1", "export.format=keras")))
    assert outcome.export_path.endswith("model.keras") and os.path.isfile(outcome.export_path)
    assert not os.path.exists(os.path.join(str(tmp_path), "saved_model"))


@pytest.mark.parametrize("arch", ["|nor_conv_3x3~0|+|bogus~0|none~1|", ""])
def test_bad_or_missing_arch_is_a_config_error(tmp_path, arch):
    cfg = load_config(None, overrides(tmp_path) + [f"space.arch={arch}"])
    with pytest.raises(ConfigError, match=r"--set space\.arch"):
        train_architecture(cfg)
    assert not os.listdir(str(tmp_path))  # nothing written before the config is known to be good


def test_missing_data_offline_fails_fast(tmp_path):
    empty = tmp_path / "tfds"
    empty.mkdir()
    cfg = load_config(None, overrides(tmp_path / "run", f"dataset.data_dir={empty}"))
    start = time.monotonic()
    with pytest.raises(DatasetNotFoundError, match="download = false"):
        train_architecture(cfg)
    assert time.monotonic() - start < 60.0  # before any training or download retries (minutes)


def _cfg_file(tmp_path, arch):
    path = tmp_path / "train.cfg"
    path.write_text(f"[space]\narch = {arch}\nchannels = 4\ncells_per_stage = 1\n", encoding="utf-8")
    return str(path)


def test_cli_bad_arch_exits_2_with_one_line(tmp_path, capsys):
    path = _cfg_file(tmp_path, "|nor_conv_3x3~0|+|oops|")
    code = train_main([path, "--out-dir", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "[space] arch" in err


def test_cli_missing_data_exits_3(tmp_path, capsys):
    empty = tmp_path / "tfds"
    empty.mkdir()
    path = _cfg_file(tmp_path, ARCH)
    code = train_main([path, "--set", f"dataset.data_dir={empty}", "--set", "dataset.download=false",
                       "--out-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 3 and err.startswith("error: cifar10") and "download = false" in err


def test_tensorboard_holds_each_epoch_once_and_one_hparams_row(trained):
    from tests.run.tb_reader import hparams_sessions, scalars

    root = os.path.join(trained["out_dir"], "tensorboard")
    points = scalars(os.path.join(root, "train"))
    first, resumed = trained["first"].history, trained["resumed"].history
    assert [s for s, _ in points["train/loss"]] == [1, 2, 3]  # the resumed run adds epoch 3 only
    np.testing.assert_allclose([v for _, v in points["train/loss"]], first.loss + resumed.loss, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in points["train/accuracy"]], first.train_acc + resumed.train_acc,
                               rtol=1e-6)
    np.testing.assert_allclose([v for _, v in points["eval/accuracy"]], first.eval_acc + resumed.eval_acc, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in points["train/lr"]], first.lr + resumed.lr, rtol=1e-6)
    (session,) = hparams_sessions(os.path.join(root, "hparams"))
    assert session["space.arch"] == ARCH and session["train.epochs"] == 3 and session["dataset.name"] == "cifar10"
    final = scalars(os.path.join(root, "hparams"))
    assert final["final/accuracy"] == [(0, pytest.approx(trained["resumed"].metrics["accuracy"], rel=1e-6))]


def test_cli_exports_saved_model_and_float_tflite_equal_to_the_keras_model(tmp_path, capsys):
    """``tools/train.py`` with ``[export] format = saved_model, tflite``; a rerun adding keras and int8
    writes only the two missing files, the int8 one calibrated on the run's own training split."""
    from tfnas.run.factory import build_space
    from tfnas.train.export import load_weights
    from tfnas.train.litert import load_interpreter, run_tflite

    out_dir = tmp_path / "run"
    path = _cfg_file(tmp_path, ARCH)
    sets = [s for o in overrides(out_dir, "train.epochs=1", "export.format=saved_model, tflite") for s in ("--set", o)]
    with tfds.testing.mock_data(num_examples=64):
        assert train_main([path, *sets]) == 0
    printed = capsys.readouterr().out
    saved, flat = out_dir / "saved_model", out_dir / "model.tflite"
    assert f"exported (saved_model): {saved}" in printed and f"exported (tflite): {flat}" in printed
    assert "int8 calibration" not in printed
    cfg = load_config(str(out_dir / "config.cfg"))
    assert cfg.export.format == ("saved_model", "tflite")
    model = build_space(cfg).build(build_space(cfg).decode(ARCH), 10, (32, 32, 3))
    load_weights(model, str(out_dir / "checkpoints"))  # the trained Keras model
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    want = model(x, training=False).numpy()
    got = run_tflite(str(flat), x)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()  # float32 bound of tests/train/test_tflite.py
    loaded = tf.saved_model.load(str(saved))  # held: the endpoint needs its variables alive
    np.testing.assert_allclose(loaded.serve(x).numpy(), want, rtol=1e-5, atol=1e-5)

    stamps = {p: os.stat(p).st_mtime_ns for p in (saved, flat)}
    more = ["--set", "export.format=saved_model,tflite,keras", "--set", "export.quantize=int8"]
    with tfds.testing.mock_data(num_examples=64):
        assert train_main([path, *sets, *more]) == 0
    printed = capsys.readouterr().out
    assert {p: os.stat(p).st_mtime_ns for p in (saved, flat)} == stamps  # kept: no epoch was trained
    int8 = out_dir / "model_int8.tflite"
    assert f"exported (tflite): {int8}" in printed and f"exported (keras): {out_dir / 'model.keras'}" in printed
    assert "int8 calibration: cifar10 train split, 64 images" in printed
    assert load_interpreter(str(int8)).get_input_details()[0]["dtype"] == np.int8
    assert not [n for n in os.listdir(out_dir) if ".tmp-" in n or ".old-" in n]  # no temporary leftovers



def test_cli_names_a_file_of_the_image_folder_that_is_not_an_image(tmp_path, capsys):
    from tests.images import write_image_folder

    root = write_image_folder(tmp_path / "images", per_class=4, size=(8, 8), classes=("a", "b"))
    junk = sorted((root / "train" / "b").iterdir())[2]
    junk.write_bytes(b"not an image")  # read in the first epoch, after the first image fixed the size
    path = _cfg_file(tmp_path, ARCH)
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", "dataset.image_size=8", "dataset.batch_size=4",
            "dataset.eval_batch_size=4", "train.epochs=1", "export.enabled=false"]
    code = train_main([path, "--out-dir", str(tmp_path / "run"), "--no-progress"] + [a for s in sets for a in ("--set", s)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0] == f"error: image_folder: not an image file (delete or replace it): {junk}"
    first = sorted((root / "train" / "a").iterdir())[0]  # the image that sets the size (dataset.image_size = 0)
    first.write_bytes(b"junk")
    sets = [s for s in sets if not s.startswith("dataset.image_size")]
    code = train_main([path, "--out-dir", str(tmp_path / "run2"), "--no-progress"] + [a for s in sets for a in ("--set", s)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and err == [f"error: image_folder: not an image file (delete or replace it): {first}"], err


def _train_on_8_images(tmp_path, capsys, image_size, batch_size, extra=()):
    """``tools/train.py`` on an image folder of 8 training images (8x8 px): its exit code, its
    stderr lines and whether it left a run directory."""
    from tests.images import write_image_folder

    root = write_image_folder(tmp_path / "images", per_class=4, size=(8, 8), classes=("a", "b"))
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", f"dataset.image_size={image_size}",
            f"dataset.batch_size={batch_size}", *extra]
    out = tmp_path / "run"
    argv = [_cfg_file(tmp_path, ARCH), "--out-dir", str(out), "--no-progress"]
    code = train_main(argv + [a for s in sets for a in ("--set", s)])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()], out.exists()


def test_cli_refuses_a_batch_larger_than_the_training_images_before_a_run_directory(tmp_path, capsys):
    code, err, left = _train_on_8_images(tmp_path, capsys, image_size=8, batch_size=16)
    assert code == 2 and len(err) == 1, err
    assert "--set dataset.batch_size=16 is larger than the 8 training examples of image_folder" in err[0]
    assert not left


@pytest.mark.parametrize("key", ["pad_crop", "cutout"])
def test_augmentation_larger_than_the_images_is_refused_before_a_run_directory(tmp_path, capsys, key):
    """`train.pad_crop=1000000000` ended in TensorFlow's overflow traceback; a cutout larger than the images erased
    every one of them, without a word."""
    code, err, left = _train_on_8_images(tmp_path, capsys, image_size=8, batch_size=4, extra=[f"train.{key}=9"])
    assert code == 2 and len(err) == 1, err
    assert f"--set train.{key}: expected at most the images' side (8 pixels, [dataset] image_folder), got 9" in err[0]
    assert not left


def test_an_image_folder_of_one_class_trains_nothing_but_calibrates(tmp_path, capsys):
    """A folder of one class trained to a loss of 0 and "100 % accuracy" without a word; as int8 calibration images
    it is fine."""
    from tests.images import write_image_folder
    from tfnas.train.calibration import calibration_images

    root = write_image_folder(tmp_path / "one", per_class=8, size=(8, 8), classes=("cat",))
    assert len(calibration_images(str(root), (8, 8, 3), num_images=2).images) == 2
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", "dataset.image_size=8", "dataset.batch_size=4"]
    argv = [_cfg_file(tmp_path, ARCH), "--out-dir", str(tmp_path / "run"), "--no-progress"]
    assert train_main(argv + [a for s in sets for a in ("--set", s)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    said = f"--set dataset.data_dir={root}: its training images hold 1 class; a classifier needs two or more"
    assert len(err) == 1 and said in err[0], err
    assert not (tmp_path / "run").exists()


def test_the_shared_weights_augmentation_is_checked_against_their_images():
    from types import SimpleNamespace

    from tfnas.run.method_args import _check_search_batch

    images, labels = np.zeros((8, 16, 12, 3), np.uint8), np.zeros(8, np.int64)
    data = (images, labels, images, labels, SimpleNamespace(num_classes=2))
    _check_search_batch(load_config(None, ["dataset.batch_size=4", "train.cutout=12"]), data)
    with pytest.raises(ConfigError, match=r"^--set train\.cutout: expected at most the images' side \(12 pixels"):
        _check_search_batch(load_config(None, ["dataset.batch_size=4", "train.cutout=13"]), data)


def test_a_subset_larger_than_its_split_is_said_once(tmp_path, caplog):
    """`train_subset=100000` on a folder of 8 images trained on the 8 without a word."""
    import logging

    from tests.images import write_image_folder
    from tfnas.run import factory

    root = write_image_folder(tmp_path / "images", per_class=4, size=(8, 8), classes=("a", "b"))
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", "dataset.batch_size=4", "dataset.image_size=8"]
    cfg = load_config(None, sets + ["dataset.train_subset=100", "dataset.eval_subset=5"])
    with caplog.at_level(logging.WARNING, logger="tfnas.run.factory"):
        factory.check_training_data(cfg)
        factory.build_datasets(cfg)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["--set dataset.train_subset: image_folder holds 8 examples, fewer than asked; all 8 are used"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tfnas.run.factory"):
        factory.build_datasets(load_config(None, sets + ["dataset.eval_subset=50"]))
    assert [r.getMessage() for r in caplog.records] == [
        "--set dataset.eval_subset: image_folder holds 8 examples, fewer than asked; all 8 are used"]


def test_a_batch_whose_activations_outgrow_32_bit_indexing_is_refused_before_training(tmp_path):
    """``image_size = 4096`` at batch 16 crashed TensorFlow (exit 139, no message, files left behind):
    the stem's output, 16 x 4096 x 4096 x 16, has more than 2**31 - 1 elements."""
    from tfnas.run.train_one import check_activation_size
    from tfnas.spaces.nb201 import Nb201Space

    cfg = load_config(None, overrides(tmp_path / "run") + ["dataset.image_size=4096", "dataset.batch_size=16"])
    model = Nb201Space().build(Nb201Space().decode(ARCH), 10, (4096, 4096, 3))
    with pytest.raises(ConfigError, match=r"batch_size: with \[dataset\] image_size 4096 the network's largest "
                                          r"activation would hold 16 x 268,435,456 = 4,294,967,296 elements"):
        check_activation_size(model, 16, cfg)
    check_activation_size(model, 2, cfg)  # 536,870,912 elements: TensorFlow says "out of memory" if it must
    assert not (tmp_path / "run").exists()



def test_tools_train_checks_the_activation_size_before_a_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("tfnas.run.train_one.MAX_TENSOR_ELEMENTS", 1000)  # 4 x 8 x 8 x 4 channels = 1,024
    code, err, left = _train_on_8_images(tmp_path, capsys, image_size=8, batch_size=4)
    assert code == 2 and len(err) == 1 and "4 x 256 = 1,024 elements" in err[0] and not left, err


def test_cli_refuses_images_the_network_cannot_take_before_a_run_directory(tmp_path, capsys):
    code, err, left = _train_on_8_images(tmp_path, capsys, image_size=10, batch_size=4)
    assert code == 2 and len(err) == 1, err
    assert "[space] arch: the network cannot be built for the images of [dataset] (image_folder, 10x10x3" in err[0]
    assert "divisible by 4" in err[0] and not left  # the corrected run is not refused by a config.cfg


def test_a_run_directory_a_failed_run_created_is_removed_if_it_holds_nothing_else(tmp_path):
    from tfnas.run.rundir import RunDir

    def fail_inside(out, write=None):
        with pytest.raises(RuntimeError):
            with RunDir(load_config(None, overrides(out))) as run_dir:
                run_dir.store.state_dir()  # a method may make it before its first checkpoint
                if write:
                    run_dir.store.write_text(write, "x")
                raise RuntimeError("the run failed")

    fail_inside(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    fail_inside(tmp_path / "kept", write="history.csv")  # something of the run's own: kept for the resume
    assert sorted(os.listdir(tmp_path / "kept")) == [".lock", "config.cfg", "history.csv", "search_state"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")  # a folder that was not empty is never removed,
    fail_inside(tmp_path / "mine")  # but what the failed run wrote into it is (its config.cfg refused the rerun)
    assert sorted(os.listdir(tmp_path / "mine")) == ["notes.txt"]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    (tmp_path / "made_by_you").mkdir()  # an empty folder the user made (or the current one) stays, emptied again
    fail_inside(tmp_path / "made_by_you")
    assert (tmp_path / "made_by_you").is_dir() and not os.listdir(tmp_path / "made_by_you")


def test_a_run_refused_by_another_runs_lock_removes_none_of_its_files(tmp_path, monkeypatch):
    """The other run may write its config.cfg between this run's look at the folder and its lock attempt."""
    from tfnas.run.rundir import RunDir, RunDirError

    out = tmp_path / "run"
    out.mkdir()

    def locked(self):
        (out / "config.cfg").write_text("the other run's")
        raise RunDirError(f"{out}: another run is writing this directory (process 1)")

    monkeypatch.setattr(RunDir, "_lock", locked)
    with pytest.raises(RunDirError, match="another run is writing"):
        RunDir(load_config(None, overrides(out))).open()
    assert (out / "config.cfg").read_text() == "the other run's"


def test_a_run_directory_that_cannot_be_made_leaves_no_folders_on_the_way(tmp_path):
    from tfnas.run.rundir import RunDir, RunDirAccessError

    out = tmp_path / "runs" / "a" / ("x" * 300) / "b"  # the third folder's name is too long
    with pytest.raises(RunDirAccessError, match="cannot create the run directory"):
        RunDir(load_config(None, overrides(out))).open()
    assert os.listdir(tmp_path) == []


def test_ctrl_c_before_anything_was_saved_does_not_promise_a_resume(tmp_path, capsys):
    from tfnas.cli import INTERRUPTED, INTERRUPTED_LINE, NOTHING_SAVED_LINE, run_guarded
    from tfnas.run.rundir import RunDir

    def stopped(out, write=None):
        def run():
            with RunDir(load_config(None, overrides(out))) as run_dir:
                if write:
                    run_dir.store.write_text(write, "x")
                raise KeyboardInterrupt
        assert run_guarded(run, verbose=False) == INTERRUPTED
        return capsys.readouterr().err.strip()

    assert stopped(tmp_path / "new") == NOTHING_SAVED_LINE and not (tmp_path / "new").exists()
    # the folders made above it go too (an empty runs/ stayed in the working directory), not one that holds more
    assert stopped(tmp_path / "runs" / "a" / "new") == NOTHING_SAVED_LINE and not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "other").mkdir(parents=True)
    assert stopped(tmp_path / "runs" / "a" / "new") == NOTHING_SAVED_LINE
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]
    assert stopped(tmp_path / "kept", write="history.csv") == INTERRUPTED_LINE  # resumable
    (tmp_path / "no_config").mkdir()  # results of a run whose config.cfg was deleted: a rerun resumes them
    (tmp_path / "no_config" / "runs.jsonl").write_text("")
    assert stopped(tmp_path / "no_config") == INTERRUPTED_LINE
    assert sorted(os.listdir(tmp_path / "no_config")) == ["runs.jsonl"]
    # a search's train/ stopped before its first checkpoint: the search's results are saved
    (tmp_path / "search").mkdir()
    for name in ("config.cfg", "result.json"):
        (tmp_path / "search" / name).write_text("x")
    assert stopped(tmp_path / "search" / "train") == INTERRUPTED_LINE
    # a directory a run killed before its first result left (its config.cfg and lock): it said "what finished
    # is saved"; it stays (not this run's to remove)
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / ".lock").write_text("1")
    (tmp_path / "killed" / "config.cfg").write_text(config_to_ini(load_config(None, overrides(tmp_path / "killed"))))
    assert stopped(tmp_path / "killed") == NOTHING_SAVED_LINE
    assert sorted(os.listdir(tmp_path / "killed")) == [".lock", "config.cfg"]
    assert stopped(tmp_path / "killed", write="history.csv") == INTERRUPTED_LINE


def test_a_search_state_that_is_a_file_and_a_history_row_with_an_extra_field_are_named(tmp_path):
    from tfnas.io import DamagedFileError
    from tfnas.run.rundir import RunDir, RunDirError
    from tfnas.run.store import ArtifactStore
    from tfnas.run.search import HistoryLog

    (tmp_path / "search_state").write_text("x")
    with pytest.raises(RunDirError, match=r"search_state: is a file, not a folder; delete it"):
        RunDir(load_config(None, overrides(tmp_path))).check()
    # pandas would take the first column as an index and shift every other one
    (tmp_path / "history.csv").write_text("iteration,best_score\n10,1.5,7\n20,2.5\n")
    with pytest.raises(DamagedFileError, match=r"history\.csv: line 2 has 3 fields; its header has 2; delete it"):
        HistoryLog(ArtifactStore(str(tmp_path)))


@pytest.mark.parametrize("damage", ["epoch,loss\nx,1\n", "\x00\x01garbage", "loss,lr\n1,2\n"])
def test_a_damaged_history_csv_is_warned_about_and_replaced_by_the_new_epochs(tmp_path, caplog, damage):
    from types import SimpleNamespace

    from tfnas.run.store import ArtifactStore
    from tfnas.run.train_one import EpochLog

    (tmp_path / "history.csv").write_text(damage)
    run_dir = SimpleNamespace(store=ArtifactStore(str(tmp_path)), file=lambda name: str(tmp_path / name))
    log = EpochLog(run_dir)
    assert "unreadable" in caplog.text and "history.csv" in caplog.text
    row = {"epoch": 4, "loss": 1.5, "train_acc": 0.5, "eval_loss": None, "eval_acc": None, "lr": 0.1, "seconds": 2.0}
    log.append(row)
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [4]
    assert list(log.close()["epoch"]) == [4]


def test_a_resume_after_rows_of_history_csv_went_missing_says_which(tmp_path, caplog):
    from types import SimpleNamespace

    from tfnas.run.store import ArtifactStore
    from tfnas.run.train_one import EpochLog

    row = {"epoch": 1, "loss": 1.5, "train_acc": 0.5, "eval_loss": None, "eval_acc": None, "lr": 0.1, "seconds": 2.0}
    (tmp_path / "history.csv").write_text(pd.DataFrame([row, {**row, "epoch": 2}]).to_csv(index=False))
    run_dir = SimpleNamespace(store=ArtifactStore(str(tmp_path)), file=lambda name: str(tmp_path / name))
    EpochLog(run_dir).append({**row, "epoch": 3})  # continuous: nothing to say
    assert "no row" not in caplog.text
    EpochLog(run_dir).append({**row, "epoch": 6})  # the checkpoint held 5 epochs, the file 3
    assert "history.csv has no row for epoch(s) 4-5" in caplog.text
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1, 2, 3, 6]


def test_a_history_csv_edited_by_hand_is_put_back_in_order_and_its_gaps_named(tmp_path, caplog):
    from types import SimpleNamespace

    from tfnas.run.store import ArtifactStore
    from tfnas.run.train_one import EpochLog

    row = {"epoch": 1, "loss": 1.5, "train_acc": 0.5, "eval_loss": None, "eval_acc": None, "lr": 0.1, "seconds": 2.0}
    rows = [{**row, "epoch": 3}, row, {**row, "epoch": 3, "loss": 0.5}, {**row, "epoch": 5}]  # 2 and 4 deleted
    (tmp_path / "history.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    run_dir = SimpleNamespace(store=ArtifactStore(str(tmp_path)), file=lambda name: str(tmp_path / name))
    log = EpochLog(run_dir)
    assert "more than one row for epoch(s) 3; the last row of each is kept" in caplog.text
    log.append({**row, "epoch": 7})
    assert "history.csv has no row for epoch(s) 2, 4, 6 of the checkpoint" in caplog.text
    written = pd.read_csv(tmp_path / "history.csv")
    assert list(written["epoch"]) == [1, 3, 5, 7] and list(written["loss"]) == [1.5, 0.5, 1.5, 1.5]


@pytest.mark.parametrize("epochs", ["0", "1.5", "", "1e30", "abc", "True"])
def test_a_history_csv_whose_epochs_are_not_epoch_numbers_is_unreadable(tmp_path, caplog, epochs):
    from types import SimpleNamespace

    from tfnas.run.store import ArtifactStore
    from tfnas.run.train_one import EpochLog

    first = "True" if epochs == "True" else "1"  # a column of booleans
    (tmp_path / "history.csv").write_text(f"epoch,loss\n{first},1.0\n{epochs},2.0\n")
    run_dir = SimpleNamespace(store=ArtifactStore(str(tmp_path)), file=lambda name: str(tmp_path / name))
    assert EpochLog(run_dir).frame().empty
    assert "unreadable (column 'epoch' holds values that are not epoch numbers" in caplog.text


def test_unsorted_rows_are_warned_about_and_a_lost_file_names_every_missing_epoch(tmp_path, caplog):
    from types import SimpleNamespace

    from tfnas.run.store import ArtifactStore
    from tfnas.run.train_one import EpochLog

    row = {"epoch": 1, "loss": 1.5, "train_acc": 0.5, "eval_loss": None, "eval_acc": None, "lr": 0.1, "seconds": 2.0}
    (tmp_path / "history.csv").write_text(pd.DataFrame([{**row, "epoch": 2}, row]).to_csv(index=False))
    run_dir = SimpleNamespace(store=ArtifactStore(str(tmp_path)), file=lambda name: str(tmp_path / name))
    assert list(EpochLog(run_dir).frame()["epoch"]) == [1, 2]
    assert "rows not in epoch order; they are put back in order" in caplog.text
    (tmp_path / "history.csv").unlink()  # lost: the checkpoint held 2 epochs
    EpochLog(run_dir).append({**row, "epoch": 3})
    assert "history.csv has no row for epoch(s) 1-2 of the checkpoint" in caplog.text
    (tmp_path / "history.csv").write_text("epoch,loss\n")  # only the header
    caplog.clear()
    EpochLog(run_dir).append({**row, "epoch": 2})
    assert "no row for epoch(s) 1 of the checkpoint" in caplog.text


def test_an_epoch_whose_row_cannot_be_written_keeps_its_checkpoint(tmp_path):
    """The row goes out first; when writing it fails (a full disk), the trained epoch is still saved."""
    from tfnas.train import Trainer
    from tests.train.test_trainer import cfg as recipe, dataset, tiny_model

    ckpt = tmp_path / "ckpt"

    def full_disk(row):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        Trainer(tiny_model(), recipe(epochs=2), jit_compile=False, progress=False, checkpoint_dir=str(ckpt),
                seed=0).fit(dataset(), on_epoch=full_disk)
    assert sorted(p.name for p in ckpt.glob("ckpt-*.index")) == ["ckpt-1.index"]


def test_executor_keys_are_said_to_be_unused_by_the_training_of_one_network(tmp_path, capsys, caplog):
    from tests.images import write_image_folder

    root = write_image_folder(tmp_path / "images", per_class=4, size=(8, 8), classes=("a", "b"))
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", "dataset.batch_size=16", "run.executor=ray",
            "run.workers=2"]
    argv = [_cfg_file(tmp_path, ARCH), "--out-dir", str(tmp_path / "run"), "--no-progress"]
    with caplog.at_level("WARNING"):
        assert train_main(argv + [a for s in sets for a in ("--set", s)]) == 2  # (then refused: 16 > 8 images)
    assert ("[run] executor = ray, workers = 2: not used by tools/train.py, which trains one network (on several "
            "machines: [run] strategy = multi_worker)") in caplog.text


def test_a_training_from_scratch_draws_over_the_points_of_one_whose_checkpoints_were_deleted(tmp_path):
    """With checkpoints/ deleted, a rerun of 2 epochs trained afresh (another schedule) but TensorBoard kept the
    first training's epoch 1 beside the new epoch 2."""
    import shutil

    from tests.run.tb_reader import scalars

    out_dir = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=64):
        train_architecture(load_config(None, overrides(out_dir, "train.epochs=1")))
        shutil.rmtree(os.path.join(out_dir, "checkpoints"))
        again = train_architecture(load_config(None, overrides(out_dir, "train.epochs=2")))
    assert again.history.epoch == [1, 2]
    shown = dict(scalars(os.path.join(out_dir, "tensorboard", "train"))["train/loss"])  # the last point of a step
    np.testing.assert_allclose([shown[1], shown[2]], again.history.loss, rtol=1e-6)
