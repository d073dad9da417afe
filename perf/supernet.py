"""Speed of the weight-sharing supernets against standalone networks of the same architecture.

``tools/bench.py supernet`` times :func:`benchmark_supernet` (RelativeNAS, DARTS space);
``tools/bench.py supernet --space lite`` times :func:`benchmark_lite_supernet` (SLNAS, lite
space) and :func:`benchmark_controller` (the SLNAS ``StageController``). Results go to
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


def _lite_loss(labels, logits, aux, aux_weight):
    """``(per-example CE, CE + aux_weight * aux CE)``, the aux term weighted as ``LiteSupernet._loss``."""
    import tensorflow as tf

    per_example = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
    loss = tf.reduce_mean(per_example)
    if aux and aux_weight:
        weights = [0.1 * (k + 1) for k in range(len(aux))]
        aux_loss = tf.add_n([w * tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, a))
                             for w, a in zip(weights, aux)]) / sum(weights)
        loss = loss + aux_weight * aux_loss
    return per_example, loss


def _lite_standalone_step(arch, num_classes: int, image_shape: Sequence[int], channels: int, blocks: Sequence[int],
                          jit_compile: bool, seed: int):
    """A ``LiteNetwork(arch, auxiliary=True)`` and a plain ``tf.function`` SGD step ``step(images, labels, lr)``.

    The step has the supernet's loss (CE + 0.4 aux CE) and update rule (``masked_sgd`` with every
    parameter used: momentum 0.9, decay 3e-4, global-norm clip 5); it returns the summed CE.
    """
    import keras
    import tensorflow as tf

    from tfnas.spaces.lite import LiteNetwork
    from tfnas.train.supernet import masked_sgd

    keras.utils.set_random_seed(seed)
    model = LiteNetwork(arch, num_classes, tuple(image_shape), channels, tuple(blocks), auxiliary=True)
    model.build((None,) + tuple(image_shape))
    params = list(model.trainable_variables)
    buffers = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="momentum") for v in params]

    @tf.function(jit_compile=bool(jit_compile), autograph=False)
    def step(images, labels, lr):
        with tf.GradientTape() as tape:
            out = model(images, training=True)
            logits, aux = (out[0], list(out[1:])) if isinstance(out, (tuple, list)) else (out, [])
            per_example, loss = _lite_loss(labels, logits, aux, 0.4)
        grads = tape.gradient(loss, params)
        masked_sgd(params, buffers, grads, [True] * len(params), lr, 0.9, 3e-4, 5.0)
        return tf.reduce_sum(per_example)

    return model, step


def _time_steps(call, steps: int) -> float:
    """ms per call over ``steps`` calls; the clock stops after reading the last call's first output."""
    t0 = time.perf_counter()
    out = None
    for _ in range(steps):
        out = call()
    float((out[0] if isinstance(out, (tuple, list)) else out).numpy())
    return 1000 * (time.perf_counter() - t0) / steps


