"""Training and batched prediction for the graph predictors (Siamese-NAS, "Predictors").

:class:`PredictorTrainer` trains a :class:`~tfnas.predictors.models.NeuralPredictor` or
:class:`~tfnas.predictors.models.SiamesePredictor` with Adam, the step schedule of the paper
(the first 70% of ``total_epochs`` at ``lr_high``, the rest at ``lr_low``) and Huber loss
(delta 0.5) on accuracies in ``[0, 1]`` — on both outputs of the siamese predictor.

Training runs one traced function per epoch: the epoch's ``steps_per_epoch`` batches
(fixed shapes ``(step_capacity, batch_size, N, ...)``, the steps past ``steps_per_epoch``
unused) go in at once and a graph loop runs the train step on each, so there is no Python
overhead per step and no retrace ever, also when the training set grows between calls (batch
top sampling) or the step count changes up to the capacity (the budgets of a sweep share one
compiled loop); :attr:`PredictorTrainer.train_traces` counts the traces of the step.
:meth:`predict` ranks any number of graphs through one more trace per branch (open batch dimension).

Speed (2-core CPU, batch 8, N=10, K=9, 64 units): the step is bound by per-op overhead, so
the loop is XLA-compiled by default (``jit_compile=True``): it runs about as fast as the
non-XLA graph with one intra-op thread and 2-3x faster with TF's default two threads, at a
one-off compile cost of 1-3 s. Prediction never uses XLA.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tfnas.predictors.layers import check_units


@dataclasses.dataclass(frozen=True, eq=False)
class GraphData:
    """A training set of graphs: ``adj (M, N, N)``, ``ops (M, N, K)``, ``y (M,)``, ``ec (M, E)``.

    ``y`` holds accuracies in ``[0, 1]``; ``ec`` is the normalised estimation code, needed
    only by the siamese predictor. Arrays are converted to float32 on construction.
    """

    adj: np.ndarray
    ops: np.ndarray
    y: np.ndarray
    ec: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        for name in ("adj", "ops", "y", "ec"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value, dtype=np.float32))
        m = self.adj.shape[0]
        if self.adj.ndim != 3 or self.ops.ndim != 3 or self.y.ndim != 1:
            raise ValueError(
                "GraphData needs adj (M, N, N), ops (M, N, K), y (M,). Received shapes: "
                f"adj={self.adj.shape}, ops={self.ops.shape}, y={self.y.shape}"
            )
        if self.ec is not None and self.ec.ndim != 2:
            raise ValueError(f"GraphData needs ec (M, E). Received: ec.shape={self.ec.shape}")
        lengths = {len(a) for a in (self.adj, self.ops, self.y, self.ec) if a is not None}
        if lengths != {m}:
            raise ValueError(f"GraphData arrays differ in length: {sorted(lengths)}")
        if m < 1:
            raise ValueError("GraphData needs at least one graph")

    def __len__(self) -> int:
        return int(self.adj.shape[0])


DataLike = Union[GraphData, Sequence[np.ndarray]]


def as_graph_data(data: DataLike) -> GraphData:
    """Accepts a :class:`GraphData` or a tuple ``(adj, ops, y[, ec])``."""
    if isinstance(data, GraphData):
        return data
    if not isinstance(data, (tuple, list)) or len(data) not in (3, 4):
        raise ValueError("data must be GraphData or a tuple (adj, ops, y[, ec])")
    return GraphData(*data)


def learning_rate_at(
    epoch: int,
    total_epochs: int,
    lr_high: float = 1e-3,
    lr_low: float = 1e-4,
    high_fraction: float = 0.7,
) -> float:
    """Step schedule of Siamese-NAS: ``lr_high`` for epochs ``< floor(high_fraction * total)``.

    The paper splits training 20% / 50% / 30% with 1e-3, 1e-3, 1e-4, i.e. 70% at ``lr_high``.
    With ``total_epochs=200`` epochs 0..139 use 1e-3 and 140..199 use 1e-4; epochs past the
    end keep ``lr_low``.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0. Received: epoch={epoch}")
    boundary = int(math.floor(high_fraction * total_epochs + 1e-9))
    return float(lr_high if epoch < boundary else lr_low)


