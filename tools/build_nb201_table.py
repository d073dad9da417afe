"""Builds the compact NAS-Bench-201 table shipped inside the package.

Reads the three published CSV files (200-epoch test accuracies, 12-epoch accuracies and
device latencies, all index-aligned with the official NAS-Bench-201 order) and writes
``tfnas/benchmarks/data/nb201.npz``: op ids per edge, float32 accuracy/latency arrays and
their column names. The output is committed; rerun this script only to rebuild it:

    python tools/build_nb201_table.py --src DIR_WITH_CSVS
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

from tfnas.runtime import end_of_start, stop_quietly_while_starting

if __name__ == "__main__":  # (not when a test imports it)
    stop_quietly_while_starting()  # (numpy and pandas load first: Ctrl-C meanwhile is one line, not a traceback)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DATASETS = ("cifar10", "cifar100", "imagenet16-120")
OUT = os.path.join(os.path.dirname(__file__), "..", "tfnas", "benchmarks", "data", "nb201.npz")


def parse_arch(text: str) -> list:
    """``|op~0|+|op~0|op~1|+...`` -> the six op names in edge order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)."""
    ops = []
    for node, group in enumerate(text.split("+"), start=1):
        items = [t for t in group.split("|") if t]
        if len(items) != node:
            raise ValueError(f"bad NAS-Bench-201 arch string {text!r}")
        for j, item in enumerate(items):
            op, src = item.split("~")
            if int(src) != j:
                raise ValueError(f"bad NAS-Bench-201 arch string {text!r}")
            ops.append(op)
    return ops


FILES_HELP = """files in --src (each row one cell, in the official NAS-Bench-201 index order):
  nats_bench_200epoch_test.csv  ArchitectureString (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|),
                                CIFAR10TestAccuracy200Epochs, CIFAR100TestAccuracy200Epochs,
                                ImageNetTestAccuracy200Epochs (%, 0-100)
  nb201_12epoch.csv             arch (0, 1, ...), cellstr (the same strings), cifar10-test,
                                cifar10-val, cifar100-test, cifar100-val, imagenet-test,
                                imagenet-val (%, the 12-epoch schedule)
  nb201_latency_ms.csv          arch (0, 1, ...) and one <device>_ms column per device
                                (batch-1 latency, ms)
ops: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3. A bad file is one error line
(exit 2); a path that cannot be read or written, exit 4."""


class TableError(ValueError):
    """Input files that cannot make the table: printed as one ``error:`` line, exit 2."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=FILES_HELP)
    parser.add_argument("--src", required=True, metavar="DIR", type=os.path.expanduser,
                        help="folder holding the three CSV files below, 15,625 rows each")
    parser.add_argument("--out", default=OUT, metavar="FILE", type=os.path.expanduser,
                        help="the .npz file written, replaced atomically (default: tfnas/benchmarks/data/nb201.npz of "
                             "this checkout, the table tfnas loads)")
    args = parser.parse_args(argv)
    end_of_start()
    try:
        return build(args.src, args.out)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except TableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 4


def _read(src: str, name: str, columns: list) -> pd.DataFrame:
    """One CSV file of ``src`` with at least ``columns``; any problem is a :class:`TableError` naming it."""
    path = os.path.join(src, name)
    try:
        frame = pd.read_csv(path)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise TableError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def _values(path: str, frame: pd.DataFrame, columns: list, low: float, high: float) -> np.ndarray:
    """``frame[columns]`` as float32, every value a finite number in ``[low, high]``."""
    try:
        values = frame[columns].to_numpy(np.float64)
    except (TypeError, ValueError) as exc:
        raise TableError(f"{path}: columns {', '.join(columns)} must be numbers ({exc})") from None
    bad = ~(np.isfinite(values) & (values >= low) & (values <= high))
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise TableError(f"{path}: row {row + 2} column {columns[col]} is {float(values[row, col])!r}; expected a "
                         f"number in [{low}, {high}] ({int(bad.sum())} such value(s))")
    return values.astype(np.float32)


def build(src: str, out: str) -> int:
    """Reads the CSV files of ``src`` and writes the table to ``out`` (atomically; a failed write
    leaves no temporary file)."""
    if not out.strip():
        raise TableError("--out: expected the .npz file to write, got an empty name")
    if os.path.isdir(out):
        raise TableError(f"--out {out}: is a folder; expected the .npz file to write")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):  # before the files are read, not after
        raise OSError(2, f"its folder {folder} does not exist", f"--out {out}")
    names = ("nats_bench_200epoch_test.csv", "nb201_12epoch.csv", "nb201_latency_ms.csv")
    acc200_cols = ["CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs"]
    low_cols = ["cifar10", "cifar100", "imagenet"]
    low_test, low_val = [f"{c}-test" for c in low_cols], [f"{c}-val" for c in low_cols]
    paths = [os.path.join(src, name) for name in names]
    acc = _read(src, names[0], ["ArchitectureString"] + acc200_cols)
    low = _read(src, names[1], ["arch", "cellstr"] + low_test + low_val)
    lat = _read(src, names[2], ["arch"])
    ops = []
    for row, text in enumerate(acc["ArchitectureString"]):
        try:
            cell = parse_arch(str(text))
        except ValueError:  # a malformed string, a source that is not a number
            cell = []
        unknown = [op for op in cell if op not in OPS]
        if len(cell) != 6 or unknown:
            why = f"unknown op {unknown[0]!r} (expected one of {', '.join(OPS)})" if unknown else "not a cell string"
            raise TableError(f"{paths[0]}: row {row + 2}: {str(text)[:200]!r}: {why}")
        ops.append([OPS.index(op) for op in cell])
    ops = np.array(ops, dtype=np.uint8)
    n = len(acc)
    if not (len(low) == len(lat) == n == 15625):
        raise TableError(f"expected 15625 rows in each file, got {len(acc)} ({paths[0]}), {len(low)} ({paths[1]}), "
                         f"{len(lat)} ({paths[2]})")
    if not (acc["ArchitectureString"].values == low["cellstr"].values).all():
        raise TableError(f"{paths[0]} and {paths[1]} are not index-aligned (their arch strings differ)")
    for path, frame in ((paths[2], lat), (paths[1], low)):
        if not (frame["arch"].values == np.arange(n)).all():
            raise TableError(f"{path}: column arch is not 0, 1, ..., {n - 1} (the files must be in index order)")
    if len({tuple(r) for r in ops}) != n:
        raise TableError(f"{paths[0]}: arch strings are not unique")
    lat_cols = [c for c in lat.columns if c != "arch"]
    if not lat_cols or not all(c.endswith("_ms") and len(c) > len("_ms") for c in lat_cols):  # (a device name)
        raise TableError(f"{paths[2]}: expected latency columns named <device>_ms beside arch; got {lat_cols}")

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        ops=ops,
        op_names=np.array(OPS),
        datasets=np.array(DATASETS),
        acc200_test=_values(paths[0], acc, acc200_cols, 0.0, 100.0),
        acc12_test=_values(paths[1], low, low_test, 0.0, 100.0),
        acc12_val=_values(paths[1], low, low_val, 0.0, 100.0),
        latency_ms=_values(paths[2], lat, lat_cols, 0.0, float("inf")),
        latency_devices=np.array([c[: -len("_ms")] for c in lat_cols]),
    )
    tmp = out + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, out)
    except OSError as exc:  # named as --out, not as the temporary file beside it
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise OSError(exc.errno, exc.strerror, f"--out {out}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    print(f"wrote {out} ({len(buf.getvalue()) / 1e6:.2f} MB, {n} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
