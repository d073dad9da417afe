"""The shared search driver: budget sweep x repeats, records, resume, evaluation, outputs.

``cfg -> space, benchmark, method -> one RunResult per (budget, repeat) -> RunRecord``. The
driver owns the run directory: it writes the resolved config, appends each finished record
to ``runs.jsonl`` atomically, skips records already present (resume), and writes the summary
table and plots. Methods never see ground truth except through their counting session.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from tfnas import metrics
from tfnas.config import Config, ConfigError, config_to_ini, load_config
from tfnas.registry import BENCHMARKS, METHODS, SPACES
from tfnas.results import RunLog, RunRecord, atomic_write_text, write_outputs
from tfnas.spaces.base import TabularSpace
from tfnas.spaces.pool import CandidatePool

logger = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    run_dir: str
    records: List[RunRecord]
    new_records: int
    summary: "object"  # pandas.DataFrame
    optimum: float


def build_space(cfg: Config):
    """The configured space: ``cls.from_config(cfg)`` where the space defines it, else ``cls()``."""
    cls = SPACES.get(cfg.space.name)
    if hasattr(cls, "from_config"):
        return cls.from_config(cfg)
    kwargs = {}
    if cfg.space.name == "nb201":
        kwargs = {"channels": cfg.space.channels, "cells_per_stage": cfg.space.cells_per_stage}
    return cls(**kwargs)


def record_seed(root: int, budget: int, repeat: int) -> int:
    """The seed of one (budget, repeat) record, derived from the run's root seed."""
    return int(np.random.SeedSequence([root, budget, repeat]).generate_state(1)[0])


def _check_run_dir(cfg: Config, run_dir: str) -> None:
    """Refuses to mix records of different configs in one directory (resume needs the same config)."""
    path = os.path.join(run_dir, "config.cfg")
    resolved = _comparable(config_to_ini(cfg))
    if os.path.exists(path):
        # Read back through the current schema: keys added since the directory was written take
        # their defaults (what the older version did), so an upgrade does not orphan a run dir.
        try:
            previous = _comparable(config_to_ini(load_config(path, check_names=False)))
        except ConfigError:
            previous = None
        if previous != resolved:
            raise ConfigError(
                f"{run_dir}: holds results of a different configuration (see its config.cfg); "
                f"choose another [run] out_dir or delete the directory"
            )


def _comparable(ini: str) -> str:
    # Keys that do not change results (display, output location, budget range, repeats) may differ.
    skip = ("#", "progress =", "out_dir =", "start =", "stop =", "step =", "repeats =")
    return "\n".join(l for l in ini.splitlines() if not l.startswith(skip))


