"""NASNet-style DAG cells with ops on nodes, NAG's own space (NAG spec, "Space").

A cell has 2 inputs (the outputs of cells ``k-2`` and ``k-1``), at most 7 op nodes and one output
node, in topological order: node codes ``output 0, input0 1, input1 2, sep_conv_3x3 3,
sep_conv_5x5 4, avg_pool_3x3 5, max_pool_3x3 6, skip_connect 7``. An op node's input is the sum
of its predecessors; the output concatenates the nodes wired to it. An architecture is a pair of
cells (normal, reduction); each is kept pruned (:func:`~tfnas.spaces.dag.prune`: only nodes on
an input -> output path), and a valid cell keeps at least 3 nodes on such paths (the spec's rule)
and at least one op node (tfnas' addition: a cell of bare wires computes no op).

Text form (``encode`` / ``decode``): ``"<normal> / <reduction>"``, each cell
``<codes>:<edges>``, the node codes as digits and the edges as ``i>j`` joined by commas, e.g.
``"12340:0>2,1>3,2>3,3>4 / 1250:0>2,1>2,2>3"``. Cells are compared by
:func:`~tfnas.spaces.dag.dag_key` (isomorphic cells are one cell).
"""

from __future__ import annotations

import dataclasses
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tfnas.checks import is_int
from tfnas.spaces.dag import DagSpec, dag_key, prune

__all__ = ["NASNET_DAG", "NODE_OPS", "DagCell", "NasnetDagArch", "make_cell", "mutate_cell", "parse_arch", "parse_cell",
           "sample_cell"]

Pair = Tuple[int, int]

#: Node codes of the space (NAG spec): the DARTS op of each op code.
NASNET_DAG = DagSpec(type_names=("output", "input0", "input1", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3",
                                 "max_pool_3x3", "skip_connect"), input_codes=(1, 2), output_code=0, max_nodes=10)
NODE_OPS = {code: NASNET_DAG.type_names[code] for code in NASNET_DAG.op_codes}
_CELL_RE = re.compile(r"^\s*(\d+)\s*:\s*((?:\d+\s*>\s*\d+\s*,?\s*)*)$", re.ASCII)  # ASCII digits only


@dataclasses.dataclass(frozen=True)
class DagCell:
    """A pruned, valid cell: ``types`` node codes, ``edges`` ``(i, j)`` pairs with ``i < j``."""

    types: Tuple[int, ...]
    edges: Tuple[Tuple[int, int], ...]

    def __post_init__(self) -> None:
        types, edges = _cell_parts(self.types, self.edges)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "edges", edges)
        pruned = prune(self.adjacency(), np.array(types), NASNET_DAG)
        if pruned is None or len(pruned[1]) < 4:
            raise ValueError(f"DagCell(types={types}, edges={edges}) is not a valid cell: codes must read 1 2 <ops "
                             f"3..7> 0 (inputs, ops, output) and some op node must lie on an input -> output path")
        if len(pruned[1]) != len(types):
            raise ValueError(f"DagCell(types={types}, edges={edges}) keeps nodes off every input -> output path; "
                             f"build cells with make_cell(adj, types) or parse_cell(text), which prune them")

    @property
    def num_nodes(self) -> int:
        return len(self.types)

    def adjacency(self) -> np.ndarray:
        adj = np.zeros((self.num_nodes, self.num_nodes), np.uint8)
        for i, j in self.edges:
            adj[i, j] = 1
        return adj

    def preds(self, j: int) -> List[int]:
        return [i for i, k in self.edges if k == j]

    @property
    def op_nodes(self) -> range:
        return range(2, self.num_nodes - 1)

    @property
    def key(self) -> str:
        return dag_key(self.adjacency(), np.array(self.types))

    def __str__(self) -> str:
        return "".join(str(t) for t in self.types) + ":" + ",".join(f"{i}>{j}" for i, j in self.edges)


def _cell_parts(types: Sequence[int], edges: Sequence[Tuple[int, int]]) -> Tuple[Tuple[int, ...], Tuple[Pair, ...]]:
    """``types`` and ``edges`` of a :class:`DagCell` as tuples of ints; ``ValueError`` / ``TypeError`` naming what
    is not 4..10 integer node codes and distinct forward ``(i, j)`` edges between them."""
    what = f"DagCell(types={types!r}, edges={edges!r})"
    try:
        types, edges = tuple(types), tuple(tuple(e) for e in edges)
    except TypeError:
        raise TypeError(f"{what}: types must be a sequence of node codes, edges a sequence of (i, j) pairs") from None
    if not all(is_int(t) for t in types) or not all(len(e) == 2 and all(is_int(v) for v in e) for e in edges):
        raise TypeError(f"{what}: node codes and edge ends must be integers, each edge an (i, j) pair")
    types = tuple(int(t) for t in types)
    edges = tuple((int(i), int(j)) for i, j in edges)
    if not 4 <= len(types) <= NASNET_DAG.max_nodes:
        raise ValueError(f"{what}: {len(types)} nodes; a cell has 4..{NASNET_DAG.max_nodes}")
    if any(not 0 <= i < j < len(types) for i, j in edges) or len(set(edges)) != len(edges):
        raise ValueError(f"{what}: edges must be distinct and go forward (i < j) between nodes 0..{len(types) - 1}")
    inputs = len(NASNET_DAG.input_codes)
    if any(j < inputs for _, j in edges):
        raise ValueError(f"{what}: an edge enters an input node (0..{inputs - 1}); the inputs take no edges")
    return types, tuple(sorted(edges))


