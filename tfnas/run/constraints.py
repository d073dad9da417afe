"""Hardware-aware budgeted searches: a latency / parameter constraint and the Pareto report.

``[search] objective = accuracy | latency:<device> | pareto:<device>``, ``[search] max_latency_ms``
(0 = none) and ``[budget] max_params`` (0 = none) restrict a budgeted table search (``rand``,
``predictor``, ``siamese``, ``brp_nas``) to the *feasible* cells. Latencies are the NB201 table's published
per-device figures and parameter counts are analytic (``[space]`` width, the dataset's classes),
both known before any query, so filtering on them spends no budget. The run layer hands the method
a :class:`~tfnas.spaces.subset.SubsetSpace` and a :class:`~tfnas.benchmarks.subset.SubsetBenchmark`
over the feasible rows: methods are unchanged, every query is counted as before, and the sweep's
optimum, regret, Spearman and Kendall are those of the feasible set (the constrained optimum).

``latency:<device>`` means "best accuracy subject to latency <= max_latency_ms" (a limit is
required); it does not minimise latency. ``pareto:<device>`` additionally records, per run, the
accuracy-latency front of the cells the search queried and its hypervolume (:mod:`tfnas.pareto`),
and the sweep writes ``pareto.csv``, ``pareto.txt`` and ``pareto.png`` beside the true front.

Measured latency: ``objective = latency:litert`` with ``max_latency_ms`` and ``pareto:litert``
(limit optional) are the latency objectives of ``evolution`` (methods with ``measures_latency``),
which times each child's TFLite model on this machine (:mod:`tfnas.evaluation.latency`), rejects
those over the limit and, for ``pareto:``, selects by NSGA-II and reports its found front;
:func:`measured_latency_limit` checks that config. Table devices (``latency:`` and ``pareto:``)
belong to the table searches above, the ``litert`` device to evolution; any other pairing is
refused in one line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from tfnas.benchmarks.subset import SubsetBenchmark
from tfnas.config import Config, ConfigError
from tfnas.methods.brp import BrpSearch
from tfnas.methods.random_search import RandomSearch
from tfnas.methods.siamese import PredictorSearch
from tfnas.pareto import hypervolume, pareto_front
from tfnas.results import NO_LIMIT
from tfnas.run.factory import dataset_head, keys_where, where
from tfnas.spaces.subset import SubsetSpace

#: Budgeted methods that search whatever tabular view they are given (the constrained view).
CONSTRAINABLE = (RandomSearch, PredictorSearch, BrpSearch)
OBJECTIVES = ("accuracy", "latency", "pareto")
#: The device of a latency measured on this machine (LiteRT CPU interpreter), for ``evolution``.
MEASURED_DEVICE = "litert"


@dataclass(frozen=True)
class Objective:
    """A parsed ``[search] objective``: ``kind`` in :data:`OBJECTIVES` and the latency ``device``."""

    kind: str = "accuracy"
    device: str = ""


def parse_objective(cfg: Config) -> Objective:
    """``[search] objective`` -> :class:`Objective`; a bad form is a one-line ConfigError."""
    text = cfg.search.objective.strip()
    kind, _, device = text.partition(":")
    if kind not in OBJECTIVES or (kind == "accuracy") != (device == ""):
        raise ConfigError(f"{where(cfg, 'search', 'objective')}: expected accuracy, latency:<device> or "
                          f"pareto:<device>; got {text!r}")
    return Objective(kind, device)


def constraint_requested(cfg: Config) -> bool:
    """Does the config ask for a hardware-aware sweep (a device objective or a limit)?"""
    return (cfg.search.objective.strip() != "accuracy" or cfg.search.max_latency_ms > 0
            or cfg.budget.max_params > 0)


def measured_latency_limit(cfg: Config) -> float:
    """The measured-latency limit (ms) of a method that measures latency itself (0 = none).

    Accepts ``objective = accuracy`` without a limit, ``latency:litert`` with ``max_latency_ms > 0``, or
    ``pareto:litert`` with or without one; anything else is a one-line ConfigError naming the key.
    """
    objective, limit, method = parse_objective(cfg), cfg.search.max_latency_ms, cfg.method.name
    hint = (f"set [search] objective = latency:{MEASURED_DEVICE} with [search] max_latency_ms > 0 (or "
            f"pareto:{MEASURED_DEVICE}, where the limit is optional)")
    if objective.kind == "accuracy":
        if limit > 0:
            raise ConfigError(f"{where(cfg, 'search', 'max_latency_ms')}: method {method!r} measures latency on this "
                              f"machine; {hint}")
        return 0.0
    if objective.device != MEASURED_DEVICE:
        raise ConfigError(f"{where(cfg, 'search', 'objective')}: method {method!r} takes only latency:{MEASURED_DEVICE} "
                          f"or pareto:{MEASURED_DEVICE} (latency measured on this machine), got "
                          f"{cfg.search.objective.strip()!r}; table devices are for rand, predictor, siamese, "
                          f"brp_nas on nb201")
    if objective.kind == "pareto":
        return float(max(limit, 0.0))
    if limit <= 0:
        raise ConfigError(f"{where(cfg, 'search', 'max_latency_ms')}: objective latency:{MEASURED_DEVICE} needs a limit "
                          f"> 0 (ms)")
    return float(limit)


def refuse_search_keys(cfg: Config, flow: str, method_cls: Optional[type] = None) -> None:
    """Flows other than the budget sweep cannot honour ``[search] objective`` / ``max_latency_ms``,
    except a method that measures latency itself (``method_cls.measures_latency``), whose keys
    :func:`measured_latency_limit` checks."""
    if getattr(method_cls, "measures_latency", False):
        measured_latency_limit(cfg)
        return
    for key, active in (("objective", cfg.search.objective.strip() != "accuracy"),
                        ("max_latency_ms", cfg.search.max_latency_ms > 0)):
        if active:
            raise ConfigError(f"{where(cfg, 'search', key)}: method {cfg.method.name!r} ({flow}) cannot honour a "
                              f"latency objective; constrained searches: rand, predictor, siamese, brp_nas on nb201 "
                              f"(table latencies), evolution (latency:{MEASURED_DEVICE} or pareto:{MEASURED_DEVICE}, "
                              f"measured)")


def refuse_unhonoured_limits(cfg: Config, flow: str) -> None:
    """A ``[budget]`` limit (``max_params``, ``max_flops``, ``max_layers`` > 0) that a run of ``flow`` (``sweep``,
    ``search`` or ``analysis``) would not apply is refused in one line naming the key, as a latency objective is:
    a network found without it would break it. Applied: all three by ``evolution``; ``max_params`` by a table
    sweep (:func:`constrain`, which refuses the methods that cannot); ``max_flops`` by the tinynano space,
    whatever searches it. A plugin method may read them all."""
    from tfnas.run.unused import SEARCH_KEYS

    method = cfg.method.name
    if method not in SEARCH_KEYS or method == "evolution":
        return
    b = cfg.budget
    for key, on, applied in (("max_params", b.max_params > 0, flow == "sweep"),
                             ("max_flops", b.max_flops > 0, cfg.space.name == "tinynano"),
                             ("max_layers", b.max_layers > 0, False)):
        if on and not applied:
            what = {"sweep": "a sweep", "search": "a one-shot search"}.get(flow, "an analysis")
            raise ConfigError(f"{where(cfg, 'budget', key)}: method {method!r} ({what}) does not apply this limit "
                              f"to what it finds; limits: evolution (max_params, max_flops, max_layers), the table "
                              f"sweeps rand, predictor, siamese, brp_nas (max_params), the tinynano space "
                              f"(max_flops); set it to 0")


@functools.lru_cache(maxsize=4)
def _all_params(space: Any, num_classes: int) -> np.ndarray:
    return np.array([space.num_params(space.from_index(i), num_classes) for i in range(space.size)], np.float64)


@dataclass
class Constrained:
    """The feasible view of a sweep and what its records state.

    Attributes:
      space, benchmark: the views the method and the scoring see.
      rows: full-table rows of the feasible cells, ascending.
      latency: full-table latency (ms) on ``objective.device``, or None without a device.
      params: full-table analytic parameter counts.
      label: the constraint in words, stored in every record (e.g. ``pixel3 latency <= 10.68 ms``).
    """

    space: Any
    benchmark: Any
    rows: np.ndarray
    latency: Optional[np.ndarray]
    params: np.ndarray
    label: str
    objective: Objective

    def annotate(self, record: Any, session: Any, best_index: int) -> None:
        """Adds the constraint, the found cell's latency and params, and (pareto) the queried front."""
        row = int(self.rows[int(best_index)])
        record.constraint = self.label
        record.params = float(self.params[row])
        if self.latency is not None:
            record.latency_ms = float(self.latency[row])
        if self.objective.kind == "pareto":
            queried = self.rows[np.fromiter(session.queried().keys(), np.int64)]
            acc = np.asarray(list(session.queried().values()), np.float64) * 100.0
            lat = self.latency[queried]
            record.hypervolume = hypervolume(acc, lat, *self.ranges(record.dataset))
            record.extra["pareto_front"] = [int(r) for r in queried[pareto_front(acc, lat)]]

    def ranges(self, dataset: str) -> Tuple[Tuple[float, float], Tuple[float, float]]:
        """(accuracy range, latency range) of the feasible cells: the hypervolume's normalisation;
        the reference point is (min accuracy, max latency)."""
        acc = self.benchmark.ground_truth(dataset)
        lat = self.latency[self.rows]
        return (float(acc.min()), float(acc.max())), (float(lat.min()), float(lat.max()))


