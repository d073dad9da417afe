"""The Zen-NAS search space (MasterNet super-block strings).

Zen-NAS (Lin et al., ICCV 2021, https://arxiv.org/abs/2102.01063) searches chains of
super-blocks (:mod:`tfnas.spaces.zen.blocks`) by evolution from a start string, mutating one
block at a time; Incorporated-NAS (Electronics 13(16):3325, 2024) adds a structural entropy
term and an *effectiveness* filter. This module holds the space (sampling, mutation,
splitting, strings, builder); the measures computed from the structure alone (parameters,
FLOPs, layers, entropy, effectiveness) are in :mod:`tfnas.spaces.zen.measures`.

Facts read from the public code (``idstcv/ZenNAS``, ``SeoulTech-HCIRLab/IncorporatedNAS``)
and where this module departs from it:

- Mutation draws the new block uniformly from the reference candidate set (type x cout x L x
  bottleneck) but never returns the block unchanged, so ``mutate`` always changes the arch.
  Conv blocks change ``cout`` only and keep ``L`` (the reference resets it to 1; start
  strings have ``L = 1`` there anyway). In the ``mobile`` family the 1x1 conv blocks (the
  head) are fixed, as in the reference ``search_space_IDW_fixfc``.
- ``split_long_blocks`` splits ``L >= 6`` into ``3 + (L - 3)`` (Incorporated-NAS code);
  Zen-NAS' own code writes ``3 + 3``, dropping layers when ``L = 7``.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tfnas.registry import register_space
from tfnas.spaces.base import EvolvableSpace
from tfnas.spaces.zen.blocks import (
    BOTTLENECK_KINDS,
    IDW_KINDS,
    RES_KINDS,
    ZenArch,
    ZenBlock,
    check_arch,
    format_arch,
    parse_arch,
    round_channels,
)
from tfnas.spaces.zen.measures import (
    check_positive,
    effectiveness,
    entropy,
    flops,
    num_layers,
    num_params,
    passes_effectiveness_filter,
)
from tfnas.spaces.zen.network import build_zen_model

__all__ = [
    "CHANNEL_FACTORS",
    "DEFAULT_START",
    "FAMILY_KINDS",
    "SPLIT_THRESHOLD",
    "ZenSpace",
    "channel_choices",
    "layer_choices",
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


@register_space("zen")
class ZenSpace(EvolvableSpace[ZenArch]):
    """The Zen-NAS MasterNet space: a start string, its mutations, and analytic measures.

    Architectures are tuples of :class:`~tfnas.spaces.zen.blocks.ZenBlock`; ``encode`` /
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
        check_positive(resolution, "resolution")
        check_positive(num_classes, "num_classes")
        self.start = start or DEFAULT_START
        self.start_arch: ZenArch = parse_arch(self.start)
        self.family = family
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)


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
        check_positive(num_blocks, "num_blocks")
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
