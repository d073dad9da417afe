"""Small validators shared by the whole package: integers, numbers, image shapes, class counts.

A leaf module (numpy and the standard library only), so every layer may import it.

Each ``check_*`` function returns the validated value as a plain Python type and raises
``ValueError`` otherwise. Its message names the ``owner`` (the class or function doing the
check) and the argument; a call site whose wording differs passes ``message``, a
:meth:`str.format` template that is filled in only when the check fails, with the fields
``owner``, ``name``, ``value`` (the value received), ``low`` and ``high``, e.g.
``"{owner}: {name} must be an int >= {low}. Received: {name}={value!r}"``.

``bool`` is an ``int`` subclass in Python; these checks refuse it wherever a count, size or seed
is expected, so ``True`` never passes as ``1``. NumPy integer scalars are accepted and returned
as ``int``.
"""

from __future__ import annotations

from typing import Any, NoReturn, Optional, Tuple

import numpy as np

#: The largest integer a config key (without its own maximum) or a run record holds: TensorFlow's
#: shapes, sizes and seeds are 32-bit.
INT32_MAX = 2 ** 31 - 1

__all__ = [
    "INT32_MAX",
    "check_image_shape",
    "check_int",
    "check_num_classes",
    "check_rng",
    "is_int",
    "is_number",
    "positive_int",
]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an ``int`` or a NumPy integer scalar, and not a ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (``int``, ``float`` or a NumPy integer or floating
    scalar), and not a ``bool``. NaN and infinities count as numbers; bound them at the call site."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fail(message: str, value: Any, name: str, owner: Optional[str], low: Any = None, high: Any = None) -> NoReturn:
    raise ValueError(message.format(owner=owner, name=name, value=value, low=low, high=high))


def _prefix(owner: Optional[str]) -> str:
    # a template field, not the owner's text, so braces in an owner name stay literal
    return "{owner}: " if owner else ""


def check_int(value: Any, name: str, owner: Optional[str] = None, *, low: Optional[int] = None,
              high: Optional[int] = None, message: Optional[str] = None) -> int:
    """``value`` as an ``int`` when :func:`is_int` holds and ``low <= value <= high`` (either bound
    may be ``None``); else ``ValueError``.

    The default message reads ``"{owner}: `{name}` must be an integer >= {low}. Received:
    {name}={value!r}"`` (the bound part follows the bounds given); ``message`` replaces it (see
    the module docstring for its fields).
    """
    if is_int(value) and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    if message is None:
        if low is not None and high is not None:
            bounds = " in [{low}, {high}]"
        elif low is not None:
            bounds = " >= {low}"
        elif high is not None:
            bounds = " <= {high}"
        else:
            bounds = ""
        message = _prefix(owner) + "`{name}` must be an integer" + bounds + ". Received: {name}={value!r}"
    _fail(message, value, name, owner, low, high)


def positive_int(value: Any, name: str, owner: Optional[str] = None, *, message: Optional[str] = None) -> int:
    """``value`` as an ``int`` when it is an integer >= 1 (not a bool); else ``ValueError``.

    The default message reads ``"{owner}: `{name}` must be a positive integer. Received:
    {name}={value!r}"`` (without the owner part when ``owner`` is ``None``).
    """
    if message is None:
        message = _prefix(owner) + "`{name}` must be a positive integer. Received: {name}={value!r}"
    return check_int(value, name, owner, low=1, message=message)


def check_num_classes(num_classes: Any, owner: Optional[str] = None, *, message: Optional[str] = None) -> int:
    """``num_classes`` as an ``int`` when it is a positive integer; else ``ValueError``
    (:func:`positive_int` with ``name="num_classes"``)."""
    return positive_int(num_classes, "num_classes", owner, message=message)


def check_image_shape(shape: Any, owner: Optional[str] = None, *, none_ok: bool = False,
                      message: Optional[str] = None) -> Tuple[Optional[int], ...]:
    """``shape`` as a tuple ``(H, W, C)`` of positive ``int``; else ``ValueError``.

    Args:
      shape: a channels-last image shape without the batch axis (any iterable).
      owner: who checks, put first in the default message.
      none_ok: accept ``None`` for unknown dimensions (kept as ``None``).
      message: replaces the default ``"{owner}: input_shape must be (H, W, C) positive ints.
        Received: {value!r}"``; ``{value}`` is the shape as received.
    """
    dims = tuple(shape)
    if len(dims) == 3 and all((none_ok and d is None) or (is_int(d) and d >= 1) for d in dims):
        return tuple(None if d is None else int(d) for d in dims)
    if message is None:
        message = _prefix(owner) + "input_shape must be (H, W, C) positive ints. Received: {value!r}"
    _fail(message, shape, "input_shape", owner)


def check_rng(rng: Any, owner: Optional[str] = None, name: str = "rng") -> np.random.Generator:
    """``rng`` when it is a ``numpy.random.Generator``; else ``TypeError`` (a seed, ``None`` or a legacy
    ``RandomState`` draws another stream, or fails deep inside)."""
    if not isinstance(rng, np.random.Generator):
        prefix = f"{owner}: " if owner else ""
        raise TypeError(f"{prefix}{name} must be a numpy.random.Generator, e.g. np.random.default_rng(seed); got "
                        f"{type(rng).__name__} {rng!r}")
    return rng
