"""The budget sweep: ``(budget, repeat)`` records of a :class:`~tfnas.methods.base.BudgetedSearch`.

``space, benchmark, method -> one RunResult per (budget, repeat) -> RunRecord``. Each finished
record is appended to ``runs.jsonl`` atomically; records already present are skipped (resume);
the summary table and plots are written at the end. With ``[run] tensorboard`` each record is
also drawn in TensorBoard (``tensorboard/sweep/``) and the run gets one hparams row
(:mod:`tfnas.run.events`). Methods never see ground truth except
through their counting session; the scoring below reads the table outside the budget.
A hardware-aware sweep (``[search] objective`` / ``max_latency_ms``, ``[budget] max_params``)
searches the feasible cells only (:mod:`tfnas.run.constraints`).

With ``[run] executor = process | ray`` the records are computed by the workers (each builds the
space, benchmark and method from the config once, :class:`SweepJob`), one task per record, and
each is appended once every record before it is; a record depends only on the config and its
``(budget, repeat)`` seed, so the records are the same as in this process, in the same order. A training-oracle sweep (``[benchmark] name =
train``) instead trains each batch of new queries on the workers (:class:`TrainingEvaluator`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tfnas import metrics
from tfnas.config import Config, ConfigError
from tfnas.evaluation.executors import Failed, Job, LocalExecutor, prepare_job
from tfnas.evaluation.training import TrainingEvaluator
from tfnas.results import RunLog, RunRecord, write_outputs
from tfnas.methods.base import BudgetedSearch
from tfnas.registry import METHODS
from tfnas.run import check_flow
from tfnas.run.constraints import (Constrained, constrain, constraint_requested, pareto_tables,
                                   refuse_unhonoured_limits)
from tfnas.run.events import (SweepEvents, events_root, hparams_missing, hparams_of, sweep_final_metrics,
                              write_hparams)
from tfnas.run.factory import (build_benchmark, build_executor, build_method, build_space, check_method_fits_space,
                               check_training_data, refuse_multi_worker, where)
from tfnas.run.rundir import CONFIG_FILE, RunDir, RunDirError
from tfnas.run.unused import tolerated
from tfnas.spaces.base import TabularSpace
from tfnas.spaces.pool import CandidatePool

logger = logging.getLogger(__name__)

#: A sweep's records are keyed by (budget, repeat): the budget range and repeat count may change.
SWEEP_FREE_KEYS = (("budget", "start"), ("budget", "stop"), ("budget", "step"), ("budget", "repeats"))


@dataclass
class SweepOutcome:
    run_dir: str
    records: List[RunRecord]
    new_records: int
    summary: Any  # pandas.DataFrame
    optimum: float


def record_seed(root: int, budget: int, repeat: int) -> int:
    """The seed of one (budget, repeat) record, derived from the run's root seed."""
    return int(np.random.SeedSequence([root, budget, repeat]).generate_state(1)[0])


def tabular_view(cfg: Config, space: Any) -> Any:
    """The space itself when tabular; else a pool of ``[search] pool_size`` cells drawn with the run
    seed (the sweep writes its keys to ``pool.txt``)."""
    if isinstance(space, TabularSpace):
        return space
    return CandidatePool(space, size=cfg.search.pool_size, seed=cfg.run.seed)


def check_budget_fits(cfg: Config, space: Any) -> None:
    """Refuses budgets above the number of cells a search can query (every method alike): a
    budget is a count of distinct ground-truth queries, so ``queries`` always equals it."""
    size = int(space.size)
    if cfg.budget.stop > size:
        what = f"the {size:,} cells of {cfg.space.name}" if isinstance(space, TabularSpace) and not isinstance(
            space, CandidatePool) else f"the pool of {size:,} cells ([search] pool_size)"
        raise ConfigError(f"{where(cfg, 'budget', 'stop')}: {cfg.budget.stop:,} queries exceed {what}; "
                          f"expected a budget <= {size:,}")


