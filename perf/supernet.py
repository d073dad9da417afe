"""Speed of the RelativeNAS weight-sharing DARTS supernet against a standalone Keras model.

``tools/bench.py supernet`` times :func:`benchmark_supernet`; results go to
``docs/PERFORMANCE.md`` with the command and machine.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)


def benchmark_supernet(batch_sizes: Sequence[int] = (64, 256), steps: int = 10, jit_compile: bool = False,
                       channels: int = 16, layers: int = 8, warmup_steps: int = 2, seed: int = 0,
                       graph_optimizer: Optional[bool] = None) -> List[Dict[str, Any]]:
    """Train-step time of the supernet for a random candidate vs a standalone Keras model of it.

    Both run SGD (momentum 0.9, decay 3e-4, clipping 5) on one fixed random batch of 32x32
    images with 10 classes and no drop-path; the standalone model is
    ``DartsSpace.build(genotype, channels=channels, layers=layers, auxiliary=False)`` stepped by
    the Trainer (:func:`perf.train_step.benchmark_train_step`). Target: ``ratio <= 1.5``.

    The supernet side times its traced train step itself (the candidate's ids and the learning
    rate converted once), so the figure is the step, not the argument conversion of ``train_step``.

    Returns:
        One dict per batch size: ``batch_size``, ``supernet_ms`` and ``standalone_ms`` (per
        step), ``ratio`` (supernet / standalone), ``supernet_first_step_s`` (trace + first
        step), ``supernet_traces``, ``jit_compile``, ``graph_optimizer``, ``genotype``.
    """
    import numpy as np
    import tensorflow as tf

    from perf.train_step import benchmark_train_step
    from tfnas.config import TrainConfig
    from tfnas.spaces.darts import DartsSpace, DartsSupernet

    rng = np.random.default_rng(seed)
    space = DartsSpace(channels=channels, layers=layers)
    arch = space.sample(rng)
    net = DartsSupernet(10, (32, 32, 3), channels=channels, layers=layers, jit_compile=jit_compile, seed=seed,
                        graph_optimizer=graph_optimizer)
    cfg = TrainConfig(epochs=1, momentum=0.9, nesterov=False, weight_decay=3e-4, grad_clip=5.0, schedule="constant",
                      lr=0.01)
    results = []
    for batch in batch_sizes:
        images = tf.constant(rng.standard_normal((batch, 32, 32, 3)), tf.float32)
        labels = tf.one_hot(rng.integers(0, 10, batch), 10)
        ids, lr = net._ids(arch), tf.constant(0.01)
        t0 = time.perf_counter()
        float(net._train_fn(images, labels, ids, lr)[0])
        first = time.perf_counter() - t0
        for _ in range(warmup_steps):
            net._train_fn(images, labels, ids, lr)
        t0 = time.perf_counter()
        for _ in range(steps):
            out = net._train_fn(images, labels, ids, lr)
        float(out[0])
        supernet_ms = 1000 * (time.perf_counter() - t0) / steps
        standalone = benchmark_train_step(
            lambda: space.build(arch, 10, (32, 32, 3), auxiliary=False), batch_size=batch, jit_compile=jit_compile,
            steps=steps, warmup_steps=warmup_steps, train_cfg=cfg, strategy="one_device", seed=seed)
        results.append({"batch_size": int(batch), "supernet_ms": supernet_ms, "standalone_ms": standalone["ms_per_step"],
                        "ratio": supernet_ms / standalone["ms_per_step"], "supernet_first_step_s": first,
                        "supernet_traces": net.trace_counts["train"], "jit_compile": bool(jit_compile),
                        "graph_optimizer": net._train_fn.optimize, "genotype": str(arch)})
        logger.info("supernet %.1f ms vs standalone %.1f ms per step at batch %d", supernet_ms,
                    standalone["ms_per_step"], batch)
    return results
