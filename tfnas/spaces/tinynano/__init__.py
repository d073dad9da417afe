"""Tiny-NanoBench (Siamese-NAS): the cell (``arch``), its ops (``ops``), the network (``network``)
and the space (``space``)."""

from tfnas.spaces.tinynano.arch import GRAPH_OPS, OPS, TinyNanoArch, canonicalize
from tfnas.spaces.tinynano.network import build_tinynano_model, cell_branch
from tfnas.spaces.tinynano.ops import (
    ChannelHalf,
    ChannelSelfAttention,
    ConvBNAct,
    DepthwiseExpand,
    DWConvBNMish,
    op_cost,
    op_layer,
)
from tfnas.spaces.tinynano.space import TinyNanoSpace

__all__ = [
    "GRAPH_OPS",
    "OPS",
    "ChannelHalf",
    "ChannelSelfAttention",
    "ConvBNAct",
    "DWConvBNMish",
    "DepthwiseExpand",
    "TinyNanoArch",
    "TinyNanoSpace",
    "build_tinynano_model",
    "canonicalize",
    "cell_branch",
    "op_cost",
    "op_layer",
]