def benchmark_lite_supernet(batch_sizes: Sequence[int] = (64,), steps: int = 5, archs: int = 3,
                            channels: int = 16, blocks: Sequence[int] = (1, 1), stem_stride: int = 4,
                            image_size: int = 32, warmup_steps: int = 1, rounds: int = 2,
                            jit_compile: bool = False, seed: int = 0,
                            graph_optimizer: Optional[bool] = None) -> List[Dict[str, Any]]:
    """Train step of the SLNAS ``LiteSupernet`` vs a standalone ``LiteNetwork``, for a few sampled archs.

    Both sides train on one fixed random batch with 10 classes, loss CE + 0.4 aux CE, SGD
    (momentum 0.9, decay 3e-4, clip 5), no drop-path. The supernet is built once on
    ``image_size``² images and traced once; each architecture of ``LiteSpace().sample`` gets its
    own standalone network and plain ``tf.function`` step (:func:`_lite_standalone_step`).

    Resolutions (``comparison`` in the result): with ``stem_stride=1`` both sides use the stride-1
    stems on ``image_size``² images (the same network, up to the supernet's resizing of
    mismatched reduction-cell branches); with ``stem_stride=4`` the supernet uses its search stems
    (two stride-2 convs each) and the standalone network is fed ``image_size // 4``² images, so its
    cells run at the supernet's cell resolution (the stems differ: 3x3/5x5 stride-1 convs on the
    small image there).

    Timing: per architecture, ``warmup_steps`` untimed steps of each side, then ``rounds``
    alternating blocks of ``steps`` timed steps (supernet, standalone, supernet, ...); the figure of
    each side is its best block (least disturbed by other jobs on a shared machine).

    Returns:
        One dict per (batch size, architecture): ``batch_size``, ``arch``, ``supernet_ms``,
        ``standalone_ms``, ``ratio`` (supernet / standalone), ``supernet_build_s`` (constructing
        the supernet, once), ``supernet_first_step_s`` (trace + first step; only the first
        architecture pays it, later rows give the first step of the new arch),
        ``standalone_first_step_s`` (trace + first step of that arch's network),
        ``supernet_traces``, ``standalone_params``, ``comparison``, ``channels``, ``blocks``,
        ``stem_stride``, ``jit_compile``, ``graph_optimizer``.
    """
    import numpy as np
    import tensorflow as tf

    from tfnas.spaces.lite import LiteSpace
    from tfnas.spaces.lite.supernet import LiteSupernet

    if steps < 1 or archs < 1 or rounds < 1 or warmup_steps < 0:
        raise ValueError(f"steps, archs and rounds must be >= 1 and warmup_steps >= 0; got {steps}, {archs}, "
                         f"{rounds}, {warmup_steps}")
    if stem_stride not in (1, 4):
        raise ValueError(f"stem_stride must be 1 or 4; got {stem_stride!r}")
    blocks = tuple(int(b) for b in blocks)
    rng = np.random.default_rng(seed)
    candidates = [LiteSpace().sample(rng) for _ in range(archs)]
    t0 = time.perf_counter()
    net = LiteSupernet(10, (image_size, image_size, 3), channels=channels, blocks=blocks, stem_stride=stem_stride,
                       jit_compile=jit_compile, seed=seed, graph_optimizer=graph_optimizer)
    build_s = time.perf_counter() - t0
    side = image_size // stem_stride
    standalone_shape = (side, side, 3)
    comparison = ("stride-1 stems on both, {0}x{0} images".format(image_size) if stem_stride == 1 else
                  "supernet search stems (stride 4) on {0}x{0} images vs standalone fed {1}x{1} images: "
                  "cells at the same resolution".format(image_size, side))
    results = []
    for batch in batch_sizes:
        images = tf.constant(rng.standard_normal((batch, image_size, image_size, 3)), tf.float32)
        small = images if stem_stride == 1 else tf.constant(
            rng.standard_normal((batch,) + standalone_shape), tf.float32)
        labels = tf.one_hot(rng.integers(0, 10, batch), 10)
        lr = tf.constant(0.01)
        for arch in candidates:
            ids = net._ids(arch)
            supernet_call = lambda: net._train_fn(images, labels, ids, lr)  # noqa: E731
            t0 = time.perf_counter()
            float(supernet_call()[0])
            supernet_first = time.perf_counter() - t0
            model, step = _lite_standalone_step(arch, 10, standalone_shape, channels, blocks, jit_compile, seed)
            standalone_call = lambda: step(small, labels, lr)  # noqa: E731
            t0 = time.perf_counter()
            float(standalone_call())
            standalone_first = time.perf_counter() - t0
            for _ in range(warmup_steps):
                supernet_call()
                standalone_call()
            sup, alone = [], []
            for _ in range(rounds):
                sup.append(_time_steps(supernet_call, steps))
                alone.append(_time_steps(standalone_call, steps))
            row = {"batch_size": int(batch), "arch": str(arch), "supernet_ms": min(sup), "standalone_ms": min(alone),
                   "ratio": min(sup) / min(alone), "supernet_build_s": build_s,
                   "supernet_first_step_s": supernet_first, "standalone_first_step_s": standalone_first,
                   "supernet_traces": net.trace_counts["train"],
                   "standalone_params": int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
                   "comparison": comparison, "channels": int(channels), "blocks": list(blocks),
                   "stem_stride": int(stem_stride), "steps": int(steps), "rounds": int(rounds),
                   "jit_compile": bool(jit_compile), "graph_optimizer": net._train_fn.optimize}
            results.append(row)
            logger.info("lite supernet %.1f ms vs standalone %.1f ms per step at batch %d (%s)", row["supernet_ms"],
                        row["standalone_ms"], batch, arch)
    return results


def benchmark_controller(steps: int = 20, hidden: int = 256, optimizer: str = "ranger", seed: int = 0,
                         warmup_steps: int = 3) -> Dict[str, Any]:
    """``sample()`` and ``update(arch, reward)`` rates of the SLNAS ``StageController``.

    The first call of each (its trace) is timed on its own and excluded from the rates; after
    ``warmup_steps`` untimed sample + update pairs come ``steps`` samples, then ``steps`` updates
    (on those samples' archs, rewards drawn uniformly in [0, 100)), then ``steps`` sample + update
    pairs as the search runs them.

    Returns:
        ``sample_per_s``, ``update_per_s``, ``sample_update_per_s``, ``first_sample_s``,
        ``first_update_s``, ``hidden``, ``optimizer``, ``steps``, ``traces``.
    """
    import numpy as np

    from tfnas.methods.slnas import StageController

    if steps < 1 or warmup_steps < 0:
        raise ValueError(f"steps must be >= 1 and warmup_steps >= 0; got {steps}, {warmup_steps}")
    rng = np.random.default_rng(seed)
    ctl = StageController(hidden=hidden, optimizer=optimizer, seed=seed)
    t0 = time.perf_counter()
    arch, _ = ctl.sample()
    first_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctl.update(arch, float(rng.uniform(0, 100)))
    first_update = time.perf_counter() - t0
    for _ in range(warmup_steps):
        ctl.update(ctl.sample()[0], float(rng.uniform(0, 100)))
    t0 = time.perf_counter()
    archs = [ctl.sample()[0] for _ in range(steps)]
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for arch in archs:
        ctl.update(arch, float(rng.uniform(0, 100)))
    update_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        ctl.update(ctl.sample()[0], float(rng.uniform(0, 100)))
    pair_s = time.perf_counter() - t0
    return {"sample_per_s": steps / sample_s, "update_per_s": steps / update_s, "sample_update_per_s": steps / pair_s,
            "first_sample_s": first_sample, "first_update_s": first_update, "hidden": int(hidden),
            "optimizer": optimizer, "steps": int(steps), "traces": ctl.traces()}
