"""Fast evaluation of plain (residual-free) Zen networks at random initialisation.

Zero-shot proxies score a network right after initialisation, with BatchNorm in training
mode (batch statistics, ``gamma = 1``, ``beta = 0``) and, for Zen-NAS, without residual
links. Such a network is a chain of ``conv -> BN -> ReLU`` layers (every convolution of a
Zen unit is followed by BN, and every unit by ReLU once the shortcut is gone), so it can be
evaluated without building a Keras model: :func:`plain_forward` runs the chain with one
``tf.function`` per layer kind (dense or depthwise convolution, stride 1 or 2, number of
batch groups) whose input signature leaves batch, spatial and channel sizes open. Four
traces serve every Zen score of a search (:func:`trace_count`).

:func:`build_plain_model` builds the same network as a Keras model with the same weights
loaded, for checking this path against Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.spaces.zen_blocks import (
    BN_EPSILON,
    ConvSpec,
    ZenBlock,
    arch_units,
    build_zen_model,
    check_arch,
    conv_layer_names,
)

__all__ = [
    "PlainForward",
    "build_plain_model",
    "conv_plan",
    "draw_weights",
    "plain_forward",
    "trace_count",
]


def conv_plan(arch: Sequence[ZenBlock]) -> Tuple[ConvSpec, ...]:
    """Every convolution of the plain network in order; each is followed by BN and ReLU."""
    return tuple(conv for _, _, unit in arch_units(arch) for conv in unit.convs)


def draw_weights(arch: Sequence[ZenBlock], rng: np.random.Generator) -> List[np.ndarray]:
    """Kernels drawn i.i.d. from N(0, 1) (the Zen-NAS scoring init), float32, Keras layout.

    Returns one array per convolution of :func:`conv_plan`: ``(k, k, cin, cout)``, or
    ``(k, k, C, 1)`` for a depthwise convolution.
    """
    return [rng.standard_normal(conv.kernel_shape, dtype=np.float32) for conv in conv_plan(arch)]


def _bn_relu(y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``ReLU(BN_train(y))`` with ``gamma = 1, beta = 0``, and the channel-mean biased batch variance."""
    shape = tf.shape(y)
    channels = shape[3]
    normalized, _, unbiased, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=y, scale=tf.ones([channels]), offset=tf.zeros([channels]), mean=tf.zeros([0]),
        variance=tf.zeros([0]), epsilon=BN_EPSILON, is_training=True)
    # The fused kernel normalises with the biased variance but returns the Bessel-corrected one.
    n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
    return tf.nn.relu(normalized), tf.reduce_mean(unbiased * ((n - 1.0) / n))


