"""Jobs for the executor tests (importable by spawned worker processes and Ray actors)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, List, Sequence

import numpy as np

from tfnas.evaluation.executors import Job


class NoisySquare(Job):
    """``x -> x * x + rng.normal()`` from the item's own generator; a negative ``x`` raises.
    Each item takes at least ``delay`` seconds (so that every worker gets some)."""

    needs_tensorflow = False

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        def run(items: Sequence[Any]) -> List[Any]:
            out = []
            for x, rng in items:
                if x < 0:
                    raise ValueError(f"negative item {x}")
                time.sleep(self.delay)
                out.append((x * x + float(rng.normal()), os.getpid()))
            return out
        return run


class Niceness(Job):
    """``item -> the niceness of the process that evaluated it``."""

    needs_tensorflow = False

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        return lambda items: [os.nice(0) for _ in items]


class TensorflowState(Job):
    """``item -> (whether TensorFlow is loaded in the worker, its intra-op threads or None)``;
    ``needs`` sets the job's :attr:`~tfnas.evaluation.executors.Job.needs_tensorflow`; with
    ``imports`` the job imports TensorFlow itself when it is built."""

    def __init__(self, needs: bool, imports: bool = False):
        self.needs_tensorflow, self.imports = needs, imports

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        if self.imports:
            import tensorflow  # noqa: F401

        def run(items: Sequence[Any]) -> List[Any]:
            tf = sys.modules.get("tensorflow")
            threads = tf.config.threading.get_intra_op_parallelism_threads() if tf is not None else None
            return [(tf is not None, threads) for _ in items]
        return run


class DieOnce(Job):
    """The worker evaluating item ``victim`` exits abruptly the first time (a marker file remembers)."""

    needs_tensorflow = False

    def __init__(self, marker: str, victim: int):
        self.marker, self.victim = marker, victim

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        def run(items: Sequence[Any]) -> List[Any]:
            out = []
            for x in items:
                if x == self.victim and not os.path.exists(self.marker):
                    with open(self.marker, "w") as fh:
                        fh.write(str(os.getpid()))
                    os._exit(3)
                out.append(x + 1)
            return out
        return run


class Sleepy(Job):
    """Each item sleeps ``seconds``; writes its pid to ``folder`` so a test can find the workers."""

    needs_tensorflow = False

    def __init__(self, seconds: float, folder: str):
        self.seconds, self.folder = seconds, folder

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        open(os.path.join(self.folder, f"worker-{os.getpid()}"), "w").close()

        def run(items: Sequence[Any]) -> List[Any]:
            time.sleep(self.seconds)
            return list(items)
        return run


class SleepFor(Job):
    """``seconds -> (seconds, the time.time() its evaluation finished)``: each item sleeps its own value."""

    needs_tensorflow = False

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        def run(items: Sequence[Any]) -> List[Any]:
            out = []
            for seconds in items:
                time.sleep(seconds)
                out.append((seconds, time.time()))
            return out
        return run


class DeviceEnv(Job):
    """``folder -> (worker pid, its CUDA_VISIBLE_DEVICES, its TF_FORCE_GPU_ALLOW_GROWTH)``, once
    ``meet`` workers have each left their pid in ``folder`` (up to 60 s): a worker holding an item
    waits for the others, so ``meet`` items one at a time reach ``meet`` different workers."""

    needs_tensorflow = False

    def __init__(self, meet: int = 1):
        self.meet = meet

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        def run(items: Sequence[Any]) -> List[Any]:
            out = []
            for folder in items:
                open(os.path.join(folder, str(os.getpid())), "w").close()
                deadline = time.monotonic() + 60
                while len(os.listdir(folder)) < self.meet and time.monotonic() < deadline:
                    time.sleep(0.05)
                env = (os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"))
                out.append((os.getpid(),) + env)
            return out
        return run


class StubbornSleepy(Sleepy):
    """A :class:`Sleepy` whose workers ignore SIGTERM (only SIGKILL stops them)."""

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return super().build()


def noisy_items(n: int, seed: int = 0) -> list:
    return [(x, np.random.default_rng([seed, x])) for x in range(n)]


class AlwaysDie(Job):
    """Every evaluation kills its worker (a candidate that always runs out of memory)."""

    needs_tensorflow = False

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        def run(items: Sequence[Any]) -> List[Any]:
            os._exit(9)
        return run


def count_pool_batches(monkeypatch, executor_cls: Any = None) -> List[int]:
    """Patches ``executor_cls.imap`` (default :class:`ProcessExecutor`; its ``map`` goes through it) to
    record the size of every batch it is handed; returns that list."""
    from tfnas.evaluation.executors import ProcessExecutor

    executor_cls = ProcessExecutor if executor_cls is None else executor_cls
    batches: List[int] = []
    pool_imap = executor_cls.imap

    def counting_imap(self, job, items, chunk=0):
        items = list(items)
        batches.append(len(items))
        return pool_imap(self, job, items, chunk)

    monkeypatch.setattr(executor_cls, "imap", counting_imap)
    return batches


def count_worker_items(monkeypatch, executor_cls: Any = None) -> List[int]:
    """Patches the chunk dispatch of ``executor_cls`` (default :class:`ProcessExecutor`; its ``map`` and
    ``imap`` both go through it) to record how many items every batch sends to the workers."""
    from tfnas.evaluation.executors import ProcessExecutor

    executor_cls = ProcessExecutor if executor_cls is None else executor_cls
    sent: List[int] = []
    chunks = executor_cls._chunks

    def counting_chunks(self, prepared, items, ranges):
        sent.append(len(items))
        return chunks(self, prepared, items, ranges)

    monkeypatch.setattr(executor_cls, "_chunks", counting_chunks)
    return sent


class OnednnState(Job):
    """``item -> whether TensorFlow runs with oneDNN's kernels in the worker``."""

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        from tensorflow.python.util import _pywrap_util_port

        enabled = bool(_pywrap_util_port.IsMklEnabled())
        return lambda items: [enabled for _ in items]


class Autographed(Job):
    """``item -> item`` through a ``tf.function`` that AutoGraph converts (it writes the converted
    source to a file in the temp folder, which TensorFlow removes when the process exits)."""

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        import tensorflow as tf

        @tf.function
        def doubled(x):
            total = tf.constant(0)
            for _ in tf.range(2):  # a loop AutoGraph converts
                total += x
            return total

        return lambda items: [int(doubled(tf.constant(item))) for item in items]


class TempFolder(Job):
    """``item -> the temp folder of the process that evaluated it``."""

    needs_tensorflow = False

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        import tempfile

        return lambda items: [tempfile.gettempdir() for _ in items]


class NoResult(Job):
    """A defective job: ``run`` returns nothing for its item."""

    needs_tensorflow = False

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        return lambda items: []
