"""The NAS-Bench-201 residual reduction block (Dong & Yang, ICLR 2020, https://arxiv.org/abs/2001.00326).

Conventions (BatchNorm defaults, symmetric padding, no conv bias before an affine BatchNorm)
are those of :mod:`tfnas.spaces.ops.common`.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import keras

from tfnas.checks import positive_int
from tfnas.spaces.ops.common import BN_EPSILON, BN_MOMENTUM, ReLUConvBN

__all__ = ["ResidualReduction"]

Shape = Tuple[Optional[int], ...]


@keras.saving.register_keras_serializable(package="tfnas")
class ResidualReduction(keras.layers.Layer):
    """The NAS-Bench-201 reduction block (``ResNetBasicblock`` with stride 2).

    ``y = ReLUConvBN_3x3(ReLUConvBN_3x3,s2(x)) + conv_1x1(avgpool_2x2,s2(x))``; the shortcut
    has no BatchNorm and no bias. Trainable parameters with ``affine=True``:
    ``9 * C_in * F + 2F + 9 * F * F + 2F + C_in * F`` for ``F = filters`` (14,464 for 16 -> 32).

    Args:
        filters: output channels.
        affine: whether the two BatchNorms have trainable ``gamma``/``beta``.
        momentum: BatchNorm momentum (Keras convention).
        epsilon: BatchNorm epsilon.
        kernel_initializer: initializer of the three convolution kernels.

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
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", "ResidualReduction")
        self.affine = bool(affine)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        init = keras.initializers.serialize(self.kernel_initializer)
        common = dict(affine=self.affine, momentum=self.momentum, epsilon=self.epsilon, kernel_initializer=init)
        self.conv_a = ReLUConvBN(self.filters, 3, strides=2, name="conv_a", **common)
        self.conv_b = ReLUConvBN(self.filters, 3, strides=1, name="conv_b", **common)
        self.pool = keras.layers.AveragePooling2D(pool_size=2, strides=2, padding="valid", name="shortcut_pool")
        self.shortcut = keras.layers.Conv2D(
            self.filters, 1, use_bias=False, kernel_initializer=init, name="shortcut_conv"
        )

    def build(self, input_shape: Shape) -> None:
        input_shape = tuple(input_shape)
        for axis, size in (("height", input_shape[1]), ("width", input_shape[2])):
            if size is not None and size % 2:
                raise ValueError(
                    f"ResidualReduction needs an even {axis} (the conv and pooling paths must agree). "
                    f"Received: input_shape={input_shape}"
                )
        self.conv_a.build(input_shape)
        mid = self.conv_a.compute_output_shape(input_shape)
        self.conv_b.build(mid)
        self.pool.build(input_shape)
        self.shortcut.build(self.pool.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        branch = self.conv_b(self.conv_a(inputs, training=training), training=training)
        return branch + self.shortcut(self.pool(inputs))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        return (b, None if h is None else h // 2, None if w is None else w // 2, self.filters)

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
