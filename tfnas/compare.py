"""``tools/compare.py``: several sweeps' run directories merged into one table and one plot.

Records, tables and plots only: no TensorFlow. Runs of one method label from different directories keep
rows of their own, labelled by as much of their path as tells them apart (:func:`distinct_names`).
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List

from tfnas.config import ConfigError
from tfnas.io import RUN_CONFIG_FILE


class UnwritablePathError(ConfigError):
    """A folder the command cannot create or write: exit 4, as for any unwritable path."""

    exit_code = 4


def check_writable_folder(option: str, folder: str) -> None:
    """Refuses, in one line naming ``option``, a folder that is a file, cannot be written, or
    cannot be created (its nearest existing parent is a file or not writable, or making it fails). Leaves
    nothing behind (the folders made to try are removed), so a refused or failed command leaves nothing."""
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            raise ConfigError(f"{option} {folder}: is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UnwritablePathError(f"{option} {folder}: the folder is not writable")
        return
    parent = os.path.dirname(os.path.abspath(folder))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UnwritablePathError(f"{option} {folder}: cannot be created ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnwritablePathError(f"{option} {folder}: cannot be created ({parent} is not writable)")
    made: List[str] = []  # a file system that refuses what access() allows (/proc, a full disk): tried, then undone
    try:
        missing, path = [], os.path.abspath(folder)
        while not os.path.exists(path):
            missing.append(path)
            path = os.path.dirname(path)
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:  # made meanwhile by another process: there, and not ours to remove
                continue
            made.append(path)
    except OSError as exc:
        raise UnwritablePathError(f"{option} {folder}: cannot be created ({exc.strerror})") from None
    finally:
        for path in reversed(made):
            try:
                os.rmdir(path)
            except OSError:
                pass


def distinct_names(folders: List[str]) -> dict:
    """``{folder: name}``: each folder's last path component, or as many of its last components as tell it
    apart from the others (``a/rand`` and ``b/rand``), else its whole real path."""
    parts = {f: os.path.realpath(f).strip(os.sep).split(os.sep) for f in folders}
    names = {}
    for folder in folders:
        for depth in range(1, len(parts[folder]) + 1):
            name = os.path.join(*parts[folder][-depth:])
            if all(os.path.join(*parts[other][-depth:]) != name for other in folders if other != folder):
                names[folder] = name
                break
        else:
            names[folder] = os.path.realpath(folder)
    return names


def compare(run_dirs: List[str], out_arg: str) -> int:
    """Merges the sweeps of ``run_dirs`` into one table and plot in ``out_arg`` (``tools/compare.py``)."""
    if not out_arg.strip():
        raise ConfigError("--out: expected the folder for the merged table, got an empty name")
    seen: dict = {}
    for run_dir in run_dirs:
        real = os.path.realpath(run_dir)
        if real in seen:
            raise ConfigError(f"{run_dir}: given twice (also as {seen[real]}); each run directory counts once")
        seen[real] = run_dir
    compared = seen.get(os.path.realpath(out_arg))
    if compared is not None:  # its own summary.csv and plot would be replaced by the merged ones
        raise ConfigError(f"--out {out_arg}: is one of the run directories compared ({compared}); "
                          f"write the merged table to another folder")
    out = folder = os.path.realpath(out_arg)
    while True:  # a run directory, or a folder of one (its tensorboard/, search_state/): not for the merged files
        if os.path.isfile(os.path.join(folder, RUN_CONFIG_FILE)):
            where = "is a run directory" if folder == out else f"is inside the run directory {folder}"
            raise ConfigError(f"--out {out_arg}: {where} (it holds {RUN_CONFIG_FILE}); write the merged table to "
                              f"another folder")
        if os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    check_writable_folder("--out", out_arg)
    from tfnas.registry import BENCHMARKS  # records, tables and plots: no TensorFlow
    from tfnas.results import format_table, load_run_dir, write_outputs

    per_dir = []
    for run_dir in run_dirs:
        try:
            per_dir.append((run_dir, load_run_dir(run_dir)))
        except ValueError as exc:  # not a sweep's run directory, or a damaged one (a missing one: exit 4)
            raise ConfigError(str(exc)) from None
        except NotADirectoryError as exc:  # a file given for a folder: bad input (2), as for --out and out_dir
            raise ConfigError(f"{exc.filename}: {exc.strerror}") from None
    # The same method label from different directories stays apart: label those rows by directory.
    owners: dict = {}
    for run_dir, recs in per_dir:
        for label in {(r.method, r.dataset) for r in recs}:
            owners.setdefault(label, []).append(run_dir)
    names = distinct_names([run_dir for run_dir, _ in per_dir])
    records = []
    for run_dir, recs in per_dir:
        for r in recs:
            if len(owners[(r.method, r.dataset)]) > 1:
                r.method = f"{r.method} ({names[run_dir]})"
            records.append(r)
    if not records:
        raise ConfigError("the run directories hold no records")
    from tfnas.benchmarks.nb201 import DATASETS as NB201_DATASETS

    benchmark = BENCHMARKS.get("nb201")()
    datasets = sorted({r.dataset for r in records})
    # The optimum line is drawn where the benchmark knows the dataset; records that share one
    # recorded optimum (e.g. the same latency constraint) draw theirs (the constrained optimum).
    optimum = {d: benchmark.optimum(d) for d in datasets if d in NB201_DATASETS}
    shared_constraint = {}  # dataset -> the one limit all its records share, if they share one
    for d in datasets:
        recorded = {(r.optimum, r.constraint) for r in records if r.dataset == d}
        if len(recorded) == 1 and not math.isnan(next(iter(recorded))[0]):
            optimum[d], shared_constraint[d] = next(iter(recorded))
        elif all(math.isnan(r.optimum) and math.isnan(r.regret) for r in records if r.dataset == d):
            optimum.pop(d, None)  # records of an open space (a training oracle): no table's optimum is theirs
        elif len({c for _, c in recorded}) > 1:  # runs under different constraints: regrets to different optima
            optimum[d] = sorted({(o, c or "unconstrained") for o, c in recorded if not math.isnan(o)}, reverse=True)
            for r in records:
                if r.dataset == d:
                    r.method = f"{r.method} [{r.constraint or 'unconstrained'}]"
    os.makedirs(out_arg, exist_ok=True)
    df = write_outputs(out_arg, records, optimum, title="compare")
    print(format_table(df))
    lines = optimum_lines(optimum, shared_constraint)
    if lines:
        print("\n" + "\n".join(lines))
    print(f"\nwrote {out_arg}/summary.csv and {out_arg}/accuracy_vs_budget.png")
    return 0


def optimum_lines(optimum: Dict[str, Any], shared_constraint: Dict[str, str]) -> List[str]:
    """The optimum each dataset's regrets are measured to, as ``tools/train_eval.py`` prints it after its table:
    the benchmark's, the constrained one of a limit all records share, or one line per constraint compared."""
    from tfnas.results import limits_cells

    lines = []
    for d, value in sorted(optimum.items()):
        if isinstance(value, list):  # runs under different constraints
            lines += [f"optimum ({d}, {what}): {v:.2f}%" for v, what in value]
        elif limits_cells(shared_constraint.get(d, "")):
            lines.append(f"constrained optimum ({d}, {shared_constraint[d]}): {value:.2f}%")
        else:
            lines.append(f"benchmark optimum ({d}): {value:.2f}%")
    return lines