def make_cell(adj: np.ndarray, types: Sequence[int]) -> Optional[DagCell]:
    """The pruned cell of ``(adj, types)``, or None when it is not a valid cell of the space."""
    pruned = prune(np.asarray(adj), np.asarray(types, np.int64), NASNET_DAG)
    if pruned is None or len(pruned[1]) < 4:  # inputs + output + at least one op node
        return None
    a, t = pruned
    rows, cols = np.nonzero(a)
    return DagCell(tuple(int(x) for x in t), tuple(sorted((int(i), int(j)) for i, j in zip(rows, cols))))


@dataclasses.dataclass(frozen=True)
class NasnetDagArch:
    """A (normal, reduction) pair of cells."""

    normal: DagCell
    reduction: DagCell

    def __post_init__(self) -> None:
        for name in ("normal", "reduction"):
            if not isinstance(getattr(self, name), DagCell):
                raise TypeError(f"NasnetDagArch: {name} must be a DagCell (see make_cell, parse_cell); got "
                                f"{type(getattr(self, name)).__name__}")

    def cell(self, reduction: bool) -> DagCell:
        return self.reduction if reduction else self.normal

    @property
    def key(self) -> str:
        return f"{self.normal.key}/{self.reduction.key}"

    def __str__(self) -> str:
        return f"{self.normal} / {self.reduction}"


def parse_cell(text: str, what: str = "a") -> DagCell:
    """Parses one cell ``<codes>:<edges>``; it comes back pruned."""
    m = _CELL_RE.match(text)
    if not m:
        raise ValueError(f"{what} cell {text.strip()!r}: expected '<codes>:<i>j,...>' such as '12340:0>2,1>3,2>3,3>4'")
    types = [int(ch) for ch in m.group(1)]
    n = len(types)
    if not 4 <= n <= NASNET_DAG.max_nodes:
        raise ValueError(f"{what} cell {text.strip()!r}: {n} nodes; a cell has 4..{NASNET_DAG.max_nodes} "
                         f"(2 inputs, at least one op node, the output)")
    adj = np.zeros((n, n), np.uint8)
    parts = [p.strip() for p in m.group(2).split(",")] if m.group(2).strip() else []
    for part in parts:
        ends = part.split(">")
        if len(ends) != 2 or not all(e.strip().isascii() and e.strip().isdigit() for e in ends):
            raise ValueError(f"{what} cell {text.strip()!r}: edge {part!r} must read i>j with node numbers, the edges "
                             f"separated by commas, such as '0>2,1>3'")
        i, j = (int(v) for v in ends)
        if not 0 <= i < j < n:
            raise ValueError(f"{what} cell {text.strip()!r}: edge {i}>{j} must go forward between nodes 0..{n - 1}")
        if adj[i, j]:
            raise ValueError(f"{what} cell {text.strip()!r}: edge {i}>{j} is listed twice")
        adj[i, j] = 1
    cell = make_cell(adj, types)
    if cell is None:
        raise ValueError(f"{what} cell {text.strip()!r} is not a valid cell: codes must read 1 2 <ops 3..7> 0 "
                         f"(inputs, ops, output) and some op node must lie on an input -> output path")
    return cell


def parse_arch(text: str) -> NasnetDagArch:
    """Parses ``"<normal> / <reduction>"`` (module docstring); the cells come back pruned."""
    if isinstance(text, NasnetDagArch):
        return text
    parts = str(text).split("/")
    if len(parts) != 2:
        raise ValueError(f"a nasnet_dag architecture is '<normal cell> / <reduction cell>'; got {text!r}")
    return NasnetDagArch(parse_cell(parts[0], "normal"), parse_cell(parts[1], "reduction"))


def sample_cell(rng: np.random.Generator, edge_prob: float = 0.5) -> DagCell:
    """A random valid cell (NAG spec, "NAS dataset"): ``n`` nodes drawn from the spec's 3..10 with
    weights proportional to ``n - 3`` (larger cells likelier; so ``n = 3``, a cell without op nodes,
    has weight 0 and only 4..10 are drawn), every forward edge into a non-input node present with
    probability ``edge_prob``, op codes uniform; redrawn until valid."""
    sizes = np.arange(4, NASNET_DAG.max_nodes + 1)
    weights = (sizes - 3) / (sizes - 3).sum()
    ops_ = np.array(NASNET_DAG.op_codes)
    while True:
        n = int(rng.choice(sizes, p=weights))
        adj = np.triu(rng.random((n, n)) < edge_prob, 1).astype(np.uint8)
        adj[:, :2] = 0
        types = np.concatenate([[1, 2], rng.choice(ops_, n - 3), [0]])
        cell = make_cell(adj, types)
        if cell is not None:
            return cell


def mutate_cell(cell: DagCell, rng: np.random.Generator) -> DagCell:
    """A different valid cell one edge flip or one op change away (redrawn until it differs)."""
    key = cell.key
    while True:
        adj, types = cell.adjacency(), np.array(cell.types)
        if rng.random() < 0.5 and len(cell.op_nodes):
            j = int(rng.choice(list(cell.op_nodes)))
            types[j] = int(rng.choice([c for c in NASNET_DAG.op_codes if c != types[j]]))
        else:
            n = cell.num_nodes
            i = int(rng.integers(0, n - 1))
            j = int(rng.integers(max(i + 1, 2), n))
            adj[i, j] ^= 1
        new = make_cell(adj, types)
        if new is not None and new.key != key:
            return new
