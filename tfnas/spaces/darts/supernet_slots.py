"""Node slots of the DARTS supernet: one chosen op per slot, traced once, with a custom gradient.

A node slot selects its input state and runs the chosen op through a ``switch_case``
(7 branches; 14 in reduction cells: stride-2 ops on the cell inputs, stride-1 ops on earlier
nodes). Slots are traced as cached ``tf.function``s, once per input signature (node position,
channels, resolution), and called from every cell that shares it. The gradient is a custom one:
a second cached function recomputes the chosen op under a tape and returns the gradients of the
input states and the weight rows. TF's own ``switch_case`` gradient pads each branch with zeros
and dummies for the captures and intermediates of all the others, which made tracing the train
step take minutes. The ops themselves run on flat weight rows (:mod:`~tfnas.spaces.darts.supernet_storage`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf

from tfnas.spaces.darts.genotype import NUM_NODES, OPS
from tfnas.spaces.darts.supernet_storage import OpStack, op_layout, unpack_row
from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM
from tfnas.spaces.ops.padding import spatial_conv_plan, symmetric_pad
from tfnas.train.supernet import drop_path

__all__ = ["NodeSlots", "run_op", "scatter", "select"]

_SKIP = OPS.index("skip_connect")


class NodeSlots:
    """The node slots of one supernet (module docstring), with their traced functions.

    Args:
        stacks: per cell, ``op id -> OpStack`` of the parameterised ops.
        pools: ``(0 = max | 1 = avg, strides) -> pooling layer``.
        reductions: indices of the reduction cells.
        noise_seed, noise_step: int64 variables seeding the drop-path masks.
        drop_path_rate: float variable, the drop-path probability of train steps.
    """

    def __init__(self, stacks: Sequence[Mapping[int, OpStack]], pools: Mapping[Tuple[int, int], Any],
                 reductions: Sequence[int], noise_seed: tf.Variable, noise_step: tf.Variable,
                 drop_path_rate: tf.Variable):
        self.stacks, self.pools, self.reductions = stacks, pools, tuple(reductions)
        self.noise_seed, self.noise_step, self.drop_path_rate = noise_seed, noise_step, drop_path_rate
        self._slot_fns: Dict[Tuple[str, bool, bool], Any] = {}

    def stack_types(self, reduction: bool) -> List[int]:
        """Op ids with a stack in a (reduction) cell: no pools; the skip only where it is a FactorizedReduce."""
        return [t for t in range(len(OPS)) if t not in (0, 1) and (t != _SKIP or reduction)]

    def _slot_plan(self, reduction: bool, states, src, op):
        """``(inputs, plan, index)``: candidate inputs, ``(input, op, strides)`` per branch, branch index."""
        n_ops, node = len(OPS), len(states) - 2
        if not reduction:
            return [select(src, states)], [(0, t, 1) for t in range(n_ops)], op
        inputs = [select(tf.minimum(src, 1), states[:2])]
        plan = [(0, t, 2) for t in range(n_ops)]
        if node == 0:
            return inputs, plan, op
        inputs.append(select(tf.clip_by_value(src - 2, 0, node - 1), states[2:]))
        plan += [(1, t, 1) for t in range(n_ops)]
        return inputs, plan, tf.where(src >= 2, n_ops, 0) + op

    def _branch(self, reduction: bool, branch, inputs, values, stats, rows, seed, rate, training: bool,
                update_stats: bool) -> tf.Tensor:
        k, t, strides = branch
        x = inputs[k]
        if t == _SKIP and strides == 1:
            return tf.identity(x)
        if t in (0, 1):
            h = self.pools[(t, strides)](x)
        else:
            j = self.stack_types(reduction).index(t)
            h = run_op(OPS[t], x, values[j], stats[j], rows[j], strides, training, update_stats)
        if not training:
            return h
        return drop_path(h, rate, seed + tf.constant([0, t], tf.int64))

    def _slot_forward(self, reduction: bool, training: bool, states, src, op, values, stats, rows, seed, rate):
        inputs, plan, index = self._slot_plan(reduction, states, src, op)
        return tf.switch_case(index, [(lambda b=b: self._branch(reduction, b, inputs, values, stats, rows, seed, rate,
                                                                training, True)) for b in plan])

    def _slot_backward(self, reduction: bool, states, src, op, values, stats, rows, seed, rate, dy):
        """``(d_states, d_values)`` of one slot: the chosen op recomputed (no BN update) under a tape."""
        inputs, plan, index = self._slot_plan(reduction, states, src, op)
        types = self.stack_types(reduction)

        def backward(branch):
            k, t, _ = branch
            watched = [inputs[k]] + ([values[types.index(t)]] if t in types else [])
            with tf.GradientTape() as tape:
                tape.watch(watched)
                h = self._branch(reduction, branch, inputs, values, stats, rows, seed, rate, True, False)
            grads = [tf.zeros_like(w) if g is None else g
                     for w, g in zip(watched, tape.gradient(h, watched, output_gradients=dy))]
            d_inputs = [grads[0] if j == k else tf.zeros_like(inputs[j]) for j in range(len(inputs))]
            d_values = [grads[1] if u == t else tf.zeros_like(values[i]) for i, u in enumerate(types)]
            return d_inputs + d_values

        out = tf.switch_case(index, [(lambda b=b: backward(b)) for b in plan])
        d_inputs, d_values = out[: len(inputs)], out[len(inputs) :]
        node = len(states) - 2
        if not reduction:
            d_states = scatter(src, d_inputs[0], states)
        elif node == 0:
            d_states = scatter(tf.minimum(src, 1), d_inputs[0], states)
        else:
            from_inputs = tf.cast(src < 2, d_inputs[0].dtype)
            d_states = scatter(tf.minimum(src, 1), d_inputs[0] * from_inputs, states[:2]) + scatter(
                tf.clip_by_value(src - 2, 0, node - 1), d_inputs[1] * (1.0 - from_inputs), states[2:])
        return d_states, d_values

    def _slot_fn(self, kind: str, reduction: bool, training: bool = True):
        key = (kind, reduction, training)
        if key not in self._slot_fns:
            if kind == "forward":
                fn = lambda *a: self._slot_forward(reduction, training, *a)  # noqa: E731
            else:
                fn = lambda *a: self._slot_backward(reduction, *a)  # noqa: E731
            self._slot_fns[key] = tf.function(fn, autograph=False)
        return self._slot_fns[key]

    def output(self, cell: int, q: int, src: tf.Tensor, op: tf.Tensor, states, selected, training: bool):
        """Output of node slot ``q`` (``node = q // 2``) of ``cell``; ``states`` are the states before the node."""
        reduction = cell in self.reductions
        types = self.stack_types(reduction)
        stats = [self.stacks[cell][t].stats for t in types]
        rows = [selected[t][0][q] for t in types]
        values = [selected[t][1][q] for t in types]
        seed = tf.stack([self.noise_seed, (self.noise_step * 1024 + cell * 2 * NUM_NODES + q) * len(OPS)])
        forward = self._slot_fn("forward", reduction, training)
        if not training:
            return forward(states, src, op, values, stats, rows, seed, self.drop_path_rate)
        backward = self._slot_fn("backward", reduction)
        n = len(states)

        @tf.custom_gradient
        def apply(*flat):
            # stop_gradient: the tape must not differentiate the forward call (its switch_case) itself.
            st, vs = [tf.stop_gradient(x) for x in flat[:n]], [tf.stop_gradient(x) for x in flat[n:]]
            h = forward(st, src, op, vs, stats, rows, seed, self.drop_path_rate)

            def grad(dy):
                d_states, d_values = backward(st, src, op, vs, stats, rows, seed, self.drop_path_rate, dy)
                return list(d_states) + list(d_values)

            return h, grad

        return apply(*states, *values)


def stack_batch_norm(x, gamma, beta, stats, row, which: int, training: bool, update_stats: bool = True):
    """BatchNorm with the statistics ``stats[row, which]`` (``[2 (mean, var), C]``) of a stack.

    Training normalises with the batch moments and moves the row like Keras
    (``stat = momentum * stat + (1 - momentum) * batch``, biased variance); the row is read
    when the op runs, so an op applied twice in one step updates twice, in order.
    """
    if training:
        mean, var = tf.nn.moments(x, axes=[0, 1, 2])
        if update_stats:
            old = tf.gather(stats, row)[which]
            new = tf.stack([mean, var]) * (1.0 - BN_MOMENTUM) + old * BN_MOMENTUM
            stats.scatter_nd_update(tf.reshape(tf.stack([row, which]), [1, 2]), new[None])
    else:
        current = tf.gather(stats, row)[which]
        mean, var = current[0], current[1]
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, BN_EPSILON)


