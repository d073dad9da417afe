"""The Zen-NAS search space (MasterNet super-block strings) and its analytic measures.

Zen-NAS (Lin et al., ICCV 2021, https://arxiv.org/abs/2102.01063) searches chains of
super-blocks (:mod:`tfnas.spaces.zen_blocks`) by evolution from a start string, mutating one
block at a time; Incorporated-NAS (Electronics 13(16):3325, 2024) adds a structural entropy
term and an *effectiveness* filter. This module holds the space (sampling, mutation,
splitting, strings, builder) and the measures computed from the structure alone, without
building a model: parameters, FLOPs, layers, entropy and effectiveness.

Facts read from the public code (``idstcv/ZenNAS``, ``SeoulTech-HCIRLab/IncorporatedNAS``)
and where this module departs from it:

- Mutation draws the new block uniformly from the reference candidate set (type x cout x L x
  bottleneck) but never returns the block unchanged, so ``mutate`` always changes the arch.
  Conv blocks change ``cout`` only and keep ``L`` (the reference resets it to 1; start
  strings have ``L = 1`` there anyway). In the ``mobile`` family the 1x1 conv blocks (the
  head) are fixed, as in the reference ``search_space_IDW_fixfc``.
- ``split_long_blocks`` splits ``L >= 6`` into ``3 + (L - 3)`` (Incorporated-NAS code);
  Zen-NAS' own code writes ``3 + 3``, dropping layers when ``L = 7``.
- Entropy and effectiveness follow the unit bookkeeping of the Incorporated-NAS code; feature
  sizes are the true convolution output sizes (the reference's ``H // stride`` differs only
  for odd sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tfnas.registry import register_space
from tfnas.spaces.base import SearchSpace
from tfnas.spaces.zen_blocks import (
    BOTTLENECK_KINDS,
    IDW_KINDS,
    RES_KINDS,
    ZenArch,
    ZenBlock,
    block_units,
    build_zen_model,
    check_arch,
    format_arch,
    parse_arch,
    round_channels,
)

__all__ = [
    "CHANNEL_FACTORS",
    "DEFAULT_START",
    "FAMILY_KINDS",
    "ZenSpace",
    "channel_choices",
    "depth_penalty",
    "effectiveness",
    "entropy",
    "flops",
    "layer_choices",
    "num_layers",
    "num_params",
    "passes_effectiveness_filter",
    "split_long_blocks",
]

#: The CIFAR start string of the Zen-NAS / Incorporated-NAS searches (``scripts/*_cifar_params1M.sh``).
DEFAULT_START = (
    "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)SuperResK3K3(16,32,2,16,1)"
    "SuperResK3K3(32,64,2,32,1)SuperResK3K3(64,64,2,32,1)SuperConvK1BNRELU(64,128,1,1)"
)
#: Residual block types a mutation may draw, per family (``search_space_XXBL`` / ``_IDW_fixfc``).
FAMILY_KINDS = {"resnet": BOTTLENECK_KINDS + RES_KINDS, "mobile": IDW_KINDS}
#: Width multipliers of a mutation (cout and bottleneck), before rounding to a multiple of 8.
CHANNEL_FACTORS = (2.5, 2.0, 1.5, 1.25, 1.0, 1 / 1.25, 1 / 1.5, 1 / 2.0, 1 / 2.5)
MIN_CHANNELS = 8
MAX_CHANNELS = 2048
#: Blocks with at least this many sub-layers are split (Zen-NAS ``split_layer_threshold``).
SPLIT_THRESHOLD = 6
#: Weight of the depth-unevenness penalty in the entropy (Incorporated-NAS ``depth_penalty_ratio``).
DEPTH_PENALTY = 10.0

_COUNTS = ("reference", "trainable", "all")
_FLOP_COUNTS = ("macs", "reference")


def channel_choices(channels: int) -> Tuple[int, ...]:
    """Widths a mutation may give a block of ``channels``: ``channels * f`` for each factor in
    :data:`CHANNEL_FACTORS`, clipped to [8, 2048] and rounded to a multiple of 8; distinct, descending."""
    values = {round_channels(min(MAX_CHANNELS, max(MIN_CHANNELS, channels * f))) for f in CHANNEL_FACTORS}
    return tuple(sorted(values, reverse=True))


def layer_choices(sub_layers: int) -> Tuple[int, ...]:
    """Sub-layer counts a mutation may give: ``L - 2 .. L + 2``, at least 1; distinct, descending."""
    return tuple(sorted({n for n in range(sub_layers - 2, sub_layers + 3) if n >= 1}, reverse=True))


def split_long_blocks(arch: Sequence[ZenBlock], threshold: int = SPLIT_THRESHOLD) -> ZenArch:
    """Splits each residual block with ``L >= threshold`` into ``L = t // 2`` and ``L - t // 2``.

    With the default threshold 6 a block ``(cin, cout, s, b, L)`` becomes ``(cin, cout, s, b,
    3)`` followed by ``(cout, cout, 1, b, L - 3)`` (one pass, as in the Incorporated-NAS code).
    Conv blocks are never split.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 2:
        raise ValueError(f"split_long_blocks: `threshold` must be an integer >= 2. Received: threshold={threshold!r}")
    out: List[ZenBlock] = []
    for block in check_arch(arch):
        if block.is_conv or block.sub_layers < threshold:
            out.append(block)
            continue
        head = threshold // 2
        out.append(block.replace(sub_layers=head))
        out.append(block.replace(cin=block.cout, stride=1, sub_layers=block.sub_layers - head))
    return tuple(out)


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
    _check_choice(count, _COUNTS, "count")
    _check_positive(num_classes, "num_classes")
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
    _check_choice(count, _FLOP_COUNTS, "count")
    _check_positive(resolution, "resolution")
    _check_positive(num_classes, "num_classes")
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
    _check_positive(resolution, "resolution")
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
    if isinstance(max_rho, bool) or not isinstance(max_rho, (int, float)) or max_rho < 0:
        raise ValueError(f"max_rho must be a non-negative number. Received: max_rho={max_rho!r}")
    return effectiveness(arch) <= max_rho


