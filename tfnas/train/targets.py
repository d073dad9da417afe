"""Export targets: checked before the (slow) build, written under a hidden temporary name and then
renamed into place, so a failed or interrupted export leaves nothing half-written.

:func:`check_target` refuses what cannot or may not be written before any work (an existing
non-empty target without ``overwrite``; even with it, anything but an earlier export of the same
kind: a folder where a one-file format goes, a file or a folder without a SavedModel where a
SavedModel goes, a folder holding the current one; a parent that is missing, a file or
unwritable); :func:`writing` turns a write failure (a full disk) into one
:class:`ExportWriteError` naming the target; :func:`install` renames the finished temporary
file or folder onto the target.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from typing import Iterator, Optional

from tfnas.io import first_line
from tfnas.train.checkpoint import WRITE_ERRORS

__all__ = ["ExportWriteError", "check_target", "install", "is_nonempty", "remove_path", "temp_sibling", "writing"]


def is_nonempty(path: str) -> bool:
    if os.path.isdir(path) and not os.path.islink(path):
        return bool(os.listdir(path))
    return os.path.lexists(path) and (os.path.islink(path) or os.path.getsize(path) > 0)


class ExportWriteError(OSError):
    """An export could not be written (a full disk, a folder that became read-only); the message
    names the target, and what the export had begun is removed."""


def _reason(exc: BaseException) -> str:
    """Why TensorFlow could not write: the operating system's reason when its message holds one
    (a SavedModel's variables on a full disk), else its first line without the op's ``{{...}}`` name."""
    text = str(getattr(exc, "message", "") or exc)
    for known in ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded"):
        if known in text:
            return known
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", first_line(exc, 300))[:200]


@contextlib.contextmanager
def writing(target: str) -> Iterator[None]:
    """Turns a write failure inside the block (``OSError``, or TensorFlow's error from writing a
    SavedModel's variables) into one :class:`ExportWriteError` naming ``target``."""
    try:
        yield
    except WRITE_ERRORS as exc:  # not, say, a tracing error of the model: a bug keeps its traceback
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
        raise ExportWriteError(f"cannot write {target} ({reason})") from None


_ONE_FILE = (".keras", ".tflite")  # formats written as one file; a SavedModel is a folder


#: What a SavedModel folder holds (``tf.saved_model.save`` and Keras' ``ExportArchive``): a folder
#: with anything else in it is not replaced, so files of the user's are never deleted.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
SAVED_MODEL_PARTS = SAVED_MODEL_FILES + ("variables", "assets", "assets.extra", "fingerprint.pb", "keras_metadata.pb")


def _not_saved_model(path: str) -> str:
    """Why the non-empty folder ``path`` is not an earlier SavedModel ("" when it is one)."""
    names = sorted(os.listdir(path))
    other = [name for name in names if name not in SAVED_MODEL_PARTS]
    if other:
        return f"it holds {other[0]!r}, which is not part of a SavedModel"
    if not any(os.path.isfile(os.path.join(path, name)) for name in SAVED_MODEL_FILES):
        return f"it holds no {' or '.join(SAVED_MODEL_FILES)}"
    return ""


def _refuse_unrelated(path: str, one_file: bool) -> None:
    """Overwriting replaces only an earlier export of the same kind: never a folder that holds the
    current folder, nor a file or folder of something else (``--overwrite`` removes what it replaces)."""
    here = os.path.realpath(os.getcwd())
    real = os.path.realpath(path)
    if os.path.isdir(path) and (here == real or here.startswith(real.rstrip(os.sep) + os.sep)):
        raise IsADirectoryError(f"{path} holds the current folder; an export never replaces it, even with "
                                f"--overwrite: choose a new name")
    if one_file:
        if os.path.isdir(path):  # --overwrite must not delete a folder's tree
            raise IsADirectoryError(f"{path} is a folder; a {os.path.splitext(path)[1] or 'one-file'} export is one "
                                    f"file, so it is not replaced even with --overwrite: choose another name")
        return
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} is a file; a SavedModel is a folder, so the file is not replaced "
                              f"even with --overwrite: choose another name")
    why = _not_saved_model(path) if is_nonempty(path) else ""
    if why:
        raise FileExistsError(f"{path} is a folder but not an earlier SavedModel ({why}); --overwrite replaces "
                              f"only a SavedModel export: choose another name")


def check_target(path: str, overwrite: bool, one_file: Optional[bool] = None) -> str:
    """``path`` made absolute, once it is known that it may be written (module docstring).

    ``one_file``: the export is one file (``.keras``, ``.tflite``) rather than a SavedModel folder;
    by default, what the name ends in says.
    """
    path = os.path.abspath(os.fspath(path))
    _refuse_unrelated(path, path.endswith(_ONE_FILE) if one_file is None else one_file)
    if is_nonempty(path) and not overwrite:
        raise FileExistsError(f"{path} already exists and is not empty; pass --overwrite "
                              f"(overwrite=True in Python) to replace it")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        blocker = parent
        while blocker and not os.path.lexists(blocker):
            blocker = os.path.dirname(blocker)
        if blocker and not os.path.isdir(blocker):
            raise NotADirectoryError(f"cannot write {path}: {blocker} is a file, not a folder")
        raise FileNotFoundError(f"the parent folder of {path} does not exist; create {parent} first")
    probe = temp_sibling(path)
    try:  # fail before the (slow) build and conversion when nothing can be written there
        open(probe, "xb").close()
    except OSError as exc:
        raise PermissionError(f"cannot write into {parent} ({exc.strerror or exc}) for {path}") from None
    os.remove(probe)
    return path


def temp_sibling(target: str, suffix: str = "") -> str:
    """A fresh hidden name beside ``target`` (created by the caller, so the umask applies)."""
    parent, base = os.path.split(target)
    return os.path.join(parent, f".{base}.tmp-{uuid.uuid4().hex}{suffix}")


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def install(tmp: str, target: str, overwrite: bool) -> None:
    """Renames ``tmp`` onto ``target``; an existing target is moved aside first and removed last."""
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    if is_nonempty(target) and not overwrite:
        raise FileExistsError(f"{target} appeared while exporting; not replacing it without overwrite=True")
    if os.path.isfile(tmp) and os.path.isfile(target) and not os.path.islink(target):
        os.replace(tmp, target)  # file over file: one atomic rename
        return
    parent, base = os.path.split(target)
    backup = os.path.join(parent, f".{base}.old-{uuid.uuid4().hex}")
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(backup, target)
        raise
    remove_path(backup)
