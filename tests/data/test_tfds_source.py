"""Tests for tfnas/data/tfds_source.py: tfds datasets under ``tfds.testing.mock_data`` (which
generates random examples from the dataset's feature spec, offline) and the fast offline failure."""

import os
import tempfile
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.data import DatasetNotFoundError, load_dataset
from tfnas.data import tfds_source
from tfnas.registry import DATASETS


def _collect(ds):
    images, labels = zip(*ds.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def test_all_datasets_are_registered():
    for name in ("cifar10", "cifar100", "imagenet16-120", "imagenet2012", "image_folder"):
        assert name in DATASETS
    assert DATASETS.get("cifar100").num_classes == 100
    assert DATASETS.get("imagenet16-120").image_shape == (16, 16, 3)


@pytest.mark.parametrize(
    "name, split, classes, shape",
    [("cifar10", "train", 10, (32, 32, 3)), ("cifar100", "eval", 100, (32, 32, 3))],
)
def test_cifar_shapes_dtypes_and_info(name, split, classes, shape):
    with tfds.testing.mock_data(num_examples=12):
        ds, info = load_dataset(name, split=split, download="false")
        images, labels = _collect(ds)
    assert info.num_classes == classes and info.image_shape == shape
    assert images.shape == (12, *shape) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < classes
    assert ds.element_spec[0].shape == shape


def test_cifar_stats_are_the_cifar_ones():
    source = DATASETS.get("cifar10")
    np.testing.assert_allclose(source.mean, (0.4914, 0.4822, 0.4465))
    np.testing.assert_allclose(source.std, (0.2470, 0.2435, 0.2616))
    assert DATASETS.get("cifar100").mean != source.mean


def test_subset_takes_the_first_examples():
    with tfds.testing.mock_data(num_examples=20):
        full, _ = load_dataset("cifar10", split="train", download="false")
        part, _ = load_dataset("cifar10", split="train", download="false", subset=5)
        full_images, full_labels = _collect(full)
        part_images, part_labels = _collect(part)
    assert part_images.shape[0] == 5
    np.testing.assert_array_equal(part_images, full_images[:5])
    np.testing.assert_array_equal(part_labels, full_labels[:5])


def test_imagenet16_120_keeps_only_the_first_120_classes():
    with tfds.testing.mock_data(num_examples=400):
        ds, info = load_dataset("imagenet16-120", split="eval", download="false")
        images, labels = _collect(ds)
    assert info.num_classes == 120 and info.image_shape == (16, 16, 3)
    # mock labels are uniform over 1000 classes: about 48 of 400 survive, never one >= 120
    assert 0 < labels.size < 400
    assert labels.max() < 120
    assert images.shape[1:] == (16, 16, 3)


def test_image_size_resizes():
    with tfds.testing.mock_data(num_examples=3):
        ds, info = load_dataset("cifar10", split="eval", download="false", image_size=8)
        images, _ = _collect(ds)
    assert info.image_shape == (8, 8, 3)
    assert images.shape == (3, 8, 8, 3) and images.dtype == np.uint8


def test_download_false_on_empty_dir_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", split="train", data_dir=str(tmp_path), download="false")
    assert time.monotonic() - start < 30.0  # not tfds' minutes of retries
    message = str(err.value)
    assert str(tmp_path) in message
    assert "tfds.load('cifar10')" in message
    assert "data_dir" in message and "download = false" in message


def test_a_dataset_not_prepared_leaves_nothing_in_the_temp_folder(tmp_path, monkeypatch):
    # tfds' DatasetInfo.initialize_from_bucket made an empty tmpXXXXtfds folder per run and kept it
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    (temp / "tmpearliertfds").mkdir()  # another process' (or an older run's): not this one's to remove
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", split="train", data_dir=str(tmp_path / "tfds"), download="false")
    assert os.listdir(temp) == ["tmpearliertfds"]


def test_auto_with_offline_env_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("TFNAS_OFFLINE", "1")
    probed = []
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: probed.append(a) or True)
    with pytest.raises(DatasetNotFoundError, match="TFNAS_OFFLINE"):
        load_dataset("cifar100", split="eval", data_dir=str(tmp_path), download="auto")
    assert not probed  # the env var short-cuts the network probe


