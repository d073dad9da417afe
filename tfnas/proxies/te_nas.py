"""te_nas: the condition number of the neural tangent kernel at initialisation.

Chen, Gong & Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A Theoretically
Inspired Perspective" (TE-NAS, ICLR 2021, https://arxiv.org/abs/2102.11535), Sec. 3.1.1: for a
batch of ``B`` images, ``J`` holds one row per image, the gradient of the sum of that image's
logits with respect to the weights (per-sample gradients; BatchNorm uses the batch statistics,
so each row is taken through the whole batch as in the reference); ``K = J J^T`` (``B x B``)
and ``kappa = lambda_max(K) / lambda_min(K)``. TE-NAS ranks lower ``kappa`` as better, so
``score = -kappa``. The weights are the convolution and dense kernels (the reference also
includes affine BatchNorm scales, which are 1 at initialisation). The second TE-NAS term,
the number of linear regions, is not computed (the Zen-NAS evolution uses only the NTK term).

Cost: ``B`` backward passes per network (one per image), so use small batches (8-16) on CPU.
"""

from __future__ import annotations

from typing import Any, List

import numpy as np
import tensorflow as tf

from tfnas.proxies.base import ProxyBatch, main_output
from tfnas.proxies.gradients import BatchProxy, check_batch, preserved_variables, weight_kernels
from tfnas.registry import register_proxy

__all__ = ["TeNasProxy", "ntk_score"]


def ntk_score(ntk: np.ndarray) -> float:
    """``-lambda_max / lambda_min`` of a ``(B, B)`` NTK; ``-inf`` when ``lambda_min <= 0`` (singular)."""
    ntk = np.asarray(ntk, np.float64)
    if ntk.ndim != 2 or ntk.shape[0] != ntk.shape[1] or ntk.shape[0] < 2:
        raise ValueError(f"te_nas needs a square (B, B) NTK with B >= 2; got shape {ntk.shape}")
    eig = np.linalg.eigvalsh((ntk + ntk.T) / 2.0)
    if not eig[0] > 0:
        return float("-inf")
    return float(-eig[-1] / eig[0])


def _ntk_from_jacobians(jacobians: List[Any], batch: int) -> tf.Tensor:
    """``sum_k J_k J_k^T`` (float64 ``(B, B)``) over per-kernel Jacobians ``(B, ...)``."""
    blocks = [tf.reshape(tf.cast(j, tf.float64), (batch, -1)) for j in jacobians if j is not None]
    return tf.add_n([tf.matmul(b, b, transpose_b=True) for b in blocks])


@register_proxy("te_nas")
class TeNasProxy(BatchProxy):
    """``-cond(NTK)`` of a batch at initialisation; higher (better conditioned) is better.

    Always ``<= -1``; ``-inf`` for a singular NTK (e.g. a network whose output ignores its
    input). Needs a batch of at least 2 images and costs one backward pass per image. The
    caller's weights and BatchNorm statistics are left unchanged.
    """

    name = "te_nas"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "te_nas")
        kernels = weight_kernels(model)
        images = tf.constant(batch.images)
        size = int(images.shape[0])
        with preserved_variables(model):
            with tf.GradientTape(persistent=True) as tape:
                per_image = tf.reduce_sum(main_output(model(images, training=True)), axis=1)
            jac = tape.jacobian(per_image, kernels, experimental_use_pfor=False)
            del tape
        return ntk_score(_ntk_from_jacobians(jac, size).numpy())
