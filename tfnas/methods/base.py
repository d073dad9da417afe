"""The method contract: a method proposes, evaluators and the driver do the rest.

A method is built from the typed config by its ``from_config`` factory (the only place that
reads config objects) and then ``run(session, budget, rng)`` returns a :class:`RunResult`.
It reads ground truth only through the counting ``session`` it is handed, so a budget is
honest by construction; the driver scores the result against the benchmark afterwards.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np


@dataclass
class RunResult:
    """What a search returns.

    Attributes:
      best_index: table index of the architecture the method picks as its answer.
      scores: predicted score of every cell of a tabular space (higher = better), float [size],
        or None when the method does not rank the whole space.
      ec_evals: estimation-code evaluations used (reported apart from ground-truth queries).
      extra: method-specific figures for the record (timings, losses, ...).
    """

    best_index: int
    scores: Optional[np.ndarray] = None
    ec_evals: int = 0
    extra: Dict[str, Any] = field(default_factory=dict)


class Method(abc.ABC):
    """A search method over a tabular benchmark session."""

    name: str = ""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Any, space: Any) -> "Method":
        """Builds the method from the resolved :class:`tfnas.config.Config` (unpacking it into kwargs)."""

    @abc.abstractmethod
    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        """Searches with at most ``budget`` ground-truth queries of ``session``."""


@dataclass
class SearchContext:
    """What the search driver hands a :class:`SearchMethod`.

    Attributes:
      run_dir: the run directory; a method keeps its resumable state under ``state_dir``.
      state_dir: ``run_dir/search_state``: checkpoints written atomically (temp file + rename)
        so a killed search resumes where it stopped when the same command runs again.
      seed: the run's root seed (``[run] seed``).
      rng: generator seeded from ``seed``; a resumed search restores its own saved state instead.
      progress: show progress bars.
      log: ``log(row)`` appends one progress row (a flat dict of numbers/strings, e.g.
        ``iteration``, ``best_score``) to ``history.csv``.
      logged_rows: rows ``history.csv`` already held when the search started; a resumed search
        must not log those again.
    """

    run_dir: str
    state_dir: str
    seed: int
    rng: np.random.Generator
    progress: bool
    log: Any
    logged_rows: int = 0


@dataclass
class SearchOutcome:
    """The answer of a one-shot search (evolution, RelativeNAS, ...).

    Attributes:
      best_arch: the found architecture as the space's canonical string.
      score: the method's own figure of merit for it (proxy score, search loss, ...), or None.
      score_name: what ``score`` is (e.g. ``"zen"``, ``"valid_loss"``); shown in tables.
      extra: figures for ``result.json`` (params, FLOPs, timings, ...).
    """

    best_arch: str
    score: Optional[float] = None
    score_name: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)


class SearchMethod(abc.ABC):
    """A search that produces one architecture (not a benchmark budget sweep).

    The driver (``tfnas.search_driver.run_search``) builds it with ``from_config``, calls
    ``search`` once, writes ``best_arch.txt``, ``result.json``, ``history.csv`` and its plot,
    and, when ``[train] enabled``, trains the found architecture and exports it.
    """

    name: str = ""
    kind: str = "search"  # tells the driver this is not a benchmark sweep

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Any, space: Any) -> "SearchMethod":
        """Builds the method from the resolved config (the only place that reads it)."""

    @abc.abstractmethod
    def search(self, context: SearchContext) -> SearchOutcome:
        """Runs (or resumes) the search and returns the best architecture."""
