"""The command line behind ``tools/``: argument parsing, config loading, printing.

Only this module and ``tools/`` print; library code logs. The tools call
:func:`tfnas.runtime.configure_runtime` before importing this module; ``train_eval`` and
``train`` defer TensorFlow's import to :func:`_load`, after the config's TensorFlow-free checks,
and ``compare`` until its arguments are checked.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from typing import Callable, List, Optional

from tfnas.config import ConfigError, load_config
from tfnas.io import clipped


def _config_parser(description: str, example: str = "budget.repeats=2") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="path of a .cfg file (see cfg/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override a config key (repeatable), e.g. --set {example}")
    parser.add_argument("--out-dir", default=None, type=os.path.expanduser,
                        help="run directory (overrides [run] out_dir)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def _load(args: argparse.Namespace):
    """The config, checked in two passes: everything but registered names first, without
    TensorFlow (a typo costs no TensorFlow start-up), then the names, which load it."""
    overrides = list(args.overrides)
    if args.out_dir is not None and not args.out_dir.strip():
        raise ConfigError("--out-dir is empty; give a folder, or leave the flag out for the config's [run] out_dir")
    if args.out_dir:
        overrides.append(f"run.out_dir={args.out_dir}")
    if args.no_progress:
        overrides.append("run.progress=false")
    from tfnas.evaluation.gpus import share_gpus_with_workers

    try:
        checked = load_config(args.config, overrides, check_names=False)
        _RUN_DIR[:] = [checked.out_dir]  # (the Ctrl-C line says whether it holds results of an earlier run)
        share_gpus_with_workers(checked.run.executor)
        import_tensorflow(args.verbose)
        return load_config(args.config, overrides)
    except ConfigError as exc:
        if args.out_dir and str(exc).startswith("--set run.out_dir:"):  # the value came from --out-dir
            raise ConfigError("--out-dir:" + str(exc)[len("--set run.out_dir:"):]) from None
        raise


def import_tensorflow(verbose: bool) -> None:
    """Loads TensorFlow, its start-up lines kept off the console unless ``-v`` or the user's own
    ``TF_CPP_MIN_LOG_LEVEL`` (:func:`tfnas.runtime.quiet_import_wanted`)."""
    from tfnas.runtime import import_tensorflow_quietly, quiet_import_wanted

    if quiet_import_wanted(verbose):
        import_tensorflow_quietly()


def _no_retracing_warning(record: logging.LogRecord) -> bool:
    """TensorFlow's "N of the last M calls ... triggered tf.function retracing" warning: a search or a
    sweep that builds a network per candidate traces its functions again by design; ``-v`` shows it."""
    return "triggered tf.function retracing" not in record.getMessage()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    tf_logger = logging.getLogger("tensorflow")
    if verbose:
        tf_logger.removeFilter(_no_retracing_warning)
    elif _no_retracing_warning not in tf_logger.filters:
        tf_logger.addFilter(_no_retracing_warning)


class _Expected:
    """The exception types that are a user's problem (bad input, missing data, unusable paths):
    printed as one ``error:`` line with an exit code; anything else is a bug and keeps its
    traceback. Looked up among the modules already loaded: an exception was raised by code of a
    module that was imported, so its class's module is loaded, and reporting an error never
    imports TensorFlow (``--help``, config errors and ``tools/compare.py`` run without it)."""

    #: (module, class, exit code), in the order they are tried; OSError (4) comes after them all
    KINDS = (("tfnas.registry", "UnknownNameError", 2), ("tfnas.train.checkpoint", "CheckpointMismatchError", 2),
             ("tfnas.evaluation.training", "TrainCacheError", 2), ("tfnas.io", "DamagedFileError", 2),
             ("tfnas.train.distribute", "StrategyError", 2), ("tfnas.methods.base", "SearchFailedError", 2),
             ("tfnas.data.base", "DatasetFormatError", 2), ("tfnas.benchmarks.safe_pickle", "BenchmarkFormatError", 2),
             ("tfnas.evaluation.training", "CellTrainingError", 2), ("tfnas.data.base", "DatasetNotFoundError", 3),
             ("tfnas.train.errors", "TrainingDivergedError", 2), ("tfnas.evaluation.executors", "ExecutorError", 5),
             ("tfnas.train.distribute", "ClusterError", 5))

    @classmethod
    def types(cls):
        found = {ConfigError: 2}
        for module, name, code in cls.KINDS:
            kind = getattr(sys.modules.get(module), name, None)  # None: not loaded (or not yet defined)
            if kind is not None:
                found[kind] = code
        found[OSError] = 4
        return found


INTERRUPTED = 130  # the shell's exit status of a program stopped by SIGINT
TERMINATED = 143  # ... and by SIGTERM
EXIT_HANDLERS_S = 10.0  # what the exit handlers may take after Ctrl-C or SIGTERM (exit_with)
TEARDOWN_S = 60.0  # what a finished run's teardown may take, then it ends with its status (exit_with)


INTERRUPTED_LINE = "interrupted: what finished is saved; rerun the same command to resume"
NOTHING_SAVED_LINE = "interrupted: stopped before anything was saved; rerunning the command starts afresh"
COMPARE_INTERRUPTED_LINE = "interrupted: the merged table may be incomplete; rerun the command to write it"


_RUN_DIR: List[str] = []  # the run directory of the config loaded, once it is
#: set by an out-of-memory error once TensorFlow is loaded: TensorFlow's XLA runtime aborted ("double free or
#: corruption") while the interpreter tore it down after a failed 26 GiB allocation, exit 134 after the error line
_SKIP_TEARDOWN: List[bool] = []


def _holds_results(folder: str) -> bool:
    """Whether ``folder`` is a run directory (it has a ``config.cfg``) holding results of an earlier run."""
    from tfnas.run.rundir import CONFIG_FILE, holds_nothing

    return os.path.exists(os.path.join(folder, CONFIG_FILE)) and not holds_nothing(folder)


def _run_dirs_opened() -> int:
    """How many run directories this process has opened (:class:`tfnas.run.rundir.RunDir`)."""
    rundir = sys.modules.get("tfnas.run.rundir")
    return rundir.RunDir.opened if rundir is not None else 0


def run_guarded(fn, verbose: bool, interrupted: str = INTERRUPTED_LINE) -> int:
    """Runs ``fn()`` inside the command line's one error boundary (see :class:`_Expected`).

    Expected failures print ``error: <message>`` and return their exit code (2 bad input, 3 data
    unavailable, 4 a file or folder that cannot be read or written, 5 the executor's workers could
    not finish, or a multi-worker training lost a peer); ``-v`` adds the traceback. A Ctrl-C is never lost
    (:func:`tfnas.interrupts.interrupts_kept`): one that a destructor swallowed is delivered again,
    and an error it caused is reported as the interruption. SIGTERM stops the run as Ctrl-C does
    (:func:`tfnas.interrupts.termination_as_interrupt`), with the exit status 143.
    """
    from tfnas.interrupts import Terminated, interrupts_kept, termination_as_interrupt
    from tfnas.runtime import end_of_start

    end_of_start()  # from here on an interruption is reported as what it stopped
    opened = _run_dirs_opened()
    _RUN_DIR.clear()  # (this call's)
    _SKIP_TEARDOWN.clear()
    terminated: List[int] = []

    def stopped(stop: Optional[BaseException]) -> int:
        by_sigterm = bool(terminated) or _in_chain(stop, lambda e: isinstance(e, Terminated))
        if verbose and by_sigterm and stop is not None:
            import traceback

            traceback.print_exception(stop, file=sys.stderr)
        line = interrupted  # stopped before the run directory held anything, or before one was opened
        saved = _in_chain(stop, lambda e: hasattr(e, "tfnas_nothing_saved"))
        nothing = getattr(saved, "tfnas_nothing_saved") if saved is not None else (
            _run_dirs_opened() == opened and not any(_holds_results(d) for d in _RUN_DIR))
        if line == INTERRUPTED_LINE and nothing:
            line = NOTHING_SAVED_LINE
        if by_sigterm:
            line = line.replace("interrupted:", "terminated:", 1)
        print(line, file=sys.stderr)
        return TERMINATED if by_sigterm else INTERRUPTED

    try:
        with termination_as_interrupt(terminated), interrupts_kept():  # (resends cancelled first)
            code = fn()
    except KeyboardInterrupt as stop:
        if verbose and not isinstance(stop, Terminated):
            raise
        return stopped(stop)
    except ConfigError as exc:  # needs no lazy import: most common, and before TensorFlow loads
        return _report(exc, getattr(exc, "exit_code", 2), verbose)
    except Exception as exc:
        if terminated:  # an error the SIGTERM caused (it stopped a callback, a context manager)
            return stopped(exc)
        for kind, code in _Expected.types().items():
            if isinstance(exc, kind):
                return _report(exc, code, verbose)
        try:  # may decode a whole image folder again to find the damaged file: Ctrl-C is likely
            unreadable = _unreadable_image(exc)
        except KeyboardInterrupt:
            if verbose:
                raise
            return stopped(None)
        if unreadable:
            return _report(unreadable, 2, verbose)
        message = out_of_memory_message(exc)
        if message:
            if verbose:
                import traceback

                traceback.print_exception(exc, file=sys.stderr)
            print(f"error: {clipped(message)}", file=sys.stderr)
            if "tensorflow" in sys.modules:  # after a failed allocation its runtime may abort while torn down
                _SKIP_TEARDOWN.append(True)
            return 2
        raise
    if terminated:  # a SIGTERM that something swallowed on the way (a destructor, a handler): not lost
        return stopped(None)
    return code


def _in_chain(exc: Optional[BaseException], test: Callable[[BaseException], bool]) -> Optional[BaseException]:
    """The first of ``exc`` and its causes and contexts that passes ``test``, or ``None``."""
    from tfnas.interrupts import exception_chain

    return next((e for e in exception_chain(exc) if test(e)), None)


def out_of_memory_message(exc: BaseException) -> str:
    """The one-line message (without ``error:``) of a ``MemoryError`` or TensorFlow's
    ``ResourceExhaustedError``; ``""`` for any other exception."""
    short = _out_of_memory(exc)
    if not short:
        return ""
    return (f"out of memory ({short}): a setting asks for more memory than this machine has "
            f"(batch size, image size, number of classes, network size); make it smaller")


#: Errors of sizes beyond what can be addressed at all (NumPy's and TensorFlow's), said as out of memory.
_TOO_LARGE = ("array is too big", "Maximum allowed dimension exceeded", "Encountered overflow when multiplying")


def _out_of_memory(exc: BaseException) -> str:
    """What ran out, for Python's ``MemoryError``, TensorFlow's ``ResourceExhaustedError`` or an array or shape
    too large to address (:data:`_TOO_LARGE`); ``""`` else."""
    from tfnas.io import first_line

    if isinstance(exc, MemoryError):
        return str(exc) or "MemoryError"
    too_large = any(words in str(exc) for words in _TOO_LARGE)
    if isinstance(exc, ValueError) and too_large:
        return first_line(exc, 300)
    if "tensorflow" not in sys.modules:
        return ""
    import tensorflow as tf

    if not isinstance(exc, tf.errors.ResourceExhaustedError) and not (
            isinstance(exc, tf.errors.InvalidArgumentError) and too_large):
        return ""
    return first_line(exc, 300).split(" on /job:")[0].split(" [Op:")[0].split(" [[{{node")[0]


def exit_with(code: int) -> None:
    """Ends a tool with ``code``; after Ctrl-C (130) or SIGTERM (143) by that signal itself, so that a
    calling shell loop or script stops too, as it would for a program without its own handler. The
    exit handlers run first (a signal skips them, and TensorFlow's removes AutoGraph's temp files)."""
    signum = {INTERRUPTED: "SIGINT", TERMINATED: "SIGTERM"}.get(code)
    if _SKIP_TEARDOWN and code != 0:  # the exit handlers (guarded as a teardown is), then the status without it
        import atexit

        _keep_status_through_teardown(code)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if signum is not None and hasattr(signal, signum) and os.name == "posix":
        import atexit

        sys.stdout.flush()
        sys.stderr.flush()
        import threading

        sig = getattr(signal, signum)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # (a Ctrl-C or SIGTERM meanwhile ends it, no traceback)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # the handlers may wait (multiprocessing joins the children still running): a limit, then the signal
        deadline = threading.Timer(EXIT_HANDLERS_S, os.kill, (os.getpid(), sig))
        deadline.daemon = True
        deadline.start()
        run_exit_handlers, clear = getattr(atexit, "_run_exitfuncs", None), getattr(atexit, "_clear", None)
        if run_exit_handlers is not None and clear is not None:  # once (also if the signal below is blocked)
            run_exit_handlers()
            clear()
        os.kill(os.getpid(), sig)
    _keep_status_through_teardown(code)
    sys.exit(code)


def _keep_status_through_teardown(code: int) -> None:
    """A run that has ended keeps its exit status ``code`` when a SIGTERM or Ctrl-C comes while the
    interpreter tears down (its threads, exit handlers and modules: about 1.5 s with TensorFlow and Ray):
    a scheduler's SIGTERM there ended a complete run with 143 and no line. Both signals are ignored from
    here on (ignored, not handled: Python resets its own handlers before it tears down its modules). A
    teardown that hangs is ended after TEARDOWN_S by SIGALRM (no thread of ours runs that late), with ``code``
    while Python's handlers still run (a loaded machine's Ray or multi-worker teardown took over 10 s, and the
    alarm's default action made a complete run exit 142), by the alarm itself in the last moments after."""
    import threading

    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return

    def end(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(code)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, end)
    signal.alarm(max(1, math.ceil(TEARDOWN_S)))


