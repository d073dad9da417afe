"""NAS-Bench-201: the cell (``arch``), its official index order (``index``), the op-on-node graph
view (``graph``), the space (``space``), the Keras network (``network``) and the arch-as-tensor
network (``tensor_network``, ``tensor_weights``)."""

from tfnas.spaces.nb201.arch import EDGES, NUM_CELLS, NUM_EDGES, OPS, Nb201Arch
from tfnas.spaces.nb201.graph import GRAPH_ADJACENCY, GRAPH_NODES, GRAPH_OPS
from tfnas.spaces.nb201.network import build_nb201_model
from tfnas.spaces.nb201.space import Nb201Space
from tfnas.spaces.nb201.tensor_network import BN_MODES, Nb201TensorNetwork, ReluTap
from tfnas.spaces.nb201.tensor_weights import CONV_OPS, KERNEL_INITS, op_ids_of, stateless_seed

__all__ = [
    "BN_MODES",
    "CONV_OPS",
    "EDGES",
    "GRAPH_ADJACENCY",
    "GRAPH_NODES",
    "GRAPH_OPS",
    "KERNEL_INITS",
    "NUM_CELLS",
    "NUM_EDGES",
    "OPS",
    "Nb201Arch",
    "Nb201Space",
    "Nb201TensorNetwork",
    "ReluTap",
    "build_nb201_model",
    "op_ids_of",
    "stateless_seed",
]
