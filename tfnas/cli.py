"""The command line behind ``tools/``: argument parsing, config loading, printing.

Only this module and ``tools/`` print; library code logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional


def set_runtime_defaults() -> None:
    """Environment defaults for TensorFlow, applied before it is imported (the user's values win).

    ``TF_ENABLE_ONEDNN_OPTS=1``: the tensorflow-cpu wheel leaves oneDNN's CPU kernels off on
    some x86 machines; with them a 3x3 convolution ran 1.75x faster and the Zen evolution 1.5x
    (docs/PERFORMANCE.md). TensorFlow reads the variable when it loads, so this does nothing
    once it is imported.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


set_runtime_defaults()

from tfnas.config import ConfigError, load_config  # noqa: E402  (after the TensorFlow defaults)


def _config_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="path of a .cfg file (see cfg/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key (repeatable), e.g. --set budget.repeats=2")
    parser.add_argument("--out-dir", default=None, help="run directory (overrides [run] out_dir)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def _load(args: argparse.Namespace):
    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"run.out_dir={args.out_dir}")
    if args.no_progress:
        overrides.append("run.progress=false")
    return load_config(args.config, overrides)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def train_eval_main(argv: Optional[List[str]] = None) -> int:
    """``tools/train_eval.py CFG [--set k=v ...]``: run a configured search sweep."""
    args = _config_parser("Run a tfnas search experiment from a .cfg file.").parse_args(argv)
    _setup_logging(args.verbose)
    try:
        cfg = _load(args)
        from tfnas.driver import run_sweep
        from tfnas.search_driver import method_kind, run_analysis, run_search

        kind = method_kind(cfg)
        if kind == "search":
            run = run_search(cfg)
            print()
            print(run.summary())
            print(f"\n{'resumed: search already finished; ' if run.resumed else ''}results in {run.run_dir}/")
            return 0
        if kind == "analysis":
            table = run_analysis(cfg)
            print()
            print(table.to_string(index=False))
            print(f"\nresults in {cfg.out_dir}/")
            return 0
        outcome = run_sweep(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # data not available offline: one clear line, not a traceback
        from tfnas.data import DatasetNotFoundError

        if isinstance(exc, DatasetNotFoundError):
            print(f"error: {exc}", file=sys.stderr)
            return 3
        raise
    from tfnas.results import format_table

    print()
    print(format_table(outcome.summary))
    print(f"\nbenchmark optimum ({cfg.dataset.name}): {outcome.optimum:.2f}%")
    print(f"{outcome.new_records} new record(s), {len(outcome.records)} in total; results in {outcome.run_dir}/")
    return 0


def compare_main(argv: Optional[List[str]] = None) -> int:
    """``tools/compare.py RUN_DIR [RUN_DIR ...]``: one table and one plot over several runs."""
    parser = argparse.ArgumentParser(description="Merge tfnas run directories into one table and plot.")
    parser.add_argument("run_dirs", nargs="+", help="run directories (each holds runs.jsonl)")
    parser.add_argument("--out", default="runs/compare", help="where summary.csv and the plot go")
    args = parser.parse_args(argv)
    _setup_logging(False)
    from tfnas.registry import BENCHMARKS
    from tfnas.results import format_table, load_run_dir, write_outputs

    records = []
    for run_dir in args.run_dirs:
        try:
            records.extend(load_run_dir(run_dir))
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not records:
        print("error: the run directories hold no records", file=sys.stderr)
        return 2
    from tfnas.benchmarks.nb201 import DATASETS as NB201_DATASETS

    benchmark = BENCHMARKS.get("nb201")()
    datasets = sorted({r.dataset for r in records})
    # The optimum line is drawn where the benchmark knows the dataset.
    optimum = {d: benchmark.optimum(d) for d in datasets if d in NB201_DATASETS}
    os.makedirs(args.out, exist_ok=True)
    df = write_outputs(args.out, records, optimum, title="compare")
    print(format_table(df))
    print(f"\nwrote {args.out}/summary.csv and {args.out}/accuracy_vs_budget.png")
    return 0


def train_main(argv: Optional[List[str]] = None) -> int:
    """``tools/train.py CFG``: train one architecture ([space] arch) on a dataset, evaluate, export."""
    args = _config_parser("Train one architecture from a .cfg file ([space] name/arch, [dataset], "
                          "[train], [export]); a killed run resumes from its last checkpoint.").parse_args(argv)
    _setup_logging(args.verbose)
    try:
        cfg = _load(args)
        from tfnas.data import DatasetNotFoundError
        from tfnas.train.checkpoint import CheckpointMismatchError
        from tfnas.train.runner import train_architecture

        try:
            outcome = train_architecture(cfg)
        except DatasetNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
    except (ConfigError, ValueError, CheckpointMismatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(outcome.table())
    print(f"\nresults in {outcome.run_dir}/")
    return 0
