"""Which architecture a set of trained weights belongs to, read from the run directory they lie in.

Weights alone cannot tell apart architectures that differ only in weight-free operations
(pooling, skip, none): their networks hold the same arrays. The weights ``tools/train.py``
writes lie in a run directory whose ``config.cfg`` names the trained ``[space] name`` and
``[space] arch``, so an export that loads them can check that it builds the same architecture.
"""

from __future__ import annotations

import configparser
import logging
import os
from typing import Any, NamedTuple, Optional

from tfnas.config import ConfigError, ini_value
from tfnas.io import RUN_CONFIG_FILE

logger = logging.getLogger(__name__)


class TrainedFor(NamedTuple):
    config: str  # path of the run directory's config.cfg
    space: str
    arch: str


def trained_for(weights: str) -> Optional[TrainedFor]:
    """The space and architecture of the training run that wrote ``weights``: a checkpoint folder
    ``RUN/checkpoints`` or a checkpoint prefix in it, or a file beside the run's ``config.cfg``
    (``RUN/model.keras``), symbolic links followed. None for weights outside a run directory
    (copied elsewhere, or a folder renamed from ``checkpoints``), or a ``config.cfg`` that cannot
    be read or names no architecture: those are checked by the weights alone."""
    path = os.path.realpath(os.fspath(weights))
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    runs = [] if os.path.isdir(path) else [folder]
    if os.path.basename(folder) == "checkpoints":
        runs.append(os.path.dirname(folder))
    for run in runs:
        config = os.path.join(run, RUN_CONFIG_FILE)
        if not os.path.isfile(config):
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(config, encoding="utf-8")
            space, arch = (ini_value(parser.get("space", key)) for key in ("name", "arch"))
        except (OSError, UnicodeDecodeError, configparser.Error, ConfigError) as exc:
            logger.debug("%s: not read for the trained architecture (%s)", config, exc)
            return None
        return TrainedFor(config, space, arch) if space and arch else None
    return None


def check_trained_arch(space: Any, arch: Any, weights: str) -> None:
    """Raises ValueError when ``weights`` lie in a run directory that trained another space or
    architecture than ``space``'s ``arch`` (see :func:`trained_for`)."""
    found = trained_for(weights)
    if found is None:
        return
    if not _same_space(space, found.space):
        raise ValueError(f"the weights {weights} were trained in space {found.space!r} ({found.config}), "
                         f"not in {getattr(space, 'name', '') or type(space).__name__!r}")
    try:
        trained = space.encode(space.decode(found.arch))
    except ValueError as exc:
        logger.debug("%s: [space] arch not decoded (%s); the weights alone are checked", found.config, exc)
        return
    wanted = space.encode(arch)
    if trained != wanted:
        raise ValueError(f"the weights {weights} were trained for another architecture ({found.config}: "
                         f"[space] arch = {trained}), not {wanted}; export that architecture, or load weights "
                         f"trained for this one")


def _same_space(space: Any, name: str) -> bool:
    """Whether ``space`` is an instance of the space registered as ``name`` (or of a subclass of it);
    by its ``name`` attribute when ``name`` is not registered here."""
    from tfnas.registry import SPACES, UnknownNameError

    try:
        registered = SPACES.get(name)
    except UnknownNameError:
        return name == getattr(space, "name", "")
    return isinstance(space, registered)
