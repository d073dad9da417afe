"""A benchmark restricted to some of its rows: the ground truth of a constrained search.

Paired with :class:`tfnas.spaces.subset.SubsetSpace` (same ``rows``): row ``j`` of this view is
row ``rows[j]`` of the full table. ``ground_truth`` is the feasible cells' accuracies, so the
sweep's optimum and regret are the *constrained* ones; a session counts distinct subset rows
against the budget exactly as the full benchmark's session counts cells.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from tfnas.benchmarks.base import Benchmark, CountingSession


class SubsetBenchmark(Benchmark):
    """Rows ``rows`` of ``benchmark`` (a table: ``ground_truth`` must not be None).

    Args:
        benchmark: the full benchmark.
        rows: full-table rows kept, int ``[n]``, ascending and distinct (as ``SubsetSpace.rows``).
    """

    def __init__(self, benchmark: Any, rows: Any):
        rows = np.asarray(rows, np.int64)
        if rows.ndim != 1 or rows.size == 0 or np.any(np.diff(rows) <= 0):
            raise ValueError("SubsetBenchmark: rows must be a non-empty ascending array of distinct rows")
        self.base, self.rows = benchmark, rows
        self.name = benchmark.name

    @property
    def size(self) -> int:
        return int(self.rows.size)

    def ground_truth(self, dataset: str) -> Optional[np.ndarray]:
        """Accuracy (%) of the kept rows, float32 ``[n]`` (evaluation only, as for the full table)."""
        truth = self.base.ground_truth(dataset)
        return None if truth is None else truth[self.rows]

    def optimum(self, dataset: str) -> float:
        """Best accuracy (%) among the kept rows: the constrained optimum."""
        return float(self.ground_truth(dataset).max())

    def session(self, dataset: str, budget: Optional[int] = None) -> CountingSession:
        """A counted view over the kept rows; answers and low-fidelity figures come from a session of
        the full benchmark (unbudgeted: this session enforces the budget)."""
        inner = self.base.session(dataset, None)
        rows = self.rows

        def low(idx: np.ndarray) -> np.ndarray:
            return inner.low_fidelity(rows[idx])

        return CountingSession(lambda idx: inner.query_many(rows[idx]), self.size, dataset, budget, low_fidelity=low)