def _unreadable_image(exc: BaseException) -> Optional[Exception]:
    """The one-line error of an image-folder file that is not an image, or whose body the decoder
    rejects (truncated, garbled), raised inside a TensorFlow pipeline (:data:`tfnas.data.folder.NOT_AN_IMAGE`,
    :data:`tfnas.data.folder.DAMAGED_IMAGE`); None for anything else, which keeps its traceback."""
    if "tensorflow" not in sys.modules:
        return None
    from tfnas.data.base import DatasetFormatError
    from tfnas.data.folder import damaged_image, not_an_image

    message = not_an_image(exc) or damaged_image(exc)
    return None if message is None else DatasetFormatError(message)


def _report(exc: BaseException, code: int, verbose: bool) -> int:
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
    if isinstance(exc, OSError) and exc.strerror:  # no "[Errno 13] ...: 'path'" decoration
        message = exc.strerror + (f" ({exc.filename} -> {exc.filename2})" if exc.filename2 else "")
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
        message = f"{exc.filename}: {message}"
    print(f"error: {clipped(message)}", file=sys.stderr)
    return code


def train_eval_main(argv: Optional[List[str]] = None) -> int:
    """``tools/train_eval.py CFG [--set k=v ...]``: run a configured search, sweep or analysis."""
    args = _config_parser("Run a tfnas search experiment from a .cfg file.").parse_args(argv)
    _setup_logging(args.verbose)
    return run_guarded(lambda: _train_eval(args), args.verbose)


