"""Tests for tfnas/data/pipeline.py: batching, normalisation, one-hot labels, determinism."""

import cv2
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.config import ConfigError, load_config
from tfnas.data import load_dataset, make_pipeline, normalize
from tfnas.data.pipeline import derive_seeds

MEAN = (0.5, 0.25, 0.75)
STD = (0.5, 0.25, 0.125)
AUGMENT = dict(flip=True, pad_crop=2, cutout=3, random_erasing=0.5)


def _raw(n=10, size=8, classes=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % classes
    return tf.data.Dataset.from_tensor_slices((images, labels)), images, labels


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_eval_pipeline_normalises_and_one_hots_in_order():
    ds, images, labels = _raw()
    out = _batches(make_pipeline(ds, batch_size=4, training=False, num_classes=4, mean=MEAN, std=STD))
    assert [x.shape for x, _ in out] == [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]
    x = np.concatenate([b[0] for b in out])
    y = np.concatenate([b[1] for b in out])
    assert x.dtype == np.float32 and y.dtype == np.float32
    expected = (images.astype(np.float32) / 255.0 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, np.eye(4, dtype=np.float32)[labels])


def test_normalize_accepts_float_in_unit_range():
    image = tf.constant(np.full((2, 2, 3), 0.5, np.float32))
    np.testing.assert_allclose(normalize(image, MEAN, STD).numpy()[0, 0], [0.0, 1.0, -2.0])


def test_training_without_augmentation_only_shuffles():
    ds, images, labels = _raw()
    out = _batches(
        make_pipeline(ds, batch_size=10, training=True, num_classes=4, mean=MEAN, std=STD, seed=1)
    )
    x, y = out[0]
    expected = (images.astype(np.float32) / 255.0 - np.array(MEAN)) / np.array(STD)
    order = [int(np.argmin(np.abs(expected - xi).sum(axis=(1, 2, 3)))) for xi in x]
    assert sorted(order) == list(range(10))
    np.testing.assert_allclose(x, expected[order], atol=1e-5)
    np.testing.assert_array_equal(y.argmax(axis=1), labels[order])


def test_same_seed_same_batches_other_seed_other_batches():
    ds, _, _ = _raw()
    kw = dict(batch_size=4, training=True, num_classes=4, mean=MEAN, std=STD, mixup_alpha=0.4, **AUGMENT)
    a = _batches(make_pipeline(ds, seed=3, **kw))
    b = _batches(make_pipeline(ds, seed=3, **kw))
    c = _batches(make_pipeline(ds, seed=4, **kw))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_each_epoch_redraws_but_reproducibly():
    ds, _, _ = _raw()
    kw = dict(batch_size=10, training=True, num_classes=4, mean=MEAN, std=STD, seed=5, **AUGMENT)
    first = make_pipeline(ds, **kw)
    epoch1, epoch2 = _batches(first), _batches(first)
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])
    again = make_pipeline(ds, **kw)
    np.testing.assert_array_equal(_batches(again)[0][0], epoch1[0][0])
    np.testing.assert_array_equal(_batches(again)[0][0], epoch2[0][0])


def test_mixup_in_pipeline_keeps_label_rows_summing_to_one():
    ds, _, _ = _raw(n=16)
    pipe = make_pipeline(
        ds, batch_size=8, training=True, num_classes=4, mean=MEAN, std=STD, seed=2, mixup_alpha=1.0
    )
    soft = False
    for _, y in _batches(pipe):
        assert y.shape == (8, 4)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
        soft |= bool(np.any((y > 1e-6) & (y < 1 - 1e-6)))
    assert soft


def test_drop_remainder_and_argument_checks():
    ds, _, _ = _raw(n=10)
    pipe = make_pipeline(
        ds, batch_size=4, training=True, num_classes=4, mean=MEAN, std=STD, drop_remainder=True
    )
    assert [x.shape[0] for x, _ in _batches(pipe)] == [4, 4]
    assert pipe.element_spec[0].shape.as_list() == [4, 8, 8, 3]
    with pytest.raises(ValueError, match="batch_size"):
        make_pipeline(ds, batch_size=0, training=False, num_classes=4, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="std"):
        make_pipeline(ds, batch_size=2, training=False, num_classes=4, mean=MEAN, std=(1, 0, 1))


def test_derive_seeds_are_distinct_and_stable():
    assert derive_seeds(0, 3) == derive_seeds(0, 3)
    assert len(set(derive_seeds(0, 3) + derive_seeds(1, 3))) == 6
    assert all(0 <= s < 2**31 for s in derive_seeds(7, 3))


SLNAS_FOLDER_AUGMENT = dict(color_jitter=0.4, hue_jitter=0.1, grayscale=0.2, low_resolution=0.45, flip=True,
                            random_resized_crop=True)


