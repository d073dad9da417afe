"""Temp folders of an executor's workers, and what a killed run leaves behind.

The process pool keeps its workers' temp files, and a private Ray instance its session files, in a
folder of their own that the executor removes when it closes. After ``kill -9`` of the run nothing
removes it, so each such folder holds a lock file that the executor's process keeps locked while it
lives (``flock``, released by the kernel when the process ends, however it ends). The next executor
that makes a folder with the same prefix in the same place removes those whose lock it can take: their
process has ended. Folders whose lock is held, that hold no lock file (made by another program or an
older tfnas), that are not this user's, that another machine made (the lock file names its host: a temp
folder shared over NFS may not share locks), or on a file system without locks are left as they are.

A pool's semaphores are removed by Python's resource tracker once the run has ended; it does so
without its warning unless ``-v`` (:func:`start_resource_tracker`).
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
import socket
import tempfile
from typing import IO, Optional, Tuple

logger = logging.getLogger(__name__)

LOCK_FILE = ".tfnas-lock"


def make_temp_dir(prefix: str, root: Optional[str] = None) -> Tuple[str, Optional[IO[str]]]:
    """A new folder ``<root>/<prefix>XXXXXXXX`` (``root``: the system's temp folder) and the open lock file that
    marks it as in use (None where the file system has no locks); close it after removing the folder. Folders of
    ended runs with the same prefix in ``root`` are removed first (:func:`remove_stale`)."""
    root = root or tempfile.gettempdir()
    remove_stale(prefix, root)
    path = tempfile.mkdtemp(prefix=prefix, dir=root)
    pending = os.path.join(path, LOCK_FILE + ".new")
    handle: Optional[IO[str]] = None
    try:  # locked before it takes its name, so no other run ever sees it free
        handle = open(pending, "w")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(socket.gethostname() + "\n")  # (a shared temp folder: another machine's locks may not show)
        handle.flush()
        os.rename(pending, os.path.join(path, LOCK_FILE))
    except OSError:
        if handle is not None:
            handle.close()
            handle = None
    return path, handle


def remove_stale(prefix: str, root: str) -> int:
    """Removes this user's folders ``<root>/<prefix>*`` whose lock file no process holds; returns how many."""
    removed = 0
    for folder in glob.glob(os.path.join(glob.escape(root), glob.escape(prefix) + "*")):
        try:
            if os.path.islink(folder) or os.stat(folder).st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # no lock file: not a folder this module made, or one being made
            continue
        try:
            if os.read(fd, 256).decode("utf-8", "replace").strip() != socket.gethostname():
                raise OSError("made on another machine")  # whose locks an NFS mount may not share: left alone
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its run is alive (or the file system has no locks)
            os.close(fd)
            continue
        try:
            removed += _remove_lock_last(folder)
        except OSError:  # removed meanwhile by another run, or not readable: left to the next
            pass
        finally:
            os.close(fd)
    if removed:
        logger.info("removed %d temp folder(s) %s* of ended runs in %s", removed, prefix, root)
    return removed


def _remove_lock_last(folder: str) -> bool:
    """Removes ``folder`` with its lock file last, so that a folder a process of the ended run still writes into
    (a Ray helper lingers for a minute after ``kill -9``) keeps its lock file and is tried again by the next run,
    instead of staying for good as a folder without one. True when it is gone."""
    lock = os.path.join(folder, LOCK_FILE)
    for entry in os.scandir(folder):
        if entry.name != LOCK_FILE:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
    if set(os.listdir(folder)) != {LOCK_FILE}:
        return False  # something could not be removed, or was written meanwhile
    with open(lock) as held:
        host = held.read()
    os.unlink(lock)
    try:
        os.rmdir(folder)
    except OSError:  # written into between the two: the lock file back (unlocked), for the next run
        with open(lock, "w") as again:
            again.write(host)
        return False
    return True


def release(handle: Optional[IO[str]]) -> None:
    """Closes the lock file of :func:`make_temp_dir` (after its folder is removed)."""
    if handle is not None:
        handle.close()


#: The warnings option that silences the resource tracker's "There appear to be N leaked semaphore objects".
_TRACKER_QUIET = "ignore:resource_tracker:UserWarning"


def start_resource_tracker() -> None:
    """Starts Python's resource tracker (the process that removes a spawn pool's semaphores once no process of
    the run holds them) before a pool makes its first semaphore, with its warnings off unless tfnas logs at INFO
    (``-v``): after a ``kill -9`` of the run it removes the run's semaphores, as it should, but prints "There
    appear to be N leaked semaphore objects to clean up at shutdown" on the terminal. A tracker already running
    is kept as it is."""
    import sys
    from multiprocessing import resource_tracker

    quiet = not logging.getLogger("tfnas").isEnabledFor(logging.INFO) and _TRACKER_QUIET not in sys.warnoptions
    if quiet:  # (the tracker takes the interpreter's -W options of the moment it starts)
        sys.warnoptions.append(_TRACKER_QUIET)
    try:
        resource_tracker.ensure_running()
    finally:
        if quiet:
            sys.warnoptions.remove(_TRACKER_QUIET)
