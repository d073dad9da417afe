"""grad_norm: the norm of the loss gradient at initialisation, and the shared gradient helpers.

Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021,
https://arxiv.org/abs/2101.08134), Sec. 3: ``grad_norm = sqrt(sum_l ||dL/dW_l||^2)`` over the
convolution and dense kernels ``W_l``, with ``L`` the mean cross-entropy of one batch under
BatchNorm batch statistics (training mode). tfnas uses random Gaussian images and uniform
random labels (Zen-NAS setup). Two reductions: ``global`` (default, the tfnas spec and Zen-NAS:
the Euclidean norm over all kernels) and ``layer_sum`` (the zero-cost-nas code behind the
published NAS-Bench-201 correlations: the sum of the per-layer norms). They do not rank alike:
on 1,000 NB201 cells, Spearman with CIFAR-100 accuracy 0.467 (global) against 0.610 (layer_sum;
published 0.637; docs/RESULTS.md), so ``[proxy] grad_norm = layer_sum`` is the form to compare
with the paper.

On the ``zen`` space, grad_norm and snip score the residual-free network (as the Zen-NAS search
scores every proxy) from N(0, 1) kernels through :func:`tfnas.spaces.zen_fast.plain_loss_gradients`,
without building a Keras model (:meth:`LossGradientProxy.score_arch`).

This module also holds the helpers the loss-gradient proxies share (``snip``, ``jacob_cov``,
``te_nas``, ``naswot``): :func:`weight_kernels`, :func:`preserved_variables`,
:func:`cross_entropy` and :func:`kernel_gradients`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, List, Tuple

import numpy as np
import tensorflow as tf

from tfnas.proxies.base import Proxy, ProxyBatch, main_output, random_batch
from tfnas.registry import register_proxy
from tfnas.spaces.nb201 import Nb201Space
from tfnas.spaces.nb201_tensor import Nb201FastPath, Nb201TensorNetwork

__all__ = [
    "GradNormProxy",
    "cross_entropy",
    "kernel_gradients",
    "preserved_variables",
    "weight_kernels",
]

#: Variable names of the weights zero-cost proxies measure: conv/dense kernels (no biases,
#: no BatchNorm parameters), as ``get_layer_metric_array`` in zero-cost-nas (Conv2d, Linear).
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")

#: ``GradNormProxy`` reductions (``[proxy] grad_norm``).
REDUCTIONS = ("global", "layer_sum")


def weight_kernels(model: Any) -> List[Any]:
    """Trainable convolution / dense kernels of ``model`` (Keras variables, model order)."""
    kernels = [v for v in model.trainable_variables if v.name in KERNEL_NAMES]
    if not kernels:
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} has no trainable conv/dense kernels "
            f"(variables named {KERNEL_NAMES}); zero-cost proxies measure those"
        )
    return kernels


@contextlib.contextmanager
def preserved_variables(model: Any) -> Iterator[None]:
    """Restores every variable of ``model`` (BatchNorm moving statistics included) on exit.

    Proxies call the model with ``training=True`` (BatchNorm batch statistics, as the
    reference code's ``net.train()``), which updates the moving statistics in Keras; this
    keeps the caller's model exactly as it was.
    """
    snapshot = [(v, np.array(v.numpy(), copy=True)) for v in model.variables]
    try:
        yield
    finally:
        for var, value in snapshot:
            var.assign(value)


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy of ``logits (B, K)`` against int ``labels (B,)`` (nats)."""
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(labels, tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def kernel_gradients(model: Any, batch: ProxyBatch) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """``(kernels, dL/dkernels)`` as float64 arrays; ``L`` = mean cross-entropy, training mode.

    The model's variables are restored afterwards (:func:`preserved_variables`).
    """
    kernels = weight_kernels(model)
    images = tf.constant(batch.images)
    with preserved_variables(model):
        with tf.GradientTape() as tape:
            logits = main_output(model(images, training=True))
            loss = cross_entropy(logits, batch.labels)
        grads = tape.gradient(loss, kernels)
    values = [np.asarray(k.numpy(), np.float64) for k in kernels]
    grads = [np.zeros_like(v) if g is None else np.asarray(g, np.float64) for v, g in zip(values, grads)]
    return values, grads


def nb201_loss_gradients(network: Nb201TensorNetwork, images: tf.Tensor, labels: tf.Tensor,
                         op_ids: tf.Tensor) -> Tuple[List[tf.Variable], List[tf.Tensor]]:
    """Kernels of ``network`` and the cross-entropy gradients for cell ``op_ids`` (batch-stat BN).

    Kernels of ops the cell does not use get zero gradients.
    """
    kernels = network.kernels()
    with tf.GradientTape() as tape:
        loss = cross_entropy(network(images, op_ids, bn="batch"), labels)
    grads = tape.gradient(loss, kernels)
    grads = [tf.zeros_like(k) if g is None else g for k, g in zip(kernels, grads)]
    return kernels, grads


def check_batch(batch: ProxyBatch, who: str) -> None:
    """Raises ``ValueError`` unless ``batch`` holds inputs ``(B, ...)`` (images ``(B, H, W, C)``)
    and int labels ``(B,)`` in ``[0, num_classes)``."""
    images, labels = np.asarray(batch.images), np.asarray(batch.labels)
    if images.ndim < 2 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{who}: expected inputs (B, ...) and labels (B,); got {images.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= batch.num_classes):
        raise ValueError(f"{who}: labels must lie in [0, {batch.num_classes}); got [{labels.min()}, {labels.max()}]")


class LossGradientProxy(Proxy):
    """Shared NB201 fast path of the proxies computed from one batch's loss gradients.

    Subclasses implement :meth:`_from_gradients` (float64 arrays -> score) for the generic
    path and :meth:`_nb201_body` (a traced function of the cell) for the fast path.

    Args:
        fresh_weights: on the NB201 fast path, re-draw the kernels a cell uses for every
            scored cell (independent networks). Default ``False``: all cells of one network
            shape share one weight draw, made from the ``rng`` of the first call (common random
            numbers; saves the random draws, which cost about as much as a synflow pass).
    """

    def __init__(self, fresh_weights: bool = False):
        if not isinstance(fresh_weights, bool):
            raise ValueError(f"{type(self).__name__}: fresh_weights must be a bool. Received: {fresh_weights!r}")
        self.fresh_weights = fresh_weights
        self.nb201 = Nb201FastPath(self._nb201_body, dtype=tf.float32, fresh_weights=fresh_weights)

    def _nb201_body(self, network: Nb201TensorNetwork):
        raise NotImplementedError

    def score_gradients(self, kernels: List[np.ndarray], grads: List[np.ndarray]) -> float:
        """The score from float64 kernels and their loss gradients; subclasses that are such a
        function (grad_norm, snip) override it, which enables the Zen-space fast path."""
        raise NotImplementedError

    def score_arch(self, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                   batch_size: int, rng: np.random.Generator) -> float:
        """Scores ``arch``; on :class:`Nb201Space` through the traced arch-as-tensor network.

        On the ``zen`` space, proxies that define :meth:`score_gradients` score the residual-free
        network (as the Zen-NAS search scores every proxy) without a Keras model: kernels N(0, 1)
        (the reference's scoring initialisation), then the classifier, then the batch, all drawn
        from ``rng``, gradients from :func:`tfnas.spaces.zen_fast.plain_loss_gradients`.
        """
        from tfnas.spaces.zen import ZenSpace

        if isinstance(space, ZenSpace) and type(self).score_gradients is not LossGradientProxy.score_gradients:
            from tfnas.spaces.zen_blocks import check_arch
            from tfnas.spaces.zen_fast import draw_weights, plain_loss_gradients

            arch = check_arch(arch)
            weights = draw_weights(arch, rng)
            dense = rng.standard_normal((arch[-1].cout, num_classes)).astype(np.float32)
            batch = random_batch(rng, batch_size, input_shape, num_classes)
            check_batch(batch, self.name)
            grads = plain_loss_gradients(arch, weights, dense, batch.images, batch.labels)
            kernels = [np.asarray(w, np.float64) for w in weights] + [dense.astype(np.float64)]
            return self.score_gradients(kernels, grads)
        if not isinstance(space, Nb201Space):
            return super().score_arch(space, arch, num_classes=num_classes, input_shape=input_shape,
                                      batch_size=batch_size, rng=rng)
        batch = random_batch(rng, batch_size, input_shape, num_classes)
        out = self.nb201(space, arch, num_classes=num_classes, input_shape=input_shape, rng=rng,
                         inputs=(batch.images, batch.labels))
        return self._finish_nb201(out)

    def _finish_nb201(self, out: Any) -> float:
        return float(out)


@register_proxy("grad_norm")
class GradNormProxy(LossGradientProxy):
    """The gradient norm of the loss over conv/dense kernels at initialisation; higher is better.

    ``L`` is the mean cross-entropy of the batch's random labels, BatchNorm in training mode
    (batch statistics); the caller's weights and statistics are left unchanged. Units: nats
    per weight unit; the sign is already "higher is better" (Abdelfattah et al., ICLR 2021).

    Args:
        reduction: ``"global"``: ``sqrt(sum_l ||dL/dW_l||_F^2)`` (tfnas spec, Zen-NAS);
            ``"layer_sum"``: ``sum_l ||dL/dW_l||_F`` (zero-cost-nas, the published NB201 figures).
        fresh_weights: see :class:`LossGradientProxy`.

    Example:
        >>> proxy = GradNormProxy(reduction="layer_sum")
        >>> proxy.score(model, random_batch(rng, 64, (32, 32, 3), 10), rng)  # doctest: +SKIP
    """

    name = "grad_norm"

    def __init__(self, reduction: str = "global", fresh_weights: bool = False):
        if reduction not in REDUCTIONS:
            raise ValueError(f"grad_norm: reduction must be one of {', '.join(REDUCTIONS)}. Received: {reduction!r}")
        self.reduction = reduction
        super().__init__(fresh_weights=fresh_weights)

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "grad_norm")
        return self.score_gradients(*kernel_gradients(model, batch))

    def score_gradients(self, kernels: List[np.ndarray], grads: List[np.ndarray]) -> float:
        squares = [float(np.sum(np.square(g, dtype=np.float64))) for g in grads]
        if self.reduction == "layer_sum":
            return float(sum(math.sqrt(q) for q in squares))
        return math.sqrt(sum(squares))

    def _nb201_body(self, network: Nb201TensorNetwork):
        layer_sum = self.reduction == "layer_sum"

        def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
            _, grads = nb201_loss_gradients(network, images, labels, op_ids)
            # Unused kernels have zero gradients (norm 0); summing them costs less than a tf.cond each.
            squares = [tf.reduce_sum(tf.square(tf.cast(g, tf.float64))) for g in grads]
            if layer_sum:
                return tf.add_n([tf.sqrt(q) for q in squares])
            return tf.sqrt(tf.add_n(squares))

        return body

