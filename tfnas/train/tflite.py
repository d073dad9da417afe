"""TFLite (LiteRT) export: float32, float16 and full-integer int8 post-training quantization.

:func:`convert_tflite` turns the *inference network* of a Keras model
(:func:`tfnas.train.export.inference_model`: no auxiliary head, no DropPath) into a ``.tflite``
flatbuffer with ``tf.lite.TFLiteConverter``; :func:`export_tflite` writes it atomically, like the
other exports (hidden temporary sibling, then rename; ``overwrite`` semantics kept). The model is
converted with a **batch-1** signature ``(1, H, W, 3)`` named ``images``: on-device inference runs
one image per call, and a static shape lets the converter fold the shape-dependent constants of
the cells (e.g. the window counts of ``avg_pool_3x3``). Two routes give the same model
(``via``; tested for a network of every space): ``"frozen"`` traces the batch-1 function, folds its
variables into constants in memory and converts the frozen graph; ``"saved_model"`` writes the
network with its variables as a temporary SavedModel and converts that, 3-5 times slower
(docs/PERFORMANCE.md). ``"auto"`` (the default, so the exports' route) takes the frozen route
unless the weights exceed :data:`FROZEN_MAX_BYTES`: frozen constants live in one GraphDef, which
protobuf limits to 2 GiB. Either way the model has one signature, ``serving_default`` (input
``images``), the key of the SavedModel exports' signature too.
:func:`tfnas.train.litert.run_tflite` feeds a batch one image at a time.

Quantization (``quantize``):

- ``"none"``: float32 weights and activations; outputs equal the Keras model's up to float
  rounding.
- ``"float16"``: weights stored as float16 (about half the file); the CPU runtime dequantizes
  them to float32 at load time, so activations stay float32.
- ``"int8"``: full-integer post-training quantization (``TFLITE_BUILTINS_INT8`` ops only, so the
  conversion fails rather than leave an op in float). Weights are int8 (per channel for
  convolutions), activations int8, biases int32, and the model's **input and output are int8
  too** (``inference_input_type = inference_output_type = tf.int8``), as integer-only
  accelerators need. Inputs are the *normalised* images (the evaluation pipeline's
  ``(x / 255 - mean) / std``) quantized with the input tensor's scale and zero point; logits
  come back as int8 and dequantize with the output tensor's. Activation ranges are calibrated
  on a representative set of images (:mod:`tfnas.train.calibration`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfnas.checks import check_image_shape
from tfnas.formats import QUANTIZATIONS
from tfnas.interrupts import interrupts_kept
from tfnas.io import first_line
from tfnas.runtime import quiet_import_wanted, quiet_stderr
from tfnas.train.export import inference_model
from tfnas.train.targets import check_target, install, remove_path, temp_sibling, writing

try:  # the converter's own error type is not exported under tf.lite
    from tensorflow.lite.python.convert_phase import ConverterError
except ImportError:  # pragma: no cover - other TensorFlow layouts
    ConverterError = RuntimeError

__all__ = ["FROZEN_MAX_BYTES", "QUANTIZATIONS", "ROUTES", "check_quantize", "convert_tflite", "export_tflite"]

logger = logging.getLogger(__name__)

ROUTES = ("auto", "frozen", "saved_model")
# The largest weights (bytes) that ``via="auto"`` freezes into the GraphDef (protobuf's limit is
# 2 GiB; the graph's own nodes and a margin take the rest).
FROZEN_MAX_BYTES = 1 << 30
SIGNATURE = "serving_default"


def check_quantize(quantize: str) -> str:
    """Returns ``quantize`` if it is one of :data:`QUANTIZATIONS`; ``ValueError`` otherwise."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown TFLite quantization {quantize!r}; expected one of {', '.join(QUANTIZATIONS)}")
    return quantize


def _image_shape(model: keras.Model, input_shape: Optional[Sequence[int]]) -> tuple:
    if input_shape is None:
        shape = getattr(model, "input_shape", None)
        if shape is None or isinstance(shape, list) or len(shape) != 4 or None in shape[1:]:
            raise ValueError("cannot infer the static image input shape of this model (it needs one input of "
                             "shape (B, H, W, C)); pass input_shape=(H, W, C)")
        input_shape = shape[1:]
    return check_image_shape(input_shape, message="input_shape must be (H, W, C) with positive ints; got {value!r}")


def _write_batch1_saved_model(model: keras.Model, shape: tuple, folder: str) -> None:
    spec = tf.TensorSpec((1,) + shape, tf.float32, name="images")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, lambda images: model(images, training=False), input_signature=[spec])
    archive.write_out(folder, verbose=False)


def _weight_bytes(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)


def _route(model: keras.Model, via: str) -> str:
    """The route ``via`` names; for ``"auto"`` the frozen one unless the weights exceed :data:`FROZEN_MAX_BYTES`."""
    if via != "auto":
        return via
    return "frozen" if _weight_bytes(model) <= FROZEN_MAX_BYTES else "saved_model"


