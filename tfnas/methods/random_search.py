"""Random search on a tabular benchmark: query ``budget`` distinct random cells, keep the best."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfnas.checks import positive_int
from tfnas.methods.base import BudgetedSearch, RunResult
from tfnas.registry import register_method
from tfnas.spaces.base import TabularSpace


@register_method("rand")
class RandomSearch(BudgetedSearch):
    """Random baseline (Siamese-NAS spec, "Baselines").

    Its ranking of the whole space puts the queried cells first, in order of their true
    accuracy, and the rest in a random order, so Spearman/Kendall measure what random
    search knows about the space after ``budget`` queries.
    """

    name = "rand"
    requires = (TabularSpace,)

    def __init__(self, space_size: int):
        self.space_size = positive_int(space_size, "space_size", "RandomSearch")


    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        positive_int(budget, "budget", "RandomSearch.run")
        chosen = rng.choice(self.space_size, size=min(budget, self.space_size), replace=False)
        acc = session.query_many(chosen)
        return RunResult(best_index=int(chosen[int(np.argmax(acc))]),
                         scores=queried_first(self.space_size, chosen, acc, rng))


def queried_first(size: int, chosen: Any, acc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scores of all ``size`` cells: the queried ``chosen`` first, in order of their accuracy ``acc``
    (in [0, 1]), the rest in a random order below them (``rng.random``)."""
    scores = rng.random(size)  # in [0, 1): below every queried cell
    scores[np.asarray(chosen)] = 1.0 + np.asarray(acc)
    return scores