def test_auto_with_unreachable_host_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("TFNAS_OFFLINE", raising=False)
    monkeypatch.setattr(tfds_source, "host_reachable", lambda host, *a, **k: False)
    with pytest.raises(DatasetNotFoundError, match="did not answer") as err:
        load_dataset("imagenet16-120", split="train", data_dir=str(tmp_path), download="auto")
    assert "imagenet_resized/16x16" in str(err.value)


def test_host_reachable_is_bounded_by_its_timeout():
    start = time.monotonic()
    assert tfds_source.host_reachable("tfnas-no-such-host.invalid", timeout=1.0) is False
    assert time.monotonic() - start < 4.0  # the 1 s probe, not tfds' minutes of retries


def test_imagenet2012_without_manual_dir_says_to_set_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"\[dataset\] manual_dir") as err:
        load_dataset("imagenet2012", split="eval", data_dir=str(tmp_path), download="true")
    assert "ILSVRC2012_img_train.tar" in str(err.value)
    # what is missing, for a tool that takes the dataset another way (tools/export.py --calibration)
    assert "ILSVRC2012_img_train.tar" in err.value.reason and "manual_dir" not in err.value.reason


def test_imagenet2012_manual_dir_missing_files_are_named(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "ILSVRC2012_img_train.tar").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="lacks ILSVRC2012_img_val.tar"):
        load_dataset(
            "imagenet2012", split="train", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual)
        )


def test_imagenet2012_mocked_resizes_to_default_224():
    with tfds.testing.mock_data(num_examples=2):
        ds, info = load_dataset("imagenet2012", split="eval", download="false")
        images, labels = _collect(ds)
    assert info.image_shape == (224, 224, 3) and info.num_classes == 1000
    assert images.shape == (2, 224, 224, 3)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="split"):
        load_dataset("cifar10", split="test")
    with pytest.raises(ValueError, match="download"):
        load_dataset("cifar10", split="train", download="maybe")
    with pytest.raises(KeyError, match="registered"):
        load_dataset("mnist", split="train")
    assert tf.executing_eagerly()


# ---- offline downloads fail in seconds and leave nothing behind (issue 13, item 6) ------------


def test_download_true_offline_fails_fast_naming_the_network(tmp_path, monkeypatch):
    monkeypatch.delenv("TFNAS_OFFLINE", raising=False)
    probed = []
    monkeypatch.setattr(tfds_source, "host_reachable", lambda host, port=443, **k: probed.append((host, port)) or False)

    def no_download(self, *a, **k):  # tfds must not be reached at all
        raise AssertionError("tfds download started although the network is unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    start = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", split="train", data_dir=str(tmp_path), download="true")
    assert time.monotonic() - start < 30.0  # not tfds' minutes of retries
    message = str(err.value)
    assert "network is unreachable" in message and "www.cs.toronto.edu" in message
    assert "manual_dir" in message and "cifar-10-binary.tar.gz" in message and "data_dir" in message
    assert "Rerun once the network is back" in message and "Set [dataset] download = true" not in message
    assert "network is unreachable" in err.value.reason and "manual_dir" not in err.value.reason
    assert probed and probed[0][0] == "www.cs.toronto.edu"
    assert os.listdir(tmp_path) == []


def test_probe_goes_to_the_https_proxy_when_one_is_set(monkeypatch):
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert tfds_source.probe_target("www.cs.toronto.edu") == ("www.cs.toronto.edu", 443)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert tfds_source.probe_target("www.cs.toronto.edu") == ("proxy.example", 3128)
    monkeypatch.setenv("no_proxy", "toronto.edu")
    assert tfds_source.probe_target("www.cs.toronto.edu") == ("www.cs.toronto.edu", 443)


