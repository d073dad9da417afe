"""The NAS-Bench-201 network as a functional ``keras.Model`` (Dong & Yang, ICLR 2020, Sec. 2.1).

stem 3x3 conv(C) + BN; ``N`` cells at C; residual reduction to 2C; ``N`` cells; reduction to
4C; ``N`` cells; BN-ReLU-global average pool-Dense(num_classes). Layer and variable names
(``stage0_cell0_e01_nor_conv_3x3/conv/kernel``, ``reduction1/conv_a/bn/gamma``, ...) are what
:class:`~tfnas.spaces.nb201.tensor_network.Nb201TensorNetwork` copies weights by.
"""

from __future__ import annotations

from typing import Optional, Tuple

import keras

from tfnas.spaces.nb201.arch import CONV_KERNEL, EDGES, Nb201Arch, stage_channels
from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM, AvgPool3x3, DropPath, ReLUConvBN, ResidualReduction, Zero

__all__ = ["build_nb201_model"]


def build_nb201_model(
    arch: Nb201Arch,
    num_classes: int,
    input_shape: Tuple[int, int, int],
    channels: int,
    cells_per_stage: int,
    drop_path_rate: Optional[float] = None,
    seed: Optional[int] = None,
    name: str = "nb201",
) -> keras.Model:
    """The network of ``arch`` (arguments already checked by :meth:`Nb201Space.build`).

    Args:
        arch: the cell.
        num_classes: logits per image.
        input_shape: ``(H, W, channels)``, ``H`` and ``W`` divisible by 4.
        channels: first-stage width ``C``.
        cells_per_stage: cells per stage ``N``.
        drop_path_rate: ``None`` (no ``DropPath`` layers) or the initial rate of a ``DropPath``
            after every conv and pooling edge.
        seed: seed of the first ``DropPath`` layer (layer ``k`` gets ``seed + k``), or ``None``.
        name: model name.

    Returns:
        A model mapping float32 images ``(B, H, W, channels)`` to logits ``(B, num_classes)``.
    """
    h, w, c_img = input_shape
    bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
    drop_counter = [0]

    def drop_path(x, layer_name: str):
        if drop_path_rate is None:
            return x
        layer_seed = None if seed is None else seed + drop_counter[0]
        drop_counter[0] += 1
        return DropPath(drop_path_rate, seed=layer_seed, name=f"{layer_name}_drop")(x)

    def cell(x, c: int, prefix: str):
        nodes = [x]
        for node in (1, 2, 3):
            terms = []
            for (src, dst), op in zip(EDGES, arch.ops):
                if dst != node:
                    continue
                layer_name = f"{prefix}_e{src}{dst}_{op}"
                if op == "none":
                    terms.append(Zero(name=layer_name)(nodes[src]))
                elif op == "skip_connect":
                    terms.append(nodes[src])
                elif op == "avg_pool_3x3":
                    terms.append(drop_path(AvgPool3x3(name=layer_name)(nodes[src]), layer_name))
                else:
                    conv = ReLUConvBN(c, CONV_KERNEL[op], name=layer_name, **bn)
                    terms.append(drop_path(conv(nodes[src]), layer_name))
            nodes.append(terms[0] if len(terms) == 1 else keras.layers.Add(name=f"{prefix}_node{node}")(terms))
        return nodes[3]

    inputs = keras.Input(shape=(h, w, c_img), name="images")
    c1, c2, c3 = stage_channels(channels)
    stem = keras.layers.Conv2D(
        c1, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name="stem_conv"
    )
    x = stem(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
    for stage, c in enumerate((c1, c2, c3)):
        if stage > 0:
            x = ResidualReduction(c, name=f"reduction{stage}", **bn)(x)
        for k in range(cells_per_stage):
            x = cell(x, c, f"stage{stage}_cell{k}")
    x = keras.layers.BatchNormalization(name="head_bn", **bn)(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, logits, name=name)