def huber(y_true, y_pred, delta: float):
    """Mean Huber loss over the batch: ``0.5 e^2`` for ``|e| <= delta``, else ``delta (|e| - delta/2)``.

    ``y_true (B,), y_pred (B,) -> ()``.
    """
    error = tf.abs(y_true - y_pred)
    quadratic = tf.minimum(error, delta)
    return tf.reduce_mean(0.5 * tf.square(quadratic) + delta * (error - quadratic))


class FusedAdam:
    """Adam (Kingma & Ba 2015) with one fused ``ResourceApplyAdam`` kernel per variable.

    The same update as ``keras.optimizers.Adam`` (``m, v`` moments, bias correction folded
    into the step size, ``var -= lr_t m / (sqrt(v) + epsilon)``) at a fraction of the graph
    ops: the train step of a small graph predictor is dominated by per-op overhead, and
    Keras' optimizer spends some forty ops on each variable.

    Args:
        variables: the trainable variables, fixed at construction.
        learning_rate: initial step size; change it with :meth:`set_learning_rate` (a
            variable, so traced steps need no retrace).
    """

    def __init__(self, variables: Sequence[tf.Variable], learning_rate: float = 1e-3,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        self.variables = list(variables)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.learning_rate = tf.Variable(float(learning_rate), trainable=False, dtype=tf.float32)
        self.iterations = tf.Variable(0, trainable=False, dtype=tf.int64)
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]

    def set_learning_rate(self, value: float) -> None:
        self.learning_rate.assign(float(value))

    def reset(self) -> None:
        """Zeroes the moments and the step count (a fresh optimizer on the same variables)."""
        self.iterations.assign(0)
        for slot in self.m + self.v:
            slot.assign(tf.zeros_like(slot))

    def apply_gradients(self, grads: Sequence[tf.Tensor]) -> None:
        """One Adam update of every variable from ``grads`` (same order as ``variables``)."""
        step = tf.cast(self.iterations.assign_add(1), tf.float32)
        beta_1_power = tf.pow(self.beta_1, step)
        beta_2_power = tf.pow(self.beta_2, step)
        for var, grad, m, v in zip(self.variables, grads, self.m, self.v):
            if grad is None:  # a variable the loss does not reach
                continue
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power,
                beta2_power=beta_2_power, lr=self.learning_rate, beta1=self.beta_1,
                beta2=self.beta_2, epsilon=self.epsilon, grad=grad,
            )


