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


def test_a_ctrl_c_before_the_run_directory_opens_does_not_say_its_earlier_results_are_gone(tmp_path, capsys):
    """Ctrl-C while TensorFlow loaded, rerunning into a directory of saved records: the line said "rerunning the
    command starts afresh", but a rerun resumes from them."""
    import argparse

    from tfnas import cli

    def loading(out_dir):
        args = argparse.Namespace(config=None, overrides=[], out_dir=str(out_dir), no_progress=True, verbose=False)

        def run():
            cli._load(args)
            raise KeyboardInterrupt  # (as if while the run was being built)
        return run

    assert run_guarded(loading(tmp_path / "new"), verbose=False) == INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1] == NOTHING_SAVED_LINE
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "config.cfg").write_text("[run]\n")  # a run killed before its first record: nothing to resume
    (earlier / ".lock").write_text("")
    assert run_guarded(loading(earlier), verbose=False) == INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1] == NOTHING_SAVED_LINE
    (earlier / "runs.jsonl").write_text("{}\n")
    assert run_guarded(loading(earlier), verbose=False) == INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1] == INTERRUPTED_LINE


def test_an_ignored_sigint_is_left_alone():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_kept() as seen:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        assert seen == [] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


_TERMINATED_RUN = """
import atexit, sys
sys.path.insert(0, {root!r})
atexit.register(lambda: open({marker!r}, "w").close())  # as TensorFlow's removal of AutoGraph's files
from tests.evaluation.executor_jobs import Sleepy
from tfnas.cli import exit_with, run_guarded
from tfnas.evaluation.executors import ProcessExecutor

def run():
    with ProcessExecutor(2, chunk=1) as pool:
        pool.map(Sleepy(60.0, {folder!r}), list(range(4)))
    return 0

exit_with(run_guarded(run, verbose=False))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_stops_a_run_as_ctrl_c_does_and_both_run_the_exit_handlers(tmp_path, signum):
    """``kill PID`` (a scheduler's time limit) ended the process on the spot: its pool's workers ran on,
    and TensorFlow's exit handlers (which remove AutoGraph's temp files) never ran; after Ctrl-C neither,
    as the command line ends itself by SIGINT."""
    import subprocess

    from tests.evaluation.test_executors import _alive

    script = _TERMINATED_RUN.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    marker=str(tmp_path / "exit-handlers-ran"), folder=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 90
    while len(list(tmp_path.glob("worker-*"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    try:
        assert len(workers) == 2, "workers did not start"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:  # nothing left running by a failure either
        proc.kill()
        alive = [pid for pid in workers if _alive(pid)]
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == -signum, err  # ended by the signal, as a shell expects
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    assert err.strip().splitlines()[-1] == f"{word}: stopped before anything was saved; rerunning the command " \
                                           f"starts afresh", err
    assert not alive and (tmp_path / "exit-handlers-ran").exists()


_SIGTERM_CASES = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from tfnas.cli import run_guarded
from tfnas.config import load_config
from tfnas.interrupts import Terminated
from tfnas.run.rundir import RunDir

class Swallows:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)

def swallowed_by_a_destructor():
    d = Swallows()
    del d
    return 0

def caught_and_carried_on():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    except KeyboardInterrupt:
        pass
    return 0

def nested():
    return run_guarded(caught_and_carried_on, verbose=False)

def replaced_in_an_empty_run_directory(signum):
    def run():
        with RunDir(load_config(None, ["run.out_dir=" + {out!r} + str(signum)])):
            try:
                os.kill(os.getpid(), signum)
                time.sleep(1)
            except KeyboardInterrupt:
                raise RuntimeError("Exiting device scope without proper scope nesting") from None
    return run

signal.signal(signal.SIGINT, signal.default_int_handler)
cases = [swallowed_by_a_destructor, caught_and_carried_on, nested,
         replaced_in_an_empty_run_directory(signal.SIGTERM), replaced_in_an_empty_run_directory(signal.SIGINT)]
for case in cases:
    print(run_guarded(case, verbose=False), file=sys.stderr)
"""


