"""The weight-sharing supernet engine: one traced train step and one eval step for every candidate.

Weight-sharing searches (RelativeNAS over the DARTS space, SLNAS over the lite space) train a
single weight set ``W`` holding every op of every slot, one sampled candidate at a time. What
they share lives here:

- **One graph for all candidates.** A candidate enters the steps as an int32 tensor ``ids``
  (the space's ``to_ids``), never as a Python value, so the train and the eval step are each
  traced once (``trace_counts`` counts the traces; tests check them). The steps run through
  :class:`~tfnas.grappler.GraphCall` (Grappler off on CPU, where its first-call pass costs
  minutes and gives nothing).
- **Only the candidate's parameters move.** :func:`masked_sgd` is PyTorch's SGD (momentum,
  dampening 0, ``g += weight_decay * w``) applied where a ``used`` mask is set: the gradient is
  clipped to a global norm over the used parameters only, unused parameters keep their values
  and momentum buffers (no decay). Masks are scalars (one flag per variable) or row vectors
  (one flag per row of a stacked variable).
- **Drop-path** with a rate variable ramped by the search and stateless masks seeded by
  ``(noise_seed, noise_step)``, so a resumed search draws the same masks.
- ``train_epoch`` / ``evaluate`` loops with a finite-loss check, ``get_weights`` /
  ``set_weights`` for checkpoints, ``reset_momentum`` (a fresh optimizer per candidate).

A subclass builds its variables, lists them in ``_state`` (everything a checkpoint holds) and
``_buffers`` (momentum buffers), implements ``_forward(images, ids, training)``
(``(logits, aux_logits)``), ``_train_step(images, labels, ids, lr)`` (returns ``(loss_sum, correct,
count)``; the inference step is shared) and ``to_ids(arch)``, and calls :meth:`SupernetEngine._init_steps` at the end of its constructor.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfnas.grappler import GraphCall
from tfnas.train.errors import TrainingDivergedError

__all__ = ["BankSwitch", "SupernetEngine", "correct", "drop_path", "masked_sgd"]


def correct(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Correct top-1 predictions of ``logits`` for one-hot ``labels``."""
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(labels, -1)), tf.float32))


