"""What the proxies scored from one random batch at initialisation share.

``grad_norm``, ``snip``, ``jacob_cov``, ``te_nas`` and ``naswot`` call the network once in
training mode (BatchNorm batch statistics, as the reference code's ``net.train()``) on a batch
of random images and labels: :func:`check_batch` validates the batch, :func:`preserved_variables`
leaves the caller's model as it was, :func:`weight_kernels` selects the weights zero-cost
proxies measure (:data:`KERNEL_NAMES`, also used by ``synflow``), and :func:`kernel_gradients`
gives the cross-entropy gradients of those kernels. :class:`BatchProxy` is their common base
(the ``fresh_weights`` option of their fast paths).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Tuple

import numpy as np
import tensorflow as tf

from tfnas.proxies.base import Proxy, ProxyBatch, check_batch, main_output

__all__ = [
    "KERNEL_NAMES",
    "BatchProxy",
    "check_batch",
    "cross_entropy",
    "kernel_gradients",
    "preserved_variables",
    "weight_kernels",
]

#: Variable names of the weights zero-cost proxies measure: conv/dense kernels (no biases,
#: no BatchNorm parameters), as ``get_layer_metric_array`` in zero-cost-nas (Conv2d, Linear).
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


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


class BatchProxy(Proxy):
    """Base of the proxies scored from one random batch (``grad_norm``, ``snip``, ``jacob_cov``,
    ``te_nas``, ``naswot``).

    Args:
        fresh_weights: on the NB201 fast path (:mod:`tfnas.proxies.fastpaths.nb201`), re-draw
            the kernels a cell uses for every scored cell (independent networks). Default
            ``False``: all cells of one network shape share one weight draw, made from the
            ``rng`` of the first call (common random numbers; saves the random draws, which cost
            about as much as a synflow pass).
    """

    def __init__(self, fresh_weights: bool = False):
        if not isinstance(fresh_weights, bool):
            raise ValueError(f"{type(self).__name__}: fresh_weights must be a bool. Received: {fresh_weights!r}")
        self.fresh_weights = fresh_weights
