"""Running TFLite (LiteRT) models: outputs on a batch, batch-1 latency, stored weight count.

The interpreter is ``ai_edge_litert.interpreter.Interpreter`` (the ``ai-edge-litert`` package,
pinned in ``requirements.txt``). ``tf.lite.Interpreter`` is deprecated in TF 2.21 and is used only
when ``ai_edge_litert`` cannot be imported, with a :class:`LiteRTFallbackWarning`.

Models written by :func:`tfnas.train.tflite.export_tflite` take one image per call, ``(1, H, W,
3)``; :func:`run_tflite` feeds a batch one image at a time (or resizes the input when the model
has a free batch dimension). Quantized (int8/uint8) inputs and outputs are handled here: float
images are quantized with the input tensor's scale and zero point, and outputs are dequantized,
``float = scale * (q - zero_point)``, so every caller sees float32 logits whatever the model.

:func:`measure_latency` is the building block of measured-latency objectives (hardware-aware
search): median and 90th-percentile wall time of one ``invoke()`` at batch 1, in milliseconds,
after warm-up runs, with a configurable number of CPU threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from typing import Any, Optional, Union

import numpy as np

from tfnas.checks import check_int, positive_int
from tfnas.runtime import quiet_stderr

__all__ = [
    "LatencyStats",
    "LiteRTFallbackWarning",
    "count_tflite_params",
    "load_interpreter",
    "measure_latency",
    "run_tflite",
]

ModelSource = Union[str, os.PathLike, bytes]


class LiteRTFallbackWarning(UserWarning):
    """``ai_edge_litert`` is not importable; the deprecated ``tf.lite.Interpreter`` runs the model."""


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Batch-1 latency of a TFLite model on this machine.

    Attributes:
        median_ms: median wall time of one ``invoke()``, milliseconds.
        p90_ms: 90th percentile, milliseconds.
        min_ms: fastest run, milliseconds.
        runs: timed runs (after ``warmup`` untimed ones).
        warmup: untimed runs before timing.
        num_threads: interpreter CPU threads.
    """

    median_ms: float
    p90_ms: float
    min_ms: float
    runs: int
    warmup: int
    num_threads: int


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        warnings.warn(
            "ai_edge_litert is not installed; falling back to the deprecated tf.lite.Interpreter "
            "(pip install ai-edge-litert==2.3.0)", LiteRTFallbackWarning, stacklevel=3)
        import tensorflow as tf

        return tf.lite.Interpreter
    return Interpreter


def load_interpreter(model: ModelSource, num_threads: Optional[int] = None) -> Any:
    """A LiteRT interpreter for ``model`` (a ``.tflite`` path or the model's bytes), tensors allocated.

    Args:
        model: path of a ``.tflite`` file, or its contents.
        num_threads: CPU threads of the interpreter (``None``: the runtime's default).

    Raises:
        FileNotFoundError: no file at ``model``.
        ValueError: ``num_threads`` is not a positive int, or the bytes are not a TFLite model.
    """
    if num_threads is not None:
        num_threads = positive_int(num_threads, "num_threads", "load_interpreter")
    cls = _interpreter_class()
    kwargs = {"num_threads": num_threads}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TFLite model {path} does not exist")
        kwargs["model_path"] = path
    # the runtime's own INFO line ("Created TensorFlow Lite XNNPACK delegate for CPU") where TensorFlow's
    # C++ info lines are off too (TF_CPP_MIN_LOG_LEVEL, 2 on the command line unless -v); errors still show
    info_off = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() not in ("", "0")
    with quiet_stderr(show_on_error=True) if info_off else contextlib.nullcontext():
        interpreter = cls(**kwargs)
        interpreter.allocate_tensors()
    return interpreter


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (scale * (y.astype(np.float32) - zero_point)).astype(np.float32)


def _invoke(interpreter: Any, x: np.ndarray) -> np.ndarray:
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], _quantize(x, inp))
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    return _dequantize(interpreter.get_tensor(out["index"]), out)


