"""Speed and memory of the predictor-based sweeps (``siamese`` and the plain ``predictor``).

Runs the method of ``cfg/siams_nsam.cfg`` or ``cfg/predictor.cfg`` on the shipped NB201 table
(CIFAR-100) ``repeats`` times at one budget and reports training and ranking throughput and
peak memory after each run, so growth across repeats (leaks, retracing) shows.
"""

from __future__ import annotations

import os
import time

from perf.report import emit, machine, peak_rss_mb

CFG_FILES = {"siamese": "siams_nsam.cfg", "predictor": "predictor.cfg"}
DATASET = "cifar100"


def run(method: str = "siamese", budget: int = 100, repeats: int = 3, jit: str = "auto") -> None:
    """Emits ``<method>-run`` per repeat and one ``<method>-memory``.

    Args:
        method: ``siamese`` or ``predictor`` (picks the cfg file under ``cfg/``, read from the
            working directory, as ``tools/bench.py`` runs from the repository root).
        budget: ground-truth queries per run.
        repeats: runs, with generators seeded 0, 1, ...
        jit: ``[predictor] jit_compile`` (``auto``, ``true``, ``false``).
    """
    import numpy as np

    from tfnas.config import load_config
    from tfnas.registry import BENCHMARKS
    from tfnas.run.factory import build_method, build_space

    cfg = load_config(os.path.join("cfg", CFG_FILES[method]), [f"predictor.jit_compile={jit}"])
    space = build_space(cfg)
    benchmark = BENCHMARKS.get("nb201")()
    searcher = build_method(cfg, space)
    steps = cfg.predictor.epochs * max(budget // cfg.predictor.batch_size, 1)
    truth = benchmark.ground_truth(DATASET)
    rss = []
    for repeat in range(repeats):
        session = benchmark.session(DATASET, budget)
        start = time.perf_counter()
        result = searcher.run(session, budget, np.random.default_rng(repeat))
        wall = time.perf_counter() - start
        rss.append(peak_rss_mb())
        emit(f"{method}-run", budget=budget, repeat=repeat, wall_s=round(wall, 2),
             train_s=result.extra["train_s"], rank_s=result.extra["rank_s"],
             train_steps_per_s=round(steps / result.extra["train_s"], 1),
             cells_ranked_per_s=round(len(truth) / max(result.extra["rank_s"], 1e-9), 0),
             queries=session.queries, found_acc=round(float(truth[result.best_index]), 2),
             peak_rss_mb=round(rss[-1], 1))
    emit(f"{method}-memory", peak_rss_first_mb=round(rss[0], 1), peak_rss_last_mb=round(rss[-1], 1),
         growth_mb=round(rss[-1] - rss[0], 1), machine=machine())
