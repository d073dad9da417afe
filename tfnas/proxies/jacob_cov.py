"""jacob_cov: how differently the network's input Jacobians of a batch are correlated.

Mellor et al., "Neural Architecture Search without Training" (v1, 2020,
https://arxiv.org/abs/2006.04647v1), Sec. 3, in the form of the zero-cost-nas reference
(Abdelfattah et al., ICLR 2021): ``J`` holds one row per image, the gradient of the sum of that
image's logits with respect to the image (flattened ``H * W * C``), computed as the gradient
of the sum of all logits under BatchNorm batch statistics; ``Sigma = corrcoef(J)`` (``B x B``)
with eigenvalues ``v``; ``score = -sum_i (log(v_i + k) + 1 / (v_i + k))`` with ``k = 1e-5``.
On NAS-Bench-201 one traced arch-as-tensor network scores every cell (:mod:`tfnas.proxies.fastpaths`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfnas.proxies.base import ProxyBatch, main_output
from tfnas.proxies.gradients import BatchProxy, check_batch, preserved_variables
from tfnas.registry import register_proxy

__all__ = ["JacobCovProxy", "jacobian_score"]

#: Ridge added to the eigenvalues of the correlation matrix (reference value).
JACOB_COV_K = 1e-5


def jacobian_score(jacobians: np.ndarray, k: float = JACOB_COV_K) -> float:
    """``-sum(log(v + k) + 1 / (v + k))`` of the eigenvalues ``v`` of ``corrcoef(jacobians)``.

    A row without variance (a network whose output does not depend on its input, e.g. an
    NB201 cell with no path from input to output) leaves the correlation undefined; such a
    network scores ``-inf``, the lowest score (the reference returns NaN).

    Args:
        jacobians: ``(B, D)`` rows = flattened input gradients, ``B >= 2``.
        k: eigenvalue ridge.

    Raises:
        ValueError: for anything but a ``(B, D)`` array with ``B >= 2``.
    """
    jac = np.asarray(jacobians, np.float64)
    if jac.ndim != 2 or jac.shape[0] < 2:
        raise ValueError(f"jacob_cov needs a (B, D) Jacobian with B >= 2 images; got shape {jac.shape}")
    if not np.all(jac.std(axis=1) > 0):
        return float("-inf")
    corr = np.corrcoef(jac)
    eig = np.linalg.eigvalsh((corr + corr.T) / 2.0)
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


@register_proxy("jacob_cov")
class JacobCovProxy(BatchProxy):
    """Correlation of the input Jacobians across a batch; higher (less correlated) is better.

    The score is at most ``-B`` (all eigenvalues 1: uncorrelated Jacobians) and already has the
    "higher is better" sign of the reference. Needs a batch of at least 2 images. The caller's
    weights and BatchNorm statistics are left unchanged.
    """

    name = "jacob_cov"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "jacob_cov")
        images = tf.constant(batch.images)
        with preserved_variables(model):
            with tf.GradientTape() as tape:
                tape.watch(images)
                total = tf.reduce_sum(main_output(model(images, training=True)))
            jac = tape.gradient(total, images)
        return jacobian_score(np.reshape(jac.numpy(), (jac.shape[0], -1)))
