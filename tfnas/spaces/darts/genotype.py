"""DARTS genotypes (Liu et al., ICLR 2019, https://arxiv.org/abs/1806.09055): the cell type and its text form.

A cell has two inputs ``c_{k-2}``, ``c_{k-1}`` (states 0 and 1) and 4 intermediate nodes
(states 2..5); node ``j`` sums two ops, each applied to one earlier state
(``op_a(state_a) + op_b(state_b)``, the same input twice allowed). The cell output concatenates
the states in ``concat`` (always ``[2, 3, 4, 5]`` in searched cells). A genotype holds a normal
and a reduction cell; its text form is the one the DARTS code prints::

    Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('avg_pool_3x3', 1), ...], reduce_concat=[2, 3, 4, 5])

Ops are indexed as in :data:`OPS` (the RelativeNAS ``PRIMITIVES``, without DARTS' ``none``).
This module imports nothing else of tfnas, so the space, the networks and the supernet all
build on it.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from typing import Any, Dict, Iterable, Sequence, Tuple

from tfnas.checks import is_int

__all__ = [
    "FULL_CONCAT",
    "NUM_NODES",
    "OPS",
    "OP_ID",
    "PRESETS",
    "DartsGenotype",
    "Pair",
    "describe_genotype",
    "parse_genotype",
]

#: Cell ops in RelativeNAS index order (the ``op`` entries of the encoding index this tuple).
OPS: Tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: Intermediate nodes per cell.
NUM_NODES = 4
#: The concatenation every searched cell uses.
FULL_CONCAT: Tuple[int, ...] = tuple(range(2, 2 + NUM_NODES))

#: Op id (index into ``OPS``) of each op name.
OP_ID: Dict[str, int] = {op: i for i, op in enumerate(OPS)}
#: ``(op name, input state)`` of one node input.
Pair = Tuple[str, int]


@dataclasses.dataclass(frozen=True)
class DartsGenotype:
    """A DARTS genotype: ``(op, input)`` pairs of the normal and the reduction cell, and their concats.

    ``normal[2j]`` and ``normal[2j + 1]`` feed node ``j`` (state ``2 + j``); an input is a state
    index in ``[0, 2 + j)``. Immutable and hashable; ``str(g)`` is the canonical text form.
    """

    normal: Tuple[Pair, ...]
    normal_concat: Tuple[int, ...]
    reduce: Tuple[Pair, ...]
    reduce_concat: Tuple[int, ...]

    def __post_init__(self) -> None:
        for kind in ("normal", "reduce"):
            object.__setattr__(self, kind, _check_pairs(getattr(self, kind), kind))
            object.__setattr__(self, f"{kind}_concat", _check_concat(getattr(self, f"{kind}_concat"), kind))

    def __str__(self) -> str:
        def pairs(cell: Sequence[Pair]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in cell) + "]"

        return (
            f"Genotype(normal={pairs(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={pairs(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )

    def cell(self, reduction: bool) -> Tuple[Tuple[Pair, ...], Tuple[int, ...]]:
        """``(pairs, concat)`` of the reduction (``True``) or the normal cell."""
        return (self.reduce, self.reduce_concat) if reduction else (self.normal, self.normal_concat)


def _bounded_items(values: Any, limit: int, what: str) -> Tuple[Any, ...]:
    """The items of ``values`` as a tuple, refusing more than ``limit`` of them *before* building
    anything: a ``range(0, 10**12)`` (or any long iterable) is rejected, not expanded."""
    try:
        size = len(values)
    except TypeError:  # an iterator: take one more than allowed, no more
        items = tuple(itertools.islice(values, limit + 1))
    else:
        if size > limit:
            raise ValueError(f"genotype {what} has {size} entries; at most {limit} are allowed. Got {_short(values)}")
        items = tuple(values)
    if len(items) > limit:
        raise ValueError(f"genotype {what} has more than {limit} entries. Got {_short(values)}")
    return items


def _short(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters (a range's repr is short however long it is)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_pairs(pairs: Any, kind: str) -> Tuple[Pair, ...]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise TypeError(f"genotype {kind} must be a list of (op, input) pairs; got {_short(pairs)}")
    pairs = _bounded_items(pairs, 2 * NUM_NODES, kind)
    pairs = tuple(tuple(p) if isinstance(p, (list, tuple)) else p for p in pairs)
    if len(pairs) != 2 * NUM_NODES:
        raise ValueError(
            f"genotype {kind} needs {2 * NUM_NODES} (op, input) pairs (2 per node, {NUM_NODES} nodes); "
            f"got {len(pairs)}: {pairs!r}"
        )
    out = []
    for k, pair in enumerate(pairs):
        node = k // 2
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"genotype {kind} entry {k} must be an (op, input) pair; got {pair!r}")
        op, src = pair
        if op not in OP_ID:
            hint = " (RelativeNAS cells have no 'none' op)" if op == "none" else ""
            raise ValueError(f"genotype {kind} entry {k}: unknown op {op!r}{hint}; expected one of {OPS}")
        if not is_int(src) or not 0 <= src < 2 + node:
            raise ValueError(
                f"genotype {kind} entry {k} (node {node}, state {2 + node}): input must be a state index in "
                f"[0, {2 + node}); got {src!r}"
            )
        out.append((str(op), int(src)))
    return tuple(out)


def _check_concat(concat: Any, kind: str) -> Tuple[int, ...]:
    if isinstance(concat, (str, bytes)) or not isinstance(concat, Iterable):
        raise TypeError(f"genotype {kind}_concat must be a list of state indices; got {_short(concat)}")
    values = _bounded_items(concat, len(FULL_CONCAT), f"{kind}_concat (states {list(FULL_CONCAT)})")
    valid = all(is_int(v) for v in values)
    if not values or not valid or list(values) != sorted(set(values)) or not set(values) <= set(FULL_CONCAT):
        raise ValueError(
            f"genotype {kind}_concat must list distinct increasing node states from {list(FULL_CONCAT)}; "
            f"got {_short(concat)}"
        )
    return tuple(int(v) for v in values)


# ---- text form ------------------------------------------------------------------------------

_GENOTYPE_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _literal(node: ast.AST, key: str, text: str) -> Any:
    """A literal value, or ``range(a, b[, step])`` of int literals as a ``range`` object (the
    DARTS code writes ``range(2, 6)``). The range is not expanded here: the genotype checks its
    length and bounds before reading any of it."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        if node.keywords or not 1 <= len(node.args) <= 3:
            raise ValueError(f"genotype text {_short(text)}: bad range(...) for {key}: expected range(start, stop)")
        bounds = []
        for arg in node.args:
            try:
                value = ast.literal_eval(arg)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                value = None
            if not is_int(value):
                raise ValueError(f"genotype text {_short(text)}: range(...) for {key} takes integer literals; "
                                 f"got {_short(ast.unparse(arg))}")
            bounds.append(value)
        try:
            return range(*bounds)
        except ValueError as e:  # range(a, b, 0)
            raise ValueError(f"genotype text {_short(text)}: bad range(...) for {key}: {e}") from None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"genotype text {_short(text)}: {key} must be a literal list; "
                         f"got {_short(ast.unparse(node))}") from None


