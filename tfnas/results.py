"""Run records -> JSONL, pandas summary tables, CSV and plots; every file written atomically.

A run directory holds ``config.cfg``, ``runs.jsonl`` (one :class:`RunRecord` per budget x
repeat), ``summary.csv``, ``accuracy_vs_budget.png`` and ``best_arch.txt``. Files are written
to a temporary sibling and renamed into place, so a crash never leaves half a file, and a
rerun resumes by skipping the (budget, repeat) keys already in ``runs.jsonl``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from tfnas.checks import INT32_MAX, is_int, is_number
from tfnas.io import atomic_write_figure, atomic_write_text, write_jsonl

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "method", "dataset", "budget", "repeat", "queries", "ec_evals", "arch",
    "top1_acc", "top10_acc", "top100_acc", "regret", "spearman", "kendall", "wall_s",
    "optimum", "constraint", "latency_ms", "params", "hypervolume",
]


def strict_json(value: Any) -> Any:
    """``value`` as strict JSON takes it: NumPy scalars and arrays as Python values, NaN and infinities as
    None (``null``; Python's ``NaN`` is no JSON a strict reader takes), tuples as lists."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {key: strict_json(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


#: How a record's ``constraint`` begins for a hardware-aware objective without a limit (every cell feasible).
NO_LIMIT = "none"


def limits_cells(constraint: str) -> bool:
    """Whether a record's ``constraint`` label restricts the cells (its optimum is then the constrained one)."""
    return bool(constraint) and not constraint.startswith(f"{NO_LIMIT} (")


@dataclass
class RunRecord:
    """One search run (one budget x repeat). Accuracies are percentages; NaN = not applicable.

    ``queries`` counts ground-truth reads (must equal ``budget``); ``ec_evals`` counts estimation-code
    evaluations (prior knowledge, reported separately). ``optimum`` is the best accuracy of the cells
    searched (under ``constraint``, when the sweep is hardware-aware: ``regret`` is measured to it);
    ``latency_ms`` / ``params`` describe the found cell, ``hypervolume`` the front of the queried cells
    (:mod:`tfnas.pareto`; ``pareto:<device>`` objectives only).
    """

    method: str
    dataset: str
    budget: int
    repeat: int
    seed: int
    queries: int
    ec_evals: int
    arch: str
    top1_acc: float
    top10_acc: float = math.nan
    top100_acc: float = math.nan
    regret: float = math.nan
    spearman: float = math.nan
    kendall: float = math.nan
    wall_s: float = 0.0
    optimum: float = math.nan
    constraint: str = ""
    latency_ms: float = math.nan
    params: float = math.nan
    hypervolume: float = math.nan
    extra: Dict[str, Any] = field(default_factory=dict)
    config_id: str = ""  # identity of the config that made the record (tfnas.run.rundir.config_id)

    @property
    def key(self) -> Tuple[int, int]:
        return (self.budget, self.repeat)

    def to_dict(self) -> Dict[str, Any]:
        # JSON has no NaN: stored as null, in ``extra`` too (a constant ranking's Spearman is NaN)
        return strict_json(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunRecord":
        """The record of one ``runs.jsonl`` row; ``ValueError`` names the first field that is wrong."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"run record has unknown fields {sorted(unknown)}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in d]
        if missing:
            raise ValueError(f"run record misses fields {missing}")
        kwargs = {}
        for key, value in d.items():
            kind = names[key].type
            if kind in ("float", float):
                required = names[key].default is dataclasses.MISSING
                if value is None and not required:  # JSON has no NaN: "not applicable" is stored as null
                    value = math.nan
                elif not is_number(value) or not math.isfinite(value):  # NaN, Infinity: not written by tfnas
                    expected = "a finite number" if required else "a finite number or null"
                    raise ValueError(f"field {key!r} must be {expected}, got {value!r}")
                value = float(value)
            elif kind in ("int", int):
                if not is_int(value):
                    raise ValueError(f"field {key!r} must be an integer, got {value!r}")
                value = int(value)
            elif kind in ("str", str) and not isinstance(value, str):
                raise ValueError(f"field {key!r} must be a string, got {value!r}")
            elif key == "extra" and not isinstance(value, dict):
                raise ValueError(f"field 'extra' must be an object, got {value!r}")
            kwargs[key] = value
        for key, (lo, hi) in _RANGES.items():
            value = kwargs.get(key, math.nan)
            if not (isinstance(value, float) and math.isnan(value)) and not lo <= value <= hi:
                raise ValueError(f"field {key!r} must lie in [{lo}, {hi}], got {value!r}")
        return cls(**kwargs)


#: The values a record's fields can take (accuracies are percentages; NaN, "not applicable", passes;
#: a rank correlation of 1 may come out one rounding step above it).
_RANGES = {"budget": (1, INT32_MAX), "repeat": (0, INT32_MAX), "seed": (0, 2 ** 63 - 1),
           "queries": (0, INT32_MAX), "ec_evals": (0, 2 ** 63 - 1), "top1_acc": (0.0, 100.0), "top10_acc": (0.0, 100.0),
           "top100_acc": (0.0, 100.0), "optimum": (0.0, 100.0), "spearman": (-1.0 - 1e-9, 1.0 + 1e-9),
           "kendall": (-1.0 - 1e-9, 1.0 + 1e-9),
           "wall_s": (0.0, math.inf), "latency_ms": (0.0, math.inf), "params": (0.0, math.inf),
           "hypervolume": (0.0, math.inf)}


class RunLog:
    """The records of a run directory's ``runs.jsonl``, rewritten atomically on every append.

    Reading is forgiving where a crash or a hand edit left damage, and says so: a line that is
    not JSON (a half-written last line), a row that is not a valid record (wrong field types)
    and a second record of the same (budget, repeat) are dropped with a warning; the dropped
    records are recomputed by the next run and the next append writes a clean file. Records of
    another configuration (``config_id``, when given) are refused.

    Args:
        path: the ``runs.jsonl`` file.
        config_id: the identity of the config now running; records made by another config
            raise ``ValueError`` (records written before ids existed carry none and are kept).
        same_config: other ids that name this configuration (the id its ``config.cfg`` had when an
            earlier version wrote it, before a value was normalised): such records are kept and carry
            ``config_id`` from now on (:attr:`migrated`; written back by :meth:`save`).
        warn: log the dropped lines (a caller that only checks the file reads it quietly).
        resuming: the records are read to resume the sweep, which recomputes the dropped ones
            (said in the warning); ``False`` when they are only read (``tools/compare.py``).
        expect: field values every record of this run has (the sweep's method label and dataset);
            a record with another value was edited by hand and is dropped with a warning.
    """

    def __init__(self, path: str, config_id: str = "", warn: bool = True, resuming: bool = True,
                 expect: Optional[Dict[str, str]] = None, same_config: Iterable[str] = ()):
        self.path = path
        self._expect = dict(expect or {})
        self._after_drop = "; it will be recomputed" if resuming else "; left out"
        self._same = {i for i in same_config if i and i != config_id}
        self.records: List[RunRecord] = []
        self.dropped: List[str] = []
        self.migrated = 0  # records whose id was one of ``same_config``'s, now ``config_id``
        if os.path.exists(path):
            self._load(config_id, warn)

    def save(self) -> None:
        """Rewrites the file with the records as they are now (migrated ids included)."""
        write_jsonl(self.path, (r.to_dict() for r in self.records))

    def _load(self, config_id: str, warn: bool) -> None:
        seen = set()
        with open(self.path, "rb") as fh:
            lines = fh.read().splitlines()
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                record = RunRecord.from_dict(json.loads(raw.decode("utf-8")))
            except (ValueError, RecursionError) as exc:  # (JSONDecodeError, UnicodeDecodeError; nested too deep)
                self.dropped.append(f"{self.path}:{n}: dropped, not a run record ({exc}){self._after_drop}")
                continue
            if config_id and record.config_id and record.config_id != config_id and record.config_id not in \
                    self._same:  # (before the fields below: another dataset, say, is another configuration)
                raise ValueError(f"{self.path}:{n}: this record was made by another configuration "
                                 f"(config id {record.config_id}, now {config_id}); choose another [run] out_dir "
                                 f"or delete the directory")
            other = next((k for k, v in self._expect.items() if getattr(record, k) != v), None)
            if other is not None:
                self.dropped.append(f"{self.path}:{n}: dropped, its {other} is {getattr(record, other)!r} but this "
                                    f"run's is {self._expect[other]!r}{self._after_drop}")
                continue
            if record.key in seen:
                self.dropped.append(f"{self.path}:{n}: dropped, a second record of budget {record.budget} "
                                    f"repeat {record.repeat}")
                continue
            if record.config_id in self._same:  # the same configuration, written by an earlier version
                record.config_id = config_id
                self.migrated += 1
            seen.add(record.key)
            self.records.append(record)
        for message in self.dropped if warn else ():
            logger.warning(message)

    def keys(self) -> set:
        return {r.key for r in self.records}

    def __contains__(self, key: Tuple[int, int]) -> bool:
        return key in self.keys()

    def append(self, record: RunRecord) -> None:
        self.records.append(record)
        self.save()


def summary_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per record with :data:`SUMMARY_COLUMNS`, sorted by method, budget, repeat."""
    rows = [{c: getattr(r, c) for c in SUMMARY_COLUMNS} for r in records]
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return df.sort_values(["method", "dataset", "budget", "repeat"], kind="stable").reset_index(drop=True)


AGG_COLUMNS = ["top1_acc", "top10_acc", "top100_acc", "regret", "spearman", "kendall", "wall_s",
               "latency_ms", "params", "hypervolume"]


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std per (method, dataset, budget) of the metric columns, plus the repeat count."""
    grouped = df.groupby(["method", "dataset", "budget"], sort=True)
    out = grouped[AGG_COLUMNS].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["repeats"] = grouped.size()
    return out.reset_index()


def format_table(df: pd.DataFrame) -> str:
    """A fixed-width text table: mean ± std per (method, budget); latency (ms), parameters (M) and
    hypervolume of the found cells are added when the records have them (hardware-aware sweeps)."""
    agg = aggregate(df)
    header = ["method", "dataset", "budget", "n", "top1 acc", "top10 acc", "regret", "spearman", "kendall", "wall s"]
    optional = [(c, h, d) for c, h, d in (("latency_ms", "latency ms", 3), ("params", "params M", 3),
                                          ("hypervolume", "hypervolume", 4)) if agg[f"{c}_mean"].notna().any()]
    header += [h for _, h, _ in optional]
    if "params" in df.columns and df["params"].notna().any():
        agg = agg.assign(params_mean=agg["params_mean"] / 1e6, params_std=agg["params_std"] / 1e6)
    lines = []
    for _, r in agg.iterrows():
        def pm(col: str, digits: int = 2) -> str:  # (one repeat: no std; -0.000 is 0.000)
            m, s = r[f"{col}_mean"], r[f"{col}_std"]
            if pd.isna(m):
                return "-"
            mean = f"{round(m, digits) + 0.0:.{digits}f}"
            return mean if pd.isna(s) else f"{mean} ± {round(s, digits) + 0.0:.{digits}f}"

        lines.append([
            r["method"], r["dataset"], str(int(r["budget"])), str(int(r["repeats"])),
            pm("top1_acc"), pm("top10_acc"), pm("regret"), pm("spearman", 3), pm("kendall", 3), pm("wall_s", 1),
        ] + [pm(c, d) for c, _, d in optional])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule] + [fmt(l) for l in lines])


def plot_accuracy(df: pd.DataFrame, path: str, optimum: Optional[Dict[str, Any]] = None, title: str = "") -> None:
    """Mean true accuracy of the found cell ± std vs. budget, one line per method, optimum dashed (``optimum``:
    dataset -> its value, or ``(value, constraint)`` pairs where runs under different constraints are compared)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, MaxNLocator

    agg = aggregate(df)
    datasets = sorted(agg["dataset"].unique())
    fig = Figure(figsize=(5.5 * len(datasets), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        part = agg[agg["dataset"] == ds]
        for method, g in part.groupby("method", sort=True):
            g = g.sort_values("budget")
            std = g["top1_acc_std"].fillna(0.0)
            ax.plot(g["budget"], g["top1_acc_mean"], marker="o", label=method)
            ax.fill_between(g["budget"], g["top1_acc_mean"] - std, g["top1_acc_mean"] + std, alpha=0.2)
        lines = optimum.get(ds) if optimum else None  # a value, or (value, what) pairs: optima under constraints
        for n, (value, what) in enumerate([(lines, "")] if isinstance(lines, (int, float)) else lines or []):
            ax.axhline(value, color="k", linestyle=("--", ":", "-.")[n % 3], linewidth=1,
                       label=f"optimum {value:.2f}{f' ({what})' if what else ''}")
        budgets = sorted(part["budget"].unique())  # counts: whole numbers on the axis, the budget itself if only one
        ax.xaxis.set_major_locator(FixedLocator(budgets) if len(budgets) == 1 else MaxNLocator(integer=True))
        ax.set_xlabel("budget (ground-truth queries)")
        ax.set_ylabel("true accuracy of the found cell (%)")
        ax.set_title(f"{title} {ds}".strip())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(fig, path, dpi=120)


def write_outputs(run_dir: str, records: Sequence[RunRecord], optimum: Optional[Dict[str, Any]] = None,
                  title: str = "") -> pd.DataFrame:
    """Writes ``summary.csv``, ``accuracy_vs_budget.png`` and ``best_arch.txt`` (the best record of each dataset,
    in their order: accuracies of different datasets do not compare); returns the summary frame."""
    df = summary_frame(records)
    atomic_write_text(os.path.join(run_dir, "summary.csv"), df.to_csv(index=False))
    if len(df):
        plot_accuracy(df, os.path.join(run_dir, "accuracy_vs_budget.png"), optimum, title)
        lines = []
        for _, same in df.groupby("dataset", sort=True):
            best = same.loc[same["top1_acc"].idxmax()]
            lines.append(f"{best['arch']}\n# {best['method']} {best['dataset']} budget={best['budget']} "
                         f"repeat={best['repeat']} true accuracy={best['top1_acc']:.2f}%\n")
        atomic_write_text(os.path.join(run_dir, "best_arch.txt"), "".join(lines))
    return df


#: Files of run directories without sweep records: a search (``result.json``), an analysis
#: (``proxy_corr``: ``correlation.csv``), a training (``metrics.json``).
_OTHER_RUNS = {"result.json": "a search", "correlation.csv": "a proxy_corr analysis", "metrics.json": "a training"}


def load_run_dir(run_dir: str) -> List[RunRecord]:
    """Records of a run directory (for tools/compare.py).

    Raises:
        FileNotFoundError, NotADirectoryError: ``run_dir`` does not exist, or is a file (path problems).
        ValueError: it is not a sweep's run directory (no ``runs.jsonl``), said with what it holds,
            or its ``runs.jsonl`` holds no valid record (empty, or every line damaged).
    """
    if not os.path.lexists(run_dir):
        raise FileNotFoundError(errno.ENOENT, "no such folder", run_dir)
    if not os.path.isdir(run_dir):
        raise NotADirectoryError(errno.ENOTDIR, "a file, not a run directory", run_dir)
    path = os.path.join(run_dir, "runs.jsonl")
    if os.path.islink(path) and not os.path.exists(path):
        raise ValueError(f"{path}: a symbolic link that leads to no file (its target is missing, or the links "
                         f"form a loop)")
    if not os.path.exists(path):
        kind = next((what for name, what in _OTHER_RUNS.items() if os.path.exists(os.path.join(run_dir, name))), "")
        if kind:
            raise ValueError(f"{run_dir}: the run directory of {kind}, which has no sweep records (runs.jsonl); "
                             f"tools/compare.py merges the budget sweeps (methods rand, predictor, siamese, brp_nas, "
                             f"nag, slnas_controller)")
        raise ValueError(f"{run_dir}: no runs.jsonl (is this a tfnas run directory?)")
    log = RunLog(path, resuming=False, warn=False)
    if not log.records:  # nothing of it would be in the table: not a run to compare
        why = f"all {len(log.dropped)} of its lines are damaged" if log.dropped else "it is empty"
        first = f"; line {log.dropped[0][len(path) + 1:]}" if log.dropped else ""
        raise ValueError(f"{path}: holds no run record ({why}{first})")
    for message in log.dropped:
        logger.warning(message)
    return log.records

