"""Model export: TensorFlow SavedModel (for serving, no tfnas needed), ``.keras`` and TFLite files.

The TFLite writer (float32, float16, int8) is :func:`tfnas.train.tflite.export_tflite`;
:func:`export_arch` dispatches to it for ``fmt="tflite"``.

Both writers are atomic: they write a hidden temporary sibling of the target (``.NAME.tmp-*``),
then rename it into place, so a crash leaves either the old target or the new one, never a
half-written one. An existing non-empty target is refused unless ``overwrite=True``; a
directory being replaced is first renamed to a hidden ``.NAME.old-*`` sibling and deleted after
the new one is in place (a crash between those two renames leaves the old one there).

Both write the *inference network* of the model they are given (:func:`inference_model`):
training-only parts are left out, so a DARTS network is exported without its auxiliary head
and every network without its DropPath (and Dropout) layers. The exported trainable-parameter
count is then the space's analytic ``num_params(arch)`` (e.g. 3,928,222 for the RelativeNAS
cell at C=36, 20 cells, 10 classes, not the 4,404,648 of the training network), and a model
trained by ``tools/train.py`` is exported the same way without the run layer doing anything.

The SavedModel has one endpoint, ``serve`` (also the ``serving_default`` signature), taking
float32 images ``(None, H, W, C)`` named ``images`` and returning logits ``(None, classes)``
computed in inference mode. It loads with plain TensorFlow::

    loaded = tf.saved_model.load(path)
    logits = loaded.serve(images)
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import zipfile
from typing import Any, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.checks import check_image_shape, check_int
from tfnas.formats import FORMATS, MAX_CLASSES, MAX_IMAGE_SIZE
from tfnas.io import first_line
from tfnas.train.checkpoint import tf_warnings_off, unused_weights
from tfnas.train.provenance import check_trained_arch
from tfnas.train.seeding import LayerSeedStream
from tfnas.train.targets import check_target, install, remove_path, temp_sibling, writing

__all__ = [
    "ExportResult",
    "count_params",
    "export_arch",
    "export_keras",
    "export_saved_model",
    "inference_model",
    "load_weights",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What ``export_arch`` wrote.

    Attributes:
        path: the file or directory written.
        format: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
        arch: the architecture string that was built.
        num_params: trainable parameters of the exported model.
        input_shape: ``(H, W, C)`` of the model input.
        quantize: TFLite quantization (``"none"``, ``"float16"``, ``"int8"``); ``""`` for other formats.
        calibration: where the int8 calibration images came from; ``""`` otherwise.
    """

    path: str
    format: str
    arch: str
    num_params: int
    input_shape: Tuple[int, int, int]
    quantize: str = ""
    calibration: str = ""


def _training_only_types() -> Tuple[type, ...]:
    """Layer types that only act in training mode (identity at inference)."""
    from tfnas.spaces.ops import DropPath

    names = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
             "GaussianDropout", "AlphaDropout")
    return (DropPath,) + tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


def _is_functional(model: keras.Model) -> bool:
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - other Keras layouts
        return hasattr(model, "_operations") and hasattr(model, "_inputs_struct")
    return isinstance(model, Functional) and not isinstance(model, keras.Sequential)


