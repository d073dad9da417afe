"""The SLNAS light-weight ("Lite") cell space: architectures (``arch``, imports nothing else of
tfnas but ``checks``), Keras ops (``ops``), the cell (``cell``), the network (``network``) and the
space (``space``, registered as ``lite``)."""

from tfnas.spaces.lite.arch import (
    CELL_LENGTH,
    NUM_NODES,
    OPS,
    PRESETS,
    LiteArch,
    check_cell,
    describe_arch,
    from_ids,
    parse_arch,
    to_ids,
)
from tfnas.spaces.lite.cell import LiteCell, cell_params
from tfnas.spaces.lite.network import LiteNetwork, count_network_params, stage_layout
from tfnas.spaces.lite.ops import (
    BlurPool,
    Conv1x1PoolBN,
    ReflectConvBN,
    ShuffleUnit,
    SqueezeExcite,
    channel_shuffle,
    make_op,
    op_params,
)
from tfnas.spaces.lite.space import GRAPH_OPS, LiteSpace, entry_bounds

__all__ = [
    "CELL_LENGTH",
    "GRAPH_OPS",
    "NUM_NODES",
    "OPS",
    "PRESETS",
    "BlurPool",
    "Conv1x1PoolBN",
    "LiteArch",
    "LiteCell",
    "LiteNetwork",
    "LiteSpace",
    "ReflectConvBN",
    "ShuffleUnit",
    "SqueezeExcite",
    "cell_params",
    "channel_shuffle",
    "check_cell",
    "count_network_params",
    "describe_arch",
    "entry_bounds",
    "from_ids",
    "make_op",
    "op_params",
    "parse_arch",
    "stage_layout",
    "to_ids",
]
