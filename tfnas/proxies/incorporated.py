"""Incorporated-NAS scores (Electronics 13(16):3325, 2024): Zen plus a structural entropy term.

``score = w_zen * Zen + w_e * N(E)`` where ``Zen`` is the Zen score of the residual-free
network (:mod:`tfnas.proxies.zen`) and ``E`` the DeepMAD-style entropy the space computes
from the structure alone (:func:`tfnas.spaces.zen.entropy`). ``N`` is ``log`` for
``incorporated_l`` and ``sqrt`` for ``incorporated_s``; the CIFAR weights are ``w_zen = 0.5``,
``w_e = 0.01`` (reference ``--weight_zs 0.5 --weight_dms 0.01``). ``N(E)`` is undefined for
``E <= 0``; such an architecture scores ``-inf`` (ranks last). Higher is better.

Only spaces that provide ``entropy(arch, resolution)`` can be scored; a bare Keras model
carries no block structure, so :meth:`IncorporatedProxy.score` raises.
"""

from __future__ import annotations

import math
from typing import Any, Tuple

import numpy as np

from tfnas.checks import is_number
from tfnas.proxies.base import Proxy, ProxyBatch, check_score_args
from tfnas.proxies.zen import ZenProxy
from tfnas.registry import register_proxy

__all__ = ["IncorporatedLogProxy", "IncorporatedProxy", "IncorporatedSqrtProxy"]


class IncorporatedProxy(Proxy):
    """``zen_weight * Zen + entropy_weight * N(E)``; subclasses fix ``N``.

    Args:
        zen_weight: weight of the Zen score (CIFAR: 0.5).
        entropy_weight: weight of the normalised entropy (CIFAR: 0.01).
        perturbation, bn_variance: passed to :class:`~tfnas.proxies.zen.ZenProxy`.

    ``zen_weight`` and ``entropy_weight`` come from the ``[proxy]`` keys of the same names,
    ``bn_variance`` from ``[proxy] zen_bn_variance``.
    """

    name = ""
    options = {"zen_weight": "zen_weight", "entropy_weight": "entropy_weight", "zen_bn_variance": "bn_variance"}

    def __init__(self, zen_weight: float = 0.5, entropy_weight: float = 0.01, perturbation: float = 0.01,
                 bn_variance: str = "batch"):
        for key, value in (("zen_weight", zen_weight), ("entropy_weight", entropy_weight)):
            if not is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}: `{key}` must be a finite number >= 0. Received: "
                                 f"{key}={value!r}")
        if zen_weight == entropy_weight == 0:
            raise ValueError(f"{type(self).__name__}: `zen_weight` and `entropy_weight` are both 0, so every score "
                             f"would be 0; give one of them a weight > 0")
        self.zen_weight = float(zen_weight)
        self.entropy_weight = float(entropy_weight)
        self.zen = ZenProxy(perturbation=perturbation, bn_variance=bn_variance)

    @staticmethod
    def normalize(entropy: float) -> float:
        """``N(E)`` for ``E > 0``."""
        raise NotImplementedError

    def combine(self, zen: float, entropy: float) -> float:
        """``zen_weight * zen + entropy_weight * N(entropy)``; ``-inf`` when ``entropy <= 0``."""
        if not entropy > 0 or not math.isfinite(entropy):
            return float("-inf")
        return float(self.zen_weight * zen + self.entropy_weight * self.normalize(entropy))

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        """Not defined for a bare model: the entropy term needs the architecture's block structure."""
        raise TypeError(f"{self.name} needs an architecture of a space with an analytic "
                        "`entropy(arch, resolution)` (e.g. the 'zen' space): call score_arch(space, arch, ...); "
                        f"a {type(model).__name__} alone carries no block structure")

    def score_arch(self, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                   batch_size: int, rng: np.random.Generator) -> float:
        """Zen (fast path for the ``zen`` space) combined with ``space.entropy(arch, resolution=H)``."""
        check_score_args(num_classes, input_shape, batch_size, rng, f"{type(self).__name__}.score_arch")
        entropy_fn = getattr(space, "entropy", None)
        if not callable(entropy_fn):
            space_name = getattr(space, "name", "") or type(space).__name__
            raise TypeError(f"{self.name} is defined only for spaces with an analytic `entropy(arch, "
                            f"resolution)` such as 'zen'; space {space_name!r} has none")
        entropy = float(entropy_fn(arch, resolution=int(input_shape[0])))
        zen = self.zen.score_arch(space, arch, num_classes=num_classes, input_shape=input_shape,
                                  batch_size=batch_size, rng=rng)
        return self.combine(zen, entropy)


@register_proxy("incorporated_l")
class IncorporatedLogProxy(IncorporatedProxy):
    """Incorporated-l: ``N(E) = log E``."""

    name = "incorporated_l"

    @staticmethod
    def normalize(entropy: float) -> float:
        return math.log(entropy)


@register_proxy("incorporated_s")
class IncorporatedSqrtProxy(IncorporatedProxy):
    """Incorporated-s: ``N(E) = sqrt(E)``."""

    name = "incorporated_s"

    @staticmethod
    def normalize(entropy: float) -> float:
        return math.sqrt(entropy)
