"""Op-on-node DAG cells: the encoding shared by the NAG generator and its spaces.

A cell is ``(adj, types)``: ``adj [n, n]`` upper-triangular 0/1 (``adj[i, j] = 1`` for an edge
``i -> j``, nodes in topological order) and ``types [n]`` node codes. Input nodes carry one of the
spec's input codes, the last node carries the output code, the rest carry op codes (NAS-Bench-101
style; NAG spec, "Space"). Padded forms hold ``max_nodes`` rows, missing nodes typed ``-1``.

- :func:`prune` keeps the nodes on some input -> output path (others compute nothing the cell
  returns);
- :func:`dag_key` is a hash that isomorphic cells (same graph up to renumbering the nodes, same
  codes) share; it is a Weisfeiler-Lehman label refinement over in- and out-neighbours. WL does
  not separate every pair of non-isomorphic graphs in general; on NAS-Bench-201 a brute-force
  check over all 15,625 cells found no two non-isomorphic DAGs with one key.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["DagSpec", "dag_key", "padded", "prune", "unpad"]


@dataclasses.dataclass(frozen=True)
class DagSpec:
    """The vocabulary of a DAG cell space.

    Attributes:
      type_names: name of each node code (``type_names[code]``).
      input_codes: codes of the input nodes, in the order they open every cell.
      output_code: code of the (single, last) output node.
      max_nodes: most nodes of a cell, inputs and output included.
      min_nodes: fewest nodes a valid (pruned) cell keeps (NAG: 3).
    """

    type_names: Tuple[str, ...]
    input_codes: Tuple[int, ...]
    output_code: int
    max_nodes: int
    min_nodes: int = 3

    @property
    def num_types(self) -> int:
        return len(self.type_names)

    @property
    def op_codes(self) -> Tuple[int, ...]:
        fixed = set(self.input_codes) | {self.output_code}
        return tuple(c for c in range(self.num_types) if c not in fixed)

    def __post_init__(self) -> None:
        n = len(self.type_names)
        codes = (*self.input_codes, self.output_code)
        if not self.input_codes or any(not 0 <= c < n for c in codes) or len(set(codes)) != len(codes):
            raise ValueError(f"DagSpec: input/output codes must be distinct codes in [0, {n}); got "
                             f"inputs {self.input_codes}, output {self.output_code}")
        if self.max_nodes < len(self.input_codes) + 1 or self.min_nodes < 2:
            raise ValueError(f"DagSpec: max_nodes {self.max_nodes} leaves no room for the inputs and the output")


def prune(adj: np.ndarray, types: np.ndarray, spec: DagSpec) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The cell restricted to nodes on an input -> output path, or None when it is not a cell.

    Not a cell: the inputs do not open it in ``spec.input_codes`` order, an input or output code
    sits elsewhere, the last node is not the output, an edge points backwards or into an input, or
    fewer than ``spec.min_nodes`` nodes lie on input -> output paths (inputs without a path keep
    their slot in the result but do not count).
    """
    adj = np.asarray(adj) > 0
    types = np.asarray(types, np.int64)
    n, k = len(types), len(spec.input_codes)
    if n < k + 1 or adj.shape != (n, n) or np.any(np.tril(adj)) or np.any(adj[:, :k]):
        return None
    codes = types.tolist()
    fixed = set(spec.input_codes) | {spec.output_code}
    if tuple(codes[:k]) != spec.input_codes or codes[-1] != spec.output_code:
        return None
    if any(c in fixed or not 0 <= c < spec.num_types for c in codes[k:-1]):
        return None
    succ = [np.flatnonzero(row).tolist() for row in adj]
    forward = [i < k for i in range(n)]
    for i in range(n):
        if forward[i]:
            for j in succ[i]:
                forward[j] = True
    backward = [False] * n
    backward[-1] = True
    for i in range(n - 2, -1, -1):
        backward[i] = any(backward[j] for j in succ[i])
    on_path = [f and b for f, b in zip(forward, backward)]
    if not forward[-1] or sum(on_path) < spec.min_nodes:
        return None
    # inputs stay (an unused input keeps its slot, as in the NASNet cell)
    idx = np.array([i for i in range(n) if on_path[i] or i < k])
    return adj[np.ix_(idx, idx)].astype(np.uint8), types[idx]


def dag_key(adj: np.ndarray, types: np.ndarray) -> str:
    """Hash of a (pruned) cell: equal for isomorphic cells (WL refinement; see the module notes)."""
    rows = (np.asarray(adj) > 0).tolist()
    ins = [[u for u in range(len(rows)) if rows[u][v]] for v in range(len(rows))]
    outs = [[w for w in range(len(rows)) if rows[v][w]] for v in range(len(rows))]
    labels = [str(int(t)) for t in types]
    classes = len(set(labels))
    for _ in range(len(labels)):  # refine until the partition of the nodes stops splitting
        labels = [_digest(f"{labels[v]}|{','.join(sorted(labels[u] for u in ins[v]))}|"
                          f"{','.join(sorted(labels[w] for w in outs[v]))}") for v in range(len(labels))]
        if len(set(labels)) == classes:
            break
        classes = len(set(labels))
    return _digest("/".join(sorted(labels)), 16)


def _digest(text: str, size: int = 8) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def padded(adj: np.ndarray, types: np.ndarray, max_nodes: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(adj [max_nodes, max_nodes] uint8, types [max_nodes] int64)``, missing nodes typed -1."""
    n = len(types)
    if n > max_nodes:
        raise ValueError(f"a cell of {n} nodes does not fit {max_nodes} slots")
    a = np.zeros((max_nodes, max_nodes), np.uint8)
    a[:n, :n] = np.asarray(adj) > 0
    t = np.full(max_nodes, -1, np.int64)
    t[:n] = types
    return a, t


def unpad(adj: np.ndarray, types: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`padded`: the rows typed ``>= 0``."""
    types = np.asarray(types, np.int64)
    idx = np.flatnonzero(types >= 0)
    return (np.asarray(adj)[np.ix_(idx, idx)] > 0).astype(np.uint8), types[idx]