def _fail_midway(error):
    """A stand-in for ``download_and_prepare`` that leaves what an interrupted tfds run leaves."""

    def fake(self, *args, **kwargs):
        root = str(self.data_dir_root)
        name = self.name
        os.makedirs(os.path.join(root, name, "incomplete.AB12CD_3.0.2", "cifar10-train.tfrecord"), exist_ok=True)
        downloads = os.path.join(root, "downloads")
        os.makedirs(os.path.join(downloads, "cs.toronto.edu_kriz_cifar-10-binaryXYZ.tar.gz.tmp.0123abcd"))
        with open(os.path.join(downloads, "cs.toronto.edu_kriz_cifar-10-binaryXYZ.tar.gz.tmp.0123abcd", "part"), "wb") as f:
            f.write(b"half")
        raise error

    return fake


class _FakeConnectionError(OSError):
    """Looks like requests' ConnectionError (an OSError subclass) after its retries."""


def test_failed_download_is_cleaned_up_and_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("TFNAS_OFFLINE", raising=False)
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        _fail_midway(_FakeConnectionError("Max retries exceeded with url: /~kriz/cifar-10")))
    kept = tmp_path / "other_dataset" / "incomplete.KEEP00_1.0.0"  # not ours: left alone
    kept.mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", split="train", data_dir=str(tmp_path), download="true")
    message = str(err.value)
    assert "_FakeConnectionError" in message and "Max retries" in message and "Partial files were removed" in message
    assert isinstance(err.value.__cause__, _FakeConnectionError)
    # for tools/export.py --calibration, which has no [dataset] keys: what failed, without those remedies
    reason = err.value.reason
    assert "Max retries" in reason and "manual_dir" not in reason and "download =" not in reason
    assert sorted(os.listdir(tmp_path)) == ["other_dataset"]
    assert kept.is_dir()


def test_failed_download_keeps_finished_files_and_older_partials(tmp_path, monkeypatch):
    monkeypatch.delenv("TFNAS_OFFLINE", raising=False)
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: True)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "finished.zip").write_bytes(b"done")
    older = tmp_path / "cifar10" / "incomplete.OLD000_3.0.2"  # from before this run: another process's
    older.mkdir(parents=True)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", _fail_midway(RuntimeError("boom")))
    with pytest.raises(DatasetNotFoundError, match="RuntimeError: boom"):
        load_dataset("cifar10", split="train", data_dir=str(tmp_path), download="auto")
    assert sorted(os.listdir(downloads)) == ["finished.zip"]
    assert sorted(os.listdir(tmp_path / "cifar10")) == ["incomplete.OLD000_3.0.2"]


def test_interrupted_download_is_cleaned_up_and_reraised(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", _fail_midway(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        load_dataset("cifar10", split="train", data_dir=str(tmp_path), download="true")
    assert os.listdir(tmp_path) == []


def test_manual_dir_with_the_archive_prepares_without_the_network(tmp_path, monkeypatch):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "cifar-100-binary.tar.gz").write_bytes(b"")
    monkeypatch.setattr(tfds_source, "host_reachable",
                        lambda *a, **k: pytest.fail("the network was probed although manual_dir holds the data"))
    seen = {}

    def fake(self, *args, download_config=None, **kwargs):
        seen["manual_dir"] = str(download_config.manual_dir)
        raise RuntimeError("stop here")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fake)
    with pytest.raises(DatasetNotFoundError, match="from \\[dataset\\] manual_dir"):
        load_dataset("cifar100", split="train", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual),
                     download="false")
    assert seen["manual_dir"] == str(manual)
    assert DATASETS.get("imagenet16-120").download_files(None) == ("Imagenet16_train_npz.zip", "Imagenet16_val_npz.zip")
