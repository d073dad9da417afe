"""Zen-space fast paths: the residual-free network scored without building a Keras model.

The Zen-NAS search scores every proxy on the network with its residual links removed
(``no_reslink=True``) at N(0, 1) kernels (the reference's scoring initialisation).
:mod:`tfnas.spaces.zen.residual_free` evaluates that network block by block with traced layer
functions, so scoring thousands of candidates never retraces. Registered here for
:class:`~tfnas.spaces.zen.ZenSpace`:

* ``zen``: :func:`zen_score_arch` (kernels, then images, then noise drawn from ``rng``);
* ``synflow``: ``log S`` in closed form (kernels, then the classifier);
* ``naswot``: the ReLU-code agreement kernel of one batch (kernels, then images);
* ``grad_norm`` and ``snip``: from the cross-entropy gradients of the kernels and the classifier
  (kernels, then the classifier, then the batch).
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np

from tfnas.checks import check_int
from tfnas.proxies.base import random_batch
from tfnas.proxies.fastpaths import register_fast_path
from tfnas.proxies.gradients import check_batch
from tfnas.proxies.naswot import log_abs_det
from tfnas.proxies.zen import check_zen_options, zen_from_passes
from tfnas.spaces.zen import ZenBlock, ZenSpace, check_arch
from tfnas.spaces.zen.residual_free import draw_weights, plain_forward, plain_log_synflow, plain_loss_gradients

__all__ = ["zen_score_arch", "zen_score_fast"]


def zen_score_fast(arch: Sequence[ZenBlock], weights: Sequence[np.ndarray], images: np.ndarray,
                   noise: np.ndarray, perturbation: float = 0.01, bn_variance: str = "batch") -> float:
    """Zen score of the residual-free network of ``arch`` with the given kernels.

    Args:
        arch: the blocks.
        weights: one kernel per convolution (:func:`tfnas.spaces.zen.residual_free.draw_weights` layout).
        images: float32 ``(B, H, W, C)`` clean inputs ``x``.
        noise: float32 ``(B, H, W, C)`` perturbation direction ``eps``.
        perturbation: ``gamma``.
        bn_variance: ``"batch"`` or ``"running"`` (:mod:`tfnas.proxies.zen`).
    """
    perturbation, bn_variance = check_zen_options(perturbation, bn_variance)
    images = np.asarray(images, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if images.shape != noise.shape:
        raise ValueError(f"images and noise must have the same shape; got {images.shape} and {noise.shape}")
    # Two separate passes rather than one grouped batch of both (plain_forward(groups=2)): the
    # same arithmetic and speed, but each layer's buffers are half as large, and a long search's
    # resident memory follows the largest buffers it has needed (docs/PERFORMANCE.md).
    clean = plain_forward(arch, weights, images)
    perturbed = plain_forward(arch, weights, images + np.float32(perturbation) * noise)
    return zen_from_passes(clean.features, perturbed.features, clean.variances[:, 0], perturbed.variances[:, 0],
                           bn_variance)


def _check_batch_size(batch_size: Any, who: str) -> None:
    check_int(batch_size, "batch_size", who, low=2,
              message="{owner}batch_size must be an integer >= 2 (BN needs a batch). Received: {value!r}")


def zen_score_arch(arch: Sequence[ZenBlock], rng: np.random.Generator, batch_size: int = 64,
                   input_shape: Tuple[int, int, int] = (32, 32, 3), perturbation: float = 0.01,
                   bn_variance: str = "batch") -> float:
    """Zen score of ``arch`` at a fresh N(0, 1) draw: kernels, then images, then noise, all from ``rng``."""
    arch = check_arch(arch)
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or shape[2] != arch[0].cin:
        raise ValueError(f"input_shape must be (H, W, {arch[0].cin}) for {arch[0]}; got {input_shape!r}")
    _check_batch_size(batch_size, "")
    weights = draw_weights(arch, rng)
    images = rng.standard_normal((batch_size,) + shape, dtype=np.float32)
    noise = rng.standard_normal((batch_size,) + shape, dtype=np.float32)
    return zen_score_fast(arch, weights, images, noise, perturbation, bn_variance)


@register_fast_path("zen", ZenSpace)
def _zen(proxy: Any, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
         batch_size: int, rng: np.random.Generator) -> float:
    return zen_score_arch(arch, rng, batch_size, input_shape, proxy.perturbation, proxy.bn_variance)


@register_fast_path("synflow", ZenSpace)
def _synflow(proxy: Any, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
             batch_size: int, rng: np.random.Generator) -> float:
    """Synflow needs no batch: kernels, then the classifier drawn from ``rng``."""
    arch = check_arch(arch)
    weights = draw_weights(arch, rng)
    dense = rng.standard_normal((arch[-1].cout, num_classes))
    return plain_log_synflow(arch, weights, dense, input_shape)


@register_fast_path("naswot", ZenSpace)
def _naswot(proxy: Any, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
            batch_size: int, rng: np.random.Generator) -> float:
    arch = check_arch(arch)
    _check_batch_size(batch_size, "naswot: ")
    weights = draw_weights(arch, rng)
    images = rng.standard_normal((batch_size,) + tuple(int(d) for d in input_shape), dtype=np.float32)
    return log_abs_det(plain_forward(arch, weights, images, codes=True).agreement)


def _from_loss_gradients(proxy: Any, space: Any, arch: Any, *, num_classes: int,
                         input_shape: Tuple[int, int, int], batch_size: int, rng: np.random.Generator) -> float:
    """``proxy.score_gradients(kernels, grads)`` of the residual-free network and its classifier."""
    arch = check_arch(arch)
    weights = draw_weights(arch, rng)
    dense = rng.standard_normal((arch[-1].cout, num_classes)).astype(np.float32)
    batch = random_batch(rng, batch_size, input_shape, num_classes)
    check_batch(batch, proxy.name)
    grads = plain_loss_gradients(arch, weights, dense, batch.images, batch.labels)
    kernels = [np.asarray(w, np.float64) for w in weights] + [dense.astype(np.float64)]
    return proxy.score_gradients(kernels, grads)


register_fast_path("grad_norm", ZenSpace)(_from_loss_gradients)
register_fast_path("snip", ZenSpace)(_from_loss_gradients)
