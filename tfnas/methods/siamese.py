"""Siamese-NAS and the neural-predictor baseline on a tabular graph space.

Spec: Siamese-NAS, "Search loop and budget". A budget ``B`` is the number of counted
ground-truth queries; ``reserve`` (3) of them are kept for best-weights selection in the
last epochs, the rest train the predictor:

- without batch top sampling (BTS), ``B - reserve`` random cells are queried up front;
- with BTS, ``init_fraction`` (30 %) of them up front, the rest spread evenly over
  ``update_split`` points in the middle half of training; at each point a random
  ``sample_fraction`` (10 %) of the space is ranked and its top new cells are queried.

Best-weights selection: after each of the last ``reserve`` epochs a random 10 % sample is
ranked and its highest-ranked cell not yet queried is queried; the weights whose pick was
most accurate are restored at the end. (Taking the first *new* cell keeps every such lookup a
real, counted query, so ``queries == budget`` exactly.)

Siamese ranking: order by the without-code branch, then re-order the top ``k`` (30 during
search, 60 for the final ranking) by the with-code branch; the rest keep their order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Iterator, List, Optional

import numpy as np

from tfnas.lru import LRUCache
from tfnas.methods.base import BudgetedSearch, RunResult
from tfnas.predictors.estimation import EcNormaliser, TableEstimationCode, check_ec_source
from tfnas.registry import register_method
from tfnas.spaces.base import GraphSpace, TabularSpace, require
from tfnas.train.errors import TrainingDivergedError

logger = logging.getLogger(__name__)

#: Idle predictor trainers of this process, by configuration. A search takes one for its run
#: and puts it back when the run ends, so every later search of the same configuration (the
#: next repeat or budget of a sweep, another method object built from the same config, the
#: next test) reuses its traced and compiled functions: a trace and compile cost about 6 s on
#: a 2-core CPU, against about 1 s for a budget-23 search itself.
_IDLE_TRAINERS: "LRUCache[Any]" = LRUCache("predictor trainers", maxsize=4)


def split_evenly(total: int, parts: int) -> List[int]:
    """``total`` split into ``parts`` non-negative integers differing by at most one (larger first)."""
    base, extra = divmod(int(total), int(parts))
    return [base + (1 if i < extra else 0) for i in range(parts)]


def bts_epochs(total_epochs: int, points: int) -> List[int]:
    """``points`` evenly spaced epochs in the middle half of training (distinct, ascending, each one
    of the ``total_epochs`` epochs: a short training has fewer points)."""
    lo, hi = total_epochs * 0.25, total_epochs * 0.75
    epochs = np.unique(np.clip(np.round(np.linspace(lo, hi, points)).astype(int), 0, max(total_epochs - 1, 0)))
    return [int(e) for e in epochs]


def rerank_top_k(scores: np.ndarray, k: int, top_scores_fn) -> np.ndarray:
    """Scores whose top ``k`` entries are re-ordered by ``top_scores_fn(top_positions)``.

    The re-ranked entries stay above all others; everything outside the top ``k`` keeps its
    score. ``top_scores_fn`` gets the positions of the top ``k`` (best first) and returns their
    new scores (higher = better).
    """
    k = min(int(k), len(scores))
    out = np.asarray(scores, np.float64).copy()
    if k <= 0:
        return out
    top = np.argsort(-out, kind="stable")[:k]
    new = np.asarray(top_scores_fn(top), np.float64)
    floor = out[top].max() + 1.0
    out[top] = floor + (new - new.min())
    return out


class PredictorSearch(BudgetedSearch):
    """Predictor-based search: the siamese predictor (``siamese``) or the plain GCN (``predictor``)."""

    def __init__(self, space: Any, *, siamese: bool = True, nsam: bool = True, bts: bool = True,
                 units: int = 64, epochs: int = 200, batch_size: int = 8, lr: float = 1e-3,
                 lr_final: float = 1e-4, huber_delta: float = 0.5, init_fraction: float = 0.3,
                 update_split: int = 10, sample_fraction: float = 0.1, rank_k: int = 30,
                 final_rank_k: int = 60, reserve: int = 3, ec_source: str = "table",
                 ec_factory: Optional[Any] = None, jit_compile: bool = False, name: str = "siamese",
                 max_budget: int = 0):
        require(space, TabularSpace, f"method {name!r}")
        require(space, GraphSpace, f"method {name!r}")
        if siamese:
            check_ec_source(ec_source)
        self.space = space
        self.name = name
        self.siamese, self.nsam, self.bts = siamese, nsam, bts
        self.units, self.epochs, self.batch_size = units, epochs, batch_size
        self.lr, self.lr_final, self.huber_delta = lr, lr_final, huber_delta
        self.init_fraction, self.update_split, self.sample_fraction = init_fraction, update_split, sample_fraction
        self.rank_k, self.final_rank_k, self.reserve = rank_k, final_rank_k, reserve
        self.ec_source, self.ec_factory, self.jit_compile = ec_source, ec_factory, jit_compile
        self.max_budget = int(max_budget)
        self.adj, self.ops = space.all_graphs()
        self.size = len(self.adj)

    requires = (TabularSpace, GraphSpace)
    uses_code = True  # subclasses: does the method use the siamese predictor and an EC?


    @property
    def label(self) -> str:
        """Name of this variant in results tables, e.g. ``siamese+nsam+bts``."""
        return self.name + ("+nsam" if self.siamese and self.nsam else "") + ("+bts" if self.bts else "")

    # -- pieces -------------------------------------------------------------------------------
    def _make_ec(self, session: Any):
        if not self.siamese:
            return None
        if self.ec_source == "table":
            return TableEstimationCode(session)
        if self.ec_factory is None:
            check_ec_source(self.ec_source)
            raise ValueError(f"estimation-code source {self.ec_source!r} needs a factory")
        return self.ec_factory()

    @contextlib.contextmanager
    def _trainer(self, budget: int, seed: int, ec_dim: int) -> Iterator[Any]:
        """A trainer for this budget with fresh weights drawn from ``seed``, for one run.

        Trainers are built with room for the steps of ``max_budget`` (the sweep's largest), so
        every repeat and budget of a sweep shares one set of compiled functions (no retracing, no
        growth over a sweep, one XLA compile per process instead of one per budget). An idle
        trainer of the same configuration (the same traced functions: a schedule of other epochs or
        learning rates is set per run) is taken from this process' pool and reset (the same weights
        and Adam state a new one would start from); it goes back when the run ends normally, not
        after an error or Ctrl-C. The step capacity is part of the key, not a lower bound, so a run's
        compiled loop never depends on which runs came before it in the process.
        """
        from tfnas.predictors.fit import PredictorTrainer, steps_for_budget
        from tfnas.predictors.models import NeuralPredictor, SiamesePredictor

        steps = steps_for_budget(budget, self.batch_size)
        capacity = max(steps, steps_for_budget(self.max_budget, self.batch_size) if self.max_budget > 0 else 0)
        n, k = self.adj.shape[1], self.ops.shape[2]
        # what the traced functions depend on (the schedule, epochs and learning rates, is set per run)
        key = (self.siamese, self.siamese and self.nsam, n, k, ec_dim, self.units, self.batch_size, self.huber_delta,
               bool(self.jit_compile), capacity)

        def build() -> Any:
            if self.siamese:
                model = SiamesePredictor(n, k, ec_dim=ec_dim, units=self.units, nsam=self.nsam, seed=seed)
            else:
                model = NeuralPredictor(n, k, units=self.units, seed=seed)
            return PredictorTrainer(model, total_epochs=self.epochs, steps_per_epoch=steps,
                                    batch_size=self.batch_size, lr_high=self.lr, lr_low=self.lr_final,
                                    huber_delta=self.huber_delta, seed=seed, jit_compile=self.jit_compile,
                                    step_capacity=capacity)

        with _IDLE_TRAINERS.lend(key, build) as trainer:
            trainer.set_schedule(self.epochs, self.lr, self.lr_final)  # a new one: all three change nothing
            trainer.reset(seed)
            trainer.set_steps_per_epoch(steps)
            yield trainer

    def rank(self, trainer, cells: np.ndarray, k: int, ec, normaliser) -> np.ndarray:
        """Scores of ``cells`` (higher = better) under the (siamese) ranking."""
        scores = trainer.predict(self.adj[cells], self.ops[cells]).astype(np.float64)
        if ec is None or normaliser is None:
            return scores

        def with_code(top: np.ndarray) -> np.ndarray:
            sel = cells[top]
            return trainer.predict(self.adj[sel], self.ops[sel], normaliser(ec(sel)))

        return rerank_top_k(scores, k, with_code)

    # -- the search ----------------------------------------------------------------------------
    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        t0 = time.perf_counter()
        # one reserved query per check epoch: a training shorter than the reserve has fewer checks
        reserve = min(self.reserve if budget > self.reserve + 1 else 0, self.epochs)
        ec = self._make_ec(session)
        with self._trainer(budget, int(rng.integers(2**31 - 1)), ec.dim if ec else 0) as trainer:
            return self._search(session, budget, rng, reserve, ec, trainer, t0)

    def _search(self, session: Any, budget: int, rng: np.random.Generator, reserve: int, ec: Any, trainer: Any,
                t0: float) -> RunResult:
        train_budget = budget - reserve
        if self.bts:
            n_init = min(train_budget, max(1, int(round(self.init_fraction * train_budget))))
            points = bts_epochs(self.epochs, self.update_split)
            quotas = dict(zip(points, split_evenly(train_budget - n_init, len(points))))
        else:
            n_init, quotas = train_budget, {}
        check_epochs = set(range(self.epochs - reserve, self.epochs))
        sample_size = max(1, int(round(self.sample_fraction * self.size)))

        session.query_many(rng.choice(self.size, size=n_init, replace=False))
        best_check, best_weights, checks = -1.0, None, []
        data, normaliser = None, None
        for epoch in range(self.epochs):
            if epoch in quotas and quotas[epoch] > 0:
                sample = rng.choice(self.size, size=sample_size, replace=False)
                ranked = self.rank(trainer, sample, self.rank_k, ec, normaliser)
                session.observe(epoch, sample, ranked)  # scored by the run layer after the search
                order = sample[np.argsort(-ranked, kind="stable")]
                session.query_many(self._new_cells(order, quotas[epoch], session, rng))
                data = None
            if data is None:
                data, normaliser = self._training_set(session, ec)
            (loss,) = trainer.train_epochs(data, 1, rng)
            if not math.isfinite(loss):  # its ranking would be NaN scores, its pick arbitrary
                raise TrainingDivergedError(f"the predictor's training loss is {loss} in epoch {epoch + 1}; lower "
                                            f"[predictor] lr (now {self.lr:g}) or lr_final (now {self.lr_final:g})")
            if epoch in check_epochs:
                sample = rng.choice(self.size, size=sample_size, replace=False)
                order = sample[np.argsort(-self.rank(trainer, sample, self.rank_k, ec, normaliser), kind="stable")]
                (pick,) = self._new_cells(order, 1, session, rng)
                acc = session.query(pick)
                checks.append(acc)
                if acc > best_check:
                    best_check, best_weights = acc, trainer.model.get_weights()
        if best_weights is not None:
            trainer.model.set_weights(best_weights)
        train_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        everything = np.arange(self.size)
        scores = self.rank(trainer, everything, self.final_rank_k, ec, normaliser)
        rank_s = time.perf_counter() - t1
        extra = {"train_s": round(train_s, 3), "rank_s": round(rank_s, 3), "train_traces": trainer.train_traces,
                 "train_cells": len(session.queried()),  # the checks in %, as the record's accuracies
                 "best_weights_checks": [round(100.0 * a, 2) for a in checks]}
        return RunResult(best_index=int(np.argmax(scores)), scores=scores, ec_evals=ec.evals if ec else 0, extra=extra)

    def _new_cells(self, order: np.ndarray, n: int, session: Any, rng: np.random.Generator) -> List[int]:
        """The first ``n`` cells of ``order`` not queried yet; when the ranked sample holds fewer
        new cells, the rest are drawn at random from the unqueried cells, so every planned query
        is spent and ``queries == budget`` holds for any sample size."""
        known = session.queried()
        picked = [int(c) for c in order if c not in known][:n]
        if len(picked) < n:
            taken = set(known) | set(picked)
            rest = np.setdiff1d(np.arange(self.size), np.fromiter(taken, np.int64, len(taken)))
            picked += [int(c) for c in rng.choice(rest, size=min(n - len(picked), len(rest)), replace=False)]
        return picked

    def _training_set(self, session: Any, ec):
        from tfnas.predictors.fit import GraphData

        known = session.queried()
        cells = np.fromiter(known.keys(), dtype=np.int64, count=len(known))
        y = np.fromiter(known.values(), dtype=np.float32, count=len(known))
        if ec is None:
            return GraphData(self.adj[cells], self.ops[cells], y), None
        codes = ec(cells)
        normaliser = EcNormaliser(codes)
        return GraphData(self.adj[cells], self.ops[cells], y, normaliser(codes)), normaliser


@register_method("siamese")
class SiameseSearch(PredictorSearch):
    """Siamese-NAS: siamese predictor with Estimation Code, optional NSAM and BTS."""

    uses_code = True


@register_method("predictor")
class NeuralPredictorSearch(PredictorSearch):
    """The plain neural-predictor baseline (GCN, no Estimation Code)."""

    uses_code = False
