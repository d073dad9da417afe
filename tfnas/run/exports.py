"""``[export]``: the files a trained network is exported to, and writing them.

Each format of ``[export] format`` has a fixed name in the run directory (beside ``metrics.json``):

- ``saved_model``: ``saved_model/`` (:func:`tfnas.train.export.export_saved_model`);
- ``keras``: ``model.keras`` (:func:`tfnas.train.export.export_keras`);
- ``tflite``: ``model.tflite`` (float32), ``model_float16.tflite`` or ``model_int8.tflite`` after
  ``[export] quantize`` (:func:`tfnas.train.tflite.export_tflite`), so exports of different
  quantizations sit side by side.

Every format holds the inference network (no auxiliary head, no DropPath) and every file is written
atomically (a hidden temporary sibling renamed into place): a failed export leaves the earlier file
or none, never a half-written one.

Resume rule: when the training has just run epochs, every requested format is (re)written, and the
run's exports of formats no longer requested are removed (they hold the weights of fewer epochs;
:func:`remove_stale_exports`, with a warning naming them); when it ran none (a finished run
resumed), the exports already there are kept and only the missing ones are written. So adding
``tflite`` to the list of a finished run converts its trained network once and rewrites nothing
else; delete a file to have it written again (e.g. after changing ``[export] calibration``).

int8 calibration images (:func:`tfnas.train.calibration.calibration_images`): ``[export]
calibration`` when set (a registered dataset, read with the run's ``[dataset]`` data and manual
dirs when it is the run's own, or an image-folder root); when empty, the training split of the
run's own ``[dataset]`` (a tfds dataset or an image folder), preprocessed as for evaluation.
Synthetic images, with a :class:`~tfnas.train.calibration.SyntheticCalibrationWarning`, are used
only when the run's dataset is neither.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Sequence, Tuple

from tfnas.config import Config
from tfnas.formats import QUANTIZATIONS

logger = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"
_FILES = {"saved_model": "saved_model", "keras": "model.keras"}


def tflite_file(quantize: str) -> str:
    """The ``.tflite`` file name of a quantization: ``model.tflite`` (``none``) or ``model_<quantize>.tflite``."""
    return TFLITE_FILE if quantize == "none" else f"model_{quantize}.tflite"


def export_paths_of(cfg: Config) -> Dict[str, str]:
    """``{format: absolute path}`` of every ``[export] format`` of this run, in the order listed."""
    names = dict(_FILES, tflite=tflite_file(cfg.export.quantize))
    return {fmt: os.path.abspath(os.path.join(cfg.out_dir, names[fmt])) for fmt in cfg.export.format}


def remove_stale_exports(cfg: Config) -> List[str]:
    """Removes the run's exports (``saved_model/``, ``model.keras``, ``model*.tflite``) that ``[export]``
    no longer asks for, after the network was trained further; returns their paths (warned about)."""
    from tfnas.train.targets import remove_path

    keep = set(export_paths_of(cfg).values()) if cfg.export.enabled else set()
    names = list(_FILES.values()) + [tflite_file(q) for q in QUANTIZATIONS]
    stale = [p for p in (os.path.abspath(os.path.join(cfg.out_dir, n)) for n in names)
             if p not in keep and os.path.lexists(p)]
    for path in stale:
        remove_path(path)
    if stale:
        logger.warning("removed %s: exported before the epochs just trained, and not in [export] format now (list "
                       "their formats there to keep them up to date)", ", ".join(stale))
    return stale


def missing_exports(cfg: Config) -> List[str]:
    """The formats of ``[export] format`` not yet written (all of them when export is on and none exists)."""
    if not cfg.export.enabled:
        return []
    return [fmt for fmt, path in export_paths_of(cfg).items() if not os.path.exists(path)]


def export_lines(exports: Dict[str, str], calibration: str = "") -> List[str]:
    """``exported (format): path`` per export, then the int8 calibration source when there was one."""
    lines = [f"exported ({fmt}): {path}" for fmt, path in exports.items()]
    return lines + ([f"int8 calibration: {calibration}"] if calibration else [])


def calibration_of(cfg: Config, input_shape: Sequence[int]) -> Any:
    """The int8 calibration images of this run (:class:`~tfnas.train.calibration.Calibration`; see the module
    docstring for where they come from)."""
    from tfnas.data.folder import ImageFolderSource
    from tfnas.data.tfds_source import TfdsSource
    from tfnas.registry import DATASETS
    from tfnas.train.calibration import calibration_images

    d = cfg.dataset
    source = cfg.export.calibration
    if not source:
        own = DATASETS.get(d.name)
        source = d.data_dir if isinstance(own, ImageFolderSource) else d.name if isinstance(own, TfdsSource) else ""
    dirs = dict(data_dir=d.data_dir, manual_dir=d.manual_dir) if source == d.name else {}
    return calibration_images(source or None, input_shape, seed=cfg.run.seed, download=d.download, **dirs)


def check_calibration_data(cfg: Config) -> None:
    """Raises now, not after a search and a training, when ``[export] calibration`` names another
    registered dataset than ``[dataset] name`` that cannot be read (the training data is checked with
    the training); nothing is iterated. The error names ``[export] calibration``."""
    from tfnas.data import DatasetNotFoundError, load_dataset
    from tfnas.train.calibration import check_calibration_source

    source, d = cfg.export.calibration, cfg.dataset
    if cfg.export.quantize != "int8" or "tflite" not in missing_exports(cfg) or source == d.name:
        return
    if check_calibration_source(source) != "dataset":
        return
    try:
        load_dataset(source, split="train", download=d.download)
    except DatasetNotFoundError as exc:
        raise DatasetNotFoundError(f"[export] calibration = {source} (the int8 calibration images, read from "
                                   f"tfds' default data dir): {exc}") from None


def export_trained(model: Any, cfg: Config, input_shape: Sequence[int], rewrite: bool) -> Tuple[Dict[str, str], str]:
    """Writes ``model``'s inference network in every ``[export] format`` (see the module docstring).

    Args:
        model: the trained network (a training network is fine: the writers leave out its
            auxiliary head and DropPath layers).
        cfg: the run's config (``[export]``, ``[dataset]`` for int8 calibration, ``[run] out_dir``).
        input_shape: ``(H, W, C)`` of the network input.
        rewrite: replace exports already there (the network was just trained further); otherwise
            only the missing formats are written.

    Returns:
        ``({format: absolute path}, calibration)``: every requested export, written now or kept,
        and where this call's int8 calibration images came from (``""`` when none were used).
    """
    from tfnas.train.export import export_keras, export_saved_model
    from tfnas.train.tflite import export_tflite

    paths = export_paths_of(cfg)
    calibration = ""
    for fmt, path in paths.items():
        if not rewrite and os.path.exists(path):
            continue
        if fmt == "saved_model":
            export_saved_model(model, path, overwrite=True)
        elif fmt == "keras":
            export_keras(model, path, overwrite=True)
        else:
            images = None
            if cfg.export.quantize == "int8":
                found = calibration_of(cfg, input_shape)
                images, calibration = found.images, found.source
            export_tflite(model, path, cfg.export.quantize, images, input_shape=input_shape, overwrite=True)
    return paths, calibration
