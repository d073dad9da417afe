"""Analytic measures of Zen-NAS architectures, computed from the structure alone (no model built).

Parameters, FLOPs, layer counts, and the structural entropy, depth penalty and effectiveness of
Incorporated-NAS (Electronics 13(16):3325, 2024). Entropy and effectiveness follow the unit
bookkeeping of the Incorporated-NAS code (``SeoulTech-HCIRLab/IncorporatedNAS``); feature sizes
are the true convolution output sizes (the reference's ``H // stride`` differs only for odd
sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import numpy as np

from tfnas.checks import is_number, positive_int
from tfnas.spaces.zen.blocks import BOTTLENECK_KINDS, RES_KINDS, ZenArch, ZenBlock, check_arch
from tfnas.spaces.zen.units import block_units

__all__ = [
    "DEPTH_PENALTY",
    "check_choice",
    "depth_penalty",
    "effectiveness",
    "entropy",
    "flops",
    "num_layers",
    "num_params",
    "passes_effectiveness_filter",
]

#: Weight of the depth-unevenness penalty in the entropy (Incorporated-NAS ``depth_penalty_ratio``).
DEPTH_PENALTY = 10.0

_COUNTS = ("reference", "trainable", "all")
_FLOP_COUNTS = ("macs", "reference")


def num_layers(arch: Sequence[ZenBlock]) -> int:
    """Layers as Zen-NAS counts them for ``max_layers``: the sum of ``L`` over blocks."""
    return sum(block.sub_layers for block in check_arch(arch))


def num_params(arch: Sequence[ZenBlock], num_classes: int = 10, count: str = "reference") -> int:
    """Parameters of the network (blocks -> GAP -> Dense), analytic.

    Args:
        arch: the blocks.
        num_classes: classifier outputs.
        count: what to count:

          - ``"reference"`` (the budget of the papers, Zen-NAS ``get_model_size``): conv
            kernels ``k^2 cin cout / groups``, each BN as ``C``, each projection shortcut as
            ``cin cout + cout`` (its BN not counted), the classifier as ``C n + 1`` (the
            reference counts its bias as one parameter);
          - ``"trainable"``: the builder's trainable weights (BN ``gamma, beta`` = ``2C``,
            projection kernel + bias + BN);
          - ``"all"``: ``trainable`` plus the BN moving statistics (``2C`` per BN), i.e.
            ``keras.Model.count_params()`` of ``build(arch)``.

        Squeeze-excitation (``build(se=True)``) is not counted.
    """
    arch = check_arch(arch)
    check_choice(count, _COUNTS, "count")
    positive_int(num_classes, "num_classes")
    per_bn = {"reference": 1, "trainable": 2, "all": 4}[count]
    total = 0
    for block in arch:
        for unit in block_units(block):
            for conv in unit.convs:
                total += conv.params + per_bn * conv.cout
            if unit.residual and unit.projection:
                total += unit.cin * unit.cout + unit.cout
                if count != "reference":
                    total += per_bn * unit.cout
    channels = arch[-1].cout
    bias = 1 if count == "reference" else num_classes
    return int(total + channels * num_classes + bias)


def flops(arch: Sequence[ZenBlock], resolution: int = 32, num_classes: int = 10, count: str = "macs") -> int:
    """Multiply-accumulates of one forward pass on one ``resolution x resolution`` image.

    Args:
        count: ``"macs"`` (default): convolutions ``H_out W_out k^2 cin cout / groups``,
            projection shortcuts ``H_out W_out cin cout`` and the classifier ``C n``; BN, ReLU,
            additions and pooling are free. ``"reference"``: Zen-NAS' ``get_FLOPs`` (the FLOPs
            budget of its searches): as ``macs`` but also ``H W C`` per BN, and projections
            counted as ``(cin cout + cout) (H_out / stride)^2`` (the reference divides the
            already-strided size by the stride again), rounded to an integer.

    Published ZenNet figures (0.5M / 1M / 2M CIFAR models: 140M / 162M / 487M) were measured
    with ``ptflops``, which also counts BN and ReLU elements; ``macs`` is 1-3 % below them.
    """
    arch = check_arch(arch)
    check_choice(count, _FLOP_COUNTS, "count")
    positive_int(resolution, "resolution")
    positive_int(num_classes, "num_classes")
    size = resolution
    total = 0.0
    for block in arch:
        for unit in block_units(block):
            unit_in = size
            for conv in unit.convs:
                out = conv.out_size(size)
                if count == "macs":
                    total += out * out * conv.params
                else:
                    total += conv.cin * conv.cout * conv.kernel ** 2 * size ** 2 // conv.stride ** 2 // conv.groups
                    total += out * out * conv.cout
                size = out
            if unit.residual and unit.projection:
                proj_out = (unit_in - 1) // unit.stride + 1
                if count == "macs":
                    total += proj_out * proj_out * unit.cin * unit.cout
                else:
                    side = size / unit.stride
                    total += (unit.cin * unit.cout + unit.cout) * side * side
    total += arch[-1].cout * num_classes
    return int(round(total))


@dataclass(frozen=True)
class _Stage:
    channels: int  # C_i: output channels at the end of the stage
    size: int  # H_i: feature map side at the end of the stage
    units: int  # units from the network input up to the end of the stage
    convs: int  # convolution layers from the network input up to the end of the stage


def _structure(arch: ZenArch, resolution: int) -> Tuple[List[float], List[float], List[_Stage]]:
    """Per-unit ``h_u`` (sum of ``log sqrt(width)``) and ``log w_u`` (sum of ``log width``) and the stages.

    A stage ends before every stride-2 block other than the first block, and at the last block.
    """
    h: List[float] = []
    log_w: List[float] = []
    stages: List[_Stage] = []
    size, convs, channels = resolution, 0, arch[0].cin
    for index, block in enumerate(arch):
        if index > 0 and block.stride == 2:
            stages.append(_Stage(channels, size, len(h), convs))
        for unit in block_units(block):
            h.append(sum(0.5 * math.log(conv.width) for conv in unit.convs))
            log_w.append(sum(math.log(conv.width) for conv in unit.convs))
            for conv in unit.convs:
                size = conv.out_size(size)
            convs += len(unit.convs)
        channels = block.cout
    stages.append(_Stage(channels, size, len(h), convs))
    return h, log_w, stages


def depth_penalty(arch: Sequence[ZenBlock]) -> float:
    """``DEPTH_PENALTY * exp(std(depths))`` over residual blocks, as the Incorporated-NAS code does it.

    Depths are units per residual block (``L``, or ``2 L`` for K1KxK1 / IDW). When the second
    block of the network is a K1KxK1 block the first two depths are dropped, when it is a
    KxKx block the first one (the reference's "the first block needs <= 3" rule); IDW or conv
    second blocks drop none. ``std`` is the population standard deviation, 0 for no depths.
    """
    arch = check_arch(arch)
    depths = [block.num_units for block in arch if not block.is_conv]
    if len(arch) > 1:
        second = arch[1].kind
        if second in BOTTLENECK_KINDS:
            depths = depths[2:]
        elif second in RES_KINDS:
            depths = depths[1:]
    spread = float(np.std(depths)) if depths else 0.0
    return DEPTH_PENALTY * math.exp(spread)


def entropy(arch: Sequence[ZenBlock], resolution: int = 32) -> float:
    """DeepMAD-style structural entropy ``E`` of Incorporated-NAS, computed from the structure.

    ``E = sum_i (log C_i + log H_i^2) * sum_{u <= end of stage i} h_u  -  10 exp(std(depths))``
    with ``h_u = sum over the convolutions of unit u of log sqrt(cin k^2 / groups)``
    (depthwise: ``log sqrt(k^2)``); stages end before each stride-2 block and at the last
    block, ``C_i`` / ``H_i`` are the channels / feature side there, and the ``h`` sum runs over
    all units from the network input. Depth penalty: see :func:`depth_penalty`.
    Unitless; larger is better (more expressive).
    """
    arch = check_arch(arch)
    positive_int(resolution, "resolution")
    h, _, stages = _structure(arch, resolution)
    total = 0.0
    for stage in stages:
        total += (math.log(stage.channels) + math.log(stage.size ** 2)) * sum(h[:stage.units])
    return total - depth_penalty(arch)


def effectiveness(arch: Sequence[ZenBlock]) -> float:
    """Incorporated-NAS effectiveness ``max_i rho_i``, ``rho_i = L_i / exp(sum_u log w_u / L_i)``.

    ``L_i`` counts convolution layers and the sum runs over units ``u`` from the network input
    to the end of stage ``i`` (stages as in :func:`entropy`); ``w_u`` is the product over the
    unit's convolutions of ``cin k^2 / groups``. Large ``rho`` flags deep, narrow networks.
    """
    arch = check_arch(arch)
    _, log_w, stages = _structure(arch, resolution=32)  # feature sizes play no part in rho
    return max(stage.convs / math.exp(sum(log_w[:stage.units]) / stage.convs) for stage in stages)


def passes_effectiveness_filter(arch: Sequence[ZenBlock], max_rho: float = 0.5) -> bool:
    """The Incorporated-NAS filter: keep ``arch`` only if ``effectiveness(arch) <= max_rho``."""
    if not is_number(max_rho) or max_rho < 0:
        raise ValueError(f"max_rho must be a non-negative number. Received: max_rho={max_rho!r}")
    return effectiveness(arch) <= max_rho


def check_choice(value: Any, choices: Tuple[str, ...], name: str) -> None:
    """``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(choices)}. Received: {name}={value!r}")

