"""Layer-contract and formula tests of the lite-space ops (tfnas.spaces.lite.ops)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.testing import run_layer_test
from tfnas.spaces.lite import (
    BlurPool,
    Conv1x1PoolBN,
    ReflectConvBN,
    ShuffleUnit,
    SqueezeExcite,
    channel_shuffle,
    make_op,
    op_params,
)


def _count(layer, shape):
    layer.build(shape)
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


@pytest.mark.parametrize(
    "cls, kwargs, in_shape, out_shape, trainable, non_trainable",
    [
        (BlurPool, {}, (2, 8, 6, 3), (2, 4, 3, 3), 0, 0),
        (ShuffleUnit, {"filters": 8, "kernel_size": 3}, (2, 8, 8, 8), (2, 8, 8, 8), 9, 6),
        (ShuffleUnit, {"filters": 8, "kernel_size": 5, "strides": 2}, (2, 8, 8, 4), (2, 4, 4, 8), 15, 10),
        (Conv1x1PoolBN, {"filters": 6, "pool": "avg", "strides": 2}, (2, 8, 8, 4), (2, 4, 4, 6), 3, 2),
        (Conv1x1PoolBN, {"filters": 6, "pool": "max"}, (2, 8, 8, 4), (2, 8, 8, 6), 3, 2),
        (Conv1x1PoolBN, {"filters": 6, "pool": "none"}, (2, 8, 8, 4), (2, 8, 8, 6), 3, 2),
        (SqueezeExcite, {"ratio": 4}, (2, 4, 4, 16), (2, 4, 4, 16), 2, 0),
        (ReflectConvBN, {"filters": 6, "kernel_size": 5}, (2, 8, 8, 3), (2, 8, 8, 6), 3, 2),
    ],
)
def test_lite_op_contracts(cls, kwargs, in_shape, out_shape, trainable, non_trainable):
    run_layer_test(cls, kwargs, in_shape, out_shape, trainable, non_trainable)


def test_blur_pool_is_the_reflect_padded_binomial_filter():
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 2)).astype(np.float32)
    y = BlurPool()(x).numpy()
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    for c in range(2):
        xp = np.pad(x[0, :, :, c], 1, mode="reflect")
        ref = [[np.sum(xp[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * f) for j in range(3)] for i in range(3)]
        np.testing.assert_allclose(y[0, :, :, c], ref, rtol=1e-5, atol=1e-6)


def test_avg_pool_counts_its_zero_padding_and_max_pool_ignores_it():
    ones = np.ones((1, 4, 4, 1), np.float32)
    layer = Conv1x1PoolBN(1, "avg", 1)
    layer.build(ones.shape)
    layer.conv.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    y = layer(ones, training=False).numpy()[0, :, :, 0] * np.sqrt(1 + 1e-5)  # undo the BN's 1/sqrt(1 + eps)
    np.testing.assert_allclose(y[0, 0], 4 / 9, rtol=1e-5)  # PyTorch AvgPool2d count_include_pad=True
    np.testing.assert_allclose(y[1, 1], 1.0, rtol=1e-5)
    neg = -1.0 - np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    layer = Conv1x1PoolBN(1, "max", 2)
    layer.build(neg.shape)
    layer.conv.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    y = layer(neg, training=False).numpy()[0, :, :, 0] * np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(y, [[-1.0, -2.0], [-5.0, -6.0]], rtol=1e-5)  # PyTorch windows start at -1


def test_channel_shuffle_matches_pytorch_order():
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8)
    # PyTorch: view(B, 2, 4) -> transpose -> flatten: channels 0,4,1,5,2,6,3,7
    np.testing.assert_array_equal(np.asarray(channel_shuffle(x, 2)).reshape(-1), [0, 4, 1, 5, 2, 6, 3, 7])


def test_shuffle_unit_stride1_passes_the_first_half_through():
    x = np.random.default_rng(1).standard_normal((2, 4, 4, 8)).astype(np.float32)
    y = ShuffleUnit(8, 3)(x, training=False).numpy()
    np.testing.assert_allclose(y[..., 0::2], x[..., :4])  # shuffled back: even channels are x1


@pytest.mark.parametrize("op", range(5))
@pytest.mark.parametrize("reduction", [False, True])
def test_op_param_formulas_and_shapes(op, reduction):
    c_in, filters = 8, 16 if reduction else 8
    layer = make_op(op, filters, reduction)
    assert _count(layer, (None, 8, 8, c_in)) == op_params(op, c_in, filters, reduction)
    y = layer(np.zeros((1, 8, 8, c_in), np.float32))
    side = 4 if reduction and op != 4 else 8  # op 4 (1x1 conv + BN) has no stride, as in the reference
    assert tuple(y.shape) == (1, side, side, filters)


def test_shuffle_and_se_parameter_formulas():
    k, c_in, f = 5, 6, 10
    c = f // 2
    assert _count(ShuffleUnit(f, k, 1), (None, 8, 8, f)) == 2 * c * c + k * k * c + 6 * c
    assert _count(ShuffleUnit(f, k, 2), (None, 8, 8, c_in)) == (k * k * c_in + 2 * c_in + 2 * c_in * c + k * k * c
                                                                 + c * c + 8 * c)
    assert _count(SqueezeExcite(16), (None, 4, 4, 200)) == 2 * 200 * 12
    assert _count(ReflectConvBN(7, 3), (None, 8, 8, 3)) == 27 * 7 + 14


def test_argument_errors():
    with pytest.raises(ValueError, match="even"):
        ShuffleUnit(5)
    with pytest.raises(ValueError, match="odd"):
        ShuffleUnit(4, 4)
    with pytest.raises(ValueError, match="strides"):
        ShuffleUnit(4, 3, 3)
    with pytest.raises(ValueError, match="channel split"):
        ShuffleUnit(8, 3).build((None, 8, 8, 4))
    with pytest.raises(ValueError, match="pool"):
        Conv1x1PoolBN(4, "sum")
    with pytest.raises(ValueError, match="1 without a pool"):
        Conv1x1PoolBN(4, "none", 2)
    with pytest.raises(ValueError, match="at least `ratio` channels"):
        SqueezeExcite(16).build((None, 4, 4, 8))
    with pytest.raises(ValueError, match="H, W >= 2"):
        BlurPool().build((None, 1, 4, 3))
    with pytest.raises(ValueError, match="unknown lite op"):
        make_op(5, 8, False)
