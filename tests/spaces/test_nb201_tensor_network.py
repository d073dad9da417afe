"""Tests of the arch-as-tensor NAS-Bench-201 network (tfnas.spaces.nb201.tensor_network)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.spaces.archs import NB201_ALL_NONE, NB201_MIXED
from tfnas.spaces.nb201 import OPS, Nb201Arch, Nb201Space
from tfnas.spaces.nb201 import CONV_OPS, Nb201TensorNetwork, op_ids_of

SHAPE = (8, 8, 3)
CLASSES = 7


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    return Nb201Space(channels=4, cells_per_stage=2)


@pytest.fixture(scope="module")
def network() -> Nb201TensorNetwork:
    return Nb201TensorNetwork(CLASSES, SHAPE, channels=4, cells_per_stage=2, seed=3)


def _perturb_batchnorm(model, rng: np.random.Generator) -> None:
    """Non-trivial BN weights and statistics, so the comparison covers every BN input."""
    for var in model.variables:
        if var.path.rsplit("/", 1)[-1] in ("gamma", "beta", "moving_mean", "moving_variance"):
            var.assign(rng.uniform(0.5, 1.5, var.shape).astype(np.float32))


@pytest.mark.parametrize("arch_str", [NB201_MIXED, NB201_ALL_NONE,
                                      "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
                                      "nor_conv_3x3~1|nor_conv_3x3~2|", 5000, 11111])
def test_same_logits_as_keras_build(space, network, arch_str):
    arch = space.from_index(arch_str) if isinstance(arch_str, int) else space.decode(arch_str)
    rng = np.random.default_rng(0)
    model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
    _perturb_batchnorm(model, rng)
    network.load_keras_weights(model, arch)
    images = rng.standard_normal((3,) + SHAPE).astype(np.float32)
    ids = op_ids_of(arch)
    np.testing.assert_allclose(network(images, ids, bn="moving").numpy(), model(images, training=False).numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(network(images, ids, bn="batch").numpy(), model(images, training=True).numpy(),
                               rtol=1e-4, atol=1e-4)


def test_batch_mode_never_updates_moving_statistics(network):
    before = {n: v.numpy().copy() for n, v in network.weights.items()}
    network(np.ones((2,) + SHAPE, np.float32), np.array([3] * 6, np.int32), bn="batch")
    for name, var in network.weights.items():
        np.testing.assert_array_equal(var.numpy(), before[name], err_msg=name)


def test_bn_off_is_identity_and_modes_differ(network):
    x = np.random.default_rng(1).standard_normal((2,) + SHAPE).astype(np.float32)
    ids = np.array([3, 2, 1, 3, 4, 3], np.int32)
    outs = {mode: network(x, ids, bn=mode).numpy() for mode in ("moving", "batch", "off")}
    assert not np.allclose(outs["off"], outs["batch"]) and not np.allclose(outs["moving"], outs["batch"])
    # "off" reads no BatchNorm parameter at all; "moving" reads them (the fresh ones are nearly an identity)
    saved = {n: v.numpy().copy() for n, v in network.weights.items()}
    values = {"moving_mean": 0.5, "moving_variance": 4.0, "gamma": 2.0, "beta": 0.1}
    try:
        for name, var in network.weights.items():
            leaf = name.rsplit("/", 1)[-1]
            if leaf in values:
                var.assign(np.full(var.shape, values[leaf], np.float32))
        np.testing.assert_array_equal(network(x, ids, bn="off").numpy(), outs["off"])
        assert not np.allclose(network(x, ids, bn="moving").numpy(), outs["moving"])
    finally:
        for name, var in network.weights.items():
            var.assign(saved[name])
    with pytest.raises(ValueError, match="bn must be one of"):
        network(x, ids, bn="train")


def test_kernels_in_use_follow_the_cell(network):
    arch = Nb201Space().decode(NB201_MIXED)
    used = dict(zip(network.kernel_names, [bool(u) for u in network.kernels_in_use(op_ids_of(arch))]))
    assert used["stem_conv/kernel"] and used["classifier/kernel"] and used["reduction2/shortcut_conv/kernel"]
    for stage in range(3):
        for cell in range(2):
            for edge, op in enumerate(arch.ops):
                for op_id in CONV_OPS:
                    name = network.edge_kernel_name(stage, cell, edge, op_id)
                    assert used[name] == (OPS[op_id] == op), name
    # 2 kernels per edge x 6 edges x 2 cells x 3 stages + stem + 2 x 3 reduction + classifier.
    assert len(network.kernel_names) == 2 * 6 * 2 * 3 + 1 + 6 + 1


def test_redraw_touches_only_used_kernels_and_is_deterministic():
    net = Nb201TensorNetwork(CLASSES, SHAPE, channels=4, cells_per_stage=1, seed=0)
    arch = Nb201Space().decode(NB201_MIXED)
    ids = op_ids_of(arch)
    before = {n: net.weights[n].numpy().copy() for n in net.kernel_names}
    net.redraw(ids, np.array([5, 9], np.int64))
    first = {n: net.weights[n].numpy().copy() for n in net.kernel_names}
    used = dict(zip(net.kernel_names, [bool(u) for u in net.kernels_in_use(ids)]))
    for name in net.kernel_names:
        assert (not np.array_equal(first[name], before[name])) == used[name], name
    net.initialize(1)
    net.redraw(ids, np.array([5, 9], np.int64))
    for name in net.kernel_names:
        if used[name]:
            np.testing.assert_array_equal(net.weights[name].numpy(), first[name], err_msg=name)


def test_initialisation_matches_keras_he_normal_and_glorot():
    net = Nb201TensorNetwork(100, (32, 32, 3), seed=0)
    kernel = net.weights["stage2_cell4_e23_nor_conv_3x3/conv/kernel"].numpy()  # 3x3x64x64
    std = np.sqrt(2.0 / (9 * 64))
    assert abs(kernel.std() / std - 1.0) < 0.02
    assert np.abs(kernel).max() <= 2 * std / 0.87962566103423978 + 1e-7  # truncated at 2 sigma
    dense = net.weights["classifier/kernel"].numpy()
    limit = np.sqrt(6.0 / (64 + 100))
    assert np.abs(dense).max() <= limit and np.abs(dense).max() > 0.9 * limit
    assert not net.weights["classifier/bias"].numpy().any()
    np.testing.assert_array_equal(net.weights["head_bn/gamma"].numpy(), np.ones(64, np.float32))
    # Same seed, same weights; another seed, other weights.
    again = Nb201TensorNetwork(100, (32, 32, 3), channels=16, cells_per_stage=1, seed=0)
    np.testing.assert_array_equal(again.weights["stem_conv/kernel"].numpy(), net.weights["stem_conv/kernel"].numpy())
    other = Nb201TensorNetwork(100, (32, 32, 3), channels=16, cells_per_stage=1, seed=1)
    assert not np.array_equal(other.weights["stem_conv/kernel"].numpy(), net.weights["stem_conv/kernel"].numpy())


def test_rejects_bad_arguments(space, network):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        Nb201TensorNetwork(10, SHAPE, dtype=tf.float16)
    with pytest.raises(ValueError, match="divisible by 4"):
        Nb201TensorNetwork(10, (10, 10, 3))
    with pytest.raises(ValueError, match="num_classes"):
        Nb201TensorNetwork(0, SHAPE)
    with pytest.raises(TypeError, match="Nb201Arch"):
        op_ids_of(NB201_ALL_NONE)
    arch = Nb201Arch(("nor_conv_3x3",) * 6)
    wider = Nb201Space(channels=8, cells_per_stage=2).build(arch, num_classes=CLASSES, input_shape=SHAPE)
    with pytest.raises(ValueError, match="has shape"):
        network.load_keras_weights(wider, arch)
    deeper = Nb201Space(channels=4, cells_per_stage=3).build(arch, num_classes=CLASSES, input_shape=SHAPE)
    with pytest.raises(ValueError, match="no counterpart"):
        network.load_keras_weights(deeper, arch)
    with pytest.raises(ValueError, match="has no kernel"):
        network.edge_kernel_name(0, 0, 0, OPS.index("avg_pool_3x3"))
