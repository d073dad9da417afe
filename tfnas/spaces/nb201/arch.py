"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020, https://arxiv.org/abs/2001.00326, Sec. 2.1).

A cell is a DAG of 4 nodes (0 = input, 3 = output) with an op on each of the 6 edges
``j -> i`` (``j < i``); node ``i = sum_{j<i} op_ji(node_j)``. Edges are ordered
``(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)`` everywhere in :mod:`tfnas.spaces.nb201` (arch ops,
the index order's op ids, ``ops_matrix``). With 5 ops there are ``5**6 = 15,625`` cells; the
network stacks the same cell 3 x ``cells_per_stage`` times.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Sequence, Tuple

__all__ = ["CONV_KERNEL", "EDGES", "NUM_CELLS", "NUM_EDGES", "OPS", "OP_ID", "Nb201Arch", "stage_channels"]

#: Edge ops in op-id order (the order of the official NAS-Bench-201 op list).
OPS: Tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: ``(source, target)`` of each edge, in arch order.
EDGES: Tuple[Tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_EDGES = len(EDGES)
NUM_CELLS = len(OPS) ** NUM_EDGES  # 15,625

#: Op id (index into ``OPS``) of each op name.
OP_ID: Dict[str, int] = {op: i for i, op in enumerate(OPS)}
#: Kernel size of each convolution op.
CONV_KERNEL: Dict[str, int] = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@dataclasses.dataclass(frozen=True)
class Nb201Arch:
    """One NAS-Bench-201 cell: the op name on each of the 6 edges, in ``EDGES`` order.

    Immutable and hashable, so it can key dicts and sets. Construct from names
    (``Nb201Arch(("nor_conv_3x3",) * 6)``) or ids (``Nb201Arch.from_ids([3] * 6)``).
    """

    ops: Tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.ops, str) or not isinstance(self.ops, Iterable):
            raise TypeError(f"Nb201Arch.ops must be a sequence of {NUM_EDGES} op names; got {self.ops!r}")
        ops = tuple(self.ops)
        if len(ops) != NUM_EDGES:
            raise ValueError(f"Nb201Arch needs {NUM_EDGES} ops (edges {EDGES}); got {len(ops)}: {ops!r}")
        for k, op in enumerate(ops):
            if op not in OP_ID:
                raise ValueError(f"Nb201Arch edge {k} {EDGES[k]}: unknown op {op!r}; expected one of {OPS}")
        object.__setattr__(self, "ops", ops)

    @classmethod
    def from_ids(cls, ids: Sequence[int]) -> "Nb201Arch":
        """Arch from op ids (indices into ``OPS``), in edge order."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(OPS)]
        if bad:
            raise ValueError(f"Nb201Arch op ids must be in [0, {len(OPS)}); got {ids}")
        return cls(tuple(OPS[i] for i in ids))

    @property
    def ids(self) -> Tuple[int, ...]:
        """Op ids (indices into ``OPS``) in edge order."""
        return tuple(OP_ID[op] for op in self.ops)



def stage_channels(channels: int) -> Tuple[int, int, int]:
    """Widths ``(C, 2C, 4C)`` of the three stages of a network with first-stage width ``C``."""
    return channels, 2 * channels, 4 * channels
