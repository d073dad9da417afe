"""What a killed run leaves behind: its executor's temp folder, and the resource tracker's warning."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

from tfnas.evaluation import tempdirs
from tfnas.evaluation.tempdirs import LOCK_FILE, make_temp_dir, release, remove_stale

HOLD = textwrap.dedent("""
    import sys, time
    from tfnas.evaluation.tempdirs import make_temp_dir
    path, handle = make_temp_dir("tfnas-pool-", sys.argv[1])
    print(path, flush=True)
    time.sleep(60)
""")


def _holder(root):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_a_folder_of_a_killed_run_is_removed_by_the_next_and_a_live_one_is_kept(tmp_path):
    """After `kill -9` of a pool run, its `tfnas-pool-*` folder stayed in the temp folder for good."""
    killed, killed_dir = _holder(tmp_path)
    alive, alive_dir = _holder(tmp_path)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        foreign = tmp_path / "tfnas-pool-other"  # no lock file: another program's (or being made)
        foreign.mkdir()
        remote = tmp_path / "tfnas-pool-remote"  # another machine's (a shared temp folder): its lock may not show
        remote.mkdir()
        (remote / LOCK_FILE).write_text("another-host\n")
        assert os.path.isdir(killed_dir) and os.path.isfile(os.path.join(alive_dir, LOCK_FILE))
        path, handle = make_temp_dir("tfnas-pool-", str(tmp_path))
        assert not os.path.exists(killed_dir)
        assert os.path.isdir(alive_dir) and foreign.is_dir() and remote.is_dir() and os.path.isdir(path)
        assert remove_stale("tfnas-pool-", str(tmp_path)) == 0  # this process holds its own
        assert remove_stale("tfnas-ray-", str(tmp_path)) == 0
        release(handle)
        assert remove_stale("tfnas-pool-", str(tmp_path)) == 1 and not os.path.exists(path)
    finally:
        alive.kill()
        killed.kill()
        alive.wait()


def _stale(root, name="tfnas-ray-stale"):
    folder = root / name
    (folder / "session" / "logs").mkdir(parents=True)
    (folder / "session" / "logs" / "raylet.out").write_text("x")
    (folder / LOCK_FILE).write_text(socket.gethostname() + "\n")  # unlocked: its run ended
    return folder


def test_a_folder_still_written_into_while_it_is_removed_keeps_its_lock_file_for_the_next_run(tmp_path, monkeypatch):
    """A helper of the killed run writing into its folder during the removal left a folder without a lock file,
    which no later run removed."""
    folder = _stale(tmp_path)
    real = shutil.rmtree

    def rmtree_while_written(path, *args, **kwargs):
        real(path, *args, **kwargs)
        (folder / "late.log").write_text("written by a lingering helper")

    monkeypatch.setattr(tempdirs.shutil, "rmtree", rmtree_while_written)
    assert remove_stale("tfnas-ray-", str(tmp_path)) == 0
    assert (folder / LOCK_FILE).read_text().strip() == socket.gethostname()
    monkeypatch.undo()
    assert remove_stale("tfnas-ray-", str(tmp_path)) == 1 and not folder.exists()


def test_a_file_written_between_the_lock_files_removal_and_the_folders_brings_the_lock_file_back(tmp_path,
                                                                                                   monkeypatch):
    folder = _stale(tmp_path)
    real = os.rmdir

    def rmdir_after_a_write(path, *args, **kwargs):
        if os.path.samefile(path, folder):
            (folder / "late.log").write_text("x")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(tempdirs.os, "rmdir", rmdir_after_a_write)
    assert remove_stale("tfnas-ray-", str(tmp_path)) == 0
    assert (folder / LOCK_FILE).read_text().strip() == socket.gethostname()
    monkeypatch.undo()
    assert remove_stale("tfnas-ray-", str(tmp_path)) == 1 and not folder.exists()


LEAK = textwrap.dedent("""
    import logging, multiprocessing, os, sys
    from tfnas.evaluation.tempdirs import start_resource_tracker
    if sys.argv[1] == "verbose":
        logging.getLogger("tfnas").setLevel(logging.INFO)
    start_resource_tracker()
    lock = multiprocessing.get_context("spawn").Lock()  # a named semaphore, registered with the tracker
    os._exit(0)  # as after kill -9: nothing unregisters it
""")


def test_the_resource_trackers_leaked_semaphore_warning_is_shown_at_verbose_only():
    """After `kill -9` of a pool run, Python's resource tracker printed "There appear to be 6 leaked semaphore
    objects to clean up at shutdown" (it removes them, as it should)."""
    def stderr_of(mode):  # (the tracker keeps the pipe until it has cleaned up and ended)
        return subprocess.run([sys.executable, "-c", LEAK, mode], capture_output=True, text=True,
                              timeout=120).stderr

    assert "leaked semaphore" not in stderr_of("quiet")
    assert "leaked semaphore" in stderr_of("verbose")
