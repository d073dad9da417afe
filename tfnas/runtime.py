"""Process-wide TensorFlow defaults for the command-line tools, applied by an explicit call.

Library code never sets environment variables on import; ``tools/*.py`` call
:func:`configure_runtime` first thing, before anything imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator, List, Optional, Sequence

#: The user's own TensorFlow C++ log level, if any: read on import, before set_runtime_defaults adds ours.
_USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip()


def set_runtime_defaults() -> None:
    """Environment defaults for TensorFlow, applied before it is imported (the user's values win).

    ``TF_ENABLE_ONEDNN_OPTS=1``: the tensorflow-cpu wheel leaves oneDNN's CPU kernels off on
    some x86 machines; with them convolutions run markedly faster (docs/PERFORMANCE.md).
    ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ info and warning lines stay off the console.
    TensorFlow reads both when it loads, so this does nothing once it is imported.
    ``RAY_COLOR_PREFIX=0`` where standard output is no terminal: Ray prints its ``(raylet)`` lines (a
    worker that died) to it, wrapped in colour codes, which a log file or a pipe shows as ``^[[33m``.
    """
    if not _is_terminal(sys.stdout):
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no stream, or a closed one
        return False


#: The console's stderr saved by the :func:`quiet_stderr` blocks running, outermost first.
_CONSOLE: List[int] = []


@contextlib.contextmanager
def quiet_stderr(show_on_error: bool = False) -> Iterator[None]:
    """Keeps what C++ code writes to the stderr file descriptor inside the block off the console
    (TensorFlow's start-up notes, libjpeg's "Premature end of JPEG file", the TFLite converter's
    quantizer settings). With ``show_on_error`` it is written out when the block raises an
    ``Exception`` (not after Ctrl-C: then only the command line's ``interrupted:`` line is wanted)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr file descriptor: nothing to keep quiet
        yield
        return
    _CONSOLE.append(saved)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            except Exception:
                if show_on_error:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
                    captured.seek(0)
                    sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
                raise
            finally:
                sys.stderr.flush()  # what Python wrote inside the block stays inside it
                os.dup2(saved, 2)
    finally:
        _CONSOLE.remove(saved)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with the C++ lines it prints while loading (absl's pre-initialisation
    notice, oneDNN and CPU-feature notes, which no log level silences in TF 2.21) kept off the
    console; if the import fails, what it printed is shown before the error."""
    if "tensorflow" in sys.modules:
        return
    with quiet_stderr(show_on_error=True):
        import tensorflow  # noqa: F401


def quiet_import_wanted(verbose: bool) -> bool:
    """Whether TensorFlow's start-up lines should be kept off the console: not with ``verbose``
    (``-v``), and not when the user asked for TensorFlow's info or warning lines with their own
    ``TF_CPP_MIN_LOG_LEVEL`` of 0 or 1 (their setting wins over ours, 2)."""
    return not verbose and _USER_LOG_LEVEL not in ("0", "1")


#: What a tool prints when Ctrl-C or SIGTERM stops it while it starts (:func:`stop_quietly_while_starting`).
STARTING_LINES = {"SIGINT": "interrupted: stopped while starting; nothing was written",
                  "SIGTERM": "terminated: stopped while starting; nothing was written"}


def _stopped_while_starting(signum: int, frame: object) -> None:
    import signal

    line = STARTING_LINES.get(signal.Signals(signum).name, STARTING_LINES["SIGINT"])
    try:  # (on the console, also from inside a quiet_stderr block: TensorFlow's import)
        os.write(_CONSOLE[0] if _CONSOLE else 2, (line + "\n").encode())
    except OSError:
        pass
    signal.signal(signum, signal.SIG_DFL)  # ended by the signal itself (130, 143), as tfnas.cli.exit_with does
    os.kill(os.getpid(), signum)


def stop_quietly_while_starting() -> None:
    """Until the tool's error boundary takes over (:func:`end_of_start`), Ctrl-C or SIGTERM prints one line and
    ends the process by that signal, instead of a traceback out of an import (TensorFlow's takes seconds)."""
    import signal
    import threading

    import multiprocessing

    # (a spawned pool worker runs the tool's script again, as __mp_main__: its signals are the pool's)
    if threading.current_thread() is not threading.main_thread() or multiprocessing.parent_process() is not None:
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stopped_while_starting)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stopped_while_starting)


def end_of_start() -> None:
    """Puts Python's own handlers back in place of :func:`stop_quietly_while_starting`'s: the first step of a
    tool's error boundary (:func:`tfnas.cli.run_guarded`), which reports an interruption from then on."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        if signal.getsignal(signum) is _stopped_while_starting:
            signal.signal(signum, default)


def configure_runtime(argv: Optional[Sequence[str]] = None, defer_import: bool = False, script: bool = False) -> None:
    """What every tool does first: with ``script`` (it runs as a script, ``__name__ == "__main__"``, not imported
    by a test) Ctrl-C and SIGTERM stop it with one line until its error boundary takes over
    (:func:`stop_quietly_while_starting`); the environment defaults, then a quiet TensorFlow import
    (:func:`quiet_import_wanted`).

    ``defer_import=True`` leaves the import to the command line (:mod:`tfnas.cli`), which first
    checks the config without TensorFlow, so a typo is reported before TensorFlow loads.
    """
    argv = sys.argv[1:] if argv is None else argv
    if script:
        stop_quietly_while_starting()
    set_runtime_defaults()
    if not defer_import and quiet_import_wanted(any(a in ("-v", "--verbose") for a in argv)):
        import_tensorflow_quietly()
