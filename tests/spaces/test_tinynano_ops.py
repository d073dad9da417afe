"""Tests of the Tiny-NanoBench op layers and their costs (tfnas.spaces.tinynano.ops)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.testing import run_layer_test
from tfnas.spaces.tinynano import OPS
from tfnas.spaces.tinynano.ops import (
    ChannelHalf,
    ChannelSelfAttention,
    ConvBNAct,
    DepthwiseExpand,
    DWConvBNMish,
    op_cost,
    op_layer,
)


def _trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize(
    "kwargs, in_shape, out_shape",
    [
        ({"filters": 6, "kernel_size": 3}, (2, 6, 6, 4), (2, 6, 6, 6)),
        ({"filters": 5, "kernel_size": 1, "activation": "linear"}, (2, 5, 5, 3), (2, 5, 5, 5)),
        ({"filters": 4, "kernel_size": 3, "activation": "mish"}, (2, 4, 4, 3), (2, 4, 4, 4)),
    ],
)
def test_conv_bn_act_contract(kwargs, in_shape, out_shape):
    run_layer_test(ConvBNAct, kwargs, in_shape, out_shape, 3, 2)


def test_depthwise_layers_contract():
    run_layer_test(DWConvBNMish, {}, (2, 6, 6, 4), (2, 6, 6, 4), 3, 2)
    run_layer_test(DepthwiseExpand, {}, (2, 6, 6, 4), (2, 6, 6, 12), 9, 6)


@pytest.mark.parametrize("channels", [8, 12])
def test_attention_contract(channels):
    run_layer_test(ChannelSelfAttention, {}, (2, 5, 5, channels), (2, 5, 5, channels), 8, 0)


@pytest.mark.parametrize("index", [0, 1])
def test_channel_half_contract_and_values(index):
    layer = run_layer_test(ChannelHalf, {"index": index}, (2, 4, 4, 6), (2, 4, 4, 3), 0, 0)
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 6)).astype(np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), x[..., 3 * index : 3 * index + 3])
    with pytest.raises(ValueError, match="even"):
        ChannelHalf(index)(np.zeros((1, 2, 2, 5), np.float32))


def test_op_layer_args_are_checked():
    with pytest.raises(ValueError, match="activation='gelu'"):
        ConvBNAct(4, 3, activation="gelu")
    with pytest.raises(ValueError, match="kernel_size"):
        ConvBNAct(4, 2)
    with pytest.raises(ValueError, match="index=2"):
        ChannelHalf(2)
    with pytest.raises(ValueError, match="unknown Tiny-NanoBench op 'conv5x5'"):
        op_cost("conv5x5", 8, 16)
    with pytest.raises(ValueError, match="split"):
        op_layer("split", 8, "s")


def test_attention_formula():
    layer = ChannelSelfAttention()
    x = np.random.default_rng(2).standard_normal((2, 3, 3, 8)).astype(np.float32)
    y = layer(x).numpy()
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [
        (c.kernel.numpy()[0, 0], c.bias.numpy()) for c in (layer.query, layer.key, layer.value, layer.gate)
    ]
    assert wq.shape == (8, 2) and wo.shape == (2, 8)  # d = C // 4
    for b in range(2):
        p = x[b].mean(axis=(0, 1))
        q, k, v = p @ wq + bq, p @ wk + bk, p @ wv + bv
        s = np.outer(q, k)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        a = (s / s.sum(axis=1, keepdims=True)) @ v
        g = np.clip((a @ wo + bo + 3.0) / 6.0, 0.0, 1.0)
        np.testing.assert_allclose(y[b], x[b] * g, rtol=1e-4, atol=1e-5)


def test_expand_concatenates_residual_chain():
    layer = DepthwiseExpand()
    x = np.random.default_rng(3).standard_normal((2, 5, 5, 3)).astype(np.float32)
    y = layer(x, training=False).numpy()
    u, parts = x, []
    for unit in layer.units:
        u = u + unit(u, training=False).numpy()
        parts.append(u)
    np.testing.assert_allclose(y, np.concatenate(parts, axis=-1), rtol=1e-5, atol=1e-5)
    assert not np.allclose(y[..., :3], y[..., 3:6])


@pytest.mark.parametrize("op", [op for op in OPS if op != "split"])
def test_op_cost_params_match_layers(op):
    layer = op_layer(op, 8, "probe")
    params = 0
    if layer is not None:
        layer.build((None, 6, 6, 8))
        params = _trainable(layer)
    assert op_cost(op, 8, 36)[0] == params
