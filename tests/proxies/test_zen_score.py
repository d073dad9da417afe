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


def test_score_redraws_the_weights_from_its_generator_and_passes_its_options():
    """The model's own initial weights do not count (Zen re-draws them N(0, 1) from ``rng``); another
    generator gives another draw; the perturbation and BN-variance options reach the score."""
    space = ZenSpace(resolution=16)
    models = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        models.append(space.build(parse_arch(TINY), input_shape=(16, 16, 3)))
    assert not np.array_equal(models[0].get_weights()[0], models[1].get_weights()[0])
    batch = random_batch(np.random.default_rng(0), 8, (16, 16, 3), 10)

    def score(model, seed=1, **options):
        return ZenProxy(**options).score(model, batch, np.random.default_rng(seed))

    first = score(models[0])
    assert score(models[1]) == pytest.approx(first, abs=1e-5)  # other initial weights: the same re-draw
    assert abs(score(models[0], seed=2) - first) > 1e-3
    assert abs(score(models[0], perturbation=0.1) - first) > 1e-3
    assert abs(score(models[0], bn_variance="running") - first) > 1e-3


@pytest.mark.parametrize("name", ["zen", "incorporated_s"])
def test_the_zen_space_fast_path_passes_the_options(name):
    """Through ``score_arch`` on the Zen space (the evolution's path), each option is the fast
    function's; incorporated scores its Zen term the same way."""
    from tfnas.proxies.base import get_proxy
    from tfnas.proxies.fastpaths.zen import zen_score_arch

    space = ZenSpace(resolution=16)
    arch = parse_arch(TINY)
    entropy = space.entropy(arch, resolution=16)
    for options in ({}, {"perturbation": 0.1}, {"bn_variance": "running"}):
        proxy = get_proxy(name, **options)
        got = proxy.score_arch(space, arch, num_classes=10, input_shape=(16, 16, 3), batch_size=8,
                               rng=np.random.default_rng(4))
        zen = zen_score_arch(arch, np.random.default_rng(4), 8, (16, 16, 3), **options)
        expected = zen if name == "zen" else proxy.combine(zen, entropy)
        assert got == pytest.approx(expected, rel=1e-9)
        if options:
            assert abs(zen - zen_score_arch(arch, np.random.default_rng(4), 8, (16, 16, 3))) > 1e-3


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


def _bn_net(momentum: float) -> keras.Model:
    """conv -> BN -> ReLU, twice, then global pooling; ``momentum`` of every BN (Keras convention)."""
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for width in (4, 6):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3)(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_running_form_is_the_running_variance_after_the_two_training_passes():
    """``bn_variance="running"`` (the Zen-NAS code): each BN's log-std term is that of the running
    variance a fresh PyTorch BN (momentum 0.1, ``running_var`` 1) holds once the clean and the
    perturbed training-mode passes ran: ``0.9 + 0.1 v`` after the first, ``0.81 + 0.09 v + 0.1 v'``
    after both. Checked against Keras BNs with momentum 0.9 (Keras' name for PyTorch's 0.1) run
    like the reference runs its network; ``"batch"`` (the paper) uses ``v``."""
    model = _bn_net(momentum=0.9)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.inputs[0], [bn.input for bn in bns] + [bns[-1].output])
    rng = np.random.default_rng(0)
    images, noise = (rng.standard_normal((6, 8, 8, 3), dtype=np.float32) for _ in range(2))
    perturbed_images = images + np.float32(0.01) * noise

    def batch_variances(outputs):  # channel-mean biased batch variance of each BN input
        return np.array([np.mean(np.var(np.asarray(x, np.float64), axis=(0, 1, 2))) for x in outputs[:-1]])

    clean_out = probe(images, training=True)
    v = batch_variances(clean_out)
    after_one = np.array([np.mean(bn.moving_variance) for bn in bns])
    np.testing.assert_allclose(after_one, 0.9 + 0.1 * v, rtol=1e-5)
    perturbed_out = probe(perturbed_images, training=True)
    v_pert = batch_variances(perturbed_out)
    after_two = np.array([np.mean(bn.moving_variance) for bn in bns])
    np.testing.assert_allclose(after_two, 0.81 + 0.09 * v + 0.1 * v_pert, rtol=1e-5)

    features = np.maximum(np.asarray(clean_out[-1]), 0), np.maximum(np.asarray(perturbed_out[-1]), 0)
    log_delta = math.log(np.mean(np.sum(np.abs(features[0] - features[1]), axis=(1, 2, 3))))
    running = zen_score_keras(model, images, noise, bn_variance="running")  # same kernels (BN state unused)
    assert running == pytest.approx(log_delta + 0.5 * np.log(after_two).sum(), abs=1e-4)
    batch = zen_score_keras(model, images, noise, bn_variance="batch")
    assert batch == pytest.approx(log_delta + 0.5 * np.log(v).sum(), abs=1e-4)


def test_proxy_section_chooses_the_bn_variance():
    from tfnas.config import ConfigError, load_config
    from tfnas.run.factory import build_proxy

    cfg = load_config(None, ["proxy.zen_bn_variance=running"])
    assert build_proxy("zen", cfg).bn_variance == "running"
    assert build_proxy("incorporated_s", cfg).zen.bn_variance == "running"
    assert build_proxy("zen", load_config(None)).bn_variance == "batch"  # the paper's form is the default
    with pytest.raises(ConfigError, match="zen_bn_variance"):
        load_config(None, ["proxy.zen_bn_variance=moving"])