def check_benchmark_fits(cfg: Config, method_cls: type, benchmark: Any) -> None:
    if getattr(benchmark, "name", "") == "nb201" and cfg.space.name != "nb201":
        raise ConfigError(f"{where(cfg, 'benchmark', 'name')}: the nb201 table answers only for [space] name = nb201, "
                          f"got space {cfg.space.name!r}; use [benchmark] name = train (the training oracle)")
    if getattr(benchmark, "name", "") == "nb201" and constraint_requested(cfg):  # params beside the table's figures
        for key, table in (("channels", 16), ("cells_per_stage", 5)):
            if getattr(cfg.space, key) != table:
                raise ConfigError(f"{where(cfg, 'space', key)}: the nb201 table's accuracies and latencies are of "
                                  f"networks with channels = 16 and cells_per_stage = 5; got {getattr(cfg.space, key)} "
                                  f"(the records' params would be of networks nobody measured); leave it at {table}, "
                                  f"or use [benchmark] name = train to train networks of this size")
    try:
        has_table = benchmark.ground_truth(cfg.dataset.name) is not None
    except ValueError as exc:  # a table without this dataset
        raise ConfigError(f"{where(cfg, 'dataset', 'name', cfg.dataset.name)}: {exc}") from None
    if not has_table and getattr(method_cls, "uses_code", False) and cfg.predictor.ec_source == "table":
        raise ConfigError(f"{where(cfg, 'predictor', 'ec_source')}: 'table' needs the NB201 12-epoch table; with "
                          f"[benchmark] name = {cfg.benchmark.name} use ec_source = train or a proxy name")


def run_sweep(cfg: Config, progress: Optional[bool] = None,
              on_record: Optional[Callable[[RunRecord], None]] = None) -> SweepOutcome:
    """Runs every (budget, repeat) of ``cfg`` not already in the run directory and writes the outputs."""
    check_flow(cfg, "sweep")
    if cfg.benchmark.name == "none":
        build_benchmark(cfg, None)  # raises the "needs a benchmark" error before anything is written
    progress = cfg.run.progress if progress is None else progress
    run_dir = RunDir(cfg, ignore=SWEEP_FREE_KEYS, tolerate=tolerated(cfg, "sweep"))
    run_dir.check()  # everything is validated and built before the directory is written
    check_method_fits_space(cfg)
    trains = cfg.benchmark.name == "train" or (
        getattr(METHODS.get(cfg.method.name), "uses_code", False) and cfg.predictor.ec_source == "train")
    refuse_multi_worker(cfg, "a sweep", trains=trains)
    refuse_unhonoured_limits(cfg, "sweep")
    space = tabular_view(cfg, build_space(cfg))
    check_budget_fits(cfg, space)
    benchmark = build_benchmark(cfg, space)
    check_benchmark_fits(cfg, METHODS.get(cfg.method.name), benchmark)
    constrained = constrain(cfg, METHODS.get(cfg.method.name), space, benchmark)
    if constrained is not None:  # the method and the scoring see the feasible cells only
        space, benchmark = constrained.space, constrained.benchmark
    method = build_method(cfg, space)
    # Before config.cfg is (re)written: records of another config are refused, a runs.jsonl that holds no
    # record and has no config.cfg beside it (maybe a file of the user's) too, and the data is checked when
    # records still to compute train networks.
    expect = {"method": method.label, "dataset": cfg.dataset.name}
    first = _read_log(run_dir, expect, warn=False)
    if first.dropped and not first.records and not run_dir.store.exists(CONFIG_FILE):
        raise RunDirError(f"{first.path}: holds no tfnas run record ({len(first.dropped)} line(s) that are not) and "
                          f"the folder has no {CONFIG_FILE}: it may be a file of your own, which this run would "
                          f"replace; choose another [run] out_dir, or delete the file")
    present = first.keys()
    if trains and any((b, r) not in present for b in cfg.budget.budgets() for r in range(cfg.budget.repeats)):
        check_training_data(cfg)
    with run_dir:
        log = _read_log(run_dir, expect, save=True)  # again under the lock (a writer that just finished)
        if isinstance(space, CandidatePool):
            run_dir.derived.add("pool.txt")  # (from the config: a run stopped before a record left nothing)
            run_dir.store.write_text("pool.txt", "\n".join(space.keys) + "\n")
        return _sweep(cfg, run_dir, log, space, benchmark, method, progress, on_record, constrained)


def _read_log(run_dir: RunDir, expect: Dict[str, str], warn: bool = True, save: bool = False) -> RunLog:
    """The run directory's records; with ``save``, records of this configuration that an earlier version
    wrote under another id (its config.cfg, before values were normalised) are written back with this one."""
    try:
        log = RunLog(run_dir.file("runs.jsonl"), config_id=run_dir.config_id, warn=warn, expect=expect,
                     same_config=run_dir.same_config_ids)
    except ValueError as exc:
        raise RunDirError(str(exc)) from None
    if save and log.migrated:  # config.cfg has just been rewritten with the normalised values
        try:
            log.save()
        except OSError:  # a read-only finished run: config.cfg was kept as it was, so are its records' ids
            pass
    return log


