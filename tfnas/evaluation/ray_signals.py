"""How a Ray driver keeps Ctrl-C and SIGTERM while a private instance starts and stops.

Cut short, ``ray.init`` and ``ray.shutdown`` leave Ray's processes running and its session folder behind,
so :func:`interrupts_deferred` holds the signals back until they are done and :func:`deliver_interrupt`
delivers the first one then. Ray also installs its own SIGTERM handler as it starts (kept out by
:func:`sigterm_kept`) and puts SIGTERM to its default action as it stops (undone in :func:`shutdown`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List

__all__ = ["deliver_interrupt", "interrupts_deferred", "shutdown", "sigterm_kept"]


@contextlib.contextmanager
def interrupts_deferred(enabled: bool = True) -> Iterator[List[int]]:
    """Holds Ctrl-C (and SIGTERM, where the command line turns it into an interruption) back until the
    block ends (a private instance's start and stop, cut short, leave Ray's processes running and its
    folder behind). Yields the list of the signals held; the caller delivers the first
    (:func:`deliver_interrupt`) where the block leaves it work to undo first. A block that ends in an error
    after one ends in that interruption instead (the user asked to stop). A second signal goes to its
    handler at once. Only in the main thread (elsewhere Python delivers no signal) and for a signal with
    a Python handler (not one ignored or left to its default)."""
    import signal
    import threading

    came: List[int] = []
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main and enabled else {}
    handlers = {s: h for s, h in handlers.items() if callable(h)}
    if not handlers:
        yield came
        return

    def hold(signum: int, frame: Any) -> None:
        if came:
            handlers[signum](signum, frame)
        else:
            came.append(signum)

    for signum in handlers:
        signal.signal(signum, hold)
    try:
        yield came
    except Exception:
        if came:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            deliver_interrupt(came)  # (raises, the error as its context)
        raise
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def shutdown(ray: Any) -> None:
    """``ray.shutdown``, waiting until Ray's processes have exited (so that their folder can go).

    Stopping its core worker puts SIGTERM back to the default action (its crash handlers go), while Python
    still reports its own handler: a SIGTERM while Ray then killed its processes ended the driver at once,
    no line, the session folder left behind (and an ignored SIGTERM was no longer ignored). The handler is put
    back as the core worker is gone."""
    import signal
    import threading

    state = getattr(getattr(getattr(ray, "_private", None), "state", None), "state", None)
    # (None off the main thread, where no handler can be set: Ray's reset then stays)
    handler = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    disconnect = getattr(state, "disconnect", None) if handler is not None else None
    own = callable(disconnect) and "disconnect" in vars(state)
    if callable(disconnect):  # (what ray.shutdown calls next, before it kills the processes)
        def handler_back() -> Any:
            signal.signal(signal.SIGTERM, handler)  # a Python handler, or SIG_IGN: kept ignored
            return disconnect()

        state.disconnect = handler_back
    try:
        try:
            ray.shutdown(wait_for_processes=True)
        except TypeError:  # a Ray without the argument
            ray.shutdown()
    finally:
        if callable(disconnect):
            if own:
                state.disconnect = disconnect
            else:
                vars(state).pop("disconnect", None)
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def sigterm_kept(ray: Any = None) -> Iterator[None]:
    """The block's SIGTERM handler stays in place through ``ray.init``, which would install Ray's own in
    the driver (``sys.exit(15)`` while it starts, cutting the start short: the raylet's agents it had
    launched then ran on as orphans). Unless SIGTERM is at its default action, Ray's installer
    (``ray._private.utils.set_sigterm_handler``) does nothing in the block, so a SIGTERM meanwhile reaches
    the block's handler (``interrupts_deferred``'s holds it until the start is complete, and the executor
    then stops the whole instance), or stays ignored. At the default action, or with a Ray that installs
    its handler another way, its ``sys.exit(15)`` ends the start (turned into the block's handler and
    :class:`tfnas.interrupts.Terminated` where that is Python's); the handler is put back after the block."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    # (at SIGTERM's default action, Ray's sys.exit(15) is what lets the executor stop what ray.init started;
    # an ignored SIGTERM, or one handled outside Python, stays as it is)
    installer = getattr(utils, "set_sigterm_handler", None) if main and previous is not signal.SIG_DFL else None
    if installer is not None:
        utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    except SystemExit as exc:  # Ray's handler, during ray.init
        if exc.code == signal.SIGTERM and callable(previous):
            from tfnas.interrupts import Terminated

            previous(signal.SIGTERM, None)  # (the command line's raises Terminated; interrupts_deferred's holds it)
            raise Terminated from None  # Ray's handler has cut ray.init short already: nothing to wait for
        raise
    finally:
        if installer is not None:
            utils.set_sigterm_handler = installer
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def deliver_interrupt(came: List[int]) -> None:
    """Delivers the first signal that :func:`interrupts_deferred` held back to this process' own handler
    (Python's raises KeyboardInterrupt for Ctrl-C, the command line's Terminated for SIGTERM)."""
    import signal

    signum = came[0] if came else signal.SIGINT
    handler = signal.getsignal(signum)
    if callable(handler):
        handler(signum, None)
    raise KeyboardInterrupt
