"""The benchmark contract and the one counting session every benchmark hands to a search.

A :class:`Benchmark` answers "how good is cell ``i``" for a tabular view of a space. A search
sees it only through a :class:`CountingSession`: ``queries`` counts distinct cells read,
re-reading is free, and a new cell past the budget raises :class:`BudgetExceededError` before
the benchmark is asked. The budget of a predictor-based search is that count, so it is honest by
construction.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from tfnas.checks import is_int


class BudgetExceededError(RuntimeError):
    """A search asked for more distinct ground-truth answers than its budget allows."""


class Benchmark(abc.ABC):
    """Ground truth for the cells of a tabular space.

    Attributes:
      name: registry name.
      size: number of cells (rows).
    """

    name: str = ""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of cells."""

    @abc.abstractmethod
    def ground_truth(self, dataset: str) -> Optional[np.ndarray]:
        """Accuracy (%) of every cell, float32 ``[size]``, or None when there is no table (then
        the run layer scores only the found cell, through :meth:`evaluate`)."""

    @abc.abstractmethod
    def session(self, dataset: str, budget: Optional[int] = None) -> "CountingSession":
        """A counted view for one search run."""


class CountingSession:
    """What a method sees: counted ground-truth queries and (separately counted) low-fidelity figures.

    Args:
        lookup: ``lookup(indices) -> accuracies in [0, 1]`` for an int64 array of new cells (one
            batch per call: an evaluator can spread it over workers).
        size: number of cells.
        dataset: what the answers are about.
        budget: most distinct cells answered (None = unlimited).
        low_fidelity: ``low_fidelity(indices) -> float32 [n, k]`` cheap figures (the ``table``
            estimation code), or None when the benchmark has none.
        no_low_fidelity: the message of the ``ValueError`` raised when there are none.
    """

    def __init__(self, lookup: Callable[[np.ndarray], Any], size: int, dataset: str, budget: Optional[int],
                 low_fidelity: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 no_low_fidelity: str = "this benchmark has no low-fidelity figures"):
        if budget is not None and (not is_int(budget) or budget < 0):
            raise ValueError(f"budget must be an integer >= 0 or None; received budget={budget!r}")
        self._lookup, self._low = lookup, low_fidelity
        self._no_low = no_low_fidelity
        self.size, self.dataset, self.budget = int(size), dataset, budget
        self._seen: Dict[int, float] = {}
        self._ec_seen: set = set()
        #: ``(step, cells, scores)`` rankings handed to :meth:`observe`, in call order.
        self.observations: List[Tuple[int, np.ndarray, np.ndarray]] = []

    @property
    def queries(self) -> int:
        return len(self._seen)

    @property
    def remaining(self) -> Optional[int]:
        return None if self.budget is None else self.budget - self.queries

    @property
    def ec_evals(self) -> int:
        return len(self._ec_seen)

    def queried(self) -> Dict[int, float]:
        """The cells read so far (index -> accuracy in [0, 1]), in query order."""
        return dict(self._seen)

    def _check(self, index: Any) -> int:
        """``index`` as a cell index: an integer (Python or NumPy) in ``[0, size)``; a float, a bool, a string
        or an architecture is refused (``space.index(arch)`` gives an architecture's index)."""
        if not is_int(index):
            raise TypeError(f"cell index must be an integer in [0, {self.size}), got {index!r} "
                            f"({type(index).__name__}); an architecture's index is space.index(arch)")
        if not 0 <= index < self.size:
            raise IndexError(f"cell index {index} out of range [0, {self.size})")
        return int(index)

    def query(self, index: Any) -> float:
        return float(self.query_many([index])[0])

    def query_many(self, indices: Iterable[Any]) -> np.ndarray:
        """Accuracies in [0, 1] of ``indices``, float32 ``[n]``; new cells are looked up in one batch."""
        idx = [self._check(i) for i in indices]
        new = list(dict.fromkeys(i for i in idx if i not in self._seen))
        if new:
            if self.budget is not None and len(self._seen) + len(new) > self.budget:
                raise BudgetExceededError(f"budget of {self.budget} ground-truth queries exhausted "
                                          f"({len(self._seen)} used, {len(new)} more asked for)")
            values = self._lookup(np.asarray(new, np.int64))
            for i, v in zip(new, values):
                self._seen[i] = float(v)
        return np.array([self._seen[i] for i in idx], dtype=np.float32)

    def observe(self, step: int, cells: Any, scores: Any) -> None:
        """Keeps a method's ranking of ``cells`` (higher score = better) at search ``step`` (a batch-top-
        sampling point, a round). The run layer scores it against the ground truth *after* the search
        (its Spearman goes to the record and TensorBoard); it costs no query and tells the method nothing."""
        cells, scores = np.array(cells, np.int64), np.array(scores, np.float64)
        if cells.shape != scores.shape or cells.ndim != 1:
            raise ValueError(f"observe: cells and scores must be 1-D of one length; got {cells.shape}, {scores.shape}")
        self.observations.append((int(step), cells, scores))

    def low_fidelity(self, indices: Iterable[Any]) -> np.ndarray:
        """Cheap figures of ``indices`` (the ``table`` estimation code), counted in ``ec_evals``."""
        if self._low is None:
            raise ValueError(self._no_low)
        idx = np.asarray([self._check(i) for i in indices], dtype=np.int64)
        self._ec_seen.update(int(i) for i in idx)
        return np.asarray(self._low(idx), np.float32)