def _check_choice(value: Any, choices: Tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(choices)}. Received: {name}={value!r}")


def _check_positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@register_space("zen")
class ZenSpace(SearchSpace[ZenArch]):
    """The Zen-NAS MasterNet space: a start string, its mutations, and analytic measures.

    Architectures are tuples of :class:`~tfnas.spaces.zen_blocks.ZenBlock`; ``encode`` /
    ``decode`` use the reference block strings.

    Args:
        start: the start architecture string (empty: :data:`DEFAULT_START`, the CIFAR start).
        family: ``"resnet"`` (K1KxK1 and KxKx residual blocks) or ``"mobile"`` (IDW blocks).
        resolution: input side in pixels (the default of ``flops`` and ``entropy``).
        num_classes: classifier outputs (the default of ``build``, ``num_params``, ``flops``).

    Example:
        >>> space = ZenSpace()
        >>> arch = space.decode(DEFAULT_START)
        >>> space.num_params(arch), space.num_layers(arch)
        (90201, 6)
        >>> space.mutate(arch, np.random.default_rng(0)) != arch
        True
    """

    name = "zen"
    #: Options of :meth:`build` for the network a zero-shot proxy scores: the Zen-NAS search
    #: scores every proxy on the residual-free network (``no_reslink=True`` in the reference).
    proxy_build_options = {"residual": False}

    def __init__(self, start: str = "", family: str = "resnet", resolution: int = 32, num_classes: int = 10):
        if not isinstance(start, str):
            raise TypeError(f"ZenSpace: `start` must be a block string. Received: start={start!r}")
        if family not in FAMILY_KINDS:
            raise ValueError(f"ZenSpace: `family` must be one of {', '.join(FAMILY_KINDS)}. "
                             f"Received: family={family!r}")
        _check_positive(resolution, "resolution")
        _check_positive(num_classes, "num_classes")
        self.start = start or DEFAULT_START
        self.start_arch: ZenArch = parse_arch(self.start)
        self.family = family
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)

    @classmethod
    def from_config(cls, cfg: Any) -> "ZenSpace":
        """``[space] start``, ``[space] family``, ``[dataset] image_size`` (0: the dataset's native
        side where it has one, else 32) and the dataset's class count (10 when unknown)."""
        from tfnas.config import ConfigError
        from tfnas.registry import DATASETS

        num_classes, size = 10, 32
        if cfg.dataset.name in DATASETS:
            source = DATASETS.get(cfg.dataset.name)
            num_classes = int(getattr(source, "num_classes", 0) or 10)
            native = getattr(source, "image_shape", None)
            size = int(native[0]) if native else int(getattr(source, "default_size", 0) or 32)
        size = cfg.dataset.image_size or size
        try:
            return cls(start=cfg.space.start, family=cfg.space.family, resolution=size, num_classes=num_classes)
        except ValueError as exc:
            raise ConfigError(f"{cfg.source or '<defaults>'}: [space] start / family: {exc}") from None

    def __repr__(self) -> str:
        return (f"ZenSpace(start={self.start!r}, family={self.family!r}, resolution={self.resolution}, "
                f"num_classes={self.num_classes})")

    # ---- strings ------------------------------------------------------------------------

    def encode(self, arch: ZenArch) -> str:
        """The block string, e.g. ``SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)...``."""
        return format_arch(arch)

    def decode(self, text: str) -> ZenArch:
        """Parses a block string strictly; ``ValueError`` names the offending block."""
        return parse_arch(text)

    # ---- sampling and mutation ------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> ZenArch:
        """1-3 single-block mutations of the start architecture (uniform count), then splitting."""
        arch = self.start_arch
        for _ in range(int(rng.integers(1, 4))):
            arch = self.mutate(arch, rng)
        return split_long_blocks(arch)

    def mutate(self, arch: ZenArch, rng: np.random.Generator, num_blocks: int = 1) -> ZenArch:
        """Replaces ``num_blocks`` distinct, uniformly chosen blocks by mutated ones.

        A residual block gets a type from the family (:data:`FAMILY_KINDS`), ``cout`` and
        bottleneck from :func:`channel_choices` and ``L`` from :func:`layer_choices`, drawn
        uniformly from that product without the block itself; a conv block changes ``cout``
        only. ``cin`` and stride are kept and the next block's ``cin`` follows the new
        ``cout``. The result always differs from ``arch``. Long blocks are not split here
        (see :func:`split_long_blocks`).
        """
        arch = check_arch(arch)
        _check_positive(num_blocks, "num_blocks")
        mutable = [i for i, block in enumerate(arch) if self._mutable(block)]
        if not mutable:
            raise ValueError(f"ZenSpace.mutate: no block of {format_arch(arch)!r} can change in the "
                             f"{self.family!r} family")
        picked = rng.choice(len(mutable), size=min(num_blocks, len(mutable)), replace=False)
        blocks = list(arch)
        for k in sorted(int(p) for p in picked):
            blocks[mutable[k]] = self._mutate_block(blocks[mutable[k]], rng)
        for i in range(1, len(blocks)):
            if blocks[i].cin != blocks[i - 1].cout:
                blocks[i] = blocks[i].replace(cin=blocks[i - 1].cout)
        return tuple(blocks)

    def _mutable(self, block: ZenBlock) -> bool:
        if block.is_conv:
            if self.family == "mobile" and block.kernel == 1:
                return False  # the head conv of the mobile space is fixed (reference "fixfc")
            return any(c != block.cout for c in channel_choices(block.cout))
        return True

    def _mutate_block(self, block: ZenBlock, rng: np.random.Generator) -> ZenBlock:
        if block.is_conv:
            options = [c for c in channel_choices(block.cout) if c != block.cout]
            return block.replace(cout=options[int(rng.integers(len(options)))])
        kinds = FAMILY_KINDS[self.family]
        couts = channel_choices(block.cout)
        layers = layer_choices(block.sub_layers)
        widths = channel_choices(block.bottleneck)
        while True:  # uniform over the product without the block itself (the product has >= 6 entries)
            new = block.replace(
                kind=kinds[int(rng.integers(len(kinds)))],
                cout=couts[int(rng.integers(len(couts)))],
                sub_layers=layers[int(rng.integers(len(layers)))],
                bottleneck=widths[int(rng.integers(len(widths)))],
            )
            if new != block:
                return new

    def split_long_blocks(self, arch: ZenArch) -> ZenArch:
        """See :func:`split_long_blocks`."""
        return split_long_blocks(arch)

    # ---- analytic measures ----------------------------------------------------------------

    def num_params(self, arch: ZenArch, num_classes: Optional[int] = None, count: str = "reference") -> int:
        """See :func:`num_params` (``num_classes`` defaults to the space's)."""
        return num_params(arch, self.num_classes if num_classes is None else num_classes, count)

    def flops(self, arch: ZenArch, resolution: Optional[int] = None, num_classes: Optional[int] = None,
              count: str = "macs") -> int:
        """See :func:`flops` (``resolution`` and ``num_classes`` default to the space's)."""
        return flops(arch, self.resolution if resolution is None else resolution,
                     self.num_classes if num_classes is None else num_classes, count)

    def num_layers(self, arch: ZenArch) -> int:
        """See :func:`num_layers`."""
        return num_layers(arch)

    def entropy(self, arch: ZenArch, resolution: Optional[int] = None) -> float:
        """See :func:`entropy` (``resolution`` defaults to the space's)."""
        return entropy(arch, self.resolution if resolution is None else resolution)

    def effectiveness(self, arch: ZenArch) -> float:
        """See :func:`effectiveness`."""
        return effectiveness(arch)

    def passes_filter(self, arch: ZenArch, max_rho: float = 0.5) -> bool:
        """See :func:`passes_effectiveness_filter`."""
        return passes_effectiveness_filter(arch, max_rho)

    # ---- Keras model ----------------------------------------------------------------------

    def build(self, arch: ZenArch, num_classes: Optional[int] = None,
              input_shape: Optional[Tuple[int, int, int]] = None, **kwargs: Any) -> keras.Model:
        """The MasterNet of ``arch`` (blocks -> GAP -> Dense); see :func:`build_zen_model`.

        ``num_classes`` defaults to the space's and ``input_shape`` to ``(resolution,
        resolution, arch[0].cin)``. Keyword arguments: ``residual`` (default True), ``se``,
        ``drop_path_rate``, ``seed``, ``name``.
        """
        arch = check_arch(arch)
        allowed = {"residual", "se", "drop_path_rate", "seed", "name"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"ZenSpace.build got unexpected keyword argument(s) {unknown}; "
                            f"supported: {', '.join(sorted(allowed))}")
        if input_shape is None:
            input_shape = (self.resolution, self.resolution, arch[0].cin)
        return build_zen_model(arch, self.num_classes if num_classes is None else num_classes,
                               tuple(input_shape), **kwargs)
