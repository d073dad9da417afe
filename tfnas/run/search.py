"""The one-shot search flow (evolution, RelativeNAS): search, record, train and export the result.

``space -> OneShotSearch.search(context) -> best architecture [-> training -> export]``.

The run directory holds ``config.cfg`` (resolved), ``search_state/`` (the method's resumable
state), ``history.csv`` and ``search_progress.png`` (one row per logged step), ``best_arch.txt``
and ``result.json``; with ``[run] tensorboard`` the same rows as TensorBoard scalars plus one
hparams row in ``tensorboard/`` (:mod:`tfnas.run.events`); with ``[train] enabled`` also
``train/`` (the training run of the found architecture and its exports, see
:mod:`tfnas.run.train_one` and :mod:`tfnas.run.exports`). Every file is written atomically.
Running the same command again resumes: the method restores its state, a finished search is not
repeated, and a finished training is not repeated either; a training is finished when its
``metrics.json`` and every export of ``[export] format`` exist, so a format added later is
written on the next run from the trained checkpoint, without training again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfnas.config import Config, load_config
from tfnas.io import DamagedFileError, check_fields, dict_of, nullable, number, read_json, reading, record, text
from tfnas.methods.base import SearchContext, SearchFailedError, SearchOutcome
from tfnas.registry import METHODS
from tfnas.results import strict_json
from tfnas.run import check_flow
from tfnas.run.events import EventStream, events_root, hparams_missing, hparams_of, history_step, write_hparams
from tfnas.run.exports import check_calibration_data, export_lines, export_paths_of, missing_exports
from tfnas.run.constraints import refuse_search_keys, refuse_unhonoured_limits
from tfnas.run.factory import (build_executor, build_method, build_space, check_method_fits_space,
                               check_full_batch, check_trained_network_builds, check_training_data,
                               refuse_multi_worker, where)
from tfnas.run.rundir import CONFIG_FILE, RunDir, RunDirError
from tfnas.run.store import ArtifactStore
from tfnas.run.unused import SEARCH_TRAIN_KEYS, tolerated
from tfnas.train.seeding import tf_global_seed

logger = logging.getLogger(__name__)

#: Training and export run in their own ``train/`` directory; the arch is the search's output.
SEARCH_FREE_SECTIONS = ("train", "export")
SEARCH_FREE_KEYS = (("space", "arch"),)


def search_identity(cfg: Config) -> Dict[str, Any]:
    """The ``ignore`` and ``ignore_sections`` of a one-shot search's :class:`RunDir`: the config but the
    training after the search (``[train]`` less :data:`SEARCH_TRAIN_KEYS`, ``[export]``) and the found arch."""
    if cfg.method.name not in SEARCH_TRAIN_KEYS:
        return dict(ignore=SEARCH_FREE_KEYS, ignore_sections=SEARCH_FREE_SECTIONS)
    kept = SEARCH_TRAIN_KEYS[cfg.method.name]
    return dict(ignore=SEARCH_FREE_KEYS + tuple(("train", f.name) for f in dataclasses.fields(cfg.train)
                                                if f.name not in kept),
                ignore_sections=tuple(s for s in SEARCH_FREE_SECTIONS if s != "train"))
RESULT_FILE = "result.json"
BEST_ARCH = "best_arch.txt"  # the found architecture alone, one line


def _check_fields_per_row(path: str, remedy: str) -> None:
    """Raises :class:`tfnas.io.DamagedFileError` for a CSV row whose field count is not the header's:
    pandas would take a first row with one field more as an index and shift every column."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        try:
            header = next(rows, [])
            for row in rows:
                if row and len(row) != len(header):
                    raise DamagedFileError(path, f"line {rows.line_num} has {len(row)} fields; its header has "
                                                 f"{len(header)}", remedy)
        except csv.Error as exc:  # e.g. a field longer than the csv module takes
            raise DamagedFileError(path, f"cannot be read back (line {rows.line_num}: {exc})", remedy) from None


