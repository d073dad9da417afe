"""Zero-shot scoring as an evaluator: a proxy applied to a batch of architectures."""

from __future__ import annotations

import time
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from tfnas.evaluation.base import Evaluator


class ProxyEvaluator(Evaluator):
    """``evaluate(archs) -> scores`` (higher is better): ``proxy`` on networks of ``space``.

    Args:
        space, proxy: what is scored and how (``proxy.score_arch(space, arch, ...)``).
        num_classes, input_shape: the scored networks' head and input.
        batch_size: images per proxy batch.
        rng: the generator of the proxy's random draws (inputs, weights) when ``evaluate`` is
            not given one generator per architecture.

    Attributes:
        evaluated: architectures scored so far.
        seconds: wall seconds of each architecture of the last ``evaluate`` call.
    """

    def __init__(self, space: Any, proxy: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                 batch_size: int, rng: Optional[np.random.Generator] = None):
        self.space, self.proxy = space, proxy
        self.num_classes, self.input_shape, self.batch_size = int(num_classes), tuple(input_shape), int(batch_size)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.evaluated = 0
        self.seconds: List[float] = []

    def evaluate(self, archs: Sequence[Any], rngs: Optional[Sequence[np.random.Generator]] = None) -> List[float]:
        """Scores of ``archs``; with ``rngs``, architecture ``k`` draws from ``rngs[k]`` (so its score
        does not depend on what was scored before it), else all draw from ``self.rng`` in order."""
        if rngs is not None and len(rngs) != len(archs):
            raise ValueError(f"got {len(rngs)} generators for {len(archs)} architectures")
        scores, self.seconds = [], []
        for k, arch in enumerate(archs):
            start = time.perf_counter()
            score = self.proxy.score_arch(self.space, arch, num_classes=self.num_classes,
                                          input_shape=self.input_shape, batch_size=self.batch_size,
                                          rng=self.rng if rngs is None else rngs[k])
            self.seconds.append(time.perf_counter() - start)
            scores.append(float(score))
            self.evaluated += 1
        return scores
