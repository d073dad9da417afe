"""Tests of the Zen-space fast paths of the proxies (tfnas.proxies.fastpaths.zen): the residual-free
network scored without a Keras model per candidate equals the Keras path, and never retraces."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tfnas.proxies.base import ProxyBatch, get_proxy, random_batch
from tfnas.proxies.fastpaths.zen import zen_score_arch, zen_score_fast
from tfnas.proxies.zen import ZenProxy, zen_score_keras
from tfnas.spaces.zen import DEFAULT_START, ZenSpace, parse_arch, residual_free

from tests.spaces.archs import ZEN_MIXED as MIXED

TINY = "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,2,8,1)SuperConvK1BNRELU(16,32,1,1)"


def _inputs(seed: int, shape=(8, 16, 16, 3)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)


@pytest.mark.parametrize("text", [TINY, MIXED], ids=["tiny", "mixed"])
@pytest.mark.parametrize("bn_variance", ["batch", "running"])
def test_fast_path_equals_keras(text, bn_variance):
    arch = parse_arch(text)
    weights = residual_free.draw_weights(arch, np.random.default_rng(1))
    images, noise = _inputs(2)
    fast = zen_score_fast(arch, weights, images, noise, bn_variance=bn_variance)
    model = residual_free.build_plain_model(arch, weights, input_shape=(16, 16, 3))
    keras_score = zen_score_keras(model, images, noise, bn_variance=bn_variance)
    assert np.isfinite(fast) and fast == pytest.approx(keras_score, abs=1e-4)


def test_plain_forward_features_and_groups():
    arch = parse_arch(MIXED)
    weights = residual_free.draw_weights(arch, np.random.default_rng(0))
    images, noise = _inputs(3)
    single = residual_free.plain_forward(arch, weights, images)
    model = residual_free.build_plain_model(arch, weights, input_shape=(16, 16, 3))
    pool = model.get_layer("global_pool")
    features = keras.Model(model.inputs[0], pool.input)(images, training=True).numpy()
    np.testing.assert_allclose(single.features, features, atol=1e-4)
    assert single.features.shape == (8, 2, 2, 48) and single.variances.shape == (len(residual_free.conv_plan(arch)), 1)
    pair = residual_free.plain_forward(arch, weights, np.concatenate([images, images + noise]), groups=2)
    other = residual_free.plain_forward(arch, weights, images + noise)
    np.testing.assert_allclose(pair.features[:8], single.features, atol=1e-5)
    np.testing.assert_allclose(pair.features[8:], other.features, atol=1e-5)
    np.testing.assert_allclose(pair.variances[:, 1], other.variances[:, 0], rtol=1e-5)
    assert np.all(np.isfinite(single.log_std()))
    with pytest.raises(ValueError, match="kernels"):
        residual_free.plain_forward(arch, weights[:-1], images)
    with pytest.raises(ValueError, match="groups"):
        residual_free.plain_forward(arch, weights, images, groups=3)


def test_zen_score_sign_width_and_determinism():
    space = ZenSpace(resolution=16)
    narrow = space.start_arch
    wide = parse_arch(DEFAULT_START.replace("(3,8,1,1)", "(3,32,1,1)").replace("(8,16,1,8,1)", "(32,64,1,32,1)")
                      .replace("(16,32,2,16,1)", "(64,128,2,64,1)").replace("(32,64,2,32,1)", "(128,256,2,128,1)")
                      .replace("(64,64,2,32,1)", "(256,256,2,128,1)").replace("(64,128,1,1)", "(256,512,1,1)"))
    scores = [zen_score_arch(a, np.random.default_rng(5), batch_size=8, input_shape=(16, 16, 3))
              for a in (narrow, wide)]
    assert 0 < scores[0] < scores[1] and all(np.isfinite(scores))  # each BN adds ~log sqrt(cin k^2 / 2)
    again = zen_score_arch(narrow, np.random.default_rng(5), batch_size=8, input_shape=(16, 16, 3))
    assert again == scores[0]
    proxy = ZenProxy()
    via_proxy = proxy.score_arch(space, narrow, num_classes=10, input_shape=(16, 16, 3), batch_size=8,
                                 rng=np.random.default_rng(5))
    assert via_proxy == scores[0]  # score_arch of the zen space is the fast, residual-free path


def test_traces_stay_bounded():
    space = ZenSpace(start=MIXED, resolution=8)
    mobile = ZenSpace(start=MIXED, family="mobile", resolution=8)
    zen_score_arch(space.start_arch, np.random.default_rng(0), batch_size=4, input_shape=(8, 8, 3))
    traced = residual_free.trace_count("zen")  # other files' tests in this worker may have traced other kinds
    rng = np.random.default_rng(1)
    seen = set()
    for i in range(24):
        arch = (space if i % 2 else mobile).sample(rng)
        seen.add(space.encode(arch))
        assert np.isfinite(zen_score_arch(arch, rng, batch_size=4 + i % 3, input_shape=(8, 8, 3)))
    assert len(seen) >= 16  # many distinct candidates (20 with this seed)
    assert residual_free.trace_count("zen") == traced  # new channels, kernels, batch sizes: no retrace
    with pytest.raises(ValueError, match="kind"):
        residual_free.trace_count("zenn")
    assert traced <= 8  # at most one trace per (layer kind, groups): 4 kinds x groups 1 or 2


def _plain_model_with(arch, weights, dense):
    model = residual_free.build_plain_model(arch, weights, num_classes=dense.shape[1], input_shape=(16, 16, 3))
    model.get_layer("classifier").kernel.assign(dense.astype(np.float32))
    return model


@pytest.mark.parametrize("text", [TINY, MIXED], ids=["tiny", "mixed"])
def test_synflow_closed_form_equals_the_gradient_computation(text):
    arch = parse_arch(text)
    rng = np.random.default_rng(3)
    weights = residual_free.draw_weights(arch, rng)
    dense = rng.standard_normal((arch[-1].cout, 10))
    fast = residual_free.plain_log_synflow(arch, weights, dense, (16, 16, 3))
    # The generic path: float64 copy, |w|, BN removed, all-ones image, gradient of the summed logits.
    batch = random_batch(rng, 4, (16, 16, 3), 10)
    keras_score = get_proxy("synflow").score(_plain_model_with(arch, weights, dense), batch, rng)
    assert np.isfinite(fast) and fast == pytest.approx(keras_score, abs=1e-7)  # the Keras classifier is float32


def test_synflow_fast_path_is_homogeneous_and_cannot_overflow():
    arch = parse_arch(MIXED)
    rng = np.random.default_rng(0)
    weights = residual_free.draw_weights(arch, rng)
    dense = rng.standard_normal((arch[-1].cout, 10))
    base = residual_free.plain_log_synflow(arch, weights, dense, (16, 16, 3))
    # Every kernel times 1e30: S grows by 1e30 per layer (R is linear in each layer's kernel).
    # Without the per-layer rescaling R would be ~1e450 here, beyond float64.
    big = [w.astype(np.float64) * 1e30 for w in weights]
    scaled = residual_free.plain_log_synflow(arch, big, dense, (16, 16, 3))
    assert len(weights) * 30 * math.log(10) > math.log(np.finfo(np.float64).max)
    assert scaled == pytest.approx(base + len(weights) * 30 * math.log(10), rel=1e-12)
    with pytest.raises(ValueError, match="dense_kernel"):
        residual_free.plain_log_synflow(arch, weights, dense.T, (16, 16, 3))


def test_synflow_score_arch_on_the_zen_space_is_the_fast_path():
    space = ZenSpace(start=MIXED, resolution=16)
    arch = space.start_arch
    score = get_proxy("synflow").score_arch(space, arch, num_classes=10, input_shape=(16, 16, 3), batch_size=8,
                                            rng=np.random.default_rng(7))
    rng = np.random.default_rng(7)  # the same draws in the same order: kernels, then the classifier
    weights = residual_free.draw_weights(arch, rng)
    dense = rng.standard_normal((arch[-1].cout, 10))
    assert score == residual_free.plain_log_synflow(arch, weights, dense, (16, 16, 3))


@pytest.mark.parametrize("text", [TINY, MIXED], ids=["tiny", "mixed"])
def test_naswot_fast_path_equals_keras(text):
    from tfnas.proxies.naswot import log_abs_det

    arch = parse_arch(text)
    rng = np.random.default_rng(4)
    weights = residual_free.draw_weights(arch, rng)
    images = rng.standard_normal((8, 16, 16, 3), dtype=np.float32)
    forward = residual_free.plain_forward(arch, weights, images, codes=True)
    # Each image agrees with itself on every unit of every ReLU (one ReLU per convolution).
    units, size = 0, 16
    for conv in residual_free.conv_plan(arch):
        size = conv.out_size(size)
        units += size * size * conv.cout
    assert forward.agreement.shape == (8, 8)
    np.testing.assert_array_equal(np.diag(forward.agreement), units)
    np.testing.assert_array_equal(forward.agreement, forward.agreement.T)
    model = residual_free.build_plain_model(arch, weights, input_shape=(16, 16, 3))
    keras_score = get_proxy("naswot").score(model, ProxyBatch(images, np.zeros(8, np.int32), 10), rng)
    assert log_abs_det(forward.agreement) == pytest.approx(keras_score, abs=1e-6)
    with pytest.raises(ValueError, match="codes=True"):
        residual_free.plain_forward(arch, weights, np.concatenate([images, images]), groups=2, codes=True)


def test_naswot_score_arch_on_the_zen_space_is_the_fast_path():
    from tfnas.proxies.naswot import log_abs_det

    space = ZenSpace(start=TINY, resolution=16)
    arch = space.start_arch
    score = get_proxy("naswot").score_arch(space, arch, num_classes=10, input_shape=(16, 16, 3), batch_size=6,
                                           rng=np.random.default_rng(2))
    rng = np.random.default_rng(2)  # kernels, then images
    weights = residual_free.draw_weights(arch, rng)
    images = rng.standard_normal((6, 16, 16, 3), dtype=np.float32)
    assert np.isfinite(score) and score == log_abs_det(residual_free.plain_forward(arch, weights, images, codes=True).agreement)
    with pytest.raises(ValueError, match="batch_size"):
        get_proxy("naswot").score_arch(space, arch, num_classes=10, input_shape=(16, 16, 3), batch_size=1,
                                       rng=np.random.default_rng(2))


@pytest.mark.parametrize("name, options", [("grad_norm", {}), ("grad_norm", {"reduction": "layer_sum"}),
                                           ("snip", {})], ids=["grad_norm", "grad_norm_layer_sum", "snip"])
def test_loss_gradient_fast_path_equals_keras(name, options):
    arch = parse_arch(MIXED)
    rng = np.random.default_rng(6)
    weights = residual_free.draw_weights(arch, rng)
    dense = rng.standard_normal((arch[-1].cout, 10)).astype(np.float32)
    batch = random_batch(rng, 8, (16, 16, 3), 10)
    grads = residual_free.plain_loss_gradients(arch, weights, dense, batch.images, batch.labels)
    assert len(grads) == len(weights) + 1 and grads[-1].shape == dense.shape
    proxy = get_proxy(name, **options)
    kernels = [np.asarray(w, np.float64) for w in weights] + [dense.astype(np.float64)]
    fast = proxy.score_gradients(kernels, grads)
    keras_score = proxy.score(_plain_model_with(arch, weights, dense), batch, rng)
    assert fast > 0 and fast == pytest.approx(keras_score, rel=1e-5)
    # score_arch on the zen space draws kernels, classifier, then the batch, and takes this path.
    space = ZenSpace(start=MIXED, resolution=16)
    via_space = proxy.score_arch(space, arch, num_classes=10, input_shape=(16, 16, 3), batch_size=8,
                                 rng=np.random.default_rng(6))
    assert via_space == fast
    with pytest.raises(ValueError, match="labels"):
        residual_free.plain_loss_gradients(arch, weights, dense, batch.images, batch.labels[:3])


def test_other_proxies_score_the_residual_free_network_of_the_zen_space():
    built = []

    class RecordingSpace(ZenSpace):
        def build(self, arch, num_classes=None, input_shape=None, **kwargs):
            built.append(kwargs)
            return super().build(arch, num_classes, input_shape, **kwargs)

    space = RecordingSpace(start=TINY, resolution=8)
    score = get_proxy("jacob_cov").score_arch(space, space.start_arch, num_classes=10, input_shape=(8, 8, 3),
                                              batch_size=4, rng=np.random.default_rng(0))
    assert np.isfinite(score) and built == [{"residual": False}]


def test_fast_paths_of_other_proxies_do_not_retrace():
    space = ZenSpace(start=MIXED, resolution=8)
    kw = dict(num_classes=10, input_shape=(8, 8, 3), batch_size=4)
    proxies = [get_proxy(name) for name in ("synflow", "naswot", "grad_norm", "snip")]
    rng = np.random.default_rng(0)
    for proxy in proxies:  # warm up: one trace per (kind, layer kind) used by MIXED
        proxy.score_arch(space, space.start_arch, rng=rng, **kw)
    traced = residual_free.trace_count()
    archs = {space.encode(space.sample(rng)) for _ in range(12)}
    for text in sorted(archs):
        for proxy in proxies:
            assert np.isfinite(proxy.score_arch(space, space.decode(text), rng=rng, **kw))
    assert len(archs) >= 8 and residual_free.trace_count() == traced  # MIXED used every layer kind already
