"""Zen-NAS super-blocks: the block type and its string format.

The MasterNet of Zen-NAS (Lin et al., ICCV 2021, https://arxiv.org/abs/2102.01063, Sec. 4
and the public ``PlainNet`` code) is a chain of super-blocks followed by global average
pooling and a dense classifier. A super-block is written ``Kind(cin,cout,stride,L)`` (plain
convolutions) or ``Kind(cin,cout,stride,bottleneck,L)`` (residual blocks):

- ``SuperConvK{1,3,5,7}BNRELU(cin,cout,stride,L)``: ``L`` x (conv k x k, BN, ReLU).
- ``SuperResK{3,5,7}K{3,5,7}(cin,cout,stride,b,L)`` (equal kernels): ``L`` residual units
  ``conv k (-> b, stride on the first unit), BN, ReLU, conv k (-> cout), BN`` + shortcut, ReLU.
- ``SuperResK1K{3,5,7}K1(cin,cout,stride,b,L)``: per ``L`` two bottleneck units
  ``1x1 (-> b), BN, ReLU, k x k (b -> b), BN, ReLU, 1x1 (-> cout), BN`` + shortcut, ReLU.
- ``SuperResIDWE{1,2,4,6}K{3,5,7}(cin,cout,stride,b,L)``: per ``L`` two inverted-residual
  units; the first maps ``cin -> b`` through ``round8(b * e)`` expanded channels, the second
  ``b -> cout`` through ``round8(cout * e)``: ``1x1 expand, BN, ReLU, depthwise k x k, BN,
  ReLU, 1x1 project, BN`` + shortcut, ReLU. Squeeze-excitation is optional (training only).

Shortcuts follow the reference: the first unit of a block has a 1x1 projection (with bias) +
BN; a later unit has one only when its shape changes (an IDW unit with ``b != cout``), else
the identity. Convolutions have no bias and pad symmetrically by ``(k - 1) // 2`` (PyTorch),
so a stride-2 convolution maps ``H`` to ``(H - 1) // 2 + 1``.

How a block unfolds into units and convolutions is :mod:`tfnas.spaces.zen.units`; the Keras
network is :mod:`tfnas.spaces.zen.network`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, List, Optional, Sequence, Tuple

from tfnas.checks import check_int

__all__ = [
    "ALL_KINDS",
    "BOTTLENECK_KINDS",
    "CONV_KINDS",
    "IDW_KINDS",
    "MAX_BLOCK_CHANNELS",
    "MAX_SUB_LAYERS",
    "MAX_UNITS",
    "RES_KINDS",
    "ZenArch",
    "ZenBlock",
    "check_arch",
    "format_arch",
    "parse_arch",
    "round_channels",
]

CONV_KINDS: Tuple[str, ...] = tuple(f"SuperConvK{k}BNRELU" for k in (1, 3, 5, 7))
RES_KINDS: Tuple[str, ...] = tuple(f"SuperResK{k}K{k}" for k in (3, 5, 7))
BOTTLENECK_KINDS: Tuple[str, ...] = tuple(f"SuperResK1K{k}K1" for k in (3, 5, 7))
IDW_KINDS: Tuple[str, ...] = tuple(f"SuperResIDWE{e}K{k}" for k in (3, 5, 7) for e in (1, 2, 4, 6))
ALL_KINDS: Tuple[str, ...] = CONV_KINDS + RES_KINDS + BOTTLENECK_KINDS + IDW_KINDS

# Bounds of what an arch string may ask for, so a mistyped or hostile one is refused at once rather
# than built for hours. The published Zen-NAS and Incorporated-NAS models stay far below them (at
# most 2,048 channels, 10 sub-layers per block, about 50 units in all).
#: The most channels (``cin``, ``cout``, ``bottleneck``) of a block (the search's own cap is
#: :data:`tfnas.spaces.zen.space.MAX_CHANNELS`, 2,048).
MAX_BLOCK_CHANNELS = 16_384
#: The most layers or sub-layers (``L``) of a block.
MAX_SUB_LAYERS = 256
#: The most units of an arch (:attr:`ZenBlock.num_units` summed).
MAX_UNITS = 1_024

_KIND_RE = {
    "conv": re.compile(r"^SuperConvK([1357])BNRELU$"),
    "res": re.compile(r"^SuperResK([357])K([357])$"),
    "bottleneck": re.compile(r"^SuperResK1K([357])K1$"),
    "idw": re.compile(r"^SuperResIDWE([1246])K([357])$"),
}
_BLOCK_TOKEN = re.compile(r"([A-Za-z0-9]+)\(([^()]*)\)")
_EXAMPLE = "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)SuperConvK1BNRELU(16,32,1,1)"


def round_channels(x: float, base: int = 8) -> int:
    """``max(base, base * round(x / base))`` with Python's round-half-to-even (reference ``smart_round``)."""
    return max(base, int(round(x / float(base))) * base)


