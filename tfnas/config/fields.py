"""The field helper of the section dataclasses."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def _f(default: Any, **meta: Any) -> Any:
    """A dataclass field with ``default`` and validation ``metadata`` (``choices``, ``min``, ``max``, ``registry``)."""
    return field(default=default, metadata=meta)
