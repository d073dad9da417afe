"""TFLite export: conversion time, file size and LiteRT batch-1 latency per quantization."""

from __future__ import annotations

import time
import warnings
from typing import Sequence

from perf.report import emit, machine, rounded

#: The NB201 cell with the best CIFAR-100 test accuracy (94.36 % on CIFAR-10, 0.01 below the best there);
#: DARTS: the RelativeNAS cell.
ARCHS = {
    "nb201": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "darts": "relativenas",
}


def run(space: str = "nb201", arch: str = "", quantize: Sequence[str] = ("none", "float16", "int8"),
        input_size: int = 32, num_classes: int = 10, runs: int = 100, warmup: int = 10, threads: int = 1,
        via: Sequence[str] = ("frozen",)) -> None:
    """Emits ``tflite`` per quantization and conversion route (``via``: ``saved_model``, ``frozen``):
    ``convert_s`` (route + converter, int8 with 100 synthetic calibration images), ``size_kb``,
    ``median_ms``/``p90_ms`` (batch 1, ``threads`` LiteRT threads) and the Keras inference network's ``params``. Weights are untrained (an
    untrained network converts and runs at the same speed)."""
    import keras

    from tfnas.registry import SPACES
    from tfnas.train.calibration import SyntheticCalibrationWarning, calibration_images
    from tfnas.train.export import count_params, inference_model
    from tfnas.train.litert import measure_latency
    from tfnas.train.tflite import convert_tflite

    space_obj = SPACES.get(space)()
    text = arch or ARCHS.get(space, "")
    shape = (input_size, input_size, 3)
    keras.utils.set_random_seed(0)
    model = inference_model(space_obj.build(space_obj.decode(text), num_classes, input_shape=shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticCalibrationWarning)
        calibration = calibration_images(None, shape).images
    for q, route in [(q, r) for q in quantize for r in via]:
        start = time.perf_counter()
        flatbuffer = convert_tflite(model, q, calibration if q == "int8" else None, via=route)
        convert_s = time.perf_counter() - start
        stats = measure_latency(flatbuffer, num_runs=runs, warmup=warmup, num_threads=threads)
        emit("tflite", **rounded({"space": space, "arch": space_obj.encode(space_obj.decode(text)), "quantize": q,
                                  "via": route, "input": input_size, "params": count_params(model),
                                  "convert_s": convert_s,
                                  "size_kb": len(flatbuffer) / 1024.0, "median_ms": stats.median_ms,
                                  "p90_ms": stats.p90_ms, "threads": threads, "runs": runs}, 3),
             machine=machine())
