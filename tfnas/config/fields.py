"""The field helper of the section dataclasses."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def _f(default: Any, **meta: Any) -> Any:
    """A dataclass field with ``default`` and validation ``metadata`` (``choices``, ``min``, ``gt`` (an exclusive
    lower bound), ``max`` (integers without one stop at 2**31 - 1), ``registry``, ``multiline``: the value may span
    lines, ``folder``: a folder, written without trailing separators so that ``data/`` and ``data`` are one
    configuration; ``folder``, ``path`` and ``home``: a leading ``~`` is the user's home folder)."""
    return field(default=default, metadata=meta)
