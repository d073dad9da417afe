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


def ray_address_problem(address: str) -> str:
    """What is wrong with a ``[run] ray_address`` (``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``, a port
    1-65535), or ``""``."""
    if address in ("local", "auto"):
        return ""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if (not host or "/" in host or host in ("local", "auto") or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536):
        return f"expected local, auto, HOST:PORT or ray://HOST:PORT (a port 1-65535), got {address!r}"
    return ""
