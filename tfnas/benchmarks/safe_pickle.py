"""Loading untrusted bz2-compressed pickles (the NATS-Bench file format) as plain data only.

:func:`safe_pickle_load` allows a short list of constructors (plain containers, numbers,
strings, numpy scalars) and bounds what they may build, so a crafted file can neither run code
nor allocate gigabytes from a few bytes.
"""

from __future__ import annotations

import builtins
import bz2
import os
import pickle
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from tfnas.checks import is_int

__all__ = ["BenchmarkFormatError", "UnsafePickleError", "safe_pickle_load", "MAX_CONSTRUCTED_BYTES"]

# Globals a NATS-Bench pickle may reference. Everything else (torch tensors of the "-full"
# archives, arbitrary callables) is refused. numpy scalars are allowed because a stored float
# may be a numpy float64; rebuilding one runs no user code.
_SAFE_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bool")
_NUMPY_GLOBALS = frozenset(
    [("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")]
)
# ``_codecs.encode(text, "latin1")`` is how protocols 0-2 write ``bytes``.
_SAFE_GLOBALS = frozenset(
    [("builtins", n) for n in _SAFE_BUILTINS] + [("collections", "OrderedDict"), ("_codecs", "encode")]
) | _NUMPY_GLOBALS

#: Most bytes the allowed constructors (``bytes``, ``list``, ``str``, numpy scalars, ...) may
#: build in one file, summed over the file. Real NATS-Bench files call them only for empty
#: OrderedDicts, small sets and 8-byte numpy scalars; without a cap ``bytes(2**30)`` in a
#: 72-byte file would build a 1 GiB object.
MAX_CONSTRUCTED_BYTES = 64 * 2**20
#: A file may decompress to at most ``MAX_INFLATION`` times its size (but always to
#: ``MIN_STREAM_BYTES``): bounds what the pickle opcodes themselves can build from a bz2 bomb.
MAX_INFLATION = 200
MIN_STREAM_BYTES = 8 * 2**20
# Estimated bytes per element when a container is built from an iterable (pointer, hash slot,
# and a new object where iterating a str yields non-cached characters).
_PER_ITEM_BYTES = 64
# numpy scalar kinds a NATS-Bench file may hold (bool, ints, floats, complex, strings).
_SCALAR_KINDS = frozenset("biufcSU")


class BenchmarkFormatError(ValueError):
    """A benchmark file or folder is not in the expected format; the message names the file and
    what was expected."""


