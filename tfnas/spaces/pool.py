"""A finite candidate pool drawn from an open-ended graph space, viewed as a tabular space.

Predictor-based methods (Siamese-NAS, the neural predictor) rank a finite candidate set in one
batched call. NAS-Bench-201 enumerates its cells; open spaces such as Tiny-NanoBench do not, so
the search runs over a pool of ``size`` distinct architectures sampled once from the space
(under its FLOPs limit) with the run seed. The pool behaves like a table: ``index``/
``from_index`` map architectures to rows, ``all_graphs`` holds every row's graph tensors.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from tfnas.spaces.base import GraphSpace, require
from tfnas.spaces.view import RowView


class CandidatePool(RowView):
    """``size`` distinct architectures of ``space`` drawn with ``seed``; rows in draw order.

    Args:
        space: a :class:`~tfnas.spaces.base.GraphSpace` with ``sample``/``encode``/``graphs`` or
            ``to_graph``.
        size: number of distinct architectures (the pool stops early, with a ``ValueError``, when
            the space runs out of new ones after ``50 * size`` draws).
        seed: seed of the draw; the same seed gives the same pool.
        archs: explicit architectures instead of sampling (e.g. a pool read back from disk).
    """

    OWN = ("archs", "keys", "_graphs", "_rows")

    def __init__(self, space: Any, size: int = 1000, seed: int = 0, archs: Sequence[Any] = ()):
        require(space, GraphSpace, "a candidate pool")
        self.base = space
        self.name = f"{space.name}-pool"
        if archs:
            members = list(archs)
        else:
            if size < 1:
                raise ValueError(f"CandidatePool: size must be >= 1, got {size}")
            rng = np.random.default_rng(seed)
            members, seen, draws = [], set(), 0
            while len(members) < size:
                if draws >= 50 * size:
                    raise ValueError(f"CandidatePool: {space.name} yielded only {len(members)} distinct "
                                     f"architectures in {draws} draws; ask for a smaller pool")
                arch = space.sample(rng)
                draws += 1
                key = space.encode(arch)
                if key not in seen:
                    seen.add(key)
                    members.append(arch)
        self.archs: List[Any] = members
        self.keys: List[str] = [space.encode(a) for a in members]
        self._rows: Dict[str, int] = {k: i for i, k in enumerate(self.keys)}
        if len(self._rows) != len(self.keys):
            raise ValueError("CandidatePool: the architectures given are not distinct")
        self.size = len(members)
        self._graphs: Tuple[np.ndarray, np.ndarray] = ()  # filled lazily

    # -- tabular view ---------------------------------------------------------------------------
    def index(self, arch: Any) -> int:
        key = arch if isinstance(arch, str) else self.base.encode(arch)
        if key not in self._rows:
            raise KeyError(f"{key!r} is not in this candidate pool")
        return self._rows[key]

    def from_index(self, i: int) -> Any:
        if not 0 <= int(i) < self.size:
            raise IndexError(f"pool row {i} out of range [0, {self.size})")
        return self.archs[int(i)]

    def all_graphs(self) -> Tuple[np.ndarray, np.ndarray]:
        """Every row's ``(adj[size, N, N], ops[size, N, K])`` float32 graph tensors."""
        if not self._graphs:
            if hasattr(self.base, "graphs"):
                adj, ops = self.base.graphs(self.archs)
            else:
                pairs = [self.base.to_graph(a) for a in self.archs]
                adj, ops = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
            self._graphs = (np.asarray(adj, np.float32), np.asarray(ops, np.float32))
        return self._graphs
