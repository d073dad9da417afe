"""tfnas/run/exports.py: export file names, what is missing, and where int8 calibration images come from."""

import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.config import load_config
from tfnas.registry import DATASETS
from tfnas.run.exports import calibration_of, export_lines, export_paths_of, missing_exports, remove_stale_exports
from tfnas.train.calibration import SyntheticCalibrationWarning

SHAPE = (32, 32, 3)


def cfg_of(out_dir, *sets):
    return load_config(None, [f"run.out_dir={out_dir}", "dataset.download=false", *sets])


def test_paths_follow_the_listed_formats_and_the_quantization(tmp_path):
    cfg = cfg_of(tmp_path, "export.format=tflite, keras, saved_model", "export.quantize=float16")
    paths = export_paths_of(cfg)
    assert list(paths) == ["tflite", "keras", "saved_model"]
    assert paths == {"tflite": str(tmp_path / "model_float16.tflite"), "keras": str(tmp_path / "model.keras"),
                     "saved_model": str(tmp_path / "saved_model")}
    assert export_paths_of(cfg_of(tmp_path, "export.format=tflite"))["tflite"] == str(tmp_path / "model.tflite")
    assert missing_exports(cfg) == ["tflite", "keras", "saved_model"]
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "model.keras").write_bytes(b"k")
    assert missing_exports(cfg) == ["tflite"]
    assert missing_exports(cfg_of(tmp_path, "export.enabled=false", "export.format=tflite")) == []
    assert export_lines({"tflite": "/r/model_int8.tflite"}, "cifar10 train split, 9 images") == [
        "exported (tflite): /r/model_int8.tflite", "int8 calibration: cifar10 train split, 9 images"]


def test_exports_not_asked_for_any_more_are_removed_after_further_training(tmp_path, caplog):
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(b"s")
    for name in ("model.keras", "model.tflite", "model_int8.tflite", "metrics.json"):
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level("WARNING", logger="tfnas.run.exports"):
        removed = remove_stale_exports(cfg_of(tmp_path, "export.format=saved_model, tflite"))
    assert removed == [str(tmp_path / "model.keras"), str(tmp_path / "model_int8.tflite")]
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "model.tflite", "saved_model"]
    assert "removed " + ", ".join(removed) + ": exported before the epochs just trained" in caplog.text
    assert remove_stale_exports(cfg_of(tmp_path, "export.enabled=false")) == [str(tmp_path / "saved_model"),
                                                                             str(tmp_path / "model.tflite")]
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_calibration_defaults_to_the_runs_own_tfds_training_split(tmp_path):
    data_dir = tmp_path / "tfds"
    sets = ["export.format=tflite", "export.quantize=int8", f"dataset.data_dir={data_dir}"]
    with tfds.testing.mock_data(num_examples=12):
        own = calibration_of(cfg_of(tmp_path, *sets), SHAPE)
        named = calibration_of(cfg_of(tmp_path, *sets, "export.calibration=cifar100"), SHAPE)
    assert not own.synthetic and own.source == "cifar10 train split, 12 images" and own.images.shape == (12,) + SHAPE
    assert not named.synthetic and named.source.startswith("cifar100 train split")


def test_calibration_from_the_runs_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = tmp_path / "images" / split / cls
            folder.mkdir(parents=True)
            png = tf.io.encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).numpy()
            (folder / "0.png").write_bytes(png)
    cfg = cfg_of(tmp_path, "dataset.name=image_folder", f"dataset.data_dir={tmp_path / 'images'}",
                 "export.format=tflite", "export.quantize=int8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntheticCalibrationWarning)
        found = calibration_of(cfg, SHAPE)
    assert not found.synthetic and found.images.shape == (2,) + SHAPE
    assert found.source == f"image folder {tmp_path / 'images'} (train/), 2 images"


def test_calibration_is_synthetic_with_a_warning_only_without_a_tfds_or_folder_dataset(tmp_path, monkeypatch):
    cfg = cfg_of(tmp_path, "export.format=tflite", "export.quantize=int8")
    monkeypatch.setattr(DATASETS, "get", lambda name: object())  # a source that is neither
    with pytest.warns(SyntheticCalibrationWarning, match="accuracy will suffer"):
        found = calibration_of(cfg, SHAPE)
    assert found.synthetic and found.source.startswith("SYNTHETIC") and found.images.shape[1:] == SHAPE
    assert not os.listdir(tmp_path)


def test_a_calibration_dataset_that_cannot_be_read_is_refused_before_the_work(tmp_path, monkeypatch):
    from tensorflow_datasets.core import constants

    from tfnas.data import DatasetNotFoundError
    from tfnas.run.exports import check_calibration_data

    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "no_tfds"))  # tfds' default data dir: empty
    sets = ["export.format=tflite", "export.quantize=int8", "export.calibration=cifar100"]
    with pytest.raises(DatasetNotFoundError, match=r"^\[export\] calibration = cifar100 \(the int8 calibration "
                                                   r"images.*cifar100.*is not prepared"):
        check_calibration_data(cfg_of(tmp_path / "run", *sets))
    check_calibration_data(cfg_of(tmp_path / "run", *sets[:2]))  # the run's own data: checked with the training
    check_calibration_data(cfg_of(tmp_path / "run", "export.format=tflite", "export.quantize=float16"))
    with tfds.testing.mock_data(num_examples=4):
        check_calibration_data(cfg_of(tmp_path / "run", *sets))
    assert not (tmp_path / "run").exists()
