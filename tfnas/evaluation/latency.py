"""Measured latency as an evaluator: the batch-1 LiteRT latency of an architecture on this machine.

:class:`LatencyMeasurer` builds the inference network of an architecture (freshly initialised
weights: latency does not depend on their values), converts it to TFLite
(:func:`tfnas.train.tflite.convert_tflite`, frozen-graph route; float32 by default, or float16 or
int8) and times ``invoke()`` with the LiteRT interpreter
(:func:`tfnas.train.litert.measure_latency`: ``warmup`` untimed runs, then the median and 90th
percentile of ``runs`` timed ones, with ``threads`` CPU threads). int8 models are calibrated on
labelled synthetic images (:mod:`tfnas.train.calibration`): the quantization ranges are then
meaningless for accuracy but the model runs the same integer kernels, which is what is timed.

Results are kept in a :class:`LatencyCache`, one JSON file per setup, ``<dir>/<hash>.json``,
where ``<hash>`` digests the setup (the space with its width/config, input shape, classes,
threads, quantization, runs, warm-up)::

    {"format": "tfnas.latency_cache/1", "kind": "latency", "recipe": {"space": "Nb201Space(...)", ...},
     "entries": {"|nor_conv_3x3~0|+...|": {"median_ms": 1.23, "p90_ms": 1.31, ...}, ...}}

The file is rewritten atomically after each measured architecture and read back at start, so a
second search (or a resumed one) measures nothing twice; a corrupted or foreign file is a
:class:`~tfnas.evaluation.training.TrainCacheError` naming it. Cached figures are those of the
machine (and its load) at the time they were measured: a cache is not portable between machines.

:class:`LatencyEvaluator` exposes the same through the evaluator seam: one
:class:`~tfnas.train.litert.LatencyStats` per architecture, in submission order.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfnas.checks import check_image_shape, check_int, positive_int
from tfnas.evaluation.base import Evaluator
from tfnas.evaluation.training import TrainCache
from tfnas.train.litert import LatencyStats, measure_latency
from tfnas.train.tflite import check_quantize

__all__ = ["LatencyCache", "LatencyEvaluator", "LatencyMeasurer", "LatencySetup", "measure"]

logger = logging.getLogger(__name__)

LATENCY_FORMAT = "tfnas.latency_cache/1"
_STATS_FIELDS = tuple(f.name for f in dataclasses.fields(LatencyStats))


class LatencyCache(TrainCache):
    """Measured latencies of one setup keyed by arch string, one JSON file (module docstring)."""

    FORMAT = LATENCY_FORMAT
    WHAT = "tfnas latency cache"


@dataclasses.dataclass(frozen=True)
class LatencySetup:
    """Everything besides the architecture that changes a measured latency.

    Attributes:
        input_shape: ``(H, W, C)`` of the one image per call.
        num_classes: classifier outputs.
        threads: LiteRT interpreter CPU threads.
        quantize: ``"none"`` (float32), ``"float16"`` or ``"int8"``.
        runs: timed ``invoke()`` calls (the median and p90 are over these).
        warmup: untimed calls first.
    """

    input_shape: Tuple[int, int, int] = (32, 32, 3)
    num_classes: int = 10
    threads: int = 1
    quantize: str = "none"
    runs: int = 50
    warmup: int = 5

    def __post_init__(self) -> None:
        shape = check_image_shape(self.input_shape, message="input_shape must be (H, W, C) with positive ints; "
                                                             "got {value!r}")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in shape))
        positive_int(self.num_classes, "num_classes", "LatencySetup")
        positive_int(self.threads, "threads", "LatencySetup")
        positive_int(self.runs, "runs", "LatencySetup")
        check_int(self.warmup, "warmup", "LatencySetup", low=0)
        check_quantize(self.quantize)


def check_stats(value: Any) -> None:
    """Validator of a cache entry: a mapping with the :class:`LatencyStats` fields, finite times."""
    if not isinstance(value, dict) or set(value) != set(_STATS_FIELDS):
        raise ValueError(f"expected a mapping with keys {', '.join(_STATS_FIELDS)}, got {value!r}")
    for key in ("median_ms", "p90_ms", "min_ms"):
        if not isinstance(value[key], (int, float)) or not math.isfinite(value[key]) or value[key] < 0:
            raise ValueError(f"{key} must be a finite time >= 0, got {value[key]!r}")


def _space_identity(space: Any) -> str:
    """The space with its width/config (its ``repr`` when that says more than the class name)."""
    text = repr(space)
    if " object at 0x" in text:
        text = f"{type(space).__module__}.{type(space).__qualname__}"
    return text


class LatencyMeasurer:
    """Batch-1 LiteRT latency of architectures of ``space`` under one :class:`LatencySetup`.

    Args:
        space: builds networks (``build(arch, num_classes, input_shape=...)``) and encodes
            architectures (the cache keys).
        setup: input, classes, threads, quantization, runs, warm-up.
        cache_dir: folder of the :class:`LatencyCache` (``None``: remember in memory only).
        seed: seed of the timed input image and of the int8 calibration images.

    Attributes:
        measured: architectures converted and timed by this object (the rest came from the cache).
        convert_seconds: wall seconds of each build + conversion, in order.
    """

    def __init__(self, space: Any, setup: LatencySetup = LatencySetup(), cache_dir: Optional[str] = None,
                 seed: int = 0):
        self.space, self.setup, self.seed = space, setup, int(seed)
        self.cache = LatencyCache(cache_dir, "latency", self.recipe(), check_stats) if cache_dir else None
        self._memory: Dict[str, Dict[str, Any]] = {}
        self.measured = 0
        self.convert_seconds: List[float] = []
        self._calibration = None

    def recipe(self) -> Dict[str, Any]:
        """The cache key of the setup, JSON-ready (the arch string is the entry's key)."""
        return {"space": _space_identity(self.space), "seed": self.seed, **dataclasses.asdict(self.setup)}

    def _flatbuffer(self, arch: Any) -> bytes:
        from tfnas.train.export import inference_model
        from tfnas.train.tflite import convert_tflite

        s = self.setup
        calibration = None
        if s.quantize == "int8":
            if self._calibration is None:
                from tfnas.train.calibration import SyntheticCalibrationWarning, calibration_images

                with warnings.catch_warnings():  # the ranges do not matter for timing (module docstring)
                    warnings.simplefilter("ignore", SyntheticCalibrationWarning)
                    self._calibration = calibration_images(None, s.input_shape, num_images=8, seed=self.seed).images
            calibration = self._calibration
        model = inference_model(self.space.build(arch, s.num_classes, input_shape=s.input_shape))
        try:
            return convert_tflite(model, s.quantize, calibration, s.input_shape, via="frozen")
        finally:
            del model
            gc.collect()  # free the network and its traced function before the next one

    def measure(self, arch: Any) -> LatencyStats:
        """The latency of ``arch``, from the cache or converted and timed now.

        Raises:
            RuntimeError: the network could not be converted to TFLite.
        """
        key = self.space.encode(arch)
        if self.cache is not None and key in self.cache:
            return LatencyStats(**self.cache.get(key))
        if key in self._memory:
            return LatencyStats(**self._memory[key])
        start = time.perf_counter()
        flatbuffer = self._flatbuffer(arch)
        self.convert_seconds.append(time.perf_counter() - start)
        s = self.setup
        stats = measure_latency(flatbuffer, num_runs=s.runs, warmup=s.warmup, num_threads=s.threads, seed=self.seed)
        self.measured += 1
        logger.info("latency of %s: median %.3f ms, p90 %.3f ms (conversion %.1f s)", key, stats.median_ms,
                    stats.p90_ms, self.convert_seconds[-1])
        if self.cache is not None:
            self.cache.put(key, dataclasses.asdict(stats))
        else:
            self._memory[key] = dataclasses.asdict(stats)
        return stats


def measure(space: Any, arch: Any, *, input_shape: Sequence[int] = (32, 32, 3), num_classes: int = 10,
            threads: int = 1, quantize: str = "none", runs: int = 50, warmup: int = 5,
            cache_dir: Optional[str] = None, seed: int = 0) -> LatencyStats:
    """Median / p90 batch-1 LiteRT latency (ms) of ``arch``'s TFLite model on this machine.

    A one-call form of :class:`LatencyMeasurer` (arguments as in :class:`LatencySetup`); with
    ``cache_dir`` the figure is read from, or added to, that folder's cache.

    Example:
        >>> from tfnas.spaces.nb201 import Nb201Space
        >>> space = Nb201Space(channels=4, cells_per_stage=1)
        >>> stats = measure(space, space.from_index(0), input_shape=(8, 8, 3), runs=5)  # doctest: +SKIP
        >>> stats.median_ms, stats.p90_ms  # doctest: +SKIP
    """
    setup = LatencySetup(tuple(input_shape), num_classes, threads, quantize, runs, warmup)
    return LatencyMeasurer(space, setup, cache_dir, seed).measure(arch)


class LatencyEvaluator(Evaluator):
    """``evaluate(archs)``: the :class:`~tfnas.train.litert.LatencyStats` of each architecture, in order.

    Args:
        measurer: the cached measurer (space, setup, cache).

    Attributes:
        seconds: wall seconds of each architecture of the last ``evaluate`` call (cache hits ~0).
    """

    def __init__(self, measurer: LatencyMeasurer):
        self.measurer = measurer
        self.seconds: List[float] = []

    @property
    def computed(self) -> int:
        """Architectures actually converted and timed (the rest came from the cache)."""
        return self.measurer.measured

    def evaluate(self, archs: Sequence[Any]) -> List[LatencyStats]:
        out, self.seconds = [], []
        for arch in archs:
            start = time.perf_counter()
            out.append(self.measurer.measure(arch))
            self.seconds.append(time.perf_counter() - start)
        return out
