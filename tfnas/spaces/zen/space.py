"""The Zen-NAS search space (MasterNet super-block strings).

Zen-NAS (Lin et al., ICCV 2021, https://arxiv.org/abs/2102.01063) searches chains of
super-blocks (:mod:`tfnas.spaces.zen.blocks`) by evolution from a start string, mutating one
block at a time; Incorporated-NAS (Electronics 13(16):3325, 2024) adds a structural entropy
term and an *effectiveness* filter. This module holds the space (sampling, mutation,
splitting, strings, builder); the measures computed from the structure alone (parameters,
FLOPs, layers, entropy, effectiveness) are in :mod:`tfnas.spaces.zen.measures`.

Facts read from the public code (``idstcv/ZenNAS``, ``SeoulTech-HCIRLab/IncorporatedNAS``)
and where this module departs from it:

- Mutation draws the new block from the reference candidate set (type x cout x L x
  bottleneck), cout, L and bottleneck uniformly. Block types are uniform over the family by
  default; the reference weighs them (kernels 3 : 5 : 7 as 3 : 3 : 2 within each group of
  types, :func:`reference_kind_weights`), which ``kernel_weights="reference"`` reproduces
  for like-for-like comparisons. Uniform types put more 7x7 blocks, so more FLOPs, through
  the proxy than the reference does.
- ``mutate`` never returns a block unchanged, so it always changes the arch; the reference's
  ``random.choice`` may redraw the block itself (a child equal to its parent).
- A child of the evolution (:mod:`tfnas.methods.evolution`) is two successive one-block
  mutations, which may hit the same block twice; the reference draws two block indices with
  replacement and skips a repeated one (never mutating a block twice in one child, and then
  changing one block only). ``mutate(arch, rng, num_blocks=2)`` draws two distinct blocks.
- Conv blocks change ``cout`` only and keep ``L`` (the reference resets it to 1; start
  strings have ``L = 1`` there anyway). In the ``mobile`` family the 1x1 conv blocks (the
  head) are fixed, as in the reference ``search_space_IDW_fixfc``.
- ``split_long_blocks`` splits ``L >= 6`` into ``3 + (L - 3)``, as both the Zen-NAS
  (``PlainNet/SuperRes*.split``) and the Incorporated-NAS code do.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tfnas.checks import check_int, check_rng, positive_int
from tfnas.registry import register_space
from tfnas.spaces.base import EvolvableSpace
from tfnas.spaces.zen.blocks import (
    BOTTLENECK_KINDS,
    IDW_KINDS,
    MAX_SUB_LAYERS,
    MAX_UNITS,
    RES_KINDS,
    ZenArch,
    ZenBlock,
    check_arch,
    format_arch,
    parse_arch,
    round_channels,
)
from tfnas.spaces.zen.measures import (
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
    "KERNEL_WEIGHTS",
    "REFERENCE_TYPE_GROUPS",
    "SPLIT_THRESHOLD",
    "ZenSpace",
    "channel_choices",
    "layer_choices",
    "reference_kind_weights",
    "split_long_blocks",
]

#: The CIFAR start string of the Zen-NAS / Incorporated-NAS searches (``scripts/*_cifar_params1M.sh``).
DEFAULT_START = (
    "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)SuperResK3K3(16,32,2,16,1)"
    "SuperResK3K3(32,64,2,32,1)SuperResK3K3(64,64,2,32,1)SuperConvK1BNRELU(64,128,1,1)"
)
#: Residual block types a mutation may draw, per family (``search_space_XXBL`` / ``_IDW_fixfc``).
FAMILY_KINDS = {"resnet": BOTTLENECK_KINDS + RES_KINDS, "mobile": IDW_KINDS}
#: ``kernel_weights`` of :class:`ZenSpace`: how a mutation weights the block types of the family.
KERNEL_WEIGHTS = ("uniform", "reference")
#: The reference's groups of block types per family (``seach_space_block_type_list_list``).
REFERENCE_TYPE_GROUPS = {"resnet": (BOTTLENECK_KINDS, RES_KINDS), "mobile": (IDW_KINDS,)}
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
    """Sub-layer counts a mutation may give: ``L - 2 .. L + 2``, at least 1 and at most
    :data:`~tfnas.spaces.zen.blocks.MAX_SUB_LAYERS`; distinct, descending."""
    return tuple(sorted({n for n in range(sub_layers - 2, sub_layers + 3) if 1 <= n <= MAX_SUB_LAYERS},
                        reverse=True))


def reference_kind_weights(family: str) -> Tuple[int, ...]:
    """Relative weights of the block types of ``family`` (in :data:`FAMILY_KINDS` order) in a
    reference mutation.

    The reference ``gen_search_space`` (``SearchSpace/search_space_XXBL.py``, ``_IDW_fixfc.py``)
    walks each group of ``K`` block types (:data:`REFERENCE_TYPE_GROUPS`), appends type ``t``'s
    candidates to the list it appended last and then appends a de-duplicated copy of that list.
    The appended lists alias as they grow, so the flattened candidate list that
    ``random.choice`` draws from holds each candidate of the first type ``K`` times and of type
    ``t >= 2`` ``K - t + 2`` times: kernels 3 : 5 : 7 weigh 3 : 3 : 2 in each ResNet group, the
    12 IDW types 12 : 12 : 11 : ... : 2. Every type has the same (cout, L, bottleneck)
    candidates, so the draw is a type with these weights, the rest uniform.

    Example:
        >>> reference_kind_weights("resnet")
        (3, 3, 2, 3, 3, 2)
    """
    if family not in REFERENCE_TYPE_GROUPS:
        raise ValueError(f"`family` must be one of {', '.join(REFERENCE_TYPE_GROUPS)}. Received: family={family!r}")
    weights: List[int] = []
    for group in REFERENCE_TYPE_GROUPS[family]:
        k = len(group)
        weights.extend(k if t == 1 else k - t + 2 for t in range(1, k + 1))
    return tuple(weights)


def split_long_blocks(arch: Sequence[ZenBlock], threshold: int = SPLIT_THRESHOLD) -> ZenArch:
    """Splits each residual block with ``L >= threshold`` into ``L = t // 2`` and ``L - t // 2``.

    With the default threshold 6 a block ``(cin, cout, s, b, L)`` becomes ``(cin, cout, s, b,
    3)`` followed by ``(cout, cout, 1, b, L - 3)`` (one pass, as in the Incorporated-NAS code).
    Conv blocks are never split.
    """
    threshold = check_int(threshold, "threshold", "split_long_blocks", low=2)
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
        kernel_weights: how a mutation weights the block types of the family: ``"uniform"``
            (default) or ``"reference"`` (the reference's 3 : 3 : 2 for kernels 3, 5, 7,
            :func:`reference_kind_weights`), for like-for-like comparisons with Zen-NAS.

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

    def __init__(self, start: str = "", family: str = "resnet", resolution: int = 32, num_classes: int = 10,
                 kernel_weights: str = "uniform"):
        if not isinstance(start, str):
            raise TypeError(f"ZenSpace: `start` must be a block string. Received: start={start!r}")
        if family not in FAMILY_KINDS:
            raise ValueError(f"ZenSpace: `family` must be one of {', '.join(FAMILY_KINDS)}. "
                             f"Received: family={family!r}")
        if kernel_weights not in KERNEL_WEIGHTS:
            raise ValueError(f"ZenSpace: `kernel_weights` must be one of {', '.join(KERNEL_WEIGHTS)}. "
                             f"Received: kernel_weights={kernel_weights!r}")
        positive_int(resolution, "resolution")
        positive_int(num_classes, "num_classes")
        self.start = start or DEFAULT_START
        self.start_arch: ZenArch = parse_arch(self.start)
        self.family = family
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)
        self.kernel_weights = kernel_weights
        self._kind_p: Optional[np.ndarray] = None  # None: uniform
        if kernel_weights == "reference":
            weights = np.asarray(reference_kind_weights(family), dtype=np.float64)
            self._kind_p = weights / weights.sum()

    def __repr__(self) -> str:
        return (f"ZenSpace(start={self.start!r}, family={self.family!r}, resolution={self.resolution}, "
                f"num_classes={self.num_classes}, kernel_weights={self.kernel_weights!r})")

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
        check_rng(rng, "ZenSpace.sample")
        arch = self.start_arch
        for _ in range(int(rng.integers(1, 4))):
            arch = self.mutate(arch, rng)
        return split_long_blocks(arch)

    def mutate(self, arch: ZenArch, rng: np.random.Generator, num_blocks: int = 1) -> ZenArch:
        """Replaces ``num_blocks`` distinct, uniformly chosen blocks by mutated ones.

        A residual block gets a type from the family (:data:`FAMILY_KINDS`; uniform, or with
        ``kernel_weights="reference"`` weighted by :func:`reference_kind_weights`), ``cout``
        and bottleneck from :func:`channel_choices` and ``L`` from :func:`layer_choices`
        (uniform), redrawn while it equals the block itself; a conv block changes ``cout``
        only (uniform over the other widths). ``cin`` and stride are kept and the next block's
        ``cin`` follows the new ``cout``. The result always differs from ``arch``. Long blocks
        are not split here (see :func:`split_long_blocks`). Where this departs from the
        reference's mutation: the module docstring. A result with more than
        :data:`~tfnas.spaces.zen.blocks.MAX_UNITS` units is drawn again (the same blocks change).
        """
        check_rng(rng, "ZenSpace.mutate")
        arch = check_arch(arch)
        positive_int(num_blocks, "num_blocks")
        mutable = [i for i, block in enumerate(arch) if self._mutable(block)]
        if not mutable:
            raise ValueError(f"ZenSpace.mutate: no block of {format_arch(arch)!r} can change in the "
                             f"{self.family!r} family")
        picked = rng.choice(len(mutable), size=min(num_blocks, len(mutable)), replace=False)
        while True:
            blocks = list(arch)
            for k in sorted(int(p) for p in picked):
                blocks[mutable[k]] = self._mutate_block(blocks[mutable[k]], rng)
            for i in range(1, len(blocks)):
                if blocks[i].cin != blocks[i - 1].cout:
                    blocks[i] = blocks[i].replace(cin=blocks[i - 1].cout)
            if sum(block.num_units for block in blocks) <= MAX_UNITS:
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
        while True:  # the product without the block itself (the product has >= 6 entries)
            kind = (kinds[int(rng.integers(len(kinds)))] if self._kind_p is None
                    else kinds[int(rng.choice(len(kinds), p=self._kind_p))])
            new = block.replace(
                kind=kind,
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
