"""What an executor returns for an item whose evaluation raised (:class:`Failed`), and how the exception
travels back from a worker (:func:`picklable`)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Failed", "picklable"]


@dataclass(frozen=True)
class Failed:
    """The result of an item whose evaluation raised: ``error`` is ``"<ExceptionType>: <message>"``;
    ``exception`` the exception itself where it survives pickling (for a caller that raises it again, so
    that an error the command line names in one line, e.g. a diverged training, is named so from a worker
    too), else None."""

    error: str
    exception: Optional[BaseException] = field(default=None, compare=False, repr=False)

    def reraise(self, context: str) -> None:
        """Raises the worker's exception (where it survived pickling), else a ``RuntimeError``; both
        name ``context`` ("a sweep record failed in a worker") as their cause."""
        cause = RuntimeError(f"{context}: {self.error}")
        if self.exception is not None:
            raise self.exception from cause
        raise cause

    def __float__(self) -> float:
        return float("nan")


def picklable(exc: BaseException) -> Optional[BaseException]:
    """``exc`` without its traceback where it pickles and unpickles (a worker sends it back), else None."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception of a class that does not survive the trip
        return None
    return copy if isinstance(copy, BaseException) else None
