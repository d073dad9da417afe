"""Damaged copies of finished runs, for the tests that a resumed search names a damaged state, and the
step tag of a checkpoint's array file."""

from __future__ import annotations

import json
import shutil
from typing import Any, Callable, Tuple

import numpy as np


def damaged_state_copy(finished: Any, out: Any, state: str, damage: Callable[[dict], Any]) -> Tuple[Any, bytes]:
    """Copies the finished run directory ``finished`` to ``out``, removes its ``result.json`` (so the
    search runs again and reads its state) and applies ``damage`` to the parsed JSON of
    ``search_state/<state>``; returns that file's path and its damaged bytes (to check that it is
    left as it was)."""
    shutil.copytree(finished, out)
    (out / "result.json").unlink()
    path = out / "search_state" / state
    value = json.loads(path.read_text())
    damage(value)
    path.write_text(json.dumps(value))
    return path, path.read_bytes()


def saved_step(path: Any) -> int:
    """The step an array checkpoint was tagged with (its last array but one; ``save_tagged``)."""
    with np.load(path) as data:
        return int(data[f"arr_{len(data.files) - 2}"])
