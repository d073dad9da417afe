"""grad_norm: the norm of the loss gradient at initialisation.

Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021,
https://arxiv.org/abs/2101.08134), Sec. 3: ``grad_norm = sqrt(sum_l ||dL/dW_l||^2)`` over the
convolution and dense kernels ``W_l``, with ``L`` the mean cross-entropy of one batch under
BatchNorm batch statistics (training mode). tfnas uses random Gaussian images and uniform
random labels (Zen-NAS setup). Two reductions: ``global`` (default, the tfnas spec and Zen-NAS:
the Euclidean norm over all kernels) and ``layer_sum`` (the zero-cost-nas code behind the
published NAS-Bench-201 correlations: the sum of the per-layer norms). They do not rank alike
(docs/RESULTS.md), so ``[proxy] grad_norm = layer_sum`` is the form to compare with the paper.

On the ``zen`` space grad_norm scores the residual-free network (as the Zen-NAS search scores
every proxy) without building a Keras model, and on NAS-Bench-201 through one traced
arch-as-tensor network (:mod:`tfnas.proxies.fastpaths`).
"""

from __future__ import annotations

import math
from typing import Any, List

import numpy as np

from tfnas.proxies.base import ProxyBatch
from tfnas.proxies.gradients import BatchProxy, check_batch, kernel_gradients
from tfnas.registry import register_proxy

__all__ = ["GradNormProxy", "REDUCTIONS"]

#: ``GradNormProxy`` reductions (``[proxy] grad_norm``).
REDUCTIONS = ("global", "layer_sum")


@register_proxy("grad_norm")
class GradNormProxy(BatchProxy):
    """The gradient norm of the loss over conv/dense kernels at initialisation; higher is better.

    ``L`` is the mean cross-entropy of the batch's random labels, BatchNorm in training mode
    (batch statistics); the caller's weights and statistics are left unchanged. Units: nats
    per weight unit; the sign is already "higher is better" (Abdelfattah et al., ICLR 2021).

    Args:
        reduction: ``"global"``: ``sqrt(sum_l ||dL/dW_l||_F^2)`` (tfnas spec, Zen-NAS);
            ``"layer_sum"``: ``sum_l ||dL/dW_l||_F`` (zero-cost-nas, the published NB201 figures).
            From ``[proxy] grad_norm``.
        fresh_weights: see :class:`~tfnas.proxies.gradients.BatchProxy`.

    Example:
        >>> proxy = GradNormProxy(reduction="layer_sum")
        >>> proxy.score(model, random_batch(rng, 64, (32, 32, 3), 10), rng)  # doctest: +SKIP
    """

    name = "grad_norm"
    options = {"grad_norm": "reduction"}

    def __init__(self, reduction: str = "global", fresh_weights: bool = False):
        if reduction not in REDUCTIONS:
            raise ValueError(f"grad_norm: reduction must be one of {', '.join(REDUCTIONS)}. Received: {reduction!r}")
        self.reduction = reduction
        super().__init__(fresh_weights=fresh_weights)

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "grad_norm")
        return self.score_gradients(*kernel_gradients(model, batch))

    def score_gradients(self, kernels: List[np.ndarray], grads: List[np.ndarray]) -> float:
        """The score from float64 kernels and their loss gradients (the kernels are not used)."""
        squares = [float(np.sum(np.square(g, dtype=np.float64))) for g in grads]
        if self.reduction == "layer_sum":
            return float(sum(math.sqrt(q) for q in squares))
        return math.sqrt(sum(squares))
