"""Tests of the Zen score on Keras networks (tfnas.proxies.zen)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tfnas.proxies.base import random_batch
from tfnas.proxies.zen import ZenProxy, zen_from_passes, zen_score_keras
from tfnas.spaces.zen import ZenSpace, parse_arch

TINY = "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,2,8,1)SuperConvK1BNRELU(16,32,1,1)"


def test_options_are_checked():
    with pytest.raises(ValueError, match="bn_variance"):
        ZenProxy(bn_variance="moving")
    with pytest.raises(ValueError, match="perturbation"):
        ZenProxy(perturbation=0.0)


def test_zen_formula_by_hand():
    clean = np.zeros((2, 1, 1, 2))
    perturbed = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 1, 1, 2)  # per-sample sums 3 and 7 -> Delta 5
    variances, perturbed_variances = np.array([4.0, 9.0]), np.array([1.0, 1.0])
    assert zen_from_passes(clean, perturbed, variances, perturbed_variances) == pytest.approx(
        math.log(5) + math.log(2) + math.log(3))
    running = 0.81 + 0.09 * variances + 0.1 * perturbed_variances
    assert zen_from_passes(clean, perturbed, variances, perturbed_variances, "running") == pytest.approx(
        math.log(5) + 0.5 * np.log(running).sum())
    assert zen_from_passes(clean, clean, variances, variances) == float("-inf")  # Delta = 0


def test_score_leaves_the_model_alone():
    space = ZenSpace(resolution=16)
    model = space.build(parse_arch(TINY), input_shape=(16, 16, 3))
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    batch = random_batch(rng, 8, (16, 16, 3), 10)
    first = ZenProxy().score(model, batch, np.random.default_rng(1))
    second = ZenProxy().score(model, batch, np.random.default_rng(1))
    assert np.isfinite(first) and first == second
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_subclassed_model_needs_the_pre_pool_hook():
    """A subclassed model gives its features through ``pre_pool_features``; without it Zen says so."""

    class Plain(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(4, 3, padding="same")
            self.bn = keras.layers.BatchNormalization()
            self.pool = keras.layers.GlobalAveragePooling2D()

        def build(self, input_shape):
            self.conv.build(input_shape)
            self.bn.build(tuple(input_shape[:-1]) + (4,))

        def call(self, inputs, training=None):
            return self.pool(self.bn(self.conv(inputs), training=training))

        def get_config(self):
            return {"name": self.name}

        @property
        def input_shape(self):
            return (None, 8, 8, 3)

    class Hooked(Plain):
        def pre_pool_features(self, inputs, training=None):
            return self.bn(self.conv(inputs), training=training)

    rng = np.random.default_rng(0)
    images, noise = (rng.standard_normal((4, 8, 8, 3), dtype=np.float32) for _ in range(2))
    plain = Plain()
    plain(images)
    with pytest.raises(ValueError, match="pre_pool_features"):
        zen_score_keras(plain, images, noise)
    hooked = Hooked()
    hooked(images)
    functional = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same"),
                                   keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D()])
    functional.set_weights(hooked.get_weights())
    assert np.isfinite(zen_score_keras(hooked, images, noise))
    assert zen_score_keras(hooked, images, noise) == pytest.approx(zen_score_keras(functional, images, noise),
                                                                   rel=1e-6)
