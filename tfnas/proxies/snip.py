"""snip: connection sensitivity at initialisation, summed over the network.

Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity" (ICLR 2019,
https://arxiv.org/abs/1810.02340), Eq. 6, as a network score by Abdelfattah et al. (ICLR 2021,
https://arxiv.org/abs/2101.08134), Sec. 3: ``snip = sum_l sum_i |w_i * dL/dw_i|`` over the
convolution and dense kernels, ``L`` the mean cross-entropy of one batch with random labels,
BatchNorm in training mode. (The reference obtains ``w * dL/dw`` as the gradient of a weight
mask; it is the same number.)

On the ``zen`` space the residual-free network is scored without a Keras model, on
NAS-Bench-201 through one traced arch-as-tensor network (:mod:`tfnas.proxies.fastpaths`).
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

from tfnas.proxies.base import ProxyBatch
from tfnas.proxies.gradients import BatchProxy, check_batch, kernel_gradients
from tfnas.registry import register_proxy

__all__ = ["SnipProxy"]


@register_proxy("snip")
class SnipProxy(BatchProxy):
    """``sum |w * dL/dw|`` over conv/dense kernels at initialisation; higher is better.

    Non-negative; units of the loss (nats). The caller's weights and BatchNorm statistics are
    left unchanged. See :class:`~tfnas.proxies.gradients.BatchProxy` for ``fresh_weights``.
    """

    name = "snip"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "snip")
        return self.score_gradients(*kernel_gradients(model, batch))

    def score_gradients(self, kernels: List[np.ndarray], grads: List[np.ndarray]) -> float:
        """The score from float64 kernels and their loss gradients."""
        return float(sum(np.sum(np.abs(w * g)) for w, g in zip(kernels, grads)))
