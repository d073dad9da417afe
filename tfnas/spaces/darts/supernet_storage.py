"""Storage of the DARTS supernet: one flat parameter row per edge and op type (see :mod:`~tfnas.spaces.darts.supernet`).

The parameters of one op type in one cell are a single variable ``[rows, P]`` with one flat row
per edge (BatchNorm statistics likewise, ``[rows, bns, 2, C]``); :func:`op_layout` says how a
row splits into the op's kernels and BatchNorm weights and :func:`unpack_row` splits it.
"""

from __future__ import annotations

from typing import Dict, List, Set, Tuple

import numpy as np
import tensorflow as tf

from tfnas.spaces.darts.genotype import NUM_NODES, OPS
from tfnas.spaces.darts.network import reduction_layers

__all__ = ["EDGE_OFFSET", "NUM_EDGES", "OpKey", "OpStack", "edge_index", "op_layout", "unpack_row", "used_ops"]

#: Edges per cell: node ``j`` has edges from states ``0 .. 1 + j``.
NUM_EDGES = sum(2 + j for j in range(NUM_NODES))
EDGE_OFFSET = [sum(2 + k for k in range(j)) for j in range(NUM_NODES)]
OpKey = Tuple[int, int, int]  # (cell, edge, op id)


def edge_index(node: int, src: int) -> int:
    """Index in ``[0, 14)`` of the edge ``state src -> node`` (node ``j`` owns ``2 + j`` edges)."""
    return EDGE_OFFSET[node] + src


def used_ops(ids: np.ndarray, layers: int) -> Set[OpKey]:
    """``(cell, edge, op id)`` of every op a candidate ``ids [2, 4, 2, 2]`` runs in a ``layers``-cell supernet
    (pools and the stride-1 skip included, though they hold no parameters)."""
    ids = np.asarray(ids)
    out: Set[OpKey] = set()
    for cell in range(layers):
        kind = 1 if cell in reduction_layers(layers) else 0
        for node in range(NUM_NODES):
            for slot in range(2):
                src, op = (int(v) for v in ids[kind, node, slot])
                out.add((cell, edge_index(node, src), op))
    return out


def op_layout(op: str, c: int) -> Tuple[List[Tuple[str, Tuple[int, ...]]], List[str]]:
    """``(trainable [(name, shape)], BatchNorm names)`` of a parameterised op on ``c`` channels."""
    if op == "skip_connect":  # FactorizedReduce (stride-2 edges of reduction cells)
        return [("conv_a", (1, 1, c, c // 2)), ("conv_b", (1, 1, c, c // 2)), ("bn.gamma", (c,)), ("bn.beta", (c,))], ["bn"]
    k = int(op[-1])
    if op.startswith("sep_conv"):
        return [("dw1", (k, k, c, 1)), ("pw1", (1, 1, c, c)), ("bn1.gamma", (c,)), ("bn1.beta", (c,)),
                ("dw2", (k, k, c, 1)), ("pw2", (1, 1, c, c)), ("bn2.gamma", (c,)), ("bn2.beta", (c,))], ["bn1", "bn2"]
    return [("dw", (k, k, c, 1)), ("pw", (1, 1, c, c)), ("bn.gamma", (c,)), ("bn.beta", (c,))], ["bn"]


class OpStack:
    """One op type of one cell: flat parameter rows ``[rows, P]``, BN statistics ``[rows, bns, 2 (mean, var), C]``."""

    def __init__(self, cell: int, op: int, c: int, edges: List[int], rng: np.random.Generator):
        """Stack of op ``op`` in ``cell`` on ``c`` channels, one row per edge of ``edges``, drawn from ``rng``."""
        self.cell, self.op, self.c, self.edges = cell, op, c, edges
        self.layout, self.bns = op_layout(OPS[op], c)
        self.offsets, p = {}, 0
        for name, shape in self.layout:
            self.offsets[name] = (p, shape)
            p += int(np.prod(shape))
        rows = np.zeros((len(edges), p), np.float32)
        for name, shape in self.layout:
            start, size = self.offsets[name][0], int(np.prod(shape))
            if name.endswith("gamma"):
                rows[:, start : start + size] = 1.0
            elif not name.endswith("beta"):  # he-normal on the true fan-in (depthwise: k * k)
                fan_in = shape[0] * shape[1] * (1 if name.startswith("dw") else shape[2])
                rows[:, start : start + size] = rng.normal(0.0, np.sqrt(2.0 / fan_in), (len(edges), size))
        stats = np.zeros((len(edges), len(self.bns), 2, c), np.float32)
        stats[:, :, 1] = 1.0  # moving variance
        label = f"cell{cell}_{OPS[op]}"
        self.params = tf.Variable(rows, name=f"{label}_params")
        self.stats = tf.Variable(stats, trainable=False, name=f"{label}_bn_stats")
        self.buffer = tf.Variable(tf.zeros_like(rows), trainable=False, name=f"{label}_momentum")
        table = np.full(NUM_EDGES, -1, np.int32)
        table[edges] = np.arange(len(edges), dtype=np.int32)
        self.row_of_edge = tf.constant(table)
        self.numpy_rows = table



def unpack_row(values: tf.Tensor, layout: List[Tuple[str, Tuple[int, ...]]]) -> Dict[str, tf.Tensor]:
    """Splits a flat parameter row into the named, shaped weights of ``layout``."""
    pieces = tf.split(values, [int(np.prod(shape)) for _, shape in layout])
    return {name: tf.reshape(piece, shape) for (name, shape), piece in zip(layout, pieces)}
