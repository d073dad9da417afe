"""Zero-shot evolutionary search (Zen-NAS / Incorporated-NAS), spec "Evolutionary search".

Each iteration: drop the lowest-scoring members until the population holds at most ``N``; if it holds 10
or fewer (fewer than ``N``, for ``N <= 10``), mutate the start architecture once, else mutate a random member
twice; split long blocks; reject the child if it breaks a budget (parameters, FLOPs, layers) or, with the
effectiveness filter on, has ``max rho > max_rho``; otherwise score it with the proxy and insert it.
The answer is the highest-scoring member.

All budget and filter checks are analytic (no model is built), so a rejected child costs
microseconds; only accepted children reach the proxy, through a :class:`ProxyEvaluator`.

Measured-latency budget (``Limits.max_latency_ms`` with a ``latency`` evaluator, e.g. a
:class:`~tfnas.evaluation.latency.LatencyEvaluator`): a child that passes the analytic checks is converted to TFLite
and timed on this machine (median batch-1 LiteRT latency, cached by arch string), and rejected as ``"latency"`` when
the median exceeds the limit; the result's ``extra`` carries the found network's ``latency_ms`` / ``latency_p90_ms``.
Every member was measured on its way in, so each satisfies the limit (as measured then: timing on a busy machine is
noisy).

Memory: the search keeps at most ``N + batch`` arch strings and scores, and the caches behind the proxies are
size-limited (:mod:`tfnas.lru`; their hit/miss counts are logged at INFO, ``-v``, at every record).

Pareto search (``pareto=True``, ``[search] objective = pareto:litert``): every child that passes the checks is timed
as above (the limit applies when one is set), and the population is cut back by NSGA-II's rule
(:func:`tfnas.pareto.nsga_keep`: whole non-dominated fronts of (score, measured latency), then the least crowded)
instead of by score, so it spreads along the trade-off. Any search that measures latency (a limit or ``pareto``) keeps
the non-dominated set of every scored child (the *found front*, bounded by its own size) and the ranges of scores and
latencies seen; the outcome carries the front and its hypervolume normalised to those ranges, and ``pareto.csv`` /
``pareto.txt`` / ``pareto.png`` are written. The answer is still the highest-scoring member.

Batches (``[search] batch = k > 1``): each step generates ``k`` children from the same population (truncated
first), scores the accepted ones together through the run's executor (:mod:`tfnas.evaluation.executors`:
in-process, a process pool or Ray) and inserts them in order. Child ``j`` of the search scores with its own
generator, seeded by ``(seed, j)``, so the records depend on ``k`` and never on the executor or its number of
workers. ``k = 1`` is the paper's loop (one shared scoring generator), bit for bit as before batches existed.

Determinism: mutation draws from one ``numpy`` generator and proxy weights from another, both seeded from ``[run]
seed``; there is no dependence on Python's string hashing or set order, so the same seed gives the same search. Every
``record_every`` iterations the population, counters and both generator states are checkpointed (atomically) to
``search_state/evolution.json``, and a killed search resumes from the last checkpoint and then follows the same
trajectory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfnas.checks import check_int, is_number, positive_int
from tfnas.evaluation.executors import LocalExecutor
from tfnas.evaluation.proxy import ParallelProxyEvaluator, ProxyEvaluator
from tfnas.io import (PCG64_STATE, DamagedFileError, check_fields, dict_of, integer, items, list_of, number, read_json,
                      reading, record, text)
from tfnas.lru import format_cache_stats
from tfnas.methods.base import OneShotSearch, SearchContext, SearchFailedError, SearchOutcome
from tfnas.methods.evolution_state import check_population, same_search
from tfnas.pareto import SearchFront, write_found_front
from tfnas.registry import register_method
from tfnas.spaces.base import EvolvableSpace

logger = logging.getLogger(__name__)

STATE_FORMAT = "tfnas.evolution/1"
#: Counters of scored children, not rejections.
NOT_REJECTIONS = ("scored", "nonfinite")
SMALL_POPULATION = 10  # at or below this size (below the population, if smaller), children come from the start
_CHILD_STREAM = 0xC41D  # seed-sequence word of per-child scoring generators (batched evolution)


@dataclass
class Limits:
    """Budgets of a found network; 0 means no limit."""

    max_params: float = 0.0
    max_flops: float = 0.0
    max_layers: int = 0
    effectiveness_filter: bool = False
    max_rho: float = 0.5
    max_latency_ms: float = 0.0  # measured (needs the search's latency evaluator)

    def __post_init__(self) -> None:
        for name in ("max_params", "max_flops", "max_rho", "max_latency_ms"):
            value = getattr(self, name)
            if not is_number(value) or not 0 <= value < math.inf:
                meaning = "the effectiveness filter's bound" if name == "max_rho" else "0 = no limit"
                raise ValueError(f"Limits: {name} must be a finite number >= 0 ({meaning}). Received: {value!r}")
        check_int(self.max_layers, "max_layers", "Limits", low=0)


@register_method("evolution")
class EvolutionSearch(OneShotSearch):
    """Proxy-driven evolution under parameter / FLOPs / layer budgets (module docstring).

    ``evaluator_cls`` builds the evaluator that scores the children (:class:`ProxyEvaluator`
    by default); a subclass with the same constructor can time, cache or distribute scoring.
    ``latency``: an evaluator returning one :class:`~tfnas.train.litert.LatencyStats` per
    architecture, required by ``limits.max_latency_ms > 0`` (its ``measurer.recipe()``, when it
    has one, is part of the checkpoint identity).
    """

    evaluator_cls = ProxyEvaluator
    requires = (EvolvableSpace,)
    measures_latency = True  # honours a measured-latency limit (the run layer checks the config)

    def __init__(self, space: Any, proxy: Any, *, proxy_name: str, population: int, iterations: int,
                 limits: Limits, record_every: int = 100, batch_size: int = 64,
                 start: Optional[Any] = None, latency: Optional[Any] = None, batch: int = 1, pareto: bool = False):
        for attr in ("mutate", "num_params", "flops"):
            if not hasattr(space, attr):
                raise TypeError(f"method 'evolution' needs a space with `{attr}`; "
                                f"{type(space).__name__} has none")
        if not callable(getattr(proxy, "score_arch", None)):
            raise TypeError(f"proxy must be a Proxy object (tfnas.proxies.get_proxy(name)), got {proxy!r}")
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be a Limits, got {type(limits).__name__}")
        population = positive_int(population, "population", "EvolutionSearch")
        iterations = check_int(iterations, "iterations", "EvolutionSearch", low=0)
        record_every = positive_int(record_every, "record_every", "EvolutionSearch")
        if limits.effectiveness_filter and not hasattr(space, "effectiveness"):
            raise TypeError(f"the effectiveness filter needs a space with `effectiveness`; "
                            f"{type(space).__name__} has none (set [search] effectiveness_filter = false)")
        self.space, self.proxy, self.proxy_name = space, proxy, proxy_name
        self.population, self.iterations, self.limits = population, iterations, limits
        self.record_every, self.batch_size = record_every, batch_size
        self.start = start if start is not None else space.start_arch
        self.pareto = bool(pareto)
        measures = limits.max_latency_ms > 0 or self.pareto
        if measures and latency is None:
            raise ValueError("a measured-latency limit (limits.max_latency_ms > 0) or a Pareto search needs a "
                             "latency evaluator")
        self.latency = latency if measures else None
        if int(batch) < 1:
            raise ValueError(f"evolution batch must be >= 1, got {batch}")
        self.batch = int(batch)

    # -- checks ----------------------------------------------------------------------------------
    def reject_reason(self, arch: Any) -> str:
        """Why ``arch`` is rejected (``"params"``, ``"flops"``, ``"layers"``, ``"filter"``) or ``""``."""
        lim = self.limits
        if lim.max_params and self.space.num_params(arch) > lim.max_params:
            return "params"
        if lim.max_flops and self.space.flops(arch) > lim.max_flops:
            return "flops"
        if lim.max_layers and self.space.num_layers(arch) > lim.max_layers:
            return "layers"
        if lim.effectiveness_filter and self.space.effectiveness(arch) > lim.max_rho:
            return "filter"
        return ""

    def measured_reason(self, arch: Any) -> str:
        """``"latency"`` when the measured median latency of ``arch`` exceeds the limit, else ``""``
        (measures, or reads the cache; call after :meth:`reject_reason` passed)."""
        if self.latency is None:
            return ""
        limit = self.limits.max_latency_ms
        return "latency" if limit > 0 and self._latency_ms(arch) > limit else ""

    def _latency_ms(self, arch: Any) -> float:
        (stats,) = self.latency.evaluate([arch])
        return float(stats.median_ms)

    def _child(self, members: List[Tuple[str, float]], rng: np.random.Generator) -> Any:
        if len(members) <= min(SMALL_POPULATION, self.population - 1):  # (a small population must fill first)
            child = self.space.mutate(self.start, rng)
        else:
            parent = self.space.decode(members[int(rng.integers(len(members)))][0])
            child = self.space.mutate(self.space.mutate(parent, rng), rng)
        if hasattr(self.space, "split_long_blocks"):
            child = self.space.split_long_blocks(child)
        return child

    # -- state -----------------------------------------------------------------------------------
    STATE_FILE = "search_state/evolution.json"

    def _state_path(self, context: SearchContext) -> str:
        return context.store.path(self.STATE_FILE)

    def _identity(self) -> Dict[str, Any]:
        lim = self.limits
        identity = {"proxy": self.proxy_name, "population": self.population, "start": self.space.encode(self.start),
                    "limits": [lim.max_params, lim.max_flops, lim.max_layers, lim.effectiveness_filter, lim.max_rho],
                    "batch_size": self.batch_size}
        if self.population <= SMALL_POPULATION:  # absent otherwise: before 2026-12-08 such a population never evolved
            identity["evolves_when_full"] = True
        if self.batch > 1:  # absent for batch 1: checkpoints written before batches existed stay valid
            identity["batch"] = self.batch
        if self.pareto:  # absent otherwise: checkpoints of single-objective searches stay valid
            identity["pareto"] = True
        if self.latency is not None:  # absent otherwise: checkpoints of unconstrained searches stay valid
            measurer = getattr(self.latency, "measurer", None)
            identity["latency"] = {"max_ms": lim.max_latency_ms,
                                   "setup": measurer.recipe() if measurer is not None else None}
        return identity

    def _save(self, context: SearchContext, state: Dict[str, Any]) -> None:
        context.store.write_text(self.STATE_FILE, json.dumps(state) + "\n")

    def _counts(self) -> Dict[str, int]:
        """The counters of a fresh search: scored children and rejections by reason."""
        counts = {"scored": 0, "nonfinite": 0, "params": 0, "flops": 0, "layers": 0, "filter": 0}
        if self.latency is not None:
            counts["latency"] = 0
        return counts

    @staticmethod
    def _rejected(counts: Dict[str, int]) -> Dict[str, int]:
        """The rejections by reason (children not scored)."""
        return {k: v for k, v in counts.items() if k not in NOT_REJECTIONS}

    def _load(self, context: SearchContext) -> Optional[Dict[str, Any]]:
        """The checkpoint of this search, or None; every field the search reads is checked here, before
        any work (:class:`DamagedFileError` names the file and the field)."""
        path = self._state_path(context)
        if not os.path.exists(path):
            return None
        restart = "delete the run directory to restart"
        state = read_json(path, restart)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or not same_search(
                state.get("identity"), _jsonify(self._identity()), self.limits.effectiveness_filter):
            raise DamagedFileError(path, "holds the state of another evolution", restart)
        member = items(text, number(finite=True))
        done = integer(0, self.iterations, f"an integer in [0, {self.iterations}] ([search] iterations)")
        fields = {"iteration": done, "seconds": number(low=0, finite=True),
                  "members": list_of(member, max_length=self.population + self.batch),
                  "counts": record({k: integer(low=0) for k in self._counts()}, only=True,
                                   optional=("nonfinite",)),  # a state written before it was counted
                  "mutation_rng": PCG64_STATE, "score_rng": PCG64_STATE,
                  "rows": integer(low=0), "failed": integer(low=0),  # (both absent from a state of before 2026-12-07)
                  "pareto": record({"latency": dict_of(number(low=0)),
                                    "front": list_of(items(text, number(), number())),
                                    "bounds": list_of(number(), length=4)})}
        check_fields(path, state, record(fields, optional=("pareto", "rows", "failed")), restart)
        check_population(path, state, self.population, self.batch, restart)
        pareto = state.get("pareto")
        if self.latency is not None and pareto is not None:
            missing = [a for a, _ in state["members"] if a not in pareto["latency"]]
            if missing:
                raise DamagedFileError(path, f"'pareto'['latency'] lacks the latency of member {missing[0]!r}", restart)
        saved = [a for a, _ in state["members"]] + [p[0] for p in (pareto or {}).get("front", [])]
        with reading(path, restart):  # an architecture the space cannot decode is named with the file
            decoded = [self.space.decode(arch) for arch in saved]
        for arch, written in zip(decoded, saved):  # outside reading(): a bug here is not a damaged file
            reason = self.reject_reason(arch)
            if reason:  # every child is checked before it joins: this one was written by hand
                raise DamagedFileError(path, f"the saved architecture {written!r} breaks the search's {reason} limit",
                                       restart)
        return state

    # -- the search ------------------------------------------------------------------------------
    def search(self, context: SearchContext) -> SearchOutcome:
        seeds = np.random.SeedSequence(context.seed).spawn(2)
        mut_rng, score_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
        members: List[Tuple[str, float]] = []  # (arch string, score)
        counts = self._counts()
        done, seconds = 0, 0.0
        nonfinite_known = True  # False for a state saved before they were counted, once its population was full
        front = SearchFront()  # pareto: latency of each member, the found front, the ranges seen
        state = self._load(context)
        if state is not None:
            members = [(a, float(s)) for a, s in state["members"]]
            front = SearchFront.from_state(state.get("pareto"))
            if self.latency is not None and "pareto" not in state:  # written before fronts were kept
                for arch, score in members:  # their latencies come from the cache
                    front.add(arch, score, self._latency_ms(self.space.decode(arch)))
            counts.update(state["counts"])
            if "nonfinite" not in state["counts"]:  # a state written before non-finite scores were counted
                nonfinite_known = len(members) < self.population  # never cut back: every finite score joined
                counts["nonfinite"] = counts["scored"] - len(members) if nonfinite_known else 0
            done, seconds = int(state["iteration"]), float(state["seconds"])
            mut_rng.bit_generator.state = state["mutation_rng"]
            score_rng.bit_generator.state = state["score_rng"]
            logger.info("resuming evolution at iteration %d / %d", done, self.iterations)
        evaluator = self._evaluator(context, score_rng)
        failed_before = int(state.get("failed", 0)) if state is not None else 0  # scorings that raised, before a resume
        bar = None
        if context.progress and done < self.iterations:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.iterations, initial=done, desc=f"evolution ({self.proxy_name})", unit="it")
        t0 = time.perf_counter() - seconds
        # the history rows this search has made by now (history.csv may hold one more: logged, then killed)
        rows = int(state.get("rows", context.logged_rows)) if state is not None else 0  # (a state of before 2026-12-07)
        try:
            while done < self.iterations:
                members = self._cut(members, front)  # (a state saved before rows were cut holds the batch too)
                n = min(self.batch, self.iterations - done)
                children = [self._child(members, mut_rng) for _ in range(n)]
                accepted = []
                for j, child in enumerate(children):
                    reason = self.reject_reason(child) or self.measured_reason(child)
                    if reason:
                        counts[reason] += 1
                    else:
                        accepted.append((done + j, child))
                if accepted:
                    archs = [child for _, child in accepted]
                    if self.batch == 1:  # the paper's loop: one shared scoring generator
                        scores = evaluator.evaluate(archs)
                    else:
                        scores = evaluator.evaluate(archs, rngs=[self._child_rng(context.seed, number)
                                                                 for number, _ in accepted])
                    for child, score in zip(archs, scores):
                        counts["scored"] += 1
                        if math.isfinite(score):
                            members.append((self.space.encode(child), score))
                            if self.latency is not None:
                                front.add(members[-1][0], score, self._latency_ms(child))
                        else:
                            counts["nonfinite"] += 1
                previous, done = done, done + n
                if bar is not None:
                    bar.update(n)
                    if members and done // 10 > previous // 10:
                        bar.set_postfix(best=f"{max(s for _, s in members):.4g}", pop=len(members))
                if done // self.record_every > previous // self.record_every or done == self.iterations:
                    elapsed = time.perf_counter() - t0
                    members = self._cut(members, front)  # the row describes the population the next batch draws from
                    row = self._row(done, members, counts, elapsed)
                    if self.latency is not None:
                        row.update(front_size=len(front.points), hypervolume=front.hypervolume())
                    rows += 1
                    if rows > context.logged_rows:  # (logged before a crash that came ahead of the save below)
                        context.log(row)
                    logger.info("evolution: iteration %d / %d, %d scored; caches: %s", done, self.iterations,
                                counts["scored"], format_cache_stats())
                    self._save(context, {
                        "format": STATE_FORMAT, "identity": _jsonify(self._identity()), "iteration": done,
                        "seconds": elapsed, "rows": rows, "members": members,
                        "failed": failed_before + int(getattr(evaluator, "failed", 0)),
                        "counts": counts if nonfinite_known else {k: v for k, v in counts.items() if k != "nonfinite"},
                        "mutation_rng": mut_rng.bit_generator.state, "score_rng": score_rng.bit_generator.state,
                        **({"pareto": front.state()} if self.latency is not None else {}),
                    })
        finally:
            if bar is not None:
                bar.close()
        if not members:
            rejected = self._rejected(counts)
            if counts["scored"]:
                raise SearchFailedError(f"evolution kept no architecture in {self.iterations} iterations: all "
                                        f"{counts['scored']} scored children had a non-finite {self.proxy_name} score "
                                        f"(rejected before scoring: {rejected}); check the proxy and its inputs")
            raise SearchFailedError(f"evolution found no architecture within the limits in {self.iterations} "
                                    f"iterations (rejected: {rejected}); loosen [budget] or run more iterations")
        best_arch, best_score = max(members, key=lambda m: m[1])
        best = self.space.decode(best_arch)
        elapsed = time.perf_counter() - t0
        extra = {"params": int(self.space.num_params(best)), "flops": int(self.space.flops(best)),
                 "iterations": done, "scored": counts["scored"],
                 **({"nonfinite": counts["nonfinite"]} if nonfinite_known else {}),
                 "rejected": self._rejected(counts),
                 "iterations_per_s": round(done / max(elapsed, 1e-9), 2)}
        if hasattr(self.space, "num_layers"):
            extra["layers"] = int(self.space.num_layers(best))
        if self.batch > 1:
            extra["failed"] = failed_before + int(getattr(evaluator, "failed", 0))
        if self.latency is not None:
            (stats,) = self.latency.evaluate([best])  # measured when it joined: a cache hit
            extra.update(latency_ms=round(stats.median_ms, 4), latency_p90_ms=round(stats.p90_ms, 4),
                         max_latency_ms=self.limits.max_latency_ms, **self._write_front(context, front))
        return SearchOutcome(best_arch=best_arch, score=float(best_score), score_name=self.proxy_name, extra=extra)

    def _cut(self, members: List[Tuple[str, float]], front: "SearchFront") -> List[Tuple[str, float]]:
        """``members`` cut back to ``population``: the best scores, or the best fronts with ``pareto``."""
        if len(members) <= self.population:
            return members
        if self.pareto:
            return front.keep(members, self.population)
        members = sorted(members, key=lambda m: -m[1])[:self.population]
        if self.latency is not None:
            front.forget_all_but(members)
        return members

    def _write_front(self, context: SearchContext, front: "SearchFront") -> Dict[str, Any]:
        """Writes ``pareto.csv`` / ``.txt`` / ``.png`` and returns the outcome's Pareto entries."""
        rows = [{"arch": a, "score": sc, "latency_ms": ms, "params": int(self.space.num_params(self.space.decode(a)))}
                for a, sc, ms in front.points]
        write_found_front(context.store, rows, self.proxy_name, front.ranges(),
                          title=f"evolution ({self.proxy_name}) vs measured LiteRT latency")
        hv = front.hypervolume()  # undefined (None in result.json) while every child had one score or latency
        return {"pareto_front": rows, "hypervolume": None if math.isnan(hv) else hv,
                "hypervolume_ranges": front.ranges()}

    def _evaluator(self, context: SearchContext, score_rng: np.random.Generator) -> Any:
        """The scorer of children: ``evaluator_cls`` in this process for ``batch = 1``; for batches,
        a :class:`ParallelProxyEvaluator` on the run's executor (in-process when it has none)."""
        shape = (self.space.resolution, self.space.resolution, 3)
        if self.batch == 1:
            if context.executor is not None and context.executor.name != "local":
                logger.warning("evolution with [search] batch = 1 scores one child at a time in this process; "
                               "set batch to a multiple of the %d workers to use them", context.executor.workers)
            return self.evaluator_cls(self.space, self.proxy, num_classes=self.space.num_classes,
                                      input_shape=shape, batch_size=self.batch_size, rng=score_rng)
        executor = context.executor if context.executor is not None else LocalExecutor()
        prime = (self.space.encode(self.start), self._child_rng(context.seed, -1))
        return ParallelProxyEvaluator(executor, self.space, self.proxy, num_classes=self.space.num_classes,
                                      input_shape=shape, batch_size=self.batch_size, prime=prime)

    @staticmethod
    def _child_rng(seed: int, number: int) -> np.random.Generator:
        """The scoring generator of the search's child ``number`` (``-1``: the priming call)."""
        return np.random.default_rng(np.random.SeedSequence([seed, _CHILD_STREAM, number + 1]))

    def _row(self, done: int, members: List[Tuple[str, float]], counts: Dict[str, int],
             elapsed: float) -> Dict[str, Any]:
        scores = [s for _, s in members]
        row: Dict[str, Any] = {"iteration": done, "best_score": max(scores) if scores else float("nan"),
                               "mean_score": float(np.mean(scores)) if scores else float("nan"),
                               "median_score": float(np.median(scores)) if scores else float("nan"),
                               "population": len(members), "scored": counts["scored"],
                               "rejected": sum(self._rejected(counts).values()),
                               "iterations_per_s": done / max(elapsed, 1e-9)}
        if members:
            best = self.space.decode(max(members, key=lambda m: m[1])[0])
            row["best_params"] = int(self.space.num_params(best))
            row["best_flops"] = int(self.space.flops(best))
            if self.latency is not None:
                row["best_latency_ms"] = self.latency.evaluate([best])[0].median_ms
        return row


def _jsonify(value: Any) -> Any:
    return json.loads(json.dumps(value))
