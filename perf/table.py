"""Import and load time of the NAS-Bench-201 table shipped with tfnas."""

from __future__ import annotations

import time

from perf.report import emit


def run() -> None:
    """Emits ``table``: ``load_s`` (reading the arrays), ``import_s`` (the module import), ``cells``."""
    start = time.perf_counter()
    from tfnas.benchmarks.nb201_data import load_arrays

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    arrays = load_arrays()
    load_s = time.perf_counter() - start
    emit("table", load_s=round(load_s, 4), import_s=round(import_s, 4), cells=int(arrays["ops"].shape[0]))
