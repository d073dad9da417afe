"""Builds a search-space network for one architecture and exports it.

    python tools/export.py --space nb201 \\
        --arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|' \\
        --num-classes 10 --out exported/nb201_best [--format saved_model|keras|tflite] [--input-size 32] \\
        [--weights trained.keras] [--overwrite] [--quantize none|float16|int8] [--calibration cifar10|FOLDER]

``--out`` is a folder for a SavedModel, a ``.keras`` file for ``--format keras`` and a ``.tflite`` file for
``--format tflite`` (the only format ``--quantize`` and ``--calibration`` apply to).

The inference network is exported (no DARTS auxiliary head, no DropPath), so the printed
parameter count is the space's ``num_params`` (3,928,222 for ``--space darts --arch relativenas
--num-classes 10``). ``--weights`` may come from a training checkpoint or ``.keras`` file, or
from an exported ``.keras`` file. A SavedModel serves with plain TensorFlow:
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
import logging
import sys
import warnings

from tfnas.runtime import configure_runtime

configure_runtime(defer_import=True)  # TensorFlow loads (quietly) once the arguments are checked
from tfnas.cli import INTERRUPTED, TERMINATED, exit_with, import_tensorflow, out_of_memory_message
from tfnas.formats import FORMATS, QUANTIZATIONS


def _report_warnings(caught: list) -> None:
    """The synthetic-calibration warning as one ``warning:`` line; any other warning as Python shows it."""
    from tfnas.train.calibration import SyntheticCalibrationWarning

    for w in caught:
        if issubclass(w.category, SyntheticCalibrationWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", required=True, help="registered search space, e.g. nb201")
    parser.add_argument("--arch", required=True, help="architecture string as the space encodes it")
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--out", required=True,
                        help="SavedModel directory, or a .keras / .tflite file with --format keras / tflite")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument("--input-size", type=int, default=32, help="square input resolution (default 32)")
    parser.add_argument("--weights", help="trained weights: .keras / .weights.h5 file or a tf.train.Checkpoint prefix")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument("--quantize", choices=QUANTIZATIONS,
                        help="TFLite quantization (--format tflite only; default none)")
    parser.add_argument("--calibration", metavar="DATASET_OR_FOLDER",
                        help="int8 calibration images: a registered dataset (e.g. cifar10) or an image folder "
                             "root/train/<class>/* (default: synthetic images, with a warning)")
    args = parser.parse_args(argv)
    if args.quantize is not None and args.format != "tflite":
        print(f"error: --quantize applies to --format tflite only (got --format {args.format})",
              file=sys.stderr)
        return 2
    if args.calibration is not None and args.quantize != "int8":
        print("error: --calibration is used by --quantize int8 only", file=sys.stderr)
        return 2

    import_tensorflow(verbose=False)
    from tfnas.data import DatasetNotFoundError
    from tfnas.data.folder import damaged_image, not_an_image
    from tfnas.interrupts import Terminated, interrupts_kept, termination_as_interrupt
    from tfnas.registry import SPACES, UnknownNameError
    from tfnas.train.calibration import SyntheticCalibrationWarning
    from tfnas.train.export import export_arch

    try:
        space = SPACES.get(args.space)()
    except UnknownNameError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    caught: list = []
    terminated: list = []
    try:
        try:
            with termination_as_interrupt(terminated), interrupts_kept(), \
                    warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SyntheticCalibrationWarning)
                result = export_arch(
                    space,
                    args.arch,
                    args.num_classes,
                    args.out,
                    fmt=args.format,
                    input_size=args.input_size,
                    weights=args.weights,
                    overwrite=args.overwrite,
                    quantize=args.quantize,
                    calibration=args.calibration,
                )
        except Exception as err:
            if terminated:  # an error the SIGTERM caused (it stopped a callback, a context manager)
                raise Terminated from err
            raise
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileExistsError, IsADirectoryError) as err:  # a path given: another --out or --overwrite, a file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DatasetNotFoundError as err:  # the --calibration dataset is not on disk
        print(f"error: {err}", file=sys.stderr)
        return 3
    except OSError as err:
        shown = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
        print(f"error: {shown}", file=sys.stderr)
        return 4
    except RuntimeError as err:
        print(f"error: export failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # (SIGTERM too: kill, a scheduler's limit)
        if isinstance(stop, Terminated) or terminated:
            print("terminated: nothing was written", file=sys.stderr)
            return TERMINATED
        print("interrupted: nothing was written", file=sys.stderr)
        return INTERRUPTED
    except Exception as err:  # a --calibration file that is not an image or is damaged; out of memory
        try:  # may decode the whole folder again to find the damaged file
            message = not_an_image(err) or damaged_image(err) or out_of_memory_message(err)
        except KeyboardInterrupt:
            print("interrupted: nothing was written", file=sys.stderr)
            return INTERRUPTED
        if not message:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
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
