"""The analysis flow (``proxy_corr``): one table into the run directory, resumable."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from tfnas.config import Config
from tfnas.methods.base import SearchContext
from tfnas.run import check_flow
from tfnas.run.constraints import refuse_search_keys, refuse_unhonoured_limits
from tfnas.run.events import events_root, hparams_of, write_hparams
from tfnas.run.factory import build_executor, build_method, build_space, check_method_fits_space
from tfnas.run.rundir import RunDir
from tfnas.run.search import SEARCH_FREE_KEYS, SEARCH_FREE_SECTIONS
from tfnas.run.unused import tolerated


def run_analysis(cfg: Config, progress: Optional[bool] = None) -> Any:
    """Runs (or resumes) the configured analysis; returns its table (``pandas.DataFrame``)."""
    check_flow(cfg, "analysis")
    progress = cfg.run.progress if progress is None else progress
    run_dir = RunDir(cfg, ignore=SEARCH_FREE_KEYS, ignore_sections=SEARCH_FREE_SECTIONS,
                     tolerate=tolerated(cfg, "analysis"))
    run_dir.check()
    check_method_fits_space(cfg)
    refuse_search_keys(cfg, "an analysis")
    refuse_unhonoured_limits(cfg, "analysis")
    method = build_method(cfg, build_space(cfg))
    with run_dir, build_executor(cfg) as executor:
        context = SearchContext(store=run_dir.store, seed=cfg.run.seed, rng=np.random.default_rng(cfg.run.seed),
                                progress=progress, executor=executor)
        table = method.analyse(context)
        write_analysis_hparams(cfg, table)
        return table


def write_analysis_hparams(cfg: Config, table: Any) -> None:
    """The run's TensorBoard hparams row (``[run] tensorboard``): config keys -> each proxy's Spearman and
    Kendall rank correlation with the benchmark (``final/spearman/<proxy>``), and the cells scored."""
    metrics = {f"{stat}/{row['proxy']}": row[stat] for _, row in table.iterrows() for stat in ("spearman", "kendall")}
    metrics["cells"] = int(table["cells"].max()) if len(table) else 0
    row = {**hparams_of(cfg, unread=tolerated(cfg, "analysis")), "proxy.names": ", ".join(table["proxy"])}
    write_hparams(events_root(cfg), row, metrics)