def constrain(cfg: Config, method_cls: type, space: Any, benchmark: Any) -> Optional[Constrained]:
    """The feasible view of ``space``/``benchmark`` for ``cfg``, or None when nothing is asked.

    Refuses (ConfigError naming the key) a malformed objective, an unknown device (listing the
    devices), a limit without a device, a latency objective without a limit, a method or benchmark
    that cannot honour it, and a constraint leaving fewer feasible cells than ``[budget] stop``.
    """
    if not constraint_requested(cfg):
        return None
    objective = parse_objective(cfg)
    s, limit, max_params = cfg.search, cfg.search.max_latency_ms, cfg.budget.max_params
    key = ("search", "objective") if objective.kind != "accuracy" else (
        ("search", "max_latency_ms") if limit > 0 else ("budget", "max_params"))
    if limit > 0 and objective.kind == "accuracy":
        raise ConfigError(f"{where(cfg, 'search', 'max_latency_ms')}: a latency limit needs a device; set "
                          f"[search] objective = latency:<device> (or pareto:<device>)")
    if not issubclass(method_cls, CONSTRAINABLE):
        raise ConfigError(f"{where(cfg, *key)}: method {cfg.method.name!r} cannot search a restricted table; "
                          f"constrained searches: rand, predictor, siamese, brp_nas (on [benchmark] name = nb201)")
    if not hasattr(benchmark, "latency_devices") or benchmark.ground_truth(cfg.dataset.name) is None:
        raise ConfigError(f"{where(cfg, *key)}: needs a table with published latencies and parameter counts "
                          f"([benchmark] name = nb201); got {cfg.benchmark.name!r}")
    latency = None
    if objective.device:
        devices = benchmark.latency_devices
        if objective.device not in devices:
            measured = (f" ({MEASURED_DEVICE}, measured on this machine, is for method evolution)"
                        if objective.device == MEASURED_DEVICE else "")
            raise ConfigError(f"{where(cfg, 'search', 'objective')}: unknown device {objective.device!r}; the "
                              f"{cfg.benchmark.name} table has {', '.join(devices)}{measured}")
        latency = np.asarray(benchmark.latency(objective.device), np.float64)
    if objective.kind == "latency" and limit <= 0:  # after the device: an unknown one is said as such
        raise ConfigError(f"{where(cfg, 'search', 'max_latency_ms')}: objective {s.objective!r} needs a limit > 0 "
                          f"(for the unconstrained front use pareto:{objective.device})")
    params = _all_params(space, dataset_head(cfg)[0])
    feasible = np.ones(space.size, bool)
    words: List[str] = []
    if limit > 0:
        feasible &= latency <= limit
        words.append(f"{objective.device} latency <= {limit:g} ms")
    if max_params > 0:
        feasible &= params <= max_params
        words.append(f"params <= {max_params:g}")
    rows = np.flatnonzero(feasible)
    if rows.size < cfg.budget.stop:
        limits = [key for key, on in (("search.max_latency_ms", limit > 0), ("budget.max_params", max_params > 0))
                  if on]
        alone = {"search.max_latency_ms": lambda: latency <= limit, "budget.max_params": lambda: params <= max_params}
        short = [key for key in limits if np.count_nonzero(alone[key]()) < cfg.budget.stop]
        keys = keys_where(cfg, short or limits)  # the limit that alone leaves too few cells, else both together
        raise ConfigError(f"{keys}: leaves {rows.size:,} feasible cells of {space.size:,}, fewer "
                          f"than [budget] stop = {cfg.budget.stop:,} queries; loosen the limit or lower the budget")
    label = ", ".join(words) or f"{NO_LIMIT} ({objective.kind}:{objective.device})"
    return Constrained(SubsetSpace(space, rows), SubsetBenchmark(benchmark, rows), rows, latency, params, label,
                       objective)


def pareto_tables(con: Constrained, records: List[Any], dataset: str) -> Any:
    """``(true front, found fronts)`` as DataFrames with ``kind, budget, repeat, arch, index, accuracy,
    latency_ms, params``; the true front is the table's, over the feasible cells."""
    import pandas as pd

    truth = con.benchmark.base.ground_truth(dataset)
    space = con.space.base

    def rows_frame(kind: str, rows: Any, budget: int = 0, repeat: int = -1) -> Any:
        rows = np.asarray(rows, np.int64)
        return pd.DataFrame({"kind": kind, "budget": budget, "repeat": repeat,
                             "arch": [space.encode(space.from_index(int(r))) for r in rows], "index": rows,
                             "accuracy": truth[rows].astype(np.float64), "latency_ms": con.latency[rows],
                             "params": con.params[rows]})

    feasible = con.rows
    true = rows_frame("true", feasible[pareto_front(truth[feasible], con.latency[feasible])])
    found = [rows_frame("found", r.extra.get("pareto_front", []), r.budget, r.repeat) for r in records]
    return true, (pd.concat(found, ignore_index=True) if found else true.iloc[:0])
