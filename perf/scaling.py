"""Scheduling overhead of the executors: what one task costs beyond its own work.

A trivial job (each item returns itself) is mapped over ``items`` items, one item per task, after a
warm-up batch that starts the workers; the overhead per task is the wall time over the items.
Together with the measured seconds per candidate (``tools/bench.py evolution``), this is what the
projection in docs/SCALING.md scales to more workers.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, List, Sequence

from perf.report import emit, machine
from tfnas.evaluation.executors import Job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Echo(Job):
    """Each item comes back as it is (no work: the measured time is the executor's own)."""

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        return lambda items: list(items)


def run(executor: str = "process", workers: int = 2, items: int = 200, address: str = "local") -> None:
    """Emits one ``executor-overhead`` line: start-up seconds and milliseconds per one-item task."""
    from tfnas.evaluation.executors import make_executor

    init = {}
    if executor == "ray" and address == "local":
        # Ray's files go to a folder the executor makes and removes (a `_temp_dir` given here was left behind)
        init = {"object_store_memory": 256 * 1024 ** 2,
                "runtime_env": {"env_vars": {"PYTHONPATH": ROOT}}}
    start = time.perf_counter()
    pool = make_executor(executor, workers, address=address, ray_init=init)
    try:
        pool.map(Echo(), list(range(2 * pool.workers)))  # starts the workers
        startup = time.perf_counter() - start
        if hasattr(pool, "chunk"):
            pool.chunk = 1
        start = time.perf_counter()
        out = pool.map(Echo(), list(range(items)))
        wall = time.perf_counter() - start
    finally:
        pool.close()
    assert out == list(range(items))
    emit("executor-overhead", executor=executor, workers=pool.workers, items=items, startup_s=round(startup, 2),
         ms_per_task=round(1000 * wall / items, 3), machine=machine())