def run_tflite(model: ModelSource, images: np.ndarray, num_threads: Optional[int] = None) -> np.ndarray:
    """Float outputs of a one-input, one-output TFLite model on a batch of images.

    Args:
        model: ``.tflite`` path or bytes.
        images: float ``(B, H, W, C)``, preprocessed as the Keras model expects them (the
            evaluation pipeline's normalisation); quantized models get them quantized here.
        num_threads: interpreter CPU threads (``None``: the runtime's default).

    Returns:
        float32 ``(B, ...)``: the outputs, dequantized for int8/uint8 models.

    Raises:
        ValueError: the model has several inputs/outputs, or ``images`` do not fit its input.
    """
    interpreter = load_interpreter(model, num_threads)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"run_tflite needs a model with one input and one output; this one has "
                         f"{len(inputs)} inputs and {len(outputs)} outputs")
    images = np.asarray(images, dtype=np.float32)
    want = tuple(int(d) for d in inputs[0]["shape"][1:])
    if images.ndim != len(want) + 1 or tuple(images.shape[1:]) != want:
        raise ValueError(f"the model takes inputs of shape (B,) + {want}; received images of shape {images.shape}")
    batch = images.shape[0]
    free_batch = int(inputs[0].get("shape_signature", inputs[0]["shape"])[0]) == -1
    if free_batch and batch > 0:
        interpreter.resize_tensor_input(inputs[0]["index"], images.shape)
        interpreter.allocate_tensors()
        return _invoke(interpreter, images)
    if batch == int(inputs[0]["shape"][0]):
        return _invoke(interpreter, images)
    if int(inputs[0]["shape"][0]) != 1:
        raise ValueError(f"the model takes batches of {inputs[0]['shape'][0]}; received {batch} images")
    return np.concatenate([_invoke(interpreter, images[i:i + 1]) for i in range(batch)], axis=0)


def measure_latency(
    model: ModelSource,
    num_runs: int = 50,
    warmup: int = 5,
    num_threads: int = 1,
    seed: int = 0,
) -> LatencyStats:
    """Batch-1 latency of a TFLite model: median and p90 of ``num_runs`` timed ``invoke()`` calls.

    The input is one seeded standard-normal image (quantized for int8 models), set once; only
    ``invoke()`` is timed (``time.perf_counter``), after ``warmup`` untimed calls.

    Args:
        model: ``.tflite`` path or bytes (a model with a free batch dimension is run at batch 1).
        num_runs: timed runs (>= 1).
        warmup: untimed runs first (>= 0).
        num_threads: interpreter CPU threads (>= 1).
        seed: seed of the input image.
    """
    num_runs = positive_int(num_runs, "num_runs", "measure_latency")
    warmup = check_int(warmup, "warmup", "measure_latency", low=0)
    num_threads = positive_int(num_threads, "num_threads", "measure_latency")
    interpreter = load_interpreter(model, num_threads)
    inp = interpreter.get_input_details()[0]
    shape = (1,) + tuple(int(d) for d in inp["shape"][1:])
    if tuple(int(d) for d in inp["shape"]) != shape:
        interpreter.resize_tensor_input(inp["index"], shape)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    interpreter.set_tensor(inp["index"], _quantize(x, inp))
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(num_runs, np.float64)
    for i in range(num_runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - start
    times *= 1e3
    return LatencyStats(median_ms=float(np.median(times)), p90_ms=float(np.percentile(times, 90)),
                        min_ms=float(times.min()), runs=num_runs, warmup=warmup, num_threads=num_threads)


def count_tflite_params(model: ModelSource) -> int:
    """Elements of the stored weight tensors of a TFLite model (the constant float32, float16 and
    int8 tensors that feed an op; int32 tensors - shapes, paddings, int8 models' biases - are not
    counted).

    An approximate check of *which* network was exported, not an exact parameter count: the
    converter folds each inference-mode BatchNorm into the convolution before it (one vector
    instead of two), folds shape-dependent constants (e.g. average-pool window counts) into new
    tensors and stores identical buffers once. For the float32 models of the small test networks
    it lies within 10 % of the Keras inference network's trainable count; an auxiliary head left
    in would add its whole weight count.
    """
    interpreter = load_interpreter(model)
    ops = interpreter._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    details = {int(d["index"]): d for d in interpreter.get_tensor_details()}
    consts = {int(i) for op in ops for i in op["inputs"] if i >= 0} - produced - graph_inputs
    weight_types = (np.float32, np.float16, np.int8)
    return int(sum(int(np.prod(details[i]["shape"])) for i in consts if details[i]["dtype"] in weight_types))
