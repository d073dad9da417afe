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

The same chain serves the other proxies that the Zen-NAS search computes on the residual-free
network (``no_reslink=True`` for every proxy in the reference ``evolution_search.py``):
:func:`plain_forward` with ``codes=True`` also accumulates the NASWOT agreement kernel of the
ReLU codes inside the traced layer functions, and :func:`plain_log_synflow` computes synflow
from one rescaled positive pass (no backward pass: see its docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.checks import is_int
from tfnas.lru import LRUCache
from tfnas.spaces.zen.blocks import ZenBlock, check_arch
from tfnas.spaces.zen.network import BN_EPSILON, build_zen_model
from tfnas.spaces.zen.units import ConvSpec, arch_units, conv_layer_names

__all__ = [
    "PlainForward",
    "build_plain_model",
    "plain_log_synflow",
    "plain_loss_gradients",
    "conv_plan",
    "draw_weights",
    "plain_forward",
    "relu_code_agreement",
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


def _batch_norm(y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``BN_train(y)`` with ``gamma = 1, beta = 0``, and the channel-mean biased batch variance."""
    shape = tf.shape(y)
    channels = shape[3]
    normalized, _, unbiased, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=y, scale=tf.ones([channels]), offset=tf.zeros([channels]), mean=tf.zeros([0]),
        variance=tf.zeros([0]), epsilon=BN_EPSILON, is_training=True)
    # The fused kernel normalises with the biased variance but returns the Bessel-corrected one.
    n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
    return normalized, tf.reduce_mean(unbiased * ((n - 1.0) / n))


def _bn_relu(y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``ReLU(BN_train(y))`` and the channel-mean biased batch variance of ``y``."""
    normalized, variance = _batch_norm(y)
    return tf.nn.relu(normalized), variance


def _conv(x: tf.Tensor, kernel: tf.Tensor, stride: int, depthwise: bool) -> tf.Tensor:
    """Convolution without bias, PyTorch padding ``(k - 1) // 2`` on each side."""
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
    return y


def relu_code_agreement(pre_activation: tf.Tensor) -> tf.Tensor:
    """NASWOT agreements of one ReLU: ``(B, B)`` float32 counts of units where two images' codes agree.

    With ``c = 1[x > 0]`` per image (``D`` units), agreements are ``D - a_i - a_j + 2 c_i . c_j``
    (``a`` = active units), one matmul instead of two.
    """
    batch = tf.shape(pre_activation)[0]
    codes = tf.cast(tf.reshape(pre_activation > 0, (batch, -1)), tf.float32)
    units = tf.cast(tf.shape(codes)[1], tf.float32)
    active = tf.reduce_sum(codes, axis=1)
    return units - active[:, None] - active[None, :] + 2.0 * tf.matmul(codes, codes, transpose_b=True)


def _conv_bn_relu(x: tf.Tensor, kernel: tf.Tensor, stride: int, depthwise: bool,
                  groups: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """``ReLU(BN_train(conv(x)))``, BN statistics taken separately over each of ``groups`` equal
    consecutive parts of the batch; returns the output and the ``(groups,)`` variances."""
    y = _conv(x, kernel, stride, depthwise)
    if groups == 1:
        out, variance = _bn_relu(y)
        return out, tf.reshape(variance, [1])
    size = tf.shape(y)[0] // groups
    parts = [_bn_relu(y[i * size:(i + 1) * size]) for i in range(groups)]
    return tf.concat([p[0] for p in parts], axis=0), tf.stack([p[1] for p in parts])


def _conv_bn_relu_codes(x: tf.Tensor, kernel: tf.Tensor, stride: int, depthwise: bool,
                        groups: int = 1) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``ReLU(BN_train(conv(x)))``, the ``(1,)`` variance and the NASWOT agreements of the ReLU
    input (one batch: ``groups`` must be 1)."""
    normalized, variance = _batch_norm(_conv(x, kernel, stride, depthwise))
    return tf.nn.relu(normalized), tf.reshape(variance, [1]), relu_code_agreement(normalized)


def _positive_conv_rescaled(x: tf.Tensor, kernel: tf.Tensor, stride: int, depthwise: bool,
                            groups: int = 1) -> Tuple[tf.Tensor, tf.Tensor]:
    """``y = conv(x, |kernel|)`` of a non-negative ``x``, returned as ``(y / max(y), log max(y))``
    (no BatchNorm, so ``groups`` plays no part).

    Keeping every layer's output at a maximum of 1 and carrying the scale as a log means a
    synflow pass cannot overflow, however deep the network.
    """
    y = _conv(x, tf.abs(kernel), stride, depthwise)
    peak = tf.reduce_max(y)
    return y / peak, tf.math.log(peak)


#: Layer functions of each kind: name -> (body, dtype).
_KINDS = {"zen": (_conv_bn_relu, tf.float32), "naswot": (_conv_bn_relu_codes, tf.float32),
          "synflow": (_positive_conv_rescaled, tf.float64)}
#: Traced layer functions by (kind, stride, depthwise, groups), each as ``(function, its one
#: concrete function)``; each is traced once. The key space is small (3 kinds x 2 strides x 2
#: convolution types x the group counts used: 12 per group count), so the bound is never reached
#: by the proxies of a search.
_LAYER_FUNCTIONS: LRUCache[Tuple[Any, Callable]] = LRUCache("zen layer functions", maxsize=32)


def _layer_function(stride: int, depthwise: bool, groups: int, kind: str = "zen") -> Callable:
    """The traced layer function of this kind, as its concrete function: called directly, it skips
    the dispatch of a ``tf.function`` call (about 0.1 ms of each layer, 7-8 % of a Zen score on
    this CPU; docs/PERFORMANCE.md), with the same graph and results."""
    def create() -> Tuple[Any, Callable]:
        body, dtype = _KINDS[kind]

        def layer(x, kernel):
            return body(x, kernel, stride, depthwise, groups)

        layer.__name__ = f"{kind}_{'depthwise' if depthwise else 'dense'}_s{stride}_g{groups}"
        spec = tf.TensorSpec([None, None, None, None], dtype)
        function = tf.function(layer, input_signature=[spec, spec])
        return function, function.get_concrete_function()

    return _LAYER_FUNCTIONS.get_or_create((kind, stride, depthwise, groups), create)[1]


def trace_count(kind: Optional[str] = None) -> int:
    """Traces made so far by the layer functions of this module (those still cached), of one
    ``kind`` (``"zen"``, ``"naswot"``, ``"synflow"``) or (``None``) of all.

    One per (kind, stride, depthwise, groups) used: at most 4 per kind and number of groups
    for all scores of a process (kinds: the Zen pass, the NASWOT pass, the synflow pass).
    """
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"trace_count: kind must be one of {sorted(_KINDS)} or None. Received: {kind!r}")
    return int(sum(f.experimental_get_tracing_count() for key, (f, _) in _LAYER_FUNCTIONS.items()
                   if kind is None or key[0] == kind))


@dataclass
class PlainForward:
    """The result of :func:`plain_forward`.

    Attributes:
      features: float32 ``(G * B, H', W', C')``: the pre-pooling feature map (after the last ReLU).
      variances: float64 ``(num_convs, G)``: for each BN (one per convolution, network order) and
        group, the mean over channels of the biased batch variance of the BN input.
      agreement: with ``codes=True``, float64 ``(B, B)``: the NASWOT kernel
        ``sum over ReLUs of (C C^T + (1 - C)(1 - C)^T)`` of the binary codes ``C = 1[x > 0]`` of
        every ReLU input (one ReLU per convolution); else ``None``.
    """

    features: np.ndarray
    variances: np.ndarray
    agreement: Optional[np.ndarray] = None

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
                  groups: int = 1, codes: bool = False) -> PlainForward:
    """Runs the plain network of ``arch`` with ``weights`` on ``images``.

    BN uses batch statistics (training mode). With ``groups = G`` the batch holds ``G``
    consecutive equal parts whose statistics are kept apart, exactly as ``G`` separate forward
    passes, in one call of each convolution (as fast as ``G`` calls on this CPU, with ``G``
    times larger buffers; the Zen score makes two calls).

    Args:
        arch: the blocks.
        weights: kernels as returned by :func:`draw_weights` (any values of those shapes).
        images: float32 ``(G * B, H, W, arch[0].cin)`` with ``B >= 2``.
        groups: ``G >= 1``.
        codes: also accumulate the NASWOT agreement kernel of the ReLU codes (``groups = 1`` only);
            it is computed inside the traced layer functions, so the activations never leave them.

    Returns:
        A :class:`PlainForward` (features, per-BN and per-group batch variances, and with
        ``codes`` the agreement kernel).
    """
    arch = check_arch(arch)
    plan = conv_plan(arch)
    _check_weights(plan, weights)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != arch[0].cin:
        raise ValueError(f"images must be (B, H, W, {arch[0].cin}); got shape {images.shape}")
    if not is_int(groups) or groups < 1 or images.shape[0] % groups or images.shape[0] // groups < 2:
        raise ValueError(f"groups must be a positive integer splitting the batch of {images.shape[0]} into "
                         f"equal parts of at least 2 images; got groups={groups!r}")
    groups = int(groups)
    if codes and groups != 1:
        raise ValueError(f"codes=True needs groups=1 (one batch); got groups={groups!r}")
    x = tf.constant(images)
    variances, agreements = [], []
    for conv, kernel in zip(plan, weights):
        if codes:
            x, var, agree = _layer_function(conv.stride, conv.depthwise, 1, "naswot")(
                x, tf.constant(kernel, tf.float32))
            agreements.append(agree)
        else:
            x, var = _layer_function(conv.stride, conv.depthwise, groups)(x, tf.constant(kernel, tf.float32))
        variances.append(var)
    agreement = None
    if codes:  # float32 counts are exact below 2**24 per ReLU; sum them in float64
        agreement = np.sum([a.numpy().astype(np.float64) for a in agreements], axis=0)
    return PlainForward(x.numpy(), np.stack([v.numpy() for v in variances]).astype(np.float64), agreement)


def plain_log_synflow(arch: Sequence[ZenBlock], weights: Sequence[np.ndarray], dense_kernel: np.ndarray,
                      input_shape: Tuple[int, int, int]) -> float:
    """``log S``, synflow of the plain network with BatchNorm removed, in closed form.

    synflow (Tanaka et al. 2020, Eq. 2; Abdelfattah et al. 2021) replaces every weight by its
    absolute value, feeds one all-ones image and scores ``S = sum_l sum_i |w_i dR/dw_i|`` with
    ``R`` the sum of the logits. Without BatchNorm and residual links the plain network is then
    a chain of convolutions with non-negative kernels on non-negative inputs: every ReLU passes
    its input unchanged, and ``R`` is linear in each layer's kernel with every input-output path
    crossing each layer once. Euler's theorem for such a function gives
    ``sum_i w_i dR/dw_i = R`` for every layer, and every term is non-negative, so
    ``S = (number of conv kernels + 1) * R`` (the ``+ 1`` is the classifier; its bias is 0 at
    the scoring initialisation). One forward pass of one image, no backward pass.

    ``R`` is computed in float64 with each layer's output rescaled to a maximum of 1 and the
    scale carried as a log, so no network overflows.

    Args:
        arch: the blocks.
        weights: one kernel per convolution (:func:`draw_weights` layout); signs are ignored.
        dense_kernel: the classifier kernel ``(C_last, num_classes)``; signs are ignored.
        input_shape: ``(H, W, arch[0].cin)``.

    Returns:
        ``log S`` (natural log).
    """
    arch = check_arch(arch)
    plan = conv_plan(arch)
    _check_weights(plan, weights)
    dense = np.abs(np.asarray(dense_kernel, dtype=np.float64))
    if dense.ndim != 2 or dense.shape[0] != plan[-1].cout:
        raise ValueError(f"dense_kernel must be ({plan[-1].cout}, num_classes); got shape {dense.shape}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or shape[2] != arch[0].cin:
        raise ValueError(f"input_shape must be (H, W, {arch[0].cin}); got {input_shape!r}")
    x = tf.ones((1,) + shape, tf.float64)
    log_scale = 0.0
    for conv, kernel in zip(plan, weights):
        x, log_peak = _layer_function(conv.stride, conv.depthwise, 1, "synflow")(x, tf.constant(kernel, tf.float64))
        log_scale += float(log_peak)
    pooled = np.mean(x.numpy()[0], axis=(0, 1))  # (C_last,), the global average pool
    total = float(pooled @ dense.sum(axis=1))  # R / exp(log_scale): sum over classes of the logits
    if not total > 0.0:
        return float("-inf")
    return math.log(len(plan) + 1) + log_scale + math.log(total)


def plain_loss_gradients(arch: Sequence[ZenBlock], weights: Sequence[np.ndarray], dense_kernel: np.ndarray,
                         images: np.ndarray, labels: np.ndarray) -> List[np.ndarray]:
    """Gradients of the mean cross-entropy w.r.t. every kernel of the plain network.

    The network of :func:`plain_forward` (BN in training mode) followed by global average
    pooling and the classifier ``logits = pooled @ dense_kernel`` (bias 0, the scoring
    initialisation); the gradients flow back through the traced layer functions, so no Keras
    model is built. This is what the loss-gradient proxies (grad_norm, snip) need.

    Args:
        arch: the blocks.
        weights: one kernel per convolution (:func:`draw_weights` layout).
        dense_kernel: ``(C_last, num_classes)``.
        images: float32 ``(B, H, W, arch[0].cin)``, ``B >= 2``.
        labels: int ``(B,)`` in ``[0, num_classes)``.

    Returns:
        float64 gradients, one per convolution kernel (network order) and last the classifier's.
    """
    arch = check_arch(arch)
    plan = conv_plan(arch)
    _check_weights(plan, weights)
    dense = np.asarray(dense_kernel, dtype=np.float32)
    if dense.ndim != 2 or dense.shape[0] != plan[-1].cout:
        raise ValueError(f"dense_kernel must be ({plan[-1].cout}, num_classes); got shape {dense.shape}")
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != arch[0].cin or images.shape[0] < 2:
        raise ValueError(f"images must be (B >= 2, H, W, {arch[0].cin}); got shape {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be ({images.shape[0]},); got shape {labels.shape}")
    kernels = [tf.constant(k, tf.float32) for k in weights] + [tf.constant(dense)]
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        x = tf.constant(images)
        for conv, kernel in zip(plan, kernels):
            x, _ = _layer_function(conv.stride, conv.depthwise, 1)(x, kernel)
        logits = tf.matmul(tf.reduce_mean(x, axis=[1, 2]), kernels[-1])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.constant(labels, tf.int32), logits=logits))
    return [np.asarray(g, np.float64) for g in tape.gradient(loss, kernels)]


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