def epoch_indices(size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices into ``range(size)``: shuffled passes over the set, wrapping around.

    Every element appears once per pass; ``size=1`` repeats the one element.
    """
    passes = -(-count // size)
    return np.concatenate([rng.permutation(size) for _ in range(passes)])[:count]


class PredictorTrainer:
    """Trains a graph predictor and ranks graphs with it.

    Args:
        model: a ``NeuralPredictor`` or ``SiamesePredictor`` (anything with ``num_nodes``,
            ``num_ops``, ``ec_dim`` (0: no code), ``accuracy(adj, ops, ec, training)`` and a
            call returning one accuracy ``(B,)`` or a tuple of them).
        total_epochs: epochs of the whole schedule.
        steps_per_epoch: train steps per epoch (the paper: ``max(budget // 8, 1)``, see
            :func:`steps_for_budget`); change it with :meth:`set_steps_per_epoch`.
        step_capacity: the most steps per epoch the compiled loop takes (default and at least
            ``steps_per_epoch``); a trainer built for the largest budget serves the smaller ones.
        batch_size: graphs per step (fixed; part of the traced signature).
        lr_high, lr_low, high_fraction: the schedule (:func:`learning_rate_at`).
        huber_delta: Huber delta on accuracies in ``[0, 1]``.
        seed: seeds the trainer's own ``numpy.random.Generator``, used when ``train_epochs``
            gets no ``rng``.
        jit_compile: XLA-compile the training loop (see the module docstring for timings);
            prediction is never compiled.

    Attributes:
        epoch: epochs trained so far (drives the schedule).
        train_traces: traces of the train step (stays 1).
        predict_traces: traces of the prediction functions (one per branch used).
    """

    def __init__(
        self,
        model: keras.Model,
        total_epochs: int = 200,
        steps_per_epoch: int = 1,
        batch_size: int = 8,
        lr_high: float = 1e-3,
        lr_low: float = 1e-4,
        huber_delta: float = 0.5,
        seed: int = 0,
        high_fraction: float = 0.7,
        jit_compile: bool = True,
        step_capacity: Optional[int] = None,
    ):
        self.total_epochs = check_units(total_epochs, "PredictorTrainer", "total_epochs")
        self.steps_per_epoch = check_units(steps_per_epoch, "PredictorTrainer", "steps_per_epoch")
        self.step_capacity = max(self.steps_per_epoch, check_units(step_capacity or 1, "PredictorTrainer",
                                                                   "step_capacity"))
        self.batch_size = check_units(batch_size, "PredictorTrainer", "batch_size")
        if not 0.0 <= high_fraction <= 1.0:
            raise ValueError(f"high_fraction must lie in [0, 1]. Received: high_fraction={high_fraction}")
        if huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0. Received: huber_delta={huber_delta}")
        self.model = model
        self.lr_high, self.lr_low, self.high_fraction = float(lr_high), float(lr_low), float(high_fraction)
        self.huber_delta = float(huber_delta)
        self.jit_compile = bool(jit_compile)
        self.rng = np.random.default_rng(seed)
        self.num_nodes, self.num_ops = int(model.num_nodes), int(model.num_ops)
        self.ec_dim = int(getattr(model, "ec_dim", 0) or 0)
        self.train_traces = 0
        self.predict_traces = 0
        self._epoch = 0
        if not model.built:
            model.build(model.input_shapes())
        self.optimizer = FusedAdam(model.trainable_variables, learning_rate=self.learning_rate_at(0))
        signature = self._signature(self.batch_size, with_y=True, with_code=self.ec_dim > 0)
        self._train_epoch = tf.function(
            self._train_epoch_body,
            input_signature=[tf.TensorSpec((), tf.int32)] + [
                tf.TensorSpec((self.step_capacity, *spec.shape), spec.dtype) for spec in signature],
            jit_compile=self.jit_compile,
            autograph=False,
        )
        self._predict_fns = {}

    def reset(self, seed: int) -> None:
        """Starts a new training run on the same traced/compiled functions.

        The weights (and BatchNorm statistics) are redrawn as a new model of the same config
        with ``seed`` would draw them, the Adam state is zeroed and the schedule restarts at
        epoch 0. Search methods reuse one trainer across repeats this way, so a sweep neither
        recompiles per run nor grows the process with dead compiled functions.
        """
        fresh = type(self.model).from_config({**self.model.get_config(), "seed": int(seed)})
        fresh.build(fresh.input_shapes())
        if len(fresh.weights) != len(self.model.weights):
            raise RuntimeError("reset: a model of the same config has a different number of weights")
        for target, source in zip(self.model.weights, fresh.weights):
            target.assign(source)
        self.optimizer.reset()
        self.optimizer.set_learning_rate(self.learning_rate_at(0))
        self._epoch = 0
        self.rng = np.random.default_rng(seed)

    def set_schedule(self, total_epochs: int, lr_high: float, lr_low: float) -> None:
        """Another step schedule (:func:`learning_rate_at`) from the next epoch on. The learning
        rate is a variable set before each epoch, so no traced function changes."""
        self.total_epochs = check_units(total_epochs, "PredictorTrainer", "total_epochs")
        self.lr_high, self.lr_low = float(lr_high), float(lr_low)
        self.optimizer.set_learning_rate(self.learning_rate_at(self._epoch))

    def set_steps_per_epoch(self, steps: int) -> None:
        """Trains ``steps`` steps per epoch from now on (at most :attr:`step_capacity`; no retrace)."""
        steps = check_units(steps, "PredictorTrainer", "steps_per_epoch")
        if steps > self.step_capacity:
            raise ValueError(f"steps_per_epoch={steps} exceeds this trainer's step_capacity={self.step_capacity}")
        self.steps_per_epoch = steps

    # -- schedule -------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Epochs trained so far."""
        return self._epoch

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` under this trainer's schedule."""
        return learning_rate_at(epoch, self.total_epochs, self.lr_high, self.lr_low, self.high_fraction)

    # -- traced functions -----------------------------------------------------------------
    def _signature(self, batch: Optional[int], with_y: bool, with_code: bool) -> List[tf.TensorSpec]:
        n, k = self.num_nodes, self.num_ops
        spec = [tf.TensorSpec((batch, n, n), tf.float32), tf.TensorSpec((batch, n, k), tf.float32)]
        if with_y:
            spec.append(tf.TensorSpec((batch,), tf.float32))
        if with_code:
            spec.append(tf.TensorSpec((batch, self.ec_dim), tf.float32))
        return spec

    def _outputs(self, adj, ops, ec, training: bool) -> Tuple[tf.Tensor, ...]:
        inputs = (adj, ops) if ec is None else (adj, ops, ec)
        outputs = self.model(inputs, training=training)
        return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)

    def total_loss(self, y, outputs: Sequence[tf.Tensor]):
        """Sum of the Huber losses of every output against the same targets ``y (B,)``."""
        return tf.add_n([huber(y, out, self.huber_delta) for out in outputs])

    def _train_step_body(self, adj, ops, y, ec=None):
        """One Adam step on a batch ``adj (b, N, N), ops (b, N, K), y (b,), ec (b, E)``."""
        self.train_traces += 1  # Python side effect: runs once per trace only.
        with tf.GradientTape() as tape:
            loss = self.total_loss(y, self._outputs(adj, ops, ec, training=True))
        self.optimizer.apply_gradients(tape.gradient(loss, self.optimizer.variables))
        return loss

    def _train_epoch_body(self, steps, adj, ops, y, ec=None):
        """``steps`` train steps in one graph loop (one call per epoch, no Python overhead per
        step); inputs stack the epoch's batches on a leading axis of ``step_capacity``."""

        def step(i, total):
            batch = [adj[i], ops[i], y[i]] + ([] if ec is None else [ec[i]])
            return i + 1, total + self._train_step_body(*batch)

        _, total = tf.while_loop(
            lambda i, total: i < steps,
            step,
            (tf.constant(0), tf.constant(0.0)),
            parallel_iterations=1,
        )
        return total / tf.cast(steps, tf.float32)

    def _predict_fn(self, with_code: bool):
        if with_code not in self._predict_fns:

            def body(adj, ops, ec=None):
                self.predict_traces += 1
                return self.model.accuracy(adj, ops, ec, training=False)

            # Never XLA: an open batch dimension would recompile per chunk shape, and
            # large-batch inference is kernel-bound, where XLA gains nothing on CPU.
            self._predict_fns[with_code] = tf.function(
                body, input_signature=self._signature(None, with_y=False, with_code=with_code)
            )
        return self._predict_fns[with_code]

    # -- training -------------------------------------------------------------------------
    def _check_data(self, data: GraphData) -> None:
        n, k = self.num_nodes, self.num_ops
        if data.adj.shape[1:] != (n, n) or data.ops.shape[1:] != (n, k):
            raise ValueError(
                f"the predictor takes graphs adj (M, {n}, {n}), ops (M, {n}, {k}). "
                f"Received: adj={data.adj.shape}, ops={data.ops.shape}"
            )
        if self.ec_dim:
            if data.ec is None or data.ec.shape[1] != self.ec_dim:
                raise ValueError(
                    f"the siamese predictor trains on an estimation code ec (M, {self.ec_dim}). "
                    f"Received: ec={None if data.ec is None else data.ec.shape}"
                )

    def train_epochs(
        self, data: DataLike, n_epochs: int = 1, rng: Optional[np.random.Generator] = None
    ) -> np.ndarray:
        """Trains ``n_epochs`` epochs of ``steps_per_epoch`` steps on ``data``, from :attr:`epoch`.

        ``data`` may change between calls (any length >= 1): batches are drawn as shuffled
        passes over the current set, wrapping around (:func:`epoch_indices`), from ``rng``
        (default: the trainer's own generator). Returns the mean training loss of each epoch,
        ``(n_epochs,)``.
        """
        data = as_graph_data(data)
        self._check_data(data)
        rng = self.rng if rng is None else rng
        steps, batch = self.steps_per_epoch, self.batch_size
        epoch_losses = []
        for _ in range(int(n_epochs)):
            self.optimizer.set_learning_rate(self.learning_rate_at(self._epoch))
            idx = epoch_indices(len(data), steps * batch, rng).reshape(steps, batch)
            if steps < self.step_capacity:  # rows the loop does not reach: any valid index
                idx = np.concatenate([idx, np.zeros((self.step_capacity - steps, batch), idx.dtype)])
            args = [data.adj[idx], data.ops[idx], data.y[idx]]
            if self.ec_dim:
                args.append(data.ec[idx])
            epoch_losses.append(self._train_epoch(tf.constant(steps, tf.int32), *args))
            self._epoch += 1
        if not epoch_losses:
            return np.zeros((0,), np.float32)
        return tf.stack(epoch_losses).numpy()

    # -- inference ------------------------------------------------------------------------
    def predict(self, adj: np.ndarray, ops: np.ndarray, ec: Optional[np.ndarray] = None,
                batch_size: int = 2048) -> np.ndarray:
        """Predicted accuracies ``(M,)`` of graphs ``adj (M, N, N)``, ``ops (M, N, K)``.

        A siamese predictor uses its without-code branch unless ``ec (M, E)`` is given, then
        its with-code branch. Runs in chunks of ``batch_size`` through one traced function.
        """
        adj = np.asarray(adj, np.float32)
        ops = np.asarray(ops, np.float32)
        if ec is not None:
            if not self.ec_dim:
                raise ValueError("this predictor takes no estimation code; pass ec=None")
            ec = np.asarray(ec, np.float32)
        fn = self._predict_fn(ec is not None)
        chunks = []
        for start in range(0, len(adj), int(batch_size)):
            stop = start + int(batch_size)
            args = [adj[start:stop], ops[start:stop]]
            if ec is not None:
                args.append(ec[start:stop])
            chunks.append(fn(*args))
        if not chunks:
            return np.zeros((0,), np.float32)
        return tf.concat(chunks, axis=0).numpy()

    def loss(self, data: DataLike, batch_size: int = 2048) -> float:
        """Inference-mode loss on ``data``: the sum over outputs of the mean Huber loss."""
        data = as_graph_data(data)
        self._check_data(data)
        preds = [self.predict(data.adj, data.ops, batch_size=batch_size)]
        if self.ec_dim:
            preds.append(self.predict(data.adj, data.ops, data.ec, batch_size=batch_size))
        y = tf.constant(data.y)
        return float(self.total_loss(y, [tf.constant(p) for p in preds]))


def steps_for_budget(budget: int, batch_size: int = 8) -> int:
    """Steps per epoch of Siamese-NAS: ``max(budget // batch_size, 1)``."""
    return max(int(budget) // int(batch_size), 1)