def _conv_bn_relu(x: tf.Tensor, kernel: tf.Tensor, stride: int, depthwise: bool,
                  groups: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """``ReLU(BN_train(conv(x)))``, BN statistics taken separately over each of ``groups`` equal
    consecutive parts of the batch; returns the output and the ``(groups,)`` variances."""
    if stride == 1:
        padding = "SAME"  # symmetric for odd kernels
    else:
        pad = (tf.shape(kernel)[0] - 1) // 2
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        padding = "VALID"
    if depthwise:
        y = tf.nn.depthwise_conv2d(x, kernel, strides=[1, stride, stride, 1], padding=padding)
    else:
        y = tf.nn.conv2d(x, kernel, strides=stride, padding=padding)
    if groups == 1:
        out, variance = _bn_relu(y)
        return out, tf.reshape(variance, [1])
    size = tf.shape(y)[0] // groups
    parts = [_bn_relu(y[i * size:(i + 1) * size]) for i in range(groups)]
    return tf.concat([p[0] for p in parts], axis=0), tf.stack([p[1] for p in parts])


_SIGNATURE = [tf.TensorSpec([None, None, None, None], tf.float32), tf.TensorSpec([None, None, None, None], tf.float32)]
#: Traced layer functions by (stride, depthwise, groups); each is traced once.
_LAYER_FUNCTIONS: Dict[Tuple[int, bool, int], Callable] = {}


def _layer_function(stride: int, depthwise: bool, groups: int) -> Callable:
    key = (stride, depthwise, groups)
    if key not in _LAYER_FUNCTIONS:
        def layer(x, kernel):
            return _conv_bn_relu(x, kernel, stride, depthwise, groups)

        layer.__name__ = f"zen_{'depthwise' if depthwise else 'dense'}_s{stride}_g{groups}"
        _LAYER_FUNCTIONS[key] = tf.function(layer, input_signature=_SIGNATURE)
    return _LAYER_FUNCTIONS[key]


def trace_count() -> int:
    """Traces made so far by the layer functions of this module.

    One per (stride, depthwise, groups) used: at most 4 for all Zen scores of a process.
    """
    return int(sum(f.experimental_get_tracing_count() for f in _LAYER_FUNCTIONS.values()))


@dataclass
class PlainForward:
    """The result of :func:`plain_forward`.

    Attributes:
      features: float32 ``(G * B, H', W', C')``: the pre-pooling feature map (after the last ReLU).
      variances: float64 ``(num_convs, G)``: for each BN (one per convolution, network order) and
        group, the mean over channels of the biased batch variance of the BN input.
    """

    features: np.ndarray
    variances: np.ndarray

    def log_std(self, group: int = 0) -> np.ndarray:
        """``log(sqrt(mean_c var_c))`` of each BN for one group, ``(num_convs,)`` (``-inf`` where 0)."""
        with np.errstate(divide="ignore"):
            return 0.5 * np.log(self.variances[:, group])


def _check_weights(plan: Tuple[ConvSpec, ...], weights: Sequence[np.ndarray]) -> None:
    if len(weights) != len(plan):
        raise ValueError(f"expected {len(plan)} kernels (one per convolution of the arch), got {len(weights)}")
    for i, (conv, kernel) in enumerate(zip(plan, weights)):
        if tuple(np.shape(kernel)) != conv.kernel_shape:
            raise ValueError(f"kernel {i} has shape {tuple(np.shape(kernel))}, expected {conv.kernel_shape} for {conv}")


def plain_forward(arch: Sequence[ZenBlock], weights: Sequence[np.ndarray], images: np.ndarray,
                  groups: int = 1) -> PlainForward:
    """Runs the plain network of ``arch`` with ``weights`` on ``images``.

    BN uses batch statistics (training mode). With ``groups = G`` the batch holds ``G``
    consecutive equal parts whose statistics are kept apart, exactly as ``G`` separate forward
    passes (the Zen score runs its clean and perturbed batches as one call of each
    convolution this way).

    Args:
        arch: the blocks.
        weights: kernels as returned by :func:`draw_weights` (any values of those shapes).
        images: float32 ``(G * B, H, W, arch[0].cin)`` with ``B >= 2``.
        groups: ``G >= 1``.

    Returns:
        A :class:`PlainForward` (features and per-BN, per-group batch variances).
    """
    arch = check_arch(arch)
    plan = conv_plan(arch)
    _check_weights(plan, weights)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != arch[0].cin:
        raise ValueError(f"images must be (B, H, W, {arch[0].cin}); got shape {images.shape}")
    if (isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or images.shape[0] % groups
            or images.shape[0] // groups < 2):
        raise ValueError(f"groups must be a positive integer splitting the batch of {images.shape[0]} into "
                         f"equal parts of at least 2 images; got groups={groups!r}")
    x = tf.constant(images)
    variances = []
    for conv, kernel in zip(plan, weights):
        x, var = _layer_function(conv.stride, conv.depthwise, groups)(x, tf.constant(kernel, tf.float32))
        variances.append(var)
    return PlainForward(x.numpy(), np.stack([v.numpy() for v in variances]).astype(np.float64))


def build_plain_model(arch: Sequence[ZenBlock], weights: Optional[Sequence[np.ndarray]] = None,
                      num_classes: int = 10, input_shape: Optional[Tuple[int, int, int]] = None) -> keras.Model:
    """The residual-free Keras network of ``arch`` with ``weights`` loaded into its convolutions.

    BN layers keep ``gamma = 1, beta = 0``; the classifier keeps its initialisation (it does
    not touch the pre-pooling features). ``input_shape`` defaults to ``(32, 32, arch[0].cin)``.
    """
    arch = check_arch(arch)
    shape = tuple(input_shape) if input_shape is not None else (32, 32, arch[0].cin)
    model = build_zen_model(arch, num_classes, shape, residual=False, name="zen_plain")
    if weights is not None:
        plan = conv_plan(arch)
        _check_weights(plan, weights)
        for name, kernel in zip(conv_layer_names(arch), weights):
            model.get_layer(name).kernel.assign(np.asarray(kernel, dtype=np.float32))
    return model
