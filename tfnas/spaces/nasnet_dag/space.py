"""The NASNet-DAG space (``nasnet_dag``): NAG's cell pairs as a searchable, buildable space."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from tfnas.checks import check_rng, is_number, positive_int
from tfnas.registry import register_space
from tfnas.spaces.base import GraphSpace
from tfnas.spaces.darts.space import stack_sizes
from tfnas.spaces.nasnet_dag.arch import NASNET_DAG, NasnetDagArch, mutate_cell, parse_arch, sample_cell
from tfnas.spaces.nasnet_dag.network import NasnetDagNetwork, count_network_params

__all__ = ["NasnetDagSpace"]


@register_space("nasnet_dag")
class NasnetDagSpace(GraphSpace[NasnetDagArch]):
    """Pairs of NASNet-style DAG cells (:mod:`tfnas.spaces.nasnet_dag.arch`) and their CIFAR network.

    Args:
        channels, layers: ``C`` and cells of the evaluation network (NAG final training: 36, 20 = N 6).
        search_channels, search_layers: the single-path supernet's (NAG: 20, 11 = N 3).
        auxiliary: evaluation networks get the auxiliary head by default. dropout: before the classifier.

    Example:
        >>> space = NasnetDagSpace()
        >>> arch = space.decode("12340:0>2,1>3,2>3,3>4 / 1250:0>2,1>2,2>3")
        >>> net = space.build(arch, 10).inference_model()
        >>> space.num_params(arch) == sum(int(np.prod(v.shape)) for v in net.trainable_weights)
        True
    """

    name = "nasnet_dag"
    proxy_build_options = {"auxiliary": False, "dropout": 0.0}  # zero-cost proxies run in training mode

    def __init__(self, channels: int = 36, layers: int = 20, search_channels: int = 20, search_layers: int = 11,
                 auxiliary: bool = True, dropout: float = 0.0):
        for key, value in (("channels", channels), ("layers", layers), ("search_channels", search_channels),
                           ("search_layers", search_layers)):
            positive_int(value, key, "NasnetDagSpace")
        if layers < 3 or search_layers < 3:
            raise ValueError(f"NasnetDagSpace: networks need at least 3 cells (two are reductions). Received: "
                             f"layers={layers}, search_layers={search_layers}")
        if channels % 2 or search_channels % 2:
            raise ValueError(f"NasnetDagSpace: channels must be even (FactorizedReduce halves them). Received: "
                             f"channels={channels}, search_channels={search_channels}")
        self.channels, self.layers = int(channels), int(layers)
        self.search_channels, self.search_layers = int(search_channels), int(search_layers)
        if not isinstance(auxiliary, (bool, np.bool_)):  # (bool('no') is True)
            raise TypeError(f"NasnetDagSpace: auxiliary must be True or False. Received: auxiliary={auxiliary!r}")
        if not is_number(dropout) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"NasnetDagSpace: dropout must be a number in [0, 1). Received: dropout={dropout!r}")
        self.auxiliary, self.dropout = bool(auxiliary), float(dropout)

    def __repr__(self) -> str:
        return (f"NasnetDagSpace(channels={self.channels}, layers={self.layers}, search_channels="
                f"{self.search_channels}, search_layers={self.search_layers}, auxiliary={self.auxiliary}"
                # (named only when set: the repr keys caches, which a dropout of 0 leaves as they were)
                f"{f', dropout={self.dropout}' if self.dropout else ''})")

    def encode(self, arch: NasnetDagArch) -> str:
        return str(self._check_arch(arch))

    def decode(self, text: str) -> NasnetDagArch:
        """Parses ``"<normal> / <reduction>"`` (see :mod:`tfnas.spaces.nasnet_dag.arch`)."""
        return parse_arch(text)

    def sample(self, rng: np.random.Generator) -> NasnetDagArch:
        check_rng(rng, "NasnetDagSpace.sample")
        return NasnetDagArch(sample_cell(rng), sample_cell(rng))

    def mutate(self, arch: NasnetDagArch, rng: np.random.Generator) -> NasnetDagArch:
        check_rng(rng, "NasnetDagSpace.mutate")
        arch = self._check_arch(arch)
        if rng.random() < 0.5:
            return NasnetDagArch(mutate_cell(arch.normal, rng), arch.reduction)
        return NasnetDagArch(arch.normal, mutate_cell(arch.reduction, rng))

    def to_graph(self, arch: NasnetDagArch) -> Tuple[np.ndarray, np.ndarray]:
        """Both cells side by side, padded to ``2 * 10`` nodes (padding rows all zero)."""
        arch = self._check_arch(arch)
        m = NASNET_DAG.max_nodes
        adj = np.zeros((2 * m, 2 * m), np.float32)
        ops = np.zeros((2 * m, NASNET_DAG.num_types), np.float32)
        for c, cell in enumerate((arch.normal, arch.reduction)):
            n = cell.num_nodes
            adj[c * m:c * m + n, c * m:c * m + n] = cell.adjacency()
            ops[np.arange(c * m, c * m + n), list(cell.types)] = 1.0
        return adj, ops

    def num_params(self, arch: NasnetDagArch, num_classes: int = 10, auxiliary: bool = False, channels: int = 0,
                   layers: int = 0) -> int:
        """Trainable parameters of ``build(arch, num_classes)`` without (default) or with the auxiliary head."""
        arch = self._check_arch(arch)
        owner = "NasnetDagSpace.num_params"
        num_classes, channels, layers = stack_sizes(self, owner, num_classes, channels, layers)
        if channels % 2:  # (as the constructor refuses it)
            raise ValueError(f"{owner}: `channels` must be even (FactorizedReduce halves them). Received: "
                             f"channels={channels}")
        return count_network_params(arch, num_classes, channels, layers, auxiliary)

    def build(self, arch: NasnetDagArch, num_classes: int, input_shape: Tuple[int, int, int] = (32, 32, 3),
              **kwargs: Any):
        """The evaluation network (:class:`~tfnas.spaces.nasnet_dag.network.NasnetDagNetwork`), built.

        Keyword args: ``drop_path_rate``, ``auxiliary``, ``channels``, ``layers``, ``dropout``, ``seed``, ``name``.
        """
        arch = self._check_arch(arch)
        allowed = {"drop_path_rate", "auxiliary", "channels", "layers", "dropout", "seed", "name"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"NasnetDagSpace.build got unexpected keyword argument(s) {unknown}; "
                            f"supported: {sorted(allowed)}")
        aux, drop = kwargs.get("auxiliary"), kwargs.get("dropout")
        model = NasnetDagNetwork(str(arch), num_classes, tuple(input_shape),
                                 channels=kwargs.get("channels") or self.channels,
                                 layers=kwargs.get("layers") or self.layers,
                                 auxiliary=self.auxiliary if aux is None else bool(aux),
                                 dropout=self.dropout if drop is None else float(drop),
                                 drop_path_rate=kwargs.get("drop_path_rate"), seed=kwargs.get("seed"),
                                 name=kwargs.get("name", "nasnet_dag"))
        model.build((None,) + tuple(input_shape))
        return model

    @staticmethod
    def _check_arch(arch: Any) -> NasnetDagArch:
        if not isinstance(arch, NasnetDagArch):
            raise TypeError(f"expected a NasnetDagArch, got {type(arch).__name__}; parse strings with "
                            f"NasnetDagSpace.decode")
        return arch
