"""Keras layers of the SLNAS lite space (channels-last images ``(B, H, W, C)``).

Each layer follows the reference PyTorch code (``model_arc/operation_storage.py`` and
``model_arc/builder.py`` of the SLNAS repository) in bias use, BatchNorm placement and padding,
so trainable parameter counts agree with it:

- every convolution is bias-free; BatchNorms are affine with PyTorch's defaults
  (:data:`~tfnas.spaces.ops.BN_MOMENTUM`, :data:`~tfnas.spaces.ops.BN_EPSILON`). The reference
  searches with ``track_running_stats=False`` in some BatchNorms and replaces every BatchNorm by
  a standard one before retraining (``utils.BatchNorm2d_replace``); these layers are standard;
- the activation is Mish, ``x * tanh(softplus(x))`` (Misra, https://arxiv.org/abs/1908.08681),
  :func:`tfnas.spaces.ops.mish` (Keras' ``keras.activations.mish`` in a form int8 TFLite keeps);
- the depthwise convolutions of the ShuffleNetV2 unit pad with zeros, ``k // 2`` per side;
  BlurPool pads by reflection; the stems pad by reflection (``conv2d_std``);
- pools are 3x3 with padding 1 on each side, PyTorch style: the average counts the zero padding
  (``AvgPool2d`` default ``count_include_pad=True``), the max never picks it.

Layers: :class:`BlurPool`, :class:`ShuffleUnit`, :class:`Conv1x1PoolBN`, :class:`SqueezeExcite`,
:class:`ReflectConvBN`; :func:`make_op` maps an op id to its layer and :func:`op_params` counts it.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import keras
import numpy as np
from keras import ops

from tfnas.checks import positive_int
from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM, MaxPool3x3, mish
from tfnas.spaces.ops.common import with_list_children

__all__ = [
    "POOLS",
    "BlurPool",
    "Conv1x1PoolBN",
    "ReflectConvBN",
    "ShuffleUnit",
    "SqueezeExcite",
    "batch_norm",
    "channel_shuffle",
    "make_op",
    "op_params",
    "pointwise_conv",
]

Shape = Tuple[Optional[int], ...]
#: Pool choices of :class:`Conv1x1PoolBN`.
POOLS: Tuple[str, ...] = ("avg", "max", "none")
_BLUR_1D = np.array([1.0, 2.0, 1.0])


def _half(n: Optional[int]) -> Optional[int]:
    """``ceil(n / 2)``: the size after a stride-2 3x3 window with padding 1."""
    return None if n is None else (n + 1) // 2


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """An affine BatchNorm with PyTorch's defaults."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def pointwise_conv(filters: int, name: str) -> keras.layers.Conv2D:
    """A bias-free 1x1 convolution."""
    return keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal", name=name)


def _dw(kernel_size: int, name: str) -> keras.layers.DepthwiseConv2D:
    return keras.layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False,
                                        depthwise_initializer="he_normal", name=name)