def drop_path(h: tf.Tensor, rate: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Zeroes whole examples of ``h`` with probability ``rate`` and rescales the rest by ``1 / (1 - rate)``.

    ``seed`` is a stateless seed ``int64 [2]``: the same seed draws the same mask.
    """
    keep = 1.0 - rate
    noise = tf.random.stateless_uniform(tf.stack([tf.shape(h)[0], 1, 1, 1]), seed=seed)
    return h * (tf.floor(keep + noise) / keep)


def _mask_like(mask: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """``mask`` (scalar or ``[rows]``) as a float tensor broadcastable against ``value``."""
    mask = tf.cast(mask, value.dtype)
    if mask.shape.rank:
        mask = tf.reshape(mask, [-1] + [1] * (value.shape.rank - 1))
    return mask


def masked_sgd(params: Sequence[Any], buffers: Sequence[Any], grads: Sequence[Optional[tf.Tensor]],
               used: Sequence[Any], lr: tf.Tensor, momentum: float, weight_decay: float, grad_clip: float,
               norm_weights: Optional[Sequence[Any]] = None, scale: Optional[tf.Tensor] = None) -> tf.Tensor:
    """One PyTorch-style SGD step on the used parts of ``params`` (module docstring); returns the scale.

    Args:
        params, buffers: variables and their momentum buffers (same shapes).
        grads: data gradients (``None`` = zero).
        used: per variable, ``True`` (always used), a scalar bool tensor or a bool/float ``[rows]``
            mask of its first axis; unused entries keep value and buffer.
        lr: learning rate (scalar tensor).
        grad_clip: clip the gradient to this global norm over the used entries (0 = off).
        norm_weights: per variable, an optional ``[rows]`` weight of each row in the norm (a row
            read by several slots carries their summed gradient once: pass ``1 / uses``).
        scale: a clip factor computed by the caller (then ``grad_clip`` is not applied here).

    Returns:
        the clip factor applied (1.0 when not clipped).
    """
    grads = [tf.zeros_like(p) if g is None else tf.convert_to_tensor(g) for p, g in zip(params, grads)]
    flags: Dict[int, tf.Tensor] = {}  # one float flag per distinct scalar mask object
    masks: List[Optional[tf.Tensor]] = []
    for u, g in zip(used, grads):
        if u is True:
            masks.append(None)
            continue
        if id(u) not in flags:
            flags[id(u)] = tf.cast(u, g.dtype)
        masks.append(flags[id(u)])
    if scale is None and grad_clip > 0:
        terms = []
        for k, (g, m) in enumerate(zip(grads, masks)):
            sq = tf.square(g)
            if norm_weights is not None and norm_weights[k] is not None:
                sq = sq * _mask_like(norm_weights[k], g)
            if m is not None and m.shape.rank:
                sq = sq * _mask_like(m, g)
            total = tf.reduce_sum(sq)
            terms.append(total if m is None or m.shape.rank else total * m)
        norm = tf.sqrt(tf.add_n(terms)) if terms else tf.constant(0.0)
        scale = tf.minimum(1.0, grad_clip / (norm + 1e-6))
    elif scale is None:
        scale = tf.constant(1.0)
    fused: Dict[int, Tuple[tf.Tensor, tf.Tensor]] = {}
    for p, buf, g, m in zip(params, buffers, grads, masks):
        if m is None:  # always used
            step = momentum * buf + g * scale + weight_decay * p
            buf.assign(step)
            p.assign_sub(lr * step)
        elif m.shape.rank:  # a row mask
            m = _mask_like(m, g)
            step = momentum * buf + g * scale + weight_decay * p
            new_buf = m * step + (1.0 - m) * buf
            buf.assign(new_buf)
            p.assign_sub(lr * m * new_buf)
        else:
            # buf = mom * buf + d; p -= lr * buf, one fused kernel; unused: lr 0, momentum 1, d 0.
            if id(m) not in fused:
                fused[id(m)] = (lr * m, momentum * m + (1.0 - m))
            lr_m, mom_m = fused[id(m)]
            d = m * (g * scale + weight_decay * p)
            tf.raw_ops.ResourceApplyMomentum(var=_handle(p), accum=_handle(buf), lr=lr_m, grad=d, momentum=mom_m,
                                             use_locking=False, use_nesterov=False)
    return scale


def _handle(v: Any) -> tf.Tensor:
    """The resource handle of a ``tf.Variable`` or a Keras 3 variable on the TensorFlow backend."""
    return v.handle if hasattr(v, "handle") else v.value.handle


class SupernetEngine(abc.ABC):
    """Shared steps, update rule and state of a weight-sharing supernet (module docstring).

    Attributes (set by :meth:`_init_steps` and the subclass):
        trace_counts: ``{"train": n, "eval": n}`` Python traces of the two steps.
        drop_path_rate: float variable, the drop-path probability of train steps.
        noise_seed, noise_step: int64 variables seeding the drop-path masks.
    """

    ids_shape: Tuple[int, ...] = ()
    _state: List[Any]
    _buffers: List[Any]

    def _init_steps(self, input_shape: Sequence[int], num_classes: int, jit_compile: bool,
                    graph_optimizer: Optional[bool]) -> None:
        """Creates the drop-path variables and the two traced steps (call after building ``_state``)."""
        self.trace_counts = {"train": 0, "eval": 0}
        self.drop_path_rate = tf.Variable(0.0, trainable=False, name="drop_path_rate")
        self.noise_seed = tf.Variable(0, trainable=False, dtype=tf.int64, name="noise_seed")
        self.noise_step = tf.Variable(0, trainable=False, dtype=tf.int64, name="noise_step")
        images = tf.TensorSpec((None,) + tuple(input_shape), tf.float32)
        labels = tf.TensorSpec((None, int(num_classes)), tf.float32)
        ids, lr = tf.TensorSpec(self.ids_shape, tf.int32), tf.TensorSpec((), tf.float32)

        def train(images, labels, ids, lr):
            self.trace_counts["train"] += 1  # Python side effect: runs once per trace
            out = self._train_step(images, labels, ids, lr)
            self.noise_step.assign_add(1)
            return out

        def evaluate(images, labels, ids):
            self.trace_counts["eval"] += 1
            return self._eval_step(images, labels, ids)

        self._train_fn = GraphCall(tf.function(train, input_signature=[images, labels, ids, lr],
                                               jit_compile=jit_compile, autograph=False), graph_optimizer)
        self._eval_fn = GraphCall(tf.function(evaluate, input_signature=[images, labels, ids],
                                              jit_compile=jit_compile, autograph=False), graph_optimizer)

    # ---- what a subclass provides -----------------------------------------------------------

    @abc.abstractmethod
    def _train_step(self, images: tf.Tensor, labels: tf.Tensor, ids: tf.Tensor, lr: tf.Tensor):
        """Forward, loss, gradient and :func:`masked_sgd` update; returns ``(loss_sum, correct, count)``."""

    @abc.abstractmethod
    def _forward(self, images: tf.Tensor, ids: tf.Tensor, training: bool):
        """``(logits, aux_logits or None)`` of the candidate ``ids``."""

    def _eval_step(self, images: tf.Tensor, labels: tf.Tensor, ids: tf.Tensor):
        """Inference-mode ``(loss_sum, correct, count)``."""
        logits, _ = self._forward(images, ids, training=False)
        per_example = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        return tf.reduce_sum(per_example), correct(labels, logits), tf.cast(tf.shape(labels)[0], tf.float32)

    @abc.abstractmethod
    def to_ids(self, arch: Any) -> np.ndarray:
        """The int32 ``ids`` of ``arch`` (shape ``ids_shape``); raises ``ValueError`` on a bad arch."""

    def _ids(self, arch: Any) -> tf.Tensor:
        return tf.constant(self.to_ids(arch), tf.int32)

    # ---- weight set -----------------------------------------------------------------------

    def get_weights(self) -> List[np.ndarray]:
        """Every array of ``W`` (trainable parameters and BatchNorm statistics), in a fixed order."""
        return [np.array(v.numpy()) for v in self._state]

    def set_weights(self, values: Sequence[np.ndarray]) -> None:
        """Loads arrays produced by :meth:`get_weights` of a supernet of the same configuration."""
        if len(values) != len(self._state):
            raise ValueError(f"expected {len(self._state)} arrays (a weight set of this supernet), got {len(values)}")
        for v, value in zip(self._state, values):
            if tuple(v.shape) != tuple(np.shape(value)):
                raise ValueError(f"weight {v.name}: expected shape {tuple(v.shape)}, got {np.shape(value)}")
            v.assign(value)

    def get_buffers(self) -> List[np.ndarray]:
        """The momentum buffers (for an exact resume of a search that keeps them across steps)."""
        return [np.array(b.numpy()) for b in self._buffers]

    def set_buffers(self, values: Sequence[np.ndarray]) -> None:
        """Loads arrays produced by :meth:`get_buffers`."""
        if len(values) != len(self._buffers):
            raise ValueError(f"expected {len(self._buffers)} momentum buffers, got {len(values)}")
        for b, value in zip(self._buffers, values):
            b.assign(value)

    def reset_momentum(self) -> None:
        """Zeroes every momentum buffer (a fresh optimizer for the next candidate)."""
        for buf in self._buffers:
            buf.assign(tf.zeros_like(buf))

    def set_drop_path_rate(self, rate: float) -> None:
        """Drop-path probability of the train steps, in ``[0, 1)``."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1). Received: rate={rate!r}")
        self.drop_path_rate.assign(float(rate))

    def set_noise_seed(self, seed: int, step: int = 0) -> None:
        """Seeds the drop-path masks of the following train steps (stateless draws, so resumable)."""
        self.noise_seed.assign(int(seed))
        self.noise_step.assign(int(step))

    # ---- public steps ---------------------------------------------------------------------

    def train_step(self, images: Any, labels: Any, arch: Any, lr: float) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One SGD step of candidate ``arch`` on ``images (B, H, W, C)`` and one-hot ``labels (B, K)``.

        Returns scalar tensors ``(loss_sum, correct, count)``: summed per-example cross-entropy
        before the update, correct top-1 predictions, batch size.
        """
        return self._train_fn(tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(labels, tf.float32),
                              self._ids(arch), tf.constant(lr, tf.float32))

    def eval_step(self, images: Any, labels: Any, arch: Any) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(loss_sum, correct, count)`` of ``arch`` in inference mode (moving BatchNorm statistics)."""
        return self._eval_fn(tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(labels, tf.float32),
                             self._ids(arch))

    def train_epoch(self, dataset: tf.data.Dataset, arch: Any, lr: float, steps: int = 0) -> float:
        """Resets momentum and trains ``arch`` over ``dataset`` (at most ``steps`` batches when > 0).

        Returns the mean training cross-entropy; raises ``TrainingDivergedError`` when it is not finite.
        """
        self.reset_momentum()
        ids, lr_t = self._ids(arch), tf.constant(lr, tf.float32)
        outs = []
        for k, (images, labels) in enumerate(dataset):
            if steps and k >= steps:
                break
            outs.append(self._train_fn(images, labels, ids, lr_t))
        loss_sum, count = _sums(outs)
        if count == 0:
            raise ValueError("the training dataset yielded no batch")
        if not np.isfinite(loss_sum):
            raise TrainingDivergedError(f"search training loss is {loss_sum / count}; lower [search] lr or set "
                                        f"grad_clip")
        return loss_sum / count

    def evaluate(self, dataset: tf.data.Dataset, arch: Any) -> float:
        """Mean cross-entropy of ``arch`` over ``dataset`` in inference mode."""
        ids = self._ids(arch)
        loss_sum, count = _sums([self._eval_fn(images, labels, ids) for images, labels in dataset])
        if count == 0:
            raise ValueError("the evaluation dataset yielded no batch")
        return loss_sum / count


