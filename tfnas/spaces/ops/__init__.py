"""Keras layers shared by the cell-based spaces (see each module for conventions).

``common``: ops NAS-Bench-201 and DARTS share, and ``DropPath``; ``nb201``: the NB201 residual
reduction; ``darts``: the DARTS-only ops; ``padding``: PyTorch-style padding arithmetic.
"""

from tfnas.spaces.ops.common import (
    BN_EPSILON,
    BN_MOMENTUM,
    AvgPool3x3,
    DropPath,
    Identity,
    ReLUConvBN,
    Zero,
    mish,
)
from tfnas.spaces.ops.darts import DilConv, FactorizedReduce, MaxPool3x3, SepConv
from tfnas.spaces.ops.nb201 import ResidualReduction
from tfnas.spaces.ops.padding import conv_output_shape

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "AvgPool3x3",
    "DilConv",
    "DropPath",
    "FactorizedReduce",
    "Identity",
    "MaxPool3x3",
    "ReLUConvBN",
    "ResidualReduction",
    "SepConv",
    "Zero",
    "conv_output_shape",
    "mish",
]