def run_sweep(cfg: Config, progress: Optional[bool] = None,
              on_record: Optional[Callable[[RunRecord], None]] = None) -> SweepOutcome:
    """Runs every (budget, repeat) of ``cfg`` not already in the run directory and writes the outputs."""
    if cfg.benchmark.name == "none":
        raise ConfigError(f"{cfg.source or '<defaults>'}: [benchmark] name: method "
                          f"{cfg.method.name!r} needs a benchmark (e.g. nb201)")
    progress = cfg.run.progress if progress is None else progress
    run_dir = cfg.out_dir
    os.makedirs(run_dir, exist_ok=True)
    _check_run_dir(cfg, run_dir)
    atomic_write_text(os.path.join(run_dir, "config.cfg"), config_to_ini(cfg))

    space = build_space(cfg)
    if not isinstance(space, TabularSpace):
        # Open spaces are searched over a fixed pool drawn with the run seed (tfnas/spaces/pool.py).
        space = CandidatePool(space, size=cfg.search.pool_size, seed=cfg.run.seed)
        atomic_write_text(os.path.join(run_dir, "pool.txt"), "\n".join(space.keys) + "\n")
    bench_cls = BENCHMARKS.get(cfg.benchmark.name)
    if hasattr(bench_cls, "from_config"):
        benchmark = bench_cls.from_config(cfg, space)
    else:
        benchmark = bench_cls(source=cfg.benchmark.source)
    _check_benchmark_fits(cfg, space, benchmark)
    method = METHODS.get(cfg.method.name).from_config(cfg, space)
    label = getattr(method, "label", cfg.method.name)  # variants get their own rows in tables
    dataset = cfg.dataset.name
    truth = benchmark.ground_truth(dataset)
    optimum = float(truth.max()) if truth is not None else float("nan")

    log = RunLog(os.path.join(run_dir, "runs.jsonl"))
    done = log.keys()
    tasks = [(b, r) for b in cfg.budget.budgets() for r in range(cfg.budget.repeats) if (b, r) not in done]
    if done:
        logger.info("resuming %s: %d records present, %d to run", run_dir, len(done), len(tasks))

    bar = None
    if progress and tasks:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc=f"{cfg.method.name} {dataset}", unit="run")
    new = 0
    try:
        for budget, repeat in tasks:
            seed = record_seed(cfg.run.seed, budget, repeat)
            rng = np.random.default_rng(seed)
            session = benchmark.session(dataset, budget)
            start = time.perf_counter()
            result = method.run(session, budget, rng)
            wall = time.perf_counter() - start
            if truth is None:  # training oracle: train the found cell (outside the budget)
                truth_fn = benchmark.evaluate
            else:
                truth_fn = truth
            record = evaluate_result(label, dataset, budget, repeat, seed, session, result, space,
                                     truth_fn, wall)
            log.append(record)
            new += 1
            if on_record:
                on_record(record)
            if bar is not None:
                bar.set_postfix(budget=budget, acc=f"{record.top1_acc:.2f}")
                bar.update(1)
            gc.collect()
    finally:
        if bar is not None:
            bar.close()
    summary = write_outputs(run_dir, log.records, {dataset: optimum} if truth is not None else None,
                            title=cfg.method.name)
    return SweepOutcome(run_dir, log.records, new, summary, optimum)


def _check_benchmark_fits(cfg: Config, space, benchmark) -> None:
    where = cfg.source or "<defaults>"
    if getattr(benchmark, "name", "") == "nb201" and cfg.space.name != "nb201":
        raise ConfigError(f"{where}: [benchmark] name: the nb201 table answers only for [space] name = nb201, "
                          f"got space {cfg.space.name!r}; use [benchmark] name = train (the training oracle)")
    has_table = benchmark.ground_truth(cfg.dataset.name) is not None
    uses_code = getattr(METHODS.get(cfg.method.name), "uses_code", False)
    if not has_table and uses_code and cfg.predictor.ec_source == "table":
        raise ConfigError(f"{where}: [predictor] ec_source: 'table' needs the NB201 12-epoch table; with "
                          f"[benchmark] name = {cfg.benchmark.name} use ec_source = train or a proxy name")


def evaluate_result(method: str, dataset: str, budget: int, repeat: int, seed: int, session, result,
                    space, truth, wall: float) -> RunRecord:
    """Scores a :class:`RunResult` against the ground truth (these lookups are not part of the budget).

    ``truth`` is the table of every cell's accuracy (%), or a callable ``index -> accuracy (%)``
    (the training oracle): then only the found cell is evaluated and the ranking metrics stay NaN.
    """
    if session.queries > budget:
        raise RuntimeError(f"method {method!r} used {session.queries} queries with a budget of {budget}")
    if callable(truth):
        top1 = float(truth(result.best_index))
        return RunRecord(
            method=method, dataset=dataset, budget=budget, repeat=repeat, seed=seed,
            queries=session.queries, ec_evals=max(result.ec_evals, session.ec_evals),
            arch=space.encode(space.from_index(result.best_index)), top1_acc=top1, wall_s=wall,
            extra=dict(result.extra),
        )
    top1 = float(truth[result.best_index])
    rec = RunRecord(
        method=method, dataset=dataset, budget=budget, repeat=repeat, seed=seed,
        queries=session.queries, ec_evals=max(result.ec_evals, session.ec_evals),
        arch=space.encode(space.from_index(result.best_index)),
        top1_acc=top1, regret=float(truth.max()) - top1, wall_s=wall, extra=dict(result.extra),
    )
    if result.scores is not None:
        scores = np.asarray(result.scores, np.float64)
        rec.top10_acc = metrics.top_k_best(scores, truth, 10)
        rec.top100_acc = metrics.top_k_best(scores, truth, 100)
        rec.spearman = metrics.spearman(scores, truth)
        rec.kendall = metrics.kendall(scores, truth)
    return rec
