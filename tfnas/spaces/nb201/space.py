"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020, https://arxiv.org/abs/2001.00326).

The space of the cells of :mod:`tfnas.spaces.nb201.arch` (5 ops on 6 edges, 15,625 cells):
strings, the official index (:mod:`~tfnas.spaces.nb201.index`), the isomorphism-aware canonical
form, sampling and mutation, the graph view (:mod:`~tfnas.spaces.nb201.graph`), analytic
parameter and FLOP counts, and the Keras network (:mod:`~tfnas.spaces.nb201.network`).

Arch strings are the official ones: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (group ``i``
lists node ``i``'s inputs ``op~j``).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Sequence, Tuple

import keras
import numpy as np

from tfnas.checks import check_image_shape, check_int, check_num_classes, check_rng, is_int, is_number, positive_int
from tfnas.registry import register_space
from tfnas.spaces.base import GraphSpace, TabularSpace
from tfnas.spaces.nb201.arch import CONV_KERNEL, EDGES, NUM_CELLS, NUM_EDGES, OP_ID, OPS, Nb201Arch, stage_channels
from tfnas.spaces.nb201.graph import all_graphs, graph_of_ids
from tfnas.spaces.nb201.index import code_of_ids, index_of_code, ops_by_index
from tfnas.spaces.nb201.network import build_nb201_model
from tfnas.spaces.ops import conv_output_shape

__all__ = ["Nb201Space"]

_ARCH_TOKEN = re.compile(r"^([A-Za-z0-9_]+)~([0-9]+)$")


@register_space("nb201")
class Nb201Space(GraphSpace[Nb201Arch], TabularSpace[Nb201Arch]):
    """NAS-Bench-201: 15,625 cells, indexed in the official NB201 order.

    Args:
        channels: stem / first-stage width ``C`` (stages run at ``C``, ``2C``, ``4C``); 16 in NB201.
        cells_per_stage: cells per stage ``N``; 5 in NB201.

    Example:
        >>> space = Nb201Space()
        >>> arch = space.decode(
        ...     "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        ... )
        >>> space.num_params(arch)
        1288506
    """

    name = "nb201"
    size = NUM_CELLS
    ops = OPS

    def __init__(self, channels: int = 16, cells_per_stage: int = 5):
        self.channels = positive_int(channels, "channels", "Nb201Space")
        self.cells_per_stage = positive_int(cells_per_stage, "cells_per_stage", "Nb201Space")

    def __repr__(self) -> str:
        return f"Nb201Space(channels={self.channels}, cells_per_stage={self.cells_per_stage})"

    # ---- strings ------------------------------------------------------------------------

    def encode(self, arch: Nb201Arch) -> str:
        """Official string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        arch = self._check_arch(arch)
        groups: List[List[str]] = [[], [], []]
        for (src, dst), op in zip(EDGES, arch.ops):
            groups[dst - 1].append(f"{op}~{src}")
        return "+".join("|" + "|".join(group) + "|" for group in groups)

    def decode(self, text: str) -> Nb201Arch:
        """Parses an official arch string strictly; ``ValueError`` names what is wrong."""
        if not isinstance(text, str):
            raise TypeError(f"NAS-Bench-201 arch must be a string; got {type(text).__name__}")
        example = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
        groups = text.split("+")
        if len(groups) != 3:
            raise ValueError(
                f"NAS-Bench-201 arch {text!r}: expected 3 '+'-separated node groups, got {len(groups)} "
                f"(e.g. {example})"
            )
        ops: Dict[Tuple[int, int], str] = {}
        for node, group in enumerate(groups, start=1):
            if len(group) < 2 or not group.startswith("|") or not group.endswith("|"):
                raise ValueError(
                    f"NAS-Bench-201 arch {text!r}: node {node} group {group!r} must start and end with '|'"
                )
            tokens = group[1:-1].split("|")
            if len(tokens) != node:
                raise ValueError(
                    f"NAS-Bench-201 arch {text!r}: node {node} must list {node} input(s) 'op~j' for j=0..{node - 1}, "
                    f"got {len(tokens)}: {group!r}"
                )
            for j, token in enumerate(tokens):
                match = _ARCH_TOKEN.match(token)
                if match is None:
                    raise ValueError(
                        f"NAS-Bench-201 arch {text!r}: node {node} input {token!r} is not of the form 'op~{j}'"
                    )
                op, src = match.group(1), int(match.group(2))
                if src != j:
                    raise ValueError(
                        f"NAS-Bench-201 arch {text!r}: node {node} input {j} must come from node {j}, "
                        f"got '~{src}' in {token!r}"
                    )
                if op not in OP_ID:
                    raise ValueError(
                        f"NAS-Bench-201 arch {text!r}: unknown op {op!r} on edge {j}->{node}; expected one of {OPS}"
                    )
                ops[(j, node)] = op
        return Nb201Arch(tuple(ops[edge] for edge in EDGES))

    def canonical(self, arch: Nb201Arch) -> str:
        """Isomorphism-aware key: cells computing the same function share it.

        Each node gets an expression string built from its inputs (Dong & Yang's unique-string
        rule, the convention behind the published 6,466 unique cells): an input through
        ``none``, or from a node whose expression is zero (``#``), contributes the zero term
        ``#``; ``skip_connect`` passes its source's expression through; any other op wraps it as
        ``(src)@op``; a node joins its terms sorted (addition commutes). The key is node 3's
        expression. Over all 15,625 cells this gives exactly 6,466 distinct keys.

        Cells sharing a key compute the same function (up to their weights). The converse is
        not complete by design: zero terms stay in a sum as ``#``, as in the published count;
        also dropping them (``a + 0 = a``) would merge further, to 5,390 classes.
        """
        arch = self._check_arch(arch)
        expr = {0: "0"}
        for node in (1, 2, 3):
            terms = []
            for (src, dst), op in zip(EDGES, arch.ops):
                if dst != node:
                    continue
                if op == "none" or expr[src] == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(expr[src])
                else:
                    terms.append(f"({expr[src]})@{op}")
            expr[node] = "+".join(sorted(terms))
        return expr[3]

    # ---- table index ----------------------------------------------------------------------

    def index(self, arch: Nb201Arch) -> int:
        """NB201 index of ``arch`` (the official order, :mod:`tfnas.spaces.nb201.index`)."""
        arch = self._check_arch(arch)
        code = int(code_of_ids(np.asarray(arch.ids)))
        return int(index_of_code()[code])

    def from_index(self, i: int) -> Nb201Arch:
        """Arch at NB201 index ``i`` in ``[0, 15625)``."""
        if not is_int(i):
            raise TypeError(f"NAS-Bench-201 index must be an integer; got {i!r}")
        if not 0 <= i < NUM_CELLS:
            raise IndexError(f"NAS-Bench-201 index {i} out of range [0, {NUM_CELLS})")
        return Nb201Arch.from_ids(ops_by_index()[int(i)])

    def indices(self, ops_ids: np.ndarray) -> np.ndarray:
        """Vectorised ``index``: op-id rows ``[M, 6]`` -> NB201 indices ``[M]`` int64."""
        ops_ids = np.asarray(ops_ids)
        if ops_ids.ndim != 2 or ops_ids.shape[1] != NUM_EDGES:
            raise ValueError(f"expected op ids of shape [M, {NUM_EDGES}], got {ops_ids.shape}")
        if ops_ids.size and not np.issubdtype(ops_ids.dtype, np.integer):  # (0.5 and 4.9 were truncated)
            raise ValueError(f"op ids must be integers, got an array of {ops_ids.dtype}")
        if ops_ids.size and (ops_ids.min() < 0 or ops_ids.max() >= len(OPS)):
            raise ValueError(f"op ids must be in [0, {len(OPS)})")
        return index_of_code()[code_of_ids(ops_ids)]

    def ops_matrix(self) -> np.ndarray:
        """``[15625, 6]`` int64 op ids per edge in NB201 index order (read-only)."""
        return ops_by_index()

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Nb201Arch:
        """Uniform draw over the 15,625 cells (each edge op uniform and independent)."""
        check_rng(rng, "Nb201Space.sample")
        return Nb201Arch.from_ids(rng.integers(0, len(OPS), size=NUM_EDGES))

    def mutate(self, arch: Nb201Arch, rng: np.random.Generator) -> Nb201Arch:
        """Changes the op of one uniformly chosen edge to one of the 4 other ops."""
        check_rng(rng, "Nb201Space.mutate")
        ids = list(self._check_arch(arch).ids)
        edge = int(rng.integers(NUM_EDGES))
        ids[edge] = (ids[edge] + int(rng.integers(1, len(OPS)))) % len(OPS)
        return Nb201Arch.from_ids(ids)

    # ---- graph view -----------------------------------------------------------------------

    def to_graph(self, arch: Nb201Arch) -> Tuple[np.ndarray, np.ndarray]:
        """10-node op-on-node graph: ``(adj [10, 10] float32, ops [10, 9] float32 one-hot)``.

        Nodes ``[split_3, e(0->1), split_2, e(0->2), e(1->2), none, e(0->3), e(1->3), e(2->3),
        output]``, labels from ``GRAPH_OPS``; ``adj`` has no self loops (predictors add them).
        """
        return graph_of_ids(np.asarray(self._check_arch(arch).ids))

    def all_graphs(self) -> Tuple[np.ndarray, np.ndarray]:
        """Graphs of all cells in NB201 index order: ``(adj [15625, 10, 10], ops [15625, 10, 9])``.

        float32, read-only, computed once per process without a Python loop over cells.
        """
        return all_graphs()

    def graphs(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        """Graphs of the cells at ``indices`` (``[M]`` ints): ``(adj [M, 10, 10], ops [M, 10, 9])``."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"indices must be a 1-D integer array; got shape {idx.shape}, dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= NUM_CELLS):
            raise IndexError(f"NAS-Bench-201 indices must be in [0, {NUM_CELLS}); got min {idx.min()}, max {idx.max()}")
        adj, ops = all_graphs()
        idx = idx.astype(np.int64)
        return adj[idx], ops[idx]

    # ---- cost model -----------------------------------------------------------------------

    def num_params(self, arch: Nb201Arch, num_classes: int = 10) -> int:
        """Trainable parameters of ``build(arch, num_classes)`` (BatchNorm gamma/beta included).

        Convs have no bias; every edge op counts, also on edges whose output is unused, as in
        the published figures: 1,531,546 (all ``nor_conv_3x3``) and 73,306 (all ``none``) for
        10 classes at ``channels=16, cells_per_stage=5``.
        """
        arch = self._check_arch(arch)
        num_classes = _check_num_classes(num_classes)
        c1, c2, c3 = stage_channels(self.channels)
        total = 9 * 3 * c1 + 2 * c1  # stem conv + BN
        for c in (c1, c2, c3):
            per_cell = 0
            for op in arch.ops:
                if op in CONV_KERNEL:
                    per_cell += CONV_KERNEL[op] ** 2 * c * c + 2 * c
            total += self.cells_per_stage * per_cell
        for c_in, c_out in ((c1, c2), (c2, c3)):  # residual reductions
            total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out
        total += 2 * c3 + c3 * num_classes + num_classes  # head BN + classifier
        return int(total)

    def flops(self, arch: Nb201Arch, input_shape: Tuple[int, int, int] = (32, 32, 3), num_classes: int = 10) -> int:
        """Multiply-adds of one forward pass on one image, counted as NAS-Bench-201 does.

        Counts every convolution (``H_out * W_out * k * k * C_in * C_out``, dead edges included)
        and the classifier (``C * num_classes`` multiply-adds plus ``num_classes`` bias adds);
        BatchNorm, ReLU, pooling, additions and ``none``/``skip_connect`` are free. This
        reproduces the published CIFAR-10 range 7.78305M (all ``none``) .. 220.11969M
        (all ``nor_conv_3x3``).
        """
        arch = self._check_arch(arch)
        num_classes = _check_num_classes(num_classes)
        h, w, c_img = self._check_input_shape(input_shape)
        c1, c2, c3 = stage_channels(self.channels)
        total = h * w * 9 * c_img * c1  # stem
        for stage, c in enumerate((c1, c2, c3)):
            if stage > 0:
                c_in = c // 2
                ha, wa = conv_output_shape((h, w), 3, strides=2)
                total += ha * wa * 9 * c_in * c + ha * wa * 9 * c * c  # conv_a (s2), conv_b
                h, w = h // 2, w // 2
                total += h * w * c_in * c  # shortcut 1x1 after 2x2 pooling
            per_cell = sum(h * w * CONV_KERNEL[op] ** 2 * c * c for op in arch.ops if op in CONV_KERNEL)
            total += self.cells_per_stage * per_cell
        total += c3 * num_classes + num_classes
        return int(total)

    # ---- Keras model ----------------------------------------------------------------------

    def build(
        self,
        arch: Nb201Arch,
        num_classes: int,
        input_shape: Tuple[int, int, int] = (32, 32, 3),
        **kwargs: Any,
    ) -> keras.Model:
        """The NAS-Bench-201 network for ``arch`` as a functional ``keras.Model``.

        stem 3x3 conv(C) + BN; ``N`` cells at C; residual reduction to 2C; ``N`` cells;
        reduction to 4C; ``N`` cells; BN-ReLU-global average pool-Dense(num_classes).

        Args:
            arch: the cell.
            num_classes: logits per image.
            input_shape: ``(H, W, channels)``, with ``H`` and ``W`` divisible by 4.
            drop_path_rate: ``None`` (default: no ``DropPath`` layers) or a float in ``[0, 1)``:
                adds a ``DropPath`` at that initial rate after every conv and pooling edge (not
                after ``none``/``skip_connect``), as DARTS does. Pass ``0.0`` to train with the
                Trainer's drop-path schedule, which sets the rate of these layers each epoch.
            seed: optional int seeding the ``DropPath`` layers (layer ``k`` gets ``seed + k``).
            name: model name (default ``"nb201"``).

        Returns:
            A model mapping float32 images ``(B, H, W, channels)`` to logits ``(B, num_classes)``.
        """
        arch = self._check_arch(arch)
        num_classes = _check_num_classes(num_classes)
        h, w, c_img = self._check_input_shape(input_shape)
        drop_path_rate = kwargs.pop("drop_path_rate", None)
        seed = kwargs.pop("seed", None)
        name = kwargs.pop("name", "nb201")
        if kwargs:
            raise TypeError(
                f"Nb201Space.build got unexpected keyword argument(s) {sorted(kwargs)}; "
                "supported: drop_path_rate, seed, name"
            )
        if drop_path_rate is not None and (not is_number(drop_path_rate) or not 0.0 <= drop_path_rate < 1.0):
            raise ValueError(
                f"Nb201Space.build: drop_path_rate must be None or a float in [0, 1). Received: {drop_path_rate!r}"
            )
        if seed is not None:
            seed = check_int(seed, "seed", "Nb201Space.build",
                             message="{owner}: seed must be an integer or None. Received: {value!r}")
        return build_nb201_model(
            arch, num_classes, (h, w, c_img), self.channels, self.cells_per_stage, drop_path_rate, seed, name
        )

    # ---- checks ---------------------------------------------------------------------------

    @staticmethod
    def _check_arch(arch: Any) -> Nb201Arch:
        if not isinstance(arch, Nb201Arch):
            raise TypeError(
                f"expected an Nb201Arch, got {type(arch).__name__}; parse strings with Nb201Space.decode"
            )
        return arch

    @staticmethod
    def _check_input_shape(input_shape: Sequence[int]) -> Tuple[int, int, int]:
        h, w, c = check_image_shape(input_shape,
                                    message="input_shape must be (H, W, channels) positive ints; got {value!r}")
        if h % 4 or w % 4:
            raise ValueError(
                f"NAS-Bench-201 networks halve the resolution twice, so H and W must be divisible by 4; got {(h, w, c)}"
            )
        return h, w, c


def _check_num_classes(num_classes: Any) -> int:
    return check_num_classes(num_classes, message="num_classes must be a positive integer; got {value!r}")
