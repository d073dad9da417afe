"""synflow: synaptic flow of the network with absolute weights and an all-ones input.

Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic
flow" (NeurIPS 2020, https://arxiv.org/abs/2006.05467), Eq. 2, as a network score by
Abdelfattah et al. (ICLR 2021, https://arxiv.org/abs/2101.08134): replace every weight ``w``
by ``|w|``, feed one all-ones image, let ``R`` be the sum of the logits and score
``S = sum_l sum_i |w_i * dR/dw_i|`` over the convolution and dense kernels, in float64. The
caller's model is never touched: a float64 copy is scored.

**tfnas reports ``log S``** (natural log): ``S`` spans dozens of orders of magnitude across
networks (about 1e5 .. 1e65 over the NB201 cells), the log keeps it readable and ranks
identically. A network whose output does not depend on its input (``S = 0``; 341 of the
15,625 NB201 cells) scores ``-inf``.

BatchNorm as in the zero-cost-nas reference (``synflow`` measure with ``bn=False``): BatchNorm
is removed, except that the reference's NB201 network builds its residual reduction blocks
(``ResNetBasicblock``) without the ``bn`` switch, so their two BatchNorms stay and run in
training mode (batch statistics of the single all-ones image). ``reference_bn=True`` (default)
reproduces that: BatchNorm inside :class:`tfnas.spaces.ops.ResidualReduction` blocks uses batch
statistics, every other BatchNorm is the identity. ``reference_bn=False`` removes all
BatchNorm. Both rank NB201 cells almost identically (Spearman with CIFAR-100 accuracy 0.785 for
both over the same 400 random cells); over all 15,625 cells the default gives 0.760 on
CIFAR-100 (published: 0.763).

Zen-space fast path (:mod:`tfnas.proxies.fastpaths.zen`): the residual-free network, as the
Zen-NAS search scores every proxy (``no_reslink=True``), with kernels and classifier drawn from
N(0, 1) (the reference's scoring initialisation) and BatchNorm removed;
:func:`tfnas.spaces.zen.residual_free.plain_log_synflow` then gives ``log S`` in closed form
from one rescaled forward pass (equal to the gradient computation of
:meth:`SynflowProxy.score` on the same network and weights; tested).

NB201 fast path (:mod:`tfnas.proxies.fastpaths.nb201`): one traced float64 function of the
cell's op ids over the arch-as-tensor network scores every cell (batch of one image:
with an all-ones input the batch dimension is redundant).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Set, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.proxies.base import (Proxy, ProxyBatch, check_batch, check_score_args, clone_model_for_scoring,
                                main_output)
from tfnas.proxies.gradients import KERNEL_NAMES
from tfnas.registry import register_proxy
from tfnas.spaces.ops import ResidualReduction

__all__ = ["SynflowProxy", "log_synflow"]


def log_synflow(total: float) -> float:
    """``log(total)`` for a synflow sum ``total >= 0``; ``-inf`` for 0.

    Raises:
        FloatingPointError: when ``total`` is not finite (float64 overflow in a very deep
            network); the message says so instead of returning a meaningless score.
    """
    total = float(total)
    if not math.isfinite(total):
        raise FloatingPointError(
            f"synflow overflowed float64 (sum = {total}); the network is too deep for a direct float64 pass"
        )
    if total < 0:
        raise ValueError(f"synflow sum must be >= 0; got {total}")
    return math.log(total) if total > 0 else float("-inf")


def _layers(layer: Any) -> Iterator[Any]:
    """``layer`` and all layers nested in it (Keras tracks them; no public recursive accessor)."""
    return iter(layer._flatten_layers(include_self=True, recursive=True))  # noqa: SLF001


def float64_copy(model: Any) -> Any:
    """A float64 copy of ``model`` holding the same weights (functional, sequential or subclassed
    with ``get_config``; see :func:`tfnas.proxies.base.clone_model_for_scoring`).

    Sublayers that custom layers create in ``__init__`` inherit the global dtype policy, which
    is float64 while the copy is built (:func:`tfnas.proxies.base.dtype_policy_scope`).

    Raises:
        TypeError: for a model that cannot be copied.
    """
    return clone_model_for_scoring(model, "float64")


def _linearize(clone: Any, reference_bn: bool) -> bool:
    """Absolute weights; BatchNorm -> identity (except reduction blocks when ``reference_bn``).

    Returns whether some BatchNorm must run with batch statistics (``training=True``).
    """
    kept: Set[int] = set()
    if reference_bn:
        for layer in _layers(clone):
            if isinstance(layer, ResidualReduction):
                kept.update(id(bn) for bn in _layers(layer) if isinstance(bn, keras.layers.BatchNormalization))
    for var in clone.trainable_variables:
        var.assign(tf.abs(var))
    for layer in _layers(clone):
        if not isinstance(layer, keras.layers.BatchNormalization) or id(layer) in kept:
            continue
        # Inference-mode BN with these values is x * rsqrt(1 + eps) * sqrt(1 + eps) = x; a
        # non-trainable BN stays in inference mode even when called with training=True.
        identity_scale = math.sqrt(1.0 + layer.epsilon)
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
        if layer.gamma is not None:
            layer.gamma.assign(tf.fill(layer.gamma.shape, tf.constant(identity_scale, layer.gamma.dtype)))
        else:
            layer.moving_variance.assign(tf.fill(layer.moving_variance.shape,
                                                 tf.constant(1.0 - layer.epsilon, layer.moving_variance.dtype)))
        if layer.beta is not None:
            layer.beta.assign(tf.zeros_like(layer.beta))
        layer.trainable = False
    return bool(kept)


@register_proxy("synflow")
class SynflowProxy(Proxy):
    """``log(sum |w * dR/dw|)`` with ``|w|`` weights and an all-ones image; higher is better.

    See the module docstring for the definition, the log and the BatchNorm handling.

    Args:
        reference_bn: keep BatchNorm (batch statistics) inside residual reduction blocks, as
            the zero-cost-nas NB201 network does; ``False`` removes every BatchNorm.
        fresh_weights: NB201 fast path only: re-draw the kernels a cell uses for every cell
            (default: all cells share one draw made from the first call's ``rng``).
    """

    name = "synflow"

    def __init__(self, reference_bn: bool = True, fresh_weights: bool = False):
        for key, value in (("reference_bn", reference_bn), ("fresh_weights", fresh_weights)):
            if not isinstance(value, bool):
                raise ValueError(f"SynflowProxy: {key} must be a bool. Received: {key}={value!r}")
        self.reference_bn = reference_bn
        self.fresh_weights = fresh_weights

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        """Scores ``model``; only the image shape of ``batch`` is used (one all-ones image)."""
        check_batch(batch, "synflow", labels=False)
        shape = tuple(np.asarray(batch.images).shape[1:])
        clone = float64_copy(model)
        needs_batch_stats = _linearize(clone, self.reference_bn)
        kernels = [v for v in clone.trainable_variables if v.name in KERNEL_NAMES]
        if not kernels:
            raise ValueError(f"synflow: model {getattr(model, 'name', model)!r} has no conv/dense kernels")
        ones = tf.ones((1,) + shape, tf.float32)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(tf.cast(main_output(clone(ones, training=needs_batch_stats)), tf.float64))
        grads = tape.gradient(total, kernels)
        flow = sum(float(tf.reduce_sum(tf.abs(k * g))) for k, g in zip(kernels, grads) if g is not None)
        return log_synflow(flow)

    def score_arch(self, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                   batch_size: int, rng: np.random.Generator) -> float:
        """Scores ``arch`` (fast path where registered, module docstring). ``batch_size`` is not
        used: synflow sees one all-ones image."""
        check_score_args(num_classes, input_shape, batch_size, rng, "SynflowProxy.score_arch")
        return super().score_arch(space, arch, num_classes=num_classes, input_shape=input_shape, batch_size=1,
                                  rng=rng)