def _sweep(cfg: Config, run_dir: RunDir, log: RunLog, space: Any, benchmark: Any, method: Any, progress: bool,
           on_record: Optional[Callable[[RunRecord], None]], constrained: Optional[Constrained] = None
           ) -> SweepOutcome:
    dataset = cfg.dataset.name
    truth = benchmark.ground_truth(dataset)
    optimum = float(truth.max()) if truth is not None else float("nan")
    done = log.keys()
    tasks = [(b, r) for b in cfg.budget.budgets() for r in range(cfg.budget.repeats) if (b, r) not in done]
    if done:
        logger.info("resuming %s: %d records present, %d to run", run_dir.path, len(done), len(tasks))
    _prepare(cfg, run_dir, method, progress)
    bar = None
    if progress and tasks:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc=f"{cfg.method.name} {dataset}", unit="run")
    new = 0
    events = SweepEvents(events_root(cfg), cfg.budget.repeats)
    if events.restore(list(log.records)):  # tensorboard/ deleted, or written with [run] tensorboard = false
        logger.info("%s: drew the %d records already there in TensorBoard again", run_dir.path, len(log.records))
    context = RecordContext(space, benchmark, method, dataset, truth, optimum, constrained, run_dir.config_id)
    try:
        with build_executor(cfg) as executor:
            records = _records(cfg, context, tasks, _records_executor(cfg, method, benchmark, executor))
            with contextlib.closing(records):  # an error or Ctrl-C here stops the workers' unfinished tasks
                for record in records:
                    log.append(record)
                    events.record(record, log.records)
                    new += 1
                    if on_record:
                        on_record(record)
                    if bar is not None:
                        bar.set_postfix(budget=record.budget, acc=f"{record.top1_acc:.2f}")
                        bar.update(1)
                    gc.collect()
    finally:
        events.close()
        if bar is not None:
            bar.close()
    if new or hparams_missing(events_root(cfg)):  # one hparams row per run, rewritten only when records were added
        write_hparams(events_root(cfg), hparams_of(cfg, unread=tolerated(cfg, "sweep")),
                      sweep_final_metrics(log.records))
    summary = write_outputs(run_dir.path, log.records, {dataset: optimum} if truth is not None else None,
                            title=method.label)
    if constrained is not None and constrained.objective.kind == "pareto" and log.records:
        from tfnas.pareto import write_pareto

        true, found = pareto_tables(constrained, log.records, dataset)
        write_pareto(run_dir.path, true, found, log.records, f"{method.label} {dataset}, {constrained.label}",
                     *constrained.ranges(dataset))
    return SweepOutcome(run_dir.path, log.records, new, summary, optimum)


@dataclass
class RecordContext:
    """What computing one (budget, repeat) record needs: the (feasible) space and benchmark, the
    method, the ground truth (``None`` for the training oracle), and the run's config id."""

    space: Any
    benchmark: Any
    method: Any
    dataset: str
    truth: Any
    optimum: float
    constrained: Optional[Constrained]
    config_id: str

    def record(self, seed_root: int, budget: int, repeat: int) -> RunRecord:
        """Runs the method once for ``(budget, repeat)`` and scores its answer."""
        seed = record_seed(seed_root, budget, repeat)
        session = self.benchmark.session(self.dataset, budget)
        start = time.perf_counter()
        result = self.method.run(session, budget, np.random.default_rng(seed))
        wall = time.perf_counter() - start
        # training oracle: the found cell is trained for its accuracy (outside the budget)
        truth_fn = self.benchmark.evaluate if self.truth is None else self.truth
        record = evaluate_result(self.method.label, self.dataset, budget, repeat, seed, session, result, self.space,
                                 truth_fn, wall)
        record.config_id = self.config_id
        if self.truth is not None:
            record.optimum = self.optimum
            if session.observations:  # the method's rankings during the search (BTS points, rounds)
                record.extra["ranking_steps"] = [step for step, _, _ in session.observations]
                record.extra["ranking_spearman"] = [round(metrics.spearman(scores, self.truth[cells]), 4)
                                                    for _, cells, scores in session.observations]
        if self.constrained is not None:
            self.constrained.annotate(record, session, result.best_index)
        return record


class SweepJob(Job):
    """A worker's share of a sweep: the worker builds the space, benchmark and method from the
    config once, then computes the records of the ``(budget, repeat)`` items it is handed."""

    def __init__(self, cfg: Config, config_id: str):
        self.cfg, self.config_id = cfg, config_id

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        context = record_context(self.cfg, self.config_id)
        return lambda items: [context.record(self.cfg.run.seed, b, r) for b, r in items]


