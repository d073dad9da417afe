"""The DARTS cell space as RelativeNAS uses it (Tan et al., IEEE TNNLS 2021, https://arxiv.org/abs/2009.06193).

Cells and their text form are in :mod:`tfnas.spaces.darts.genotype`. RelativeNAS (Sec. III-A)
encodes a genotype as a real vector of 32 entries, ``[normal 16 | reduction 16]``; node ``j``
owns entries ``4j .. 4j+3`` = ``(input_a, op_a, input_b, op_b)`` with bounds
``input in [0, 2 + j]`` and ``op in [0, 7]``. Decoding takes the floor, the upper bound mapping
to ``ub - 1``.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import numpy as np

from tfnas.checks import check_int, check_num_classes, check_rng, positive_int
from tfnas.registry import register_space
from tfnas.spaces.base import GraphSpace
from tfnas.spaces.darts.genotype import FULL_CONCAT, NUM_NODES, OP_ID, OPS, PRESETS, DartsGenotype, Pair, parse_genotype
from tfnas.spaces.darts.network import DartsNetwork, count_network_params

__all__ = ["CELL_GRAPH_NODES", "GRAPH_OPS", "VECTOR_SIZE", "DartsSpace", "vector_bounds"]

#: Length of the RelativeNAS vector encoding: 2 cells x 4 nodes x (input, op) x 2.
VECTOR_SIZE = 2 * NUM_NODES * 4

# ---- vector encoding ------------------------------------------------------------------------


def vector_bounds() -> Tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` float64 ``[32]``: inputs of node ``j`` in ``[0, 2 + j]``, ops in ``[0, 7]``."""
    upper = np.zeros(VECTOR_SIZE)
    for cell in range(2):
        for node in range(NUM_NODES):
            base = cell * 4 * NUM_NODES + 4 * node
            upper[base : base + 4] = (2 + node, len(OPS), 2 + node, len(OPS))
    return np.zeros(VECTOR_SIZE), upper


# ---- graph view -----------------------------------------------------------------------------

#: Node labels of the op-on-node graph (normal and reduction ops are distinct labels).
GRAPH_OPS: Tuple[str, ...] = ("input_prev_prev", "input_prev", "add", "output") + tuple(
    f"{kind}_{op}" for kind in ("normal", "reduce") for op in OPS
)
#: Graph nodes per cell: 2 inputs, 4 x (op_a, op_b, add), 1 output.
CELL_GRAPH_NODES = 2 + 3 * NUM_NODES + 1


def _cell_graph(pairs: Sequence[Pair], concat: Sequence[int], kind: str) -> Tuple[np.ndarray, List[int]]:
    n = CELL_GRAPH_NODES
    adj = np.zeros((n, n), np.float32)
    labels = [GRAPH_OPS.index("input_prev_prev"), GRAPH_OPS.index("input_prev")]
    state_node = {0: 0, 1: 1}
    for node in range(NUM_NODES):
        add = 2 + 3 * node + 2
        for slot in range(2):
            op, src = pairs[2 * node + slot]
            op_node = 2 + 3 * node + slot
            labels.append(GRAPH_OPS.index(f"{kind}_{op}"))
            adj[state_node[src], op_node] = 1.0
            adj[op_node, add] = 1.0
        labels.append(GRAPH_OPS.index("add"))
        state_node[2 + node] = add
    labels.append(GRAPH_OPS.index("output"))
    for state in concat:
        adj[state_node[state], n - 1] = 1.0
    return adj, labels


def stack_sizes(space: Any, owner: str, num_classes: Any, channels: Any, layers: Any) -> Tuple[int, int, int]:
    """``(num_classes, channels, layers)`` of a cell-stack network's parameter count, checked as the network
    checks them (0 channels or layers: the space's own)."""
    num_classes = check_num_classes(num_classes, owner)
    channels = check_int(channels, "channels", owner, low=0) or space.channels
    layers = check_int(layers, "layers", owner, low=0) or space.layers
    if layers < 3:
        raise ValueError(f"{owner}: `layers` must be >= 3 (two reduction cells). Received: layers={layers}")
    return num_classes, channels, layers


