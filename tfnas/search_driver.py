"""The driver of one-shot searches (evolution, RelativeNAS) and analyses (``proxy_corr``).

``cfg -> space -> SearchMethod.search(context) -> best architecture [-> training -> export]``.

The run directory holds ``config.cfg`` (resolved), ``search_state/`` (the method's resumable
state), ``history.csv`` and ``search_progress.png`` (one row per logged step), ``best_arch.txt``
and ``result.json``; with ``[train] enabled`` also ``train/`` (the training run of the found
architecture: checkpoints, history, metrics, ``saved_model/``). Every file is written
atomically. Running the same command again resumes: the method restores its state, a finished
search is not repeated, and a finished training is not repeated either.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from tfnas.config import Config, ConfigError, config_to_ini, load_config
from tfnas.methods.base import SearchContext, SearchOutcome
from tfnas.registry import METHODS
from tfnas.results import atomic_write_text

logger = logging.getLogger(__name__)

# Sections / keys that do not change what a search finds (training and display settings).
_NOT_SEARCH_SECTIONS = ("train", "export")
_NOT_SEARCH_KEYS = {("run", "progress"), ("run", "out_dir"), ("space", "arch")}


def method_kind(cfg: Config) -> str:
    """``"sweep"`` (benchmark budget sweeps), ``"search"`` (one-shot) or ``"analysis"``."""
    return getattr(METHODS.get(cfg.method.name), "kind", "sweep")


def _search_identity(ini: str) -> Dict[str, Dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(ini)
    return {s: {k: v for k, v in parser.items(s) if (s, k) not in _NOT_SEARCH_KEYS}
            for s in parser.sections() if s not in _NOT_SEARCH_SECTIONS}


def prepare_run_dir(cfg: Config) -> str:
    """Creates the run directory, refusing one that holds another search; writes ``config.cfg``."""
    run_dir = cfg.out_dir
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "config.cfg")
    ini = config_to_ini(cfg)
    if os.path.exists(path):
        try:  # through the current schema: keys added since then take their defaults
            previous = config_to_ini(load_config(path, check_names=False))
        except ConfigError:
            previous = ""
        if _search_identity(previous) != _search_identity(ini):
            raise ConfigError(f"{run_dir}: holds a search with a different configuration (see its config.cfg); "
                              f"choose another [run] out_dir or delete the directory")
    atomic_write_text(path, ini)
    return run_dir


class HistoryLog:
    """``history.csv`` rows: kept in memory, the file rewritten atomically on each append."""

    def __init__(self, path: str):
        import pandas as pd

        self.path = path
        self.rows: List[Dict[str, Any]] = []
        if os.path.exists(path) and os.path.getsize(path) > 0:
            self.rows = pd.read_csv(path).to_dict("records")

    def append(self, row: Dict[str, Any]) -> None:
        import pandas as pd

        self.rows.append(dict(row))
        atomic_write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


def plot_history(rows: List[Dict[str, Any]], path: str, title: str = "") -> None:
    """One panel per numeric column of ``rows`` against the first column (iteration/generation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(rows)
    if df.empty:
        return
    x = df.columns[0]
    ys = [c for c in df.columns[1:] if pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    if not ys:
        return
    fig, axes = plt.subplots(len(ys), 1, figsize=(6, 2.4 * len(ys)), squeeze=False, sharex=True)
    for ax, col in zip(axes[:, 0], ys):
        ax.plot(df[x], df[col], marker="." if len(df) < 50 else None)
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class SearchRun:
    """What :func:`run_search` produced."""

    run_dir: str
    outcome: SearchOutcome
    resumed: bool
    train_metrics: Optional[Dict[str, Any]] = None
    export_path: Optional[str] = None

    def summary(self) -> str:
        o = self.outcome
        lines = [f"best architecture: {o.best_arch}"]
        if o.score is not None:
            lines.append(f"{o.score_name or 'score'}: {o.score:.6g}")
        for key, value in o.extra.items():
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                lines.append(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")
        if self.train_metrics:
            for key, value in self.train_metrics.items():
                if isinstance(value, float):
                    lines.append(f"trained {key}: {value:.4f}")
        if self.export_path:
            lines.append(f"exported: {self.export_path}")
        return "\n".join(lines)


def run_search(cfg: Config, progress: Optional[bool] = None) -> SearchRun:
    """Runs (or resumes) the configured one-shot search, then trains/exports the result if asked."""
    from tfnas.driver import build_space

    progress = cfg.run.progress if progress is None else progress
    run_dir = prepare_run_dir(cfg)
    result_path = os.path.join(run_dir, "result.json")
    space = build_space(cfg)
    resumed = os.path.exists(result_path)
    if resumed:
        with open(result_path, encoding="utf-8") as fh:
            saved = json.load(fh)
        outcome = SearchOutcome(saved["best_arch"], saved.get("score"), saved.get("score_name", ""),
                                saved.get("extra", {}))
    else:
        method = METHODS.get(cfg.method.name).from_config(cfg, space)
        history = HistoryLog(os.path.join(run_dir, "history.csv"))
        state_dir = os.path.join(run_dir, "search_state")
        os.makedirs(state_dir, exist_ok=True)
        context = SearchContext(run_dir=run_dir, state_dir=state_dir, seed=cfg.run.seed,
                                rng=np.random.default_rng(cfg.run.seed), progress=progress,
                                log=history.append, logged_rows=len(history.rows))
        start = time.perf_counter()
        outcome = method.search(context)
        wall = time.perf_counter() - start
        plot_history(history.rows, os.path.join(run_dir, "search_progress.png"),
                     title=f"{cfg.method.name} on {cfg.space.name}")
        payload = {"method": cfg.method.name, "space": cfg.space.name, "dataset": cfg.dataset.name,
                   "best_arch": outcome.best_arch, "score": outcome.score, "score_name": outcome.score_name,
                   "extra": outcome.extra, "search_wall_s": round(wall, 3)}
        atomic_write_text(os.path.join(run_dir, "best_arch.txt"),
                          f"{outcome.best_arch}\n# {cfg.method.name} {cfg.space.name} {cfg.dataset.name} "
                          f"{outcome.score_name}={outcome.score}\n")
        atomic_write_text(result_path, json.dumps(payload, indent=2, default=_jsonable) + "\n")

    run = SearchRun(run_dir, outcome, resumed)
    if cfg.train.enabled:
        run.train_metrics, run.export_path = _train_found(cfg, run_dir, outcome.best_arch)
    return run


def _train_found(cfg: Config, run_dir: str, arch: str):
    """Trains the found architecture with ``[train]`` in ``run_dir/train`` and exports it."""
    from tfnas.train.runner import train_architecture

    train_dir = os.path.join(run_dir, "train")
    metrics_path = os.path.join(train_dir, "metrics.json")
    train_cfg = cfg.replace(space=dataclasses.replace(cfg.space, arch=arch),
                            run=dataclasses.replace(cfg.run, out_dir=train_dir))
    export_name = "model.keras" if cfg.export.format == "keras" else "saved_model"
    export_path = os.path.join(train_dir, export_name)
    if os.path.exists(metrics_path) and (not cfg.export.enabled or os.path.exists(export_path)):
        with open(metrics_path, encoding="utf-8") as fh:
            return json.load(fh), (export_path if cfg.export.enabled else None)
    outcome = train_architecture(train_cfg)
    with open(metrics_path, encoding="utf-8") as fh:
        return json.load(fh), outcome.export_path


def run_analysis(cfg: Config, progress: Optional[bool] = None):
    """Runs an analysis method (e.g. ``proxy_corr``) into its run directory; returns its table."""
    from tfnas.driver import build_space

    progress = cfg.run.progress if progress is None else progress
    run_dir = prepare_run_dir(cfg)
    method = METHODS.get(cfg.method.name).from_config(cfg, build_space(cfg))
    return method.run_analysis(run_dir, progress)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
