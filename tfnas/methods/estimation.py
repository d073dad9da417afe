"""Estimation Code (EC) sources for Siamese-NAS: cheap prior knowledge about training a cell.

An EC source maps cell indices to a short vector per cell, ``float32 [n, dim]``. Its calls are
counted as *EC evaluations* (reported apart from ground-truth queries). ECs are normalised by
:class:`EcNormaliser` with statistics of the training cells only (Siamese-NAS spec, "Estimation code").

Sources (``[predictor] ec_source``):
  - ``table``: the 12-epoch (test, validation) accuracies of the shipped NAS-Bench-201 table.
  - ``train``: short training of the cell (see :mod:`tfnas.methods.train_oracle`).
  - a proxy name: that zero-cost proxy's score (needs :mod:`tfnas.proxies`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

import numpy as np

from tfnas.registry import PROXIES


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


# Head size and input side of the NAS-Bench-201 datasets (for proxy scoring of NB201 cells).
_DATASET_SHAPES = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet16-120": (120, 16)}


def proxy_ec_factory(cfg: Any, space: Any) -> Callable[[], CachedEstimationCode]:
    """The factory behind ``[predictor] ec_source = <proxy>``: the proxy's score as a 1-dim EC.

    (The reference stores a zero-cost score three times; one copy carries the same information.)
    Each cell is scored with its own generator seeded by ``([run] seed, cell index)``, so its EC
    does not depend on which cells were scored before; scores are shared across the runs of a
    sweep (each run still counts its own ``evals``).
    """
    from tfnas.proxies.base import proxy_from_config

    name = cfg.predictor.ec_source
    proxy = proxy_from_config(name, cfg)
    num_classes, side = _DATASET_SHAPES.get(cfg.dataset.name, (10, cfg.dataset.image_size or 32))
    seed = cfg.run.seed
    shared: Dict[int, float] = {}

    def score(i: int) -> np.ndarray:
        if i not in shared:
            arch = space.from_index(i)
            rng = np.random.default_rng([seed, i])
            shared[i] = float(proxy.score_arch(space, arch, num_classes=num_classes, input_shape=(side, side, 3),
                                               batch_size=cfg.proxy.batch_size, rng=rng))
        value = shared[i]
        return np.array([value if np.isfinite(value) else -1e9], np.float32)

    return lambda: CachedEstimationCode(score, dim=1)


class EcNormaliser:
    """Per-dimension standardisation with mean/std of the training cells' ECs only."""

    def __init__(self, train_codes: np.ndarray):
        codes = np.asarray(train_codes, np.float64)
        self.mean = codes.mean(axis=0)
        std = codes.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return ((np.asarray(codes, np.float64) - self.mean) / self.std).astype(np.float32)
