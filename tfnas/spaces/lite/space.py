"""The SLNAS light-weight ("Lite") cell space (Tsung-Yi Chen, "Stage and Lite Search Technology in
Convolutional Neural Network Architecture Search"; reference PyTorch code ``model_arc/``).

Architectures, their text form and presets are in :mod:`tfnas.spaces.lite.arch`; the Keras
layers in :mod:`~tfnas.spaces.lite.ops`, :mod:`~tfnas.spaces.lite.cell` and
:mod:`~tfnas.spaces.lite.network`. Node ``n`` of a cell picks two inputs among ``n + 2`` states
and two of 5 ops, so a cell has ``720^2 * 5^10`` (about 5.1e12) choices and the space about 2.6e25.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from tfnas.checks import check_rng

from tfnas.registry import register_space
from tfnas.spaces.base import GraphSpace
from tfnas.spaces.lite.arch import CELL_LENGTH, FIELDS, NUM_NODES, OPS, LiteArch, parse_arch, to_ids
from tfnas.spaces.lite.network import LiteNetwork, check_blocks, check_channels, count_network_params

__all__ = ["CELL_GRAPH_NODES", "GRAPH_OPS", "LiteSpace", "entry_bounds"]

#: Node labels of the op-on-node graph (normal and reduction ops are distinct labels).
GRAPH_OPS: Tuple[str, ...] = ("input_prev_prev", "input_prev", "add", "output") + tuple(
    f"{kind}_{op}" for kind in ("normal", "reduce") for op in OPS
)
#: Graph nodes per cell: 2 inputs, 5 x (op_x, op_y, add), 1 output.
CELL_GRAPH_NODES = 2 + 3 * NUM_NODES + 1


def entry_bounds() -> np.ndarray:
    """int64 ``[20]``: the number of values of each cell entry (``n + 2`` for inputs of node ``n``, 5 for ops)."""
    return np.array([len(OPS) if k % 2 else k // len(FIELDS) + 2 for k in range(CELL_LENGTH)], np.int64)


def _cell_graph(arch: LiteArch, reduction: bool) -> Tuple[np.ndarray, List[int]]:
    kind = "reduce" if reduction else "normal"
    n = CELL_GRAPH_NODES
    adj = np.zeros((n, n), np.float32)
    labels = [GRAPH_OPS.index("input_prev_prev"), GRAPH_OPS.index("input_prev")]
    state_node = {0: 0, 1: 1}
    for node, (in_x, op_x, in_y, op_y) in enumerate(arch.nodes(reduction)):
        add = 2 + 3 * node + 2
        for slot, (src, op) in enumerate(((in_x, op_x), (in_y, op_y))):
            op_node = 2 + 3 * node + slot
            labels.append(GRAPH_OPS.index(f"{kind}_{OPS[op]}"))
            adj[state_node[src], op_node] = 1.0
            adj[op_node, add] = 1.0
        labels.append(GRAPH_OPS.index("add"))
        state_node[2 + node] = add
        adj[add, n - 1] = 1.0  # every node is concatenated into the output
    labels.append(GRAPH_OPS.index("output"))
    return adj, labels


@register_space("lite")
class LiteSpace(GraphSpace[LiteArch]):
    """The SLNAS lite space: ``[normal, reduction]`` cells of 20 integers, the lite network.

    Args:
        channels: stem channels ``C`` of the network (SLNAS retraining: 40; even, >= 4).
        blocks: normal cells per stage; each stage ends with a reduction cell (SLNAS: ``(2, 2)``).
        auxiliary: networks get the auxiliary heads by default.

    Example:
        >>> space = LiteSpace()
        >>> space.num_params(space.decode("slnas_paper"))
        624800
    """

    name = "lite"
    ops = OPS
    #: Options of :meth:`build` for the network a zero-shot proxy scores: no auxiliary heads.
    proxy_build_options = {"auxiliary": False}

    def __init__(self, channels: int = 40, blocks: Sequence[int] = (2, 2), auxiliary: bool = True):
        self.channels = check_channels(channels, "LiteSpace")
        self.blocks = check_blocks(blocks, "LiteSpace")
        if not isinstance(auxiliary, (bool, np.bool_)):  # (bool('no') is True)
            raise TypeError(f"LiteSpace: auxiliary must be True or False. Received: auxiliary={auxiliary!r}")
        self.auxiliary = bool(auxiliary)

    def __repr__(self) -> str:
        return f"LiteSpace(channels={self.channels}, blocks={self.blocks}, auxiliary={self.auxiliary})"

    # ---- strings --------------------------------------------------------------------------

    def encode(self, arch: LiteArch) -> str:
        """The canonical text ``[[...20 ints...], [...20 ints...]]``."""
        return str(self._check_arch(arch))

    def decode(self, text: str) -> LiteArch:
        """Parses the text form or a preset name (``slnas_paper``); see :func:`~tfnas.spaces.lite.arch.parse_arch`."""
        return parse_arch(text)

    @staticmethod
    def to_ids(arch: LiteArch) -> np.ndarray:
        """int32 ``[2, 5, 2, 2]``: ``[cell (normal, reduce), node, slot (x, y), (input, op)]`` (supernet input)."""
        return to_ids(arch)

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> LiteArch:
        """Uniform over architectures: every input and op uniform and independent."""
        check_rng(rng, "LiteSpace.sample")
        bounds = entry_bounds()
        cells = [rng.integers(0, bounds) for _ in range(2)]
        return LiteArch(cells[0].tolist(), cells[1].tolist())

    def mutate(self, arch: LiteArch, rng: np.random.Generator) -> LiteArch:
        """Changes one uniformly chosen entry (of the 40) to another of its values; never returns ``arch``."""
        check_rng(rng, "LiteSpace.mutate")
        arch = self._check_arch(arch)
        values = list(arch.normal) + list(arch.reduce)
        k = int(rng.integers(2 * CELL_LENGTH))
        high = int(entry_bounds()[k % CELL_LENGTH])
        values[k] = (values[k] + int(rng.integers(1, high))) % high
        return LiteArch(values[:CELL_LENGTH], values[CELL_LENGTH:])

    # ---- graph view -----------------------------------------------------------------------

    def to_graph(self, arch: LiteArch) -> Tuple[np.ndarray, np.ndarray]:
        """Op-on-node graph of both cells: ``(adj [36, 36] float32, ops [36, 14] float32 one-hot)``.

        Nodes ``0..17`` are the normal cell, ``18..35`` the reduction cell, each laid out as
        ``[h_{k-2}, h_{k-1}, (op_x, op_y, add) x 5, output]``; ``adj[i, j] = 1`` for an edge
        ``i -> j`` (state -> op -> add -> output; all 5 adds feed the output), no self loops.
        Labels come from :data:`GRAPH_OPS`; normal and reduction ops have distinct labels.
        """
        arch = self._check_arch(arch)
        n = CELL_GRAPH_NODES
        adj = np.zeros((2 * n, 2 * n), np.float32)
        labels: List[int] = []
        for c, reduction in enumerate((False, True)):
            cell_adj, cell_labels = _cell_graph(arch, reduction)
            adj[c * n : (c + 1) * n, c * n : (c + 1) * n] = cell_adj
            labels.extend(cell_labels)
        return adj, np.eye(len(GRAPH_OPS), dtype=np.float32)[labels]

    # ---- cost model and networks ------------------------------------------------------------

    def num_params(self, arch: LiteArch, num_classes: int = 10, channels: int = 0,
                   blocks: Optional[Sequence[int]] = None, auxiliary: bool = False) -> int:
        """Trainable parameters of ``build(arch, num_classes)`` (BatchNorm gamma/beta included).

        Without the auxiliary heads this is the network that is exported: 624,800 for
        ``slnas_paper`` at ``C = 40``, blocks ``(2, 2)``, 10 classes (the reference PyTorch model
        counts 638,400: + 800 for its auxiliary head and + 12,800 for a 1x1 conv whose output it
        never uses; see docs/RESULTS.md).

        Args:
            auxiliary: include the auxiliary heads.
            channels, blocks: override the space's ``channels`` / ``blocks`` (0 / None = the space's).
        """
        arch = self._check_arch(arch)
        channels = check_channels(channels, "LiteSpace.num_params") if channels else self.channels
        blocks = self.blocks if blocks is None else check_blocks(blocks, "LiteSpace.num_params")
        return count_network_params(arch, num_classes, channels, blocks, auxiliary)

    def build(self, arch: LiteArch, num_classes: int, input_shape: Tuple[int, int, int] = (32, 32, 3),
              **kwargs: Any):
        """The lite network of ``arch`` (a built :class:`~tfnas.spaces.lite.network.LiteNetwork`).

        Keyword args:
            drop_path_rate: ``None`` (no DropPath layers) or the initial rate in ``[0, 1)`` of
                the DropPath on every node branch (the Trainer ramps it each epoch).
            auxiliary: add the auxiliary heads (default: the space's ``auxiliary``); the model then
                returns ``(logits, aux_1, ..., aux_k)`` (one per reduction cell but the last) when
                called with ``training=True``.
            channels, blocks: override the space's ``channels`` / ``blocks``.
            seed: optional int seeding the DropPath layers.
            name: model name (default ``"lite"``).
        """
        arch = self._check_arch(arch)
        allowed = {"drop_path_rate", "auxiliary", "channels", "blocks", "seed", "name"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"LiteSpace.build got unexpected keyword argument(s) {unknown}; "
                            f"supported: {sorted(allowed)}")
        model = LiteNetwork(
            arch,
            num_classes=num_classes,
            image_shape=tuple(input_shape),
            channels=kwargs.get("channels") or self.channels,
            blocks=kwargs.get("blocks") or self.blocks,
            auxiliary=self.auxiliary if kwargs.get("auxiliary") is None else bool(kwargs["auxiliary"]),
            drop_path_rate=kwargs.get("drop_path_rate"),
            seed=kwargs.get("seed"),
            name=kwargs.get("name", "lite"),
        )
        model.build((None,) + tuple(input_shape))
        return model

    @staticmethod
    def _check_arch(arch: Any) -> LiteArch:
        if not isinstance(arch, LiteArch):
            raise TypeError(f"expected a LiteArch, got {type(arch).__name__}; parse strings with LiteSpace.decode")
        return arch
