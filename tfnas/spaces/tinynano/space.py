"""The Tiny-NanoBench search space of Siamese-NAS: lightweight DAG cells under a FLOPs limit.

Cells, their canonical numbering and string form are described in
:mod:`tfnas.spaces.tinynano.arch`; the network in :mod:`tfnas.spaces.tinynano.network`.


**String.** Nodes in id order, ``;``-separated; each non-output node is ``op>successors`` with
``,`` between a split's two successors; the last node is ``output``. No spaces. Example::

    input>1;dwconv3x3>2;split>3,4;maxpool3x3>5;atten>5;output

is ``input -> dwconv3x3 -> split``; its first half goes through ``maxpool3x3``, the second
through ``atten``, and ``output`` concatenates the two (26.3M FLOPs, 0.40M parameters with
the default macro).

**Network** (``build``): 3x3 conv-BN-Mish stem at ``widths[0]``; blocks of ``cells_per_block``
cells at ``widths[0], widths[1], ...`` with 2x2 average pooling before every block but the
first; global average pooling; dense classifier.

**FLOPs** are multiply-accumulates of one image: every convolution (dense
``H*W*k*k*C_in*C_out``, depthwise ``H*W*k*k*C``, the ``atten`` 1x1 projections on the pooled
``1x1`` map), the two ``atten`` products ``q k^T`` and ``softmax(.) v`` (``d*d`` each) and the
classifier kernel. Bias adds, BatchNorm, activations, pooling, concatenation, residual adds and
the ``atten`` gating product are free. With the default macro the fixed part (stem, the two
width-changing projections, classifier) is 20.32M at 32x32 (``min_flops``), so the default 50M
limit leaves about 30M for the nine cells. A 1x1 conv costs ``H*W*C^2`` = 16.8M per cell at
every block (51.8M in all on half the channels), and any ``expand`` widens the cell output so
that every cell pays a projection (the cheapest such cell costs 156M). Cells under the limit
are therefore built from ``none``, ``maxpool3x3``, ``dwconv3x3``, ``atten``, ``split`` and convs
on a quarter of the channels or less; sampled cells cost 20.3M..about 45M.
"""

from __future__ import annotations

import collections
import re
from typing import Any, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tfnas.checks import check_image_shape, check_int, check_num_classes, check_rng, is_int, is_number, positive_int
from tfnas.registry import register_space
from tfnas.spaces.base import GraphSpace
from tfnas.spaces.tinynano.arch import (
    GRAPH_OPS,
    NON_SPLIT_OPS,
    OPS,
    Node,
    TinyNanoArch,
    arch_string,
    canonical_nodes,
    received_channels,
)
from tfnas.spaces.tinynano.network import build_tinynano_model
from tfnas.spaces.tinynano.ops import op_cost

__all__ = ["TinyNanoSpace"]

_GRAPH_ID = {op: k for k, op in enumerate(GRAPH_OPS)}
_ENTRY = re.compile(r"^([a-z0-9-]+)>((?:0|[1-9][0-9]*)(?:,(?:0|[1-9][0-9]*))*)$")
_EXAMPLE = "input>1;dwconv3x3>2;split>3,4;maxpool3x3>5;atten>5;output"


def _cell_cost(nodes: Sequence[Node], c_in: int, width: int, hw: int) -> Tuple[int, int]:
    """``(params, multiply-adds)`` of one cell on ``c_in`` channels at block ``width`` over ``hw`` pixels."""
    received = received_channels(nodes, c_in)
    params = flops = 0
    for (op, _), c in zip(nodes[1:-1], received[1:-1]):
        p, f = op_cost(op, c, hw)
        params, flops = params + p, flops + f
    if received[-1] != width:  # output projection (1x1 conv without bias + BN)
        params += received[-1] * width + 2 * width
        flops += hw * received[-1] * width
    return params, flops