class HistoryLog:
    """``history.csv`` rows: kept in memory, the file rewritten atomically on each append.

    With ``events``, each appended row also becomes TensorBoard scalars ``history/<column>`` at
    step = its first column; rows already in the file (a resumed run) are not written again.
    """

    def __init__(self, store: ArtifactStore, name: str = "history.csv", events: Optional[EventStream] = None):
        import pandas as pd

        self.store, self.name, self.events = store, name, events
        self.rows: List[Dict[str, Any]] = []
        path = store.path(name)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            remedy = "delete it (the log restarts with the next round)"
            with reading(path, remedy):
                _check_fields_per_row(path, remedy)
                self.rows = pd.read_csv(path).to_dict("records")

    def append(self, row: Dict[str, Any]) -> None:
        import pandas as pd

        self.rows.append(dict(row))
        frame = pd.DataFrame(self.rows)
        for column in set(frame.columns) & set(_COUNTERS):  # "1", not "1.0", where a row of another phase has none
            if frame[column].dropna().map(lambda v: float(v).is_integer()).all():
                frame[column] = frame[column].astype("Int64")
        self.store.write_text(self.name, frame.to_csv(index=False))
        if self.events is not None:
            values = dict(list(row.items())[1:])  # the first column is the step
            # (replace: the points of another search, one whose saved state was deleted, are removed from its files)
            self.events.scalars(values, history_step(row, len(self.rows) - 1), prefix="history/", replace="after")

    def close(self) -> None:
        if self.events is not None:
            self.events.close()


def search_context(cfg: Config, store: ArtifactStore, progress: bool,
                   stream: str = "search") -> Tuple[SearchContext, HistoryLog]:
    """The :class:`SearchContext` of a run directory, logging to its ``history.csv`` (kept rows counted)
    and, with ``[run] tensorboard``, to the event stream ``tensorboard/<stream>`` (history rows as
    ``history/<column>``, per-candidate values as ``candidate/<name>``)."""
    events = EventStream(events_root(cfg), stream)
    history = HistoryLog(store, events=events)
    context = SearchContext(store=store, seed=cfg.run.seed, rng=np.random.default_rng(cfg.run.seed),
                            progress=progress, log=history.append, logged_rows=len(history.rows),
                            candidate=lambda step, values: events.scalars(values, step, "candidate/", replace="tag"))
    return context, history


#: ``history.csv`` columns that count, not measure: the x axis, or bookkeeping beside it; never a panel.
_COUNTERS = ("epoch", "step", "steps", "iteration", "generation")


