"""Builds a search-space network for one architecture and exports it.

    python tools/export.py --space nb201 \\
        --arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|' \\
        --num-classes 10 --out exported/nb201_best [--format saved_model|keras|tflite] [--input-size 32] \\
        [--weights trained.keras] [--overwrite] [--quantize none|float16|int8] [--calibration cifar10|FOLDER]

``--out`` is a folder for a SavedModel, a ``.keras`` file for ``--format keras`` and a ``.tflite`` file for
``--format tflite`` (the only format ``--quantize`` and ``--calibration`` apply to).

The inference network is exported (no DARTS auxiliary head, no DropPath): the printed parameter count is
Keras' count of it, the space's ``num_params`` (3,928,222 for ``--space darts --arch relativenas
--num-classes 10``; for the Zen space, whose own count takes each BatchNorm as C and the classifier's bias as 1,
Keras' count is larger).
``--weights`` may come from a training checkpoint or ``.keras`` file, or from an exported ``.keras`` file;
weights in a run directory (``RUN/model.keras``, ``RUN/checkpoints``) are exported with the space built as
that run's ``config.cfg`` built it (widths, cells, auxiliary head), other weights with the space's defaults
(without the auxiliary head below 32x32). Without ``--weights`` the network keeps initial weights drawn from a
fixed seed, the same in every export (for latency measurements and conversion checks, not for predictions). Every format takes float32 images normalised as in training,
``(pixel / 255 - mean) / std`` per RGB channel with the dataset's statistics (a run's ``metrics.json``:
``input_mean``, ``input_std``), and returns logits. A SavedModel serves with plain TensorFlow:
``tf.saved_model.load(DIR).serve(images)``.

``--format tflite`` writes a ``.tflite`` file (input one normalised image, ``(1, H, W, 3)``) for the
LiteRT interpreter (``ai-edge-litert``). ``--quantize float16`` stores float16 weights; ``--quantize
int8`` is full-integer post-training quantization (int8 weights, activations, input and output)
calibrated on ~100 training images of ``--calibration``: a registered dataset (``cifar10``, ...,
preprocessed as for evaluation) or an image folder ``root/train/<class>/*``; without it a
synthetic set of random images is used and a warning says that accuracy will suffer.
Errors are one ``error:`` line. Exit codes: 0 written; 2 bad arguments (space, arch, sizes, weights of
another network, an ``--out`` that exists without ``--overwrite`` or is a folder for a one-file
format); 3 the ``--calibration`` dataset is not on disk; 4 a file or folder that cannot be read or written
(``--weights``, the folder of ``--out``, a full disk); 1 the conversion itself failed; 130 Ctrl-C
(nothing is written).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import sys
import warnings
from typing import Any

from tfnas.runtime import configure_runtime

# TensorFlow loads (quietly) once the arguments are checked; Ctrl-C while it starts: one line
configure_runtime(defer_import=True, script=__name__ == "__main__")
from tfnas.cli import INTERRUPTED, TERMINATED, exit_with, import_tensorflow, out_of_memory_message
from tfnas.formats import FORMATS, MAX_CLASSES, MAX_IMAGE_SIZE, QUANTIZATIONS
from tfnas.io import clipped


def _report_warnings(caught: list) -> None:
    """The synthetic-calibration warning as one ``warning:`` line; any other warning as Python shows it."""
    if not caught:  # (the import below loads TensorFlow: after a Ctrl-C in its import, again and aloud)
        return
    from tfnas.train.calibration import SyntheticCalibrationWarning

    for w in caught:
        if issubclass(w.category, SyntheticCalibrationWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _in_range(low: int, high: int):
    """An argparse type: an integer in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high:,}], got {value}")
        return value

    return parse


def _export(args: argparse.Namespace):
    """Loads TensorFlow and exports: the :class:`tfnas.train.export.ExportResult`."""
    import_tensorflow(verbose=False)
    from tfnas.registry import SPACES
    from tfnas.train.calibration import SyntheticCalibrationWarning
    from tfnas.train.export import export_arch

    warnings.simplefilter("always", SyntheticCalibrationWarning)
    space = _space_of(args, SPACES)
    return export_arch(space, args.arch, args.num_classes, args.out, fmt=args.format, input_size=args.input_size,
                       weights=args.weights, overwrite=args.overwrite, quantize=args.quantize,
                       calibration=args.calibration)


def _space_of(args: argparse.Namespace, spaces: Any) -> Any:
    """The space ``--space`` names, built as the run that trained ``--weights`` built it (its ``config.cfg``: the
    widths, blocks, auxiliary head of ``[space]`` and ``[train]``), else with the space's defaults; an auxiliary
    head, which is never exported, is left out below 32x32, where it cannot be built."""
    from tfnas.train.provenance import trained_for

    found = trained_for(args.weights) if args.weights else None
    if found is not None and found.space == args.space:
        from tfnas.config import ConfigError, load_config
        from tfnas.run.factory import build_space

        try:
            cfg = load_config(found.config, check_names=False)
            if args.input_size < 32:  # (no auxiliary head, as below)
                cfg = cfg.replace(train=dataclasses.replace(cfg.train, aux_weight=0.0))
            return build_space(cfg)
        except (ConfigError, ValueError) as exc:  # (a config.cfg of another version): the defaults, then the checks
            print(f"warning: {found.config}: not read for the space's settings, its defaults are used ({exc})",
                  file=sys.stderr)
    cls = spaces.get(args.space)
    if args.input_size < 32 and "auxiliary" in inspect.signature(cls).parameters:
        return cls(auxiliary=False)
    return cls()