@dataclasses.dataclass(frozen=True)
class ZenBlock:
    """One super-block; immutable and hashable.

    Attributes:
      kind: the block type, one of :data:`ALL_KINDS` (kernel size and expansion are read from it).
      cin: input channels.
      cout: output channels.
      stride: 1 or 2, applied by the first layer of the first unit.
      bottleneck: bottleneck width ``b`` of residual blocks; ``None`` for ``SuperConv*`` blocks.
      sub_layers: ``L``, the number of layers (conv blocks) or sub-layers (residual blocks).
    """

    kind: str
    cin: int
    cout: int
    stride: int
    bottleneck: Optional[int]
    sub_layers: int

    def __post_init__(self) -> None:
        if self.kind not in ALL_KINDS:
            raise ValueError(f"ZenBlock: unknown block kind {self.kind!r}; expected one of {', '.join(ALL_KINDS)}")
        owner = f"ZenBlock {self.kind}"
        for key, high in (("cin", MAX_BLOCK_CHANNELS), ("cout", MAX_BLOCK_CHANNELS), ("sub_layers", MAX_SUB_LAYERS)):
            check_int(getattr(self, key), key, owner, low=1, high=high)
        if isinstance(self.stride, bool) or self.stride not in (1, 2):
            raise ValueError(f"{owner}: `stride` must be 1 or 2. Received: stride={self.stride!r}")
        if self.is_conv:
            if self.bottleneck is not None:
                raise ValueError(f"{owner}: plain conv blocks have no bottleneck width. "
                                 f"Received: bottleneck={self.bottleneck!r}")
        else:
            check_int(self.bottleneck, "bottleneck", owner, low=1, high=MAX_BLOCK_CHANNELS)

    @property
    def family(self) -> str:
        """``"conv"``, ``"res"`` (KxKx), ``"bottleneck"`` (K1KxK1) or ``"idw"`` (inverted residual)."""
        for family, pattern in _KIND_RE.items():
            if pattern.match(self.kind):
                return family
        raise AssertionError(self.kind)  # unreachable: kinds are validated

    @property
    def is_conv(self) -> bool:
        return self.kind.startswith("SuperConv")

    @property
    def kernel(self) -> int:
        """The spatial kernel size ``k`` of the block (its only non-1x1 kernel)."""
        match = _KIND_RE[self.family].match(self.kind)
        return int(match.group(match.lastindex))  # type: ignore[union-attr]

    @property
    def expansion(self) -> Optional[int]:
        """Expansion ratio ``e`` of IDW blocks, else ``None``."""
        if self.family != "idw":
            return None
        return int(_KIND_RE["idw"].match(self.kind).group(1))  # type: ignore[union-attr]

    @property
    def num_units(self) -> int:
        """Units of the block: ``L`` for conv and KxKx blocks, ``2 L`` for K1KxK1 and IDW blocks."""
        return self.sub_layers * (2 if self.family in ("bottleneck", "idw") else 1)

    def replace(self, **changes: Any) -> "ZenBlock":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        if self.is_conv:
            return f"{self.kind}({self.cin},{self.cout},{self.stride},{self.sub_layers})"
        return f"{self.kind}({self.cin},{self.cout},{self.stride},{self.bottleneck},{self.sub_layers})"


