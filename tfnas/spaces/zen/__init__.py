"""Zen-NAS MasterNets: super-blocks (``blocks``), their unit plans (``units``), analytic measures
(``measures``), the Keras network (``network``), the residual-free forward path of zero-shot
scoring (``residual_free``) and the space (``space``)."""

from tfnas.spaces.zen.blocks import (
    ALL_KINDS,
    BOTTLENECK_KINDS,
    CONV_KINDS,
    IDW_KINDS,
    RES_KINDS,
    ZenArch,
    ZenBlock,
    check_arch,
    format_arch,
    parse_arch,
)
from tfnas.spaces.zen.measures import (
    depth_penalty,
    effectiveness,
    entropy,
    flops,
    num_layers,
    num_params,
    passes_effectiveness_filter,
)
from tfnas.spaces.zen.network import ZenSqueezeExcite, build_zen_model
from tfnas.spaces.zen.space import (
    CHANNEL_FACTORS,
    DEFAULT_START,
    FAMILY_KINDS,
    KERNEL_WEIGHTS,
    ZenSpace,
    channel_choices,
    layer_choices,
    reference_kind_weights,
    split_long_blocks,
)
from tfnas.spaces.zen.units import ConvSpec, UnitSpec, arch_units, block_units, conv_layer_names

__all__ = [
    "ALL_KINDS",
    "BOTTLENECK_KINDS",
    "CHANNEL_FACTORS",
    "CONV_KINDS",
    "ConvSpec",
    "DEFAULT_START",
    "FAMILY_KINDS",
    "IDW_KINDS",
    "KERNEL_WEIGHTS",
    "RES_KINDS",
    "UnitSpec",
    "ZenArch",
    "ZenBlock",
    "ZenSpace",
    "ZenSqueezeExcite",
    "arch_units",
    "block_units",
    "build_zen_model",
    "channel_choices",
    "check_arch",
    "conv_layer_names",
    "depth_penalty",
    "effectiveness",
    "entropy",
    "flops",
    "format_arch",
    "layer_choices",
    "num_layers",
    "num_params",
    "parse_arch",
    "passes_effectiveness_filter",
    "reference_kind_weights",
    "split_long_blocks",
]
