"""Seconds per candidate of each zero-shot proxy, on NB201 cells or on 1M-parameter Zen networks.

NB201 cells are drawn uniformly from the table (so the arch-as-tensor fast paths are timed);
Zen candidates come from a random walk of in-budget mutations of the start architecture, the
networks an evolution with ``max_params = 1e6`` and 18 layers actually scores.
"""

from __future__ import annotations

import time
from typing import Any, List, Sequence, Tuple

from perf.report import emit, machine

NB201_PROXIES = ("synflow", "grad_norm", "snip", "naswot", "jacob_cov", "te_nas", "zen", "flops", "params", "random")
ZEN_PROXIES = ("zen", "incorporated_s", "incorporated_l", "synflow", "naswot", "grad_norm", "params", "random")


def candidates(space_name: str, cells: int) -> Tuple[Any, List[Any], Tuple[int, int, int], int]:
    """``(space, archs, input_shape, num_classes)``: ``cells`` architectures of ``nb201`` or ``zen``."""
    import numpy as np

    from tfnas.proxies.base import get_proxy
    from tfnas.registry import SPACES

    if space_name == "nb201":
        space = SPACES.get("nb201")()
        rng = np.random.default_rng(0)
        archs = [space.from_index(int(i)) for i in rng.choice(space.size, cells, replace=False)]
        return space, archs, (32, 32, 3), 100
    from tfnas.methods.evolution import EvolutionSearch, Limits

    space = SPACES.get("zen")()
    evo = EvolutionSearch(space, get_proxy("params"), proxy_name="params", population=64, iterations=1,
                          limits=Limits(max_params=1e6, max_layers=18))
    rng, archs, parent = np.random.default_rng(0), [], space.start_arch
    while len(archs) < cells:  # a random walk of in-budget candidates, as evolution sees them
        child = space.split_long_blocks(space.mutate(space.mutate(parent, rng), rng))
        if not evo.reject_reason(child):
            archs.append(child)
            parent = child
    return space, archs, (32, 32, 3), 10


def run(space: str = "nb201", proxies: Sequence[str] = (), cells: int = 50, batch: int = 64) -> None:
    """Emits one ``proxy`` line per proxy: first-call seconds, then median/mean over the other cells.

    Args:
        space: ``nb201`` or ``zen``.
        proxies: proxy names (empty: every proxy that applies to the space).
        cells: candidates scored per proxy (the first one, with tracing, is reported apart).
        batch: images per proxy batch.
    """
    import numpy as np

    from tfnas.proxies.base import get_proxy

    net_space, archs, shape, classes = candidates(space, cells)
    names = list(proxies) or list(NB201_PROXIES if space == "nb201" else ZEN_PROXIES)
    for name in names:
        proxy = get_proxy(name)
        srng = np.random.default_rng(1)
        try:
            start = time.perf_counter()
            proxy.score_arch(net_space, archs[0], num_classes=classes, input_shape=shape, batch_size=batch, rng=srng)
            first = time.perf_counter() - start
            times = []
            for arch in archs[1:]:
                start = time.perf_counter()
                proxy.score_arch(net_space, arch, num_classes=classes, input_shape=shape, batch_size=batch, rng=srng)
                times.append(time.perf_counter() - start)
        except (TypeError, ValueError) as exc:
            emit("proxy", space=space, proxy=name, error=str(exc))
            continue
        emit("proxy", space=space, proxy=name, batch=batch, candidates=len(times), first_s=round(first, 3),
             median_s=round(float(np.median(times)), 4), mean_s=round(float(np.mean(times)), 4),
             per_s=round(len(times) / sum(times), 2), machine=machine())
