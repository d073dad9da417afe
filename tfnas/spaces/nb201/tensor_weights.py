"""Weight layout and stateless initialisers of the arch-as-tensor NAS-Bench-201 network.

:func:`weight_specs` lists every weight of :class:`~tfnas.spaces.nb201.tensor_network.Nb201TensorNetwork`
(all candidate ops of every edge) under the variable path of the Keras model of
:func:`~tfnas.spaces.nb201.network.build_nb201_model`, with its shape and initialiser;
:func:`draw_weight` draws one from a stateless seed as Keras would initialise it. The order of
the specs fixes each weight's seed index, so draws do not depend on which cell is scored.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfnas.checks import is_int
from tfnas.spaces.nb201.arch import EDGES, NUM_EDGES, OPS, Nb201Arch

__all__ = [
    "CONV_OPS",
    "KERNEL_INITS",
    "WeightSpecs",
    "draw_weight",
    "edge_name",
    "op_ids_of",
    "seed_tensor",
    "stateless_seed",
    "weight_specs",
]

#: Op ids (indices into ``OPS``) of the two convolution ops and their kernel sizes.
CONV_OPS: Dict[int, int] = {OPS.index("nor_conv_1x1"): 1, OPS.index("nor_conv_3x3"): 3}
#: Initialisations of the convolution kernels (``Nb201TensorNetwork(kernel_init=...)``).
KERNEL_INITS = ("keras", "normal")
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")
# Keras' he_normal draws a truncated normal whose standard deviation this constant corrects.
_TRUNCATED_STD = 0.87962566103423978

#: ``name -> (shape, initialiser kind)``; the insertion order fixes each weight's seed index.
WeightSpecs = Dict[str, Tuple[Tuple[int, ...], str]]


def op_ids_of(arch: Nb201Arch) -> np.ndarray:
    """``int32 [6]`` op ids of ``arch`` in edge order (the tensor form of a cell)."""
    if not isinstance(arch, Nb201Arch):
        raise TypeError(f"expected an Nb201Arch, got {type(arch).__name__}; parse strings with Nb201Space.decode")
    return np.asarray(arch.ids, dtype=np.int32)


def cell_prefix(stage: int, cell: int) -> str:
    return f"stage{stage}_cell{cell}"


def edge_name(stage: int, cell: int, edge: int, op_id: int) -> str:
    src, dst = EDGES[edge]
    return f"{cell_prefix(stage, cell)}_e{src}{dst}_{OPS[op_id]}"



def weight_specs(c_img: int, widths: Sequence[int], cells_per_stage: int,
                 num_classes: int) -> Tuple[WeightSpecs, Dict[str, Tuple[int, int]]]:
    """``(specs, edge_of_kernel)`` of a network with stage ``widths`` on ``c_img``-channel images.

    ``edge_of_kernel`` maps the kernel of each cell conv op to its ``(edge, op id)``.
    """
    specs: WeightSpecs = {}
    edge_of_kernel: Dict[str, Tuple[int, int]] = {}

    def conv(name: str, k: int, c_in: int, c_out: int) -> None:
        specs[name] = ((k, k, c_in, c_out), "he_normal")

    def bn(name: str, c: int) -> None:
        for var in _BN_VARS:
            specs[f"{name}/{var}"] = ((c,), "ones" if var in ("gamma", "moving_variance") else "zeros")

    conv("stem_conv/kernel", 3, c_img, widths[0])
    bn("stem_bn", widths[0])
    for stage, c in enumerate(widths):
        if stage > 0:
            c_in = c // 2
            conv(f"reduction{stage}/conv_a/conv/kernel", 3, c_in, c)
            bn(f"reduction{stage}/conv_a/bn", c)
            conv(f"reduction{stage}/conv_b/conv/kernel", 3, c, c)
            bn(f"reduction{stage}/conv_b/bn", c)
            conv(f"reduction{stage}/shortcut_conv/kernel", 1, c_in, c)
        for cell in range(cells_per_stage):
            for edge in range(NUM_EDGES):
                for op_id, k in CONV_OPS.items():
                    prefix = edge_name(stage, cell, edge, op_id)
                    conv(f"{prefix}/conv/kernel", k, c, c)
                    bn(f"{prefix}/bn", c)
                    edge_of_kernel[f"{prefix}/conv/kernel"] = (edge, op_id)
    bn("head_bn", widths[-1])
    specs["classifier/kernel"] = ((widths[-1], num_classes), "glorot_uniform")
    specs["classifier/bias"] = ((num_classes,), "zeros")
    return specs, edge_of_kernel


def draw_weight(shape: Tuple[int, ...], kind: str, seed: tf.Tensor, seed_index: int, dtype: tf.DType,
                kernel_init: str) -> tf.Tensor:
    """Stateless draw of one weight from ``seed`` (``int64 [2]``), as Keras initialises it.

    ``kind`` is the spec's initialiser (``zeros``, ``ones``, ``he_normal``, ``glorot_uniform``);
    with ``kernel_init="normal"`` a ``he_normal`` kernel is drawn from N(0, 1) instead.
    ``seed_index`` (the weight's position in the specs) is folded into the seed.
    """
    if kind == "zeros":
        return tf.zeros(shape, dtype)
    if kind == "ones":
        return tf.ones(shape, dtype)
    var_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), seed_index)
    if kind == "he_normal" and kernel_init == "normal":
        return tf.random.stateless_normal(shape, var_seed, dtype=dtype)
    if kind == "he_normal":
        fan_in = int(np.prod(shape[:-1]))
        std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
        return tf.random.stateless_truncated_normal(shape, var_seed, stddev=std, dtype=dtype)
    fan_in, fan_out = shape
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.stateless_uniform(shape, var_seed, minval=-limit, maxval=limit, dtype=dtype)


def seed_tensor(seed: Any) -> tf.Tensor:
    """``int64 [2]`` stateless seed from an int or an integer ``[2]`` tensor."""
    if is_int(seed):
        return tf.constant([int(seed) & 0x7FFFFFFF, int(seed) >> 31], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2) or not seed.dtype.is_integer:
        raise ValueError(f"a stateless seed must be an int or an integer tensor of shape [2]; got {seed!r}")
    return tf.cast(seed, tf.int64)


def stateless_seed(rng: np.random.Generator) -> np.ndarray:
    """An ``int64 [2]`` stateless seed drawn from ``rng``."""
    return rng.integers(0, 2**31 - 1, size=2, dtype=np.int64)