def _sums(outs: Sequence[Tuple[tf.Tensor, tf.Tensor, tf.Tensor]]) -> Tuple[float, float]:
    """The loss sums and counts of the steps' ``(loss_sum, correct, count)``, added in step order as
    Python floats. Read once, after the epoch's steps: on a GPU a value read after each step would
    make the next step wait for it."""
    loss_sum, count = 0.0, 0.0
    for out in outs:
        loss_sum, count = loss_sum + float(out[0]), count + float(out[2])
    return loss_sum, count


class BankSwitch:
    """A switch over Keras layers with a gradient that recomputes only the chosen branch, traced once per shape.

    TensorFlow's own ``switch_case`` gradient makes every branch output the intermediates of all
    branches (zeros for the ones not taken), so tracing a train step grows with the square of the
    branch count. Here the forward ``switch_case`` runs outside the tape and the gradient is a
    second ``switch_case`` that re-runs the chosen branch under a tape (the DARTS supernet's node
    slots do the same on flat weight rows). Both are ``tf.function``s that take the layers'
    variable *values* as arguments and run a template bank with ``stateless_call``, so every slot
    of the same structure (``key``) calls the same two traced functions.

    Layers run in training mode (BatchNorm on batch statistics; layers without a ``training``
    argument, e.g. pools, as they are); the chosen layer's new
    non-trainable values (BatchNorm moving statistics) are written back to its variables.
    """

    def __init__(self):
        self._fns: dict = {}

    def __call__(self, key: Any, index: tf.Tensor, branches: Sequence[Tuple[int, int, Any]],
                 inputs: Sequence[tf.Tensor], bank: Sequence[Any]) -> tf.Tensor:
        """Output of branch ``index``.

        Args:
            key: hashable; slots with equal keys must have the same branches, input shapes and
                layer configurations (their traced functions are shared).
            index: int32 scalar, the branch to run.
            branches: per branch ``(layer id, input id, post)``: run ``bank[layer id]`` on
                ``inputs[input id]`` and map its output through ``post`` (e.g. a resize); all
                branches' outputs must have the same shape.
            inputs: candidate input tensors.
            bank: built Keras layers.
        """
        trainable = [list(layer.trainable_variables) for layer in bank]
        stats = [list(layer.non_trainable_variables) for layer in bank]
        if key not in self._fns:
            self._fns[key] = self._trace(branches, list(bank), [len(v) for v in trainable], [len(v) for v in stats])
        forward, backward = self._fns[key]
        values = [tf.convert_to_tensor(v) for vs in trainable for v in vs]
        stat_values = [tf.convert_to_tensor(v) for vs in stats for v in vs]
        stat_vars = [v for vs in stats for v in vs]
        n_in = len(inputs)

        @tf.custom_gradient
        def apply(*flat):
            xs = [tf.stop_gradient(t) for t in flat[:n_in]]
            ws = [tf.stop_gradient(t) for t in flat[n_in:]]
            out = forward(index, xs, ws, stat_values)
            for v, value in zip(stat_vars, out[1:]):
                v.assign(value)

            def grad(dy):
                return backward(index, xs, ws, stat_values, dy)

            return out[0], grad

        return apply(*inputs, *values)

    @staticmethod
    def _trace(branches, bank, n_train, n_stats):
        w_off = np.cumsum([0] + n_train).tolist()
        s_off = np.cumsum([0] + n_stats).tolist()

        def run(k, xs, ws, stats):
            layer_id, input_id, post = branches[k]
            layer = bank[layer_id]
            mode = {"training": True} if getattr(layer, "_call_has_training_arg", True) else {}
            out, new = layer.stateless_call(ws[w_off[layer_id] : w_off[layer_id + 1]],
                                            stats[s_off[layer_id] : s_off[layer_id + 1]], xs[input_id], **mode)
            return post(out), list(new)

        def forward(index, xs, ws, stats):
            def branch(k):
                out, new = run(k, xs, ws, stats)
                layer_id = branches[k][0]
                updated = list(stats[: s_off[layer_id]]) + new + list(stats[s_off[layer_id + 1] :])
                return [out] + updated

            return tf.switch_case(index, [(lambda k=k: branch(k)) for k in range(len(branches))])

        def backward(index, xs, ws, stats, dy):
            def branch(k):
                layer_id, input_id, _ = branches[k]
                own = list(range(w_off[layer_id], w_off[layer_id + 1]))
                watched = [xs[input_id]] + [ws[j] for j in own]
                with tf.GradientTape() as tape:
                    tape.watch(watched)
                    out, _ = run(k, xs, ws, stats)
                got = tape.gradient(out, watched, output_gradients=dy)
                got = [tf.zeros_like(w) if g is None else g for w, g in zip(watched, got)]
                d_xs = [got[0] if j == input_id else tf.zeros_like(x) for j, x in enumerate(xs)]
                d_ws = [tf.zeros_like(w) for w in ws]
                for j, g in zip(own, got[1:]):
                    d_ws[j] = g
                return d_xs + d_ws

            return tf.switch_case(index, [(lambda k=k: branch(k)) for k in range(len(branches))])

        return tf.function(forward, autograph=False), tf.function(backward, autograph=False)
