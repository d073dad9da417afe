"""Tests of the NAS-Bench-201 fast paths of the proxies (tfnas.proxies.fastpaths.nb201).

Each NB201-capable proxy's traced arch-as-tensor path is checked against the generic Keras path
on the same weights (fast path == built model), for tracing once, and for its seeding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.proxies.nb201_setup import BATCH, CLASSES, SHAPE, fast_and_generic
from tests.spaces.archs import NB201_ALL_NONE, NB201_MIXED
from tfnas.proxies.base import get_proxy
from tfnas.proxies.fastpaths.nb201 import Nb201FastPath, nb201_fast_path, zen_body
from tfnas.proxies.grad_norm import GradNormProxy
from tfnas.proxies.zen import ZenProxy, zen_score_keras
from tfnas.spaces.nb201 import Nb201Space

pytestmark = pytest.mark.usefixtures("lighter_graph_optimisation")


@pytest.fixture(scope="module")
def proxies():
    """One instance per proxy for the module, so each fast path traces once."""
    return {name: get_proxy(name) for name in ("grad_norm", "naswot")}


def _inputs(seed: int, shape):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)


def test_one_trace_serves_every_cell():
    space = Nb201Space(channels=2, cells_per_stage=1)

    def body(network):
        def fn(op_ids, images):
            return tf.reduce_sum(network(images, op_ids, bn="batch"))

        return fn

    fast = Nb201FastPath(body)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2,) + SHAPE).astype(np.float32)
    outs = [fast(space, space.from_index(int(i)), num_classes=3, input_shape=SHAPE, rng=rng, inputs=(images,))
            for i in rng.choice(space.size, 25, replace=False)]
    assert fast.traces == 1
    assert len(set(np.round(outs, 6))) > 20  # different cells, different outputs


def test_synflow_fast_path_equals_keras_path_and_traces_once(space):
    proxy = get_proxy("synflow")
    for arch in (space.decode(NB201_MIXED), space.from_index(777)):
        generic, fast = fast_and_generic(proxy, space, arch)
        assert fast == pytest.approx(generic, rel=1e-9)
    rng = np.random.default_rng(0)
    scores = [proxy.score_arch(space, space.from_index(int(i)), num_classes=CLASSES, input_shape=SHAPE,
                               batch_size=BATCH, rng=rng) for i in rng.choice(space.size, 30, replace=False)]
    assert nb201_fast_path(proxy).traces == 1
    assert len(set(scores)) > 20
    # A cell whose output ignores the input has zero synaptic flow.
    assert proxy.score_arch(space, space.decode(NB201_ALL_NONE), num_classes=CLASSES, input_shape=SHAPE,
                            batch_size=BATCH, rng=rng) == float("-inf")


def test_grad_norm_layer_sum_fast_path_equals_keras_path(space):
    proxy = GradNormProxy(reduction="layer_sum")
    generic, fast = fast_and_generic(proxy, space, space.decode(NB201_MIXED))
    assert fast == pytest.approx(generic, rel=1e-5)
    assert nb201_fast_path(proxy).traces == 1


@pytest.mark.parametrize("name", ["grad_norm", "naswot"])
def test_fast_path_equals_keras_path(space, proxies, name):
    proxy = proxies[name]
    for arch in (space.decode(NB201_MIXED), space.from_index(9000)):
        generic, fast = fast_and_generic(proxy, space, arch)
        assert fast == pytest.approx(generic, rel=1e-5)
    assert nb201_fast_path(proxy).traces == 1


@pytest.mark.parametrize("name, cell", [("snip", NB201_MIXED), ("jacob_cov", NB201_MIXED),
                                        pytest.param("te_nas", NB201_MIXED, marks=pytest.mark.slow)]
                         + [pytest.param(name, 9000, marks=pytest.mark.slow)
                            for name in ("snip", "jacob_cov", "te_nas")])
def test_fast_path_equals_keras_path_of_the_gradient_proxies(space, name, cell):
    # the default run checks snip's and jacob_cov's fast paths on one cell of every op (te_nas' per-image
    # Jacobians take a minute and more to trace; its Keras path has a known-answer test); -m slow all on two cells
    proxy = get_proxy(name)
    arch = space.from_index(cell) if isinstance(cell, int) else space.decode(cell)
    generic, fast = fast_and_generic(proxy, space, arch)
    assert fast == pytest.approx(generic, rel=1e-4)


def test_same_seed_same_fast_path_scores(space, proxies):
    proxy, arch = proxies["naswot"], space.from_index(4242)

    def run(seed):
        return proxy.score_arch(space, arch, num_classes=CLASSES, input_shape=SHAPE, batch_size=BATCH,
                                rng=np.random.default_rng(seed))

    first, again, other = run(0), run(0), run(1)
    assert first == again
    assert first != other  # another batch of random images


def test_fresh_weights_redraw_per_cell_from_the_call_rng(space):
    proxy = get_proxy("synflow", fresh_weights=True)
    arch = space.decode(NB201_MIXED)

    def run(seed):
        return proxy.score_arch(space, arch, num_classes=CLASSES, input_shape=SHAPE, batch_size=1,
                                rng=np.random.default_rng(seed))

    first = run(0)
    assert run(0) == first and run(1) != first  # synflow's only randomness is the weights
    assert nb201_fast_path(proxy).traces == 1


def test_zen_on_nb201_arch_as_tensor_equals_the_keras_path():
    import tensorflow as tf

    from tfnas.spaces.nb201 import Nb201TensorNetwork, op_ids_of

    space = Nb201Space(channels=4, cells_per_stage=1)
    proxy = ZenProxy()
    net = Nb201TensorNetwork(10, (8, 8, 3), channels=4, cells_per_stage=1, seed=1, kernel_init="normal")
    body = tf.function(zen_body(proxy, net), autograph=False)
    for index in (0, 5000):  # conv, pooling and skip edges between them
        arch = space.from_index(index)
        model = space.build(arch, num_classes=10, input_shape=(8, 8, 3))
        rng = np.random.default_rng(index)
        for variable in model.trainable_variables:
            if variable.path.endswith("kernel"):
                variable.assign(rng.standard_normal(tuple(variable.shape)).astype(np.float32))
        net.load_keras_weights(model, arch)
        images, noise = _inputs(index, (6, 8, 8, 3))
        delta, log_std = body(tf.constant(op_ids_of(arch)), tf.constant(images), tf.constant(noise))
        fast = math.log(float(delta)) + float(log_std)
        assert np.isfinite(fast) and fast == pytest.approx(zen_score_keras(model, images, noise), abs=1e-4)
    # score_arch: one traced function for every cell; N(0, 1) kernels, drawn once per network shape.
    kw = dict(num_classes=10, input_shape=(8, 8, 3), batch_size=4)
    scores = [proxy.score_arch(space, space.from_index(i), rng=np.random.default_rng(i), **kw) for i in (7, 77, 777)]
    assert nb201_fast_path(proxy).traces == 1 and len(set(scores)) == 3
    assert nb201_fast_path(proxy).network(space, 10, (8, 8, 3), np.random.default_rng(0))[0].kernel_init == "normal"
    with pytest.raises(ValueError, match="fresh_weights"):
        ZenProxy(fresh_weights="yes")


def test_zen_on_nb201_through_the_fast_path_is_finite():
    nb201 = Nb201Space(channels=4, cells_per_stage=1)
    arch = nb201.decode(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    score = ZenProxy().score_arch(nb201, arch, num_classes=10, input_shape=(8, 8, 3), batch_size=4,
                                  rng=np.random.default_rng(0))
    assert np.isfinite(score)


def test_zen_with_running_variances_on_nb201_equals_the_keras_path():
    """The NB201 fast path of zen serves bn_variance="running" too (edges without BN add nothing)."""
    from tfnas.spaces.nb201 import Nb201TensorNetwork, op_ids_of

    space = Nb201Space(channels=4, cells_per_stage=1)
    proxy = ZenProxy(bn_variance="running")
    net = Nb201TensorNetwork(10, (8, 8, 3), channels=4, cells_per_stage=1, seed=1, kernel_init="normal")
    body = tf.function(zen_body(proxy, net), autograph=False)
    for arch in (space.decode(NB201_MIXED), space.from_index(5000)):
        model = space.build(arch, num_classes=10, input_shape=(8, 8, 3))
        rng = np.random.default_rng(3)
        for variable in model.trainable_variables:
            if variable.path.endswith("kernel"):
                variable.assign(rng.standard_normal(tuple(variable.shape)).astype(np.float32))
        net.load_keras_weights(model, arch)
        images, noise = _inputs(4, (6, 8, 8, 3))
        delta, log_std = body(tf.constant(op_ids_of(arch)), tf.constant(images), tf.constant(noise))
        fast = math.log(float(delta)) + float(log_std)
        keras_score = zen_score_keras(model, images, noise, bn_variance="running")
        assert np.isfinite(fast) and fast == pytest.approx(keras_score, abs=1e-4)
        assert keras_score != pytest.approx(zen_score_keras(model, images, noise), abs=1e-2)
    score = proxy.score_arch(space, space.decode(NB201_MIXED), num_classes=10, input_shape=(8, 8, 3), batch_size=4,
                             rng=np.random.default_rng(0))
    assert np.isfinite(score) and nb201_fast_path(proxy).traces == 1


def test_a_proxy_without_nb201_fast_path_has_no_cache():
    with pytest.raises(KeyError, match="no NAS-Bench-201 fast path"):
        nb201_fast_path(get_proxy("flops"))
