"""Atomic file writes (bytes, text, matplotlib figures) and JSON-lines record files.

Every write goes to a temporary file in the target's folder, is flushed and synced, and is
then renamed over the target (``os.replace``, atomic on POSIX and Windows), so a reader or a
crash never sees half a file. The temporary file is created with mode ``0o666`` filtered by
the process umask, exactly as ``open(path, "w")`` would create it, so results files get the
same permissions as any other file the user writes (``tempfile.mkstemp`` would leave them
``0o600``).

Reading back: :func:`reading` / :func:`read_json` turn a file a run wrote earlier that no longer
parses (truncated, edited, from another run) into one :class:`DamagedFileError` naming the file
and what to delete.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import zipfile
from typing import IO, Any, Iterable, Iterator, List, Tuple

__all__ = [
    "DamagedFileError",
    "first_line",
    "reading",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_figure",
    "iter_jsonl",
    "read_json",
    "read_jsonl",
    "write_jsonl",
    "append_jsonl",
]

_NEW_FILE_MODE = 0o666  # filtered by the umask, as for open(path, "w")

# what parsing a damaged file raises: JSON/CSV/npz/pickle errors (ValueError, UnicodeDecodeError),
# fields that are missing or of the wrong type, truncated archives
_DAMAGE = (ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (TensorFlow's ``message`` when it has one), cut to
    ``limit`` characters; the type's name when there is no message. For one-line error reports."""
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


REDO = "delete it (or the whole run directory) to redo what it holds"


class DamagedFileError(ValueError):
    """A file that a run wrote earlier cannot be read back: truncated, edited, or written by another
    run. The message is ``"<path>: <problem>; <remedy>"`` (what to delete); the command line prints
    it as one line."""

    def __init__(self, path: str, problem: str, remedy: str = REDO):
        self.path, self.problem, self.remedy = os.fspath(path), problem, remedy
        super().__init__(f"{self.path}: {problem}; {remedy}")


@contextlib.contextmanager
def reading(path: str, remedy: str = REDO) -> Iterator[None]:
    """Turns the errors of reading ``path`` back (parsing it, checking its fields, loading its
    arrays) into one :class:`DamagedFileError` that names the file and the ``remedy``; a
    :class:`DamagedFileError` of the same file raised inside gets this block's ``remedy``.

    Keep the block to the reading itself, so that a bug elsewhere keeps its own traceback.
    """
    try:
        yield
    except DamagedFileError as exc:
        if exc.path != os.fspath(path) or exc.remedy == remedy:
            raise
        raise DamagedFileError(exc.path, exc.problem, remedy) from exc.__cause__
    except _DAMAGE as exc:
        detail = first_line(exc, 200)
        what = type(exc).__name__ + (f": {detail}" if detail != type(exc).__name__ else "")
        raise DamagedFileError(path, f"cannot be read back ({what})", remedy) from exc


def read_json(path: str, remedy: str = REDO) -> Any:
    """The JSON value in ``path``; a file that does not parse raises :class:`DamagedFileError`."""
    with reading(path, remedy), open(path, encoding="utf-8") as fh:
        return json.load(fh)


_TEMP_PREFIX = ".tmp-"


def _create_temp(folder: str, name: str) -> Tuple[int, str]:
    """Creates a new, empty temporary file next to ``name`` in ``folder``; returns ``(fd, path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f"{_TEMP_PREFIX}{name}-{secrets.token_hex(6)}")
        try:
            return os.open(tmp, flags, _NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
        except OSError as exc:  # name the file being written, not the temporary one
            target = os.path.join(folder, name)
            raise type(exc)(exc.errno, f"cannot write {target} ({exc.strerror})", target) from None
    raise FileExistsError(f"could not create a temporary file for {name!r} in {folder}")


@contextlib.contextmanager
def _atomic_file(path: str) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` when the block ends without error.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _create_temp(folder, name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _holds(path: str, data: bytes) -> bool:
    """Whether ``path`` already holds exactly ``data``."""
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as fh:
            return fh.read() == data
    except OSError:
        return False


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` (folders created as needed) atomically.

    A file that already holds ``data`` is left alone, so rerunning a finished run in a
    read-only directory (to reprint its table) writes nothing.
    """
    if _holds(path, data):
        return
    with _atomic_file(path) as fh:
        fh.write(data)


def atomic_write_text(path: str, text: str, encoding: str = "utf-8") -> None:
    """Writes ``text`` to ``path`` atomically, encoded with ``encoding`` (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_figure(fig: Any, path: str, **savefig_kwargs: Any) -> None:
    """Saves a matplotlib ``Figure`` to ``path`` atomically.

    The format is ``savefig_kwargs["format"]`` if given, else the extension of ``path`` (``png``
    when it has none); the other keyword arguments go to ``Figure.savefig`` (``dpi=...``). The
    figure is not closed: a ``matplotlib.figure.Figure`` built without pyplot is freed with its
    last reference.
    """
    kwargs = dict(savefig_kwargs)
    kwargs.setdefault("format", os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png")
    buf = io.BytesIO()
    fig.savefig(buf, **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def iter_jsonl(path: str) -> Iterator[Tuple[int, Any]]:
    """``(line_number, value)`` for each non-blank line of a JSON-lines file (numbers from 1).

    Raises:
        ValueError: a line is not valid JSON (the message names the file and line).
    """
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            yield number, value


def read_jsonl(path: str) -> List[Any]:
    """The values of a JSON-lines file, in file order (blank lines skipped)."""
    return [value for _, value in iter_jsonl(path)]


def _jsonl_text(rows: Iterable[Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_jsonl(path: str, rows: Iterable[Any]) -> None:
    """Writes ``rows`` (JSON-serialisable values) as a JSON-lines file, atomically."""
    atomic_write_text(path, _jsonl_text(rows))


def append_jsonl(path: str, row: Any) -> None:
    """Adds one JSON line to ``path`` (created if missing).

    The whole file is rewritten atomically, so a crash leaves either the old file or the new
    one, never a half line. Meant for record logs of modest size (one line per run or
    generation), not for streams of millions of lines.
    """
    old = b""
    if os.path.exists(path):
        with open(path, "rb") as fh:
            old = fh.read()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    atomic_write_bytes(path, old + _jsonl_text([row]).encode("utf-8"))
