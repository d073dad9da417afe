"""How benchmarks report: one JSON object per measurement, with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import resource
from typing import Any, Dict


def machine() -> str:
    """CPU model, core count, visible GPUs and TensorFlow version, in one line."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {len(gpus)} GPU(s), TF {tf.__version__}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rounded(figures: Dict[str, Any], digits: int) -> Dict[str, Any]:
    """``figures`` with every float rounded to ``digits`` decimals (other values as they are)."""
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in figures.items()}


def emit(name: str, **figures: Any) -> None:
    """Prints ``{"bench": name, **figures}`` as one JSON line."""
    print(json.dumps({"bench": name, **figures}))
