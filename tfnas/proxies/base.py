"""The zero-shot proxy contract.

A proxy scores an untrained network; **higher is better for every proxy** (modules flip the
sign where a paper ranks lower-is-better and say so). Two entry points:

* :meth:`Proxy.score` works on any Keras network (NB201 cells, Zen blocks, DARTS cells): it
  gets the model, a batch of inputs/labels and a generator, and must not change the caller's
  weights or BN statistics (score a copy, or restore what it touches).
* :meth:`Proxy.score_arch` scores an architecture of a space. The default builds the space's
  Keras network and calls :meth:`score`; proxies override it for spaces with a faster path
  (NB201 arch-as-tensor networks, Zen blocks evaluated without building a Keras model).

Proxies are registered by name in :data:`tfnas.registry.PROXIES` (one module each, imported
by ``tfnas/proxies/__init__.py``); ``get_proxy(name, **kwargs)`` builds one.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np


@dataclass
class ProxyBatch:
    """Random inputs for scoring.

    Attributes:
      images: float32 ``(B, H, W, C)`` drawn from N(0, 1).
      labels: int32 ``(B,)`` drawn uniformly from ``[0, num_classes)``.
      num_classes: number of classes of the network's head.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int


def random_batch(rng: np.random.Generator, batch_size: int, input_shape: Tuple[int, int, int],
                 num_classes: int) -> ProxyBatch:
    """Gaussian images and uniform labels, as the zero-shot papers use."""
    images = rng.standard_normal((batch_size,) + tuple(input_shape)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch_size).astype(np.int32)
    return ProxyBatch(images, labels, num_classes)


class Proxy(abc.ABC):
    """A zero-shot score of an untrained network; higher is better."""

    name: str = ""

    @abc.abstractmethod
    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        """Scores ``model`` (a ``keras.Model`` images -> logits) on ``batch``; higher is better."""

    def score_arch(self, space: Any, arch: Any, *, num_classes: int,
                   input_shape: Tuple[int, int, int], batch_size: int,
                   rng: np.random.Generator) -> float:
        """Scores ``arch`` of ``space``; the default builds the space's Keras network.

        The network is ``space.build(arch, ...)`` with the space's ``proxy_build_options`` where
        it has them (the ``zen`` space: without residual links, as the Zen-NAS search scores).
        """
        options = dict(getattr(space, "proxy_build_options", None) or {})
        model = space.build(arch, num_classes=num_classes, input_shape=input_shape, **options)
        batch = random_batch(rng, batch_size, input_shape, num_classes)
        return float(self.score(model, batch, rng))


def get_proxy(name: str, **kwargs: Any) -> Proxy:
    """The registered proxy ``name`` built with ``kwargs`` (e.g. Incorporated weights)."""
    from tfnas.registry import PROXIES

    return PROXIES.get(name)(**kwargs)


def proxy_options(name: str, proxy_cfg: Any) -> Dict[str, Any]:
    """The constructor options of proxy ``name`` taken from a ``[proxy]`` section.

    ``incorporated_*``: ``zen_weight``, ``entropy_weight``; ``grad_norm``: ``reduction``
    (``[proxy] grad_norm``); every other proxy: none.
    """
    if name.startswith("incorporated"):
        return {"zen_weight": proxy_cfg.zen_weight, "entropy_weight": proxy_cfg.entropy_weight}
    if name == "grad_norm":
        return {"reduction": proxy_cfg.grad_norm}
    return {}


def proxy_from_config(name: str, cfg: Any) -> Proxy:
    """``get_proxy(name)`` with the options of ``cfg``'s ``[proxy]`` section (:func:`proxy_options`)."""
    return get_proxy(name, **proxy_options(name, cfg.proxy))