def history_figure(rows: List[Dict[str, Any]], title: str = "") -> Optional[Any]:
    """One panel per numeric column of ``rows`` against the first column; None when nothing to draw."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    df = pd.DataFrame(rows)
    if df.empty:
        return None
    x = df.columns[0]
    ys = [c for c in df.columns[1:] if pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()
          and c not in _COUNTERS]  # (NAG's rows: step, then the epoch and steps of each phase)
    if not ys:
        return None
    fig = Figure(figsize=(6, 2.4 * len(ys)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(ys), 1, squeeze=False, sharex=True)
    for ax, col in zip(axes[:, 0], ys):
        ax.plot(df[x], df[col], marker="." if len(df) < 50 else None)
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x)
    if pd.api.types.is_integer_dtype(df[x]):  # epochs, iterations, steps: no 2.5 on the axis
        from matplotlib.ticker import MaxNLocator
        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


@dataclass
class SearchRun:
    """What :func:`run_search` produced."""

    run_dir: str
    outcome: SearchOutcome
    resumed: bool
    train_metrics: Optional[Dict[str, Any]] = None
    exports: Dict[str, str] = dataclasses.field(default_factory=dict)
    calibration: str = ""

    @property
    def export_path(self) -> Optional[str]:
        """The first export (``[export] format`` order), or None."""
        return next(iter(self.exports.values()), None)

    def summary(self) -> str:
        o = self.outcome
        lines = [f"best architecture: {o.best_arch}"]
        if o.score is not None:
            lines.append(f"{SCORE_LABELS.get(o.score_name, o.score_name or 'score')}: {o.score:.6g}")
        for key, value in o.extra.items():
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                name = EXTRA_LABELS.get(key, key)
                lines.append(f"{name}: {value:,}" if isinstance(value, int) else f"{name}: {value}")
        m = self.train_metrics
        if m:  # metrics.json: the final evaluation on the eval split (accuracy a fraction), the served network's size
            if isinstance(m.get("accuracy"), float):
                lines.append(f"trained network, evaluation accuracy: {100.0 * m['accuracy']:.2f}%")
            if isinstance(m.get("loss"), float):
                lines.append(f"trained network, evaluation loss: {m['loss']:.4f}")
            if isinstance(m.get("params"), int):
                lines.append(f"trained network, trainable parameters (Keras): {m['params']:,}")
        lines.extend(export_lines(self.exports, self.calibration))
        return "\n".join(lines)


#: How the summary names a search's own figures where the bare key would be taken for another one.
EXTRA_LABELS = {"params": "params (the space's count, which [budget] max_params limits)",
                "flops": "FLOPs (multiply-accumulates, the space's count, which [budget] max_flops limits)"}

#: How the summary names a score in percent (the trained network's accuracy beside it is printed in percent too).
SCORE_LABELS = {"mean_reward": "mean_reward (the supernet's top-1 accuracy on the scoring images, %)",
                "rs_val_acc": "rs_val_acc (top-1 accuracy after RS-NAG's short training, %)"}

# what a resumed run reads back from result.json (the other keys are for people and tools)
_RESULT_FIELDS = record({"best_arch": text, "score": nullable(number()), "score_name": text,
                         "extra": dict_of(lambda value: None)}, optional=("score", "score_name", "extra"))


def run_search(cfg: Config, progress: Optional[bool] = None) -> SearchRun:
    """Runs (or resumes) the configured one-shot search, then trains/exports the result if asked."""
    check_flow(cfg, "search")
    progress = cfg.run.progress if progress is None else progress
    run_dir = RunDir(cfg, **search_identity(cfg), tolerate=tolerated(cfg, "search"))
    run_dir.check()
    check_method_fits_space(cfg)
    refuse_multi_worker(cfg, "a one-shot search", trains=cfg.train.enabled)
    refuse_search_keys(cfg, "a one-shot search", METHODS.get(cfg.method.name))
    refuse_unhonoured_limits(cfg, "search")
    space = build_space(cfg)
    store = run_dir.store
    resumed = store.exists(RESULT_FILE)
    if resumed and not store.exists(CONFIG_FILE):  # which configuration found it is unknown
        raise RunDirError(f"{store.path(RESULT_FILE)}: a search result without the config.cfg of the search that "
                          f"found it; restore config.cfg, or delete result.json (or the directory) to search again")
    if cfg.train.enabled:
        check_full_batch(cfg)  # a config error of the training after the search, before the search's data
    method = None if resumed else build_method(cfg, space)  # config errors first, then data errors
    if cfg.train.enabled and not _training_finished(cfg):
        from tfnas.train.distribute import check_cluster_spec

        check_cluster_spec(cfg.run.strategy)  # fail fast: the training after the search needs these
        check_trained_network_builds(cfg, space, check_training_data(cfg))
        check_calibration_data(_train_cfg(cfg))  # the exports of the training go to <run>/train
    with run_dir:
        if resumed:
            with reading(store.path(RESULT_FILE), "delete it to redo the search"):
                saved = json.loads(store.read_text(RESULT_FILE))
                check_fields(store.path(RESULT_FILE), saved, _RESULT_FIELDS, "delete it to redo the search")
                space.decode(saved["best_arch"])  # a found network the space can build
                outcome = SearchOutcome(saved["best_arch"], saved.get("score"), saved.get("score_name", ""),
                                        dict(saved.get("extra", {})))
            if not store.exists(BEST_ARCH) or store.read_text(BEST_ARCH) != f"{outcome.best_arch}\n":
                try:  # deleted, or written before 2026-12-08 with a comment line after the architecture
                    store.write_text(BEST_ARCH, f"{outcome.best_arch}\n")
                except OSError as exc:  # a read-only run directory still reprints its result
                    logger.info("%s not rewritten: %s", store.path(BEST_ARCH), exc)
        else:
            try:
                outcome = _search(cfg, method, store, progress)
            except SearchFailedError:  # no answer: what it wrote (its history, checkpoint) would only make the
                run_dir.discard()  # directory refuse the corrected config as another run's
                raise
    run = SearchRun(run_dir.path, outcome, resumed)
    trained_now = cfg.train.enabled and not _training_finished(cfg)
    if cfg.train.enabled:
        run.train_metrics, run.exports, run.calibration = train_found(cfg, outcome.best_arch)
    if not resumed or trained_now or hparams_missing(events_root(cfg)):  # one row per run: when something finished
        write_search_hparams(cfg, run, json.loads(store.read_text(RESULT_FILE)))
    return run


def write_search_hparams(cfg: Config, run: SearchRun, result: Dict[str, Any]) -> None:
    """The run's TensorBoard hparams row: config keys -> best score, trained accuracy, wall time."""
    o = run.outcome
    metrics = {"best_score": o.score, "search_wall_s": result.get("search_wall_s"),
               **{k: o.extra.get(k) for k in ("params", "flops")}}
    if "latency_ms" in o.extra:  # measured-latency evolution: the found network's median LiteRT latency
        metrics["latency_ms"] = o.extra["latency_ms"]
    if run.train_metrics:
        metrics.update(trained_accuracy=run.train_metrics.get("accuracy"), trained_loss=run.train_metrics.get("loss"))
    unread = tolerated(cfg, "search") + (("benchmark", "name"),)  # (no one-shot search queries a table)
    write_hparams(events_root(cfg), {**hparams_of(cfg, unread=unread), "score_name": o.score_name}, metrics)


