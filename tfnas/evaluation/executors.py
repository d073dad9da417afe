"""Executors: where the batches an evaluator is handed actually run.

A method hands a batch of items (architectures with their own random generators) to an
executor together with a :class:`Job`, a picklable recipe that builds the function evaluating
them. The executor returns one result per item, **in submission order**, so the executor and its
number of workers change how fast a batch is evaluated and never what comes back:

- :class:`LocalExecutor` (``[run] executor = local``): in this process, one item after another.
- :class:`ProcessExecutor` (``process``): a pool of ``spawn``-started worker processes. Each
  worker builds a job's evaluation function once (the TensorFlow state, traced functions and
  caches live in the worker; the four jobs used last are kept) and then takes items in chunks,
  so there is no process start and no retrace per candidate. A worker that dies (killed, out of
  memory) breaks the pool; the pool is started again and the unfinished chunks are resubmitted
  (up to ``max_restarts`` times).
- :class:`~tfnas.evaluation.ray_executor.RayExecutor` (``ray``): the same on Ray actors, locally
  or on a cluster.

An item whose evaluation raises becomes a :class:`Failed` result (logged with its error); it is
never lost and never stops the batch. Ctrl-C stops the workers and re-raises in the caller.
Each worker runs TensorFlow with ``threads`` intra-op threads (``[run] worker_threads``; 0, its default,
is TensorFlow's own choice, as in the parent, which keeps scores bit-identical to the local executor's):
on a CPU, ``workers x threads`` at or below the cores is fastest (docs/SCALING.md).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import math
import os
import pickle
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Sequence, Tuple

from tfnas.checks import check_int
from tfnas.evaluation.failed import Failed, picklable
from tfnas.evaluation.gpus import (GPU_GROWTH_ENV, ONEDNN_ENV, cpu_count, parent_onednn, resolve_workers,
                                   share_gpus_with_workers, visible_gpu_ids, warn_oversubscribed)
from tfnas.evaluation.tempdirs import make_temp_dir, release, start_resource_tracker
from tfnas.lru import LRUCache

logger = logging.getLogger(__name__)

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "Failed", "Job", "LocalExecutor", "PreparedJob",
           "ProcessExecutor", "cpu_count", "make_executor", "prepare_job", "resolve_workers"]

EXECUTORS = ("local", "process", "ray")


class ExecutorError(RuntimeError):
    """The workers could not finish a batch (they kept dying, or the cluster is unreachable)."""


class RayAddressError(ExecutorError):
    """No usable Ray cluster at ``[run] ray_address = address``: the address is what to fix. ``detail``: which
    cluster an ``auto`` address found; ``why``: what is wrong there and what to do. :meth:`said_as` words it
    as the user set it (``--set run.ray_address=...``, a file's key, a tool's flag)."""

    def __init__(self, address: str, why: str, detail: str = ""):
        self.address, self.why, self.detail = address, why, detail
        super().__init__(self.said_as(f"[run] ray_address = {address}"))

    def said_as(self, setting: str) -> str:
        return f"{setting}{f' ({self.detail})' if self.detail else ''}: {self.why}"


class Job(abc.ABC):
    """A picklable recipe: :meth:`build` returns ``run(items) -> results`` (same length, in order).

    ``build`` runs once per worker (and once in the local executor); what it returns may hold
    TensorFlow state and is never pickled. A job must be picklable *before* it is built.

    A worker imports TensorFlow (quietly, with its thread settings) before it unpickles the first
    job that :attr:`needs_tensorflow`; a job that does not use TensorFlow sets it to ``False``, and
    its workers start in a fraction of the time.
    """

    needs_tensorflow: bool = True

    @abc.abstractmethod
    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        """The evaluation function of this job."""


def _evaluate_each(run: Callable[[Sequence[Any]], List[Any]], items: Sequence[Any]) -> List[Any]:
    """``run`` on one item at a time; an item that raises becomes :class:`Failed`."""
    out: List[Any] = []
    for item in items:
        try:
            results = run([item])
        except Exception as exc:  # a failed candidate is a result, not a lost one
            logger.warning("evaluation failed (%s: %s); recorded as failed", type(exc).__name__, exc)
            results = [Failed(f"{type(exc).__name__}: {exc}", picklable(exc))]
        if not isinstance(results, (list, tuple)) or len(results) != 1:  # the job's defect, not a failed item
            raise ExecutorError(f"a job's run() must return a list of one result per item; it returned "
                                f"{str(results)[:200]} for 1 item")
        out.append(results[0])
    return out


def in_order(chunks: Generator[Tuple[int, List[Any]], None, None]) -> Iterator[Any]:
    """The items of ``(chunk index, results)`` pairs that arrive in any order, in chunk order:
    each chunk's results as soon as every chunk before it has arrived. Closing this closes
    ``chunks`` (whose executor then stops its unfinished work)."""
    arrived: Dict[int, List[Any]] = {}
    following = 0
    try:
        for k, results in chunks:
            arrived[k] = results
            while following in arrived:
                yield from arrived.pop(following)
                following += 1
    finally:
        chunks.close()


def chunk_ranges(n: int, workers: int, chunk: int) -> List[Tuple[int, int]]:
    """``(start, stop)`` ranges over ``n`` items: ``chunk`` items each, or (``chunk = 0``) about
    four chunks per worker so that a slow chunk does not leave the other workers idle."""
    size = chunk if chunk > 0 else max(1, math.ceil(n / (4 * max(1, workers))))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


class Executor(abc.ABC):
    """``map(job, items) -> results``: one result per item, in order (module docstring)."""

    name = ""

    def __init__(self, workers: int = 1):
        self.workers = check_int(workers, "workers", type(self).__name__, low=1)

    @abc.abstractmethod
    def map(self, job: "Job | PreparedJob", items: Sequence[Any]) -> List[Any]:
        """Results of ``job`` on ``items``, in order; failed items are :class:`Failed`."""

    def imap(self, job: "Job | PreparedJob", items: Sequence[Any], chunk: int = 0) -> Iterator[Any]:
        """The results of :meth:`map`, in order. Executors with workers (process, Ray) yield each
        as soon as it and every result before it are done, while the workers go on with the items
        after it (a caller keeps what finished); ``chunk`` is then their items per task (0 = their
        own choice), and closing the iterator early stops their unfinished items. This default (the
        local executor, where nothing runs beside the caller) evaluates every item first."""
        yield from self.map(job, items)

    def close(self) -> None:
        """Stops the workers (idempotent)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs every item in this process (the reference for what the other executors return).

    A :class:`Job` is built from the object itself, so its state stays visible to the caller (and
    nothing needs to pickle); a :class:`PreparedJob` is built from its pickle, as in a worker.
    """

    name = "local"

    def __init__(self) -> None:
        super().__init__(1)
        self._built: Dict[Any, Tuple[Any, Callable]] = {}

    def map(self, job: "Job | PreparedJob", items: Sequence[Any]) -> List[Any]:
        key = job.key if isinstance(job, PreparedJob) else id(job)
        entry = self._built.get(key)
        if entry is None or (not isinstance(job, PreparedJob) and entry[0] is not job):
            built = pickle.loads(job.payload).build() if isinstance(job, PreparedJob) else job.build()
            entry = self._built[key] = (job, built)  # the job is kept so that its id is not reused
        return _evaluate_each(entry[1], items)


# -- worker side (process pool and Ray actors) ---------------------------------------------------
#: The jobs this worker has built, by key; bounded, because a method may hand out a new job per
#: round (SLNAS: one per epoch, with that epoch's weights). Each chunk carries its job's payload, so
#: an evicted job is built again if it comes back.
_WORKER_JOBS: "LRUCache[Callable]" = LRUCache("worker jobs", 4)


_WORKER_THREADS = 0  # this worker's TensorFlow intra-op threads (init_worker)
_WORKER_TF_READY = False  # load_tensorflow has run in this worker


def init_worker(threads: int, onednn: str = "", gpus: Sequence[str] = (), slots: Any = None,
                temp_root: str = "") -> None:
    """Prepares a fresh worker process: Ctrl-C left to the parent (which stops the workers), the
    parent's oneDNN setting ``onednn`` (:func:`parent_onednn`; ``""`` = this process's environment),
    TensorFlow's C++ log lines off unless the user set them, and ``threads`` TensorFlow intra-op
    threads (0 = TensorFlow's default, one per core, as in the parent) for when a job needs
    TensorFlow (:func:`load_tensorflow`).

    With ``gpus`` (the parent's GPU ids, :func:`visible_gpu_ids`) the worker sees one of them only:
    the ``k``-th worker to start (``slots``, a shared counter) takes ``gpus[k % len(gpus)]``. Every
    worker's TensorFlow takes GPU memory as it needs it (``TF_FORCE_GPU_ALLOW_GROWTH``; by default
    it would take all of it, and a second worker on the GPU, or the parent, would find none).

    With ``temp_root`` the worker's temp files (AutoGraph's converted functions, which TensorFlow
    removes only at a normal exit, not when a stopped pool's worker is terminated) go to a folder of
    its own inside it; the pool removes ``temp_root`` when its workers have ended."""
    import threading

    global _WORKER_THREADS
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # (how the pool stops its workers: at once)
    if onednn:
        os.environ[ONEDNN_ENV] = onednn
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault(GPU_GROWTH_ENV, "true")
    if gpus and slots is not None:
        with slots.get_lock():
            k = slots.value
            slots.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus[k % len(gpus)])
    _WORKER_THREADS = int(threads)
    if temp_root:
        tempfile.tempdir = tempfile.mkdtemp(prefix="worker-", dir=temp_root)


def _init_pool_worker(*args: Any) -> None:
    """:func:`init_worker` for a process-pool worker, which also ends when its parent does, even after
    ``kill -9`` (:func:`tfnas.interrupts.end_with_parent`; Ray ends its own workers)."""
    from tfnas.interrupts import end_with_parent

    end_with_parent()
    init_worker(*args)


def load_tensorflow() -> None:
    """Worker side: imports TensorFlow quietly (if a job has not already) and gives it the worker's
    threads, once per worker."""
    from tfnas.runtime import import_tensorflow_quietly

    global _WORKER_TF_READY
    if _WORKER_TF_READY:
        return
    import_tensorflow_quietly()
    import tensorflow as tf

    _WORKER_TF_READY = True
    if _WORKER_THREADS <= 0:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(_WORKER_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # an earlier job (one that said it needs no TensorFlow) already ran TensorFlow ops
        logger.warning("this worker's TensorFlow was started by an earlier job; it keeps its threads instead of %d",
                       _WORKER_THREADS)


def run_chunk(key: str, payload: bytes, items: Sequence[Any], tensorflow: bool = True) -> List[Any]:
    """Worker side: the job ``payload`` (built once per worker, remembered by ``key``) on ``items``;
    TensorFlow is loaded before the job is unpickled when it needs it (``tensorflow``)."""
    def build() -> Callable:
        if tensorflow:
            load_tensorflow()
        return pickle.loads(payload).build()

    run = _WORKER_JOBS.get_or_create(key, build)
    return _evaluate_each(run, items)


@dataclass(frozen=True)
class PreparedJob:
    """A job pickled once: ``key`` names it in the workers' caches, ``payload`` is the pickle.

    Prepare a job before its objects are used in this process: some (e.g. a space whose fast
    paths cache traced functions) no longer pickle once they have run.
    """

    key: str
    payload: bytes
    tensorflow: bool = True  # the job's needs_tensorflow


def prepare_job(job: "Job | PreparedJob") -> PreparedJob:
    """``job`` pickled (a :class:`PreparedJob` is returned as it is)."""
    if isinstance(job, PreparedJob):
        return job
    try:
        payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ExecutorError(f"{type(job).__name__} cannot be sent to worker processes: {exc}") from exc
    return PreparedJob(hashlib.sha256(payload).hexdigest()[:24], payload, bool(getattr(job, "needs_tensorflow", True)))


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawn-started processes (module docstring).

    Args:
        workers: worker processes (>= 1).
        threads: TensorFlow intra-op threads per worker (0 = TensorFlow's default, as in this process).
        chunk: items per task (0 = about four tasks per worker and batch).
        max_restarts: how often a broken pool (a dead worker) is started again within one ``map``.
        gpus: GPU ids to spread the workers over, one per worker in turn (:func:`init_worker`);
            empty: the workers see what this process sees.
    """

    name = "process"

    def __init__(self, workers: int, threads: int = 1, chunk: int = 0, max_restarts: int = 3,
                 gpus: Sequence[str] = ()):
        super().__init__(workers)
        self.gpus = tuple(str(g) for g in gpus)
        self.threads = check_int(threads, "threads", "ProcessExecutor", low=0)
        self.chunk = check_int(chunk, "chunk", "ProcessExecutor", low=0)
        self.max_restarts = check_int(max_restarts, "max_restarts", "ProcessExecutor", low=0)
        self.restarts = 0
        self._pool: Any = None
        self._temp_dir = ""  # the workers' temp files, removed when they have ended (init_worker)
        self._temp_lock: Any = None  # (tfnas.evaluation.tempdirs: a later run removes the folder after kill -9)

    def _start(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            start_resource_tracker()
            context = multiprocessing.get_context("spawn")
            slots = context.Value("i", 0)  # each worker of this pool takes the next GPU of self.gpus
            self._temp_dir, self._temp_lock = make_temp_dir("tfnas-pool-")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                             initializer=_init_pool_worker,
                                             initargs=(self.threads, parent_onednn(), self.gpus, slots,
                                                       self._temp_dir))
        return self._pool

    def map(self, job: "Job | PreparedJob", items: Sequence[Any]) -> List[Any]:
        return list(self.imap(job, items))

    def imap(self, job: "Job | PreparedJob", items: Sequence[Any], chunk: int = 0) -> Iterator[Any]:
        items = list(items)
        ranges = chunk_ranges(len(items), self.workers, chunk or self.chunk)
        yield from in_order(self._chunks(prepare_job(job), items, ranges))

    def _chunks(self, prepared: "PreparedJob", items: List[Any], ranges: List[Tuple[int, int]]
                ) -> Generator[Tuple[int, List[Any]], None, None]:
        """``(chunk index, its results)`` as chunks finish; a broken pool (a dead worker) is started
        again and its unfinished chunks resubmitted. Ctrl-C, an error or an iterator closed before
        the end stops the workers."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        key, payload, tensorflow = prepared.key, prepared.payload, prepared.tensorflow
        finished: set = set()
        restarts = 0
        try:
            while len(finished) < len(ranges):
                pool = self._start()
                pending = {pool.submit(run_chunk, key, payload, items[a:b], tensorflow): k
                           for k, (a, b) in enumerate(ranges) if k not in finished}
                broken = False
                while pending and not broken:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        k = pending.pop(fut)
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        finished.add(k)
                        yield k, result
                if broken:
                    restarts += 1
                    self.restarts += 1
                    self._kill()
                    left = len(ranges) - len(finished)
                    if restarts > self.max_restarts:
                        raise ExecutorError(f"worker processes died {restarts} times while evaluating a batch "
                                            f"({left} of {len(ranges)} chunks unfinished); giving up")
                    logger.warning("a worker process died; restarting the pool and resubmitting %d chunk(s)", left)
        finally:
            if len(finished) < len(ranges):  # Ctrl-C, an error, or a caller that stopped reading
                self._kill()

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = [p for p in list(getattr(pool, "_processes", {}).values()) if p.is_alive()]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + 5.0  # a worker still alive 5 s after SIGTERM gets SIGKILL
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        finally:  # also when a second Ctrl-C or SIGTERM ends the wait
            self._remove_temp_dir()

    def close(self) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        except BaseException:  # Ctrl-C or SIGTERM while the workers end: stop them, as an interrupted map does
            self._kill()
            raise
        finally:
            self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        folder, self._temp_dir = self._temp_dir, ""
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        release(self._temp_lock)
        self._temp_lock = None

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:  # Ctrl-C or an error in the caller: items still running are not waited for
            self._kill()
        self.close()


def make_executor(name: str, workers: int = 0, *, threads: int = 0, address: str = "local",
                  ray_init: Optional[Dict[str, Any]] = None, gpus: Optional[Sequence[str]] = None) -> Executor:
    """The executor ``name`` (``local``, ``process``, ``ray``) with ``workers`` workers (0 = auto:
    one per GPU, else one per core). A process pool spreads its workers over ``gpus`` (``None``:
    :func:`visible_gpu_ids`); Ray gives its actors GPUs itself."""
    if name == "local":
        return LocalExecutor()
    share_gpus_with_workers(name)
    if name == "process":
        gpus = visible_gpu_ids() if gpus is None else tuple(gpus)
        workers = resolve_workers(workers, len(gpus))
        if gpus:
            logger.info("process executor: %d worker(s) over GPU(s) %s", workers, ", ".join(gpus))
    if name in ("process", "ray") and (name == "process" or address == "local"):
        warn_oversubscribed(resolve_workers(workers), threads)
    if name == "process":
        return ProcessExecutor(workers, threads=threads, gpus=gpus or ())
    if name == "ray":
        from tfnas.evaluation.ray_executor import RayExecutor

        return RayExecutor(workers, threads=threads, address=address, init_kwargs=ray_init)
    raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
