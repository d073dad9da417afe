"""How much of a batched evolution's worker time the batch boundary wastes, from measured costs.

A batched evolution (``[search] batch = k``) hands ``k`` children to ``W`` workers and waits for the
last one before it inserts them and mutates the next batch, so a worker that runs out of children
idles until the slowest one is done. This replays the measured per-candidate seconds of a search
(``tools/bench.py evolution --dump-candidates FILE``: every scored candidate in search order, with its
seconds in one process) through that schedule for other worker counts, without running them:

* ``chunks``: the executors' default hand-out, ``chunk_ranges(k, W, 0)`` (about four tasks per
  worker, in batch order), each task to the next free worker;
* ``costliest_first``: one candidate per task, by decreasing analytic FLOPs (what
  :class:`tfnas.evaluation.proxy.ParallelProxyEvaluator` does), each to the next free worker.

Each task also pays ``overhead_ms`` of scheduling (``tools/bench.py executor-overhead``). The
consecutive candidates of the dump stand in for a batch; their costs are what one core measured,
so the figures are the schedule's efficiency, not a prediction of another machine's speed.
"""

from __future__ import annotations

import heapq
import json
from typing import List, Sequence, Tuple

from perf.report import emit


def makespan(costs: Sequence[float], workers: int) -> float:
    """The end of the last of ``costs`` (tasks in hand-out order) on ``workers`` workers that each
    take the next task as soon as they are free."""
    free = [0.0] * min(workers, max(1, len(costs)))
    for cost in costs:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def batch_tasks(seconds: Sequence[float], flops: Sequence[int], workers: int, policy: str,
                overhead: float) -> List[float]:
    """The costs of one batch's tasks in the order they are handed out under ``policy``."""
    from tfnas.evaluation.executors import chunk_ranges

    if policy == "chunks":
        return [sum(seconds[a:b]) + overhead for a, b in chunk_ranges(len(seconds), workers, 0)]
    order = sorted(range(len(seconds)), key=lambda i: (-flops[i], i))
    return [seconds[i] + overhead for i in order]


def replay(seconds: Sequence[float], flops: Sequence[int], workers: int, batch: int, policy: str,
           overhead: float) -> Tuple[float, float]:
    """``(wall, ideal)``: the summed batch makespans, and the candidates' seconds over ``workers``."""
    wall = 0.0
    for start in range(0, len(seconds), batch):
        wall += makespan(batch_tasks(seconds[start:start + batch], flops[start:start + batch], workers, policy,
                                     overhead), workers)
    return wall, sum(seconds) / workers


def load_dump(path: str) -> Tuple[List[float], List[int]]:
    """``(seconds, flops)`` of the candidates in a ``--dump-candidates`` file; a file that is not one
    is a :class:`~tfnas.config.ConfigError` naming it and what is wrong."""
    import math

    from tfnas.config import ConfigError
    from tfnas.spaces.zen.space import ZenSpace

    with open(path, encoding="utf-8") as fh:
        try:
            scored = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a JSON file ({exc})") from None
    what = "expected the JSON object `bench.py evolution --dump-candidates` writes"
    if not isinstance(scored, dict) or not {"resolution", "archs", "seconds"} <= set(scored):
        raise ConfigError(f"{path}: {what}, with resolution, archs and seconds")
    archs, seconds = scored["archs"], scored["seconds"]
    if not (isinstance(archs, list) and isinstance(seconds, list) and len(archs) == len(seconds) > 0):
        raise ConfigError(f"{path}: {what}: archs and seconds must be lists of the same, non-zero length")
    if not all(isinstance(a, str) for a in archs):
        raise ConfigError(f"{path}: {what}: every arch must be a block string")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0
               for t in seconds):
        raise ConfigError(f"{path}: {what}: every seconds value must be a finite number >= 0")
    if sum(seconds) <= 0:  # (the efficiency is the ideal over the replayed wall time)
        raise ConfigError(f"{path}: {what}: the candidates' seconds add up to 0; nothing to replay")
    try:
        space = ZenSpace(resolution=int(scored["resolution"]))
        flops = [space.flops(space.decode(a)) for a in archs]
    except (TypeError, ValueError, OverflowError) as exc:  # (OverflowError: a resolution of 1e999)
        raise ConfigError(f"{path}: {what}: {exc}") from None
    return [float(t) for t in seconds], flops


def run(dump: str, workers: Sequence[int] = (2, 8, 64), batches: Sequence[int] = (16, 64),
        overhead_ms: float = 1.15) -> None:
    """Emits one ``batch-schedule`` line per worker count, batch size and policy."""
    seconds, flops = load_dump(dump)
    for w in workers:
        for k in batches:
            for policy in ("chunks", "costliest_first"):
                wall, ideal = replay(seconds, flops, w, k, policy, overhead_ms / 1000.0)
                emit("batch-schedule", candidates=len(seconds), workers=w, batch=k, policy=policy,
                     wall_s=round(wall, 2), ideal_s=round(ideal, 2), efficiency=round(ideal / wall, 3))
