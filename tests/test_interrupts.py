"""Tests of tfnas/interrupts.py and the command line's use of it: a Ctrl-C is never lost."""

import os
import signal
import sys
import time

import pytest

from tfnas.cli import INTERRUPTED, INTERRUPTED_LINE, NOTHING_SAVED_LINE, run_guarded
from tfnas.interrupts import interrupts_kept


@pytest.fixture
def interrupts_raise():
    """SIGINT raises KeyboardInterrupt in this process (an xdist worker may ignore it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class SwallowsCtrlC:
    """Presses Ctrl-C while it is collected: the KeyboardInterrupt is raised inside ``__del__``,
    where Python prints 'Exception ignored in ...' and carries on (as tqdm's and TensorFlow's do)."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)


def test_an_interrupt_swallowed_by_a_destructor_is_delivered_again(interrupts_raise, capfd):
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    steps = 0
    with pytest.raises(KeyboardInterrupt):
        with interrupts_kept():
            SwallowsCtrlC()  # collected at once
            for steps in range(1, 201):
                time.sleep(0.01)
    assert steps < 200  # it landed in the block's own loop, not only when the block ended
    assert "Exception ignored" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler and sys.unraisablehook is hook


def test_an_error_caused_by_the_interrupt_is_the_interrupt(interrupts_raise):
    def interrupted_in_a_context_manager():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
        except KeyboardInterrupt:  # what TensorFlow's scope does: another error replaces it
            raise RuntimeError("Exiting device scope without proper scope nesting") from None

    with pytest.raises(KeyboardInterrupt):
        with interrupts_kept():
            interrupted_in_a_context_manager()
    with pytest.raises(RuntimeError, match="scope nesting"):  # without a Ctrl-C it is a bug: kept
        with interrupts_kept():
            raise RuntimeError("Exiting device scope without proper scope nesting")


def test_the_command_line_reports_a_swallowed_or_replaced_interrupt_as_interrupted(interrupts_raise, capsys):
    def finishes_anyway():
        SwallowsCtrlC()
        for _ in range(200):
            time.sleep(0.01)
        return 0

    def replaced():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
        except KeyboardInterrupt:
            raise RuntimeError("Exiting device scope without proper scope nesting") from None

    for fn in (finishes_anyway, replaced):
        assert run_guarded(fn, verbose=False) == INTERRUPTED, fn.__name__
        # (no run directory was opened: nothing to resume)
        assert capsys.readouterr().err.strip().splitlines()[-1] == NOTHING_SAVED_LINE


def test_ctrl_c_before_a_run_directory_was_opened_does_not_promise_a_resume(capsys, tmp_path):
    """A Ctrl-C while TensorFlow or a dataset loaded said "what finished is saved; rerun the same command
    to resume", and nothing existed; one after a run directory was opened (and kept) still says so."""
    from tfnas.config import load_config
    from tfnas.run.rundir import RunDir

    def loading():
        raise KeyboardInterrupt

    def saved():
        with RunDir(load_config(None, [f"run.out_dir={tmp_path / 'run'}"])) as run_dir:
            run_dir.store.write_text("history.csv", "x")
            raise KeyboardInterrupt

    assert run_guarded(loading, verbose=False) == INTERRUPTED
    assert capsys.readouterr().err.strip() == NOTHING_SAVED_LINE
    assert run_guarded(saved, verbose=False) == INTERRUPTED
    assert capsys.readouterr().err.strip() == INTERRUPTED_LINE
    assert run_guarded(loading, verbose=False) == INTERRUPTED  # (counted per call, not per process)
    assert capsys.readouterr().err.strip() == NOTHING_SAVED_LINE
    assert run_guarded(loading, verbose=False, interrupted="interrupted: mine") == INTERRUPTED  # a tool's own line
    assert capsys.readouterr().err.strip() == "interrupted: mine"


def test_an_ignored_sigint_is_left_alone():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_kept() as seen:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        assert seen == [] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