def parse_genotype(text: str) -> DartsGenotype:
    """Parses ``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])``.

    Accepts the DARTS/RelativeNAS printouts (``range(2, 6)`` concats, any whitespace, an optional
    ``genotypes.`` prefix). Nothing is evaluated: the text is read as a Python expression tree.

    Raises:
        ValueError: the text is not a genotype expression or names a bad op/input/concat.
    """
    if not isinstance(text, str):
        raise TypeError(f"a genotype string is needed; got {type(text).__name__}")
    example = "Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])"
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError(f"genotype text {_short(text)} is not an expression like {example}") from None
    func = getattr(tree, "func", None)
    name = getattr(func, "id", None) or getattr(func, "attr", None)
    if not isinstance(tree, ast.Call) or name != "Genotype" or tree.args:
        raise ValueError(f"genotype text {_short(text)}: expected keyword form {example}")
    values: Dict[str, Any] = {}
    for kw in tree.keywords:
        if kw.arg not in _GENOTYPE_KEYS or kw.arg in values:
            raise ValueError(f"genotype text {_short(text)}: unexpected or repeated key {kw.arg!r}; keys: {_GENOTYPE_KEYS}")
        values[kw.arg] = _literal(kw.value, kw.arg, text)
    missing = [k for k in _GENOTYPE_KEYS if k not in values]
    if missing:
        raise ValueError(f"genotype text {_short(text)}: missing {', '.join(missing)}")
    try:
        return DartsGenotype(**values)
    except TypeError as e:  # a value of the wrong kind (e.g. normal_concat=5): still a bad text
        raise ValueError(str(e)) from None


#: Published genotypes accepted by name in :meth:`DartsSpace.decode`.
PRESETS: Dict[str, DartsGenotype] = {
    # RelativeNAS, Fig. 4 of the paper / ``genotypes.RelativeNAS`` of the reference code.
    "relativenas": DartsGenotype(
        normal=(("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("sep_conv_5x5", 1), ("skip_connect", 0), ("sep_conv_3x3", 0)),
        normal_concat=FULL_CONCAT,
        reduce=(("avg_pool_3x3", 1), ("max_pool_3x3", 1), ("dil_conv_5x5", 1), ("max_pool_3x3", 1),
                ("avg_pool_3x3", 3), ("skip_connect", 1), ("dil_conv_5x5", 3), ("sep_conv_3x3", 1)),
        reduce_concat=FULL_CONCAT,
    ),
    # DARTS (second order), ``genotypes.DARTS_V2`` of the DARTS code.
    "darts_v2": DartsGenotype(
        normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
        normal_concat=FULL_CONCAT,
        reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
        reduce_concat=FULL_CONCAT,
    ),
}



def describe_genotype(arch: DartsGenotype) -> str:
    """Both cells of ``arch`` as text, one line per node, e.g. ``node 2 = sep_conv_3x3(c_{k-2}) + ...``.

    States 0 and 1 print as ``c_{k-2}`` and ``c_{k-1}``; the last line of a cell names the
    concatenated states.
    """
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    lines = []
    for kind, reduction in (("normal", False), ("reduction", True)):
        pairs, concat = arch.cell(reduction)
        lines.append(f"{kind} cell:")
        for node in range(NUM_NODES):
            terms = [f"{op}({names.get(src, f'node {src}')})" for op, src in pairs[2 * node : 2 * node + 2]]
            lines.append(f"  node {2 + node} = {terms[0]} + {terms[1]}")
        lines.append("  output = concat(" + ", ".join(f"node {s}" for s in concat) + ")")
    return "\n".join(lines)