#: An architecture: the chain of super-blocks, ``arch[i + 1].cin == arch[i].cout``.
ZenArch = Tuple[ZenBlock, ...]


def check_arch(arch: Any) -> ZenArch:
    """Returns ``arch`` as a tuple after checking block types and channel chaining.

    Raises:
      TypeError: ``arch`` is not a sequence of :class:`ZenBlock`.
      ValueError: it is empty, ``arch[i + 1].cin != arch[i].cout``, or it has more than
        :data:`MAX_UNITS` units.
    """
    if isinstance(arch, (str, bytes)) or not isinstance(arch, (tuple, list)):
        raise TypeError(f"a Zen arch is a tuple of ZenBlock; got {type(arch).__name__} "
                        "(parse strings with ZenSpace.decode / parse_arch)")
    arch = tuple(arch)
    if not arch:
        raise ValueError("a Zen arch needs at least one block")
    for i, block in enumerate(arch):
        if not isinstance(block, ZenBlock):
            raise TypeError(f"Zen arch block {i} is a {type(block).__name__}, expected ZenBlock")
        if i and block.cin != arch[i - 1].cout:
            raise ValueError(f"Zen arch block {i} {block} takes {block.cin} channels but block {i - 1} "
                             f"{arch[i - 1]} gives {arch[i - 1].cout}; chain cin to the previous cout")
    units = sum(block.num_units for block in arch)
    if units > MAX_UNITS:
        raise ValueError(f"a Zen arch may have at most {MAX_UNITS} units (layers, or sub-layers of residual blocks); "
                         f"this one has {units:,}")
    return arch


def format_arch(arch: Sequence[ZenBlock]) -> str:
    """The block string, e.g. ``SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)``."""
    return "".join(str(block) for block in check_arch(arch))


def parse_arch(text: str) -> ZenArch:
    """Parses a block string strictly (surrounding whitespace is ignored).

    Raises:
      TypeError: ``text`` is not a string.
      ValueError: naming the offending block and what was expected.
    """
    if not isinstance(text, str):
        raise TypeError(f"a Zen arch string must be a str; got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ValueError(f"empty Zen arch string (e.g. {_EXAMPLE!r})")
    blocks: List[ZenBlock] = []
    pos = 0
    while pos < len(text):
        match = _BLOCK_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"Zen arch {text!r}: cannot parse a block at character {pos} "
                             f"({text[pos:pos + 30]!r}); expected Kind(cin,cout,stride,L) or "
                             f"Kind(cin,cout,stride,bottleneck,L), e.g. {_EXAMPLE!r}")
        kind, args = match.group(1), match.group(2)
        where = f"Zen arch {text!r}: block {len(blocks)} {match.group(0)!r}"
        if kind not in ALL_KINDS:
            raise ValueError(f"{where}: unknown kind {kind!r}; expected one of {', '.join(ALL_KINDS)}")
        fields = args.split(",")
        if not all(f.isdigit() for f in fields):
            raise ValueError(f"{where}: arguments must be non-negative integers separated by ','")
        values = [int(f) for f in fields]
        expected = 4 if kind.startswith("SuperConv") else 5
        if len(values) != expected:
            names = "cin,cout,stride,L" if expected == 4 else "cin,cout,stride,bottleneck,L"
            raise ValueError(f"{where}: {kind} takes {expected} arguments ({names}), got {len(values)}")
        if expected == 4:
            cin, cout, stride, sub_layers = values
            bottleneck = None
        else:
            cin, cout, stride, bottleneck, sub_layers = values
        try:
            blocks.append(ZenBlock(kind, cin, cout, stride, bottleneck, sub_layers))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        pos = match.end()
    try:
        return check_arch(blocks)
    except ValueError as exc:
        raise ValueError(f"Zen arch {text!r}: {exc}") from None
