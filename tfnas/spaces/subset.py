"""A tabular space restricted to some of its rows, viewed as a tabular space of its own.

Constrained searches (a latency or parameter limit known before any query: published device
latencies, analytic parameter counts) run over the feasible cells only. The run layer hands a
method this view instead of the full space, so the method needs no change: its row ``j`` is the
full space's row ``rows[j]``; ``encode``/``decode``/``build`` are the full space's.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from tfnas.spaces.base import GraphSpace, TabularSpace, require
from tfnas.spaces.view import RowView


class SubsetSpace(RowView):
    """Rows ``rows`` (ascending, distinct) of the tabular graph space ``space``.

    Args:
        space: a :class:`~tfnas.spaces.base.TabularSpace` and :class:`~tfnas.spaces.base.GraphSpace`.
        rows: full-space rows kept, int ``[n]``; sorted and deduplicated here (``n >= 1``).
    """

    OWN = ("rows", "_local")

    def __init__(self, space: Any, rows: Any):
        require(space, TabularSpace, "a subset view")
        require(space, GraphSpace, "a subset view")
        rows = np.unique(np.asarray(rows, np.int64))
        if rows.size == 0:
            raise ValueError("SubsetSpace: no rows kept")
        if rows[0] < 0 or rows[-1] >= space.size:
            raise IndexError(f"SubsetSpace: rows must lie in [0, {space.size}); got {rows[0]}..{rows[-1]}")
        self.base, self.rows = space, rows
        self.rows.setflags(write=False)
        self.name = space.name
        self.size = int(rows.size)
        self._local = {int(r): j for j, r in enumerate(rows)}

    # -- tabular view ---------------------------------------------------------------------------
    def index(self, arch: Any) -> int:
        row = int(self.base.index(arch))
        if row not in self._local:
            raise KeyError(f"{self.base.encode(arch)!r} is not in this subset (full-space row {row})")
        return self._local[row]

    def from_index(self, i: int) -> Any:
        if not 0 <= int(i) < self.size:
            raise IndexError(f"subset row {i} out of range [0, {self.size})")
        return self.base.from_index(int(self.rows[int(i)]))

    def full_rows(self, local: Any) -> np.ndarray:
        """Full-space rows of subset rows ``local`` (int array)."""
        return self.rows[np.asarray(local, np.int64)]

    def all_graphs(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(adj[n, N, N], ops[n, N, K])`` of the kept rows, in subset order."""
        adj, ops = self.base.all_graphs()
        return adj[self.rows], ops[self.rows]