def _search(cfg: Config, method: Any, store: ArtifactStore, progress: bool) -> SearchOutcome:
    context, history = search_context(cfg, store, progress)
    start = time.perf_counter()
    try:  # TF's global seed is the run seed throughout: pipelines built inside reseed nothing (train/seeding.py)
        with build_executor(cfg) as context.executor, tf_global_seed(int(context.seed)):
            outcome = method.search(context)
    finally:
        history.close()
    wall = time.perf_counter() - start
    fig = history_figure(history.rows, title=f"{cfg.method.name} on {cfg.space.name}")
    if fig is not None:
        store.write_figure("search_progress.png", fig, dpi=110)
    payload = {"method": cfg.method.name, "space": cfg.space.name, "dataset": cfg.dataset.name,
               "best_arch": outcome.best_arch, "score": outcome.score, "score_name": outcome.score_name,
               "extra": outcome.extra, "search_wall_s": round(wall, 3)}
    # the architecture alone, so that `--set "space.arch=$(cat RUN/best_arch.txt)"` trains it (result.json tells more)
    store.write_text(BEST_ARCH, f"{outcome.best_arch}\n")
    store.write_text(RESULT_FILE, json.dumps(strict_json(payload), indent=2, allow_nan=False) + "\n")
    return outcome


def _train_cfg(cfg: Config) -> Config:
    """The config of the training of the found architecture: the same, in ``<run dir>/train``."""
    return cfg.replace(run=dataclasses.replace(cfg.run, out_dir=os.path.join(cfg.out_dir, "train")))


def _training_finished(cfg: Config) -> bool:
    """``train/metrics.json`` and every requested export exist, from a training of this ``[train]`` over as many
    epochs. Another ``[train]`` is refused (:class:`RunDirError`), as the training itself refuses it, and so
    are fewer epochs; more are not finished: the training goes on from its checkpoint."""
    from tfnas.run.train_one import TRAIN_FREE_KEYS, EpochLog

    train_cfg = _train_cfg(cfg)
    if not os.path.exists(os.path.join(train_cfg.out_dir, "metrics.json")) or missing_exports(train_cfg):
        return False
    # (its arch is the one found; the keys a training never reads, such as [search]'s, may differ: tools/train.py)
    RunDir(train_cfg, ignore=TRAIN_FREE_KEYS + SEARCH_FREE_KEYS, tolerate=tolerated(train_cfg, "train")).check()
    written, history = (os.path.join(train_cfg.out_dir, name) for name in (CONFIG_FILE, EpochLog.NAME))
    if not os.path.exists(written):
        return True
    trained = load_config(written, check_names=False).train.epochs
    if os.path.exists(history):  # the epochs trained: config.cfg says what was asked (an interrupted train-on: more)
        with open(history, encoding="utf-8") as f:
            rows = [line.split(",", 1)[0] for line in f.read().splitlines()[1:]]
        trained = max([int(r) for r in rows if r.isdigit()] or [0])
        if os.path.getmtime(os.path.join(train_cfg.out_dir, "metrics.json")) < os.path.getmtime(history):
            return False  # metrics.json of an earlier training: one was interrupted after it (its checkpoint goes on)
    if trained > cfg.train.epochs:  # its checkpoint is of a later epoch: the Trainer would refuse it after loading data
        given = where(cfg, "train", "epochs", cfg.train.epochs)
        raise RunDirError(f"{train_cfg.out_dir}: holds a training of {trained} epochs, more than {given}; set "
                          f"{trained} (or more, to train on), or delete {train_cfg.out_dir} to train afresh")
    return trained == cfg.train.epochs


def train_found(cfg: Config, arch: str) -> Tuple[Dict[str, Any], Dict[str, str], str]:
    """Trains the found architecture with ``[train]`` in ``<run dir>/train`` and exports it.

    Returns:
        ``(metrics.json of the training, {format: export path}, int8 calibration source or "")``;
        a finished training (:func:`_training_finished`) is read back, not repeated.
    """
    from tfnas.run.train_one import train_architecture

    train_cfg = _train_cfg(cfg)
    metrics_path = os.path.join(train_cfg.out_dir, "metrics.json")
    if _training_finished(cfg):
        again = "delete it to train the found network again"
        metrics = read_json(metrics_path, again)
        if not isinstance(metrics, dict):
            raise DamagedFileError(metrics_path, "expected a JSON object of metrics", again)
        return metrics, (export_paths_of(train_cfg) if cfg.export.enabled else {}), ""
    train_cfg = train_cfg.replace(space=dataclasses.replace(cfg.space, arch=arch))
    outcome = train_architecture(train_cfg, hparams=False)  # the search's hparams row holds the result
    with open(metrics_path, encoding="utf-8") as fh:
        return json.load(fh), outcome.exports, outcome.calibration
