"""Ground truth by training, behind the benchmark interface: ``[benchmark] name = train``.

For spaces without a table (Tiny-NanoBench, or NB201 on a user's own data) the answer to a
query is the evaluation accuracy of the cell trained with the ``[train]`` recipe on the
``[dataset]`` data (:class:`tfnas.methods.train_oracle.TrainingOracle`: results cached on disk
by arch string, so an interrupted sweep resumes without retraining).

The search runs over a tabular view of the space (NB201 itself, or a
:class:`~tfnas.spaces.pool.CandidatePool` of an open space), so methods query by row index
exactly as on NAS-Bench-201. There is no table of every cell, so ``ground_truth`` is None: the
driver evaluates the found cell by training it (outside the budget, like the benchmark lookups
it does on NB201) and leaves the whole-space ranking metrics empty.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np

from tfnas.registry import register_benchmark


class OracleSession:
    """A counted view of a :class:`TrainingOracle` for one search run, queried by row index.

    ``query`` returns accuracy in [0, 1]; ``queries`` counts distinct rows; a new row past the
    budget raises :class:`~tfnas.benchmarks.nb201.BudgetExceededError` before anything trains.
    """

    def __init__(self, oracle: Any, dataset: str, budget: Optional[int]):
        self.oracle = oracle
        self.dataset = dataset
        self.budget = budget
        self.size = oracle.space.size
        self._seen: Dict[int, float] = {}

    @property
    def queries(self) -> int:
        return len(self._seen)

    @property
    def remaining(self) -> Optional[int]:
        return None if self.budget is None else self.budget - self.queries

    @property
    def ec_evals(self) -> int:
        return 0

    def queried(self) -> Dict[int, float]:
        """The rows read so far (row -> accuracy in [0, 1]), in query order."""
        return dict(self._seen)

    def query(self, index: int) -> float:
        i = int(index)
        if not 0 <= i < self.size:
            raise IndexError(f"row {i} out of range [0, {self.size})")
        if i not in self._seen:
            if self.budget is not None and len(self._seen) >= self.budget:
                from tfnas.benchmarks.nb201 import BudgetExceededError

                raise BudgetExceededError(f"budget of {self.budget} ground-truth queries exhausted")
            self._seen[i] = float(self.oracle.query(i))
        return self._seen[i]

    def query_many(self, indices: Iterable[int]) -> np.ndarray:
        return np.array([self.query(i) for i in indices], dtype=np.float32)

    def low_fidelity(self, indices: Iterable[int]) -> np.ndarray:
        raise ValueError("the training oracle has no 12-epoch table: set [predictor] ec_source = train "
                         "(or a proxy name) instead of table")


@register_benchmark("train")
class TrainingBenchmark:
    """``[benchmark] name = train``: answers by training (see the module docstring)."""

    name = "train"

    def __init__(self, space: Any, make_oracle: Any):
        self.space = space
        self._make = make_oracle
        self._evaluator = None

    @classmethod
    def from_config(cls, cfg: Any, space: Any) -> "TrainingBenchmark":
        from tfnas.methods.train_oracle import training_oracle_factory

        return cls(space, training_oracle_factory(cfg, space))

    @property
    def size(self) -> int:
        return self.space.size

    def ground_truth(self, dataset: str) -> None:
        """There is no table of every cell: None (the driver then evaluates only the found cell)."""
        return None

    def evaluate(self, index: int) -> float:
        """Accuracy (%) of row ``index`` by training it, outside any budget (cached on disk)."""
        if self._evaluator is None:
            self._evaluator = self._make(None)
        return 100.0 * float(self._evaluator.query(int(index)))

    def session(self, dataset: str, budget: Optional[int] = None) -> OracleSession:
        return OracleSession(self._make(None), dataset, budget)
