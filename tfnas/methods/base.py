"""The method contracts: one small family of ABCs, one per kind of run.

- :class:`BudgetedSearch` (``siamese``, ``predictor``, ``rand``): ``run(session, budget, rng)``
  returns a :class:`RunResult` for one (budget, seed); it reads ground truth only through the
  counting ``session`` it is handed, so a budget is honest by construction.
- :class:`OneShotSearch` (``evolution``, ``relativenas``): ``search(context)`` returns one
  :class:`SearchOutcome` and checkpoints itself through the :class:`SearchContext`.
- :class:`Analysis` (``proxy_corr``): ``analyse(context)`` returns a table.

Methods are built by :mod:`tfnas.run.factory` from typed arguments (never from a config
object), declare the space capabilities they need in ``requires`` (checked by the run layer
before any work), and never write files or print: they hand rows and artefacts to the context.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np


class SearchFailedError(RuntimeError):
    """A search ended without an answer for a reason the user can act on (every candidate was
    rejected by the budgets, every training failed); the message says what to change. The command
    line prints it as one ``error:`` line."""


@dataclass
class RunResult:
    """What a budgeted search returns.

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


@dataclass
class SearchContext:
    """What the run layer hands a :class:`OneShotSearch` or an :class:`Analysis`.

    Attributes:
      store: the run directory's artefact store (:class:`tfnas.run.store.ArtifactStore`):
        ``path(name)``, ``exists(name)``, ``read_text(name)``, ``write_text(name, text)``,
        ``write_bytes``, ``write_figure``, ``remove(name)``; every write is atomic. Resumable
        state goes in :attr:`state_dir` (``search_state/`` in the run directory).
      seed: the run's root seed (``[run] seed``).
      rng: generator seeded from ``seed``; a resumed search restores its own saved state instead.
      progress: show progress bars.
      log: ``log(row)`` appends one progress row (a flat dict of numbers/strings, e.g.
        ``iteration``, ``best_score``) to ``history.csv``.
      logged_rows: rows ``history.csv`` already held when the search started; a resumed search
        must not log those again.
      executor: the :class:`~tfnas.evaluation.executors.Executor` that batches of candidates may be
        handed to (``[run] executor``; the run layer starts and stops it), or None (in-process).
      candidate: ``candidate(step, values)`` reports numbers of one evaluated candidate (e.g. a
        supernet's loss on the architecture it sampled for one step) at ``step``, a running count
        over the whole search that a resumed search continues; the run layer writes them as
        TensorBoard scalars ``candidate/<name>`` (flushed at once, so a killed search loses none of
        the candidates its saved state counts as done). A view only: the search never reads them back.
    """

    store: Any
    seed: int
    rng: np.random.Generator
    progress: bool
    log: Callable[[Dict[str, Any]], None] = lambda row: None
    logged_rows: int = 0
    executor: Any = None
    candidate: Callable[[int, Dict[str, Any]], None] = lambda step, values: None

    @property
    def state_dir(self) -> str:
        """Folder of the method's resumable state (created on demand)."""
        return self.store.state_dir()


class Method(abc.ABC):
    """What every method has: a registered ``name`` and the space capabilities it ``requires``.

    ``requires`` holds capability ABCs of :mod:`tfnas.spaces.base` (e.g. ``GraphSpace``); the run
    layer checks the configured space against them before anything is built or written.
    """

    name: str = ""
    requires: Tuple[type, ...] = ()


class BudgetedSearch(Method):
    """A search over a tabular view of a space, spending counted ground-truth queries."""

    @property
    def label(self) -> str:
        """Name of this method (variant) in results tables."""
        return self.name

    def prepare(self, context: SearchContext) -> None:
        """Work done once per run directory before its records (e.g. NAG trains its GAN here),
        resumable through ``context.store``; nothing by default."""

    @abc.abstractmethod
    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        """Searches with at most ``budget`` ground-truth queries of ``session``."""


class OneShotSearch(Method):
    """A search that produces one architecture (not a budget sweep)."""

    @abc.abstractmethod
    def search(self, context: SearchContext) -> SearchOutcome:
        """Runs (or resumes) the search and returns the best architecture."""


class Analysis(Method):
    """A study over a space that produces a table (e.g. proxy-accuracy correlation)."""

    @abc.abstractmethod
    def analyse(self, context: SearchContext) -> Any:
        """Runs (or resumes) the analysis; returns a ``pandas.DataFrame``."""
