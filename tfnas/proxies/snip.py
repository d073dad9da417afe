"""snip: connection sensitivity at initialisation, summed over the network.

Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity" (ICLR 2019,
https://arxiv.org/abs/1810.02340), Eq. 6, as a network score by Abdelfattah et al. (ICLR 2021,
https://arxiv.org/abs/2101.08134), Sec. 3: ``snip = sum_l sum_i |w_i * dL/dw_i|`` over the
convolution and dense kernels, ``L`` the mean cross-entropy of one batch with random labels,
BatchNorm in training mode. (The reference obtains ``w * dL/dw`` as the gradient of a weight
mask; it is the same number.)

On the ``zen`` space the residual-free network is scored without a Keras model (see
:meth:`tfnas.proxies.grad_norm.LossGradientProxy.score_arch`).
"""

from __future__ import annotations

from typing import Any, List

import numpy as np
import tensorflow as tf

from tfnas.proxies.base import ProxyBatch
from tfnas.proxies.grad_norm import LossGradientProxy, check_batch, kernel_gradients, nb201_loss_gradients
from tfnas.registry import register_proxy
from tfnas.spaces.nb201_tensor import Nb201TensorNetwork

__all__ = ["SnipProxy"]


@register_proxy("snip")
class SnipProxy(LossGradientProxy):
    """``sum |w * dL/dw|`` over conv/dense kernels at initialisation; higher is better.

    Non-negative; units of the loss (nats). The caller's weights and BatchNorm statistics are
    left unchanged. On :class:`~tfnas.spaces.nb201.Nb201Space` the traced arch-as-tensor
    network scores cells without building Keras models (see :class:`LossGradientProxy` for
    ``fresh_weights``).
    """

    name = "snip"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, "snip")
        return self.score_gradients(*kernel_gradients(model, batch))

    def score_gradients(self, kernels: List[np.ndarray], grads: List[np.ndarray]) -> float:
        return float(sum(np.sum(np.abs(w * g)) for w, g in zip(kernels, grads)))

    def _nb201_body(self, network: Nb201TensorNetwork):
        def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
            kernels, grads = nb201_loss_gradients(network, images, labels, op_ids)
            # Unused kernels have zero gradients; summing them costs less than a tf.cond each.
            return tf.add_n([tf.reduce_sum(tf.abs(tf.cast(k * g, tf.float64))) for k, g in zip(kernels, grads)])

        return body