def depthwise_conv(x, kernel, k: int, strides: int, dilation: int):
    """Depthwise ``k x k`` conv of ``x`` with PyTorch padding (:func:`~tfnas.spaces.ops.padding.spatial_conv_plan`)."""
    padding, pad, subsample, conv_strides, conv_dilation = spatial_conv_plan(k, strides, dilation, "DartsSupernet")
    if pad:
        x = symmetric_pad(x, pad)
    if subsample > 1:
        x = x[:, ::subsample, ::subsample, :]
    return tf.nn.depthwise_conv2d(x, kernel, [1, conv_strides, conv_strides, 1], padding.upper(),
                                  dilations=[conv_dilation, conv_dilation])



def run_op(op: str, x, values, stats, row, strides: int, training: bool, update_stats: bool = True):
    """Op ``op`` on ``x (B, H, W, C)`` with its parameters unpacked from the flat row ``values``."""
    layout, _ = op_layout(op, int(x.shape[-1]))
    w = unpack_row(values, layout)
    x = tf.nn.relu(x)
    if op == "skip_connect":  # FactorizedReduce
        y = tf.concat([tf.nn.conv2d(x, w["conv_a"], 2, "VALID"), tf.nn.conv2d(x[:, 1:, 1:, :], w["conv_b"], 2, "VALID")], -1)
        return stack_batch_norm(y, w["bn.gamma"], w["bn.beta"], stats, row, 0, training, update_stats)
    k = int(op[-1])
    if op.startswith("sep_conv"):
        for b, (dw, pw, s) in enumerate((("dw1", "pw1", strides), ("dw2", "pw2", 1))):
            if b:
                x = tf.nn.relu(x)
            x = tf.nn.conv2d(depthwise_conv(x, w[dw], k, s, 1), w[pw], 1, "VALID")
            x = stack_batch_norm(x, w[f"bn{b + 1}.gamma"], w[f"bn{b + 1}.beta"], stats, row, b, training, update_stats)
        return x
    x = tf.nn.conv2d(depthwise_conv(x, w["dw"], k, strides, 2), w["pw"], 1, "VALID")
    return stack_batch_norm(x, w["bn.gamma"], w["bn.beta"], stats, row, 0, training, update_stats)


def select(index: tf.Tensor, candidates: List[tf.Tensor]) -> tf.Tensor:
    """``candidates[index]`` (no gradient is taken through it: node slots have their own)."""
    if len(candidates) == 1:
        return candidates[0]
    return tf.switch_case(index, [(lambda c=c: tf.identity(c)) for c in candidates])


def scatter(index: tf.Tensor, value: tf.Tensor, like: List[tf.Tensor]) -> List[tf.Tensor]:
    """``[value if k == index else zeros]`` over ``like`` (the gradient of :func:`select`)."""
    if len(like) == 1:
        return [value]
    return tf.switch_case(index, [(lambda k=k: [value if j == k else tf.zeros_like(c) for j, c in enumerate(like)])
                                  for k in range(len(like))])