def _train_eval(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from tfnas.run import flow_of
    from tfnas.run.factory import check_method_fits_space

    kind = flow_of(cfg)
    if cfg.space.arch:  # a training config run by the wrong tool would search (rand, by default) and ignore it
        from tfnas.run.factory import where

        raise ConfigError(f"{where(cfg, 'space', 'arch')}: names one architecture to train; tools/train_eval.py "
                          f"runs searches and analyses ([method] name = {cfg.method.name}) and does not use it: "
                          f"train it with python tools/train.py {cfg.source or 'CFG'}, or remove the key to search")
    check_method_fits_space(cfg)
    if kind == "search":
        from tfnas.run.search import run_search

        run = run_search(cfg)
        print()
        print(run.summary())
        print(f"\n{'resumed: search already finished; ' if run.resumed else ''}results in {run.run_dir}/")
        return 0
    if kind == "analysis":
        from tfnas.run.analysis import run_analysis

        table = run_analysis(cfg)
        print()
        print(table.to_string(index=False))
        print(f"\nresults in {cfg.out_dir}/")
        return 0
    from tfnas.results import format_table, limits_cells
    from tfnas.run.sweep import run_sweep

    outcome = run_sweep(cfg)
    print()
    print(format_table(outcome.summary))
    constraint = outcome.records[-1].constraint if outcome.records else ""
    if limits_cells(constraint):  # regret is to the best feasible cell
        print(f"\nconstrained optimum ({cfg.dataset.name}, {constraint}): {outcome.optimum:.2f}%")
    elif math.isfinite(outcome.optimum):  # a training oracle knows no optimum
        print(f"\nbenchmark optimum ({cfg.dataset.name}): {outcome.optimum:.2f}%")
    print(f"{outcome.new_records} new record(s), {len(outcome.records)} in total; results in {outcome.run_dir}/")
    asked = {(b, r) for b in cfg.budget.budgets() for r in range(cfg.budget.repeats)}
    beyond = sorted({(r.budget, r.repeat) for r in outcome.records} - asked)
    if beyond:  # the directory's summary, table and plot cover every record it holds
        budgets = sorted({b for b, _ in beyond})
        print(f"(the table and {outcome.run_dir}/summary.csv hold {len(beyond)} record(s) of earlier runs beyond this "
              f"run's [budget], at budget(s) {', '.join(map(str, budgets))}; config.cfg holds this run's [budget])")
    return 0


def compare_main(argv: Optional[List[str]] = None) -> int:
    """``tools/compare.py RUN_DIR [RUN_DIR ...]``: one table and one plot over several runs."""
    parser = argparse.ArgumentParser(description="Merge tfnas run directories into one table and plot.")
    parser.add_argument("run_dirs", nargs="+", type=os.path.expanduser, help="run directories (each holds runs.jsonl)")
    parser.add_argument("--out", default="runs/compare", type=os.path.expanduser,
                        help="the folder summary.csv and the plot go to (default: runs/compare in the current "
                             "folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from tfnas.compare import compare

    return run_guarded(lambda: compare(args.run_dirs, args.out), args.verbose,
                       interrupted=COMPARE_INTERRUPTED_LINE)


def train_main(argv: Optional[List[str]] = None) -> int:
    """``tools/train.py CFG``: train one architecture ([space] arch) on a dataset, evaluate, export."""
    args = _config_parser("Train one architecture from a .cfg file ([space] name/arch, [dataset], "
                          "[train], [export]); a killed run resumes from its last checkpoint.",
                          example="train.epochs=20").parse_args(argv)
    _setup_logging(args.verbose)
    return run_guarded(lambda: _train(args), args.verbose)


def _train(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from tfnas.run.train_one import train_architecture, warn_executor_keys_unused
    from tfnas.run.unused import warn_unused_keys

    warn_executor_keys_unused(cfg)
    warn_unused_keys(cfg, "train")
    outcome = train_architecture(cfg)
    print()
    print(outcome.table())
    print(f"\nresults in {outcome.run_dir}/")
    return 0
