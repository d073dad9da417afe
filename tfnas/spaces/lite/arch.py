"""SLNAS lite-space architectures: the encoding, its text form and presets.

SLNAS ("Stage and Lite Search Technology in Convolutional Neural Network Architecture Search",
Tsung-Yi Chen; reference PyTorch code ``model_arc/`` of the authors' SLNAS repository) encodes an
architecture as ``[normal, reduction]``, two lists of 20 integers. Node ``n`` (0..4) of a cell owns
entries ``4n .. 4n+3`` = ``(in_x, op_x, in_y, op_y)`` and computes
``op_x(states[in_x]) + op_y(states[in_y])``; ``states`` are ``[h_{k-2}, h_{k-1}, node 0, ...]``, so
``in`` of node ``n`` lies in ``[0, n + 2)`` and ``op`` in ``[0, 5)`` (:data:`OPS`, the order of
the reference's ``cell.all_oper``). The text form is the one the reference's ``--arch`` takes::

    [[0, 1, 0, 4, 1, 3, 0, 3, 0, 3, 0, 0, 1, 1, 0, 3, 0, 3, 1, 0], [0, 3, 1, 0, ...]]

This module imports nothing else of tfnas but :mod:`tfnas.checks`, so the space, the networks
and a supernet all build on it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Tuple

import numpy as np

from tfnas.checks import is_int

__all__ = [
    "CELL_LENGTH",
    "FIELDS",
    "NUM_NODES",
    "OPS",
    "PRESETS",
    "LiteArch",
    "check_cell",
    "describe_arch",
    "from_ids",
    "parse_arch",
    "to_ids",
]

#: Cell ops in the reference's index order (``builder.cell.all_oper``).
OPS: Tuple[str, ...] = (
    "shuffle_3x3",  # ShuffleNetV2 unit, depthwise kernel 3
    "shuffle_5x5",  # ShuffleNetV2 unit, depthwise kernel 5
    "conv_1x1_avg_pool_3x3",  # 1x1 conv, 3x3 average pool, BN
    "conv_1x1_max_pool_3x3",  # 1x1 conv, 3x3 max pool, BN
    "conv_1x1",  # 1x1 conv, BN
)
#: Nodes per cell.
NUM_NODES = 5
#: The four entries of one node.
FIELDS: Tuple[str, ...] = ("in_x", "op_x", "in_y", "op_y")
#: Integers per cell.
CELL_LENGTH = len(FIELDS) * NUM_NODES
#: Longest text :func:`parse_arch` reads (a canonical arch is about 130 characters).
_MAX_TEXT = 4096

Cell = Tuple[int, ...]


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_cell(values: Any, kind: str = "normal") -> Cell:
    """``values`` as a tuple of 20 ints after checking every entry's range.

    Raises:
        TypeError: not a list/tuple/array.
        ValueError: not 20 entries, or an entry out of range (the message names the ``kind`` cell,
            the entry, the node field and the allowed range).
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(f"lite arch {kind} cell must be a list of {CELL_LENGTH} integers; got {_short(values)}")
    if len(values) != CELL_LENGTH:
        raise ValueError(f"lite arch {kind} cell needs {CELL_LENGTH} integers ({NUM_NODES} nodes x "
                         f"(in_x, op_x, in_y, op_y)); got {len(values)}: {_short(values)}")
    out = []
    for k, value in enumerate(values):
        node, field = divmod(k, len(FIELDS))
        high = len(OPS) if field % 2 else node + 2
        what = "op" if field % 2 else "input state"
        if not is_int(value) or not 0 <= value < high:
            raise ValueError(f"lite arch {kind} cell, entry {k} (node {node} {FIELDS[field]}): {what} must be an "
                             f"integer in [0, {high}); got {value!r}")
        out.append(int(value))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class LiteArch:
    """A lite-space architecture: the 20 integers of the normal and of the reduction cell.

    Immutable and hashable; ``str(arch)`` is the canonical text ``[[...20...], [...20...]]``.
    Constructing one validates every entry (``ValueError`` naming the cell, entry and range).

    Args:
        normal: the normal cell's ``(in_x, op_x, in_y, op_y)`` x 5 (any int sequence).
        reduce: the reduction cell's, same layout.
    """

    normal: Cell
    reduce: Cell

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", check_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", check_cell(self.reduce, "reduction"))

    def __str__(self) -> str:
        return f"[{list(self.normal)}, {list(self.reduce)}]"

    def cell(self, reduction: bool) -> Cell:
        """The 20 integers of the reduction (``True``) or the normal cell."""
        return self.reduce if reduction else self.normal

    def nodes(self, reduction: bool) -> Tuple[Tuple[int, int, int, int], ...]:
        """``(in_x, op_x, in_y, op_y)`` of each of the 5 nodes of one cell."""
        c = self.cell(reduction)
        return tuple(tuple(c[4 * n : 4 * n + 4]) for n in range(NUM_NODES))  # type: ignore[misc]


