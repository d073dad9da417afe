"""The DARTS cell space as RelativeNAS uses it: genotypes (``genotype``, imports nothing else of
tfnas), the space with its vector encoding (``space``), the CIFAR evaluation network
(``network``) and the weight-sharing supernet (``supernet`` with ``supernet_storage`` and
``supernet_slots``)."""

from tfnas.spaces.darts.genotype import (
    FULL_CONCAT,
    NUM_NODES,
    OPS,
    PRESETS,
    DartsGenotype,
    describe_genotype,
    parse_genotype,
)
from tfnas.spaces.darts.network import (
    AuxiliaryHeadCIFAR,
    DartsCell,
    DartsNetwork,
    count_network_params,
    make_op,
    op_params,
    reduction_layers,
)
from tfnas.spaces.darts.space import GRAPH_OPS, VECTOR_SIZE, DartsSpace, vector_bounds
from tfnas.spaces.darts.supernet import DartsSupernet
from tfnas.spaces.darts.supernet_storage import NUM_EDGES, edge_index, used_ops

__all__ = [
    "FULL_CONCAT",
    "GRAPH_OPS",
    "NUM_EDGES",
    "NUM_NODES",
    "OPS",
    "PRESETS",
    "VECTOR_SIZE",
    "AuxiliaryHeadCIFAR",
    "DartsCell",
    "DartsGenotype",
    "DartsNetwork",
    "DartsSpace",
    "DartsSupernet",
    "count_network_params",
    "describe_genotype",
    "edge_index",
    "make_op",
    "op_params",
    "parse_genotype",
    "reduction_layers",
    "used_ops",
    "vector_bounds",
]
