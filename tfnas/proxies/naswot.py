"""naswot: how distinct the ReLU activation patterns of a batch are at initialisation.

Mellor et al., "Neural Architecture Search without Training" (ICML 2021,
https://arxiv.org/abs/2006.04647), Sec. 3: every ReLU turns its input ``x_i`` (one row per
image, flattened) into a binary code ``c_i = 1[x_i > 0]``; the kernel
``K = sum over ReLUs of (C C^T + (1 - C)(1 - C)^T)`` counts, for each pair of images, the
units on which their codes agree (``N_A - d_H(c_i, c_j)`` summed over ReLUs);
``score = log|det K|`` (``slogdet``). BatchNorm uses batch statistics, as the reference
network in training mode.

Finding the ReLUs of any Keras model: the model is traced once into a graph and every
``Relu``/``Relu6`` op counts as one ReLU (also those called inside custom layers such as
:class:`tfnas.spaces.ops.ReLUConvBN`, which apply ``ops.relu`` rather than a ReLU layer);
the graph is pruned to fetch their inputs. A ReLU applied to the same tensor by two layers
counts twice, as two ReLU modules do in the reference.

Zen-space fast path (:mod:`tfnas.proxies.fastpaths.zen`): the residual-free network, as the
Zen-NAS search scores every proxy (``no_reslink=True``), with N(0, 1) kernels, evaluated by
:func:`tfnas.spaces.zen.residual_free.plain_forward` with ``codes=True`` (one ReLU per
convolution; the kernel is accumulated inside the traced layer functions, no Keras model is
built). Equal to :meth:`NaswotProxy.score` on the same network and weights
(tested). On NAS-Bench-201 one traced arch-as-tensor network scores every cell
(:mod:`tfnas.proxies.fastpaths.nb201`).
"""

from __future__ import annotations

from typing import Any, List

import numpy as np
import tensorflow as tf

from tfnas.proxies.base import ProxyBatch, scored_network
from tfnas.proxies.gradients import BatchProxy, check_batch, preserved_variables
from tfnas.registry import register_proxy

__all__ = ["NaswotProxy", "activation_kernel", "relu_inputs"]

#: Graph op types treated as ReLUs (their input is the pre-activation).
RELU_OP_TYPES = ("Relu", "Relu6")


def relu_inputs(model: Any, images: np.ndarray) -> List[np.ndarray]:
    """Inputs of every ReLU op of ``model(images, training=True)``, each ``(B, ...)`` float32.

    The model is traced into a graph (``tf.compat.v1.wrap_function``) and pruned to fetch the
    first input of each ``Relu``/``Relu6`` op, in graph order. The model's variables are
    restored afterwards.

    Raises:
        ValueError: when the model applies no ReLU.
    """
    images = np.asarray(images, np.float32)
    spec = tf.TensorSpec(images.shape, tf.float32)
    with preserved_variables(model):
        wrapped = tf.compat.v1.wrap_function(lambda x: model(x, training=True), [spec])
        relus = [op for op in wrapped.graph.get_operations() if op.type in RELU_OP_TYPES]
        if not relus:
            raise ValueError(
                f"naswot: model {getattr(model, 'name', model)!r} applies no ReLU (graph op types {RELU_OP_TYPES}); "
                "NASWOT needs ReLU activations"
            )
        fetch = wrapped.prune(wrapped.inputs[0], [op.inputs[0] for op in relus])
        values = fetch(tf.constant(images))
    return [np.asarray(v) for v in values]


def activation_kernel(pre_activations: List[np.ndarray], weights: Any = None) -> np.ndarray:
    """``K = sum_t w_t (C_t C_t^T + (1 - C_t)(1 - C_t)^T)``, ``C_t = 1[x_t > 0]`` flattened per image.

    Args:
        pre_activations: ReLU inputs, each ``(B, ...)``.
        weights: optional multiplicity ``w_t`` of each (default 1).

    Returns:
        ``(B, B)`` float64: entry ``(i, j)`` counts the ReLU units where images ``i`` and ``j``
        are both active or both inactive.
    """
    if not pre_activations:
        raise ValueError("naswot: no ReLU inputs given")
    batch = pre_activations[0].shape[0]
    kernel = np.zeros((batch, batch), np.float64)
    weights = [1.0] * len(pre_activations) if weights is None else list(weights)
    for x, w in zip(pre_activations, weights):
        codes = (np.reshape(x, (batch, -1)) > 0).astype(np.float32)
        # Integer counts below 2**24 are exact in float32; accumulate in float64.
        agree = codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T
        kernel += float(w) * agree.astype(np.float64)
    return kernel


def log_abs_det(kernel: np.ndarray) -> float:
    """``log|det K|``; ``-inf`` for a singular ``K`` (two images with identical codes everywhere)."""
    sign, logdet = np.linalg.slogdet(np.asarray(kernel, np.float64))
    return float(logdet) if sign != 0 else float("-inf")


@register_proxy("naswot")
class NaswotProxy(BatchProxy):
    """``log|det K|`` of the ReLU-code agreement kernel of a batch; higher is better.

    ``K`` is ``(B, B)``; larger when the images' activation patterns differ more. A batch in
    which two images share every code gives a singular ``K`` and the score ``-inf``. The
    caller's weights and BatchNorm statistics are left unchanged.
    """

    name = "naswot"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "naswot")
        return log_abs_det(activation_kernel(relu_inputs(scored_network(model), batch.images)))
