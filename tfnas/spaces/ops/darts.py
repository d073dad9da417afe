"""The DARTS cell ops (Liu et al., ICLR 2019, https://arxiv.org/abs/1806.09055, ``operations.py``).

Separable and dilated convolutions, the factorized reduction and 3x3 max pooling, with the
conventions of :mod:`tfnas.spaces.ops.common` (PyTorch BatchNorm defaults, symmetric padding via
the plans of :mod:`tfnas.spaces.ops.padding`, no conv bias). Every layer is registered with
``keras.saving.register_keras_serializable(package="tfnas")``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import keras
from keras import ops

from tfnas.checks import positive_int
from tfnas.spaces.ops.common import BN_EPSILON, BN_MOMENTUM, check_odd_kernel
from tfnas.spaces.ops.padding import (
    SpatialConvPlan,
    apply_spatial_conv,
    conv_output_size,
    padded_shape,
    spatial_conv_plan,
)

__all__ = ["DilConv", "FactorizedReduce", "MaxPool3x3", "SepConv"]

Shape = Tuple[Optional[int], ...]


class _BNConvOp(keras.layers.Layer):
    """Shared constructor arguments of the DARTS conv ops (not registered; not used directly)."""

    def __init__(
        self,
        filters: int,
        affine: bool = True,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", type(self).__name__)
        self.affine = bool(affine)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _bn(self, name: str) -> keras.layers.BatchNormalization:
        return keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, center=self.affine, scale=self.affine, name=name
        )

    def _depthwise(self, kernel_size: int, plan: SpatialConvPlan, name: str):
        padding, _, _, conv_strides, conv_dilation = plan
        return keras.layers.DepthwiseConv2D(
            kernel_size,
            strides=conv_strides,
            padding=padding,
            dilation_rate=conv_dilation,
            use_bias=False,
            depthwise_initializer=keras.initializers.serialize(self.kernel_initializer),
            name=name,
        )

    def _pointwise(self, filters: int, name: str, strides: int = 1) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            filters,
            1,
            strides=strides,
            padding="valid",
            use_bias=False,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            name=name,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "affine": self.affine,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class SepConv(_BNConvOp):
    """The DARTS separable convolution ``sep_conv_kxk``: two stacked separable blocks.

    ``y = B2(B1(x))`` with ``B1 = BN(pw_1x1(dw_kxk,stride(relu(x))))`` keeping ``C_in``
    channels and ``B2 = BN(pw_1x1(dw_kxk(relu(.))))`` mapping to ``filters``; depthwise convs
    have depth multiplier 1 and no convolution has a bias (DARTS ``SepConv``). Trainable
    parameters with ``affine=True``: ``2 k^2 C_in + C_in^2 + C_in * filters + 2 C_in + 2 filters``.
    Stride-2 padding is symmetric, as in PyTorch.

    Example:
        >>> SepConv(16, 3, strides=2)(keras.ops.ones((2, 8, 8, 16))).shape
        TensorShape([2, 4, 4, 16])

    Args:
        filters: output channels.
        kernel_size: odd kernel size (3 or 5 in DARTS).
        strides: stride of the first depthwise conv.
        affine: BatchNorms with trainable ``gamma``/``beta``.
        momentum, epsilon: BatchNorm settings (Keras convention; default = PyTorch's).
        kernel_initializer: initializer of every kernel.

    Input shape: ``(B, H, W, C_in)``.
    Output shape: ``(B, (H - 1) // strides + 1, (W - 1) // strides + 1, filters)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        affine: bool = True,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(filters, affine, momentum, epsilon, kernel_initializer, **kwargs)
        self.kernel_size = check_odd_kernel(kernel_size, "SepConv")
        self.strides = positive_int(strides, "strides", "SepConv")
        self._plan1 = spatial_conv_plan(self.kernel_size, self.strides, 1, "SepConv")
        self._plan2 = spatial_conv_plan(self.kernel_size, 1, 1, "SepConv")
        self.dw1 = self._depthwise(self.kernel_size, self._plan1, "dw1")
        self.dw2 = self._depthwise(self.kernel_size, self._plan2, "dw2")
        self.bn1 = self._bn("bn1")
        self.bn2 = self._bn("bn2")
        self.pw1: Optional[keras.layers.Conv2D] = None
        self.pw2 = self._pointwise(self.filters, "pw2")

    def build(self, input_shape: Shape) -> None:
        input_shape = tuple(input_shape)
        c_in = input_shape[-1]
        if c_in is None:
            raise ValueError(f"SepConv needs a known channel count. Received: input_shape={input_shape}")
        self.pw1 = self._pointwise(int(c_in), "pw1")
        mid = self.compute_output_shape(input_shape)[:3] + (c_in,)
        self.dw1.build(padded_shape(input_shape, self._plan1))
        self.pw1.build(mid)
        self.bn1.build(mid)
        self.dw2.build(mid)
        self.pw2.build(mid)
        self.bn2.build(mid[:3] + (self.filters,))

    def call(self, inputs, training=None):
        x = apply_spatial_conv(ops.relu(inputs), self.dw1, self._plan1)
        x = self.bn1(self.pw1(x), training=training)
        x = apply_spatial_conv(ops.relu(x), self.dw2, self._plan2)
        return self.bn2(self.pw2(x), training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        k, s = self.kernel_size, self.strides
        return (b, conv_output_size(h, k, s, 1), conv_output_size(w, k, s, 1), self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class DilConv(_BNConvOp):
    """The DARTS dilated separable convolution ``dil_conv_kxk``.

    ``y = BN(pw_1x1(dw_kxk,dilation,stride(relu(x))))`` (DARTS ``DilConv``; no conv bias).
    Trainable parameters with ``affine=True``: ``k^2 C_in + C_in * filters + 2 filters``. The
    padding is ``dilation * (k - 1) // 2`` on each side, as in PyTorch, also at stride 2
    (computed as a stride-1 conv on the subsampled padded input, which TensorFlow supports).

    Args:
        filters: output channels.
        kernel_size: odd kernel size (3 or 5 in DARTS).
        strides: stride of the depthwise conv.
        dilation: dilation of the depthwise conv (2 in DARTS); a multiple of ``strides``.
        affine, momentum, epsilon, kernel_initializer: as for :class:`SepConv`.

    Input shape: ``(B, H, W, C_in)``.
    Output shape: ``(B, (H - 1) // strides + 1, (W - 1) // strides + 1, filters)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation: int = 2,
        affine: bool = True,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(filters, affine, momentum, epsilon, kernel_initializer, **kwargs)
        self.kernel_size = check_odd_kernel(kernel_size, "DilConv")
        self.strides = positive_int(strides, "strides", "DilConv")
        self.dilation = positive_int(dilation, "dilation", "DilConv")
        self._plan = spatial_conv_plan(self.kernel_size, self.strides, self.dilation, "DilConv")
        self.dw = self._depthwise(self.kernel_size, self._plan, "dw")
        self.pw = self._pointwise(self.filters, "pw")
        self.bn = self._bn("bn")

    def build(self, input_shape: Shape) -> None:
        input_shape = tuple(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"DilConv needs a known channel count. Received: input_shape={input_shape}")
        mid = self.compute_output_shape(input_shape)[:3] + (input_shape[-1],)
        self.dw.build(padded_shape(input_shape, self._plan))
        self.pw.build(mid)
        self.bn.build(mid[:3] + (self.filters,))

    def call(self, inputs, training=None):
        x = apply_spatial_conv(ops.relu(inputs), self.dw, self._plan)
        return self.bn(self.pw(x), training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        k, s, d = self.kernel_size, self.strides, self.dilation
        return (b, conv_output_size(h, k, s, d), conv_output_size(w, k, s, d), self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "strides": self.strides, "dilation": self.dilation})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class FactorizedReduce(_BNConvOp):
    """Halves the resolution with two offset stride-2 1x1 convs (DARTS ``FactorizedReduce``).

    ``y = BN(concat(conv_a(relu(x)), conv_b(relu(x)[:, 1:, 1:])))``: ``conv_a`` and ``conv_b``
    map ``C_in`` to ``filters / 2`` channels each with stride 2 and no bias, the second on the
    input shifted by one pixel, so together they see every pixel. Trainable parameters with
    ``affine=True``: ``C_in * filters + 2 filters``. The skip-connect of a reduction edge and the
    ``c_{k-2}`` preprocessing after a reduction cell.

    Args:
        filters: output channels (even).
        affine, momentum, epsilon, kernel_initializer: as for :class:`SepConv`.

    Input shape: ``(B, H, W, C_in)`` with even ``H`` and ``W``.
    Output shape: ``(B, H / 2, W / 2, filters)``.
    """

    def __init__(
        self,
        filters: int,
        affine: bool = True,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(filters, affine, momentum, epsilon, kernel_initializer, **kwargs)
        if self.filters % 2:
            raise ValueError(f"FactorizedReduce: `filters` must be even. Received: filters={filters}")
        self.conv_a = self._pointwise(self.filters // 2, "conv_a", strides=2)
        self.conv_b = self._pointwise(self.filters // 2, "conv_b", strides=2)
        self.bn = self._bn("bn")

    def build(self, input_shape: Shape) -> None:
        input_shape = tuple(input_shape)
        for axis, size in (("height", input_shape[1]), ("width", input_shape[2])):
            if size is not None and size % 2:
                raise ValueError(
                    f"FactorizedReduce needs an even {axis} (its two offset paths must agree, as in DARTS). "
                    f"Received: input_shape={input_shape}"
                )
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape)
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = ops.relu(inputs)
        y = ops.concatenate([self.conv_a(x), self.conv_b(x[:, 1:, 1:, :])], axis=-1)
        return self.bn(y, training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        return (b, None if h is None else h // 2, None if w is None else w // 2, self.filters)


@keras.saving.register_keras_serializable(package="tfnas")
class MaxPool3x3(keras.layers.Layer):
    """3x3 max pooling with padding 1 that never picks the padding (PyTorch ``MaxPool2d(3, s, 1)``).

    ``y[i, j] = max_{(u, v) in N(i, j)} x[u, v]`` over the part of the window inside the image.
    Stride 1 uses TF ``"same"`` pooling (which ignores padding); stride 2 pads one row/column on
    each side and pools ``"valid"``, as PyTorch does (TF ``"same"`` would pad only after and shift
    the windows). The padding mirrors the border (``symmetric``): a pad pixel copies its
    neighbour, which lies in every window the pad pixel is in, so the max is the max over the
    part of the window inside the image. (Padding with the dtype's lowest value gives the same
    outputs, but int8 TFLite quantization then calibrates a range of +-3e38 and breaks.)

    Args:
        strides: pooling stride.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, (H - 1) // strides + 1, (W - 1) // strides + 1, C)``.
    """

    def __init__(self, strides: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.strides = positive_int(strides, "strides", "MaxPool3x3")

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs):
        if self.strides == 1:
            return ops.max_pool(inputs, 3, strides=1, padding="same")
        padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
        return ops.max_pool(padded, 3, strides=self.strides, padding="valid")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, c = input_shape
        return (b, conv_output_size(h, 3, self.strides, 1), conv_output_size(w, 3, self.strides, 1), c)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"strides": self.strides})
        return config
