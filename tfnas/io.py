"""Atomic file writes (bytes, text, matplotlib figures) and JSON-lines record files.

Every write goes to a temporary file in the target's folder, is flushed and synced, and is
then renamed over the target (``os.replace``, atomic on POSIX and Windows), so a reader or a
crash never sees half a file. The temporary file is created with mode ``0o666`` filtered by
the process umask, exactly as ``open(path, "w")`` would create it, so results files get the
same permissions as any other file the user writes (``tempfile.mkstemp`` would leave them
``0o600``).

Reading back: :func:`reading` / :func:`read_json` turn a file a run wrote earlier that no longer
parses (truncated, edited, from another run) into one :class:`DamagedFileError` naming the file
and what to delete; :func:`check_fields` does the same for a JSON state that parses but whose
fields are missing, of the wrong type or out of range (the checks: :func:`integer`,
:func:`number`, :func:`text`, :func:`list_of`, :func:`items`, :func:`dict_of`, :func:`record`,
:func:`nullable`, :data:`PCG64_STATE`), so a resumed search stops before any work.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
import zipfile
from typing import IO, Any, Callable, Collection, Iterable, Iterator, List, Mapping, Optional, Tuple

__all__ = [
    "DamagedFileError",
    "FieldError",
    "PCG64_STATE",
    "check_fields",
    "dict_of",
    "integer",
    "items",
    "list_of",
    "nullable",
    "number",
    "record",
    "text",
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
# (RecursionError: JSON nested deeper than the interpreter's recursion limit)
_DAMAGE = (ValueError, KeyError, TypeError, IndexError, EOFError, RecursionError, zipfile.BadZipFile)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (TensorFlow's ``message`` when it has one), cut to
    ``limit`` characters; the type's name when there is no message. For one-line error reports."""
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def clipped(text: str, limit: int = 2000) -> str:
    """``text`` cut in its middle to about ``limit`` characters, saying how many were left out: an
    error message that quotes a huge value (a pasted architecture, a config value) stays readable,
    and keeps its end, which says what was expected."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]} [... {len(text) - head - tail:,} characters left out ...] {text[-tail:]}"


REDO = "delete it (or the whole run directory) to redo what it holds"
#: The resolved config every run directory keeps (written by ``tfnas.run.rundir.RunDir``; read back by
#: ``tfnas.train.provenance`` to tell which architecture trained weights belong to).
RUN_CONFIG_FILE = "config.cfg"


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


# ---- the fields of a JSON state read back ------------------------------------------------------

#: A check of one JSON value: returns nothing, raises :class:`FieldError` when the value does not fit.
Check = Callable[[Any], None]


class FieldError(ValueError):
    """What a check raises: the value ``got`` is not ``expected`` (``"a non-negative integer"``), or
    (``missing``) a required key is absent. ``where`` is the path to the value inside the checked
    one (``"['members'][3][1]"``), built up as the error leaves nested checks."""

    def __init__(self, expected: str, got: Any = None, where: str = "", missing: bool = False):
        super().__init__(expected)
        self.expected, self.got, self.where, self.missing = expected, got, where, missing

    def inside(self, step: str) -> "FieldError":
        self.where = step + self.where
        return self


def _shown(value: Any, limit: int = 60) -> str:
    """A short description of a JSON value for an error message (containers by their size)."""
    if isinstance(value, (list, dict)):
        what, unit = ("a list", "item") if isinstance(value, list) else ("an object", "key")
        return f"{what} of {len(value)} {unit}" + ("" if len(value) == 1 else "s")
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def check_fields(path: str, value: Any, check: Check, remedy: str = REDO) -> None:
    """Runs ``check`` on ``value`` (read back from ``path``); a value that does not fit raises
    :class:`DamagedFileError` naming the field (``"its 'members' field is missing"``,
    ``"'epoch' must be a non-negative integer; got 'x'"``) and ``remedy``."""
    try:
        check(value)
    except FieldError as exc:
        where = exc.where
        if where.startswith("['") and "']" in where:  # the top-level key without its brackets
            end = where.index("']") + 1
            where = where[1:end] + where[end + 1:]
        if exc.missing:
            problem = f"its {where} field is missing"
        else:
            problem = f"{where or 'its content'} must be {exc.expected}; got {_shown(exc.got)}"
        raise DamagedFileError(path, problem, remedy) from None


def integer(low: int = 0, high: Optional[int] = None, expected: str = "") -> Check:
    """An ``int`` (not a bool) in ``[low, high]`` (``high`` None: no upper bound); ``expected``: what
    the message calls it (default: from the bounds)."""
    if not expected and high is not None:
        expected = f"an integer in [{low}, {high}]"
    elif not expected:
        expected = "a non-negative integer" if low == 0 else f"an integer >= {low}"

    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise FieldError(expected, value)

    return check


def number(low: Optional[float] = None, finite: bool = False) -> Check:
    """An ``int`` or ``float`` (not a bool); ``finite``: not NaN or infinite; ``low``: at least ``low``."""
    expected = "a " + ("finite " if finite else "") + "number" + (f" >= {low}" if low is not None else "")

    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(expected, value)
        if (finite and not math.isfinite(value)) or (low is not None and not value >= low):
            raise FieldError(expected, value)

    return check


def text(value: Any) -> None:
    """A string."""
    if not isinstance(value, str):
        raise FieldError("a string", value)


def _equal(wanted: Any) -> Check:
    def check(value: Any) -> None:
        if value != wanted or type(value) is not type(wanted):
            raise FieldError(repr(wanted), value)

    return check


def nullable(check: Check) -> Check:
    """``null`` or a value that ``check`` accepts."""

    def nullable_check(value: Any) -> None:
        if value is not None:
            check(value)

    return nullable_check


def list_of(item: Optional[Check] = None, length: Optional[int] = None, max_length: Optional[int] = None) -> Check:
    """A list of ``length`` items (any length when None, at most ``max_length``), each accepted by ``item``."""
    if length is not None:
        expected = f"a list of {length} items"
    else:
        expected = f"a list of at most {max_length} items" if max_length is not None else "a list"

    def check(value: Any) -> None:
        if not isinstance(value, list) or (length is not None and len(value) != length) or (
                max_length is not None and len(value) > max_length):
            raise FieldError(expected, value)
        if item is not None:
            for i, entry in enumerate(value):
                try:
                    item(entry)
                except FieldError as exc:
                    raise exc.inside(f"[{i}]") from None

    return check


def items(*checks: Check) -> Check:
    """A list of exactly ``len(checks)`` items, item ``i`` accepted by ``checks[i]`` (a JSON tuple)."""
    expected = f"a list of {len(checks)} items"

    def check(value: Any) -> None:
        if not isinstance(value, list) or len(value) != len(checks):
            raise FieldError(expected, value)
        for i, (entry, item) in enumerate(zip(value, checks)):
            try:
                item(entry)
            except FieldError as exc:
                raise exc.inside(f"[{i}]") from None

    return check


def dict_of(item: Check) -> Check:
    """A JSON object (string keys) whose every value ``item`` accepts."""

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise FieldError("an object", value)
        for key, entry in value.items():
            try:
                item(entry)
            except FieldError as exc:
                raise exc.inside(f"[{key!r}]") from None

    return check


def record(fields: Mapping[str, Check], optional: Collection[str] = (), only: bool = False) -> Check:
    """A JSON object with every key of ``fields`` but those in ``optional`` (checked when present),
    each value accepted by its check; ``only``: no other keys."""

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise FieldError("an object", value)
        for key, field in fields.items():
            if key not in value:
                if key in optional:
                    continue
                raise FieldError("present", where=f"[{key!r}]", missing=True)
            try:
                field(value[key])
            except FieldError as exc:
                raise exc.inside(f"[{key!r}]") from None
        if only and set(value) - set(fields):
            extra = ", ".join(repr(k) for k in sorted(set(value) - set(fields)))
            raise FieldError(f"an object with only the keys {', '.join(map(repr, fields))} (has {extra})", value)

    return check


#: The state of numpy's ``PCG64`` bit generator (``np.random.default_rng(...).bit_generator.state``).
PCG64_STATE = record({"bit_generator": _equal("PCG64"),
                      "state": record({"state": integer(0, 2**128 - 1, "an unsigned 128-bit integer"),
                                       "inc": integer(0, 2**128 - 1, "an unsigned 128-bit integer")}),
                      "has_uint32": integer(0, 1), "uinteger": integer(0, 2**32 - 1, "an unsigned 32-bit integer")})


_TEMP_PREFIX = ".tmp-"


def _create_temp(folder: str, name: str) -> Tuple[int, str]:
    """Creates a new, empty temporary file next to ``name`` in ``folder``; returns ``(fd, path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    # the name cut so that the temporary one stays within the 255 bytes a file name may have
    short = name.encode("utf-8")[:200].decode("utf-8", errors="ignore")
    for _ in range(100):
        tmp = os.path.join(folder, f"{_TEMP_PREFIX}{short}-{secrets.token_hex(6)}")
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
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:  # e.g. a full disk
            raise type(exc)(exc.errno, f"cannot write {target} ({exc.strerror})", target) from None
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
            except (ValueError, RecursionError) as exc:  # (RecursionError: nested deeper than Python recurses)
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            yield number, value


def read_jsonl(path: str) -> List[Any]:
    """The values of a JSON-lines file, in file order (blank lines skipped)."""
    return [value for _, value in iter_jsonl(path)]


def _jsonl_text(rows: Iterable[Any]) -> str:
    return "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)  # strict JSON: no NaN or Infinity


def write_jsonl(path: str, rows: Iterable[Any]) -> None:
    """Writes ``rows`` (JSON-serialisable values; strict JSON: a NaN or infinity raises ``ValueError``) as a
    JSON-lines file, atomically."""
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
