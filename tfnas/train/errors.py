"""Errors of a training that the command line reports as one line (a leaf module: the supernets of the
search spaces raise them too, and the spaces import no config or run layer)."""

from __future__ import annotations

__all__ = ["TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """A training's loss became NaN or infinite; the message names the settings to change
    (a user's problem: the command line prints it as one ``error:`` line, exit status 2)."""
