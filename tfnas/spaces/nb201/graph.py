"""The op-on-node graph view of NAS-Bench-201 cells (the Siamese-NAS reference encoding).

A cell becomes a 10-node graph ``[split_3, e(0->1), split_2, e(0->2), e(1->2), none, e(0->3),
e(1->3), e(2->3), output]`` whose edge nodes carry the cell's ops (``none`` labelled ``zeros``);
predictors read ``(adjacency, one-hot labels)`` pairs.
"""

from __future__ import annotations

import functools
from typing import Tuple

import numpy as np

from tfnas.spaces.nb201.arch import OPS
from tfnas.spaces.nb201.index import ops_by_index

__all__ = ["GRAPH_ADJACENCY", "GRAPH_NODES", "GRAPH_OPS", "all_graphs", "graph_of_ids"]

#: Node labels of the 10-node graph: ``[split_3, e(0->1), split_2, e(0->2), e(1->2), none,
#: e(0->3), e(1->3), e(2->3), output]``; an edge op ``none`` is labelled ``zeros``.
GRAPH_OPS: Tuple[str, ...] = (
    "skip_connect",
    "zeros",
    "none",
    "split_2",
    "split_3",
    "nor_conv_3x3",
    "nor_conv_1x1",
    "avg_pool_3x3",
    "output",
)
GRAPH_NODES = 10
#: Graph node holding each cell edge's op, in arch edge order.
_GRAPH_EDGE_NODES = np.array([1, 3, 4, 6, 7, 8])
#: Fixed labels of the graph nodes that are not cell edges.
_GRAPH_FIXED_LABELS = {0: "split_3", 2: "split_2", 5: "none", 9: "output"}
#: Graph label id of each cell op id (``none`` -> ``zeros``).
_GRAPH_LABEL_OF_OP = np.array([GRAPH_OPS.index("zeros" if op == "none" else op) for op in OPS])
_GRAPH_EDGE_LIST = ((0, 1), (0, 3), (0, 6), (1, 2), (2, 4), (2, 7), (3, 5), (4, 5), (5, 8), (6, 9), (7, 9), (8, 9))


def _make_adjacency() -> np.ndarray:
    adj = np.zeros((GRAPH_NODES, GRAPH_NODES), dtype=np.float32)
    for i, j in _GRAPH_EDGE_LIST:
        adj[i, j] = 1.0
    adj.setflags(write=False)
    return adj


#: ``[10, 10]`` float32, ``adj[i, j] = 1`` for a graph edge ``i -> j`` (no self loops).
GRAPH_ADJACENCY = _make_adjacency()


def graph_of_ids(ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(adj [10, 10], ops [10, 9])`` float32 of the cell with op ids ``ids [6]`` (edge order)."""
    labels = np.zeros(GRAPH_NODES, dtype=np.int64)
    for node, label in _GRAPH_FIXED_LABELS.items():
        labels[node] = GRAPH_OPS.index(label)
    labels[_GRAPH_EDGE_NODES] = _GRAPH_LABEL_OF_OP[ids]
    return GRAPH_ADJACENCY.copy(), np.eye(len(GRAPH_OPS), dtype=np.float32)[labels]


@functools.lru_cache(maxsize=1)
def all_graphs() -> Tuple[np.ndarray, np.ndarray]:
    """Graphs of all cells in index order: ``(adj [15625, 10, 10], ops [15625, 10, 9])`` float32, read-only."""
    ops = ops_by_index()
    n = ops.shape[0]
    adj = np.broadcast_to(GRAPH_ADJACENCY, (n, GRAPH_NODES, GRAPH_NODES)).copy()
    labels = np.zeros((n, GRAPH_NODES), dtype=np.int64)
    for node, label in _GRAPH_FIXED_LABELS.items():
        labels[:, node] = GRAPH_OPS.index(label)
    labels[:, _GRAPH_EDGE_NODES] = _GRAPH_LABEL_OF_OP[ops]
    onehot = np.eye(len(GRAPH_OPS), dtype=np.float32)[labels]
    adj.setflags(write=False)
    onehot.setflags(write=False)
    return adj, onehot
