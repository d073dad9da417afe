"""NAS-Bench-201 as a counting benchmark.

The budget of a predictor-based search is the number of distinct cells whose ground-truth
accuracy it has read. A method only ever sees a :class:`~tfnas.benchmarks.base.CountingSession`,
which counts and enforces that budget; the run layer scores the method's result with
:meth:`Nb201Benchmark.ground_truth`, which methods never receive.
"""

from __future__ import annotations

import logging
from typing import List, Optional

import numpy as np

from tfnas.benchmarks.base import Benchmark, CountingSession
from tfnas.benchmarks.nb201_data import load_arrays
from tfnas.registry import register_benchmark

logger = logging.getLogger(__name__)

DATASETS = ("cifar10", "cifar100", "imagenet16-120")


@register_benchmark("nb201")
class Nb201Benchmark(Benchmark):
    """The NAS-Bench-201 table: 15,625 cells x 3 datasets.

    Args:
      source: empty for the table shipped in the package, or the path of an official
        NATS-Bench topology directory (read with :func:`tfnas.benchmarks.nats.load_nats_topology`).
    """

    name = "nb201"
    space = "nb201"
    size = 15625

    def __init__(self, source: str = ""):
        if source:
            from tfnas.benchmarks.nats import load_nats_topology

            self._arrays = load_nats_topology(source)
        else:
            self._arrays = load_arrays()
        self.source = source

    def _column(self, dataset: str) -> int:
        if dataset not in DATASETS:
            raise ValueError(f"NAS-Bench-201 has no dataset {dataset!r}; it has {', '.join(DATASETS)}")
        return DATASETS.index(dataset)

    def ground_truth(self, dataset: str) -> np.ndarray:
        """200-epoch test accuracy (%) of every cell, float32 [15625]. For evaluation only:
        the driver scores a method's result with it; methods never see it."""
        return self._arrays["acc200_test"][:, self._column(dataset)]

    def low_fidelity(self, dataset: str, split: str = "test") -> np.ndarray:
        """12-epoch accuracy (%) of every cell, float32 [15625] (``split`` = test or val)."""
        if split not in ("test", "val"):
            raise ValueError(f"split must be 'test' or 'val', got {split!r}")
        return self._arrays[f"acc12_{split}"][:, self._column(dataset)]

    @property
    def latency_devices(self) -> List[str]:
        """Devices of the latency columns (HW-NAS-Bench names, e.g. ``pixel3``)."""
        return [str(d) for d in self._arrays["latency_devices"]]

    def latency(self, device: str) -> np.ndarray:
        """Measured latency (ms) of every cell on ``device``, float32 [15625]."""
        devices = self.latency_devices
        if device not in devices:
            raise ValueError(f"no latency for device {device!r}; devices: {', '.join(devices)}")
        return self._arrays["latency_ms"][:, devices.index(device)]

    def optimum(self, dataset: str) -> float:
        return float(self.ground_truth(dataset).max())

    def session(self, dataset: str, budget: Optional[int] = None) -> CountingSession:
        """A counting view for one search run: answers in [0, 1]; the 12-epoch (test, validation)
        accuracies in [0, 1] as low-fidelity figures (the ``table`` estimation code)."""
        acc = self.ground_truth(dataset) / 100.0
        low = np.stack([self.low_fidelity(dataset, "test"), self.low_fidelity(dataset, "val")], 1) / 100.0
        return CountingSession(lambda idx: acc[idx], self.size, dataset, budget, low_fidelity=lambda idx: low[idx])