@register_space("tinynano")
class TinyNanoSpace(GraphSpace[TinyNanoArch]):
    """Tiny-NanoBench: lightweight DAG cells stacked in a three-block network (module docstring).

    Args:
        widths: channels of each block (the stem runs at ``widths[0]``); each must be divisible by
            ``2 ** (max_nodes - 3)`` so that any chain of splits halves an even count.
        cells_per_block: cells per block.
        max_nodes: most nodes in a cell, ``input`` and ``output`` included (>= 3).
        flops_limit: ``sample`` and ``mutate`` keep networks (32x32x3 input, 10 classes) at or below
            this many multiply-adds; ``None`` for no limit. Must not be below ``min_flops()``.

    Example:
        >>> space = TinyNanoSpace()
        >>> arch = space.decode("input>1;dwconv3x3>2;split>3,4;maxpool3x3>5;atten>5;output")
        >>> space.flops(arch), space.num_params(arch)
        (26293248, 398186)
        >>> space.mutate(arch, np.random.default_rng(0)) != arch
        True
    """

    name = "tinynano"
    ops = OPS

    def __init__(
        self,
        widths: Sequence[int] = (128, 256, 512),
        cells_per_block: int = 3,
        max_nodes: int = 7,
        flops_limit: Optional[float] = 50e6,
    ):
        cells_per_block = check_int(cells_per_block, "cells_per_block", "TinyNanoSpace", low=1)
        max_nodes = check_int(max_nodes, "max_nodes", "TinyNanoSpace", low=3)
        widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths
        step = 2 ** (max_nodes - 3)
        if not isinstance(widths, tuple) or not widths or any(
            not is_int(w) or w < 1 or w % step for w in widths
        ):
            raise ValueError(
                f"TinyNanoSpace: `widths` must be a non-empty sequence of positive multiples of {step} "
                f"(2 ** (max_nodes - 3), so up to {max_nodes - 3} splits halve even counts). "
                f"Received: widths={widths!r}"
            )
        self.widths = tuple(int(w) for w in widths)
        self.cells_per_block, self.max_nodes = cells_per_block, max_nodes
        if flops_limit is not None:
            if not is_number(flops_limit) or not flops_limit > 0:  # (NaN too)
                raise ValueError(f"TinyNanoSpace: `flops_limit` must be a positive number or None. "
                                 f"Received: flops_limit={flops_limit!r}")
            if flops_limit < self.min_flops():
                raise ValueError(
                    f"TinyNanoSpace: flops_limit={flops_limit:g} is below {self.min_flops()} multiply-adds, the "
                    f"cost of the network with the identity cell 'input>1;none>2;output' (stem, width-changing "
                    f"projections, classifier); raise the limit, narrow `widths`, or pass None"
                )
        self.flops_limit = flops_limit


    def __repr__(self) -> str:
        return (f"TinyNanoSpace(widths={self.widths}, cells_per_block={self.cells_per_block}, "
                f"max_nodes={self.max_nodes}, flops_limit={self.flops_limit})")

    # ---- strings ------------------------------------------------------------------------

    def encode(self, arch: TinyNanoArch) -> str:
        """Canonical string, e.g. ``input>1;dwconv3x3>2;split>3,4;maxpool3x3>5;atten>5;output``."""
        return arch_string(self._check_arch(arch).nodes)

    def decode(self, text: str) -> TinyNanoArch:
        """Parses a canonical cell string strictly; ``ValueError`` names what is wrong."""
        if not isinstance(text, str):
            raise TypeError(f"Tiny-NanoBench arch must be a string; got {type(text).__name__}")
        entries = text.split(";")
        if not 3 <= len(entries) <= self.max_nodes:
            raise ValueError(f"Tiny-NanoBench arch {text!r}: expected 3..{self.max_nodes} ';'-separated nodes, "
                             f"got {len(entries)} (e.g. {_EXAMPLE!r})")
        nodes: List[Node] = []
        for i, entry in enumerate(entries[:-1]):
            match = _ENTRY.match(entry)
            if match is None:
                raise ValueError(f"Tiny-NanoBench arch {text!r}: node {i} {entry!r} is not of the form "
                                 f"'op>j' or 'split>j,k' (e.g. {_EXAMPLE!r})")
            nodes.append((match.group(1), tuple(int(j) for j in match.group(2).split(","))))
        if entries[-1] != "output":
            raise ValueError(f"Tiny-NanoBench arch {text!r}: the last node must be 'output', got {entries[-1]!r}")
        nodes.append(("output", ()))
        try:
            return TinyNanoArch(tuple(nodes))
        except ValueError as exc:
            raise ValueError(f"Tiny-NanoBench arch {text!r}: {exc}") from None

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, max_tries: int = 100_000) -> TinyNanoArch:
        """A random cell within ``flops_limit``.

        Prior: the number of nodes ``n`` is uniform in ``3 .. max_nodes``; then each op is uniform
        (no ``split`` on the last op node) and each node in turn takes a random non-empty subset
        of the still-unconnected outgoing edges of earlier nodes (each kept with probability 1/2,
        at most one half of a split); the output takes the rest. Draws of that size that break a
        rule or exceed the limit are redrawn, so every size keeps probability ``1 / (max_nodes - 2)``
        (a ``none`` chain of any size is within any allowed limit).
        """
        check_rng(rng, "TinyNanoSpace.sample")
        positive_int(max_tries, "max_tries", "TinyNanoSpace.sample")
        n = int(rng.integers(3, self.max_nodes + 1))
        for _ in range(max_tries):
            nodes = self._random_nodes(rng, n)
            if nodes is not None and self._within_limit(nodes):
                return TinyNanoArch(canonical_nodes(nodes))
        raise RuntimeError(f"TinyNanoSpace.sample drew no {n}-node cell within flops_limit={self.flops_limit:g} in "
                           f"{max_tries} tries (the minimum is {self.min_flops()}); raise the limit")

    @staticmethod
    def _random_nodes(rng: np.random.Generator, n: int) -> Optional[List[Node]]:
        ops = ["input"] + [str(rng.choice(OPS if i < n - 2 else NON_SPLIT_OPS)) for i in range(1, n - 1)] + ["output"]
        succ: List[List[int]] = [[] for _ in range(n)]
        open_edges = [(0, 0)]
        for j in range(1, n):
            if j == n - 1:
                take = open_edges
            else:
                take = [e for e in open_edges if rng.random() < 0.5] or [open_edges[int(rng.integers(len(open_edges)))]]
                sources = [s for s, _ in take]
                take = [e for k, e in enumerate(take) if e[0] not in sources[:k]]  # one half per split
            for s, half in take:
                succ[s].append((half, j))
            open_edges = [e for e in open_edges if e not in take]
            open_edges += [(j, h) for h in range(2 if ops[j] == "split" else 1 if j < n - 1 else 0)]
        nodes = [(op, tuple(j for _, j in sorted(s))) for op, s in zip(ops, succ)]
        return nodes if all(len(set(s)) == len(s) for _, s in nodes) else None

    def mutate(self, arch: TinyNanoArch, rng: np.random.Generator, max_tries: int = 1000) -> TinyNanoArch:
        """A different valid cell within ``flops_limit``, one edit away from ``arch``.

        Edits (uniform): change a non-split op; turn a non-split op into a split (adding an
        edge) or a split into an op (dropping one edge); move one edge to another later node;
        insert an op node on an edge; remove a non-split op node, reconnecting its inputs to its
        successor. Edits that break a rule, repeat ``arch`` or exceed the limit are redrawn;
        ``RuntimeError`` if ``max_tries`` edits all fail (possible only when ``arch`` itself is
        far over the limit).
        """
        check_rng(rng, "TinyNanoSpace.mutate")
        positive_int(max_tries, "max_tries", "TinyNanoSpace.mutate")
        arch = self._check_arch(arch)
        for _ in range(max_tries):
            nodes = [(op, list(succ)) for op, succ in arch.nodes]
            try:
                edited = self._edit(nodes, rng)
                child = TinyNanoArch(canonical_nodes([(op, tuple(s)) for op, s in edited])) if edited else None
            except ValueError:
                continue
            if child is not None and child != arch and child.num_nodes <= self.max_nodes and self.within_limit(child):
                return child
        raise RuntimeError(f"TinyNanoSpace.mutate found no neighbour of {self.encode(arch)!r} within "
                           f"flops_limit={self.flops_limit} in {max_tries} tries")

    @staticmethod
    def _edit(nodes: List[Tuple[str, List[int]]], rng: np.random.Generator) -> Optional[List[Tuple[str, List[int]]]]:
        n = len(nodes)
        v = int(rng.integers(1, n - 1))  # an op node
        op, succ = nodes[v]
        kind = int(rng.integers(6))
        if kind == 0 and op != "split":  # change op
            nodes[v] = (str(rng.choice([o for o in NON_SPLIT_OPS if o != op])), succ)
        elif kind == 1 and op != "split":  # op -> split with a second successor
            others = [t for t in range(v + 1, n) if t != succ[0]]
            if not others:
                return None
            pair = [succ[0], int(rng.choice(others))]
            nodes[v] = ("split", pair if rng.random() < 0.5 else pair[::-1])
        elif kind == 2 and op == "split":  # split -> op keeping one successor
            nodes[v] = (str(rng.choice(NON_SPLIT_OPS)), [succ[int(rng.integers(2))]])
        elif kind == 3:  # move one edge of any non-output node
            u = int(rng.integers(0, n - 1))
            k = int(rng.integers(len(nodes[u][1])))
            nodes[u][1][k] = int(rng.integers(u + 1, n))
        elif kind == 4:  # insert an op node on one outgoing edge of node u
            u = int(rng.integers(0, n - 1))
            k = int(rng.integers(len(nodes[u][1])))
            target = nodes[u][1][k]
            shift = [(o, [t + (t >= target) for t in s]) for o, s in nodes]
            shift[u][1][k] = target
            return shift[:target] + [(str(rng.choice(NON_SPLIT_OPS)), [target + 1])] + shift[target:]
        elif kind == 5 and op != "split" and n > 3:  # remove v, its inputs go to its successor
            out = [(o, [succ[0] if t == v else t for t in s]) for o, s in nodes]
            del out[v]
            return [(o, [t - (t > v) for t in s]) for o, s in out]
        else:
            return None
        return nodes

    # ---- graph view -----------------------------------------------------------------------

    def to_graph(self, arch: TinyNanoArch) -> Tuple[np.ndarray, np.ndarray]:
        """``(adj [N, N], ops [N, K])`` float32 with ``N = max_nodes``, ``K = len(GRAPH_OPS) = 11``.

        Node ``i`` of the cell is graph node ``i`` (canonical ids, so ``output`` sits at ``n - 1``);
        ``adj[i, j] = 1`` for an edge ``i -> j`` (no self loops); ``ops[i]`` one-hot over
        ``GRAPH_OPS`` = ``input``, ``OPS``..., ``output``. Rows/columns ``n .. N-1`` are zero.
        """
        arch = self._check_arch(arch)
        adj = np.zeros((self.max_nodes, self.max_nodes), dtype=np.float32)
        ops = np.zeros((self.max_nodes, len(GRAPH_OPS)), dtype=np.float32)
        for i, (op, succ) in enumerate(arch.nodes):
            ops[i, _GRAPH_ID[op]] = 1.0
            adj[i, list(succ)] = 1.0
        return adj, ops

    def graphs(self, archs: Sequence[TinyNanoArch]) -> Tuple[np.ndarray, np.ndarray]:
        """Stacked ``to_graph`` of ``M`` cells: ``(adj [M, N, N], ops [M, N, K])`` float32."""
        pairs = [self.to_graph(a) for a in archs]
        n, k = self.max_nodes, len(GRAPH_OPS)
        adj = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, n, n), np.float32)
        ops = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, n, k), np.float32)
        return adj, ops

    # ---- cost model -----------------------------------------------------------------------

    def _plan(self, input_shape: Tuple[int, int, int]) -> List[Tuple[int, int, int]]:
        """``(cell input channels, block width, pixels)`` of every cell."""
        h, w, _ = _check_input_shape(input_shape, len(self.widths))
        plan, c_in = [], self.widths[0]
        for b, width in enumerate(self.widths):
            if b:
                h, w = h // 2, w // 2
            for _ in range(self.cells_per_block):
                plan.append((c_in, width, h * w))
                c_in = width
        return plan

    def _cost(self, nodes: Sequence[Node], input_shape: Tuple[int, int, int], num_classes: int) -> Tuple[int, int]:
        """``(params, multiply-adds)`` of the network of a valid cell (``nodes`` in any topological numbering)."""
        h, w, c_img = _check_input_shape(input_shape, len(self.widths))
        num_classes = _check_num_classes(num_classes)
        w0, top = self.widths[0], self.widths[-1]
        params, flops = 9 * c_img * w0 + 2 * w0, h * w * 9 * c_img * w0  # stem conv + BN
        for (c_in, width, hw), count in collections.Counter(self._plan(input_shape)).items():
            p, f = _cell_cost(nodes, c_in, width, hw)
            params, flops = params + count * p, flops + count * f
        return params + top * num_classes + num_classes, flops + top * num_classes

    def num_params(self, arch: TinyNanoArch, num_classes: int = 10) -> int:
        """Trainable parameters of ``build(arch, num_classes)`` on RGB images (BatchNorm gamma/beta included)."""
        return self._cost(self._check_arch(arch).nodes, (32, 32, 3), num_classes)[0]

    def flops(self, arch: TinyNanoArch, input_shape: Tuple[int, int, int] = (32, 32, 3), num_classes: int = 10) -> int:
        """Multiply-adds of one forward pass on one image (what counts: module docstring)."""
        return self._cost(self._check_arch(arch).nodes, input_shape, num_classes)[1]

    def min_flops(self) -> int:
        """FLOPs (32x32x3, 10 classes) of the identity cell ``input>1;none>2;output``: the fixed part of the network."""
        return self.flops(TinyNanoArch((("input", (1,)), ("none", (2,)), ("output", ()))))

    def within_limit(self, arch: TinyNanoArch) -> bool:
        """Whether ``flops(arch)`` (32x32x3, 10 classes) is at most ``flops_limit``."""
        return self._within_limit(self._check_arch(arch).nodes)

    def _within_limit(self, nodes: Sequence[Node]) -> bool:
        return self.flops_limit is None or self._cost(nodes, (32, 32, 3), 10)[1] <= self.flops_limit

    # ---- Keras model ----------------------------------------------------------------------

    def build(self, arch: TinyNanoArch, num_classes: int, input_shape: Tuple[int, int, int] = (32, 32, 3),
              **kwargs: Any) -> keras.Model:
        """The Tiny-NanoBench network for ``arch`` as a functional ``keras.Model``.

        Args:
            arch: the cell, repeated ``cells_per_block`` times per block.
            num_classes: logits per image.
            input_shape: ``(H, W, channels)``, ``H`` and ``W`` divisible by ``2 ** (len(widths) - 1)``.
            drop_path_rate: ``None`` (default: no ``DropPath``) or a float in ``[0, 1)``: a
                ``DropPath`` on the cell branch of every residual cell (the Trainer's schedule sets it).
            seed: optional int seeding the ``DropPath`` layers (layer ``k`` gets ``seed + k``).
            name: model name (default ``"tinynano"``).

        Returns:
            A model mapping float32 images ``(B, H, W, channels)`` to logits ``(B, num_classes)``.
        """
        arch = self._check_arch(arch)
        num_classes = _check_num_classes(num_classes)
        h, w, c_img = _check_input_shape(input_shape, len(self.widths))
        rate, seed, name = kwargs.pop("drop_path_rate", None), kwargs.pop("seed", None), kwargs.pop("name", "tinynano")
        if kwargs:
            raise TypeError(f"TinyNanoSpace.build got unexpected keyword argument(s) {sorted(kwargs)}; "
                            "supported: drop_path_rate, seed, name")
        if rate is not None and (not is_number(rate) or not 0 <= rate < 1):
            raise ValueError(
                f"TinyNanoSpace.build: drop_path_rate must be None or a float in [0, 1). Received: {rate!r}"
            )
        if seed is not None:
            seed = check_int(seed, "seed", "TinyNanoSpace.build",
                             message="{owner}: seed must be an integer or None. Received: {value!r}")
        return build_tinynano_model(arch, num_classes, (h, w, c_img), self.widths[0], self._plan((h, w, c_img)),
                                    self.cells_per_block, rate, seed, name)

    # ---- checks ---------------------------------------------------------------------------

    def _check_arch(self, arch: Any) -> TinyNanoArch:
        if not isinstance(arch, TinyNanoArch):
            raise TypeError(
                f"expected a TinyNanoArch, got {type(arch).__name__}; parse strings with TinyNanoSpace.decode"
            )
        if arch.num_nodes > self.max_nodes:
            raise ValueError(f"cell {arch_string(arch.nodes)!r} has {arch.num_nodes} nodes; this space allows "
                             f"max_nodes={self.max_nodes}")
        return arch


def _check_input_shape(input_shape: Sequence[int], blocks: int) -> Tuple[int, int, int]:
    h, w, c = check_image_shape(input_shape,
                                message="input_shape must be (H, W, channels) positive ints; got {value!r}")
    step = 2 ** (blocks - 1)
    if h % step or w % step:
        raise ValueError(f"the network halves the resolution {blocks - 1} times, so H and W must be divisible by "
                         f"{step}; got {(h, w, c)}")
    return h, w, c


def _check_num_classes(num_classes: Any) -> int:
    return check_num_classes(num_classes, message="num_classes must be a positive integer; got {value!r}")
