"""Cores and GPUs for worker processes: how many workers, which GPUs this process sees, how workers share them.

TensorFlow takes all the memory of every GPU it sees when it starts, so workers that share a
machine's GPUs (with each other, or with the process that started them) are given one GPU each
where there are enough, and take memory as they need it (:data:`GPU_GROWTH_ENV`).
Imports no TensorFlow until :func:`visible_gpu_ids` is called.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Tuple

from tfnas.checks import check_int

__all__ = ["GPU_GROWTH_ENV", "ONEDNN_ENV", "cpu_count", "gpus_per_actor", "parent_onednn", "resolve_workers",
           "share_gpus_with_workers", "visible_gpu_ids", "warn_oversubscribed"]

#: TensorFlow's switch for taking GPU memory as needed instead of all of it at start-up.
GPU_GROWTH_ENV = "TF_FORCE_GPU_ALLOW_GROWTH"

logger = logging.getLogger(__name__)


def visible_gpu_ids() -> Tuple[str, ...]:
    """The ids (``CUDA_VISIBLE_DEVICES`` entries) of the GPUs TensorFlow sees in this process, in
    its order: the entries of ``CUDA_VISIBLE_DEVICES`` when it is set, else ``"0"``, ``"1"``, ...;
    empty without GPUs. Loads TensorFlow (quietly) if nothing has yet: the workers would see the GPUs."""
    from tfnas.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    listed = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ and len(listed) >= count:
        return tuple(listed[:count])  # CUDA stops at the first entry it cannot use; the rest are not visible
    return tuple(str(i) for i in range(count))


def gpus_per_actor(workers: int, gpus: int) -> float:
    """The GPU share each of ``workers`` Ray actors asks for on ``gpus`` GPUs: 1 where every actor
    has a GPU of its own, else ``1 / ceil(workers / gpus)`` (two actors on a GPU ask for 0.5 each), so
    that all of them start; asking for a whole GPU each, the actors beyond the GPUs would wait forever."""
    if gpus <= 0:
        return 0.0
    return 1.0 / max(1, math.ceil(workers / gpus))


def share_gpus_with_workers(executor: str) -> None:
    """For a command whose evaluations run on worker processes (``[run] executor`` other than
    ``local``): this process's TensorFlow takes GPU memory as it needs it, leaving the rest to the
    workers on the same GPUs (the user's own ``TF_FORCE_GPU_ALLOW_GROWTH`` wins). Before TensorFlow
    loads, through the environment; once it has, for each GPU as long as TensorFlow has not used it."""
    if executor == "local":
        return
    os.environ.setdefault(GPU_GROWTH_ENV, "true")
    if "tensorflow" in sys.modules and os.environ[GPU_GROWTH_ENV].strip().lower() == "true":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except (RuntimeError, ValueError):  # TensorFlow has already set up its GPUs: too late to change
                pass


def cpu_count() -> int:
    """CPU cores this process may use (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int, gpus: int = 0) -> int:
    """``[run] workers``: ``0`` means one per GPU when GPUs are visible, else one per CPU core."""
    workers = check_int(workers, "workers", low=0, message="workers must be an integer >= 0 (0: one per GPU, else "
                        "per core); got {value!r}")
    if workers > 0:
        return workers
    return gpus if gpus > 0 else cpu_count()


def warn_oversubscribed(workers: int, threads: int = 0) -> None:
    """A warning for far more worker processes on this machine than it has cores: each starts its own
    TensorFlow (about 0.5 GB) and they take turns on the cores (64 workers on 2 cores measured 10x
    slower than one process, docs/SCALING.md); or for far more threads set for them than cores."""
    cores = cpu_count()
    if workers > 2 * cores:
        logger.warning("[run] workers = %d on %d CPU core(s): each worker process holds its own TensorFlow (about "
                       "0.5 GB) and they share the cores, so this is slower than workers = %d", workers, cores, cores)
    elif threads > 0 and workers * threads > 2 * cores:
        logger.warning("[run] worker_threads = %d for %d workers on %d CPU core(s): their %d TensorFlow threads take "
                       "turns on the cores; worker_threads = %d gives each worker its share", threads, workers, cores,
                       workers * threads, max(1, cores // workers))


ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def parent_onednn() -> str:
    """The oneDNN setting workers must share with this process to compute what it computes (its
    kernels round differently from TensorFlow's own): ``"1"``/``"0"`` as TensorFlow runs here once it
    is loaded, else this process's ``TF_ENABLE_ONEDNN_OPTS`` (``""`` when unset: TensorFlow's default,
    which depends on the CPU, in both)."""
    if "tensorflow" in sys.modules:
        try:
            from tensorflow.python.util import _pywrap_util_port  # the flag TensorFlow read when it loaded

            return "1" if _pywrap_util_port.IsMklEnabled() else "0"
        except (ImportError, AttributeError):  # pragma: no cover - another TensorFlow layout
            pass
    return os.environ.get(ONEDNN_ENV, "")
