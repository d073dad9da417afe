"""Estimation Code (EC) sources for Siamese-NAS: cheap prior knowledge about training a cell.

An EC source maps cell indices to a short vector per cell, ``float32 [n, dim]``. Its calls are
counted as *EC evaluations* (reported apart from ground-truth queries). ECs are normalised by
:class:`EcNormaliser` with statistics of the training cells only (Siamese-NAS spec, "Estimation code").

Sources (``[predictor] ec_source``):
  - ``table``: the 12-epoch (test, validation) accuracies of the shipped NAS-Bench-201 table.
  - ``train``: short training of the cell (:class:`TrainingEstimationCode`, on
    :class:`tfnas.evaluation.training.TrainingEvaluator`).
  - a proxy name: that zero-cost proxy's score (needs :mod:`tfnas.proxies`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Set, Tuple

import numpy as np

from tfnas.evaluation.proxy import ProxyEvaluator
from tfnas.registry import PROXIES

#: The ``train`` EC recipe of the Siamese-NAS reference: Adam 1e-3, batch 16, 512 images by default.
EC_BATCH_SIZE = 16
EC_LR = 1e-3
DEFAULT_EC_SUBSET = 512


class TableEstimationCode:
    """12-epoch accuracies (test, val) in [0, 1] read through the benchmark session."""

    dim = 2

    def __init__(self, session: Any):
        self.session = session

    @property
    def evals(self) -> int:
        return self.session.ec_evals

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        return self.session.low_fidelity(indices)


class CachedEstimationCode:
    """Wraps a per-cell EC function with an in-memory cache; ``evals`` counts distinct cells computed."""

    def __init__(self, fn: Callable[[int], np.ndarray], dim: int):
        self.fn, self.dim = fn, dim
        self._cache: Dict[int, np.ndarray] = {}

    @property
    def evals(self) -> int:
        return len(self._cache)

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        out = np.empty((len(indices), self.dim), np.float32)
        for row, i in enumerate(indices):
            i = int(i)
            if i not in self._cache:
                self._cache[i] = np.asarray(self.fn(i), np.float32).reshape(self.dim)
            out[row] = self._cache[i]
        return out


def check_ec_source(name: str) -> None:
    """Raises ``ValueError`` when ``name`` names no usable EC source."""
    if name in ("table", "train"):
        return
    if name not in PROXIES:
        known = ", ".join(["table", "train"] + PROXIES.names())
        raise ValueError(f"estimation-code source {name!r} is not available; available: {known}")


def proxy_ec_factory(proxy: Any, space: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                     batch_size: int, seed: int) -> Callable[[], CachedEstimationCode]:
    """The factory behind ``[predictor] ec_source = <proxy>``: the proxy's score as a 1-dim EC.

    (The reference stores a zero-cost score three times; one copy carries the same information.)
    Each cell is scored with its own generator seeded by ``(seed, cell index)``, so its EC does
    not depend on which cells were scored before; scores are shared across the runs of a sweep
    (each run still counts its own ``evals``). Non-finite scores become -1e9 (ranked last).
    """
    evaluator = ProxyEvaluator(space, proxy, num_classes=num_classes, input_shape=input_shape,
                               batch_size=batch_size)
    shared: Dict[int, float] = {}

    def score(i: int) -> np.ndarray:
        if i not in shared:
            shared[i] = evaluator.evaluate([space.from_index(i)], rngs=[np.random.default_rng([seed, i])])[0]
        value = shared[i]
        return np.array([value if np.isfinite(value) else -1e9], np.float32)

    return lambda: CachedEstimationCode(score, dim=1)


class TrainingEstimationCode:
    """The ``train`` EC: per-epoch mean training losses of a short training, float32 ``[n, dim]``.

    Args:
        space: a tabular space (indices -> ``space.from_index``).
        evaluator: a :class:`~tfnas.evaluation.training.TrainingEvaluator` of kind ``"ec"``
            (shared by every EC of one sweep, with its disk cache).
        dim: EC length (epochs of the short training).

    Attributes:
        evals: distinct cells whose EC this object returned (trained or loaded from the cache).
        computed: cells this object had trained.
    """

    def __init__(self, space: Any, evaluator: Any, dim: int):
        self.space, self.evaluator, self.dim = space, evaluator, int(dim)
        self.computed = 0
        self._seen: Set[str] = set()

    @property
    def evals(self) -> int:
        return len(self._seen)

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        """ECs of the cells at ``indices`` (tabular indices), float32 ``[len(indices), dim]``."""
        archs = [self.space.from_index(int(i)) for i in indices]
        before = self.evaluator.computed
        codes = self.evaluator.evaluate(archs)
        self.computed += self.evaluator.computed - before
        self._seen.update(self.space.encode(a) for a in archs)
        return np.asarray(codes, np.float32).reshape(len(archs), self.dim)


class EcNormaliser:
    """Per-dimension standardisation with mean/std of the training cells' ECs only."""

    def __init__(self, train_codes: np.ndarray):
        codes = np.asarray(train_codes, np.float64)
        self.mean = codes.mean(axis=0)
        std = codes.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return ((np.asarray(codes, np.float64) - self.mean) / self.std).astype(np.float32)
