"""Tests of the classic zero-cost proxies (synflow, grad_norm, snip, naswot, te_nas, jacob_cov, baselines).

Each NB201-capable proxy is checked against its definition on tiny networks, against the
generic Keras path on the same NB201 weights (arch-as-tensor fast path == built model), and
for leaving the caller's model untouched.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.proxies.base import ProxyBatch, get_proxy, random_batch
from tfnas.proxies.grad_norm import GradNormProxy
from tfnas.proxies.baselines import count_macs, count_params
from tfnas.proxies.jacob_cov import jacobian_score
from tfnas.proxies.naswot import activation_kernel, log_abs_det, relu_inputs
from tfnas.proxies.synflow import log_synflow
from tfnas.proxies.te_nas import ntk_score
from tfnas.registry import PROXIES
from tfnas.spaces.nb201 import Nb201Space

SHAPE = (8, 8, 3)
CLASSES = 10
BATCH = 6
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
NAMES = ("synflow", "grad_norm", "snip", "naswot", "te_nas", "jacob_cov", "flops", "params", "random")


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    return Nb201Space(channels=4, cells_per_stage=1)


@pytest.fixture(scope="module", autouse=True)
def _lighter_graph_optimisation():
    """Grappler's first-run optimisation of the traced switch_case graphs costs more than the
    tiny test networks' runs; switch its meta-optimizer off for this module only."""
    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": previous.get("disable_meta_optimizer",
                                                                                         False)})


@pytest.fixture(scope="module")
def proxies():
    """One instance per proxy for the module, so each fast path traces once."""
    return {name: get_proxy(name) for name in NAMES}


def _snapshot(model):
    return [v.numpy().copy() for v in model.variables]


def _fast_and_generic(proxy, space, arch, seed=5):
    """(generic score on the built model, fast-path score with the model's weights), same batch."""
    model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
    generic = proxy.score(model, random_batch(np.random.default_rng(seed), BATCH, SHAPE, CLASSES),
                          np.random.default_rng(1))
    network, _ = proxy.nb201.network(space, CLASSES, SHAPE, np.random.default_rng(0))
    network.load_keras_weights(model, arch)
    fast = proxy.score_arch(space, arch, num_classes=CLASSES, input_shape=SHAPE, batch_size=BATCH,
                            rng=np.random.default_rng(seed))
    return generic, fast


def test_all_registered_with_names():
    for name in NAMES:
        assert name in PROXIES
        proxy = get_proxy(name)
        assert proxy.name == name


# ---- synflow ------------------------------------------------------------------------------


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
    before = _snapshot(model)
    assert get_proxy("synflow").score(model, batch, rng) == pytest.approx(expected, rel=1e-12)
    for old, new in zip(before, _snapshot(model)):
        np.testing.assert_array_equal(old, new)


def test_synflow_fast_path_equals_keras_path_and_traces_once(space):
    proxy = get_proxy("synflow")
    for arch in (space.decode(MIXED), space.from_index(777)):
        generic, fast = _fast_and_generic(proxy, space, arch)
        assert fast == pytest.approx(generic, rel=1e-9)
    rng = np.random.default_rng(0)
    scores = [proxy.score_arch(space, space.from_index(int(i)), num_classes=CLASSES, input_shape=SHAPE,
                               batch_size=BATCH, rng=rng) for i in rng.choice(space.size, 30, replace=False)]
    assert proxy.nb201.traces == 1
    assert len(set(scores)) > 20
    # A cell whose output ignores the input has zero synaptic flow.
    assert proxy.score_arch(space, space.decode(ALL_NONE), num_classes=CLASSES, input_shape=SHAPE,
                            batch_size=BATCH, rng=rng) == float("-inf")


def test_synflow_bn_handling_follows_the_reference(space):
    """reference_bn keeps batch-statistics BN in the reduction blocks only; it changes the score."""
    arch = space.decode(MIXED)
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


# ---- loss-gradient proxies ----------------------------------------------------------------


def _softmax_regression():
    """Dense-only model: the CE gradient has the closed form X^T (softmax - onehot) / B."""
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, use_bias=False)])
    w = rng.standard_normal((6, 4)).astype(np.float32)
    model.set_weights([w])
    x = rng.standard_normal((5, 6)).astype(np.float32)
    y = np.array([0, 3, 1, 1, 2], np.int32)
    logits = x.astype(np.float64) @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = x.T.astype(np.float64) @ (p - np.eye(4)[y]) / len(y)
    return model, ProxyBatch(x, y, 4), w.astype(np.float64), grad