def test_a_sigterm_is_not_lost_nor_reported_as_ctrl_c():
    """A SIGTERM swallowed by a destructor or caught on its way came back as exit 0; one inside a nested
    ``run_guarded`` was reported as a Ctrl-C; and one (or a Ctrl-C) that an error replaced in an empty run
    directory claimed that what finished was saved."""
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", _SIGTERM_CASES.format(root=root, out=os.path.join(out, "run"))],
                              capture_output=True, text=True, timeout=120)
        assert os.listdir(out) == []  # the empty run directories went
    lines = [line for line in done.stderr.splitlines() if line.startswith(("terminated:", "interrupted:", "1"))]
    nothing = "stopped before anything was saved; rerunning the command starts afresh"
    assert lines == [f"terminated: {nothing}", "143"] * 4 + [f"interrupted: {nothing}", "130"], done.stderr


_EXIT_WITH_A_POOL_LEFT = """
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, {root!r})
import tfnas.cli
pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
assert pool.submit(abs, -1).result() == 1  # an idle worker that never exits by itself
open({pids!r}, "w").write(" ".join(str(pid) for pid in pool._processes))
tfnas.cli.EXIT_HANDLERS_S = 2.0
tfnas.cli.exit_with(130)
"""


def test_exit_after_ctrl_c_does_not_wait_for_a_pool_left_running(tmp_path):
    """exit_with runs the exit handlers before it ends itself by the signal; multiprocessing's joins the
    children, and a pool's idle worker never ends: the exit waited for good."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pids = tmp_path / "pids"
    start = time.time()
    with open(tmp_path / "err", "w") as err:  # (not a pipe: the orphaned worker would hold it open)
        proc = subprocess.Popen([sys.executable, "-c", _EXIT_WITH_A_POOL_LEFT.format(root=root, pids=str(pids))],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            returncode = proc.wait(timeout=60)
        finally:
            proc.kill()
            for pid in pids.read_text().split() if pids.exists() else ():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert returncode == -signal.SIGINT, (tmp_path / "err").read_text()[-2000:]
    assert time.time() - start < 40


_CTRL_C_WHILE_EXITING = """
import atexit, os, signal, sys, threading, time
sys.path.insert(0, {root!r})
signal.signal(signal.SIGINT, signal.default_int_handler)
atexit.register(lambda: time.sleep(3))  # an exit handler that takes a while
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # a Ctrl-C meanwhile
import tfnas.cli
tfnas.cli.exit_with(tfnas.cli.TERMINATED)
"""


def test_a_ctrl_c_while_the_exit_handlers_run_ends_the_process_without_a_traceback():
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _CTRL_C_WHILE_EXITING.format(root=root)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGINT and "KeyboardInterrupt" not in done.stderr, done.stderr[-2000:]


_SIGTERM_AFTER_THE_END = """
import atexit, os, signal, sys, threading, time
sys.path.insert(0, {root!r})
atexit.register(lambda: time.sleep(2))  # an exit handler that takes a while
import tfnas.cli
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()  # the run's results are all written
for _ in range({signals} - 1):
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
tfnas.cli.exit_with({code})
"""


_SIGNAL_WHILE_MODULES_ARE_TORN_DOWN = """
import sys, time
sys.path.insert(0, {root!r})
import tfnas.cli


class Slow:  # collected with this module, after the exit handlers, when Python has reset its signal handlers
    def __del__(self):
        print("tearing down", flush=True)
        time.sleep(2)


slow = Slow()
tfnas.cli.exit_with({code})
"""


@pytest.mark.parametrize("code, signame", [(0, "SIGTERM"), (2, "SIGTERM"), (0, "SIGINT")])
def test_a_signal_while_python_tears_down_its_modules_keeps_the_exit_status(code, signame):
    """After the exit handlers Python resets its signal handlers to the default and then tears down its
    modules (about a second with TensorFlow): a SIGTERM there still ended a complete run with 143."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _SIGNAL_WHILE_MODULES_ARE_TORN_DOWN.format(root=root, code=code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "tearing down\n"
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code and "Traceback" not in err, err[-2000:]