@pytest.fixture
def folder(tmp_path):
    """An image folder of 40 x 56 PNGs, 2 classes x 4 train images and 1 val image each."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for split, count in (("train", 4), ("val", 1)):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
                assert cv2.imwrite(str(tmp_path / split / name / f"{i}.png"), image)
    return tmp_path


def test_image_folder_pipeline_with_the_slnas_augmentations(folder):
    train_raw, info = load_dataset("image_folder", split="train", data_dir=str(folder), image_size=64)
    eval_raw, _ = load_dataset("image_folder", split="eval", data_dir=str(folder), image_size=64)
    kw = dict(batch_size=4, training=True, num_classes=2, mean=info.mean, std=info.std, pad_crop=0,
              drop_remainder=True, **SLNAS_FOLDER_AUGMENT)
    a = _batches(make_pipeline(train_raw, seed=1, **kw))
    assert [x.shape for x, _ in a] == [(4, 64, 64, 3)] * 2
    assert all(x.dtype == np.float32 and np.isfinite(x).all() for x, _ in a)
    low = (0.0 - np.array(info.mean)) / np.array(info.std) - 1e-5
    high = (1.0 - np.array(info.mean)) / np.array(info.std) + 1e-5
    assert all(((x >= low) & (x <= high)).all() for x, _ in a)  # still images in [0, 1] before normalising
    b = _batches(make_pipeline(train_raw, seed=1, **kw))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # same seed, same shuffle: every image differs from the unaugmented one (other seeds: test_augment.py)
    plain = _batches(make_pipeline(train_raw, seed=1, **{**kw, **dict.fromkeys(SLNAS_FOLDER_AUGMENT, 0)}))
    for (xa, ya), (xp, yp) in zip(a, plain):
        np.testing.assert_array_equal(ya, yp)
        assert not any(np.allclose(ia, ip, atol=1e-3) for ia, ip in zip(xa, xp))
    # evaluation ignores the augmentations: images come back exactly normalised
    eval_kw = {**kw, "training": False, "drop_remainder": False}
    (x, _), = _batches(make_pipeline(eval_raw, **eval_kw))
    images = np.stack([im for im, _ in eval_raw.as_numpy_iterator()])
    np.testing.assert_allclose(x, (images / 255.0 - np.array(info.mean)) / np.array(info.std), atol=1e-5)


def test_new_augmentations_leave_the_other_draws_unchanged():
    ds, _, _ = _raw()
    kw = dict(batch_size=10, training=True, num_classes=4, mean=MEAN, std=STD, seed=3, flip=True, pad_crop=2,
              cutout=3)
    base = _batches(make_pipeline(ds, **kw))[0][0]
    # brightness factor 1 and no hue: the jitter's float round trip only; flip, crop and cutout as before
    same = _batches(make_pipeline(ds, color_jitter=1e-9, **kw))[0][0]
    np.testing.assert_allclose(same, base, atol=1e-5)
    # a low-resolution pass that never fires: flip, crop and cutout draw as before
    same = _batches(make_pipeline(ds, low_resolution=1e-9, **kw))[0][0]
    np.testing.assert_allclose(same, base, atol=1e-5)


def test_random_resized_crop_needs_a_static_image_size():
    ds = tf.data.Dataset.from_generator(lambda: iter([(np.zeros((8, 8, 3), np.uint8), 0)]), output_signature=(
        tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((), tf.int64)))
    with pytest.raises(ValueError, match="static size"):
        make_pipeline(ds, batch_size=1, training=True, num_classes=2, mean=MEAN, std=STD, random_resized_crop=True)
    with pytest.raises(ValueError, match="hue_jitter"):
        make_pipeline(ds, batch_size=1, training=True, num_classes=2, mean=MEAN, std=STD, hue_jitter=0.7)


@pytest.mark.parametrize("override, expected", [
    ("train.color_jitter=1.5", "train.color_jitter: expected a number in [0.0, 1.0]"),
    ("train.hue_jitter=0.6", "train.hue_jitter: expected a number in [0.0, 0.5]"),
    ("train.grayscale=-0.1", "train.grayscale: expected a number in [0.0, 1.0]"),
    ("train.low_resolution=2", "train.low_resolution: expected a number in [0.0, 1.0]"),
    ("train.random_resized_crop=maybe", "train.random_resized_crop: expected a boolean"),
    ("train.colour_jitter=0.4", "train.colour_jitter: unknown key"),
])
def test_augmentation_keys_fail_in_one_line(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_augmentation_keys_default_off():
    t = load_config(None, []).train
    assert (t.color_jitter, t.hue_jitter, t.grayscale, t.random_resized_crop) == (0.0, 0.0, 0.0, False)


@pytest.mark.parametrize("kwargs, fragment", [({"mixup_alpha": -1.0}, "mixup_alpha"),
                                              ({"mixup_alpha": float("nan")}, "mixup_alpha"),
                                              ({"random_erasing": 5.0}, "random_erasing"),
                                              ({"pad_crop": -3}, "pad_crop"), ({"cutout": 1.5}, "cutout")])
def test_augmentation_strengths_that_cannot_be_are_refused(kwargs, fragment):
    """A negative or NaN mixup_alpha turned mixup off without a word; pad_crop=-3 and random_erasing=5 failed
    inside AutoGraph."""
    with pytest.raises(ValueError, match=fragment):
        make_pipeline(_raw()[0], batch_size=2, training=True, num_classes=4, mean=MEAN, std=STD, **kwargs)


def test_arrays_instead_of_a_dataset_and_labels_past_num_classes_are_named():
    """``make_pipeline((x, y), ...)`` failed with "'tuple' object has no attribute 'map'"; a label >= num_classes
    became an all-zero one-hot row."""
    x = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(TypeError, match="ds must be a tf.data.Dataset"):
        make_pipeline((x, np.zeros(4, np.int64)), batch_size=2, training=False, num_classes=2, mean=MEAN, std=STD)
    ds = tf.data.Dataset.from_tensor_slices((x, np.array([0, 1, 2, 1])))
    for training in (False, True):
        with pytest.raises(tf.errors.InvalidArgumentError, match="a label is not below num_classes=2"):
            _batches(make_pipeline(ds, batch_size=2, training=training, num_classes=2, mean=MEAN, std=STD))
