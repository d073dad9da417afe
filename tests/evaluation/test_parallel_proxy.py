"""Proxy scoring through an executor: a batch is handed out one architecture per task, the costliest
first, and the scores come back in the batch's order, the same as in one process."""

from __future__ import annotations

from typing import Any, Iterator, List, Sequence

import numpy as np
import pytest

from tests.toy_space import ToyProxy, ToySpace
from tfnas.evaluation.executors import Executor, ExecutorError, LocalExecutor, run_chunk
from tfnas.evaluation.proxy import ParallelProxyEvaluator


class InProcessPool(Executor):
    """A two-worker executor that runs its tasks here, in the order handed out, and records them."""

    name = "process"

    def __init__(self, drop_last: bool = False):
        super().__init__(workers=2)
        self.handed_out: List[str] = []
        self.chunks: List[int] = []
        self.drop_last, self.ran_to_the_end = drop_last, False

    def map(self, job, items):
        return list(self.imap(job, items))

    def imap(self, job, items: Sequence[Any], chunk: int = 0) -> Iterator[Any]:
        self.chunks.append(chunk)
        for item in items[:-1] if self.drop_last else items:
            self.handed_out.append(item[0])
            yield from run_chunk(job.key, job.payload, [item], tensorflow=False)
        self.ran_to_the_end = True  # an executor closed after its last result would stop its workers


def score(executor, archs, seed=0):
    evaluator = ParallelProxyEvaluator(executor, ToySpace(), ToyProxy(), num_classes=10, input_shape=(8, 8, 3),
                                       batch_size=4)
    rngs = [np.random.default_rng([seed, k]) for k in range(len(archs))]
    return evaluator.evaluate(archs, rngs)


def test_the_costliest_architectures_go_first_and_the_scores_keep_the_batch_order():
    archs = [(4, 4, 4), (30, 30, 30), (1, 2, 3), (10, 10, 10), (30, 30, 30), (64, 1, 1)]
    pool = InProcessPool()
    pooled = score(pool, archs)
    assert pooled == score(LocalExecutor(), archs)  # each architecture draws from its own generator
    space = ToySpace()
    assert pool.handed_out == [space.encode(archs[k]) for k in (1, 4, 5, 3, 0, 2)]  # by FLOPs, ties in order
    assert pool.chunks == [1]  # one architecture per task: a worker that finishes early takes the next
    assert pool.ran_to_the_end


def test_an_executor_that_returns_too_few_results_is_an_executor_error():
    with pytest.raises(ExecutorError, match="returned 2 results for 3 architectures"):
        score(InProcessPool(drop_last=True), [(4, 4, 4), (8, 8, 8), (1, 1, 1)])
