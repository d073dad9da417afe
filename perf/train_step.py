"""Steady-state speed of the Trainer's train step (forward, backward, decay, clipping, update).

``tools/bench.py train-step`` times it on an NB201 network with and without XLA; results go to
``docs/PERFORMANCE.md`` with the command and machine.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Union

from perf.report import emit, machine, rounded

if TYPE_CHECKING:  # TensorFlow is imported when a benchmark runs, not when `tools/bench.py --help` does
    import keras

    from tfnas.config import TrainConfig
    from tfnas.train.distribute import StrategyLike

logger = logging.getLogger(__name__)


def benchmark_train_step(
    model_fn: Callable[[], keras.Model],
    batch_size: int = 64,
    image_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    jit_compile: Union[str, bool] = False,
    steps: int = 50,
    *,
    warmup_steps: int = 5,
    train_cfg: Optional[TrainConfig] = None,
    strategy: StrategyLike = "auto",
    seed: int = 0,
) -> Dict[str, Any]:
    """Times ``steps`` train steps on one fixed random batch after ``warmup_steps`` untimed ones.

    The batch is distributed once and reused, so the figure excludes the input pipeline. The
    clock stops after a device sync (reading the step's accumulated totals).

    Args:
        model_fn: zero-argument model builder (as for ``Trainer``).
        batch_size: global batch size.
        image_shape: ``(H, W, C)`` of the inputs.
        num_classes: width of the one-hot labels.
        jit_compile: XLA for the step (``Trainer``'s values).
        steps: timed steps (>= 1).
        warmup_steps: untimed steps after the first (tracing/compiling) one.
        train_cfg: the recipe (default: ``TrainConfig()``: SGD Nesterov, decay, clipping).
        strategy: ``Trainer``'s strategy argument.
        seed: seeds the batch and the model initialisation.

    Returns:
        ``steps_per_s``, ``images_per_s``, ``ms_per_step``, ``first_step_s`` (trace + compile +
        one step), ``jit_compile``, ``steps``, ``batch_size``, ``num_replicas``, ``num_params``,
        ``device`` and ``traces`` (train-step traces; 1 unless something retraced).
    """
    import numpy as np
    import tensorflow as tf

    from tfnas.config import TrainConfig
    from tfnas.train.trainer import Trainer

    if steps < 1 or warmup_steps < 0:
        raise ValueError(f"steps must be >= 1 and warmup_steps >= 0. Received: steps={steps}, warmup_steps={warmup_steps}")
    cfg = train_cfg or TrainConfig(epochs=1)
    trainer = Trainer(
        model_fn, cfg, jit_compile=jit_compile, strategy=strategy,
        steps_per_epoch=steps + warmup_steps + 1, progress=False, seed=seed,
    )
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch_size, *image_shape)).astype(np.float32)
    labels = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, size=batch_size)]
    ds = tf.data.Dataset.from_tensors((images, labels))
    trainer._prepare(ds.element_spec)
    dist_ds = trainer.strategy.experimental_distribute_dataset(ds)
    step_fn = trainer._step_function("train", dist_ds.element_spec)
    batch = next(iter(dist_ds))

    def sync() -> None:
        trainer._train_totals.numpy()

    t0 = time.perf_counter()
    step_fn(batch)
    sync()
    first = time.perf_counter() - t0
    for _ in range(warmup_steps):
        step_fn(batch)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step_fn(batch)
    sync()
    elapsed = time.perf_counter() - t0
    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "steps_per_s": steps / elapsed,
        "images_per_s": steps * batch_size / elapsed,
        "ms_per_step": 1000.0 * elapsed / steps,
        "first_step_s": first,
        "jit_compile": trainer.jit_compile,
        "steps": steps,
        "batch_size": batch_size,
        "num_replicas": trainer.num_replicas,
        "num_params": int(trainer.model.count_params()),
        "device": f"{len(gpus)} GPU" if gpus else "CPU",
        "traces": trainer.trace_counts["train"],
    }
    logger.info("benchmark_train_step: %s", result)
    return result


DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def run(arch: str = DEFAULT_ARCH, batch: int = 64, steps: int = 30) -> None:
    """Emits ``train-step`` for an NB201 network of ``arch`` (10 classes, 32x32), XLA off then on."""
    from tfnas.registry import SPACES

    space = SPACES.get("nb201")()
    cell = space.decode(arch)
    for jit in (False, True):
        figures = benchmark_train_step(lambda: space.build(cell, 10, (32, 32, 3)), batch_size=batch,
                                       jit_compile=jit, steps=steps)
        emit("train-step", **{"network": "nb201", "arch": arch, "batch": batch, "jit_compile": jit,
                              **rounded(figures, 3), "machine": machine()})
