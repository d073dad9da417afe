"""Ground truth by training, behind the benchmark interface: ``[benchmark] name = train``.

For spaces without a table (Tiny-NanoBench, or NB201 on a user's own data) the answer to a
query is the evaluation accuracy of the cell trained with the ``[train]`` recipe on the
``[dataset]`` data, through a :class:`~tfnas.evaluation.training.TrainingEvaluator` of kind
``"oracle"`` (results cached on disk by arch string, so an interrupted sweep resumes without
retraining).

The search runs over a tabular view of the space (NB201 itself, or a
:class:`~tfnas.spaces.pool.CandidatePool` of an open space), so methods query by row index
exactly as on NAS-Bench-201, through the same :class:`~tfnas.benchmarks.base.CountingSession`.
There is no table of every cell, so ``ground_truth`` is None: the run layer evaluates the found
cell by training it (outside the budget) and leaves the whole-space ranking metrics empty.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from tfnas.benchmarks.base import Benchmark, CountingSession
from tfnas.registry import register_benchmark


@register_benchmark("train")
class TrainingBenchmark(Benchmark):
    """``[benchmark] name = train``: answers by training (see the module docstring).

    Args:
        space: a tabular view of the space (rows -> architectures).
        evaluator: ``evaluate(archs) -> accuracies in [0, 1]`` (a ``TrainingEvaluator`` of kind
            ``"oracle"``), shared by every session of the sweep.
    """

    name = "train"

    def __init__(self, space: Any, evaluator: Any):
        self.space, self.evaluator = space, evaluator

    @property
    def size(self) -> int:
        return int(self.space.size)

    def ground_truth(self, dataset: str) -> None:
        """There is no table of every cell: None (the run layer then evaluates only the found cell)."""
        return None

    def _lookup(self, indices: np.ndarray) -> np.ndarray:
        """Accuracies in [0, 1]; a cell whose training failed (None from the evaluator) answers 0:
        it ranks last, so no method needs a special case for it."""
        archs = [self.space.from_index(int(i)) for i in indices]
        return np.asarray([0.0 if a is None else a for a in self.evaluator.evaluate(archs)], np.float64)

    def evaluate(self, index: int) -> float:
        """Accuracy (%) of row ``index`` by training it, outside any budget (cached on disk)."""
        return 100.0 * float(self._lookup(np.asarray([index]))[0])

    def session(self, dataset: str, budget: Optional[int] = None) -> CountingSession:
        return CountingSession(self._lookup, self.size, dataset, budget,
                               no_low_fidelity="the training oracle has no 12-epoch table: set [predictor] "
                                               "ec_source = train (or a proxy name) instead of table")
