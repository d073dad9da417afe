"""Resident memory of a zero-shot evolution in the Zen space as it scores candidates.

Runs the evolution of ``cfg/zen_cifar10_1M.cfg`` (1M parameters, 18 layers, population 512,
batch 64, seed 0) in this process and samples the resident set size (RSS, ``/proc/self/statm``)
after every ``every`` scored candidates, stopping after ``candidates``. The figure that matters
for long searches is the growth from ``warmup`` scored candidates on, once TensorFlow, the
traced layer functions and the first networks' buffers are in place:

    python tools/bench.py memory --candidates 2000 --warmup 200 --every 100

It emits one ``memory`` line: RSS after the warm-up and at the end, the growth between them in
per cent, the largest sample after the warm-up, the peak RSS (``ru_maxrss``), the samples, and
the hit/miss counts of tfnas' bounded caches (:mod:`tfnas.lru`).

``release=True`` (``--release``, Linux/glibc) measures the alternative to TensorFlow's oneDNN
allocator, which keeps the largest buffers a search has needed: every buffer comes from
``malloc`` (``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1``, set before TensorFlow loads, so it must not be
imported yet), one malloc arena, and ``malloc_trim(0)`` after every scored candidate hands the
freed memory back to the system (docs/PERFORMANCE.md has its cost); ``release_every = n`` trims
after every ``n``-th candidate only. Samples are taken before a trim, at the high point.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from perf.report import emit, machine


def rss_mb() -> float:
    """Current resident memory of this process, MiB (Linux ``/proc``; elsewhere the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Enough(Exception):
    """Raised by the sampling evaluator once enough candidates are scored."""


def _system_allocator() -> Any:
    """Switches TensorFlow to ``malloc`` with one arena; returns glibc for ``malloc_trim``."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("release=True must be set up before TensorFlow is imported")
    os.environ["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = "1"
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-8, 1)  # M_ARENA_MAX
    return libc


def run(proxy: str = "zen", population: int = 512, candidates: int = 2000, warmup: int = 200,
        every: int = 100, release: bool = False, release_every: int = 1) -> Dict[str, Any]:
    """Emits one ``memory`` line and returns its figures (see the module docstring)."""
    if not 0 < warmup < candidates or every < 1 or release_every < 1:
        raise ValueError(f"need 0 < warmup < candidates, every >= 1 and release_every >= 1; got {warmup}, "
                         f"{candidates}, {every}, {release_every}")
    if release_every != 1 and not release:
        raise ValueError("release_every applies to release=True only")
    if release and every % release_every:
        raise ValueError(f"every ({every}) must be a multiple of release_every ({release_every}), so that "
                         f"every sample is taken just before a trim")
    libc = _system_allocator() if release else None
    import numpy as np

    from tfnas.evaluation.proxy import ProxyEvaluator
    from tfnas.lru import cache_stats
    from tfnas.methods.base import SearchContext
    from tfnas.methods.evolution import EvolutionSearch, Limits
    from tfnas.proxies.base import get_proxy
    from tfnas.registry import SPACES
    from tfnas.run.store import ArtifactStore

    samples: List[List[float]] = []  # [scored candidates, RSS MiB]
    start = time.perf_counter()

    class SamplingEvaluator(ProxyEvaluator):
        def evaluate(self, archs: Sequence[Any], rngs: Optional[Sequence[Any]] = None) -> List[float]:
            scores = super().evaluate(archs, rngs)
            if self.evaluated in (warmup, candidates) or self.evaluated % every == 0:
                samples.append([self.evaluated, round(rss_mb(), 1)])  # before a trim: the high point
            if libc is not None and self.evaluated % release_every == 0:
                libc.malloc_trim(0)
            if self.evaluated >= candidates:
                raise _Enough
            return scores

    space = SPACES.get("zen")()
    method = EvolutionSearch(space, get_proxy(proxy), proxy_name=proxy, population=population,
                             iterations=10 ** 9, limits=Limits(max_params=1e6, max_layers=18),
                             record_every=10 ** 9, batch_size=64)
    method.evaluator_cls = SamplingEvaluator
    samples.append([0, round(rss_mb(), 1)])
    with tempfile.TemporaryDirectory() as tmp:
        context = SearchContext(store=ArtifactStore(tmp), seed=0, rng=np.random.default_rng(0), progress=False)
        try:
            method.search(context)
        except _Enough:
            pass
    wall = time.perf_counter() - start
    at = dict((int(n), r) for n, r in samples)
    after = [r for n, r in samples if n >= warmup]
    figures = {"proxy": proxy, "population": population, "candidates": candidates, "warmup": warmup, "release": release,
               "release_every": release_every if release else 0, "rss_start_mb": at[0],
               "rss_warmup_mb": at[warmup], "rss_end_mb": at[candidates],
               "growth_pct": round(100.0 * (at[candidates] - at[warmup]) / at[warmup], 2),
               "max_after_warmup_mb": max(after),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
               "wall_s": round(wall, 1), "samples": samples, "caches": cache_stats()}
    emit("memory", **figures, machine=machine())
    return figures
