"""NAS-Bench-201 cells as op-on-node DAGs (:mod:`tfnas.spaces.dag`), the NAG dataset's view.

Each edge of the cell becomes a node carrying the edge's op; ``none`` edges are dropped. Nodes:
the input (cell node 0), one node per remaining edge in ``EDGES`` order (a topological order),
the output (cell node 3); edge-node ``a -> b`` whenever edge ``a`` ends where edge ``b`` starts.
Pruned (:func:`~tfnas.spaces.dag.prune`) and keyed (:func:`~tfnas.spaces.dag.dag_key`), two
cells share a DAG when they differ only in parts that never reach the output or when their live
parts are the same graph up to renumbering (e.g. conv 0->1 then skip 1->3 and conv 0->2 then skip
2->3); :func:`dag_lookup` maps a DAG back to the lowest NB201 index that has it.
"""

from __future__ import annotations

import functools
from typing import Dict, Optional, Tuple

import numpy as np

from tfnas.spaces.dag import DagSpec, dag_key, padded, prune
from tfnas.spaces.nb201.arch import EDGES, NUM_EDGES, OPS
from tfnas.spaces.nb201.index import ops_by_index

__all__ = ["NB201_DAG", "all_dags", "dag_keys", "dag_lookup", "dag_of_ids"]

#: Node codes: output 0, input 1, then the four non-``none`` ops in op-id order.
NB201_DAG = DagSpec(type_names=("output", "input", *OPS[1:]), input_codes=(1,), output_code=0,
                    max_nodes=NUM_EDGES + 2)
_CODE_OF_OP = {op_id: op_id + 1 for op_id in range(1, len(OPS))}  # op id 1..4 -> code 2..5


def _full_adjacency() -> np.ndarray:
    n = NUM_EDGES + 2
    adj = np.zeros((n, n), np.uint8)
    for e, (src, dst) in enumerate(EDGES):
        if src == 0:
            adj[0, e + 1] = 1
        if dst == 3:
            adj[e + 1, n - 1] = 1
        for f, (src2, _) in enumerate(EDGES):
            if src2 == dst:
                adj[e + 1, f + 1] = 1
    return adj


_FULL = _full_adjacency()


def dag_of_ids(ids: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The pruned DAG ``(adj [n, n] uint8, types [n])`` of op ids ``ids [6]``, or None when no
    path reaches the output (the cell computes zeros)."""
    ids = np.asarray(ids, np.int64)
    keep = np.concatenate([[True], ids != 0, [True]])
    types = np.concatenate([[1], [_CODE_OF_OP.get(int(i), -1) for i in ids], [0]])
    idx = np.flatnonzero(keep)
    return prune(_FULL[np.ix_(idx, idx)], types[idx], NB201_DAG)


@functools.lru_cache(maxsize=1)
def _tables() -> Tuple[np.ndarray, np.ndarray, Tuple[str, ...], Dict[str, int]]:
    m = NB201_DAG.max_nodes
    ops = ops_by_index()
    adj = np.zeros((len(ops), m, m), np.uint8)
    types = np.full((len(ops), m), -1, np.int64)
    keys = []
    lookup: Dict[str, int] = {}
    for i, ids in enumerate(ops):
        dag = dag_of_ids(ids)
        if dag is None:
            keys.append("")
            continue
        adj[i], types[i] = padded(*dag, m)
        key = dag_key(*dag)
        keys.append(key)
        lookup.setdefault(key, i)
    for a in (adj, types):
        a.setflags(write=False)
    return adj, types, tuple(keys), lookup


def all_dags() -> Tuple[np.ndarray, np.ndarray]:
    """Padded DAGs of all cells in NB201 index order: ``(adj [15625, 8, 8] uint8, types [15625, 8])``
    (read-only; cells whose output is unreachable are all ``-1``)."""
    adj, types, _, _ = _tables()
    return adj, types


def dag_keys() -> Tuple[str, ...]:
    """:func:`~tfnas.spaces.dag.dag_key` of every cell in index order (``""`` for zero cells)."""
    return _tables()[2]


def dag_lookup() -> Dict[str, int]:
    """DAG key -> the lowest NB201 index whose cell has that DAG."""
    return _tables()[3]
