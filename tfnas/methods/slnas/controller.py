"""SLNAS controllers trained with REINFORCE, behind the interface every SLNAS controller shares.

The SLNAS paper's "Search" section (and its authors' code, where named). A controller proposes
architectures and learns from their rewards::

    arch, info = controller.sample()         # np.int32 [cell_types, L]; info: log_prob, entropy
    stats = controller.update(arch, acc)     # acc: accuracy (%) of arch; returns loss, reward, ...
    state = controller.get_state()           # flat dict of numpy arrays (np.savez-able)
    controller.set_state(state)              # continues exactly where ``state`` was taken

:class:`StageController` is the paper's two-stage controller over lite cells (``arch`` = one row
of ``5 nodes x (in_x, op_x, in_y, op_y)`` per cell type: normal, then reduction);
:class:`OpController` runs the stage-2 op head alone on a cell graph with fixed edge sources
(NAS-Bench-201). :class:`~tfnas.methods.slnas.ga.GeneticController` is the GA baseline behind the
same interface.

REINFORCE step (as in the SLNAS code, ``train_controller``): the reward is
``R = acc + entropy_weight * H`` (``H`` = entropy of the sampled decisions, no gradient through
it); the baseline starts at the first reward and is moved *before* the loss,
``b <- b - baseline_decay (b - R)``; then ``loss = -log pi(arch) (R - b)``. The first update
therefore has zero advantage, and later ones ``(1 - baseline_decay)(R - b_old)``. ``log pi`` and
``H`` are sums over every decision; the SLNAS code averages the 10 op decisions of a cell instead
(log-probability and entropy), which scales the op head's gradient by 1/10.

Optimiser: ``ranger`` = RAdam + Lookahead (:class:`~tfnas.methods.slnas.ranger.Ranger`, the paper's
choice) or ``adam``. Weights are drawn from ``U(-0.1, 0.1)`` (ENAS' controller initialisation) with
the seed, and sampling uses a ``tf.random.Generator`` whose state is part of :meth:`get_state`,
so a resumed search draws the same architectures as an uninterrupted one. Sampling and update are
one ``tf.function`` each, traced once (:meth:`ReinforceController.traces`).

Determinism (on a CPU; not measured on a GPU, where other kernels may vary): the update gives the same
bits on every run. A weight the unrolled policy reads at many steps (an LSTM bias, the attention
weights) gets one gradient contribution per step. A tape sums them with one ``AddN``, whose CPU kernel
puts whichever input buffer it can reuse first, so its summation order, and the last bits of the
weights, changed with the timing of the parallel branches (up to 5e-5 after 300 steps, even on a quiet
machine). The update sums them pairwise instead (``tf.gradients`` with ``EXPERIMENTAL_TREE``: each
``AddN`` has two inputs, and a + b = b + a), and runs without Grappler
(:class:`~tfnas.grappler.GraphCall`), whose arithmetic optimiser would fold the pairs back into one
``AddN``. Run eagerly (``tf.config.run_functions_eagerly``, for debugging), it takes a tape's gradients.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.grappler import GraphCall
from tfnas.methods.slnas.heads import UNIFORM_LOW, ConnectionHead, OpHead, choose
from tfnas.methods.slnas.ranger import Ranger

OPTIMIZERS = ("ranger", "adam")


def make_optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    """The controller's optimiser: ``ranger`` (RAdam + Lookahead) or ``adam``."""
    if name == "ranger":
        return Ranger(learning_rate=lr)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    raise ValueError(f"unknown controller optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


class ReinforceController(abc.ABC):
    """A Keras policy over integer architectures, trained with REINFORCE and a moving baseline.

    Subclasses build their layers in :meth:`_build` and define :meth:`_policy`. Everything else
    (sampling, the update, reset, state) lives here.

    Args:
      arch_shape: shape of one architecture, ``(cell_types, L)``.
      noise_shape: shape of the uniforms one sample needs.
      lr: learning rate.
      optimizer: ``ranger`` or ``adam``.
      entropy_weight: weight of the entropy bonus in the reward.
      baseline_decay: ``d`` in ``b <- b - d (b - R)``, in [0, 1].
      seed: initial weights and sampling stream (see :meth:`reset`).
      jit_compile: compile the update step with XLA. On a CPU it roughly halves the op head's step
        on NAS-Bench-201, but compiling the unrolled two-stage controller takes minutes there.
    """

    def __init__(self, arch_shape: Tuple[int, int], noise_shape: Tuple[int, ...], lr: float,
                 optimizer: str, entropy_weight: float, baseline_decay: float, seed: int,
                 jit_compile: bool = False):
        if not lr >= 0:
            raise ValueError(f"controller lr must be >= 0; Received: lr={lr}")
        if not 0.0 <= baseline_decay <= 1.0:
            raise ValueError(f"controller baseline_decay must be in [0, 1]; Received: baseline_decay={baseline_decay}")
        if not entropy_weight >= 0:
            raise ValueError(f"controller entropy_weight must be >= 0; Received: entropy_weight={entropy_weight}")
        self.arch_shape, self.noise_shape = tuple(int(s) for s in arch_shape), tuple(noise_shape)
        self.lr, self.optimizer_name = float(lr), optimizer
        self.entropy_weight, self.baseline_decay = float(entropy_weight), float(baseline_decay)
        self._build()
        self.variables: List[Any] = self._layers_weights()
        self.optimizer = make_optimizer(optimizer, self.lr)
        self.optimizer.build(self.variables)
        self._optimizer_start = [np.array(v.numpy()) for v in self.optimizer.variables]
        self._baseline = tf.Variable(0.0, trainable=False, name="baseline")
        self._has_baseline = tf.Variable(False, trainable=False, name="has_baseline")
        self._rng = tf.random.Generator.from_seed(int(seed))
        arch_spec = tf.TensorSpec(self.arch_shape, tf.int32)
        self._sample_fn = tf.function(self._sample_graph, input_signature=[])
        self._score_fn = tf.function(self._score_graph, input_signature=[arch_spec])
        self._update_fn = GraphCall(tf.function(self._update_graph, jit_compile=bool(jit_compile),
                                                input_signature=[arch_spec, tf.TensorSpec([], tf.float32)]),
                                    optimize=False)
        self.reset(seed)

    # ---- what a subclass defines ---------------------------------------------------------------

    @abc.abstractmethod
    def _build(self) -> None:
        """Creates and builds the Keras layers."""

    @abc.abstractmethod
    def _layers(self) -> Sequence[keras.layers.Layer]:
        """The layers whose weights the controller trains."""

    @abc.abstractmethod
    def _policy(self, noise: Optional[tf.Tensor], forced: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(arch int32 arch_shape, log pi(arch), entropy)``: sampled from ``noise`` or scoring ``forced``."""

    @abc.abstractmethod
    def check_arch(self, arch: Any) -> np.ndarray:
        """``arch`` as ``np.int32 arch_shape``; ``ValueError`` naming the bad entry otherwise."""

    def _layers_weights(self) -> List[Any]:
        return [w for layer in self._layers() for w in layer.trainable_weights]

    # ---- graphs ----------------------------------------------------------------------------------

    def _sample_graph(self) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        noise = self._rng.uniform(self.noise_shape, minval=UNIFORM_LOW, maxval=1.0)
        return self._policy(noise, None)

    def _score_graph(self, arch: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        _, log_p, entropy = self._policy(None, arch)
        return log_p, entropy

    def _update_graph(self, arch: tf.Tensor, accuracy: tf.Tensor) -> Dict[str, tf.Tensor]:
        def forward() -> Tuple[tf.Tensor, ...]:
            _, log_p, entropy = self._policy(None, arch)
            entropy = tf.stop_gradient(entropy)
            reward = accuracy + self.entropy_weight * entropy
            old = tf.where(self._has_baseline, self._baseline, reward)
            baseline = old - self.baseline_decay * (old - reward)
            advantage = reward - baseline
            return -log_p * advantage, log_p, entropy, reward, baseline, advantage

        if tf.executing_eagerly():  # tf.config.run_functions_eagerly (debugging): no graph to sum in pairs
            with tf.GradientTape() as tape:
                loss, log_p, entropy, reward, baseline, advantage = forward()
            grads = tape.gradient(loss, self.variables)
        else:  # pairwise sums of every weight's gradient contributions (the module notes on determinism)
            loss, log_p, entropy, reward, baseline, advantage = forward()
            grads = tf.gradients(loss, self.variables, aggregation_method=tf.AggregationMethod.EXPERIMENTAL_TREE)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, self.variables)]
        self.optimizer.apply_gradients(zip(grads, self.variables))
        self._baseline.assign(baseline)
        self._has_baseline.assign(True)
        return {"loss": loss, "reward": reward, "entropy": entropy, "baseline": baseline, "advantage": advantage,
                "log_prob": log_p}

    # ---- the controller interface ---------------------------------------------------------------

    def sample(self) -> Tuple[np.ndarray, Dict[str, float]]:
        """The next architecture, ``np.int32 arch_shape``, with ``{"log_prob", "entropy"}`` of the draw."""
        arch, log_p, entropy = self._sample_fn()
        return arch.numpy().astype(np.int32), {"log_prob": float(log_p), "entropy": float(entropy)}

    def update(self, arch: Any, accuracy: float) -> Dict[str, float]:
        """One REINFORCE step on ``arch`` with its measured ``accuracy`` (%).

        Returns ``loss``, ``reward`` (accuracy + entropy bonus), ``entropy``, ``baseline`` (after
        the move), ``advantage`` and ``log_prob`` (before the step).
        """
        arch = self.check_arch(arch)
        out = self._update_fn(tf.constant(arch), tf.constant(float(accuracy), tf.float32))
        return {k: float(v) for k, v in out.items()}

    def log_prob(self, arch: Any) -> Tuple[tf.Tensor, tf.Tensor]:
        """``(log pi(arch), entropy)`` under the current weights (teacher forcing; differentiable)."""
        return self._score_fn(tf.constant(self.check_arch(arch)))

    @property
    def baseline(self) -> Optional[float]:
        """The moving baseline, or None before the first update."""
        return float(self._baseline.numpy()) if bool(self._has_baseline.numpy()) else None

    def traces(self) -> Dict[str, int]:
        """How often each ``tf.function`` was traced (1 each after use, whatever was sampled)."""
        fns = {"sample": self._sample_fn, "score": self._score_fn, "update": self._update_fn.fn}
        return {k: int(f.experimental_get_tracing_count()) for k, f in fns.items()}

    def reset(self, seed: int) -> None:
        """Fresh weights ``U(-0.1, 0.1)`` and sampling stream from ``seed``, a fresh optimiser and
        no baseline: the same as a newly built controller with this seed, without retracing."""
        rng = np.random.default_rng(int(seed))
        for v in self.variables:
            v.assign(np.asarray(rng.uniform(-0.1, 0.1, size=tuple(v.shape)), dtype=v.dtype))
        for v, start in zip(self.optimizer.variables, self._optimizer_start):
            v.assign(start)
        self._baseline.assign(0.0)
        self._has_baseline.assign(False)
        self._rng.reset_from_seed(int(seed))

    def get_state(self) -> Dict[str, np.ndarray]:
        """Weights, optimiser slots, baseline and the sampling generator's state (numpy arrays)."""
        state = {f"weights/{i}": np.array(v.numpy()) for i, v in enumerate(self.variables)}
        state.update({f"optimizer/{i}": np.array(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        state["baseline"] = np.array(self._baseline.numpy())
        state["has_baseline"] = np.array(self._has_baseline.numpy())
        state["rng"] = np.array(self._rng.state.numpy())
        return state

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restores :meth:`get_state`'s output (of a controller built with the same arguments)."""
        expected = len(self.variables) + len(self.optimizer.variables) + 3
        if len(state) != expected:
            raise ValueError(f"controller state has {len(state)} entries; this controller expects {expected} "
                             f"(was it saved by a controller with other arguments?)")
        for prefix, variables in (("weights", self.variables), ("optimizer", self.optimizer.variables)):
            for i, v in enumerate(variables):
                value = np.asarray(state[f"{prefix}/{i}"])
                if tuple(value.shape) != tuple(v.shape):
                    raise ValueError(f"controller state {prefix}/{i} has shape {value.shape}; expected {tuple(v.shape)}")
                v.assign(value)
        self._baseline.assign(float(state["baseline"]))
        self._has_baseline.assign(bool(state["has_baseline"]))
        self._rng.reset(np.asarray(state["rng"]))


class StageController(ReinforceController):
    """The SLNAS two-stage controller: stage 1 picks the inputs of every node, stage 2 their ops.

    Per cell type (normal, then reduction) :class:`ConnectionHead` samples the ``2 num_nodes``
    input indices, then :class:`OpHead` reads them and samples the op of every input. Both heads
    are shared by the cell types; their LSTM states carry over from one cell type to the next.
    The architecture is ``np.int32 [num_cell_types, 4 num_nodes]``, node ``n`` at columns
    ``4n .. 4n+3`` = ``(in_x, op_x, in_y, op_y)`` with inputs in ``[0, n + 2)`` and ops in
    ``[0, num_ops)`` (the lite space's encoding).

    Example:

    >>> ctl = StageController(hidden=64, seed=0)
    >>> arch, info = ctl.sample()
    >>> arch.shape
    (2, 20)
    >>> stats = ctl.update(arch, accuracy=62.5)

    Args:
      num_cell_types: cell types sampled per architecture (2: normal, reduction).
      num_nodes: nodes per cell.
      num_ops: ops per input.
      hidden: LSTM width (256 in SLNAS).
      temperature, tanh_constant, op_tanh_constant: logit bounds of the two heads
        (5, 1.1 and 1.1 / 2.5 in SLNAS).
      lr, optimizer, entropy_weight, baseline_decay, seed, jit_compile: see
        :class:`ReinforceController` (SLNAS: 3.5e-5, ``ranger``, 1e-4, 0.05).
    """

    def __init__(self, num_cell_types: int = 2, num_nodes: int = 5, num_ops: int = 5, hidden: int = 256,
                 temperature: float = 5.0, tanh_constant: float = 1.1, op_tanh_constant: float = 1.1 / 2.5,
                 lr: float = 3.5e-5, optimizer: str = "ranger", entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.05, seed: int = 0, jit_compile: bool = False):
        for name, value in (("num_cell_types", num_cell_types), ("num_nodes", num_nodes), ("num_ops", num_ops),
                            ("hidden", hidden)):
            if int(value) < 1:
                raise ValueError(f"StageController {name} must be >= 1; Received: {name}={value}")
        self.num_cell_types, self.num_nodes, self.num_ops = int(num_cell_types), int(num_nodes), int(num_ops)
        self.hidden = int(hidden)
        self._head_args = (float(temperature), float(tanh_constant), float(op_tanh_constant))
        width = max(self.num_nodes + 1, self.num_ops)
        super().__init__((self.num_cell_types, 4 * self.num_nodes), (self.num_cell_types, 2, 2 * self.num_nodes, width),
                         lr, optimizer, entropy_weight, baseline_decay, seed, jit_compile)

    def _build(self) -> None:
        temperature, tanh_constant, op_tanh_constant = self._head_args
        self.connections = ConnectionHead(self.num_nodes, self.hidden, temperature, tanh_constant, name="connections")
        self.connections.build()
        self.ops = OpHead(self.num_nodes + 1, self.num_ops, self.hidden, temperature, op_tanh_constant, name="ops")
        self.ops.build()

    def _layers(self) -> Sequence[keras.layers.Layer]:
        return (self.connections, self.ops)

    def _policy(self, noise: Optional[tf.Tensor], forced: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        zeros = tf.zeros((1, self.hidden))
        state1, state2 = [zeros, zeros], [zeros] * 4
        cells, log_p, entropy = [], 0.0, 0.0
        for k in range(self.num_cell_types):
            forced_in = None if forced is None else forced[k, 0::2]
            forced_op = None if forced is None else forced[k, 1::2]
            inputs, lp1, ent1, state1 = self.connections(
                state1, noise=None if noise is None else noise[k, 0, :, :self.num_nodes + 1], forced=forced_in)
            logits, state2 = self.ops(inputs, state2)
            ops, lp2, ent2 = choose(logits, None if noise is None else noise[k, 1, :, :self.num_ops], forced_op)
            cells.append(tf.reshape(tf.stack([inputs, ops], axis=1), [-1]))
            log_p += tf.reduce_sum(lp1) + tf.reduce_sum(lp2)
            entropy += tf.reduce_sum(ent1) + tf.reduce_sum(ent2)
        return tf.stack(cells), log_p, entropy

    def check_arch(self, arch: Any) -> np.ndarray:
        arch = np.asarray(arch)
        if arch.shape != self.arch_shape or not np.issubdtype(arch.dtype, np.integer):
            raise ValueError(f"expected an integer arch of shape {self.arch_shape}; got {arch.dtype} {arch.shape}")
        for k in range(self.num_cell_types):
            for n in range(self.num_nodes):
                in_x, op_x, in_y, op_y = (int(a) for a in arch[k, 4 * n: 4 * n + 4])
                if not (0 <= in_x < n + 2 and 0 <= in_y < n + 2):
                    raise ValueError(f"cell {k} node {n}: inputs must be in [0, {n + 2}); got {in_x}, {in_y}")
                if not (0 <= op_x < self.num_ops and 0 <= op_y < self.num_ops):
                    raise ValueError(f"cell {k} node {n}: ops must be in [0, {self.num_ops}); got {op_x}, {op_y}")
        return arch.astype(np.int32)


class OpController(ReinforceController):
    """The stage-2 op head alone, on a cell graph whose edge sources are fixed.

    Each cell type's op logits come from :class:`OpHead` reading ``sources`` (the source node of
    every edge, in edge order); the architecture is the op of every edge,
    ``np.int32 [num_cell_types, len(sources)]``. On NAS-Bench-201 ``sources = (0, 0, 1, 0, 1, 2)``
    (edges ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``) and one cell type: the arch row is the cell's
    op ids in :mod:`tfnas.spaces.nb201` edge order.

    Args:
      sources: source node of every edge.
      num_cell_types: cell types sampled per architecture.
      num_ops: ops per edge.
      hidden, temperature, op_tanh_constant: as in :class:`StageController`.
      lr, optimizer, entropy_weight, baseline_decay, seed, jit_compile: see :class:`ReinforceController`.
    """

    def __init__(self, sources: Sequence[int] = (0, 0, 1, 0, 1, 2), num_cell_types: int = 1, num_ops: int = 5,
                 hidden: int = 256, temperature: float = 5.0, op_tanh_constant: float = 1.1 / 2.5,
                 lr: float = 3.5e-5, optimizer: str = "ranger", entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.05, seed: int = 0, jit_compile: bool = False):
        self.sources = tuple(int(s) for s in sources)
        if not self.sources or min(self.sources) < 0:
            raise ValueError(f"OpController sources must be a non-empty list of node indices >= 0; got {sources}")
        for name, value in (("num_cell_types", num_cell_types), ("num_ops", num_ops), ("hidden", hidden)):
            if int(value) < 1:
                raise ValueError(f"OpController {name} must be >= 1; Received: {name}={value}")
        self.num_cell_types, self.num_ops, self.hidden = int(num_cell_types), int(num_ops), int(hidden)
        self._head_args = (float(temperature), float(op_tanh_constant))
        shape = (self.num_cell_types, len(self.sources))
        super().__init__(shape, shape + (self.num_ops,), lr, optimizer, entropy_weight, baseline_decay, seed,
                         jit_compile)

    def _build(self) -> None:
        temperature, op_tanh_constant = self._head_args
        self.ops = OpHead(max(self.sources) + 1, self.num_ops, self.hidden, temperature, op_tanh_constant, name="ops")
        self.ops.build()

    def _layers(self) -> Sequence[keras.layers.Layer]:
        return (self.ops,)

    def _logits(self) -> List[tf.Tensor]:
        zeros = tf.zeros((1, self.hidden))
        state, out = [zeros] * 4, []
        for _ in range(self.num_cell_types):
            logits, state = self.ops(tf.constant(self.sources, tf.int32), state)
            out.append(logits)
        return out

    def _policy(self, noise: Optional[tf.Tensor], forced: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        cells, log_p, entropy = [], 0.0, 0.0
        for k, logits in enumerate(self._logits()):
            ops, lp, ent = choose(logits, None if noise is None else noise[k], None if forced is None else forced[k])
            cells.append(ops)
            log_p += tf.reduce_sum(lp)
            entropy += tf.reduce_sum(ent)
        return tf.stack(cells), log_p, entropy

    def op_log_probs(self) -> np.ndarray:
        """``log p(op)`` of every edge, float ``[num_cell_types, len(sources), num_ops]``: with fixed
        sources the op distribution is the same for every sample, and ``log pi(arch)`` is the sum
        of its edges' entries."""
        return np.stack([tf.nn.log_softmax(logits).numpy() for logits in self._logits()])

    def check_arch(self, arch: Any) -> np.ndarray:
        arch = np.asarray(arch)
        if arch.shape != self.arch_shape or not np.issubdtype(arch.dtype, np.integer):
            raise ValueError(f"expected an integer arch of shape {self.arch_shape}; got {arch.dtype} {arch.shape}")
        if arch.min() < 0 or arch.max() >= self.num_ops:
            raise ValueError(f"op ids must be in [0, {self.num_ops}); got {arch.tolist()}")
        return arch.astype(np.int32)
