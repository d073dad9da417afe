"""The Tiny-NanoBench network as a functional ``keras.Model`` (Siamese-NAS).

3x3 conv-BN-Mish stem at ``widths[0]``; blocks of ``cells_per_block`` cells with 2x2 average
pooling before every block but the first; a residual around every cell whose input already has
the block width; global average pooling; dense classifier. Cell ops are the layers of
:mod:`tfnas.spaces.tinynano.ops`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import keras

from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM, DropPath
from tfnas.spaces.tinynano.arch import TinyNanoArch
from tfnas.spaces.tinynano.ops import ChannelHalf, ConvBNAct, op_layer

__all__ = ["build_tinynano_model", "cell_branch"]


def cell_branch(ops_: Sequence[str], incoming: Sequence[Sequence[Tuple[int, int]]], x: Any, width: int, prefix: str):
    """Wires one cell on the symbolic tensor ``x`` and returns its output before the residual.

    Args:
        ops_: op of every node, ``"input"`` first and ``"output"`` last.
        incoming: per node, its incoming ``(source node, half)`` edges in concatenation order.
        x: cell input ``(B, H, W, C_in)``.
        width: block width ``W``; the output node projects to it (1x1 conv-BN) when its channels differ.
        prefix: layer-name prefix.

    Returns:
        ``(B, H, W, width)``.
    """
    outputs: List[List[Any]] = [[x]]  # per node: [tensor] or, for a split, its two halves
    for j in range(1, len(ops_)):
        op = ops_[j]
        parts = [outputs[s][h] for s, h in incoming[j]]
        z = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=f"{prefix}_node{j}_concat")(parts)
        c = int(z.shape[-1])
        if op == "output":
            if c != width:
                z = ConvBNAct(width, 1, activation="linear", momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                              name=f"{prefix}_projection")(z)
            return z
        if op == "split":
            outputs.append([ChannelHalf(h, name=f"{prefix}_node{j}_split{h}")(z) for h in (0, 1)])
            continue
        layer = op_layer(op, c, f"{prefix}_node{j}_{op}")
        outputs.append([z if layer is None else layer(z)])
    raise ValueError(f"cell {list(ops_)} does not end with an output node")


def build_tinynano_model(arch: TinyNanoArch, num_classes: int, input_shape: Tuple[int, int, int], stem_width: int,
                         plan: Sequence[Tuple[int, int, int]], cells_per_block: int, drop_path_rate: Optional[float],
                         seed: Optional[int], name: str) -> keras.Model:
    """The network of ``arch`` (arguments already checked by :meth:`TinyNanoSpace.build`).

    Args:
        arch: the cell, repeated ``cells_per_block`` times per block.
        num_classes: logits per image.
        input_shape: ``(H, W, channels)``.
        stem_width: output channels of the stem (``widths[0]``).
        plan: ``(cell input channels, block width, pixels)`` of every cell, in order.
        cells_per_block: cells per block.
        drop_path_rate: ``None`` or the initial rate of a ``DropPath`` on every residual cell branch.
        seed: seed of the first ``DropPath`` layer (layer ``k`` gets ``seed + k``), or ``None``.
        name: model name.
    """
    h, w, c_img = input_shape
    rate = drop_path_rate
    inputs = keras.Input(shape=(h, w, c_img), name="images")
    x = ConvBNAct(stem_width, 3, activation="mish", name="stem")(inputs)
    drops = 0
    for k, (c_in, width, _) in enumerate(plan):
        block, cell = divmod(k, cells_per_block)
        prefix = f"block{block}_cell{cell}"
        if block and not cell:
            x = keras.layers.AveragePooling2D(2, name=f"block{block}_pool")(x)
        y = cell_branch(arch.ops, arch.incoming(), x, width, prefix)
        if c_in == width:
            if rate is not None:
                y = DropPath(rate, seed=None if seed is None else seed + drops, name=f"{prefix}_drop")(y)
                drops += 1
            y = keras.layers.Add(name=f"{prefix}_residual")([x, y])
        x = y
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, logits, name=name)
