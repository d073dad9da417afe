"""Ctrl-C that is not lost on its way through TensorFlow, tqdm or any other destructor; SIGTERM as Ctrl-C.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. Inside a
destructor (``tqdm.__del__``, TensorFlow's ``AtomicFunction.__del__``) the exception cannot
propagate: Python prints ``Exception ignored in ...`` and carries on, so a training runs to its
end or an export is written after the user pressed Ctrl-C. Inside a context manager of TensorFlow
it may be replaced by another error (``Exiting device scope without proper scope nesting``).

:func:`interrupts_kept` guards a block against both: an interrupt swallowed by a destructor is
sent again (``sys.unraisablehook``, then SIGINT after :data:`RESEND_DELAY_S`), so it lands in the
block's own code, and a block that ends (normally or with another exception) after a Ctrl-C
raises ``KeyboardInterrupt``.

:func:`termination_as_interrupt` makes SIGTERM a :class:`Terminated` interruption (the same clean
stop), and :func:`end_with_parent` ends a worker process with the process that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator, List, Optional

#: Seconds after a swallowed interrupt before it is sent again.
RESEND_DELAY_S = 0.05


@contextlib.contextmanager
def interrupts_kept() -> Iterator[List[int]]:
    """Guards the block against lost Ctrl-C (module docstring); yields the list of the SIGINTs seen.

    Only the main thread handles signals; elsewhere, or when SIGINT is ignored (a pool worker) or
    not handled from Python, the block runs unguarded.
    """
    seen: List[int] = []
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None or previous == signal.SIG_IGN:
        yield seen
        return
    previous_hook = sys.unraisablehook
    resends: List[threading.Timer] = []

    def handler(signum, frame):
        seen.append(signum)
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    def unraisable(info):
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            # Swallowed by a destructor: deliver it again, a moment later so that it lands after
            # the destructor (and this hook, where it would be swallowed too) returned.
            signum = signal.SIGTERM if issubclass(info.exc_type, Terminated) else signal.SIGINT
            resend = threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signum))
            resend.daemon = True
            resends.append(resend)
            resend.start()
            return
        previous_hook(info)

    signal.signal(signal.SIGINT, handler)
    sys.unraisablehook = unraisable
    try:
        yield seen
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an error the interrupt caused (it stopped a callback, a context manager)
        if seen:
            raise KeyboardInterrupt from exc
        raise
    finally:
        for resend in resends:  # the block is over: the interrupt is raised below, not again later
            resend.cancel()
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous)
    if seen:  # the block ended as if nothing happened: the interrupt was swallowed on the way
        raise KeyboardInterrupt


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``: a scheduler's time limit, a container being stopped), raised in the main
    thread by :func:`termination_as_interrupt` as the interruption it is."""


@contextlib.contextmanager
def termination_as_interrupt(seen: List[int]) -> Iterator[List[int]]:
    """Within the block SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``), so a run stopped by
    ``kill`` stops its workers, keeps what finished and removes its temporary files, as after Ctrl-C; by
    default the process ended on the spot and left its pool's workers running. Each SIGTERM is appended
    to ``seen``. Left alone off the main thread or where SIGTERM has a handler of its own."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield seen
        return

    def handler(signum, frame):
        seen.append(signum)
        raise Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def end_with_parent() -> None:
    """This process ends (SIGTERM to itself) when the process that started it (``multiprocessing``'s
    parent) ends, even by ``kill -9``: a pool's worker ran on as an orphan, and the pool's resource
    tracker with it. A daemon thread waits on the parent's sentinel, so it holds for the process,
    whichever thread started this one, on every platform. Nothing where there is no such parent."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])  # readable once the parent has ended
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tfnas-end-with-parent", daemon=True).start()


def exception_chain(exc: Optional[BaseException]) -> Iterator[BaseException]:
    """``exc``, then what caused it or was being handled when it was raised, and so on (each once): where
    an interruption that an error replaced on its way out is found."""
    seen: List[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        yield exc
        exc = exc.__cause__ or exc.__context__