@register_space("darts")
class DartsSpace(GraphSpace[DartsGenotype]):
    """The DARTS cell space with the RelativeNAS encoding and the DARTS CIFAR network.

    Args:
        channels: initial channels ``C`` of the evaluation network (CIFAR: 36).
        layers: cells of the evaluation network (CIFAR: 20); reductions at ``layers // 3``
            and ``2 * layers // 3``.
        search_channels: ``C`` of the weight-sharing search network (RelativeNAS: 16).
        search_layers: cells of the search network (RelativeNAS: 8).
        auxiliary: evaluation networks get the auxiliary head by default.

    Example:
        >>> space = DartsSpace()
        >>> space.num_params(space.decode("darts_v2"))
        3349342
    """

    name = "darts"
    ops = OPS
    #: Options of :meth:`build` for the network a zero-shot proxy scores: without the auxiliary
    #: head, which only adds a training loss.
    proxy_build_options = {"auxiliary": False}

    def __init__(self, channels: int = 36, layers: int = 20, search_channels: int = 16, search_layers: int = 8,
                 auxiliary: bool = True):
        for key, value in (("channels", channels), ("layers", layers), ("search_channels", search_channels),
                           ("search_layers", search_layers)):
            positive_int(value, key, "DartsSpace")
        if layers < 3 or search_layers < 3:
            raise ValueError(f"DartsSpace: networks need at least 3 cells (two are reductions). Received: "
                             f"layers={layers}, search_layers={search_layers}")
        self.channels, self.layers = int(channels), int(layers)
        self.search_channels, self.search_layers = int(search_channels), int(search_layers)
        if not isinstance(auxiliary, (bool, np.bool_)):  # (bool('no') is True)
            raise TypeError(f"DartsSpace: auxiliary must be True or False. Received: auxiliary={auxiliary!r}")
        self.auxiliary = bool(auxiliary)


    def __repr__(self) -> str:
        return (f"DartsSpace(channels={self.channels}, layers={self.layers}, search_channels={self.search_channels}, "
                f"search_layers={self.search_layers}, auxiliary={self.auxiliary})")

    # ---- strings --------------------------------------------------------------------------

    def encode(self, arch: DartsGenotype) -> str:
        """The canonical ``Genotype(...)`` text (lists, not ranges)."""
        return str(self._check_arch(arch))

    def decode(self, text: str) -> DartsGenotype:
        """Parses a ``Genotype(...)`` text or a preset name (``relativenas``, ``darts_v2``)."""
        if isinstance(text, str) and text.strip().lower() in PRESETS:
            return PRESETS[text.strip().lower()]
        return parse_genotype(text)

    # ---- vector encoding ------------------------------------------------------------------

    @staticmethod
    def bounds() -> Tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of the 32-dim encoding (see :func:`vector_bounds`)."""
        return vector_bounds()

    @staticmethod
    def from_vector(x: Sequence[float]) -> DartsGenotype:
        """Decodes a real vector ``[32]``: ``floor`` of each entry, clipped into ``[0, ub - 1]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (VECTOR_SIZE,) or not np.all(np.isfinite(x)):
            raise ValueError(f"a RelativeNAS encoding is a finite vector of shape ({VECTOR_SIZE},); got shape {x.shape}")
        lower, upper = vector_bounds()
        ints = np.clip(np.floor(x), lower, upper - 1).astype(np.int64)
        cells = []
        for cell in range(2):
            pairs = []
            for k in range(2 * NUM_NODES):
                src, op = ints[cell * 4 * NUM_NODES + 2 * k], ints[cell * 4 * NUM_NODES + 2 * k + 1]
                pairs.append((OPS[op], int(src)))
            cells.append(tuple(pairs))
        return DartsGenotype(cells[0], FULL_CONCAT, cells[1], FULL_CONCAT)

    def to_vector(self, arch: DartsGenotype) -> np.ndarray:
        """The centre of ``arch``'s box in the encoding: ``integer + 0.5`` per entry, float64 ``[32]``.

        Raises:
            ValueError: the genotype does not concatenate all four nodes (not encodable).
        """
        arch = self._check_arch(arch)
        if arch.normal_concat != FULL_CONCAT or arch.reduce_concat != FULL_CONCAT:
            raise ValueError(f"only genotypes with concat {list(FULL_CONCAT)} have a RelativeNAS encoding; got {arch}")
        values = [v for cell in (arch.normal, arch.reduce) for op, src in cell for v in (src, OP_ID[op])]
        return np.asarray(values, np.float64) + 0.5

    @staticmethod
    def to_ids(arch: DartsGenotype) -> np.ndarray:
        """int32 ``[2, 4, 2, 2]``: ``[cell (normal, reduce), node, slot, (input, op id)]`` (supernet input)."""
        out = np.zeros((2, NUM_NODES, 2, 2), np.int32)
        for c, cell in enumerate((arch.normal, arch.reduce)):
            for k, (op, src) in enumerate(cell):
                out[c, k // 2, k % 2] = (src, OP_ID[op])
        return out

    # ---- sampling -------------------------------------------------------------------------

    def sample_vector(self, rng: np.random.Generator) -> np.ndarray:
        """A vector uniform in the encoding's box, float64 ``[32]`` (RelativeNAS initial population)."""
        lower, upper = vector_bounds()
        return lower + (upper - lower) * rng.random(VECTOR_SIZE)

    def sample(self, rng: np.random.Generator) -> DartsGenotype:
        """Uniform over genotypes: each input and op uniform and independent (concat ``[2, 3, 4, 5]``)."""
        check_rng(rng, "DartsSpace.sample")
        return self.from_vector(self.sample_vector(rng))

    def mutate(self, arch: DartsGenotype, rng: np.random.Generator) -> DartsGenotype:
        """Changes one uniformly chosen input or op (among the 32 entries) to another valid value."""
        check_rng(rng, "DartsSpace.mutate")
        arch = self._check_arch(arch)
        ints = np.floor(self.to_vector(arch)).astype(np.int64)
        _, upper = vector_bounds()
        k = int(rng.integers(VECTOR_SIZE))
        ints[k] = (ints[k] + int(rng.integers(1, int(upper[k])))) % int(upper[k])
        mutated = self.from_vector(ints + 0.5)
        return DartsGenotype(mutated.normal, arch.normal_concat, mutated.reduce, arch.reduce_concat)

    # ---- graph view -----------------------------------------------------------------------

    def to_graph(self, arch: DartsGenotype) -> Tuple[np.ndarray, np.ndarray]:
        """Op-on-node graph of both cells: ``(adj [30, 30] float32, ops [30, 18] float32 one-hot)``.

        Nodes ``0..14`` are the normal cell, ``15..29`` the reduction cell, each laid out as
        ``[c_{k-2}, c_{k-1}, (op_a, op_b, add) x 4, output]``; ``adj[i, j] = 1`` for an edge
        ``i -> j`` (state -> op -> add -> output for states in ``concat``), no self loops. Labels
        come from :data:`GRAPH_OPS`; normal and reduction ops have distinct labels.
        """
        arch = self._check_arch(arch)
        n = CELL_GRAPH_NODES
        adj = np.zeros((2 * n, 2 * n), np.float32)
        labels: List[int] = []
        for c, kind in enumerate(("normal", "reduce")):
            pairs, concat = arch.cell(reduction=c == 1)
            cell_adj, cell_labels = _cell_graph(pairs, concat, kind)
            adj[c * n : (c + 1) * n, c * n : (c + 1) * n] = cell_adj
            labels.extend(cell_labels)
        return adj, np.eye(len(GRAPH_OPS), dtype=np.float32)[labels]

    # ---- cost model and networks ------------------------------------------------------------

    def num_params(self, arch: DartsGenotype, num_classes: int = 10, auxiliary: bool = False,
                   channels: int = 0, layers: int = 0) -> int:
        """Trainable parameters of ``build(arch, num_classes)`` (BatchNorm gamma/beta included).

        Without the auxiliary head this is the figure DARTS-style papers report (their
        ``count_parameters_in_MB`` skips it): 3,349,342 for DARTS-V2 and 3,928,222 (3.93 M) for
        the RelativeNAS cell at ``C=36``, 20 cells, 10 classes.

        Args:
            auxiliary: include the auxiliary head.
            channels, layers: override the space's evaluation width / depth (0 = the space's).
        """
        arch = self._check_arch(arch)
        num_classes, channels, layers = stack_sizes(self, "DartsSpace.num_params", num_classes, channels, layers)
        return count_network_params(arch, num_classes, channels, layers, auxiliary)

    def build(self, arch: DartsGenotype, num_classes: int, input_shape: Tuple[int, int, int] = (32, 32, 3),
              **kwargs: Any):
        """The DARTS CIFAR evaluation network of ``arch`` (a built :class:`~tfnas.spaces.darts.network.DartsNetwork`).

        Keyword args:
            drop_path_rate: ``None`` (no DropPath layers) or the initial rate in ``[0, 1)`` of
                the DropPath after every non-identity op (the Trainer ramps it each epoch).
            auxiliary: add the auxiliary head (default: the space's ``auxiliary``); the model then
                returns ``(logits, aux_logits)`` when called with ``training=True``.
            channels, layers: override the space's ``channels`` / ``layers``.
            seed: optional int seeding the DropPath layers.
            name: model name (default ``"darts"``).
        """
        arch = self._check_arch(arch)
        allowed = {"drop_path_rate", "auxiliary", "channels", "layers", "seed", "name"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"DartsSpace.build got unexpected keyword argument(s) {unknown}; supported: {sorted(allowed)}")
        model = DartsNetwork(
            genotype=str(arch),
            num_classes=num_classes,
            image_shape=tuple(input_shape),
            channels=kwargs.get("channels") or self.channels,
            layers=kwargs.get("layers") or self.layers,
            auxiliary=self.auxiliary if kwargs.get("auxiliary") is None else bool(kwargs["auxiliary"]),
            drop_path_rate=kwargs.get("drop_path_rate"),
            seed=kwargs.get("seed"),
            name=kwargs.get("name", "darts"),
        )
        model.build((None,) + tuple(input_shape))
        return model

    @staticmethod
    def _check_arch(arch: Any) -> DartsGenotype:
        if not isinstance(arch, DartsGenotype):
            raise TypeError(f"expected a DartsGenotype, got {type(arch).__name__}; parse strings with DartsSpace.decode")
        return arch