def _expected(err: Exception):
    """``(exit code, message)`` of a failure that is the user's to fix, or ``(0, "")`` for a bug.

    2 bad arguments (an unknown space, a bad arch, size or weights; an ``--out`` that exists or is a
    folder for a one-file format; a ``--calibration`` file that is not an image or is damaged; out of
    memory), 3 the ``--calibration`` dataset is not on disk, 4 a path that cannot be read or written,
    1 TensorFlow's converter failed. The classes are looked up among the loaded modules: an error
    raised before TensorFlow loaded cannot be one of theirs.
    """
    unknown = getattr(sys.modules.get("tfnas.registry"), "UnknownNameError", None)
    missing = getattr(sys.modules.get("tfnas.data.base"), "DatasetNotFoundError", None)
    if unknown is not None and isinstance(err, unknown):
        return 2, str(err)
    if isinstance(err, (ValueError, TypeError, FileExistsError, IsADirectoryError)):
        return 2, str(err)
    if missing is not None and isinstance(err, missing):  # its remedies name config keys this tool does not have
        found = getattr(err, "reason", str(err)).rstrip(". ")
        return 3, (f"--calibration: {found}. Prepare it with tensorflow_datasets on a machine with internet access "
                   f"and copy it into ~/tensorflow_datasets (or the folder TFDS_DATA_DIR names), or calibrate on an "
                   f"image folder: --calibration ROOT with ROOT/train/<class>/* images")
    if isinstance(err, OSError):
        return 4, f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
    if isinstance(err, RuntimeError):
        return 1, f"export failed: {err}"
    folder = sys.modules.get("tfnas.data.folder")  # loaded with TensorFlow: an error before it is not a folder's
    message = (folder.not_an_image(err) or folder.damaged_image(err) if folder else None) or out_of_memory_message(err)
    return (2, message) if message else (0, "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", required=True, help="registered search space, e.g. nb201")
    parser.add_argument("--arch", required=True, help="architecture string as the space encodes it")
    parser.add_argument("--num-classes", type=_in_range(1, MAX_CLASSES), required=True,
                        help=f"logits of the classifier (1 to {MAX_CLASSES:,})")
    parser.add_argument("--out", required=True, type=os.path.expanduser,
                        help="SavedModel directory, or a .keras / .tflite file with --format keras / tflite")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument("--input-size", type=_in_range(1, MAX_IMAGE_SIZE), default=32,
                        help=f"square input resolution (default 32, at most {MAX_IMAGE_SIZE})")
    parser.add_argument("--weights", type=os.path.expanduser,
                        help="trained weights: .keras / .weights.h5 file or a tf.train.Checkpoint prefix")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument("--quantize", choices=QUANTIZATIONS,
                        help="TFLite quantization (--format tflite only; default none)")
    parser.add_argument("--calibration", metavar="DATASET_OR_FOLDER", type=os.path.expanduser,
                        help="int8 calibration images: a registered dataset (e.g. cifar10) or an image folder "
                             "root/train/<class>/* (default: synthetic images, with a warning)")
    args = parser.parse_args(argv)
    if not args.out.strip():
        print("error: --out: expected the file or folder to write, got an empty name", file=sys.stderr)
        return 2
    if args.quantize is not None and args.format != "tflite":
        print(f"error: --quantize applies to --format tflite only (got --format {args.format})",
              file=sys.stderr)
        return 2
    if args.calibration is not None and args.quantize != "int8":
        print("error: --calibration is used by --quantize int8 only", file=sys.stderr)
        return 2

    from tfnas.interrupts import Terminated, interrupts_kept, termination_as_interrupt
    from tfnas.runtime import end_of_start

    end_of_start()  # (tfnas.runtime: until here Ctrl-C and SIGTERM printed their line and ended the process)
    caught: list = []
    terminated: list = []
    try:
        try:
            with termination_as_interrupt(terminated), interrupts_kept(), \
                    warnings.catch_warnings(record=True) as caught:
                result = _export(args)
        except Exception as err:
            if terminated:  # an error the SIGTERM caused (it stopped a callback, a context manager)
                raise Terminated from err
            raise
    except KeyboardInterrupt as stop:  # (SIGTERM too: kill, a scheduler's limit); also while TensorFlow loads
        caught.clear()  # a warning about what was not written: nothing was
        if isinstance(stop, Terminated) or terminated:
            print("terminated: nothing was written", file=sys.stderr)
            return TERMINATED
        print("interrupted: nothing was written", file=sys.stderr)
        return INTERRUPTED
    except Exception as err:
        try:  # may decode the whole --calibration folder again to find a damaged file
            code, message = _expected(err)
        except KeyboardInterrupt:
            print("interrupted: nothing was written", file=sys.stderr)
            return INTERRUPTED
        if not code:
            raise
        if code == 2 and ("image_shape" in message or "H and W" in message):  # the network refused the size
            message = f"--input-size {args.input_size}: {message}"
        print(f"error: {clipped(message)}", file=sys.stderr)
        return code
    finally:
        _report_warnings(caught)
    quantized = f" ({result.quantize})" if result.quantize else ""
    print(
        f"wrote {result.format}{quantized} {result.path}: {args.space} {result.arch}, "
        f"{result.num_params:,} trainable params, input {result.input_shape}, {args.num_classes} classes"
    )
    if result.calibration:
        print(f"int8 calibration: {result.calibration}")
    return TERMINATED if terminated else 0  # a SIGTERM swallowed on the way: written, but asked to stop


def _quiet_after_failure(code: int) -> int:
    """After a failed export, TensorFlow's warnings about values a failed restore left pending
    (printed when the half-loaded network is collected at exit, hundreds of lines) add nothing to
    the one error line."""
    if code != 0:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return code


if __name__ == "__main__":
    exit_with(_quiet_after_failure(main()))
