"""Keras layers of the Tiny-NanoBench cells (channels-last images ``(B, H, W, C)``).

Lightweight ops of the Siamese-NAS Tiny-NanoBench space (:mod:`tfnas.spaces.tinynano`). Every op
keeps the spatial size (stride 1, symmetric ``same`` padding) and, except ``DepthwiseExpand``
(``C -> 3C``) and ``ChannelHalf`` (``C -> C / 2``), the channel count. ``op_layer`` maps each
cell op name to its layer, ``op_cost`` gives its parameters and multiply-adds
(:func:`tfnas.spaces.tinynano.network.cell_branch` wires a whole cell). Conventions shared
with :mod:`tfnas.spaces.ops`: convolutions followed by BatchNorm have no bias, BatchNorm uses
PyTorch's defaults (``momentum=0.9`` in Keras terms, ``epsilon=1e-5``), Mish is ``x * tanh(softplus(x))`` (Misra,
https://arxiv.org/abs/1908.08681) and the hard sigmoid is ``relu6(x + 3) / 6``.

Cell ops on ``C`` channels (``op_layer``): ``conv1x1-bn-relu`` / ``conv3x3-bn-relu`` are
``ConvBNAct(C, 1 or 3, "relu")``; ``maxpool3x3`` is 3x3 max pooling with stride 1; ``none`` is
the identity; ``dwconv3x3`` is ``DWConvBNMish``; ``conv1x1`` is a plain 1x1 ``Conv2D(C)`` with
bias (no BatchNorm, no activation); ``atten`` is ``ChannelSelfAttention``; ``expand`` is
``DepthwiseExpand``; ``split`` is the two ``ChannelHalf`` layers.

Every layer is registered with ``keras.saving.register_keras_serializable(package="tfnas")``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import keras
from keras import ops

from tfnas.checks import positive_int
from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM, mish

__all__ = [
    "ACTIVATIONS",
    "ChannelHalf",
    "ChannelSelfAttention",
    "ConvBNAct",
    "DWConvBNMish",
    "DepthwiseExpand",
    "attention_width",
    "op_cost",
    "op_layer",
]

Shape = Tuple[Optional[int], ...]

#: Activations ``ConvBNAct`` accepts, by name.
ACTIVATIONS = {"linear": lambda x: x, "relu": ops.relu, "mish": mish}


def attention_width(channels: int) -> int:
    """Width ``d = max(1, C // 4)`` of the query/key/value of ``ChannelSelfAttention`` on ``C`` channels."""
    return max(1, channels // 4)


def _known_channels(input_shape: Shape, owner: str) -> int:
    channels = tuple(input_shape)[-1]
    if channels is None:
        raise ValueError(f"{owner} needs a known channel count. Received: input_shape={tuple(input_shape)}")
    return int(channels)


@keras.saving.register_keras_serializable(package="tfnas")
class ConvBNAct(keras.layers.Layer):
    """Conv2D (no bias) -> BatchNorm -> activation, stride 1, ``same`` padding.

    ``y = act(BN(conv_kxk(x)))``; trainable parameters ``k * k * C_in * filters + 2 * filters``.
    With ``activation="relu"`` this is the ``conv1x1-bn-relu`` / ``conv3x3-bn-relu`` op, with
    ``"linear"`` the cell's output projection, with ``"mish"`` the network stem.

    Example:
        >>> ConvBNAct(8, 3)(keras.ops.ones((2, 6, 6, 4))).shape
        TensorShape([2, 6, 6, 8])

    Args:
        filters: output channels.
        kernel_size: odd square kernel size.
        activation: ``"relu"``, ``"mish"`` or ``"linear"``.
        momentum: BatchNorm momentum (Keras convention).
        epsilon: BatchNorm epsilon.
        kernel_initializer: initializer of the convolution kernel.

    Input shape: ``(B, H, W, C_in)``.
    Output shape: ``(B, H, W, filters)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        activation: str = "relu",
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", "ConvBNAct")
        self.kernel_size = positive_int(kernel_size, "kernel_size", "ConvBNAct")
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvBNAct: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"ConvBNAct: `activation` must be one of {sorted(ACTIVATIONS)}. Received: activation={activation!r}"
            )
        self.activation = activation
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            name="conv",
        )
        self.bn = keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon, name="bn")

    def build(self, input_shape: Shape) -> None:
        self.conv.build(tuple(input_shape))
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return ACTIVATIONS[self.activation](self.bn(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape)[:-1], self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "activation": self.activation,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class DWConvBNMish(keras.layers.Layer):
    """The ``dwconv3x3`` op: depthwise 3x3 conv (no bias) -> BatchNorm -> Mish.

    ``y = mish(BN(dwconv_3x3(x)))``; trainable parameters ``9 * C + 2 * C``.

    Args:
        momentum: BatchNorm momentum (Keras convention).
        epsilon: BatchNorm epsilon.
        kernel_initializer: initializer of the depthwise kernel.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, H, W, C)``.
    """

    def __init__(
        self,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.conv = keras.layers.DepthwiseConv2D(
            3,
            padding="same",
            use_bias=False,
            depthwise_initializer=keras.initializers.serialize(self.kernel_initializer),
            name="dwconv",
        )
        self.bn = keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon, name="bn")

    def build(self, input_shape: Shape) -> None:
        _known_channels(input_shape, "DWConvBNMish")
        self.conv.build(tuple(input_shape))
        self.bn.build(tuple(input_shape))

    def call(self, inputs, training=None):
        return mish(self.bn(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class DepthwiseExpand(keras.layers.Layer):
    """The ``expand`` op: three chained residual depthwise units, outputs concatenated.

    ``u_0 = x``, ``u_i = u_{i-1} + DWConvBNMish_i(u_{i-1})`` for ``i = 1, 2, 3``,
    ``y = concat(u_1, u_2, u_3)`` along channels; trainable parameters ``3 * 11 * C``.

    Args:
        momentum: BatchNorm momentum (Keras convention).
        epsilon: BatchNorm epsilon.
        kernel_initializer: initializer of the depthwise kernels.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, H, W, 3 * C)``.
    """

    def __init__(
        self,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        init = keras.initializers.serialize(self.kernel_initializer)
        self.units = [
            DWConvBNMish(self.momentum, self.epsilon, kernel_initializer=init, name=f"unit{i}") for i in range(3)
        ]

    def build(self, input_shape: Shape) -> None:
        _known_channels(input_shape, "DepthwiseExpand")
        for unit in self.units:
            unit.build(tuple(input_shape))

    def call(self, inputs, training=None):
        outputs = []
        x = inputs
        for unit in self.units:
            x = x + unit(x, training=training)
            outputs.append(x)
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        channels = tuple(input_shape)[-1]
        return (*tuple(input_shape)[:-1], None if channels is None else 3 * channels)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class ChannelSelfAttention(keras.layers.Layer):
    """The ``atten`` op: self-attention over a pooled channel descriptor, used as a channel gate.

    With ``d = max(1, C // 4)`` and ``p = mean_{h,w} x`` (``(B, C)``):
    ``q, k, v = W_q p + b_q, W_k p + b_k, W_v p + b_v`` (``(B, d)`` each, 1x1 convs),
    ``a = softmax(q k^T) v`` (``(B, d, d) @ (B, d, 1)``, softmax over the last axis),
    ``g = hard_sigmoid(W_o a + b_o)`` (``(B, C)``, ``hard_sigmoid(z) = relu6(z + 3) / 6``),
    ``y = x * g`` broadcast over ``H, W``. Trainable parameters ``3 * (C * d + d) + d * C + C``.

    Args:
        kernel_initializer: initializer of the four 1x1 projection kernels.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, H, W, C)``.
    """

    def __init__(self, kernel_initializer: Any = "glorot_uniform", **kwargs: Any):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.query = self.key = self.value = self.gate = None

    def _conv(self, filters: int, name: str) -> keras.layers.Conv2D:
        init = keras.initializers.serialize(self.kernel_initializer)
        return keras.layers.Conv2D(filters, 1, use_bias=True, kernel_initializer=init, name=name)

    def build(self, input_shape: Shape) -> None:
        channels = _known_channels(input_shape, "ChannelSelfAttention")
        width = attention_width(channels)
        pooled = (input_shape[0], 1, 1, channels)
        self.query = self._conv(width, "query")
        self.key = self._conv(width, "key")
        self.value = self._conv(width, "value")
        self.gate = self._conv(channels, "gate")
        for conv in (self.query, self.key, self.value):
            conv.build(pooled)
        self.gate.build((input_shape[0], 1, 1, width))

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        width = self.query.filters
        q = ops.reshape(self.query(pooled), (-1, width, 1))
        k = ops.reshape(self.key(pooled), (-1, 1, width))
        v = ops.reshape(self.value(pooled), (-1, width, 1))
        scores = ops.softmax(ops.matmul(q, k), axis=-1)  # (B, d, d)
        attended = ops.reshape(ops.matmul(scores, v), (-1, 1, 1, width))
        return inputs * ops.hard_sigmoid(self.gate(attended))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"kernel_initializer": keras.initializers.serialize(self.kernel_initializer)})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class ChannelHalf(keras.layers.Layer):
    """One half of a ``split`` node: ``y = x[..., :C/2]`` (``index=0``) or ``x[..., C/2:]`` (``index=1``).

    Args:
        index: 0 for the first half of the channels, 1 for the second.

    Input shape: ``(B, H, W, C)`` with even ``C``.
    Output shape: ``(B, H, W, C / 2)``.
    """

    def __init__(self, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(index, bool) or index not in (0, 1):
            raise ValueError(f"ChannelHalf: `index` must be 0 or 1. Received: index={index!r}")
        self.index = int(index)

    def build(self, input_shape: Shape) -> None:
        channels = _known_channels(input_shape, "ChannelHalf")
        if channels % 2:
            raise ValueError(
                f"ChannelHalf splits the channels in two equal halves, so their count must be even. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.built = True

    def call(self, inputs):
        half = inputs.shape[-1] // 2
        return inputs[..., :half] if self.index == 0 else inputs[..., half:]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        channels = tuple(input_shape)[-1]
        return (*tuple(input_shape)[:-1], None if channels is None else channels // 2)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"index": self.index})
        return config


def op_cost(op: str, channels: int, pixels: int) -> Tuple[int, int]:
    """``(trainable parameters, multiply-adds)`` of cell op ``op`` on ``channels`` over ``pixels = H * W``.

    Multiply-adds count convolution kernels (dense ``k*k*C*C`` and depthwise ``k*k*C`` per
    pixel, the ``atten`` 1x1 projections once on the pooled map) and the ``atten`` products
    ``q k^T`` and ``softmax(.) v`` (``d * d`` each); bias adds, BatchNorm, activations, pooling
    and the gating product are free. ``maxpool3x3``, ``none`` and ``split`` cost ``(0, 0)``.
    """
    c, hw = channels, pixels
    if op == "conv1x1-bn-relu":
        return c * c + 2 * c, hw * c * c
    if op == "conv3x3-bn-relu":
        return 9 * c * c + 2 * c, 9 * hw * c * c
    if op == "dwconv3x3":
        return 11 * c, 9 * hw * c
    if op == "conv1x1":
        return c * c + c, hw * c * c
    if op == "atten":
        d = attention_width(c)
        return 3 * (c * d + d) + d * c + c, 3 * c * d + 2 * d * d + d * c
    if op == "expand":
        return 33 * c, 27 * hw * c
    if op in ("maxpool3x3", "none", "split"):
        return 0, 0
    raise ValueError(f"unknown Tiny-NanoBench op {op!r}")


def op_layer(op: str, channels: int, name: str) -> Optional[keras.layers.Layer]:
    """The Keras layer of cell op ``op`` on ``channels`` (``None`` for ``none``; ``split`` is two ``ChannelHalf``)."""
    bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
    if op in ("conv1x1-bn-relu", "conv3x3-bn-relu"):
        return ConvBNAct(channels, 1 if op.startswith("conv1x1") else 3, activation="relu", name=name, **bn)
    if op == "maxpool3x3":
        return keras.layers.MaxPooling2D(3, strides=1, padding="same", name=name)
    if op == "dwconv3x3":
        return DWConvBNMish(name=name, **bn)
    if op == "conv1x1":
        return keras.layers.Conv2D(channels, 1, kernel_initializer="he_normal", name=name)
    if op == "atten":
        return ChannelSelfAttention(name=name)
    if op == "expand":
        return DepthwiseExpand(name=name, **bn)
    if op == "none":
        return None
    raise ValueError(f"op {op!r} has no single layer (a split is two ChannelHalf layers; input/output are not ops)")
