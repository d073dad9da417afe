"""Builds the compact NAS-Bench-201 table shipped inside the package.

Reads the three published CSV files (200-epoch test accuracies, 12-epoch accuracies and
device latencies, all index-aligned with the official NAS-Bench-201 order) and writes
``tfnas/benchmarks/data/nb201.npz``: op ids per edge, float32 accuracy/latency arrays and
their column names. The output is committed; rerun this script only to rebuild it:

    python tools/build_nb201_table.py --src DIR_WITH_CSVS
"""

from __future__ import annotations

import argparse
import io
import os
import sys

import numpy as np
import pandas as pd

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


class TableError(ValueError):
    """Input files that cannot make the table: printed as one ``error:`` line, exit 2."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="folder holding the three NAS-Bench-201 CSV files")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    try:
        return build(args.src, args.out)
    except (OSError, TableError, KeyError, ValueError, pd.errors.ParserError) as exc:
        what = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"error: {what}", file=sys.stderr)
        return 4 if isinstance(exc, OSError) else 2


def build(src: str, out: str) -> int:
    """Reads the CSV files of ``src`` and writes the table to ``out`` (atomically)."""
    acc = pd.read_csv(os.path.join(src, "nats_bench_200epoch_test.csv"))
    low = pd.read_csv(os.path.join(src, "nb201_12epoch.csv"))
    lat = pd.read_csv(os.path.join(src, "nb201_latency_ms.csv"))
    n = len(acc)
    if not (len(low) == len(lat) == n == 15625):
        raise TableError(f"expected 15625 rows in each file, got {len(acc)}, {len(low)}, {len(lat)}")
    if not (acc["ArchitectureString"].values == low["cellstr"].values).all():
        raise TableError("200-epoch and 12-epoch files are not index-aligned")
    if not (lat["arch"].values == np.arange(n)).all() or not (low["arch"].values == np.arange(n)).all():
        raise TableError("latency / 12-epoch files are not in index order")

    ops = np.array([[OPS.index(o) for o in parse_arch(s)] for s in acc["ArchitectureString"]], dtype=np.uint8)
    if len({tuple(r) for r in ops}) != n:
        raise TableError("arch strings are not unique")
    acc200 = acc[["CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs"]]
    low_cols = ["cifar10", "cifar100", "imagenet"]
    acc12_test = low[[f"{c}-test" for c in low_cols]]
    acc12_val = low[[f"{c}-val" for c in low_cols]]
    lat_cols = [c for c in lat.columns if c != "arch"]

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        ops=ops,
        op_names=np.array(OPS),
        datasets=np.array(DATASETS),
        acc200_test=acc200.to_numpy(np.float32),
        acc12_test=acc12_test.to_numpy(np.float32),
        acc12_val=acc12_val.to_numpy(np.float32),
        latency_ms=lat[lat_cols].to_numpy(np.float32),
        latency_devices=np.array([c[: -len("_ms")] for c in lat_cols]),
    )
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, out)
    print(f"wrote {out} ({len(buf.getvalue()) / 1e6:.2f} MB, {n} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
