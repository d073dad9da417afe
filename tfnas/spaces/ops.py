"""Keras layers shared by the cell-based search spaces (channels-last images ``(B, H, W, C)``).

The conventions follow the NAS-Bench-201 PyTorch networks (Dong & Yang, ICLR 2020,
https://arxiv.org/abs/2001.00326, Sec. 2.1 and the ``cell_operations`` of its reference code)
so that trainable parameter counts match the published figures:

- convolutions have no bias when followed by an affine BatchNorm (``bias = not affine``);
- BatchNorm uses PyTorch's defaults, i.e. ``momentum=0.9`` in Keras terms (PyTorch 0.1) and
  ``epsilon=1e-5``; its ``gamma``/``beta`` are the trainable weights, the moving statistics
  are non-trainable;
- padding is symmetric, ``dilation * (kernel_size - 1) // 2`` on each side, as in PyTorch
  (TensorFlow's ``"same"`` pads asymmetrically when the stride is 2);
- average pooling excludes the padding from the average (PyTorch ``count_include_pad=False``).

Every layer is registered with ``keras.saving.register_keras_serializable(package="tfnas")``
so ``.keras`` files reload without ``custom_objects``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import keras
import numpy as np
from keras import ops

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "AvgPool3x3",
    "DropPath",
    "Identity",
    "ReLUConvBN",
    "ResidualReduction",
    "Zero",
    "conv_output_shape",
]

#: BatchNorm momentum matching PyTorch's default ``momentum=0.1`` (Keras keeps ``1 - 0.1``).
BN_MOMENTUM = 0.9
#: BatchNorm epsilon matching PyTorch's default.
BN_EPSILON = 1e-5

Shape = Tuple[Optional[int], ...]


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def _conv_output_size(size: Optional[int], kernel_size: int, strides: int, dilation: int) -> Optional[int]:
    """Spatial output size of a convolution with symmetric padding ``dilation * (k - 1) // 2``."""
    if size is None:
        return None
    pad = dilation * (kernel_size - 1) // 2
    return (size + 2 * pad - dilation * (kernel_size - 1) - 1) // strides + 1


def _symmetric_pad(x, pad: int):
    """Zero-pads the two spatial axes of ``(B, H, W, C)`` by ``pad`` on each side."""
    return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])


