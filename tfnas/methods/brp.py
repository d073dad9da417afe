"""BRP-NAS (Dudziak et al., "BRP-NAS: Prediction-based NAS using GCNs", NeurIPS 2020) on a tabular graph space.

The predictor is the binary relation predictor (:mod:`tfnas.predictors.binary`: a GCN encoder
and a linear head on a pair of encodings, trained with binary cross-entropy on pairs of queried
cells). The search is the paper's *iterative data selection* (Sec. 4.2), with the schedule of
the authors' code (SamsungLabs/eagle, ``predictors/__main__.py``, ``--iter 5 --sample_best2``):

- the budget ``B`` is spent in ``T`` rounds (5) of ``B / T`` queries (split as evenly as integers
  allow); round 0 queries random cells;
- after each round the predictor trains on every cell queried so far, ``epochs * (t + 1) / T``
  epochs in round ``t`` (50, 100, ..., 250), warm-started from the previous round's weights
  with a fresh optimizer and cosine schedule;
- each later round ``t`` ranks all cells with the predictor and queries ``top_fraction`` (1/2)
  of its quota from the top of the ranking (best cells not queried yet) and the rest at random
  among the unqueried cells of the top ``1 / 2^t`` of the ranking (half, quarter, ...; from every
  unqueried cell when that part runs out).

The answer is the most accurate queried cell (BRP-NAS's search trace: the trained models in the
order they were picked, the rest by predicted rank). The ranking the records score puts the
queried cells first, by their measured accuracy, then all the others in the predictor's order
(one batched pass over the space, :meth:`RelationTrainer.scores`): ``queries == budget`` always,
and Spearman measures what the search knows after ``B`` queries, as for ``rand``.

Left out of the reference: its early stopping on the training-pair loss (patience 35 after epoch
20; the saved "best" state is a live reference to the weights, so it never restores anything),
its soft KL target ``softmax([acc_a, acc_b])`` (the default config; BCE on the hard relation is
the paper's and its ``oneway-hard`` variant), and its growing pair batches (in-batch pairs
here, see :mod:`tfnas.predictors.binary`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, List, Tuple

import numpy as np

from tfnas.lru import LRUCache
from tfnas.methods.base import BudgetedSearch, RunResult
from tfnas.methods.random_search import queried_first
from tfnas.methods.siamese import split_evenly
from tfnas.registry import register_method
from tfnas.spaces.base import GraphSpace, TabularSpace, require


#: Idle relation trainers of this process, by configuration (the predictor trainers' pool of
#: :mod:`tfnas.methods.siamese`, for BRP-NAS).
_IDLE_TRAINERS: "LRUCache[Any]" = LRUCache("relation trainers", maxsize=4)


def half_up(x: float) -> int:
    """``x >= 0`` rounded to the nearest integer, halves up (2.5 -> 3; Python's ``round`` gives 2)."""
    return int(np.floor(x + 0.5))


@register_method("brp_nas")
class BrpSearch(BudgetedSearch):
    """BRP-NAS: the binary relation predictor with iterative data selection (module docstring)."""

    name = "brp_nas"
    requires = (TabularSpace, GraphSpace)

    def __init__(self, space: Any, *, units: int = 600, layers: int = 4, dropout: float = 0.2, lr: float = 3.5e-4,
                 weight_decay: float = 5e-4, epochs: int = 250, batch_size: int = 16, iterations: int = 5,
                 top_fraction: float = 0.5, jit_compile: bool = True):
        require(space, TabularSpace, "method 'brp_nas'")
        require(space, GraphSpace, "method 'brp_nas'")
        if not 0.0 <= top_fraction <= 1.0:
            raise ValueError(f"brp_nas: top_fraction must lie in [0, 1]; got {top_fraction}")
        for key, value, low in (("units", units, 1), ("layers", layers, 1), ("epochs", epochs, 1),
                                ("batch_size", batch_size, 2), ("iterations", iterations, 1)):
            if int(value) < low:
                raise ValueError(f"brp_nas: {key} must be >= {low}; got {value}")
        self.space = space
        self.units, self.layers, self.dropout = int(units), int(layers), float(dropout)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.epochs, self.batch_size, self.iterations = int(epochs), int(batch_size), int(iterations)
        self.top_fraction, self.jit_compile = float(top_fraction), bool(jit_compile)
        self.adj, self.ops = space.all_graphs()
        self.size = len(self.adj)

    @contextlib.contextmanager
    def _trainer(self, seed: int) -> Iterator[Any]:
        """The relation trainer of one search, reset to fresh weights drawn from ``seed``: an idle
        trainer of the same configuration from this process' pool (so one trace serves every search
        of a sweep and every method object of this configuration), else a new one. It goes back to
        the pool when the search ends normally, not after an error or Ctrl-C."""
        from tfnas.predictors.binary import BinaryRelationPredictor, RelationTrainer

        key = (self.adj.shape[1], self.ops.shape[2], self.units, self.layers, self.dropout, self.lr,
               self.weight_decay, self.batch_size, self.jit_compile)

        def build() -> Any:
            model = BinaryRelationPredictor(self.adj.shape[1], self.ops.shape[2], units=self.units,
                                            num_layers=self.layers, dropout=self.dropout, seed=seed)
            return RelationTrainer(model, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                                   jit_compile=self.jit_compile)

        with _IDLE_TRAINERS.lend(key, build) as trainer:
            trainer.reset(seed)
            yield trainer

    def schedule(self, budget: int) -> Tuple[List[int], List[int]]:
        """``(quotas, epochs)`` of a search with ``budget`` queries: the queries of each round (as even as
        integers allow, each >= 2: at most ``budget // 2`` rounds) and the epochs trained after it,
        ``epochs * (t + 1) / T`` rounded half up, at least 1."""
        rounds = max(1, min(self.iterations, int(budget) // 2))
        return split_evenly(budget, rounds), [max(1, half_up(self.epochs * (t + 1) / rounds)) for t in range(rounds)]

    def select(self, order: np.ndarray, quota: int, round_index: int, known: Any,
               rng: np.random.Generator) -> List[int]:
        """The round's new cells: the best ``top_fraction`` of ``quota`` from ``order`` (best first),
        the rest at random from the unqueried cells of its top ``size / 2^round_index``."""
        new = order[~np.isin(order, np.fromiter(known, np.int64, len(known)))]
        n_top = min(half_up(self.top_fraction * quota), len(new))
        picked = [int(c) for c in new[:n_top]]
        region = order[: max(1, self.size >> round_index)]
        pool = np.setdiff1d(region, np.concatenate([np.fromiter(known, np.int64, len(known)),
                                                    np.asarray(picked, np.int64)]))
        n_rand = quota - n_top
        if len(pool) < n_rand:  # the top part ran out: any unqueried cell
            pool = new[n_top:]
        picked += [int(c) for c in rng.choice(pool, size=min(n_rand, len(pool)), replace=False)]
        return picked

    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        t0 = time.perf_counter()
        if budget < 2:  # no pair to learn from: the queried cell, then the rest at random (as ``rand``)
            chosen = rng.choice(self.size, size=budget, replace=False)
            acc = session.query_many(chosen)
            return RunResult(best_index=int(chosen[int(np.argmax(acc))]),
                             scores=queried_first(self.size, chosen, acc, rng), extra={"rounds": 0})
        quotas, epochs = self.schedule(budget)
        with self._trainer(int(rng.integers(2**31 - 1))) as trainer:
            return self._search(session, rng, quotas, epochs, trainer, t0)

    def _search(self, session: Any, rng: np.random.Generator, quotas: List[int], epochs: List[int], trainer: Any,
                t0: float) -> RunResult:
        rounds = len(quotas)
        session.query_many(rng.choice(self.size, size=quotas[0], replace=False))
        losses, rank_s = [], 0.0
        for t in range(rounds):
            if t > 0:
                tr = time.perf_counter()
                ranked = trainer.scores(self.adj, self.ops)
                session.observe(t, np.arange(self.size), ranked)  # scored by the run layer after the search
                order = np.argsort(-ranked, kind="stable")
                rank_s += time.perf_counter() - tr
                session.query_many(self.select(order, quotas[t], t, session.queried(), rng))
            known = session.queried()
            cells = np.fromiter(known.keys(), np.int64, len(known))
            acc = np.fromiter(known.values(), np.float32, len(known))
            losses.append(trainer.fit(self.adj[cells], self.ops[cells], acc, epochs[t], rng)[-1])
        tr = time.perf_counter()
        predicted = trainer.scores(self.adj, self.ops)
        rank_s += time.perf_counter() - tr
        known = session.queried()
        cells = np.fromiter(known.keys(), np.int64, len(known))
        acc = np.fromiter(known.values(), np.float64, len(known))
        # the queried cells first by their accuracy (in [0, 1]), then the rest in the predictor's order
        scores = np.empty(self.size)
        scores[np.argsort(predicted, kind="stable")] = np.arange(self.size) / self.size
        scores[cells] = 1.0 + acc
        extra = {"rounds": rounds, "round_epochs": epochs, "final_pair_loss": [round(float(v), 4) for v in losses],
                 "rank_s": round(rank_s, 3), "search_s": round(time.perf_counter() - t0, 3),
                 "train_traces": trainer.train_traces}
        return RunResult(best_index=int(cells[int(np.argmax(acc))]), scores=scores, extra=extra)
