"""Keras layers shared by the cell-based search spaces (channels-last images ``(B, H, W, C)``).

The cell ops NAS-Bench-201 and DARTS have in common (``ReLUConvBN``, ``AvgPool3x3``, ``Zero``,
``Identity``) and ``DropPath``; the NB201 reduction block lives in :mod:`tfnas.spaces.ops.nb201`,
the DARTS-only ops in :mod:`tfnas.spaces.ops.darts`.

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

from typing import Any, Optional, Tuple

import keras
from keras import ops

from tfnas.checks import check_int, is_number, positive_int
from tfnas.spaces.ops.padding import conv_output_size, symmetric_pad

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "AvgPool3x3",
    "DropPath",
    "Identity",
    "ReLUConvBN",
    "Zero",
    "check_odd_kernel",
    "mish",
]

#: BatchNorm momentum matching PyTorch's default ``momentum=0.1`` (Keras keeps ``1 - 0.1``).
BN_MOMENTUM = 0.9
#: BatchNorm epsilon matching PyTorch's default.
BN_EPSILON = 1e-5

Shape = Tuple[Optional[int], ...]


def check_odd_kernel(kernel_size: Any, owner: str) -> int:
    """``kernel_size`` when it is a positive odd ``int``; else ``ValueError`` naming ``owner``."""
    kernel_size = positive_int(kernel_size, "kernel_size", owner)
    if kernel_size % 2 == 0:
        raise ValueError(f"{owner}: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
    return kernel_size


def mish(x):
    """Mish, ``x * tanh(softplus(x))`` (Misra, https://arxiv.org/abs/1908.08681, eq. 1), with
    ``softplus(x) = max(x, 0) + log(1 + exp(-|x|))``.

    The same function as ``keras.activations.mish`` (within 2e-6 absolute for ``|x| <= 30``), but
    every intermediate is bounded by ``|x|``. The TFLite converter lowers a plain ``softplus`` to
    ``log(1 + exp(x))``, whose ``exp(x)`` reaches 1e5 in a calibrated network, so int8
    quantization flattened every small activation to zero (a lite network's int8 logits were
    unrelated to its float ones). A training step of the SLNAS paper network costs the same (CPU).
    """
    return x * ops.tanh(ops.relu(x) + ops.log1p(ops.exp(-ops.abs(x))))


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
        self.filters = positive_int(filters, "filters", "ReLUConvBN")
        self.kernel_size = positive_int(kernel_size, "kernel_size", "ReLUConvBN")
        if kernel_size % 2 == 0:
            raise ValueError(f"ReLUConvBN: `kernel_size` must be odd. Received: kernel_size={kernel_size}")
        self.strides = positive_int(strides, "strides", "ReLUConvBN")
        self.dilation = positive_int(dilation, "dilation", "ReLUConvBN")
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
            x = symmetric_pad(x, self._explicit_pad)
        x = self.conv(x)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, _ = input_shape
        k, s, d = self.kernel_size, self.strides, self.dilation
        return (b, conv_output_size(h, k, s, d), conv_output_size(w, k, s, d), self.filters)

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
        self.strides = positive_int(strides, "strides", "AvgPool3x3")

    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs):
        padded = symmetric_pad(inputs, 1)
        # Window means of the zero-padded input include the zeros; rescale by the fraction of
        # the window that lies inside the image (the same mean taken over a ones map).
        mean_with_zeros = ops.average_pool(padded, 3, strides=self.strides, padding="valid")
        inside = symmetric_pad(ops.ones_like(inputs[:1, :, :, :1]), 1)
        fraction_inside = ops.average_pool(inside, 3, strides=self.strides, padding="valid")
        return mean_with_zeros / fraction_inside

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        b, h, w, c = input_shape
        return (b, conv_output_size(h, 3, self.strides, 1), conv_output_size(w, 3, self.strides, 1), c)

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
        self.strides = positive_int(strides, "strides", "Zero")

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
        if seed is not None:
            seed = check_int(seed, "seed", "DropPath",
                             message="{owner}: `seed` must be an integer or None. Received: seed={value!r}")
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
        if not is_number(rate) or not 0.0 <= rate < 1.0:
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


def with_list_children(children, lists):
    """``children`` plus every layer of ``lists`` as ``NAME_INDEX``: TensorFlow checkpoints
    (``tf.train.Checkpoint``, the Trainer's resume checkpoints, ``load_weights``) do not see
    layers kept in Python lists, so a layer holding sublayers in a list returns this from
    ``_trackable_children``."""
    out = dict(children)
    for name, layers in lists:
        for i, layer in enumerate(layers):
            if layer is not None:
                out.setdefault(f"{name}_{i}", layer)
    return out


def build_once(layer, shape) -> None:
    """Builds ``layer`` unless it is built already (a shared layer keeps its variables)."""
    if not layer.built:
        layer.build(tuple(shape))
