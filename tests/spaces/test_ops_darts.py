"""Layer-contract and formula tests of the DARTS ops (tfnas.spaces.ops.darts)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.testing import run_layer_test
from tfnas.spaces.ops import DilConv, FactorizedReduce, MaxPool3x3, SepConv

@pytest.mark.parametrize(
    "cls, kwargs, in_shape, out_shape, trainable, non_trainable",
    [
        (SepConv, {"filters": 6, "kernel_size": 3}, (2, 8, 8, 4), (2, 8, 8, 6), 8, 4),
        (SepConv, {"filters": 4, "kernel_size": 5, "strides": 2}, (2, 8, 8, 4), (2, 4, 4, 4), 8, 4),
        (DilConv, {"filters": 4, "kernel_size": 3}, (2, 8, 8, 4), (2, 8, 8, 4), 4, 2),
        (DilConv, {"filters": 4, "kernel_size": 5, "strides": 2}, (2, 8, 8, 4), (2, 4, 4, 4), 4, 2),
        (FactorizedReduce, {"filters": 6}, (2, 8, 8, 4), (2, 4, 4, 6), 4, 2),
    ],
)
def test_darts_op_contracts(cls, kwargs, in_shape, out_shape, trainable, non_trainable):
    run_layer_test(cls, kwargs, in_shape, out_shape, trainable, non_trainable)


def test_darts_op_parameter_formulas():
    def count(layer, shape):
        layer.build(shape)
        return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)

    k, c_in, f = 5, 6, 10
    assert count(SepConv(f, k), (None, 8, 8, c_in)) == 2 * k * k * c_in + c_in * c_in + c_in * f + 2 * c_in + 2 * f
    assert count(DilConv(f, k), (None, 8, 8, c_in)) == k * k * c_in + c_in * f + 2 * f
    assert count(FactorizedReduce(f), (None, 8, 8, c_in)) == c_in * f + 2 * f


def test_dil_conv_stride2_matches_a_pytorch_style_reference():
    # PyTorch: pad d*(k-1)/2 = 2 on each side, stride 2, dilation 2 -> y[i] = sum_k x_pad[2i + 2k].
    layer = DilConv(1, 3, strides=2, dilation=2, kernel_initializer="ones")
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((1, 8, 8, 1))).astype(np.float32)
    layer.build(x.shape)
    layer.pw.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    y = layer(x, training=False).numpy()[0, :, :, 0] * np.sqrt(1 + 1e-5)
    xp = np.pad(x[0, :, :, 0], 2)
    ref = np.array([[sum(xp[2 * i + 2 * a, 2 * j + 2 * b] for a in range(3) for b in range(3)) for j in range(4)]
                    for i in range(4)])
    np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_max_pool_never_picks_its_padding():
    x = -np.ones((1, 4, 4, 1), np.float32) - np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    for s in (1, 2):
        y = MaxPool3x3(s)(x).numpy()
        assert y.max() < 0  # zero padding would show up as 0
    y2 = MaxPool3x3(2)(x).numpy()[0, :, :, 0]
    # PyTorch windows at stride 2: rows/cols {-1,0,1} and {1,2,3}.
    np.testing.assert_allclose(y2, [[-1.0, -2.0], [-5.0, -6.0]])


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (5, 6)])
def test_max_pool_stride_2_equals_pytorch_windows(size):
    """The mirrored padding never changes a max: each window's max over its inside pixels."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2,) + size + (3,)).astype(np.float32)
    y = MaxPool3x3(2)(x).numpy()
    h, w = size
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=-np.inf)
    ref = np.stack([np.stack([xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2))
                              for j in range((w - 1) // 2 + 1)], 1) for i in range((h - 1) // 2 + 1)], 1)
    np.testing.assert_array_equal(y, ref)


def test_factorized_reduce_needs_even_sizes():
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(4).build((None, 7, 7, 4))
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(5)