def test_grad_norm_and_snip_match_closed_form():
    model, batch, w, grad = _softmax_regression()
    rng = np.random.default_rng(0)
    assert get_proxy("grad_norm").score(model, batch, rng) == pytest.approx(np.sqrt((grad**2).sum()), rel=1e-5)
    assert get_proxy("snip").score(model, batch, rng) == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)


def test_grad_norm_reductions_match_closed_form_on_two_linear_layers():
    """logits = x W1 W2: dL/dW2 = (x W1)^T G / B and dL/dW1 = x^T G W2^T / B with G = softmax - onehot."""
    rng = np.random.default_rng(4)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, use_bias=False),
                              keras.layers.Dense(4, use_bias=False)])
    w1, w2 = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    model.set_weights([w1, w2])
    x = rng.standard_normal((7, 6)).astype(np.float32)
    y = rng.integers(0, 4, 7).astype(np.int32)
    h = x.astype(np.float64) @ w1
    logits = h @ w2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(4)[y]) / len(y)
    n1, n2 = np.linalg.norm(x.T @ g @ w2.T.astype(np.float64)), np.linalg.norm(h.T @ g)
    batch = ProxyBatch(x, y, 4)
    assert GradNormProxy().score(model, batch, rng) == pytest.approx(math.hypot(n1, n2), rel=1e-5)
    assert GradNormProxy(reduction="layer_sum").score(model, batch, rng) == pytest.approx(n1 + n2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction must be one of global, layer_sum"):
        GradNormProxy(reduction="mean")


def test_grad_norm_layer_sum_fast_path_equals_keras_path(space):
    proxy = GradNormProxy(reduction="layer_sum")
    generic, fast = _fast_and_generic(proxy, space, space.decode(MIXED))
    assert fast == pytest.approx(generic, rel=1e-5)
    assert proxy.nb201.traces == 1


@pytest.mark.parametrize("name", ["grad_norm", "naswot"])
def test_fast_path_equals_keras_path(space, proxies, name):
    proxy = proxies[name]
    for arch in (space.decode(MIXED), space.from_index(9000)):
        generic, fast = _fast_and_generic(proxy, space, arch)
        assert fast == pytest.approx(generic, rel=1e-5)
    assert proxy.nb201.traces == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["snip", "jacob_cov", "te_nas"])
def test_fast_path_equals_keras_path_slow(space, name):
    proxy = get_proxy(name)
    for arch in (space.decode(MIXED), space.from_index(9000)):
        generic, fast = _fast_and_generic(proxy, space, arch)
        assert fast == pytest.approx(generic, rel=1e-4)


@pytest.mark.parametrize("name", ["grad_norm", "snip", "naswot", "jacob_cov", "te_nas", "synflow"])
def test_caller_model_is_left_unchanged(space, name):
    model = space.build(space.decode(MIXED), num_classes=CLASSES, input_shape=SHAPE)
    before = _snapshot(model)
    score = get_proxy(name).score(model, random_batch(np.random.default_rng(0), BATCH, SHAPE, CLASSES),
                                  np.random.default_rng(0))
    assert math.isfinite(score)
    for var, old in zip(model.variables, before):
        np.testing.assert_array_equal(var.numpy(), old, err_msg=var.path)


def test_same_seed_same_fast_path_scores(space, proxies):
    proxy, arch = proxies["naswot"], space.from_index(4242)

    def run(seed):
        return proxy.score_arch(space, arch, num_classes=CLASSES, input_shape=SHAPE, batch_size=BATCH,
                                rng=np.random.default_rng(seed))

    first, again, other = run(0), run(0), run(1)
    assert first == again
    assert first != other  # another batch of random images


# ---- jacob_cov, te_nas, naswot formulas ---------------------------------------------------