#: Published architectures accepted by name wherever an arch text is (``LiteSpace.decode``,
#: ``[space] arch``).
PRESETS: Dict[str, LiteArch] = {
    # The CIFAR-10 cell of the SLNAS README (1.31 M parameters reported), retrained there with
    # ``--child_out_filters 40 --blocks "[2,2]"``.
    "slnas_paper": LiteArch(
        normal=(0, 1, 0, 4, 1, 3, 0, 3, 0, 3, 0, 0, 1, 1, 0, 3, 0, 3, 1, 0),
        reduce=(0, 3, 1, 0, 0, 4, 1, 1, 1, 1, 0, 3, 0, 2, 1, 2, 1, 1, 0, 3),
    ),
}


def parse_arch(text: str) -> LiteArch:
    """Parses ``[[20 ints], [20 ints]]`` (any whitespace) or a preset name (``slnas_paper``).

    The text is read as JSON, never evaluated; numbers must be plain integers (no ``1.0``,
    ``true`` or strings).

    Raises:
        ValueError: not two lists of 20 integers, or an entry out of its range (the message names
            the cell, the entry, the node field and the allowed range).
    """
    if not isinstance(text, str):
        raise TypeError(f"a lite arch string is needed; got {type(text).__name__}")
    key = text.strip()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()]
    example = "[[0, 1, 0, 4, ...20 ints...], [0, 3, 1, 0, ...20 ints...]]"
    if len(key) > _MAX_TEXT:
        raise ValueError(f"lite arch text is {len(key)} characters long; at most {_MAX_TEXT} are read. "
                         f"Expected {example} or a preset ({', '.join(PRESETS)})")
    try:
        value = json.loads(key)
    except (ValueError, RecursionError):
        raise ValueError(f"lite arch text {_short(text)} is not a list like {example} "
                         f"or a preset name ({', '.join(PRESETS)})") from None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"lite arch text {_short(text)}: expected two lists [normal, reduction], like {example}")
    if not all(isinstance(cell, list) for cell in value):
        raise ValueError(f"lite arch text {_short(text)}: both cells must be lists of {CELL_LENGTH} integers")
    return LiteArch(value[0], value[1])


def to_ids(arch: LiteArch) -> np.ndarray:
    """int32 ``[2, 5, 2, 2]``: ``[cell (normal, reduce), node, slot (x, y), (input, op)]`` (supernet input)."""
    out = np.zeros((2, NUM_NODES, 2, 2), np.int32)
    for c, reduction in enumerate((False, True)):
        for n, (in_x, op_x, in_y, op_y) in enumerate(arch.nodes(reduction)):
            out[c, n, 0] = (in_x, op_x)
            out[c, n, 1] = (in_y, op_y)
    return out


def from_ids(ids: Any) -> LiteArch:
    """Inverse of :func:`to_ids`: an int array ``[2, 5, 2, 2]`` back to a validated :class:`LiteArch`."""
    ids = np.asarray(ids)
    if ids.shape != (2, NUM_NODES, 2, 2) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"lite arch ids must be an integer array of shape (2, {NUM_NODES}, 2, 2); "
                         f"got {ids.dtype} {ids.shape}")
    cells = [[int(v) for v in ids[c].reshape(-1)] for c in range(2)]
    return LiteArch(cells[0], cells[1])


def describe_arch(arch: LiteArch) -> str:
    """Both cells of ``arch`` as text, one line per node, e.g. ``node 2 = shuffle_5x5(h_{k-2}) + ...``."""
    names = {0: "h_{k-2}", 1: "h_{k-1}"}
    lines = []
    for kind, reduction in (("normal", False), ("reduction", True)):
        lines.append(f"{kind} cell:")
        for n, (in_x, op_x, in_y, op_y) in enumerate(arch.nodes(reduction)):
            x = f"{OPS[op_x]}({names.get(in_x, f'node {in_x}')})"
            y = f"{OPS[op_y]}({names.get(in_y, f'node {in_y}')})"
            lines.append(f"  node {n + 2} = {x} + {y}")
        lines.append("  output = concat(" + ", ".join(f"node {n + 2}" for n in range(NUM_NODES)) + ")")
    return "\n".join(lines)
