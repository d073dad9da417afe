"""The Zen-NAS MasterNet as a functional ``keras.Model``: blocks -> global average pool -> dense.

Built from the unit plans of :mod:`tfnas.spaces.zen.units`; BatchNorm and initialisation follow
the reference ``PlainNet`` code (Lin et al., ICCV 2021, https://arxiv.org/abs/2102.01063).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import keras
from keras import ops

from tfnas.checks import check_image_shape, check_int, check_num_classes, is_number
from tfnas.spaces.ops import DropPath
from tfnas.spaces.zen.blocks import ZenBlock, check_arch
from tfnas.spaces.zen.units import ConvSpec, arch_units

__all__ = ["BN_EPSILON", "BN_MOMENTUM", "INIT_GAIN", "ZenSqueezeExcite", "build_zen_model"]

#: BatchNorm epsilon of the Zen-NAS MasterNet.
BN_EPSILON = 1e-3
#: BatchNorm momentum in the Keras sense (PyTorch ``bn_momentum 0.01`` of the training recipe).
BN_MOMENTUM = 0.99
#: Gain of the Xavier-normal initialisation of the reference ``init_parameters``.
INIT_GAIN = 3.26033


@keras.saving.register_keras_serializable(package="tfnas")
class ZenSqueezeExcite(keras.layers.Layer):
    """Squeeze-excitation of the Zen-NAS ``SE`` block (used only when training with SE).

    ``y = x * sigmoid(BN(conv1x1(ReLU(BN(conv1x1(mean_hw(x)))))))`` with ``max(1, round(C *
    ratio))`` squeezed channels and bias-free 1x1 convolutions (Hu et al., CVPR 2018,
    https://arxiv.org/abs/1709.01507; BN placement as in the reference ``PlainNet`` code).

    Args:
        ratio: squeezed channels per input channel, in ``(0, 1]``.
        momentum: BatchNorm momentum (Keras convention).
        epsilon: BatchNorm epsilon.

    Input shape: ``(B, H, W, C)``. Output shape: ``(B, H, W, C)``.
    """

    def __init__(self, ratio: float = 0.25, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not is_number(ratio) or not 0.0 < ratio <= 1.0:
            raise ValueError(f"ZenSqueezeExcite: `ratio` must be in (0, 1]. Received: ratio={ratio!r}")
        self.ratio = float(ratio)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ZenSqueezeExcite needs a known channel count. Received: input_shape={input_shape}")
        squeezed = max(1, int(round(channels * self.ratio)))
        bn = dict(momentum=self.momentum, epsilon=self.epsilon)
        self.reduce = keras.layers.Conv2D(squeezed, 1, use_bias=False, name="reduce")
        self.reduce_bn = keras.layers.BatchNormalization(name="reduce_bn", **bn)
        self.expand = keras.layers.Conv2D(channels, 1, use_bias=False, name="expand")
        self.expand_bn = keras.layers.BatchNormalization(name="expand_bn", **bn)
        pooled = (input_shape[0], 1, 1, channels)
        self.reduce.build(pooled)
        self.reduce_bn.build((input_shape[0], 1, 1, squeezed))
        self.expand.build((input_shape[0], 1, 1, squeezed))
        self.expand_bn.build(pooled)

    def call(self, inputs, training=None):
        s = ops.mean(inputs, axis=(1, 2), keepdims=True)
        s = ops.relu(self.reduce_bn(self.reduce(s), training=training))
        s = ops.sigmoid(self.expand_bn(self.expand(s), training=training))
        return inputs * s

    def compute_output_shape(self, input_shape: Tuple[Optional[int], ...]) -> Tuple[Optional[int], ...]:
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"ratio": self.ratio, "momentum": self.momentum, "epsilon": self.epsilon})
        return config


def _xavier(seed: Optional[int]) -> keras.initializers.Initializer:
    """Xavier normal with gain ``INIT_GAIN``: ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    For a depthwise kernel Keras' fans are ``(k^2 C, k^2)`` and PyTorch's ``(k^2, k^2 C)``; the
    sum, hence the standard deviation, is the same.
    """
    return keras.initializers.VarianceScaling(scale=INIT_GAIN ** 2, mode="fan_avg",
                                              distribution="untruncated_normal", seed=seed)


def build_zen_model(
    arch: Sequence[ZenBlock],
    num_classes: int,
    input_shape: Tuple[int, int, int],
    residual: bool = True,
    se: bool = False,
    drop_path_rate: Optional[float] = None,
    seed: Optional[int] = None,
    name: str = "zen_net",
) -> keras.Model:
    """The Zen-NAS MasterNet of ``arch`` as a functional ``keras.Model``: blocks -> GAP -> Dense.

    Layers are standard Keras layers (plus :class:`ZenSqueezeExcite` and ``DropPath``), named
    ``b{i}_u{j}_conv{m}`` / ``_bn{m}`` / ``_proj`` / ``_proj_bn`` / ``_se`` / ``_drop`` for unit
    ``j`` of block ``i``; the pooling layer is ``global_pool`` and the head ``classifier``.
    Initialisation follows the reference: Xavier normal (gain 3.26033) for convolution and
    dense kernels, zero biases, BN ``gamma = 1, beta = 0`` except the last BN of each residual
    unit (``gamma = 0``, only when ``residual``). BN: epsilon 1e-3, momentum 0.99.

    Args:
        arch: the blocks.
        num_classes: logits per image.
        input_shape: ``(H, W, C)`` with ``C == arch[0].cin``.
        residual: keep the shortcuts; ``False`` gives the plain network Zen-NAS scores.
        se: squeeze-excitation after the k x k (depthwise) convolution of residual units.
        drop_path_rate: ``None`` (no ``DropPath``) or a rate in ``[0, 1)`` applied to each
            residual branch before the addition (the Trainer's schedule can change it).
        seed: optional int making the initialisers (and ``DropPath`` masks) reproducible.
        name: model name.

    Returns:
        A model mapping float32 images ``(B, H, W, C)`` to logits ``(B, num_classes)``.
    """
    arch = check_arch(arch)
    num_classes = check_num_classes(num_classes, "build_zen_model")
    shape = check_image_shape(input_shape, "build_zen_model")
    if shape[2] != arch[0].cin:
        raise ValueError(f"build_zen_model: the first block {arch[0]} takes {arch[0].cin} channels but "
                         f"input_shape has {shape[2]}: {shape}")
    if drop_path_rate is not None and (not is_number(drop_path_rate) or not 0.0 <= drop_path_rate < 1.0):
        raise ValueError(f"build_zen_model: drop_path_rate must be None or in [0, 1). Received: {drop_path_rate!r}")
    if seed is not None:
        seed = check_int(seed, "seed", "build_zen_model",
                         message="{owner}: seed must be an integer or None. Received: {value!r}")

    counter = [0]

    def next_seed() -> Optional[int]:
        counter[0] += 1
        return None if seed is None else seed + counter[0]

    bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)

    def conv_bn(x, conv: ConvSpec, prefix: str, m: int, zero_gamma: bool):
        pad = (conv.kernel - 1) // 2
        padding = "same" if conv.stride == 1 else "valid"
        if conv.stride > 1 and pad:
            x = keras.layers.ZeroPadding2D(pad, name=f"{prefix}_pad{m}")(x)
        if conv.depthwise:
            layer = keras.layers.DepthwiseConv2D(conv.kernel, strides=conv.stride, padding=padding, use_bias=False,
                                                 depthwise_initializer=_xavier(next_seed()), name=f"{prefix}_conv{m}")
        else:
            layer = keras.layers.Conv2D(conv.cout, conv.kernel, strides=conv.stride, padding=padding, use_bias=False,
                                        kernel_initializer=_xavier(next_seed()), name=f"{prefix}_conv{m}")
        x = layer(x)
        gamma = "zeros" if zero_gamma else "ones"
        return keras.layers.BatchNormalization(gamma_initializer=gamma, name=f"{prefix}_bn{m}", **bn)(x)

    inputs = keras.Input(shape=shape, name="images")
    x = inputs
    for i, j, unit in arch_units(arch):
        prefix = f"b{i}_u{j}"
        shortcut_in = x
        with_shortcut = residual and unit.residual
        for m, conv in enumerate(unit.convs):
            last = m == len(unit.convs) - 1
            x = conv_bn(x, conv, prefix, m, zero_gamma=with_shortcut and last)
            if not last:
                x = keras.layers.ReLU(name=f"{prefix}_relu{m}")(x)
                if se and unit.se_after == m:
                    x = ZenSqueezeExcite(name=f"{prefix}_se")(x)
        if with_shortcut:
            if drop_path_rate is not None:
                x = DropPath(float(drop_path_rate), seed=next_seed(), name=f"{prefix}_drop")(x)
            if unit.projection:
                s = keras.layers.Conv2D(unit.cout, 1, strides=unit.stride, padding="valid", use_bias=True,
                                        kernel_initializer=_xavier(next_seed()), bias_initializer="zeros",
                                        name=f"{prefix}_proj")(shortcut_in)
                s = keras.layers.BatchNormalization(name=f"{prefix}_proj_bn", **bn)(s)
            else:
                s = shortcut_in
            x = keras.layers.Add(name=f"{prefix}_add")([x, s])
        x = keras.layers.ReLU(name=f"{prefix}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=_xavier(next_seed()), bias_initializer="zeros",
                                name="classifier")(x)
    return keras.Model(inputs, logits, name=name)
