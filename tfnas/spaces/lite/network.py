"""The SLNAS lite-space network in Keras (reference ``model_arc/model_maker.py`` ``model_maker``
and ``model_arc/rebuilder.py`` ``model_rebuild``).

Two stems on the image, ``h0 = BN(conv3x3(x))`` and ``h1 = BN(conv5x5(x))`` (``C`` channels,
reflection padding, no bias); for each stage ``s`` of ``blocks``, ``blocks[s]`` normal cells
then one reduction cell (channels x2, size /2; cells in :mod:`tfnas.spaces.lite.cell`); global
average pool and a bias-free dense. Each cell reads ``(h_{k-2}, h_{k-1})``; after a reduction
cell the carried ``h_{k-2}`` (the reduction cell's own ``h_{k-1}`` input, still at the larger
size) goes through a bias-free 1x1 conv ``C -> 2C`` (the next cell resizes it). The reference
also builds and runs that conv after the last reduction cell, where no cell reads its output;
the dead conv (``c x 2c`` weights, ``c`` the last stage's input channels) is left out here. An
auxiliary head, global average pool + bias-free dense, reads the output of every reduction cell
but the last (the reference's ``aux_fc``, weighted 0.4 in the loss).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import keras

from tfnas.checks import check_int, check_num_classes
from tfnas.spaces.lite.arch import LiteArch, parse_arch
from tfnas.spaces.lite.cell import LiteCell, cell_params
from tfnas.spaces.lite.ops import ReflectConvBN, pointwise_conv
from tfnas.spaces.ops.common import build_once, with_list_children

__all__ = ["LiteNetwork", "check_blocks", "count_network_params", "stage_layout"]

Shape = Tuple[Optional[int], ...]
#: Stem kernels (reference ``start_conv1``, ``start_conv2``).
STEM_KERNELS = (3, 5)


def check_blocks(blocks: Any, owner: str) -> Tuple[int, ...]:
    """``blocks`` as a non-empty tuple of ints >= 0 (normal cells per stage); else ``ValueError``."""
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError(f"{owner}: `blocks` must be a non-empty list of normal-cell counts per stage, e.g. "
                         f"(2, 2). Received: blocks={blocks!r}")
    return tuple(check_int(b, "blocks", owner, low=0,
                           message="{owner}: `blocks` entries must be integers >= 0. Received: " + repr(blocks))
                 for b in blocks)


def check_channels(channels: Any, owner: str) -> int:
    """``channels`` (``C``) when an even int >= 4 (ShuffleNet halves; the SE needs ``5C >= 16``)."""
    channels = check_int(channels, "channels", owner, low=4)
    if channels % 2:
        raise ValueError(f"{owner}: `channels` must be even (ShuffleNet channel split). Received: channels={channels}")
    return channels


def stage_layout(blocks: Sequence[int]) -> List[Tuple[int, bool]]:
    """``(stage, reduction)`` of every cell, in order: ``blocks[s]`` normal cells then one reduction per stage."""
    return [(s, r) for s, n in enumerate(blocks) for r in [False] * n + [True]]


def count_network_params(arch: LiteArch, num_classes: int, channels: int, blocks: Sequence[int],
                         auxiliary: bool, image_channels: int = 3) -> int:
    """Analytic trainable-parameter count of :class:`LiteNetwork` (see ``LiteSpace.num_params``)."""
    total = sum(k * k * image_channels * channels + 2 * channels for k in STEM_KERNELS)
    c = channels
    for s, reduction in stage_layout(blocks):
        total += cell_params(arch.cell(reduction), c, reduction)
        if reduction:
            if s < len(blocks) - 1:  # 1x1 conv on the carried h_{k-2}, auxiliary head
                total += c * 2 * c + (2 * c * num_classes if auxiliary else 0)
            c *= 2
    return int(total + c * num_classes)


@keras.saving.register_keras_serializable(package="tfnas")
class LiteNetwork(keras.Model):
    """The lite-space network of one architecture (module docstring).

    ``call(images, training)`` returns logits ``(B, num_classes)``; with ``training`` true and
    auxiliary heads it returns ``(logits, aux_logits)`` (the Trainer's ``aux_weight`` contract;
    ``blocks`` of length 2 gives one head), or ``(logits, aux_1, ..., aux_k)`` for ``k > 1``
    heads. :meth:`inference_model` is the network to serve and export: no auxiliary heads, no
    DropPath, shared weights.

    Args:
        arch: the architecture (:class:`LiteArch`, its text or a preset name).
        num_classes: logits per image.
        image_shape: ``(H, W, C)``; ``H, W`` divisible by ``2 ** len(blocks)`` and at least
            ``2 ** (len(blocks) + 1)``.
        channels: stem channels ``C`` (even, >= 4; SLNAS retraining: 40, search: 16).
        blocks: normal cells per stage (SLNAS: ``(2, 2)``).
        auxiliary: add the auxiliary heads.
        drop_path_rate: None or the initial DropPath rate of every node branch.
        seed: DropPath seed (None = unseeded).
        share_with: a network of the same architecture and sizes whose layers (and so weights)
            this one uses (not serialized; see :meth:`inference_model`).
    """

    def __init__(self, arch: Union[str, LiteArch], num_classes: int, image_shape: Sequence[int] = (32, 32, 3),
                 channels: int = 40, blocks: Sequence[int] = (2, 2), auxiliary: bool = True,
                 drop_path_rate: Optional[float] = None, seed: Optional[int] = None,
                 share_with: Optional["LiteNetwork"] = None, **kwargs: Any):
        super().__init__(**kwargs)
        parsed = arch if isinstance(arch, LiteArch) else parse_arch(arch)
        self.arch = str(parsed)
        self.num_classes = check_num_classes(num_classes, "LiteNetwork")
        self.channels = check_channels(channels, "LiteNetwork")
        self.blocks = check_blocks(blocks, "LiteNetwork")
        shape = tuple(int(d) for d in image_shape)
        step = 2 ** len(self.blocks)
        if len(shape) != 3 or any(d % step or d < 2 * step for d in shape[:2]):
            raise ValueError(f"LiteNetwork: `image_shape` must be (H, W, C) with H and W multiples of {step} and at "
                             f"least {2 * step} ({len(self.blocks)} reductions). Received: image_shape={image_shape}")
        if drop_path_rate is not None and not 0.0 <= float(drop_path_rate) < 1.0:
            raise ValueError(f"LiteNetwork: `drop_path_rate` must be None or in [0, 1). Received: {drop_path_rate!r}")
        self.image_shape = shape
        self.auxiliary = bool(auxiliary)
        self.drop_path_rate = None if drop_path_rate is None else float(drop_path_rate)
        self.seed = seed
        if share_with is not None:
            mine = (self.arch, self.num_classes, self.image_shape, self.channels, self.blocks)
            theirs = (share_with.arch, share_with.num_classes, share_with.image_shape, share_with.channels,
                      share_with.blocks)
            if mine != theirs:
                raise ValueError(f"LiteNetwork: share_with must have the same arch and sizes; {mine} != {theirs}")
            self.stems = list(share_with.stems)
            self.skip_convs = list(share_with.skip_convs)
            self.classifier = share_with.classifier
        else:
            self.stems = [ReflectConvBN(self.channels, k, name=f"stem{i}") for i, k in enumerate(STEM_KERNELS)]
            self.skip_convs = [pointwise_conv(self.channels * 2 ** (s + 1), f"skip_conv{s}")
                               for s in range(len(self.blocks) - 1)]
            self.classifier = keras.layers.Dense(self.num_classes, use_bias=False, name="classifier")
        self.cells: List[LiteCell] = []
        c = self.channels
        for i, (s, reduction) in enumerate(stage_layout(self.blocks)):
            cell_seed = None if seed is None else seed + 10 * i
            self.cells.append(LiteCell(parsed.cell(reduction), c, reduction, self.drop_path_rate, cell_seed,
                                       share_with=None if share_with is None else share_with.cells[i],
                                       name=f"cell{i}"))
            c *= 2 if reduction else 1
        self.aux_heads: List[keras.layers.Dense] = []
        if self.auxiliary:
            for s in range(len(self.blocks) - 1):
                shared = share_with.aux_heads[s] if share_with is not None and share_with.aux_heads else None
                self.aux_heads.append(shared or keras.layers.Dense(self.num_classes, use_bias=False,
                                                                   name=f"aux_head{s}"))
        self.global_pool = keras.layers.GlobalAveragePooling2D(name="global_pool")

    @property
    def input_shape(self) -> Tuple[Optional[int], ...]:
        """``(None, H, W, C)`` (used by the SavedModel export signature)."""
        return (None,) + self.image_shape

    def build(self, input_shape: Shape) -> None:
        input_shape = tuple(input_shape)
        for stem in self.stems:
            build_once(stem, input_shape)
        s0 = s1 = self.stems[0].compute_output_shape(input_shape)
        stage = 0
        for cell in self.cells:
            cell.build([s0, s1])
            out = cell.compute_output_shape([s0, s1])
            if cell.reduction:
                if stage < len(self.skip_convs):
                    build_once(self.skip_convs[stage], s1)
                    s1 = self.skip_convs[stage].compute_output_shape(s1)
                if stage < len(self.aux_heads):
                    build_once(self.aux_heads[stage], (out[0], out[-1]))
                stage += 1
            s0, s1 = s1, out
        build_once(self.classifier, (s1[0], s1[-1]))
        self.built = True

    def inference_model(self) -> "LiteNetwork":
        """The network to serve: the same stems, cells and classifier, sharing this network's layers
        and weights, without auxiliary heads and DropPath layers.

        Its trainable parameters are ``LiteSpace.num_params(arch)``; its outputs equal
        ``self(x, training=False)``. Returns ``self`` when there is nothing to drop.
        """
        if not self.aux_heads and self.drop_path_rate is None:
            return self
        net = LiteNetwork(self.arch, self.num_classes, self.image_shape, self.channels, self.blocks,
                          auxiliary=False, drop_path_rate=None, seed=self.seed, share_with=self, name=self.name)
        net.build((None,) + self.image_shape)
        return net

    def _cells(self, inputs, training):
        """``(features, aux)``: the last cell's output and the list of auxiliary logits (training only)."""
        s0, s1 = (stem(inputs, training=training) for stem in self.stems)
        aux = []
        stage = 0
        for cell in self.cells:
            out = cell([s0, s1], training=training)
            if cell.reduction:
                if stage < len(self.skip_convs):
                    s1 = self.skip_convs[stage](s1)
                if training and stage < len(self.aux_heads):
                    aux.append(self.aux_heads[stage](self.global_pool(out)))
                stage += 1
            s0, s1 = s1, out
        return s1, aux

    def call(self, inputs, training=None):
        features, aux = self._cells(inputs, training)
        logits = self.classifier(self.global_pool(features))
        return (logits, *aux) if aux else logits

    def pre_pool_features(self, inputs, training=None):
        """The feature map ``(B, H', W', C')`` that global pooling averages, computed as in :meth:`call`."""
        return self._cells(inputs, training)[0]

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        return with_list_children(children, (("stems", self.stems), ("cells", self.cells),
                                             ("skip_convs", self.skip_convs), ("aux_heads", self.aux_heads)))

    def get_config(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "image_shape": list(self.image_shape),
                "channels": self.channels, "blocks": list(self.blocks), "auxiliary": self.auxiliary,
                "drop_path_rate": self.drop_path_rate, "seed": self.seed, "name": self.name}