@pytest.mark.parametrize("code, signals, expected", [(0, 1, 0), (2, 1, 2), (0, 2, 0)])
def test_a_sigterm_while_a_finished_run_tears_down_keeps_its_exit_status(code, signals, expected):
    """A SIGTERM in the second after a run's last line (its exit handlers) gave 143 and no line for a complete
    run; a second one is ignored too (a teardown that hangs ends by itself: the next test)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    start = time.time()
    done = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_THE_END.format(root=root, code=code, signals=signals)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == expected, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and time.time() - start < 30


_TEARDOWN_THAT_HANGS = """
import atexit, sys, time
sys.path.insert(0, {root!r})
atexit.register(lambda: time.sleep(60))  # an exit handler that never ends
import tfnas.cli
tfnas.cli.TEARDOWN_S = 2
tfnas.cli.exit_with({code})
"""


@pytest.mark.parametrize("code", [0, 5])
def test_a_teardown_that_hangs_is_ended_after_its_limit_with_the_runs_status(code):
    """The signals are ignored while a finished run tears down, so a teardown that hangs must end by itself
    (a watchdog thread of ours would not run while Python tears its modules down); it ended by SIGALRM's
    default action, so a complete run whose teardown took long on a loaded machine exited 142."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    start = time.time()
    done = subprocess.run([sys.executable, "-c", _TEARDOWN_THAT_HANGS.format(root=root, code=code)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code and time.time() - start < 30, done.stderr[-2000:]


STARTING = """
import os, signal, sys, time
from tfnas.runtime import end_of_start, stop_quietly_while_starting
stop_quietly_while_starting()
if sys.argv[1] == "started":
    end_of_start()
os.kill(os.getpid(), getattr(signal, sys.argv[2]))
time.sleep(30)  # (an import of TensorFlow, say)
"""


@pytest.mark.parametrize("signame, line", [("SIGINT", "interrupted: stopped while starting; nothing was written"),
                                           ("SIGTERM", "terminated: stopped while starting; nothing was written")])
def test_a_signal_while_a_tool_starts_is_one_line_and_ends_it_by_that_signal(signame, line):
    """Ctrl-C in the seconds a tool imports (bench.py imports TensorFlow before its error boundary) printed a
    traceback out of the import."""
    signum = getattr(signal, signame)
    run = __import__("subprocess").run
    starting = run([sys.executable, "-c", STARTING, "starting", signame], capture_output=True, text=True, timeout=60)
    assert starting.returncode == -signum and starting.stderr == line + "\n"
    started = run([sys.executable, "-c", STARTING, "started", signame], capture_output=True, text=True, timeout=60)
    assert started.returncode == -signum and line not in started.stderr  # Python's own again (KeyboardInterrupt)


def test_the_error_boundary_takes_over_from_the_start_up_handler(interrupts_raise, capsys):
    from tfnas.runtime import stop_quietly_while_starting

    stop_quietly_while_starting()

    def stopped():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    assert run_guarded(stopped, verbose=False) == INTERRUPTED
    assert capsys.readouterr().err.strip() in (INTERRUPTED_LINE, NOTHING_SAVED_LINE)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _start_handlers(queue):
    from tfnas.runtime import stop_quietly_while_starting

    stop_quietly_while_starting()  # as a tool's script does, which a spawned pool worker runs again
    queue.put((signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
               signal.getsignal(signal.SIGINT) is signal.default_int_handler))


def test_a_spawned_worker_keeps_its_own_signal_handlers():
    """Pool workers ran the tool's start-up handler too (spawn runs the script again) and each printed
    "terminated: stopped while starting" when the pool stopped them."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_start_handlers, args=(queue,))
    worker.start()
    assert queue.get(timeout=60) == (True, True)
    worker.join(timeout=60)
