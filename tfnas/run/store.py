"""The files of one run directory, as the methods see them: named, every write atomic."""

from __future__ import annotations

import os
from typing import Any

from tfnas.io import atomic_write_bytes, atomic_write_figure, atomic_write_text

#: The folder of a run directory where searches keep their checkpoints.
STATE_DIR = "search_state"


class ArtifactStore:
    """Named files of one run directory, every write atomic (temp file, then rename).

    What methods get instead of paths: ``write_text("best_cell.txt", ...)``. Names are relative
    and may hold one folder level (``search_state/evolution.json``).
    """

    def __init__(self, root: str):
        self.root = root

    def path(self, name: str) -> str:
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise ValueError(f"artifact names are relative to the run directory; got {name!r}")
        return os.path.join(self.root, name)

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def read_text(self, name: str) -> str:
        """The text of ``name``; a file that is not UTF-8 raises :class:`tfnas.io.DamagedFileError`."""
        from tfnas.io import reading

        path = self.path(name)
        with open(path, encoding="utf-8") as fh, reading(path):
            return fh.read()

    def _parent(self, name: str) -> str:
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def write_text(self, name: str, text: str) -> str:
        path = self._parent(name)
        atomic_write_text(path, text)
        return path

    def write_bytes(self, name: str, data: bytes) -> str:
        path = self._parent(name)
        atomic_write_bytes(path, data)
        return path

    def write_figure(self, name: str, fig: Any, **savefig: Any) -> str:
        """Saves a matplotlib ``Figure`` (object API, no pyplot) as ``name``."""
        path = self._parent(name)
        atomic_write_figure(fig, path, **savefig)
        return path

    def remove(self, name: str) -> None:
        if self.exists(name):
            os.unlink(self.path(name))

    def state_dir(self) -> str:
        path = self.path(STATE_DIR)
        os.makedirs(path, exist_ok=True)
        return path