def test_jacobian_score_formula():
    k = 1e-5
    # Zero-mean, mutually orthogonal rows: the correlation matrix is the identity.
    rows = np.array([[1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], np.float64)
    assert jacobian_score(rows) == pytest.approx(-3 * (np.log(1 + k) + 1 / (1 + k)))
    # Identical rows are perfectly correlated: eigenvalues (3, 0, 0).
    same = np.tile([[1.0, 2.0, 4.0]], (3, 1))
    expected = -(np.log(3 + k) + 1 / (3 + k)) - 2 * (np.log(k) + 1 / k)
    assert jacobian_score(same) == pytest.approx(expected, rel=1e-6)
    assert jacobian_score(np.ones((3, 4))) == float("-inf")
    with pytest.raises(ValueError, match="B >= 2"):
        jacobian_score(np.ones((1, 4)))


def test_jacob_cov_uses_the_input_gradient_of_the_summed_logits():
    """For logits (x W)^2 the Jacobian row of image x is 2 W (x W)^T."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False),
                              keras.layers.Activation(keras.ops.square)])
    model.set_weights([w])
    x = rng.standard_normal((4, 5)).astype(np.float32)
    rows = 2.0 * (x.astype(np.float64) @ w) @ w.T.astype(np.float64)
    score = get_proxy("jacob_cov").score(model, ProxyBatch(x, np.zeros(4, np.int32), 3), rng)
    assert score == pytest.approx(jacobian_score(rows), rel=1e-4)


def test_ntk_score_formula():
    assert ntk_score(np.diag([2.0, 8.0, 4.0])) == pytest.approx(-4.0)
    assert ntk_score(np.ones((3, 3))) == float("-inf")
    with pytest.raises(ValueError, match="square"):
        ntk_score(np.ones((2, 3)))


def test_naswot_kernel_counts_agreements():
    # Two ReLU inputs, three images. Codes of the first: [1,0], [1,1], [0,0].
    first = np.array([[0.5, -1.0], [2.0, 0.1], [-3.0, 0.0]])
    second = np.array([[1.0], [1.0], [-1.0]])
    kernel = activation_kernel([first, second])
    expected = np.array([[2, 1, 1], [1, 2, 0], [1, 0, 2]]) + np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(kernel, expected)
    assert log_abs_det(kernel) == pytest.approx(np.log(abs(np.linalg.det(expected))))
    assert log_abs_det(np.ones((2, 2))) == float("-inf")


def test_relu_inputs_finds_relus_inside_custom_layers(space):
    arch = space.decode(MIXED)  # 3 conv edges per cell, 1 cell per stage
    model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
    images = np.random.default_rng(0).standard_normal((2,) + SHAPE).astype(np.float32)
    found = relu_inputs(model, images)
    assert len(found) == 3 * 3 + 2 * 2 + 1  # cell convs + reduction conv_a/conv_b + head
    with pytest.raises(ValueError, match="applies no ReLU"):
        relu_inputs(keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(2)]), images)


# ---- baselines ----------------------------------------------------------------------------


def test_params_and_flops_analytic_agree_with_the_model(space):
    for arch in (space.decode(MIXED), space.from_index(321)):
        model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
        batch = random_batch(np.random.default_rng(0), 1, SHAPE, CLASSES)
        kw = dict(num_classes=CLASSES, input_shape=SHAPE, batch_size=1, rng=np.random.default_rng(0))
        params = get_proxy("params")
        assert params.score_arch(space, arch, **kw) == space.num_params(arch, num_classes=CLASSES)
        assert params.score(model, batch, None) == count_params(model) == space.num_params(arch, num_classes=CLASSES)
        flops = get_proxy("flops")
        assert flops.score_arch(space, arch, **kw) == space.flops(arch, input_shape=SHAPE, num_classes=CLASSES)
        # The analytic count adds the classifier's bias additions; the graph count has MACs only.
        assert count_macs(model, SHAPE) == space.flops(arch, input_shape=SHAPE, num_classes=CLASSES) - CLASSES
        assert flops.score(model, batch, None) == count_macs(model, SHAPE)


def test_published_nb201_size_range():
    """NB201 CIFAR-10 FLOPs range 7.78305M .. 220.11969M and 1,531,546 parameters (all 3x3 convs)."""
    space = Nb201Space()
    kw = dict(num_classes=10, input_shape=(32, 32, 3), batch_size=1, rng=np.random.default_rng(0))
    conv = space.decode("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                        "nor_conv_3x3~2|")
    assert get_proxy("flops").score_arch(space, conv, **kw) == 220119690
    assert get_proxy("flops").score_arch(space, space.decode(ALL_NONE), **kw) == 7783050
    assert get_proxy("params").score_arch(space, conv, **kw) == 1531546


def test_random_is_seeded_and_ignores_the_network(space):
    proxy = get_proxy("random")
    kw = dict(num_classes=CLASSES, input_shape=SHAPE, batch_size=1)
    a = [proxy.score_arch(space, space.from_index(i), rng=np.random.default_rng(7), **kw) for i in (0, 1)]
    assert a[0] == a[1] == np.random.default_rng(7).random()
    assert 0.0 <= a[0] < 1.0


@pytest.mark.slow
def test_fresh_weights_redraw_per_cell_from_the_call_rng(space):
    proxy = get_proxy("synflow", fresh_weights=True)
    arch = space.decode(MIXED)

    def run(seed):
        return proxy.score_arch(space, arch, num_classes=CLASSES, input_shape=SHAPE, batch_size=1,
                                rng=np.random.default_rng(seed))

    first = run(0)
    assert run(0) == first and run(1) != first  # synflow's only randomness is the weights
    assert proxy.nb201.traces == 1
