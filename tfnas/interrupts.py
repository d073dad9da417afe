"""Ctrl-C that is not lost on its way through TensorFlow, tqdm or any other destructor.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. Inside a
destructor (``tqdm.__del__``, TensorFlow's ``AtomicFunction.__del__``) the exception cannot
propagate: Python prints ``Exception ignored in ...`` and carries on, so a training runs to its
end or an export is written after the user pressed Ctrl-C. Inside a context manager of TensorFlow
it may be replaced by another error (``Exiting device scope without proper scope nesting``).

:func:`interrupts_kept` guards a block against both: an interrupt swallowed by a destructor is
sent again (``sys.unraisablehook``, then SIGINT after :data:`RESEND_DELAY_S`), so it lands in the
block's own code, and a block that ends (normally or with another exception) after a Ctrl-C
raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator, List

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
            resend = threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signal.SIGINT))
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
