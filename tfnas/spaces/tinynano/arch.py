"""Tiny-NanoBench cells (Siamese-NAS): the DAG type, its canonical numbering and channel flow.

**Cell.** A DAG of ``n`` nodes (``3 <= n <= max_nodes``): node 0 is ``input``, nodes
``1 .. n-2`` carry one op of ``OPS`` each, node ``n-1`` is ``output``. Edges go from lower to
higher node ids. ``input`` and every non-``split`` op node feed exactly one successor; a
``split`` node feeds exactly two *different* successors: the first channel half goes to the
first listed successor, the second half to the second. Every node but ``input`` has at least one
incoming edge. A node with several incoming edges concatenates them along channels, ordered by
``(source id, half)``. Ops keep the channel count except ``expand`` (``C -> 3C``) and the split
halves (``C / 2``). The ``output`` node projects its concatenated input to the block width ``W``
with a 1x1 conv-BN when the count differs from ``W``; the cell adds its input to the result
(a residual) when the cell input has ``W`` channels, i.e. everywhere except in the first cell of
a block whose width grows.

**Arch.** ``TinyNanoArch(nodes)`` with ``nodes[i] = (op, successors)``. Node ids are canonical:
the unique topological order that repeatedly takes, among the nodes whose predecessors are all
numbered, the one fed by the smallest ``(source id, half)`` edge. So relabelling the nodes of a
cell never yields a second arch; ``canonicalize`` renumbers any valid topological numbering.
"""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Tuple

from tfnas.checks import is_int

__all__ = [
    "GRAPH_OPS",
    "NON_SPLIT_OPS",
    "OPS",
    "Node",
    "TinyNanoArch",
    "arch_string",
    "canonical_nodes",
    "canonicalize",
    "check_structure",
    "incoming_edges",
    "received_channels",
]

#: Cell ops, in the order of the one-hot graph vocabulary (after ``input``).
OPS: Tuple[str, ...] = (
    "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "none", "dwconv3x3", "conv1x1", "atten", "expand", "split",
)
#: One-hot vocabulary of ``to_graph``: ``input``, the nine ops in ``OPS`` order, ``output`` (K = 11).
GRAPH_OPS: Tuple[str, ...] = ("input",) + OPS + ("output",)
NON_SPLIT_OPS = tuple(op for op in OPS if op != "split")
#: ``(op, successor node ids)`` of one node.
Node = Tuple[str, Tuple[int, ...]]


def check_structure(nodes: Sequence[Node]) -> None:
    """Raises ``ValueError`` naming the first rule of the module docstring that ``nodes`` breaks."""
    n = len(nodes)
    if n < 3:
        raise ValueError(f"a cell needs input, at least one op node and output (>= 3 nodes); got {n}")
    fed = [0] * n
    for i, (op, succ) in enumerate(nodes):
        want = "input" if i == 0 else "output" if i == n - 1 else None
        if want is not None and op != want:
            raise ValueError(f"node {i} must be {want!r}, got {op!r}")
        if want is None and op not in OPS:
            raise ValueError(f"node {i}: unknown op {op!r}; expected one of {OPS}")
        degree = 0 if i == n - 1 else 2 if op == "split" else 1
        if len(succ) != degree:
            raise ValueError(f"node {i} ({op}) must feed {degree} successor(s), got {len(succ)}: {list(succ)}")
        if len(set(succ)) != len(succ):
            raise ValueError(f"node {i} (split) must send its two halves to two different nodes, got {list(succ)}")
        for j in succ:
            if not is_int(j) or not i < j < n:
                raise ValueError(f"node {i} ({op}) feeds {j!r}; successors must be node ids in ({i}, {n})")
            fed[j] += 1
    orphans = [j for j in range(1, n) if not fed[j]]
    if orphans:
        raise ValueError(f"node(s) {orphans} have no incoming edge")


def incoming_edges(nodes: Sequence[Node]) -> List[List[Tuple[int, int]]]:
    """Incoming ``(source, half)`` edges of each node, sorted (``half`` is 0 for a non-split source)."""
    inc: List[List[Tuple[int, int]]] = [[] for _ in nodes]
    for i, (_, succ) in enumerate(nodes):
        for half, j in enumerate(succ):
            inc[j].append((i, half))
    return [sorted(edges) for edges in inc]


def canonical_nodes(nodes: Sequence[Node]) -> Tuple[Node, ...]:
    check_structure(nodes)
    inc = incoming_edges(nodes)
    new_id = {0: 0}
    while len(new_id) < len(nodes):
        ready = [j for j in range(len(nodes)) if j not in new_id and all(s in new_id for s, _ in inc[j])]
        pick = min(ready, key=lambda j: min((new_id[s], h) for s, h in inc[j]))
        new_id[pick] = len(new_id)
    order = sorted(new_id, key=new_id.get)
    return tuple((nodes[i][0], tuple(new_id[j] for j in nodes[i][1])) for i in order)


@dataclasses.dataclass(frozen=True)
class TinyNanoArch:
    """One Tiny-NanoBench cell: ``nodes[i] = (op, successor ids)`` in canonical order (module docstring).

    Immutable, hashable and validated; build one from any topological numbering with
    ``canonicalize``, or from a string with ``TinyNanoSpace.decode``.
    """

    nodes: Tuple[Node, ...]

    def __post_init__(self) -> None:
        try:
            nodes = tuple((str(op), tuple(int(j) for j in succ)) for op, succ in self.nodes)
        except (TypeError, ValueError):
            raise TypeError(
                f"TinyNanoArch.nodes must be a sequence of (op, successor ids); got {self.nodes!r}"
            ) from None
        canonical = canonical_nodes(nodes)
        if canonical != nodes:
            raise ValueError(
                f"node ids are not in canonical order; the same cell is {arch_string(canonical)!r} "
                "(use tinynano.canonicalize to renumber)"
            )
        object.__setattr__(self, "nodes", nodes)

    @property
    def ops(self) -> Tuple[str, ...]:
        """Op of every node, ``input`` first and ``output`` last."""
        return tuple(op for op, _ in self.nodes)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def incoming(self) -> List[List[Tuple[int, int]]]:
        """Per node, its incoming ``(source id, half)`` edges in concatenation order."""
        return incoming_edges(self.nodes)

    def channels(self, c_in: int) -> List[int]:
        """Channels each node receives (after concatenation) when the cell input has ``c_in``; ``[n]``."""
        return received_channels(self.nodes, c_in)


def canonicalize(nodes: Sequence[Tuple[str, Sequence[int]]]) -> TinyNanoArch:
    """The arch of a cell given in any topological numbering; ``ValueError`` names a broken rule."""
    return TinyNanoArch(canonical_nodes([(str(op), tuple(succ)) for op, succ in nodes]))


def arch_string(nodes: Sequence[Node]) -> str:
    """The string form of ``nodes`` (``op>successors`` entries joined by ``;``)."""
    return ";".join(op if not succ else f"{op}>{','.join(map(str, succ))}" for op, succ in nodes)


def received_channels(nodes: Sequence[Node], c_in: int) -> List[int]:
    """Channels each node receives (valid for any topological numbering of a valid cell)."""
    received = [c_in] + [0] * (len(nodes) - 1)
    for s, (op, succ) in enumerate(nodes[:-1]):
        out = received[s] * 3 if op == "expand" else received[s] // 2 if op == "split" else received[s]
        for j in succ:
            received[j] += out
    return received
