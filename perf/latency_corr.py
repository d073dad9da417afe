"""Measured LiteRT latency of NB201 cells against the shipped table's published device latencies.

A check of the measured-latency path (:mod:`tfnas.evaluation.latency`): a seeded sample of
NAS-Bench-201 cells (CIFAR-10 network: C=16, N=5, 32x32 inputs, 10 classes) is converted to float32
TFLite and timed at batch 1 with the LiteRT interpreter on this machine; the Spearman rank
correlation of those medians with each latency column of the table (HW-NAS-Bench's measurements;
the CPU columns are ``gold_6226`` (Xeon Gold 6226), ``raspi4`` (Raspberry Pi 4, ARM) and ``pixel3``
(Pixel 3, ARM, TFLite)) says how well a search on this machine ranks cells as those devices do.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from perf.report import emit, machine, rounded

#: Table columns measured on CPUs (the others are GPUs, an FPGA and an ASIC model).
CPU_DEVICES = ("gold_6226", "raspi4", "pixel3")


def run(cells: int = 300, seed: int = 0, threads: int = 1, runs: int = 50, warmup: int = 5,
        cache_dir: Optional[str] = "latency_cache", channels: int = 16, cells_per_stage: int = 5,
        input_size: int = 32, num_classes: int = 10, every: int = 10) -> dict:
    """Emits ``latency_cell`` every ``every`` measured cells (progress) and one ``latency_corr``:
    ``cells``, ``spearman`` of the measured medians per table device (CPU devices first),
    ``spearman_min_ms`` (the same with each cell's fastest run), the measured median range
    (ms), the mean conversion time of the cells converted in this run and the machine. Cells
    already in ``cache_dir``'s cache are not measured again, so a stopped run continues."""
    from tfnas.benchmarks.nb201 import Nb201Benchmark
    from tfnas.evaluation.latency import LatencyMeasurer, LatencySetup
    from tfnas.metrics import spearman
    from tfnas.spaces.nb201 import Nb201Space

    if not 1 <= cells <= 15625:
        raise ValueError(f"cells must be in [1, 15625]; got {cells}")
    space = Nb201Space(channels=channels, cells_per_stage=cells_per_stage)
    setup = LatencySetup((input_size, input_size, 3), num_classes, threads, "none", runs, warmup)
    measurer = LatencyMeasurer(space, setup, cache_dir or None, seed=seed)
    rows = np.sort(np.random.default_rng(seed).choice(space.size, size=cells, replace=False))
    measured = np.empty(cells, np.float64)  # median ms
    fastest = np.empty(cells, np.float64)  # min ms: less sensitive to other jobs on a shared machine
    start = time.perf_counter()
    for k, row in enumerate(rows):
        stats = measurer.measure(space.from_index(int(row)))
        measured[k], fastest[k] = stats.median_ms, stats.min_ms
        if every and (k + 1) % every == 0:
            emit("latency_cell", done=k + 1, of=cells, index=int(row), median_ms=round(float(measured[k]), 4),
                 elapsed_s=round(time.perf_counter() - start, 1))
    table = Nb201Benchmark()
    devices = [d for d in CPU_DEVICES if d in table.latency_devices]
    devices += [d for d in table.latency_devices if d not in devices]
    published = {d: np.asarray(table.latency(d), np.float64)[rows] for d in devices}
    corr = {d: round(spearman(measured, published[d]), 4) for d in devices}
    corr_min = {d: round(spearman(fastest, published[d]), 4) for d in devices}
    figures = {"cells": cells, "seed": seed, "threads": threads, "runs": runs, "spearman": corr,
               "spearman_min_ms": corr_min,
               "median_ms_min": float(measured.min()), "median_ms_max": float(measured.max()),
               "converted": measurer.measured,
               "convert_s_mean": float(np.mean(measurer.convert_seconds)) if measurer.convert_seconds else 0.0,
               "wall_s": time.perf_counter() - start}
    emit("latency_corr", **rounded(figures, 4), machine=machine())
    return figures