class UnsafePickleError(BenchmarkFormatError, pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list of plain containers / numbers, or would
    build more than the allowed amount of data."""


class _Allowance:
    """What the constructors of one file may still build (see :data:`MAX_CONSTRUCTED_BYTES`)."""

    def __init__(self, limit: int = MAX_CONSTRUCTED_BYTES):
        self.left = int(limit)
        self.limit = int(limit)

    def spend(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or nbytes > self.left:
            raise UnsafePickleError(
                f"refusing {what}: it would build about {nbytes:,} bytes, over the "
                f"{self.limit:,}-byte limit on data built by constructors in one file"
            )
        self.left -= nbytes


def _sized(obj: Any, what: str) -> int:
    """``len(obj)``; iterables without a length are refused (none occur in NATS-Bench files)."""
    try:
        return len(obj)
    except TypeError:
        raise UnsafePickleError(f"refusing {what}: its argument is a {type(obj).__name__} without a length") from None


def _guard_container(factory: Callable[..., Any], name: str, allowance: _Allowance) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        if len(args) > 1:
            raise UnsafePickleError(f"refusing {name}() with {len(args)} arguments")
        if args:
            allowance.spend(_PER_ITEM_BYTES * _sized(args[0], f"{name}()"), f"{name}() of {type(args[0]).__name__}")
        return factory(*args)

    return build


def _guard_bytes(allowance: _Allowance) -> Callable[..., Any]:
    def build(*args: Any) -> bytes:
        if args and is_int(args[0]):
            allowance.spend(int(args[0]), f"bytes({int(args[0])})")
        elif args and isinstance(args[0], str):
            allowance.spend(4 * len(args[0]), "bytes() of a str")
        elif args:
            allowance.spend(_PER_ITEM_BYTES * _sized(args[0], "bytes()"), f"bytes() of {type(args[0]).__name__}")
        return bytes(*args)

    return build


def _guard_encode(allowance: _Allowance) -> Callable[..., Any]:
    def build(*args: Any) -> bytes:
        if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
            raise UnsafePickleError("refusing _codecs.encode() other than (text, 'latin1')")
        allowance.spend(len(args[0]), "_codecs.encode()")
        return args[0].encode("latin1")

    return build


def _guard_str(allowance: _Allowance) -> Callable[..., Any]:
    plain = (str, int, float, complex, bool, type(None), np.number, np.bool_)

    def build(*args: Any) -> str:
        if args and isinstance(args[0], (bytes, bytearray)):
            allowance.spend(4 * len(args[0]), "str() of bytes")
        elif args and not isinstance(args[0], plain):
            # str() of a container renders every element: a list of N references to one long
            # string would become N copies of it.
            raise UnsafePickleError(f"refusing str() of a {type(args[0]).__name__}")
        return str(*args)

    return build


def _guard_number(factory: Callable[..., Any], name: str, allowance: _Allowance) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        if args and isinstance(args[0], (str, bytes, bytearray)):
            allowance.spend(len(args[0]), f"{name}() of a string")
        return factory(*args)

    return build


def _check_scalar_dtype(dtype: Any, what: str) -> None:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _SCALAR_KINDS or dtype.subdtype is not None \
            or dtype.fields is not None:
        raise UnsafePickleError(f"refusing {what} of dtype {dtype!r}: only numbers, booleans and strings are allowed")


def _guard_dtype(allowance: _Allowance) -> Callable[..., Any]:
    def build(*args: Any) -> np.dtype:
        dtype = np.dtype(*args)
        _check_scalar_dtype(dtype, "numpy dtype")
        allowance.spend(dtype.itemsize, f"numpy dtype {dtype}")
        return dtype

    return build


def _guard_scalar(allowance: _Allowance) -> Callable[..., Any]:
    scalar = _numpy_scalar()

    def build(*args: Any) -> Any:
        if not args:
            raise UnsafePickleError("refusing a numpy scalar without a dtype")
        # the dtype's state may have been changed (BUILD) after it was made: check it again
        _check_scalar_dtype(args[0], "a numpy scalar")
        allowance.spend(args[0].itemsize, f"a numpy scalar of dtype {args[0]}")
        return scalar(*args)

    return build


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain containers, numbers and strings, within a size budget.

    Every allowed global is handed out as a guard that estimates what the call would build
    (before building it) and charges it to one :class:`_Allowance` per file.
    """

    def __init__(self, file: Any, allowance: Optional[_Allowance] = None):
        super().__init__(file)
        allowance = allowance or _Allowance()
        self._guards: Dict[Tuple[str, str], Callable[..., Any]] = {}
        for name in ("dict", "list", "tuple", "set", "frozenset"):
            self._guards[("builtins", name)] = _guard_container(getattr(builtins, name), name, allowance)
        self._guards[("collections", "OrderedDict")] = _guard_container(OrderedDict, "OrderedDict", allowance)
        for name in ("int", "float", "complex", "bool"):
            self._guards[("builtins", name)] = _guard_number(getattr(builtins, name), name, allowance)
        self._guards[("builtins", "bytes")] = _guard_bytes(allowance)
        self._guards[("builtins", "str")] = _guard_str(allowance)
        self._guards[("_codecs", "encode")] = _guard_encode(allowance)
        self._guards[("numpy", "dtype")] = _guard_dtype(allowance)
        scalar = _guard_scalar(allowance)
        self._guards[("numpy.core.multiarray", "scalar")] = scalar
        self._guards[("numpy._core.multiarray", "scalar")] = scalar
        assert set(self._guards) == _SAFE_GLOBALS

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 name of builtins, written by protocols 0-2
            module = "builtins"
        guard = self._guards.get((module, name))
        if guard is not None:
            return guard
        hint = " (a '-full' archive with network weights? use the '-simple' one)" if module.startswith("torch") else ""
        raise UnsafePickleError(
            f"refusing to unpickle global {module}.{name}{hint}: only plain dicts/lists/numbers are allowed"
        )


class _BoundedReader:
    """A read-only file wrapper that refuses to deliver more than ``limit`` bytes in total."""

    def __init__(self, raw: Any, limit: int, where: str):
        self._raw, self._left, self._limit, self._where = raw, int(limit), int(limit), where

    def _take(self, data: bytes) -> bytes:
        self._left -= len(data)
        if self._left < 0:
            raise UnsafePickleError(
                f"{self._where} decompresses to more than {self._limit:,} bytes ({MAX_INFLATION} times its "
                f"size, at least {MIN_STREAM_BYTES:,}): not a NATS-Bench file (a compression bomb?)"
            )
        return data

    def read(self, size: int = -1) -> bytes:
        # never ask the decompressor for more than one byte past the limit
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        return self._take(self._raw.read(want))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        return self._take(self._raw.readline(want))


def _numpy_scalar() -> Callable[..., Any]:
    """numpy's scalar-rebuild function, wherever this numpy version keeps it."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


# What unpickling untrusted bytes can raise besides our own errors: all mean "not a valid file".
_LOAD_ERRORS = (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, OverflowError, RecursionError, UnicodeError)


def safe_pickle_load(file_path: str) -> Any:
    """Loads one bz2-compressed pickle, refusing anything but plain data of bounded size.

    Limits: the file may decompress to at most ``max(MIN_STREAM_BYTES, MAX_INFLATION * size)``
    bytes, and the allowed constructors may build at most :data:`MAX_CONSTRUCTED_BYTES` bytes.

    Raises:
      FileNotFoundError: ``file_path`` does not exist.
      UnsafePickleError: the pickle references a class/function outside the allow-list, or
        would build more data than the limits allow.
      BenchmarkFormatError: the file is not a bz2-compressed pickle.
    """
    if not os.path.isfile(file_path):
        raise FileNotFoundError(f"{file_path} not found")
    limit = max(MIN_STREAM_BYTES, MAX_INFLATION * os.path.getsize(file_path))
    try:
        with bz2.open(file_path, "rb") as f:
            return _RestrictedUnpickler(_BoundedReader(f, limit, file_path)).load()
    except UnsafePickleError as e:
        message = str(e) if str(e).startswith(str(file_path)) else f"{file_path}: {e}"
        raise UnsafePickleError(message) from None
    except _LOAD_ERRORS as e:
        raise BenchmarkFormatError(
            f"{file_path} is not a bz2-compressed pickle as written by NATS-Bench ({type(e).__name__}: {e})"
        ) from e
