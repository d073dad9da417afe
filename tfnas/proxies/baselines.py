"""Baseline "proxies": FLOPs, parameter count and a random score.

The zero-shot papers compare against these (Zen-NAS Table 2, Abdelfattah et al. Table 1):
bigger networks tend to be more accurate, so FLOPs and parameters are scored higher-is-better;
``random`` is a uniform draw that ignores the network.

``flops`` and ``params`` use the space's analytic counts (``space.flops`` /
``space.num_params``) when it has them, so scoring builds no model; otherwise, and in
:meth:`score`, they count from the Keras model: parameters are the trainable weights;
FLOPs are the multiply-accumulates of the convolution and matrix-multiply ops of the traced
graph for one image (bias additions, BatchNorm, activations and pooling are free).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Tuple

import numpy as np
import tensorflow as tf

from tfnas.checks import check_rng
from tfnas.proxies.base import Proxy, ProxyBatch, build_for_scoring, check_batch, check_score_args, scored_network
from tfnas.registry import register_proxy

__all__ = ["FlopsProxy", "ParamsProxy", "RandomProxy", "count_macs", "count_params"]


def count_params(model: Any) -> int:
    """Trainable parameters of ``model`` (BatchNorm ``gamma``/``beta`` count, moving statistics do not)."""
    return int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))


def _conv_macs(op: Any) -> int:
    out = op.outputs[0].shape  # (B, H', W', C_out)
    kernel = op.inputs[1].shape  # (kh, kw, C_in, C_out)
    return int(np.prod(out[1:3])) * int(np.prod(kernel))


def _depthwise_macs(op: Any) -> int:
    out = op.outputs[0].shape  # (B, H', W', C_in * multiplier)
    kernel = op.inputs[1].shape  # (kh, kw, C_in, multiplier)
    return int(np.prod(out[1:3])) * int(np.prod(kernel))


def _matmul_macs(op: Any) -> int:
    a, b = op.inputs[0].shape, op.inputs[1].shape
    transpose_a = op.get_attr("transpose_a") if "transpose_a" in op.node_def.attr else False
    transpose_b = op.get_attr("transpose_b") if "transpose_b" in op.node_def.attr else False
    inner = a[0] if transpose_a else a[-1]
    cols = b[0] if transpose_b else b[-1]
    return int(inner) * int(cols)  # per row of the (batch of one) input


_MACS: Dict[str, Callable[[Any], int]] = {
    "Conv2D": _conv_macs,
    "DepthwiseConv2dNative": _depthwise_macs,
    "MatMul": _matmul_macs,
}


def count_macs(model: Any, input_shape: Tuple[int, ...]) -> int:
    """Multiply-accumulates of ``model`` on one image of ``input_shape`` ``(H, W, C)``.

    Traces ``model(x, training=False)`` for a batch of one and adds up every ``Conv2D``
    (``H' W' k_h k_w C_in C_out``), ``DepthwiseConv2dNative`` (``H' W' k_h k_w C_in m``) and
    ``MatMul`` (``n_in n_out``) op, wherever it sits (nested custom layers included).

    Raises:
        ValueError: when an op's shapes are not static.
    """
    spec = tf.TensorSpec((1,) + tuple(int(d) for d in input_shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        count = _MACS.get(op.type)
        if count is None:
            continue
        try:
            total += count(op)
        except TypeError as exc:  # int(None): a dynamic dimension
            raise ValueError(f"count_macs: op {op.name} ({op.type}) has non-static shapes") from exc
    return int(total)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _analytic(fn: Callable[..., Any], arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int]) -> int:
    """Calls a space's analytic count with the keyword arguments it accepts; a count that takes the image side
    as ``resolution`` (the Zen space's) gets it from ``input_shape``."""
    kwargs: dict = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
    if not _accepts(fn, "input_shape") and _accepts(fn, "resolution"):
        height, width = tuple(input_shape)[:2]
        if height != width:
            raise ValueError(f"this space counts square images only (its resolution); got input_shape={input_shape}")
        kwargs["resolution"] = int(height)
    return int(fn(arch, **{k: v for k, v in kwargs.items() if _accepts(fn, k)}))


@register_proxy("params")
class ParamsProxy(Proxy):
    """Trainable parameter count; higher is better (a size baseline, not a learned signal)."""

    name = "params"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, self.name, labels=False)
        return float(count_params(scored_network(model)))

    def score_arch(self, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                   batch_size: int, rng: np.random.Generator) -> float:
        """``space.num_params(arch, ...)`` when the space has it, else counted from the built model."""
        check_score_args(num_classes, input_shape, batch_size, rng, f"{type(self).__name__}.score_arch",
                         needs_rng=False)
        if callable(getattr(space, "num_params", None)):
            return float(_analytic(space.num_params, arch, num_classes=num_classes, input_shape=input_shape))
        return float(count_params(build_for_scoring(space, arch, num_classes, input_shape)))


@register_proxy("flops")
class FlopsProxy(Proxy):
    """Multiply-accumulates of one forward pass on one image; higher is better (a size baseline)."""

    name = "flops"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, self.name, labels=False)
        return float(count_macs(model, np.asarray(batch.images).shape[1:]))

    def score_arch(self, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                   batch_size: int, rng: np.random.Generator) -> float:
        """``space.flops(arch, ...)`` when the space has it, else counted from the built model's graph."""
        check_score_args(num_classes, input_shape, batch_size, rng, f"{type(self).__name__}.score_arch",
                         needs_rng=False)
        if callable(getattr(space, "flops", None)):
            return float(_analytic(space.flops, arch, num_classes=num_classes, input_shape=input_shape))
        return float(count_macs(build_for_scoring(space, arch, num_classes, input_shape), input_shape))


@register_proxy("random")
class RandomProxy(Proxy):
    """A uniform draw in ``[0, 1)`` from ``rng``, independent of the network (the random baseline)."""

    name = "random"

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        check_batch(batch, self.name, labels=False)
        return float(check_rng(rng, f"{self.name}.score").random())

    def score_arch(self, space: Any, arch: Any, *, num_classes: int, input_shape: Tuple[int, int, int],
                   batch_size: int, rng: np.random.Generator) -> float:
        """One draw from ``rng``; builds nothing."""
        check_score_args(num_classes, input_shape, batch_size, rng, "RandomProxy.score_arch")
        return float(rng.random())
