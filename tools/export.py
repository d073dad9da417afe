"""Builds a search-space network for one architecture and exports it.

    python tools/export.py --space nb201 \\
        --arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|' \\
        --num-classes 10 --out exported/nb201_best [--format saved_model|keras] [--input-size 32] \\
        [--weights trained.keras] [--overwrite]

The inference network is exported (no DARTS auxiliary head, no DropPath), so the printed
parameter count is the space's ``num_params`` (3,928,222 for ``--space darts --arch relativenas
--num-classes 10``). ``--weights`` may come from a training checkpoint or ``.keras`` file, or
from an exported ``.keras`` file. A SavedModel serves with plain TensorFlow:
``tf.saved_model.load(DIR).serve(images)``.
Exit codes: 0 written, 2 bad arguments (space, arch, sizes), 1 the export failed.
"""

from __future__ import annotations

import argparse
import sys

from tfnas.runtime import configure_runtime

configure_runtime()  # before anything imports TensorFlow
from tfnas.registry import SPACES, UnknownNameError
from tfnas.train.export import FORMATS, export_arch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", required=True, help="registered search space, e.g. nb201")
    parser.add_argument("--arch", required=True, help="architecture string as the space encodes it")
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--out", required=True, help="SavedModel directory, or a .keras file with --format keras")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument("--input-size", type=int, default=32, help="square input resolution (default 32)")
    parser.add_argument("--weights", help="trained weights: .keras / .weights.h5 file or a tf.train.Checkpoint prefix")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    args = parser.parse_args(argv)
    prog = parser.prog

    try:
        space = SPACES.get(args.space)()
    except UnknownNameError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        result = export_arch(
            space,
            args.arch,
            args.num_classes,
            args.out,
            fmt=args.format,
            input_size=args.input_size,
            weights=args.weights,
            overwrite=args.overwrite,
        )
    except (ValueError, TypeError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        print(f"{prog}: export failed: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {result.format} {result.path}: {args.space} {result.arch}, "
        f"{result.num_params:,} trainable params, input {result.input_shape}, {args.num_classes} classes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
