"""Tests of synflow on Keras networks (tfnas.proxies.synflow)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tests.proxies.nb201_setup import CLASSES, SHAPE, snapshot
from tests.spaces.archs import NB201_MIXED
from tfnas.proxies.base import ProxyBatch, get_proxy, random_batch
from tfnas.proxies.synflow import log_synflow


def test_synflow_matches_its_definition_on_a_two_layer_net():
    """Without biases every path crosses both layers, so S = 2 * R = 2 * 1^T |W2|^T |W1|^T 1."""
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, use_bias=False, activation="relu"),
                              keras.layers.Dense(3, use_bias=False)])
    w1, w2 = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    model.set_weights([w1.astype(np.float32), w2.astype(np.float32)])
    batch = ProxyBatch(np.zeros((2, 5), np.float32), np.zeros(2, np.int32), 3)
    expected = math.log(2.0 * np.ones(5) @ np.abs(w1.astype(np.float32)).astype(np.float64)
                        @ np.abs(w2.astype(np.float32)).astype(np.float64) @ np.ones(3))
    before = snapshot(model)
    assert get_proxy("synflow").score(model, batch, rng) == pytest.approx(expected, rel=1e-12)
    for old, new in zip(before, snapshot(model)):
        np.testing.assert_array_equal(old, new)


def test_synflow_bn_handling_follows_the_reference(space):
    """reference_bn keeps batch-statistics BN in the reduction blocks only; it changes the score."""
    arch = space.decode(NB201_MIXED)
    model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
    batch = random_batch(np.random.default_rng(0), 2, SHAPE, CLASSES)
    with_bn = get_proxy("synflow").score(model, batch, np.random.default_rng(0))
    without = get_proxy("synflow", reference_bn=False).score(model, batch, np.random.default_rng(0))
    assert math.isfinite(with_bn) and math.isfinite(without) and with_bn != pytest.approx(without, rel=1e-3)
    with pytest.raises(ValueError, match="reference_bn must be a bool"):
        get_proxy("synflow", reference_bn="yes")


def test_log_synflow_edges():
    assert log_synflow(math.e) == pytest.approx(1.0)
    assert log_synflow(0.0) == float("-inf")
    with pytest.raises(FloatingPointError, match="overflowed"):
        log_synflow(float("inf"))


def test_scoring_a_model_leaves_pythons_random_stream_as_it_was(space):
    """Copying the model for scoring drew the layers' default seeds from Python's global ``random``, so a
    synflow score shifted the caller's later unseeded Keras initialisations."""
    import random

    model = space.build(space.decode(NB201_MIXED), num_classes=CLASSES, input_shape=SHAPE)
    batch = random_batch(np.random.default_rng(0), 2, SHAPE, CLASSES)
    random.seed(7)
    before = random.getstate()
    get_proxy("synflow").score(model, batch, np.random.default_rng(0))
    assert random.getstate() == before