def inference_model(model: keras.Model) -> keras.Model:
    """The network to serve for ``model``: training-only parts removed, weights shared.

    - A model with an ``inference_model()`` method (e.g. the DARTS network, which drops its
      auxiliary head and DropPath layers) is asked for it.
    - A functional model is rebuilt from the same layer objects (so the same variables), with
      every top-level DropPath / Dropout-like layer replaced by the identity it is at inference.
    - Anything else is returned unchanged.

    The result gives the same outputs as ``model(x, training=False)``. Export functions call
    this themselves; it is idempotent.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model to serve or export; got {type(model).__name__}")
    hook = getattr(model, "inference_model", None)
    if callable(hook):
        return hook()
    if not _is_functional(model):
        return model
    skip = _training_only_types()
    if not any(isinstance(layer, skip) for layer in model.layers):
        return model

    def call(layer, *args, **kwargs):
        return args[0] if isinstance(layer, skip) else layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def count_params(model: keras.Model) -> int:
    """Trainable parameters of ``model`` (each shared variable once)."""
    seen = {id(w): w for w in model.trainable_weights}
    return int(sum(int(np.prod(w.shape)) for w in seen.values()))


def _signature_shape(model: keras.Model, input_shape: Optional[Sequence[Optional[int]]]) -> Tuple[Optional[int], ...]:
    if input_shape is None:
        shape = getattr(model, "input_shape", None)
        if shape is None or isinstance(shape, list) or len(shape) != 4:
            raise ValueError(
                "cannot infer the image input shape of this model (it needs one input of shape (B, H, W, C)); "
                "pass input_shape=(H, W, C)"
            )
        return (None,) + tuple(shape[1:])
    return (None,) + check_image_shape(
        input_shape, none_ok=True, message="input_shape must be (H, W, C) with positive ints or None; got {value!r}")


def export_saved_model(
    model: keras.Model,
    path: str,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    overwrite: bool = False,
) -> str:
    """Writes the inference network of ``model`` (:func:`inference_model`) as a SavedModel
    directory at ``path`` with a ``serve`` endpoint.

    Args:
        model: a built Keras model mapping images ``(B, H, W, C)`` to logits (a training
            network is fine: its auxiliary head and DropPath layers are left out).
        path: target directory.
        input_shape: ``(H, W, C)`` of the serving signature (``None`` entries allowed);
            default: the model's own input shape.
        overwrite: replace an existing non-empty ``path``.

    Returns:
        The absolute path written.

    Raises:
        FileExistsError: ``path`` exists, is not empty and ``overwrite`` is false.
        FileNotFoundError: the parent folder of ``path`` does not exist.
    """
    target = check_target(path, overwrite, one_file=False)
    model = inference_model(model)
    spec = tf.TensorSpec(_signature_shape(model, input_shape), tf.float32, name="images")
    tmp = temp_sibling(target)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda images: model(images, training=False), input_signature=[spec])
        with writing(target):
            os.mkdir(tmp)
            archive.write_out(tmp, verbose=False)
        install(tmp, target, overwrite)
    except BaseException:
        remove_path(tmp)
        raise
    logger.info("wrote SavedModel %s (input %s)", target, spec.shape)
    return target


def export_keras(model: keras.Model, path: str, overwrite: bool = False) -> str:
    """Writes the inference network of ``model`` (:func:`inference_model`) as a ``.keras`` file at
    ``path`` (which must end in ``.keras``).

    The file reloads with ``keras.saving.load_model(path)`` once ``tfnas.spaces`` is imported
    (importing it registers the networks and layers as serializables; ``import tfnas`` alone loads
    neither Keras nor them).

    Raises:
        ValueError: ``path`` does not end in ``.keras``.
        FileExistsError: ``path`` exists, is not empty and ``overwrite`` is false.
    """
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"a Keras model file must end in '.keras'; got {path!r}")
    target = check_target(path, overwrite, one_file=True)
    model = inference_model(model)
    tmp = temp_sibling(target, suffix=".keras")
    try:
        with writing(target):
            model.save(tmp, overwrite=True)
        install(tmp, target, overwrite)
    except BaseException:
        remove_path(tmp)
        raise
    logger.info("wrote Keras model %s", target)
    return target


def load_weights(model: keras.Model, path: str) -> None:
    """Loads trained weights into ``model`` (which must have the same architecture).

    Accepts a ``.keras`` model file (weights copied in order; a training network's file also
    fits its inference network), a ``.weights.h5`` file, or a
    TensorFlow checkpoint holding the model under the key ``model`` (as the Trainer's
    ``TrainCheckpoint`` writes it): a checkpoint prefix, or a checkpoint folder whose latest
    checkpoint is used. Other objects in the checkpoint (optimizer, epoch, ...) are ignored.

    A checkpoint must fit both ways: every variable of ``model`` restored and every weight array of
    its ``model`` used (so one of another cell whose common part fits is refused). Architectures
    that differ only in weight-free operations (pooling, skip, none) hold the same arrays and
    cannot be told apart by their weights (:func:`export_arch` also checks the architecture that
    the run directory of a training's weights names, :mod:`tfnas.train.provenance`).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the stored weights do not fit ``model``.
    """
    path = os.fspath(path)
    if path.endswith(".keras") or path.endswith(".weights.h5"):
        if os.path.isdir(path):
            raise IsADirectoryError(f"weights file {path} is a folder; expected a .keras or .weights.h5 file")
        if not os.path.exists(path):
            raise FileNotFoundError(f"weights file {path} does not exist")
        if not os.path.isfile(path):
            raise ValueError(f"weights file {path} is not a regular file (a device, pipe or socket); expected a "
                             f".keras or .weights.h5 file")
        if path.endswith(".weights.h5"):
            with open(path, "rb") as f:
                if f.read(8) != b"\x89HDF\r\n\x1a\n":
                    raise ValueError(f"{path}: not an HDF5 file (a .weights.h5 file is written by "
                                     f"model.save_weights)")
            try:
                model.load_weights(path)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: cannot load these weights into the requested architecture "
                                 f"({first_line(exc)})") from None
            return
        if not zipfile.is_zipfile(path):  # Keras would say "File not found" of a file that is there
            raise ValueError(f"{path}: not a readable .keras model file (not a zip archive)")
        try:
            source = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a readable .keras model file ({first_line(exc)})") from None
        src, dst = source.get_weights(), model.get_weights()
        shapes_src, shapes_dst = [w.shape for w in src], [w.shape for w in dst]
        if shapes_src != shapes_dst:  # a training network's file (auxiliary head, DropPath) into a served one
            served = inference_model(source).get_weights()
            if [w.shape for w in served] == shapes_dst:
                src, shapes_src = served, shapes_dst
        if shapes_src != shapes_dst:
            pairs = zip(shapes_src, shapes_dst)
            first = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(src), len(dst)))
            where = (f"weight array {first} is {shapes_src[first]} in the file but {shapes_dst[first]} in the network"
                     if first < min(len(src), len(dst)) else
                     f"the file holds {len(src)} weight arrays, the network {len(dst)}")
            raise ValueError(f"the model in {path} does not match the requested architecture ({where}: another "
                             f"architecture, or another --num-classes / input size?)")
        model.set_weights(src)
        return
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"the folder {path} holds no TensorFlow checkpoint")
        path = latest
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(
            f"{path} is neither a .keras / .weights.h5 file nor a TensorFlow checkpoint prefix (no {path}.index)"
        )
    checkpoint, failure = tf.train.Checkpoint(model=model), ""
    with tf_warnings_off():  # a failed read warns once per value it did not restore (hundreds of lines)
        try:
            status = checkpoint.read(path)
        except (tf.errors.OpError, ValueError, IndexError) as exc:  # damaged, truncated, of another network
            failure = first_line(exc)
        if failure:
            del checkpoint  # its pending restore warns when collected: while the warnings are off
            gc.collect()
    if failure:
        raise ValueError(f"the checkpoint {path} cannot be read ({failure})")
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        status.expect_partial()  # no warning per unmatched value when the status is collected
        raise ValueError(f"the checkpoint {path} does not fit the requested architecture "
                         f"({first_line(err)})") from None
    status.expect_partial()  # the optimizer, epoch, DropPath rates: not needed here
    unused = sorted(unused_weights(model, path))
    if unused:  # every variable of the model restored, but from another architecture's common part
        raise ValueError(f"the checkpoint {path} does not fit the requested architecture: it holds "
                         f"{len(unused)} weight arrays this architecture has no place for (first: {unused[0]})")


def export_arch(
    space: Any,
    arch_text: str,
    num_classes: int,
    out: str,
    fmt: str = "saved_model",
    input_size: int = 32,
    weights: Optional[str] = None,
    overwrite: bool = False,
    quantize: Optional[str] = None,
    calibration: Optional[str] = None,
) -> ExportResult:
    """Builds ``space``'s network for ``arch_text`` and exports its inference network (the logic
    of ``tools/export.py``).

    The network is built as the space builds it for training (a DARTS space adds its auxiliary
    head), so ``weights`` may come from a training checkpoint or ``.keras`` file, or from an
    exported (inference-only) ``.keras`` file. ``num_params`` of the result counts the exported
    network, which equals ``space.num_params(arch, num_classes)``.

    Args:
        space: a search space instance (``build``, ``decode``, ``encode``).
        arch_text: architecture string as written by ``space.encode``.
        num_classes: logits per image.
        out: target directory (``saved_model``), ``.keras`` file (``keras``) or ``.tflite`` file (``tflite``).
        fmt: ``"saved_model"``, ``"keras"`` or ``"tflite"``.
        input_size: square input resolution; images are ``(input_size, input_size, 3)``.
        weights: optional ``.keras`` / ``.weights.h5`` file or checkpoint prefix to load first.
        overwrite: replace an existing non-empty target.
        quantize: ``tflite`` only: ``"none"`` (default), ``"float16"`` or ``"int8"``
            (see :mod:`tfnas.train.tflite`).
        calibration: ``tflite`` with ``"int8"`` only: a registered dataset name or an image-folder
            root for the representative images; ``None`` calibrates on synthetic images, with a
            warning (:mod:`tfnas.train.calibration`).

    Raises:
        ValueError: bad arch string, format, sizes, quantization or calibration source.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    input_size = check_int(input_size, "input_size", low=1, high=MAX_IMAGE_SIZE,
                           message="input size must be an integer in [{low}, {high}]; got {value!r}")
    num_classes = check_int(num_classes, "num_classes", low=1, high=MAX_CLASSES,
                            message="the number of classes must be an integer in [{low}, {high}]; got {value!r}")
    if fmt in ("keras", "tflite") and not os.fspath(out).endswith("." + fmt):
        raise ValueError(f"the {fmt} format writes one file whose name must end in '.{fmt}'; got {out!r}")
    file_like = next((f for f in ("keras", "tflite") if os.fspath(out).rstrip("/" + os.sep).endswith("." + f)), None)
    if fmt == "saved_model" and file_like:  # a SavedModel folder named like a file no tool would read as one
        raise ValueError(f"the saved_model format writes a folder; {out!r} is named like a .{file_like} file (for "
                         f"that, the {file_like} format)")
    if isinstance(space, (str, type)) or not callable(getattr(space, "decode", None)):
        raise TypeError(f"space must be a search-space instance with build/decode/encode, e.g. Nb201Space() "
                        f"(tfnas.spaces); got {space!r}")
    if fmt != "tflite" and calibration:
        raise ValueError(f"a calibration source is used by int8 tflite exports only; got format {fmt!r}")
    if fmt != "tflite" and quantize not in (None, "none"):
        raise ValueError(
            f"quantization applies to the tflite format only; got format {fmt!r} with quantize={quantize!r}")
    if fmt == "tflite":
        from tfnas.train import calibration as calib
        from tfnas.train import tflite

        quantize = tflite.check_quantize("none" if quantize is None else quantize)
        if calibration is not None and quantize != "int8":
            raise ValueError(f"a calibration source is used by int8 quantization only; got quantize={quantize!r}")
        calib.check_calibration_source(calibration)
    target = check_target(out, overwrite, one_file=fmt != "saved_model")  # fail before the (slow) build
    for name, given in (("weights", weights), ("calibration", calibration)):  # replacing the target removes them
        if isinstance(given, str) and os.path.realpath(given).startswith(os.path.realpath(target) + os.sep):
            raise ValueError(f"the {name} {given} lie inside the export target {target}, which the export "
                             f"replaces: move them out first")
    arch = space.decode(arch_text)
    if weights is not None:  # weights of a tfnas run: its config.cfg names the architecture they fit
        check_trained_arch(space, arch, weights)
    input_shape = (input_size, input_size, 3)
    with LayerSeedStream(0).active():  # without weights, the same initial ones each time (exports reproducible)
        model = space.build(arch, num_classes, input_shape=input_shape)
    if weights is not None:
        try:
            load_weights(model, weights)
        except ValueError as first:  # weights of the exported (inference-only) network
            try:
                load_weights(inference_model(model), weights)
            except ValueError:
                raise first from None
    net = inference_model(model)
    source = ""
    if fmt == "saved_model":
        path = export_saved_model(net, out, overwrite=overwrite)
    elif fmt == "keras":
        path = export_keras(net, out, overwrite=overwrite)
    else:
        images = None
        if quantize == "int8":
            found = calib.calibration_images(calibration, input_shape)
            images, source = found.images, found.source
        path = tflite.export_tflite(net, out, quantize, images, input_shape=input_shape, overwrite=overwrite)
    return ExportResult(path=path, format=fmt, arch=space.encode(arch), num_params=count_params(net),
                        input_shape=input_shape, quantize=quantize if fmt == "tflite" else "", calibration=source)
