"""Zen-NAS super-blocks: the block types, their string format, unit plans and the Keras builder.

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

Everything that counts or builds goes through one *unit plan* (:func:`block_units`), so the
analytic costs of :mod:`tfnas.spaces.zen`, the Keras builder here and the fast scoring path
of :mod:`tfnas.spaces.zen_fast` describe the same network.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
from keras import ops

from tfnas.spaces.ops import DropPath

__all__ = [
    "ALL_KINDS",
    "BN_EPSILON",
    "BN_MOMENTUM",
    "BOTTLENECK_KINDS",
    "CONV_KINDS",
    "IDW_KINDS",
    "INIT_GAIN",
    "RES_KINDS",
    "ConvSpec",
    "UnitSpec",
    "ZenArch",
    "ZenBlock",
    "ZenSqueezeExcite",
    "arch_units",
    "block_units",
    "build_zen_model",
    "check_arch",
    "conv_layer_names",
    "format_arch",
    "parse_arch",
    "round_channels",
]

#: BatchNorm epsilon of the Zen-NAS MasterNet.
BN_EPSILON = 1e-3
#: BatchNorm momentum in the Keras sense (PyTorch ``bn_momentum 0.01`` of the training recipe).
BN_MOMENTUM = 0.99
#: Gain of the Xavier-normal initialisation of the reference ``init_parameters``.
INIT_GAIN = 3.26033

CONV_KINDS: Tuple[str, ...] = tuple(f"SuperConvK{k}BNRELU" for k in (1, 3, 5, 7))
RES_KINDS: Tuple[str, ...] = tuple(f"SuperResK{k}K{k}" for k in (3, 5, 7))
BOTTLENECK_KINDS: Tuple[str, ...] = tuple(f"SuperResK1K{k}K1" for k in (3, 5, 7))
IDW_KINDS: Tuple[str, ...] = tuple(f"SuperResIDWE{e}K{k}" for k in (3, 5, 7) for e in (1, 2, 4, 6))
ALL_KINDS: Tuple[str, ...] = CONV_KINDS + RES_KINDS + BOTTLENECK_KINDS + IDW_KINDS

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


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


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
        for key in ("cin", "cout", "sub_layers"):
            _positive_int(getattr(self, key), key, owner)
        if isinstance(self.stride, bool) or self.stride not in (1, 2):
            raise ValueError(f"{owner}: `stride` must be 1 or 2. Received: stride={self.stride!r}")
        if self.is_conv:
            if self.bottleneck is not None:
                raise ValueError(f"{owner}: plain conv blocks have no bottleneck width. "
                                 f"Received: bottleneck={self.bottleneck!r}")
        else:
            _positive_int(self.bottleneck, "bottleneck", owner)

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
      ValueError: it is empty or ``arch[i + 1].cin != arch[i].cout``.
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


# ---- unit plans ----------------------------------------------------------------------------


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


# ---- Keras layers and builder ----------------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfnas")
class ZenSqueezeExcite(keras.layers.Layer):
    """Squeeze-excitation of the Zen-NAS ``SE`` block (used only when training with SE).

    ``y = x * sigmoid(BN(conv1x1(ReLU(BN(conv1x1(mean_hw(x)))))))`` with ``max(1, round(C *
    ratio))`` squeezed channels and bias-free 1x1 convolutions (Hu et al., CVPR 2018,
    https://arxiv.org/abs/1709.01507; BN placement as in the reference ``PlainNet`` code).

    Args:
        ratio: squeezed channels per input channel, in ``(0, 1]``.
        momentum: BatchNorm momentum (Keras convention).
        epsilon: BatchNorm epsilon.

    Input shape: ``(B, H, W, C)``. Output shape: ``(B, H, W, C)``.
    """

    def __init__(self, ratio: float = 0.25, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio <= 1.0:
            raise ValueError(f"ZenSqueezeExcite: `ratio` must be in (0, 1]. Received: ratio={ratio!r}")
        self.ratio = float(ratio)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ZenSqueezeExcite needs a known channel count. Received: input_shape={input_shape}")
        squeezed = max(1, int(round(channels * self.ratio)))
        bn = dict(momentum=self.momentum, epsilon=self.epsilon)
        self.reduce = keras.layers.Conv2D(squeezed, 1, use_bias=False, name="reduce")
        self.reduce_bn = keras.layers.BatchNormalization(name="reduce_bn", **bn)
        self.expand = keras.layers.Conv2D(channels, 1, use_bias=False, name="expand")
        self.expand_bn = keras.layers.BatchNormalization(name="expand_bn", **bn)
        pooled = (input_shape[0], 1, 1, channels)
        self.reduce.build(pooled)
        self.reduce_bn.build((input_shape[0], 1, 1, squeezed))
        self.expand.build((input_shape[0], 1, 1, squeezed))
        self.expand_bn.build(pooled)

    def call(self, inputs, training=None):
        s = ops.mean(inputs, axis=(1, 2), keepdims=True)
        s = ops.relu(self.reduce_bn(self.reduce(s), training=training))
        s = ops.sigmoid(self.expand_bn(self.expand(s), training=training))
        return inputs * s

    def compute_output_shape(self, input_shape: Tuple[Optional[int], ...]) -> Tuple[Optional[int], ...]:
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"ratio": self.ratio, "momentum": self.momentum, "epsilon": self.epsilon})
        return config


def _xavier(seed: Optional[int]) -> keras.initializers.Initializer:
    """Xavier normal with gain ``INIT_GAIN``: ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    For a depthwise kernel Keras' fans are ``(k^2 C, k^2)`` and PyTorch's ``(k^2, k^2 C)``; the
    sum, hence the standard deviation, is the same.
    """
    return keras.initializers.VarianceScaling(scale=INIT_GAIN ** 2, mode="fan_avg",
                                              distribution="untruncated_normal", seed=seed)


def build_zen_model(
    arch: Sequence[ZenBlock],
    num_classes: int,
    input_shape: Tuple[int, int, int],
    residual: bool = True,
    se: bool = False,
    drop_path_rate: Optional[float] = None,
    seed: Optional[int] = None,
    name: str = "zen_net",
) -> keras.Model:
    """The Zen-NAS MasterNet of ``arch`` as a functional ``keras.Model``: blocks -> GAP -> Dense.

    Layers are standard Keras layers (plus :class:`ZenSqueezeExcite` and ``DropPath``), named
    ``b{i}_u{j}_conv{m}`` / ``_bn{m}`` / ``_proj`` / ``_proj_bn`` / ``_se`` / ``_drop`` for unit
    ``j`` of block ``i``; the pooling layer is ``global_pool`` and the head ``classifier``.
    Initialisation follows the reference: Xavier normal (gain 3.26033) for convolution and
    dense kernels, zero biases, BN ``gamma = 1, beta = 0`` except the last BN of each residual
    unit (``gamma = 0``, only when ``residual``). BN: epsilon 1e-3, momentum 0.99.

    Args:
        arch: the blocks.
        num_classes: logits per image.
        input_shape: ``(H, W, C)`` with ``C == arch[0].cin``.
        residual: keep the shortcuts; ``False`` gives the plain network Zen-NAS scores.
        se: squeeze-excitation after the k x k (depthwise) convolution of residual units.
        drop_path_rate: ``None`` (no ``DropPath``) or a rate in ``[0, 1)`` applied to each
            residual branch before the addition (the Trainer's schedule can change it).
        seed: optional int making the initialisers (and ``DropPath`` masks) reproducible.
        name: model name.

    Returns:
        A model mapping float32 images ``(B, H, W, C)`` to logits ``(B, num_classes)``.
    """
    arch = check_arch(arch)
    _positive_int(num_classes, "num_classes", "build_zen_model")
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"build_zen_model: input_shape must be (H, W, C) positive ints. Received: {input_shape!r}")
    if shape[2] != arch[0].cin:
        raise ValueError(f"build_zen_model: the first block {arch[0]} takes {arch[0].cin} channels but "
                         f"input_shape has {shape[2]}: {shape}")
    if drop_path_rate is not None and (isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float))
                                       or not 0.0 <= drop_path_rate < 1.0):
        raise ValueError(f"build_zen_model: drop_path_rate must be None or in [0, 1). Received: {drop_path_rate!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"build_zen_model: seed must be an integer or None. Received: {seed!r}")

    counter = [0]

    def next_seed() -> Optional[int]:
        counter[0] += 1
        return None if seed is None else seed + counter[0]

    bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)

    def conv_bn(x, conv: ConvSpec, prefix: str, m: int, zero_gamma: bool):
        pad = (conv.kernel - 1) // 2
        padding = "same" if conv.stride == 1 else "valid"
        if conv.stride > 1 and pad:
            x = keras.layers.ZeroPadding2D(pad, name=f"{prefix}_pad{m}")(x)
        if conv.depthwise:
            layer = keras.layers.DepthwiseConv2D(conv.kernel, strides=conv.stride, padding=padding, use_bias=False,
                                                 depthwise_initializer=_xavier(next_seed()), name=f"{prefix}_conv{m}")
        else:
            layer = keras.layers.Conv2D(conv.cout, conv.kernel, strides=conv.stride, padding=padding, use_bias=False,
                                        kernel_initializer=_xavier(next_seed()), name=f"{prefix}_conv{m}")
        x = layer(x)
        gamma = "zeros" if zero_gamma else "ones"
        return keras.layers.BatchNormalization(gamma_initializer=gamma, name=f"{prefix}_bn{m}", **bn)(x)

    inputs = keras.Input(shape=shape, name="images")
    x = inputs
    for i, j, unit in arch_units(arch):
        prefix = f"b{i}_u{j}"
        shortcut_in = x
        with_shortcut = residual and unit.residual
        for m, conv in enumerate(unit.convs):
            last = m == len(unit.convs) - 1
            x = conv_bn(x, conv, prefix, m, zero_gamma=with_shortcut and last)
            if not last:
                x = keras.layers.ReLU(name=f"{prefix}_relu{m}")(x)
                if se and unit.se_after == m:
                    x = ZenSqueezeExcite(name=f"{prefix}_se")(x)
        if with_shortcut:
            if drop_path_rate is not None:
                x = DropPath(float(drop_path_rate), seed=next_seed(), name=f"{prefix}_drop")(x)
            if unit.projection:
                s = keras.layers.Conv2D(unit.cout, 1, strides=unit.stride, padding="valid", use_bias=True,
                                        kernel_initializer=_xavier(next_seed()), bias_initializer="zeros",
                                        name=f"{prefix}_proj")(shortcut_in)
                s = keras.layers.BatchNormalization(name=f"{prefix}_proj_bn", **bn)(s)
            else:
                s = shortcut_in
            x = keras.layers.Add(name=f"{prefix}_add")([x, s])
        x = keras.layers.ReLU(name=f"{prefix}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=_xavier(next_seed()), bias_initializer="zeros",
                                name="classifier")(x)
    return keras.Model(inputs, logits, name=name)