def record_context(cfg: Config, config_id: str) -> RecordContext:
    """The :class:`RecordContext` of ``cfg`` (what :func:`run_sweep` builds, without the run directory)."""
    space = tabular_view(cfg, build_space(cfg))
    benchmark = build_benchmark(cfg, space)
    constrained = constrain(cfg, METHODS.get(cfg.method.name), space, benchmark)
    if constrained is not None:
        space, benchmark = constrained.space, constrained.benchmark
    truth = benchmark.ground_truth(cfg.dataset.name)
    optimum = float(truth.max()) if truth is not None else float("nan")
    return RecordContext(space, benchmark, build_method(cfg, space), cfg.dataset.name, truth, optimum, constrained,
                         config_id)


def _records_executor(cfg: Config, method: Any, benchmark: Any, executor: Any) -> Any:
    """Where the records run: on ``executor``, except (in this process) for a training-oracle sweep,
    whose queries are trained on ``executor`` instead (one cache, written here), and for methods
    with once-per-run preparation (their prepared state lives in this process)."""
    if executor.name == "local":
        return executor
    oracle = getattr(benchmark, "evaluator", None)
    if isinstance(oracle, TrainingEvaluator):
        oracle.executor = executor
        return LocalExecutor()
    if type(method).prepare is not BudgetedSearch.prepare:
        logger.warning("[run] executor = %s: method %r prepares state once per run; its records run in this "
                       "process", cfg.run.executor, cfg.method.name)
        return LocalExecutor()
    return executor


def _records(cfg: Config, context: RecordContext, tasks: List[Tuple[int, int]], executor: Any) -> Iterator[RunRecord]:
    """The records of ``tasks`` in order: one at a time in this process, or through the executor,
    one task per record: each record is yielded (and appended) as soon as it and every record
    before it are done, while the workers go on with the next tasks, so no worker waits for
    another and a killed sweep loses only the records not yet appended."""
    if executor.name == "local":
        for budget, repeat in tasks:
            yield context.record(cfg.run.seed, budget, repeat)
        return
    job = prepare_job(SweepJob(cfg, context.config_id))
    with contextlib.closing(executor.imap(job, tasks, chunk=1)) as results:  # closed: unfinished tasks stop
        for result in results:
            if isinstance(result, Failed):  # raised again: named as in this process (a diverged training: one line)
                result.reraise("a sweep record failed in a worker")
            yield result


def _prepare(cfg: Config, run_dir: RunDir, method: Any, progress: bool) -> None:
    """The method's once-per-run work (:meth:`BudgetedSearch.prepare`), logging to ``history.csv``."""
    if type(method).prepare is BudgetedSearch.prepare:
        return
    from tfnas.run.search import history_figure, search_context

    store = run_dir.store
    context, history = search_context(cfg, store, progress, stream="prepare")
    try:
        method.prepare(context)
    finally:
        history.close()
    fig = history_figure(history.rows, title=f"{cfg.method.name}: preparation")
    if fig is not None:
        store.write_figure("prepare_progress.png", fig, dpi=110)


def evaluate_result(method: str, dataset: str, budget: int, repeat: int, seed: int, session: Any, result: Any,
                    space: Any, truth: Any, wall: float) -> RunRecord:
    """Scores a :class:`RunResult` against the ground truth (these lookups are not part of the budget).

    ``truth`` is the table of every cell's accuracy (%), or a callable ``index -> accuracy (%)``
    (the training oracle): then only the found cell is evaluated and the ranking metrics stay NaN.
    """
    if session.queries > budget:
        raise RuntimeError(f"method {method!r} used {session.queries} queries with a budget of {budget}")
    arch = space.encode(space.from_index(result.best_index))
    common = dict(method=method, dataset=dataset, budget=budget, repeat=repeat, seed=seed, queries=session.queries,
                  ec_evals=max(result.ec_evals, session.ec_evals), arch=arch, wall_s=wall, extra=dict(result.extra))
    if callable(truth):
        return RunRecord(top1_acc=float(truth(result.best_index)), **common)
    top1 = float(truth[result.best_index])
    rec = RunRecord(top1_acc=top1, regret=float(truth.max()) - top1, **common)
    if result.scores is not None:
        scores = np.asarray(result.scores, np.float64)
        rec.top10_acc = metrics.top_k_best(scores, truth, 10)
        rec.top100_acc = metrics.top_k_best(scores, truth, 100)
        rec.spearman = metrics.spearman(scores, truth)
        rec.kendall = metrics.kendall(scores, truth)
    return rec
