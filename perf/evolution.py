"""Throughput of a zero-shot evolutionary search in the Zen space (1M parameters, 18 layers).

Reports iterations and scored candidates per second and the median seconds per scored
candidate (``median_score_s``: measured in this process, so ``null`` where a batched search's
children are scored by a process pool's or Ray's workers); with ``dump_candidates`` it also writes every scored candidate as the convolution
plan of its residual-free network, which :mod:`perf.torch_reference` scores in PyTorch so the
two frameworks are compared on the same networks.
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any, List, Optional, Sequence, Tuple

from perf.report import emit, machine, peak_rss_mb


def run(proxy: str = "zen", population: int = 512, iterations: int = 300, dump_candidates: str = "",
        executor: str = "local", workers: int = 0, batch: int = 1, threads: int = 0, address: str = "local") -> None:
    """Emits one ``evolution`` line.

    Args:
        proxy: the proxy that scores children (``incorporated_*`` turn the effectiveness filter on).
        population: population size ``N``.
        iterations: mutation iterations.
        dump_candidates: a JSON file for the scored candidates (arch strings, seconds, conv plans),
            or ``""`` for none (``batch = 1`` only).
        executor, workers, threads, address: the executor scoring batches (``[run] executor / workers /
            worker_threads / ray_address``; the pool's start-up is included in the wall time).
        batch: children scored together (``[search] batch``).
    """
    import numpy as np

    from tfnas.evaluation.executors import make_executor
    from tfnas.evaluation.proxy import ProxyEvaluator
    from tfnas.methods.base import SearchContext
    from tfnas.methods.evolution import EvolutionSearch, Limits
    from tfnas.proxies.base import get_proxy
    from tfnas.registry import SPACES
    from tfnas.run.store import ArtifactStore

    space = SPACES.get("zen")()
    scored: List[Tuple[str, float]] = []  # (arch string, seconds) of every scored candidate

    class TimedEvaluator(ProxyEvaluator):
        def evaluate(self, archs: Sequence[Any], rngs: Optional[Sequence[Any]] = None) -> List[float]:
            scores = super().evaluate(archs, rngs)
            scored.extend((space.encode(a), t) for a, t in zip(archs, self.seconds))
            return scores

    limits = Limits(max_params=1e6, max_layers=18, effectiveness_filter=proxy.startswith("incorporated"))
    method = EvolutionSearch(space, get_proxy(proxy), proxy_name=proxy, population=population,
                             iterations=iterations, limits=limits, record_every=max(iterations // 5, 1),
                             batch_size=64, batch=batch)
    method.evaluator_cls = TimedEvaluator
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with make_executor(executor, workers, threads=threads, address=address) as pool:
            context = SearchContext(store=ArtifactStore(tmp), seed=0, rng=np.random.default_rng(0), progress=False,
                                    executor=pool)
            outcome = method.search(context)
        wall = time.perf_counter() - start
    if dump_candidates:
        write_candidates(dump_candidates, space, proxy, scored)
    times = [t for _, t in scored]
    emit("evolution", proxy=proxy, population=population, iterations=iterations, executor=executor,
         workers=getattr(pool, "workers", 1), batch=batch, threads=threads, best_score=round(outcome.score, 6),
         wall_s=round(wall, 2), iterations_per_s=round(iterations / wall, 2),
         scored=outcome.extra["scored"], scored_per_s=round(outcome.extra["scored"] / wall, 2),
         median_score_s=round(float(np.median(times)), 4) if times else None,
         best_params=outcome.extra["params"], peak_rss_mb=round(peak_rss_mb(), 1), machine=machine())


def write_candidates(path: str, space: Any, proxy: str, scored: Sequence[Tuple[str, float]]) -> None:
    """Writes the scored candidates as ``{"proxy", "resolution", "archs", "seconds", "plans"}``.

    A plan lists the convolutions of the candidate's residual-free network as
    ``[cin, cout, kernel, stride, depthwise]``, the input of :mod:`perf.torch_reference`.
    """
    from tfnas.spaces.zen.residual_free import conv_plan

    plans = [[[c.cin, c.cout, c.kernel, c.stride, int(c.depthwise)] for c in conv_plan(space.decode(a))]
             for a, _ in scored]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"proxy": proxy, "resolution": space.resolution, "archs": [a for a, _ in scored],
                   "seconds": [t for _, t in scored], "plans": plans}, fh)
