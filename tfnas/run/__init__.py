"""The run layer: the only code that reads a :class:`~tfnas.config.Config`.

- :mod:`tfnas.run.rundir`: ``RunDir`` (identity by (section, key), ``config.cfg``, resume, lock);
  :mod:`tfnas.run.store`: the atomic ``ArtifactStore`` methods write through;
- :mod:`tfnas.run.factory` / :mod:`tfnas.run.method_args`: config -> typed arguments -> objects;
- flows: :mod:`~tfnas.run.sweep` (budgeted searches), :mod:`~tfnas.run.search` (one-shot
  searches, then training and export), :mod:`~tfnas.run.analysis`, :mod:`~tfnas.run.train_one`.
"""

from __future__ import annotations

from tfnas.config import Config, ConfigError, validate_config


def flow_of(cfg: Config) -> str:
    """``"sweep"``, ``"search"`` or ``"analysis"``: the flow the configured method's contract needs."""
    from tfnas.methods.base import Analysis, BudgetedSearch, OneShotSearch
    from tfnas.registry import METHODS

    cls = METHODS.get(cfg.method.name)
    for base, flow in ((BudgetedSearch, "sweep"), (OneShotSearch, "search"), (Analysis, "analysis")):
        if issubclass(cls, base):
            return flow
    raise TypeError(f"method {cfg.method.name!r} ({cls.__name__}) implements none of BudgetedSearch, "
                    f"OneShotSearch, Analysis (tfnas/methods/base.py)")


_FLOWS = {"sweep": ("a budgeted search", "tfnas.run.sweep.run_sweep"),
          "search": ("a one-shot search", "tfnas.run.search.run_search"),
          "analysis": ("an analysis", "tfnas.run.analysis.run_analysis")}


def check_flow(cfg: Config, flow: str) -> None:
    """What a flow checks first: ``cfg`` holds only values a config file could (:func:`validate_config`, for
    a Config built or changed in Python), and its method is one this flow runs."""
    validate_config(cfg)
    found = flow_of(cfg)
    if found != flow:
        what, call = _FLOWS[found]
        raise ConfigError(f"[method] name = {cfg.method.name} is {what}: run it with {call} (or "
                          f"tools/train_eval.py, which picks the flow), not {_FLOWS[flow][1]}")
    from tfnas.run.unused import warn_unused_keys

    warn_unused_keys(cfg, flow)
