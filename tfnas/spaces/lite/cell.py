"""The SLNAS lite-space cell in Keras (reference ``model_arc/builder.py`` ``layer_maker`` and ``node``,
and ``model_arc/rebuilder.py``, which retrains a fixed architecture with the same forward pass).

A cell with input channels ``C`` (normal: ``C -> C``; reduction: ``C -> 2C``):

1. ``h_{k-2}`` is bilinearly resized to the size of ``h_{k-1}`` (``align_corners=False``);
2. node ``n``: ``x = op_x(states[in_x])``, ``y = op_y(states[in_y])``; when their sizes differ the
   smaller is bilinearly upsampled to the larger; ``node = drop_path(x) + drop_path(y)``;
3. reduction cells only: every op maps ``C -> 2C`` (ops 0-3 at stride 2; op 4 at stride 1, so
   its branch stays at the input size); a node whose size is not ``(H // 2, W // 2)`` is
   bilinearly resized to it, then one 1x1 conv ``2C -> C`` shared by the 5 nodes (``calibrate``)
   maps it back to ``C``;
4. output ``= conv1x1(SE(Mish(BN(concat(nodes)))))`` to ``C`` (normal) or ``2C`` (reduction).

``states = [h_{k-2}, h_{k-1}, node 0, ...]``; the reference uses ``track_running_stats=False``
BatchNorms while searching and standard ones when retraining; these are standard.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import keras
from keras import ops

from tfnas.checks import check_int
from tfnas.spaces.lite.arch import CELL_LENGTH, NUM_NODES, check_cell
from tfnas.spaces.lite.ops import SqueezeExcite, batch_norm, make_op, op_params, pointwise_conv
from tfnas.spaces.ops.common import build_once, with_list_children
from tfnas.spaces.ops import DropPath, mish

__all__ = ["SE_RATIO", "LiteCell", "build_once", "cell_params", "resize_bilinear"]

Shape = Tuple[Optional[int], ...]
#: Squeeze-and-excitation reduction of the cell output.
SE_RATIO = 16


def cell_params(cell: Sequence[int], channels: int, reduction: bool) -> int:
    """Trainable parameters of a :class:`LiteCell` with ``channels`` input channels."""
    out = 2 * channels if reduction else channels
    total = sum(op_params(cell[k], channels, out, reduction) for k in range(1, CELL_LENGTH, 2))
    cat = NUM_NODES * channels
    total += 2 * cat + 2 * cat * (cat // SE_RATIO) + cat * out  # BN, SE, 1x1 conv
    return total + (out * channels if reduction else 0)  # calibrate


def resize_bilinear(x, size: Tuple[int, int]):
    """Bilinear resize with half-pixel centres, no antialiasing (PyTorch ``align_corners=False``)."""
    y = ops.image.resize(x, size, interpolation="bilinear", antialias=False)
    return ops.cast(y, x.dtype)


def _size(shape: Shape) -> Tuple[int, int]:
    return int(shape[1]), int(shape[2])


@keras.saving.register_keras_serializable(package="tfnas")
class LiteCell(keras.layers.Layer):
    """One lite-space cell: ``[h_{k-2}, h_{k-1}] -> output`` (module docstring, steps 1-4).

    Args:
        cell: the cell's 20 integers ``(in_x, op_x, in_y, op_y) x 5``.
        filters: input channels ``C`` of both inputs.
        reduction: a reduction cell (ops at stride 2, output ``2C`` at half size).
        drop_path_rate: None (no drop-path) or the initial DropPath rate of every node branch.
        seed: seed of the first DropPath layer (the k-th gets ``seed + k``), or None.
        share_with: a cell of the same structure whose layers (and so weights) this one uses
            (not serialized; see :meth:`LiteNetwork.inference_model`).

    Input shape: ``[(B, H0, W0, C), (B, H, W, C)]`` (static ``H, W``).
    Output shape: ``(B, H, W, C)``, or ``(B, H // 2, W // 2, 2C)`` for a reduction cell.
    """

    def __init__(self, cell: Sequence[int], filters: int, reduction: bool = False,
                 drop_path_rate: Optional[float] = None, seed: Optional[int] = None,
                 share_with: Optional["LiteCell"] = None, **kwargs: Any):
        super().__init__(**kwargs)
        kind = "reduction" if reduction else "normal"
        self.cell = list(check_cell(cell, kind))
        self.filters = check_int(filters, "filters", "LiteCell", low=2)
        self.reduction = bool(reduction)
        self.drop_path_rate = None if drop_path_rate is None else float(drop_path_rate)
        self.seed = seed
        out = 2 * self.filters if self.reduction else self.filters
        if share_with is not None:
            if (share_with.cell, share_with.filters, share_with.reduction) != (self.cell, self.filters, self.reduction):
                raise ValueError(f"LiteCell {self.name}: share_with must be a {kind} cell of the same structure")
            self.node_ops = list(share_with.node_ops)
            self.calibrate, self.out_bn = share_with.calibrate, share_with.out_bn
            self.out_se, self.out_conv = share_with.out_se, share_with.out_conv
        else:
            self.node_ops = [make_op(self.cell[k], out, self.reduction, name=f"node{k // 4}_{'xy'[k % 4 // 2]}_op")
                             for k in range(1, CELL_LENGTH, 2)]
            self.calibrate = pointwise_conv(self.filters, "calibrate") if self.reduction else None
            self.out_bn = batch_norm("out_bn")
            self.out_se = SqueezeExcite(SE_RATIO, name="out_se")
            self.out_conv = pointwise_conv(out, "out_conv")
        self.drops: List[Optional[DropPath]] = []
        for k in range(2 * NUM_NODES):
            if self.drop_path_rate is None:
                self.drops.append(None)
            else:
                layer_seed = None if seed is None else seed + k
                name = f"node{k // 2}_{'xy'[k % 2]}_drop"
                self.drops.append(DropPath(self.drop_path_rate, seed=layer_seed, name=name))

    def _target(self, size: Tuple[int, int]) -> Tuple[int, int]:
        """Node size: the input size, or ``H // 2, W // 2`` in a reduction cell (reference ``input_shape_x // 2``)."""
        return (size[0] // 2, size[1] // 2) if self.reduction else size

    def build(self, input_shape: Sequence[Shape]) -> None:
        shape0, shape1 = (tuple(s) for s in input_shape)
        if shape0[-1] != self.filters or shape1[-1] != self.filters:
            raise ValueError(f"LiteCell {self.name}: both inputs need `filters` channels. Received: "
                             f"filters={self.filters}, input_shape={[shape0, shape1]}")
        if shape1[1] is None or shape1[2] is None:
            raise ValueError(f"LiteCell {self.name}: needs static spatial sizes. Received: {shape1}")
        b, size = shape1[0], _size(shape1)
        target = self._target(size)
        states: List[Shape] = [shape1, shape1]
        for n in range(NUM_NODES):
            branch = []
            for slot in range(2):
                k = 2 * n + slot
                src = states[self.cell[4 * n + 2 * slot]]
                build_once(self.node_ops[k], src)
                out = self.node_ops[k].compute_output_shape(src)
                branch.append(out)
            node = max(branch, key=lambda s: s[1] * s[2])
            if self.drops[2 * n] is not None:
                build_once(self.drops[2 * n], node)
                build_once(self.drops[2 * n + 1], node)
            if self.reduction:
                node = (b,) + target + (node[-1],)
                build_once(self.calibrate, node)
                node = self.calibrate.compute_output_shape(node)
            states.append(node)
        cat = (b,) + target + (NUM_NODES * self.filters,)
        build_once(self.out_bn, cat)
        build_once(self.out_se, cat)
        build_once(self.out_conv, cat)

    def call(self, inputs, training=None):
        s0, s1 = inputs
        size = _size(s1.shape)
        if _size(s0.shape) != size:
            s0 = resize_bilinear(s0, size)
        target = self._target(size)
        states = [s0, s1]
        for n in range(NUM_NODES):
            x = self.node_ops[2 * n](states[self.cell[4 * n]], training=training)
            y = self.node_ops[2 * n + 1](states[self.cell[4 * n + 2]], training=training)
            if _size(x.shape) != _size(y.shape):  # upsample the smaller branch (reference ``node._rescale``)
                if x.shape[1] * x.shape[2] > y.shape[1] * y.shape[2]:
                    y = resize_bilinear(y, _size(x.shape))
                else:
                    x = resize_bilinear(x, _size(y.shape))
            if self.drops[2 * n] is not None:
                x = self.drops[2 * n](x, training=training)
                y = self.drops[2 * n + 1](y, training=training)
            node = x + y
            if self.reduction:
                if _size(node.shape) != target:
                    node = resize_bilinear(node, target)
                node = self.calibrate(node)
            states.append(node)
        h = self.out_bn(ops.concatenate(states[2:], axis=-1), training=training)
        return self.out_conv(self.out_se(mish(h)))

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        b, h, w, _ = tuple(input_shape[1])
        if self.reduction:
            return (b, None if h is None else h // 2, None if w is None else w // 2, 2 * self.filters)
        return (b, h, w, self.filters)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        return with_list_children(children, (("node_ops", self.node_ops), ("drops", self.drops)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"cell": list(self.cell), "filters": self.filters, "reduction": self.reduction,
                       "drop_path_rate": self.drop_path_rate, "seed": self.seed})
        return config

