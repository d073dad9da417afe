"""Zero-shot scoring as an evaluator: a proxy applied to a batch of architectures."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from tfnas.evaluation.base import Evaluator
from tfnas.evaluation.executors import Executor, ExecutorError, Failed, Job, prepare_job


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


class ProxyJob(Job):
    """The picklable recipe of proxy scoring in a worker: items are ``(arch string, generator)``,
    results ``(score, seconds)``.

    ``prime`` (an arch string and a generator) is scored once when the job is built, before any
    item, so that state a proxy draws lazily on its first call is drawn the same way in every
    worker (and in the local executor).
    """

    def __init__(self, space: Any, proxy: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                 batch_size: int, prime: Optional[Tuple[str, np.random.Generator]] = None):
        self.space, self.proxy, self.prime = space, proxy, prime
        self.num_classes, self.input_shape, self.batch_size = int(num_classes), tuple(input_shape), int(batch_size)

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        evaluator = ProxyEvaluator(self.space, self.proxy, num_classes=self.num_classes,
                                   input_shape=self.input_shape, batch_size=self.batch_size)
        decode = self.space.decode
        if self.prime is not None:
            evaluator.evaluate([decode(self.prime[0])], rngs=[self.prime[1]])

        def run(items: Sequence[Any]) -> List[Any]:
            scores = evaluator.evaluate([decode(a) for a, _ in items], rngs=[r for _, r in items])
            return list(zip(scores, evaluator.seconds))

        return run


class ParallelProxyEvaluator(Evaluator):
    """Proxy scoring through an executor: the same scores as :class:`ProxyEvaluator` given the
    same per-architecture generators, whatever the executor and its number of workers.

    For an executor other than ``local``, build it before the space or proxy is used in this
    process (the job is pickled here); the local executor scores with the objects themselves.

    Attributes:
        evaluated: architectures scored so far; failed: those whose scoring raised (score NaN).
        seconds: wall seconds of each architecture of the last ``evaluate`` call (in its worker).
    """

    def __init__(self, executor: Executor, space: Any, proxy: Any, *, num_classes: int,
                 input_shape: Tuple[int, int, int], batch_size: int,
                 prime: Optional[Tuple[str, np.random.Generator]] = None):
        self.executor, self.space = executor, space
        job = ProxyJob(space, proxy, num_classes=num_classes, input_shape=input_shape, batch_size=batch_size,
                       prime=prime)
        self.job: Any = job if executor.name == "local" else prepare_job(job)
        self.evaluated = self.failed = 0
        self.seconds: List[float] = []

    def evaluate(self, archs: Sequence[Any], rngs: Optional[Sequence[np.random.Generator]] = None) -> List[float]:
        """Scores of ``archs``; ``rngs`` (one generator per architecture) is required."""
        if rngs is None or len(rngs) != len(archs):
            raise ValueError("parallel scoring needs one generator per architecture "
                             f"(got {None if rngs is None else len(rngs)} for {len(archs)})")
        items = [(self.space.encode(a), r) for a, r in zip(archs, rngs)]
        if self.executor.name == "local" or self.executor.workers < 2 or len(items) < 2:
            results = self.executor.map(self.job, items)
        else:
            results = self._costliest_first(archs, items)
        scores, self.seconds = [], []
        for res in results:
            if isinstance(res, Failed):
                self.failed += 1
                scores.append(float("nan"))
                self.seconds.append(0.0)
            else:
                scores.append(float(res[0]))
                self.seconds.append(float(res[1]))
        self.evaluated += len(archs)
        return scores

    def _costliest_first(self, archs: Sequence[Any], items: List[Any]) -> List[Any]:
        """The results of ``items``, in their order, computed one item per task with the costliest
        architectures (by the space's analytic FLOPs) handed out first: the batch ends when its last
        item does, and a long item started last would leave the other workers idle meanwhile. An
        item's result depends on the item alone (its own generator), not on when it runs."""
        costs = [self.space.flops(a) for a in archs]
        order = sorted(range(len(items)), key=lambda k: (-costs[k], k))
        with contextlib.closing(self.executor.imap(self.job, [items[k] for k in order], chunk=1)) as stream:
            handed_back = list(stream)  # read to its end: an executor stopped early stops its workers
        if len(handed_back) != len(items):
            raise ExecutorError(f"the {self.executor.name} executor returned {len(handed_back)} results for "
                                f"{len(items)} architectures")
        results: List[Any] = [None] * len(items)
        for k, result in zip(order, handed_back):
            results[k] = result
        return results