@keras.saving.register_keras_serializable(package="tfnas")
class ReLUConvBN(keras.layers.Layer):
    """ReLU -> Conv2D -> BatchNorm, the convolution op of DARTS / NAS-Bench-201 cells.

    ``y = BN(conv(relu(x)))``; the convolution has no bias when the BatchNorm is affine
    (NB201 ``ReLUConvBN`` uses ``bias=not affine``), so with ``affine=True`` the trainable
    parameters are ``k * k * C_in * filters + 2 * filters``.

    Example:
        >>> ReLUConvBN(16, 3)(keras.ops.ones((2, 8, 8, 16))).shape
        TensorShape([2, 8, 8, 16])

    Args:
        filters: output channels.
        kernel_size: odd square kernel size.
        strides: convolution stride (1 or more); the padding is symmetric as in PyTorch.
        dilation: dilation rate; must be 1 when ``strides > 1``.
        affine: whether the BatchNorm has trainable ``gamma``/``beta`` (then the conv has no bias).
        momentum: BatchNorm moving-average momentum (Keras convention).
        epsilon: BatchNorm epsilon.
        kernel_initializer: initializer of the convolution kernel.

    Input shape: ``(B, H, W, C_in)``.
    Output shape: ``(B, H', W', filters)`` with
    ``H' = (H + 2p - dilation * (kernel_size - 1) - 1) // strides + 1``, ``p = dilation * (kernel_size - 1) // 2``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation: int = 1,
        affine: bool = True,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPSILON,
        kernel_initializer: Any = "he_normal",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters", "ReLUConvBN")
        self.kernel_size = _positive_int(kernel_size, "kernel_size", "ReLUConvBN")
        if kernel_size % 2 == 0:
            raise ValueError(f"ReLUConvBN: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
        self.strides = _positive_int(strides, "strides", "ReLUConvBN")
        self.dilation = _positive_int(dilation, "dilation", "ReLUConvBN")
        if strides > 1 and dilation > 1:
            raise ValueError(
                "ReLUConvBN: `strides` and `dilation` cannot both exceed 1. "
                f"Received: strides={strides}, dilation={dilation}"
            )
        self.affine = bool(affine)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._pad = self.dilation * (self.kernel_size - 1) // 2
        # With stride 1 and an odd kernel, "same" equals symmetric padding and avoids a pad op.
        same = self.strides == 1
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding="same" if same else "valid",
            dilation_rate=self.dilation,
            use_bias=not self.affine,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            name="conv",
        )
        self._explicit_pad = 0 if same else self._pad
        self.bn = keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, center=self.affine, scale=self.affine, name="bn"
        )

    def build(self, input_shape: Shape) -> None:
        self.conv.build(tuple(input_shape))
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = ops.relu(inputs)
        if self._explicit_pad:
            x = _symmetric_pad(x, self._explicit_pad)
        x = self.conv(x)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        k, s, d = self.kernel_size, self.strides, self.dilation
        return (b, _conv_output_size(h, k, s, d), _conv_output_size(w, k, s, d), self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "dilation": self.dilation,
                "affine": self.affine,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class AvgPool3x3(keras.layers.Layer):
    """3x3 average pooling with padding 1 that excludes the padding from the average.

    ``y[i, j] = sum_{(u, v) in N(i, j)} x[u, v] / |N(i, j)|`` where ``N(i, j)`` is the part of
    the 3x3 window inside the image (PyTorch ``AvgPool2d(3, stride, 1, count_include_pad=False)``,
    the NAS-Bench-201 ``avg_pool_3x3`` op). Computed as a zero-padded window sum divided by the
    same window sum of a ones map, so a corner pixel averages 4 values, an edge pixel 6.

    Args:
        strides: pooling stride.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, (H - 1) // strides + 1, (W - 1) // strides + 1, C)``.
    """

    def __init__(self, strides: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.strides = _positive_int(strides, "strides", "AvgPool3x3")

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs):
        padded = _symmetric_pad(inputs, 1)
        # Window means of the zero-padded input include the zeros; rescale by the fraction of
        # the window that lies inside the image (the same mean taken over a ones map).
        mean_with_zeros = ops.average_pool(padded, 3, strides=self.strides, padding="valid")
        inside = _symmetric_pad(ops.ones_like(inputs[:1, :, :, :1]), 1)
        fraction_inside = ops.average_pool(inside, 3, strides=self.strides, padding="valid")
        return mean_with_zeros / fraction_inside

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, c = input_shape
        return (b, _conv_output_size(h, 3, self.strides, 1), _conv_output_size(w, 3, self.strides, 1), c)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class Zero(keras.layers.Layer):
    """The ``none`` op: zeros shaped like the (strided) input.

    ``y = 0 * x[:, ::strides, ::strides, :]`` (NB201 ``Zero``). Multiplying by zero rather
    than creating fresh zeros keeps the op connected to its input, so upstream weights get
    zero (not missing) gradients.

    Args:
        strides: spatial subsampling step.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, ceil(H / strides), ceil(W / strides), C)``.
    """

    def __init__(self, strides: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.strides = _positive_int(strides, "strides", "Zero")

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs):
        s = self.strides
        x = inputs if s == 1 else inputs[:, ::s, ::s, :]
        return x * ops.cast(0, inputs.dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, c = input_shape
        s = self.strides
        return (b, None if h is None else -(-h // s), None if w is None else -(-w // s), c)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class Identity(keras.layers.Layer):
    """The ``skip_connect`` op at stride 1: ``y = x``.

    Input shape: any. Output shape: same as the input.
    """

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="tfnas")
class DropPath(keras.layers.Layer):
    """Drops whole samples of a branch (stochastic depth), active only when training.

    ``y = x * m / (1 - rate)`` with one Bernoulli ``m ~ B(1 - rate)`` per sample (Larsson et
    al., FractalNet, https://arxiv.org/abs/1605.07648; as used on DARTS cells). At inference
    ``y = x``; at ``rate == 0`` the mask is always 1, so ``y = x`` too. Randomness comes from a
    ``keras.random.SeedGenerator`` owned by the layer and seeded by ``seed``.

    The current rate lives in a non-trainable scalar variable (initialised to ``rate``) that
    ``call`` reads, so the Trainer's drop-path schedule can change it between epochs through
    ``set_drop_path_rate`` without retracing (protocol in ``tfnas.train.drop_path``).

    Args:
        rate: initial probability of dropping a sample, in ``[0, 1)``.
        seed: integer seed of the layer's seed generator (``None``: unseeded).

    Input shape: ``(B, ...)``. Output shape: same as the input.
    """

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = self._check_rate(rate)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"DropPath: `seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate_variable = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.rate),
            trainable=False,
            name="drop_path_rate",
        )

    @staticmethod
    def _check_rate(rate: Any) -> float:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"DropPath: `rate` must be a float in [0, 1). Received: rate={rate!r}")
        return float(rate)

    def set_drop_path_rate(self, rate: float) -> None:
        """Sets the current drop rate (the Trainer calls this before each epoch)."""
        self.rate_variable.assign(self._check_rate(rate))

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        keep = 1.0 - ops.cast(self.rate_variable, inputs.dtype)
        mask_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(mask_shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = ops.floor(keep + noise)
        return inputs * (mask / keep)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


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
        self.filters = _positive_int(filters, "filters", "ResidualReduction")
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


def conv_output_shape(
    input_shape: Sequence[Optional[int]], kernel_size: int, strides: int = 1, dilation: int = 1
) -> Tuple[Optional[int], Optional[int]]:
    """Spatial ``(H', W')`` of a symmetric-padded convolution on ``(H, W)`` (used by FLOP counts)."""
    h, w = input_shape[0], input_shape[1]
    return _conv_output_size(h, kernel_size, strides, dilation), _conv_output_size(w, kernel_size, strides, dilation)


# ---- DARTS cell ops (Liu et al., ICLR 2019, https://arxiv.org/abs/1806.09055, ``operations.py``) ----


def _spatial_conv_plan(kernel_size: int, strides: int, dilation: int, owner: str) -> Tuple[str, int, int, int, int]:
    """How a (depthwise) convolution reproduces PyTorch's symmetric padding in Keras.

    Returns ``(padding, explicit_pad, subsample, conv_strides, conv_dilation)``: pad both spatial
    axes by ``explicit_pad`` zeros, keep every ``subsample``-th row/column, then convolve with
    ``padding``/``conv_strides``/``conv_dilation``.

    * stride 1: ``"same"`` (symmetric for an odd effective kernel);
    * stride ``s > 1`` without dilation: pad ``p = (k - 1) // 2``, then a ``"valid"`` stride-``s`` conv;
    * stride ``s > 1`` with dilation ``d`` (``d % s == 0``): TensorFlow has no strided dilated
      depthwise conv, but ``y[i] = sum_k x_pad[s*i + d*k]`` equals a stride-1 conv with dilation
      ``d / s`` over ``x_pad[::s]``, so pad ``p = d * (k - 1) // 2``, subsample by ``s`` and
      convolve ``"valid"``. Output sizes equal PyTorch's ``floor((H + 2p - d(k-1) - 1) / s) + 1``.
    """
    if strides == 1:
        return "same", 0, 1, 1, dilation
    pad = dilation * (kernel_size - 1) // 2
    if dilation == 1:
        return "valid", pad, 1, strides, 1
    if dilation % strides:
        raise ValueError(
            f"{owner}: a strided dilated convolution needs `dilation` to be a multiple of `strides`. "
            f"Received: strides={strides}, dilation={dilation}"
        )
    return "valid", pad, strides, 1, dilation // strides


def _apply_spatial_conv(x, conv, plan: Tuple[str, int, int, int, int]):
    _, pad, subsample, _, _ = plan
    if pad:
        x = _symmetric_pad(x, pad)
    if subsample > 1:
        x = x[:, ::subsample, ::subsample, :]
    return conv(x)


def _check_odd_kernel(kernel_size: Any, owner: str) -> int:
    kernel_size = _positive_int(kernel_size, "kernel_size", owner)
    if kernel_size % 2 == 0:
        raise ValueError(f"{owner}: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
    return kernel_size


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
        self.filters = _positive_int(filters, "filters", type(self).__name__)
        self.affine = bool(affine)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _bn(self, name: str) -> keras.layers.BatchNormalization:
        return keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, center=self.affine, scale=self.affine, name=name
        )

    def _depthwise(self, kernel_size: int, plan: Tuple[str, int, int, int, int], name: str):
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
        self.kernel_size = _check_odd_kernel(kernel_size, "SepConv")
        self.strides = _positive_int(strides, "strides", "SepConv")
        self._plan1 = _spatial_conv_plan(self.kernel_size, self.strides, 1, "SepConv")
        self._plan2 = _spatial_conv_plan(self.kernel_size, 1, 1, "SepConv")
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
        self.dw1.build(_padded_shape(input_shape, self._plan1))
        self.pw1.build(mid)
        self.bn1.build(mid)
        self.dw2.build(mid)
        self.pw2.build(mid)
        self.bn2.build(mid[:3] + (self.filters,))

    def call(self, inputs, training=None):
        x = _apply_spatial_conv(ops.relu(inputs), self.dw1, self._plan1)
        x = self.bn1(self.pw1(x), training=training)
        x = _apply_spatial_conv(ops.relu(x), self.dw2, self._plan2)
        return self.bn2(self.pw2(x), training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        k, s = self.kernel_size, self.strides
        return (b, _conv_output_size(h, k, s, 1), _conv_output_size(w, k, s, 1), self.filters)

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
        self.kernel_size = _check_odd_kernel(kernel_size, "DilConv")
        self.strides = _positive_int(strides, "strides", "DilConv")
        self.dilation = _positive_int(dilation, "dilation", "DilConv")
        self._plan = _spatial_conv_plan(self.kernel_size, self.strides, self.dilation, "DilConv")
        self.dw = self._depthwise(self.kernel_size, self._plan, "dw")
        self.pw = self._pointwise(self.filters, "pw")
        self.bn = self._bn("bn")

    def build(self, input_shape: Shape) -> None:
        input_shape = tuple(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"DilConv needs a known channel count. Received: input_shape={input_shape}")
        mid = self.compute_output_shape(input_shape)[:3] + (input_shape[-1],)
        self.dw.build(_padded_shape(input_shape, self._plan))
        self.pw.build(mid)
        self.bn.build(mid[:3] + (self.filters,))

    def call(self, inputs, training=None):
        x = _apply_spatial_conv(ops.relu(inputs), self.dw, self._plan)
        return self.bn(self.pw(x), training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        k, s, d = self.kernel_size, self.strides, self.dilation
        return (b, _conv_output_size(h, k, s, d), _conv_output_size(w, k, s, d), self.filters)

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
    Stride 1 uses TF ``"same"`` pooling (which ignores padding); stride 2 pads one row/column of
    the dtype's lowest value on each side, as PyTorch does, and pools ``"valid"`` (TF ``"same"``
    would pad only after and shift the windows).

    Args:
        strides: pooling stride.

    Input shape: ``(B, H, W, C)``.
    Output shape: ``(B, (H - 1) // strides + 1, (W - 1) // strides + 1, C)``.
    """

    def __init__(self, strides: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.strides = _positive_int(strides, "strides", "MaxPool3x3")

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs):
        if self.strides == 1:
            return ops.max_pool(inputs, 3, strides=1, padding="same")
        lowest = float(np.finfo(keras.backend.standardize_dtype(inputs.dtype)).min)
        padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=lowest)
        return ops.max_pool(padded, 3, strides=self.strides, padding="valid")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, c = input_shape
        return (b, _conv_output_size(h, 3, self.strides, 1), _conv_output_size(w, 3, self.strides, 1), c)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"strides": self.strides})
        return config


def _padded_shape(input_shape: Shape, plan: Tuple[str, int, int, int, int]) -> Shape:
    """Shape a conv built by ``_spatial_conv_plan`` sees after explicit padding and subsampling."""
    _, pad, subsample, _, _ = plan
    b, h, w, c = input_shape

    def size(n: Optional[int]) -> Optional[int]:
        return None if n is None else -(-(n + 2 * pad) // subsample)

    return (b, size(h), size(w), c)


__all__ += ["DilConv", "FactorizedReduce", "MaxPool3x3", "SepConv"]
