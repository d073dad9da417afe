"""Tests for tfnas/data/pipeline.py: batching, normalisation, one-hot labels, determinism."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnas.data import make_pipeline, normalize
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
