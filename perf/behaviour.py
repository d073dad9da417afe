"""Behaviour check for refactors: short seeded runs before and after, compared record by record.

    python perf/behaviour.py record DIR      # run the reference commands, results under DIR/<name>/
    python perf/behaviour.py compare A B     # identical results (timings aside)? exit 1 if not

The commands go through the command line (``tfnas.cli.train_eval_main``) exactly as a user
types them, so the check survives any reshaping of the package behind it. Compared: every
``runs.jsonl`` record (sweeps), ``result.json`` / ``best_arch.txt`` / ``history.csv``
(searches) and the analysis CSVs, with wall-clock fields and per-cell timings removed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
from typing import Dict, List, Tuple

# name -> (cfg, overrides, needs mocked tfds data)
SWEEP = ["budget.start=20", "budget.stop=40", "budget.step=20", "budget.repeats=2", "predictor.epochs=20"]
CASES: Dict[str, Tuple[str, List[str], bool]] = {
    "siams_nsam": ("cfg/siams_nsam.cfg", SWEEP, False),
    "predictor": ("cfg/predictor.cfg", SWEEP, False),
    "rand": ("cfg/rand.cfg", SWEEP[:4], False),
    "tinynano_siams": ("cfg/tinynano_siams.cfg", [
        "run.jit_compile=false", "run.strategy=one_device", "space.channels=16", "space.cells_per_stage=1",
        "budget.max_flops=0", "budget.start=4", "budget.stop=4", "budget.repeats=1", "dataset.download=false",
        "dataset.train_subset=32", "dataset.eval_subset=16", "dataset.batch_size=16",
        "dataset.eval_batch_size=16", "predictor.epochs=4", "predictor.ec_epochs=1", "search.pool_size=30",
        "search.rank_k=2", "search.final_rank_k=2", "search.update_split=2", "train.epochs=1"], True),
    "proxy_corr_nb201": ("cfg/proxy_corr_nb201.cfg", ["proxy.subset=20"], False),
    "zen_cifar10_1M": ("cfg/zen_cifar10_1M.cfg", [
        "search.population=12", "search.iterations=30", "search.record_every=10", "proxy.batch_size=8",
        "train.enabled=false"], False),
}

# Fields that measure time, not behaviour.
TIMING_KEYS = {"wall_s", "search_wall_s", "seconds", "seconds_per_cell", "s_per_cell", "time_s", "elapsed_s",
               "config_id"}  # config_id: run identity metadata, added to records by the redesign


def record(out: str, names: List[str]) -> int:
    try:  # as tools/train_eval.py does (older trees set the defaults when tfnas.cli is imported)
        from tfnas.runtime import set_runtime_defaults

        set_runtime_defaults()
    except ImportError:
        pass
    from tfnas.cli import train_eval_main

    failed = []
    for name in names or list(CASES):
        cfg, sets, mock = CASES[name]
        run_dir = os.path.join(out, name)
        argv = [cfg, "--out-dir", run_dir, "--no-progress"]
        for s in sets + ([f"dataset.data_dir={os.path.join(run_dir, 'no_data')}"] if mock else []):
            argv += ["--set", s]
        ctx = contextlib.nullcontext()
        if mock:
            import tensorflow_datasets as tfds

            ctx = tfds.testing.mock_data(num_examples=48)
        print(f"== {name}: {' '.join(argv)}", flush=True)
        with ctx:
            rc = train_eval_main(argv)
        if rc in (130, 143):  # Ctrl-C or SIGTERM: stop here, not go on with the next case
            return rc
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in TIMING_KEYS and not k.endswith("_s")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _load(path: str):
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as fh:
            return sorted((_clean(json.loads(l)) for l in fh if l.strip()),
                          key=lambda r: (r.get("budget", 0), r.get("repeat", 0)))
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            return _clean(json.load(fh))
    if path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as fh:
            return [_clean(dict(row)) for row in csv.DictReader(fh)]
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def compare(a: str, b: str) -> int:
    compared, diffs = 0, []
    for root, _, files in os.walk(a):
        for f in sorted(files):
            if not f.endswith((".jsonl", ".json", ".csv", ".txt")) or f in ("summary.csv",):
                continue
            pa = os.path.join(root, f)
            rel = os.path.relpath(pa, a)
            if "oracle_cache" in rel or "search_state" in rel or "checkpoints" in rel:
                continue
            pb = os.path.join(b, rel)
            if not os.path.exists(pb):
                diffs.append(f"{rel}: missing in {b}")
                continue
            compared += 1
            if _load(pa) != _load(pb):
                diffs.append(f"{rel}: differs")
    for d in diffs:
        print(d)
    print(f"{compared} files compared, {len(diffs)} difference(s)")
    return 1 if diffs or compared == 0 else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out")
    r.add_argument("names", nargs="*", help=f"cases to run (default all): {', '.join(CASES)}")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        return record(args.out, args.names)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
