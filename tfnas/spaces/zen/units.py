"""Unit plans of Zen-NAS super-blocks: the units and convolutions a block unfolds into.

Everything that counts or builds goes through one *unit plan* (:func:`block_units`), so the
analytic measures (:mod:`tfnas.spaces.zen.measures`), the Keras builder
(:mod:`tfnas.spaces.zen.network`) and the residual-free forward path
(:mod:`tfnas.spaces.zen.residual_free`) describe the same network.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from tfnas.spaces.zen.blocks import ZenBlock, check_arch, round_channels

__all__ = ["ConvSpec", "UnitSpec", "arch_units", "block_units", "conv_layer_names"]



@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One convolution (no bias; followed by BN), channels-last.

    Attributes:
      cin, cout: channels (``cin == cout`` when ``depthwise``).
      kernel: odd square kernel size; padding is ``(kernel - 1) // 2`` on each side.
      stride: 1 or 2.
      depthwise: a depthwise convolution (``groups == cin``).
    """

    cin: int
    cout: int
    kernel: int
    stride: int
    depthwise: bool = False

    @property
    def groups(self) -> int:
        return self.cin if self.depthwise else 1

    @property
    def params(self) -> int:
        """Kernel weights ``k^2 cin cout / groups``."""
        return self.kernel * self.kernel * self.cin * self.cout // self.groups

    @property
    def width(self) -> int:
        """``cin k^2 / groups`` (fan-in of one output; DeepMAD's width of the layer)."""
        return self.cin * self.kernel * self.kernel // self.groups

    def out_size(self, size: int) -> int:
        """Spatial output size for input size ``size``: ``(size + 2p - k) // stride + 1``."""
        pad = (self.kernel - 1) // 2
        return (size + 2 * pad - self.kernel) // self.stride + 1

    @property
    def kernel_shape(self) -> Tuple[int, int, int, int]:
        """Keras / ``tf.nn`` kernel layout: ``(k, k, cin, cout)``, or ``(k, k, C, 1)`` when depthwise."""
        return (self.kernel, self.kernel, self.cin, 1 if self.depthwise else self.cout)


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """One unit: convolutions (each followed by BN; ReLU between them), an optional shortcut, ReLU.

    Attributes:
      convs: the convolutions in order.
      residual: the unit adds a shortcut before its final ReLU (``False`` for conv-block layers).
      projection: the shortcut is a 1x1 convolution (with bias, stride ``stride``) + BN.
      se_after: index of the convolution whose ReLU is followed by squeeze-excitation when SE is on.
    """

    convs: Tuple[ConvSpec, ...]
    residual: bool
    projection: bool
    se_after: Optional[int]

    @property
    def cin(self) -> int:
        return self.convs[0].cin

    @property
    def cout(self) -> int:
        return self.convs[-1].cout

    @property
    def stride(self) -> int:
        stride = 1
        for conv in self.convs:
            stride *= conv.stride
        return stride


def block_units(block: ZenBlock) -> Tuple[UnitSpec, ...]:
    """The units of ``block`` in order (see the module docstring for each kind)."""
    k, b, cout = block.kernel, block.bottleneck, block.cout
    units: List[UnitSpec] = []
    last = block.cin
    for i in range(block.sub_layers):
        stride = block.stride if i == 0 else 1
        if block.family == "conv":
            units.append(UnitSpec((ConvSpec(last, cout, k, stride),), residual=False, projection=False, se_after=None))
        elif block.family == "res":
            convs = (ConvSpec(last, b, k, stride), ConvSpec(b, cout, k, 1))
            units.append(_residual_unit(convs, first=i == 0, se_after=0))
        elif block.family == "bottleneck":
            for j, (unit_in, unit_stride) in enumerate(((last, stride), (cout, 1))):
                convs = (ConvSpec(unit_in, b, 1, 1), ConvSpec(b, b, k, unit_stride), ConvSpec(b, cout, 1, 1))
                units.append(_residual_unit(convs, first=i == 0 and j == 0, se_after=1))
        else:  # idw
            e = block.expansion
            for j, (unit_in, unit_out, unit_stride) in enumerate(((last, b, stride), (b, cout, 1))):
                mid = round_channels(unit_out * e)
                convs = (ConvSpec(unit_in, mid, 1, 1), ConvSpec(mid, mid, k, unit_stride, depthwise=True),
                         ConvSpec(mid, unit_out, 1, 1))
                units.append(_residual_unit(convs, first=i == 0 and j == 0, se_after=1))
        last = cout
    return tuple(units)


def _residual_unit(convs: Tuple[ConvSpec, ...], first: bool, se_after: int) -> UnitSpec:
    stride = 1
    for conv in convs:
        stride *= conv.stride
    projection = first or stride > 1 or convs[0].cin != convs[-1].cout
    return UnitSpec(convs, residual=True, projection=projection, se_after=se_after)


def arch_units(arch: Sequence[ZenBlock]) -> List[Tuple[int, int, UnitSpec]]:
    """``(block index, unit index in the block, unit)`` for every unit of ``arch`` in order."""
    return [(i, j, unit) for i, block in enumerate(check_arch(arch)) for j, unit in enumerate(block_units(block))]


def conv_layer_names(arch: Sequence[ZenBlock]) -> List[str]:
    """Names of the builder's convolution layers, in network order (``b{i}_u{j}_conv{m}``)."""
    return [f"b{i}_u{j}_conv{m}" for i, j, unit in arch_units(arch) for m in range(len(unit.convs))]