def _frozen_converter(model: keras.Model, shape: tuple) -> "tf.lite.TFLiteConverter":
    """A converter of the batch-1 inference function with its variables folded into constants."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1,) + shape, tf.float32, name="images")
    function = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec)
    # The frozen graph holds no variables: an empty trackable keeps the converter on its current path.
    return tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(function)],
                                                           tf.Module())


def convert_tflite(
    model: keras.Model,
    quantize: str = "none",
    calibration: Optional[np.ndarray] = None,
    input_shape: Optional[Sequence[int]] = None,
    via: str = "auto",
) -> bytes:
    """The ``.tflite`` flatbuffer of ``model``'s inference network.

    Args:
        model: a built Keras model mapping images ``(B, H, W, C)`` to logits (a training
            network is fine: its auxiliary head and DropPath layers are left out).
        quantize: ``"none"``, ``"float16"`` or ``"int8"`` (see the module docstring).
        calibration: float32 ``(N, H, W, C)`` representative images, preprocessed as the model
            expects them (required for ``"int8"``, ignored otherwise); see
            :func:`tfnas.train.calibration.calibration_images`.
        input_shape: ``(H, W, C)``; default: the model's own (static) input shape.
        via: ``"auto"``, ``"frozen"`` or ``"saved_model"`` (the conversion route; see the module docstring).

    Returns:
        The model bytes; input ``(1, H, W, C)`` float32 (int8 for ``"int8"``), output
        ``(1, classes)`` likewise.

    Raises:
        ValueError: unknown ``quantize`` or ``via``, missing or misshapen ``calibration``, no static input shape.
        RuntimeError: the converter failed (e.g. an op without an int8 kernel).
    """
    check_quantize(quantize)
    if calibration is not None and quantize != "int8":  # (it would be left unused without a word)
        raise ValueError(f"calibration images are used by int8 quantization only; got quantize={quantize!r}")
    if via not in ROUTES:
        raise ValueError(f"unknown TFLite conversion route via={via!r}; expected one of {', '.join(ROUTES)}")
    net = inference_model(model)
    shape = _image_shape(net, input_shape)
    via = _route(net, via)
    if quantize == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 quantization needs calibration images (N, H, W, C); got none")
        calibration = np.asarray(calibration, np.float32)
        if calibration.shape[1:] != shape:
            raise ValueError(f"calibration images must have shape (N,) + {shape}; got {calibration.shape}")
    with interrupts_kept():  # a Ctrl-C that TensorFlow swallows or replaces still stops the conversion
        with tempfile.TemporaryDirectory(prefix="tfnas-tflite-") as folder:
            if via == "frozen":
                converter = _frozen_converter(net, shape)
            else:
                saved = os.path.join(folder, "saved_model")
                _write_batch1_saved_model(net, shape, saved)
                converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[SIGNATURE])
            if quantize == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif quantize == "int8":
                images = calibration

                def representative():
                    for image in images:
                        yield [image[None]]

                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = representative
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            try:
                verbose = logger.isEnabledFor(logging.INFO)  # -v, or a library user's own logging
                quiet = quiet_stderr(show_on_error=True) if quiet_import_wanted(verbose) else contextlib.nullcontext()
                with quiet:  # the int8 quantizer prints its settings ("fully_quantize: 0, ...") to stderr
                    flatbuffer = converter.convert()
            except (ConverterError, ValueError, RuntimeError) as err:
                raise RuntimeError(f"TFLite conversion ({quantize}) failed: {first_line(err, 10 ** 6)}") from err
    logger.info("converted to TFLite (%s, via %s): %d bytes, input %s", quantize, via, len(flatbuffer), (1,) + shape)
    return flatbuffer


def export_tflite(
    model: keras.Model,
    path: str,
    quantize: str = "none",
    calibration: Optional[np.ndarray] = None,
    input_shape: Optional[Sequence[int]] = None,
    overwrite: bool = False,
) -> str:
    """Converts ``model``'s inference network (:func:`convert_tflite`) and writes it to ``path``
    (a file whose name ends in ``.tflite``), atomically.

    Returns:
        The absolute path written.

    Raises:
        ValueError: ``path`` does not end in ``.tflite``; bad ``quantize`` / ``calibration``.
        FileExistsError: ``path`` exists, is not empty and ``overwrite`` is false.
        FileNotFoundError: the parent folder of ``path`` does not exist.
        RuntimeError: the conversion failed (nothing is written).
    """
    if not os.fspath(path).endswith(".tflite"):
        raise ValueError(f"a TFLite model file must end in '.tflite'; got {path!r}")
    check_quantize(quantize)
    target = check_target(path, overwrite, one_file=True)
    flatbuffer = convert_tflite(model, quantize, calibration, input_shape)
    tmp = temp_sibling(target, suffix=".tflite")
    try:
        with writing(target), open(tmp, "wb") as f:
            f.write(flatbuffer)
            f.flush()
            os.fsync(f.fileno())
        install(tmp, target, overwrite)
    except BaseException:
        remove_path(tmp)
        raise
    logger.info("wrote TFLite model %s (%s, %d bytes)", target, quantize, len(flatbuffer))
    return target