def channel_shuffle(x, groups: int = 2):
    """ShuffleNet's channel shuffle of ``(B, H, W, C)``: channel ``i * C/g + j`` moves to ``j * g + i``
    (the reference's ``channel_shuffle``, channels-last)."""
    _, h, w, c = x.shape
    y = ops.reshape(x, (-1, h, w, groups, c // groups))
    y = ops.transpose(y, (0, 1, 2, 4, 3))
    return ops.reshape(y, (-1, h, w, c))


def _build_chain(layers, shape: Shape) -> Shape:
    """Builds ``layers`` in order from ``shape``; returns the last output shape."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


@keras.saving.register_keras_serializable(package="tfnas")
class BlurPool(keras.layers.Layer):
    """Anti-aliased stride-2 downsampling (Zhang, ICML 2019, https://arxiv.org/abs/1904.11486).

    Reflection-pads one row/column on each side, then convolves each channel with the fixed
    ``[1, 2, 1]^T [1, 2, 1] / 16`` filter at stride 2 (the reference's ``Downsample`` with
    ``filt_size=3``, from adobe/antialiased-cnns). No weights.

    Input shape: ``(B, H, W, C)``, ``H, W >= 2``. Output shape: ``(B, ceil(H / 2), ceil(W / 2), C)``.
    """

    def build(self, input_shape: Shape) -> None:
        h, w = input_shape[1], input_shape[2]
        if (h is not None and h < 2) or (w is not None and w < 2):
            raise ValueError(f"BlurPool: reflection padding needs H, W >= 2. Received: input_shape={input_shape}")
        self._channels = int(input_shape[-1])
        self.built = True

    def call(self, inputs):
        kernel = np.outer(_BLUR_1D, _BLUR_1D) / 16.0
        kernel = np.tile(kernel[:, :, None, None], (1, 1, self._channels, 1))
        x = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        return ops.depthwise_conv(x, ops.cast(kernel, inputs.dtype), strides=2, padding="valid")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, c = input_shape
        return (b, _half(h), _half(w), c)


@keras.saving.register_keras_serializable(package="tfnas")
class ShuffleUnit(keras.layers.Layer):
    """The ShuffleNetV2 unit of SLNAS ops 0/1 (Ma et al., ECCV 2018; reference ``InvertedResidual_shuffle``).

    Stride 1 (``filters == C_in``): split the channels in halves ``x1 | x2``;
    ``y = shuffle(concat(x1, pw-BN-Mish(BN(dw_k(pw-BN-Mish(x2))))))``.
    Stride 2 (reduction): ``y = shuffle(concat(b1(x), b2(x)))`` with
    ``b1 = dw_k -> BlurPool -> BN -> pw(C_in -> F/2) -> BN -> Mish`` and
    ``b2 = pw(C_in -> F/2) -> BN -> Mish -> dw_k -> BlurPool -> BN -> pw -> BN -> Mish``.
    ``dw_k`` is a stride-1 depthwise ``k x k`` conv (zero padding ``k // 2``), ``pw`` a 1x1 conv,
    ``shuffle`` :func:`channel_shuffle` with 2 groups; no conv has a bias.

    Trainable parameters (``c = F / 2``): stride 1, ``2c^2 + k^2 c + 6c``; stride 2,
    ``k^2 C_in + 2 C_in + 2 C_in c + k^2 c + c^2 + 8c``.

    Args:
        filters: output channels ``F`` (even).
        kernel_size: depthwise kernel, 3 or 5 in the space (odd).
        strides: 1 or 2.

    Input shape: ``(B, H, W, C_in)``. Output shape: ``(B, H / s, W / s, filters)`` (``ceil``).
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", "ShuffleUnit")
        if self.filters % 2:
            raise ValueError(f"ShuffleUnit: `filters` must be even (two halves). Received: filters={filters}")
        self.kernel_size = positive_int(kernel_size, "kernel_size", "ShuffleUnit")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ShuffleUnit: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
        if strides not in (1, 2) or isinstance(strides, bool):
            raise ValueError(f"ShuffleUnit: `strides` must be 1 or 2. Received: strides={strides!r}")
        self.strides = int(strides)
        c, k = self.filters // 2, self.kernel_size
        if self.strides == 2:
            self.b1 = [_dw(k, "b1_dw"), BlurPool(name="b1_blur"), batch_norm("b1_bn1"), pointwise_conv(c, "b1_pw"),
                       batch_norm("b1_bn2")]
            self.b2 = [pointwise_conv(c, "b2_pw1"), batch_norm("b2_bn1"), _dw(k, "b2_dw"), BlurPool(name="b2_blur"),
                       batch_norm("b2_bn2"), pointwise_conv(c, "b2_pw2"), batch_norm("b2_bn3")]
        else:
            self.b1 = []
            self.b2 = [pointwise_conv(c, "b2_pw1"), batch_norm("b2_bn1"), _dw(k, "b2_dw"), batch_norm("b2_bn2"),
                       pointwise_conv(c, "b2_pw2"), batch_norm("b2_bn3")]

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        if self.strides == 1:
            if shape[-1] != self.filters:
                raise ValueError(f"ShuffleUnit {self.name}: at stride 1 the input must have `filters` channels "
                                 f"(channel split). Received: filters={self.filters}, input_shape={shape}")
            shape = shape[:-1] + (self.filters // 2,)
        else:
            _build_chain(self.b1, shape)
        _build_chain(self.b2, shape)

    @staticmethod
    def _branch(layers, x, training, mish_after: Tuple[int, ...]):
        """``layers`` applied in order, Mish after the layers at positions ``mish_after``."""
        for i, layer in enumerate(layers):
            x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
            if i in mish_after:
                x = mish(x)
        return x

    def call(self, inputs, training=None):
        if self.strides == 1:
            half = self.filters // 2
            left, right = inputs[..., :half], inputs[..., half:]
            out = ops.concatenate([left, self._branch(self.b2, right, training, (1, 5))], axis=-1)
        else:  # b1: Mish after its last BN; b2: after its first and last BN
            out = ops.concatenate([self._branch(self.b1, inputs, training, (4,)),
                                   self._branch(self.b2, inputs, training, (1, 6))], axis=-1)
        return channel_shuffle(out, 2)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        if self.strides == 2:
            h, w = _half(h), _half(w)
        return (b, h, w, self.filters)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        return with_list_children(children, (("b1", self.b1), ("b2", self.b2)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class Conv1x1PoolBN(keras.layers.Layer):
    """SLNAS ops 2/3/4: ``BN(pool(conv1x1(x)))`` (reference ``builder.cell``).

    ``pool`` is a 3x3 average pool that counts its zero padding (``"avg"``: each window sums
    9 values and divides by 9, PyTorch ``AvgPool2d(3, s, 1)``), a 3x3 max pool that never picks
    its padding (``"max"``, :class:`~tfnas.spaces.ops.MaxPool3x3`) or nothing (``"none"``, stride 1
    only: the reference's op 4 has no stride, even in reduction cells). Trainable parameters:
    ``C_in * filters + 2 * filters``.

    Args:
        filters: output channels.
        pool: ``"avg"``, ``"max"`` or ``"none"``.
        strides: pooling stride, 1 or 2.

    Input shape: ``(B, H, W, C_in)``. Output shape: ``(B, ceil(H / s), ceil(W / s), filters)``.
    """

    def __init__(self, filters: int, pool: str = "none", strides: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", "Conv1x1PoolBN")
        if pool not in POOLS:
            raise ValueError(f"Conv1x1PoolBN: `pool` must be one of {POOLS}. Received: pool={pool!r}")
        if strides not in (1, 2) or isinstance(strides, bool) or (pool == "none" and strides != 1):
            raise ValueError(f"Conv1x1PoolBN: `strides` must be 1 or 2 (1 without a pool). "
                             f"Received: pool={pool!r}, strides={strides!r}")
        self.pool, self.strides = pool, int(strides)
        self.conv = pointwise_conv(self.filters, "conv")
        self.max_pool = MaxPool3x3(self.strides, name="max_pool") if pool == "max" else None
        self.bn = batch_norm("bn")

    def build(self, input_shape: Shape) -> None:
        self.conv.build(tuple(input_shape))
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        if self.pool == "avg":
            x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
            x = ops.average_pool(x, 3, strides=self.strides, padding="valid")
        elif self.pool == "max":
            x = self.max_pool(x)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        if self.strides == 2:
            h, w = _half(h), _half(w)
        return (b, h, w, self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"filters": self.filters, "pool": self.pool, "strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excitation (Hu et al., CVPR 2018; reference ``SELayer`` after moskomule/senet.pytorch).

    ``y = x * sigmoid(W2 relu(W1 mean_hw(x)))`` with bias-free ``W1: C -> C // ratio`` and
    ``W2: C // ratio -> C``; trainable parameters ``2 C (C // ratio)``.

    Args:
        ratio: channel reduction ``r`` (SLNAS: 16); needs ``C >= ratio``.

    Input shape: ``(B, H, W, C)``. Output shape: same.
    """

    def __init__(self, ratio: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        self.ratio = positive_int(ratio, "ratio", "SqueezeExcite")
        self.squeeze: Optional[keras.layers.Dense] = None
        self.excite: Optional[keras.layers.Dense] = None

    def build(self, input_shape: Shape) -> None:
        c = int(input_shape[-1])
        if c // self.ratio < 1:
            raise ValueError(f"SqueezeExcite {self.name}: needs at least `ratio` channels. "
                             f"Received: ratio={self.ratio}, input_shape={tuple(input_shape)}")
        self.squeeze = keras.layers.Dense(c // self.ratio, use_bias=False, name="squeeze")
        self.excite = keras.layers.Dense(c, use_bias=False, name="excite")
        self.squeeze.build((None, c))
        self.excite.build((None, c // self.ratio))

    def call(self, inputs):
        s = ops.mean(inputs, axis=(1, 2))
        s = ops.sigmoid(self.excite(ops.relu(self.squeeze(s))))
        return inputs * s[:, None, None, :]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"ratio": self.ratio})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class ReflectConvBN(keras.layers.Layer):
    """A stem: ``BN(conv_k(reflect_pad(x, k // 2)))``, bias-free (reference ``conv2d_std`` + BatchNorm).

    Trainable parameters: ``k^2 C_in filters + 2 filters``.

    Args:
        filters: output channels.
        kernel_size: odd kernel (SLNAS stems: 3 and 5).

    Input shape: ``(B, H, W, C_in)``, ``H, W > kernel_size // 2``. Output shape: ``(B, H, W, filters)``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", "ReflectConvBN")
        self.kernel_size = positive_int(kernel_size, "kernel_size", "ReflectConvBN")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ReflectConvBN: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
        self.conv = keras.layers.Conv2D(self.filters, self.kernel_size, padding="valid", use_bias=False,
                                        kernel_initializer="he_normal", name="conv")
        self.bn = batch_norm("bn")

    def build(self, input_shape: Shape) -> None:
        p = self.kernel_size // 2
        b, h, w, c = input_shape
        self.conv.build((b, None if h is None else h + 2 * p, None if w is None else w + 2 * p, c))
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        p = self.kernel_size // 2
        x = ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect") if p else inputs
        return self.bn(self.conv(x), training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size})
        return config


def make_op(op: int, filters: int, reduction: bool, name: Optional[str] = None) -> keras.layers.Layer:
    """The layer of lite op ``op`` (index into :data:`~tfnas.spaces.lite.arch.OPS`) with ``filters`` outputs.

    In a reduction cell ops 0-3 run at stride 2; op 4 (1x1 conv + BN) keeps stride 1, as in the
    reference, and the cell resizes its output (see :class:`~tfnas.spaces.lite.network.LiteCell`).
    """
    strides = 2 if reduction else 1
    if op in (0, 1):
        return ShuffleUnit(filters, 3 if op == 0 else 5, strides, name=name)
    if op in (2, 3):
        return Conv1x1PoolBN(filters, "avg" if op == 2 else "max", strides, name=name)
    if op == 4:
        return Conv1x1PoolBN(filters, "none", 1, name=name)
    raise ValueError(f"unknown lite op {op!r}; ops are 0..4")


def op_params(op: int, c_in: int, filters: int, reduction: bool) -> int:
    """Trainable parameters of ``make_op(op, filters, reduction)`` on ``c_in`` input channels."""
    if op in (0, 1):
        k, c = (3 if op == 0 else 5), filters // 2
        if not reduction:
            return 2 * c * c + k * k * c + 6 * c
        return k * k * c_in + 2 * c_in + 2 * c_in * c + k * k * c + c * c + 8 * c
    return c_in * filters + 2 * filters
