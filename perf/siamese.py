"""Speed and memory of the predictor-based sweeps (``siamese``, the plain ``predictor``, ``brp_nas``).

Runs the method of ``cfg/siams_nsam.cfg``, ``cfg/predictor.cfg`` or ``cfg/brp_nas.cfg`` on the shipped NB201 table
(CIFAR-100) ``repeats`` times at one budget and reports training and ranking throughput and
peak memory after each run, so growth across repeats (leaks, retracing) shows.
"""

from __future__ import annotations

import os
import time

from perf.report import emit, machine, peak_rss_mb

CFG_FILES = {"siamese": "siams_nsam.cfg", "predictor": "predictor.cfg", "brp_nas": "brp_nas.cfg"}
DATASET = "cifar100"


def run(method: str = "siamese", budget: int = 100, repeats: int = 3, jit: str = "auto", units: int = 0) -> None:
    """Emits ``<method>-run`` per repeat and one ``<method>-memory``.

    Args:
        method: ``siamese`` or ``predictor`` (picks the cfg file under ``cfg/``, read from the
            working directory, as ``tools/bench.py`` runs from the repository root).
        budget: ground-truth queries per run.
        repeats: runs, with generators seeded 0, 1, ...
        jit: ``[predictor] jit_compile`` (``[brp] jit_compile`` for ``brp_nas``): ``auto``, ``true``, ``false``.
        units: the predictor's width (``[predictor]`` / ``[brp] units``); 0 = the cfg file's.
    """
    import numpy as np

    from tfnas.config import load_config
    from tfnas.registry import BENCHMARKS
    from tfnas.run.factory import build_method, build_space

    section = "brp" if method == "brp_nas" else "predictor"
    # [budget] stop sizes the predictor trainer's step capacity: the measured budget's own steps
    sets = [f"{section}.jit_compile={jit}", f"budget.start={budget}", f"budget.stop={budget}"] + (
        [f"{section}.units={units}"] if units else [])
    cfg = load_config(os.path.join("cfg", CFG_FILES[method]), sets)
    space = build_space(cfg)
    benchmark = BENCHMARKS.get("nb201")()
    searcher = build_method(cfg, space)
    steps = cfg.predictor.epochs * max(budget // cfg.predictor.batch_size, 1)
    if method == "brp_nas":  # steps of the rounds' trainings (each round's set in batches of batch_size)
        quotas, epochs = searcher.schedule(budget)
        steps = sum(e * -(-int(n) // cfg.brp.batch_size) for e, n in zip(epochs, np.cumsum(quotas)))
    truth = benchmark.ground_truth(DATASET)
    rss = []
    for repeat in range(repeats):
        session = benchmark.session(DATASET, budget)
        start = time.perf_counter()
        result = searcher.run(session, budget, np.random.default_rng(repeat))
        wall = time.perf_counter() - start
        if method == "brp_nas":
            result.extra["train_s"] = round(result.extra["search_s"] - result.extra["rank_s"], 3)
        rss.append(peak_rss_mb())
        emit(f"{method}-run", budget=budget, repeat=repeat, wall_s=round(wall, 2),
             train_s=result.extra["train_s"], rank_s=result.extra["rank_s"],
             train_steps_per_s=round(steps / result.extra["train_s"], 1),
             cells_ranked_per_s=round(len(truth) * result.extra.get("rounds", 1) / max(result.extra["rank_s"], 1e-9)),
             queries=session.queries, found_acc=round(float(truth[result.best_index]), 2),
             peak_rss_mb=round(rss[-1], 1))
    emit(f"{method}-memory", peak_rss_first_mb=round(rss[0], 1), peak_rss_last_mb=round(rss[-1], 1),
         growth_mb=round(rss[-1] - rss[0], 1), machine=machine())
