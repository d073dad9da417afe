"""The binary relation predictor of BRP-NAS (Dudziak et al., NeurIPS 2020) and its trainer.

A GCN encodes a cell graph into the vector of an added *global node* (it reads from every
node, no node reads from it); a linear head on the concatenated encodings of two cells
``(e_a, e_b)`` gives the logit of "``a`` is more accurate than ``b``". Architecture as in the
authors' code (SamsungLabs/eagle, ``predictors/gcn``): 4 layers of ``A (X W) + b`` -> LayerNorm
-> ReLU -> Dropout (0.2) at 600 features, the 0/1 adjacency with self loops, not normalised.
tfnas reuses its :class:`~tfnas.predictors.layers.GraphConv` (Glorot-uniform kernels; the
reference draws uniform +-1/sqrt(units)).

**Ranking with the relation.** The head is linear, ``logit(a, b) = w1.e_a + w2.e_b + c``, so its
antisymmetric part ``(logit(a, b) - logit(b, a)) / 2 = (s(a) - s(b)) / 2`` with
``s(x) = (w1 - w2).e_x`` (:meth:`BinaryRelationPredictor.scores`) is a total order:
sorting by ``s`` is exactly what a comparison sort with the antisymmetrised relation returns, for
any number of cells, in one batched encoder pass (O(n) graph encodings and no pair evaluations).
The reference sorts with a Python comparator (``functools.cmp_to_key``) on the raw relation,
O(n log n) head calls whose result depends on the sort's order of comparisons wherever the raw
relation is not transitive; training on both orders of every pair drives ``w2`` towards ``-w1``,
where the two agree.

**Pairs.** A training step encodes a batch of ``batch_size`` cells once and uses all ordered
pairs of two different cells among them (both orders of every pair), with the hard target 1 when
the first cell is more accurate, 0 when less, 1/2 on ties: binary cross-entropy on logits. The
reference draws batches of 64 pairs from all ``n (n - 1)`` ordered pairs, which costs two
encodings per pair; in-batch pairs cover the same pairs over the epochs (batches are reshuffled
every epoch) at ``b - 1`` pairs per encoding.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.predictors.fit import epoch_indices
from tfnas.predictors.layers import GraphConv, check_seed, check_units, child_seed

Shape = Tuple[Optional[int], ...]


def with_global_node(adj, ops):
    """``adj (B, N, N), ops (B, N, K) -> adj' (B, N+1, N+1), ops' (B, N+1, K+1)``.

    The global node is the last one: its row is all ones (it sums every node, itself included),
    its column is zero but for its self loop; every node gets a self loop. Its one-hot is the new
    last op column.
    """
    n = adj.shape[-1]
    batch = tf.shape(adj)[0]
    adj = tf.maximum(adj, tf.eye(n, dtype=adj.dtype))
    adj = tf.concat([adj, tf.zeros((batch, n, 1), adj.dtype)], axis=2)
    adj = tf.concat([adj, tf.ones((batch, 1, n + 1), adj.dtype)], axis=1)
    ops = tf.concat([ops, tf.zeros((batch, n, 1), ops.dtype)], axis=2)
    glob = tf.one_hot(tf.fill((batch, 1), ops.shape[-1] - 1), ops.shape[-1], dtype=ops.dtype)
    return adj, tf.concat([ops, glob], axis=1)


def relation_targets(y):
    """``y (B,) -> (B, B)``: 1 where ``y_i > y_j``, 0 where ``y_i < y_j``, 1/2 on ties (the diagonal too)."""
    diff = y[:, None] - y[None, :]
    return 0.5 * (1.0 + tf.sign(diff))


def pairwise_loss(logits, y, cells=None):
    """Mean binary cross-entropy of the pair ``logits (B, B)`` against :func:`relation_targets`, over
    the pairs of two different cells: off the diagonal and, given the batch's cell ids ``cells (B,)``,
    off the pairs of a cell with another copy of itself (a batch of a small set repeats cells)."""
    size = tf.shape(y)[0]
    pairs = 1.0 - tf.eye(size, dtype=logits.dtype)
    if cells is not None:
        pairs = tf.cast(tf.not_equal(cells[:, None], cells[None, :]), logits.dtype)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=relation_targets(y), logits=logits)
    return tf.reduce_sum(bce * pairs) / tf.maximum(tf.reduce_sum(pairs), 1.0)


@keras.saving.register_keras_serializable(package="tfnas")
class BinaryRelationPredictor(keras.Model):
    """BRP-NAS: ``P(a better than b) = sigmoid(head([enc(a), enc(b)]))`` (module docstring).

    Example: ``model = BinaryRelationPredictor(10, 9)``; ``model((adj_a, ops_a, adj_b, ops_b))``
    gives ``(B,)`` probabilities; ``model.scores(model.encode(adj, ops))`` ranks cells.

    Args:
        num_nodes: ``N`` of the cell graphs (the global node is added inside).
        num_ops: ``K``, the length of the op one-hot (one more column is added for the global node).
        units: features per node (BRP-NAS: 600).
        num_layers: GCN layers (BRP-NAS: 4).
        dropout: after every layer (BRP-NAS: 0.2 for accuracy).
        seed: ``int >= 0`` seeding every weight and the dropout masks, or ``None``.

    Input shape: ``(adj_a (B, N, N), ops_a (B, N, K), adj_b (B, N, N), ops_b (B, N, K))``.
    Output shape: ``(B,)``.
    """

    def __init__(self, num_nodes: int, num_ops: int, units: int = 600, num_layers: int = 4,
                 dropout: float = 0.2, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        who = "BinaryRelationPredictor"
        self.num_nodes = check_units(num_nodes, who, "num_nodes")
        self.num_ops = check_units(num_ops, who, "num_ops")
        self.units = check_units(units, who)
        self.num_layers = check_units(num_layers, who, "num_layers")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{who}: dropout must lie in [0, 1). Received: dropout={dropout!r}")
        self.dropout = float(dropout)
        self.seed = check_seed(seed, who)
        self.convs = [GraphConv(self.units, seed=child_seed(self.seed, i), name=f"gcn_{i}")
                      for i in range(self.num_layers)]
        self.norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_{i}") for i in range(self.num_layers)]
        self.drops = [keras.layers.Dropout(self.dropout, seed=child_seed(self.seed, 100 + i), name=f"drop_{i}")
                      for i in range(self.num_layers)]
        self.head = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.GlorotUniform(seed=child_seed(self.seed, self.num_layers)),
            name="relation_head")

    def input_shapes(self, batch: Optional[int] = None) -> Tuple[Shape, Shape]:
        """``((batch, N, N), (batch, N, K))``: the shapes of one side of a pair."""
        return (batch, self.num_nodes, self.num_nodes), (batch, self.num_nodes, self.num_ops)

    def build(self, input_shape: Optional[Sequence[Shape]] = None) -> None:
        n, k = self.num_nodes + 1, self.num_ops + 1
        x_shape, adj_shape = (None, n, k), (None, n, n)
        for conv, norm in zip(self.convs, self.norms):
            conv.build(x_shape, adj_shape)
            x_shape = (None, n, self.units)
            norm.build(x_shape)
        self.head.build((None, 2 * self.units))

    def encode(self, adj, ops, training: bool = False):
        """``adj (B, N, N), ops (B, N, K) -> (B, units)``: the global node's final features."""
        if not self.built:
            self.build()
        adj, x = with_global_node(tf.convert_to_tensor(adj, tf.float32), tf.convert_to_tensor(ops, tf.float32))
        for conv, norm, drop in zip(self.convs, self.norms, self.drops):
            x = drop(tf.nn.relu(norm(conv(x, adj))), training=training)
        return x[:, -1]

    def pair_logits(self, enc_a, enc_b):
        """``(B, U), (B, U) -> (B,)``: the head on each concatenated pair."""
        return tf.squeeze(self.head(tf.concat([enc_a, enc_b], axis=-1)), axis=-1)

    def all_pair_logits(self, enc):
        """``(B, U) -> (B, B)``: ``[i, j]`` is :meth:`pair_logits` of ``(enc[i], enc[j])``, from the
        head's kernel split in its two halves (B encodings, no B^2 concatenations)."""
        first, second = self.head.kernel[: self.units], self.head.kernel[self.units:]
        return tf.matmul(enc, first) + tf.transpose(tf.matmul(enc, second)) + self.head.bias

    def scores(self, enc):
        """``(B, U) -> (B,)``: ``s`` with ``logit(a, b) - logit(b, a) = s(a) - s(b)``; higher = better."""
        first, second = self.head.kernel[: self.units], self.head.kernel[self.units:]
        return tf.squeeze(tf.matmul(enc, first - second), axis=-1)

    def call(self, inputs, training=None):
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 4:
            raise ValueError("BinaryRelationPredictor takes inputs (adj_a, ops_a, adj_b, ops_b)")
        training = bool(training)
        enc_a = self.encode(inputs[0], inputs[1], training)
        enc_b = self.encode(inputs[2], inputs[3], training)
        return tf.sigmoid(self.pair_logits(enc_a, enc_b))

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "num_nodes": self.num_nodes, "num_ops": self.num_ops, "units": self.units,
                "num_layers": self.num_layers, "dropout": self.dropout, "seed": self.seed}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "BinaryRelationPredictor":
        return cls(**config)


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """Cosine decay from ``lr`` at epoch 0 towards 0 at ``epochs`` (PyTorch's ``CosineAnnealingLR``,
    ``T_max = epochs``, ``eta_min = 0``, as the reference)."""
    return 0.5 * float(lr) * (1.0 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))


class RelationTrainer:
    """Trains a :class:`BinaryRelationPredictor` on in-batch pairs and scores any number of cells.

    AdamW (BRP-NAS: lr 3.5e-4, weight decay 5e-4) with a cosine schedule over each :meth:`fit` call;
    the optimizer state restarts with every call, the weights carry over (the reference's
    iterations). One traced function runs a whole epoch (a graph loop over its batches; the
    number of batches is open, so a growing training set never retraces).

    Args:
        model: the predictor.
        batch_size: cells per step; each step trains on their ``b (b - 1)`` ordered pairs.
        lr, weight_decay: AdamW.
        jit_compile: XLA-compile the epoch (one trace; XLA compiles once per distinct number of batches).

    Attributes:
        train_traces: traces of the epoch function (stays 1).
    """

    def __init__(self, model: BinaryRelationPredictor, batch_size: int = 16, lr: float = 3.5e-4,
                 weight_decay: float = 5e-4, jit_compile: bool = False):
        self.model = model
        self.batch_size = check_units(batch_size, "RelationTrainer", "batch_size")
        if self.batch_size < 2:
            raise ValueError(f"RelationTrainer: batch_size must be >= 2 (pairs). Received: {batch_size}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        if not model.built:
            model.build()
        self.optimizer = keras.optimizers.AdamW(learning_rate=self.lr, weight_decay=self.weight_decay)
        self.optimizer.build(model.trainable_variables)
        self.train_traces = 0
        n, k, b = model.num_nodes, model.num_ops, self.batch_size
        self._epoch = tf.function(self._epoch_body, jit_compile=bool(jit_compile), autograph=False, input_signature=[
            tf.TensorSpec((None, b, n, n), tf.float32), tf.TensorSpec((None, b, n, k), tf.float32),
            tf.TensorSpec((None, b), tf.float32), tf.TensorSpec((None, b), tf.int32)])
        self._score = tf.function(lambda adj, ops: model.scores(model.encode(adj, ops)), input_signature=[
            tf.TensorSpec((None, n, n), tf.float32), tf.TensorSpec((None, n, k), tf.float32)])

    def reset(self, seed: int) -> None:
        """Fresh weights (and dropout generator) as a new model of the same config with ``seed``
        would draw them, and a fresh optimizer state: one trainer serves every search of a sweep."""
        fresh = type(self.model).from_config({**self.model.get_config(), "seed": int(seed)})
        fresh.build()
        for target, source in zip(self.model.variables, fresh.variables, strict=True):
            target.assign(source)
        self._reset_optimizer()

    def _reset_optimizer(self) -> None:
        for var in self.optimizer.variables:
            var.assign(tf.zeros_like(var))
        self.optimizer.learning_rate.assign(self.lr)

    def _step(self, adj, ops, y, cells):
        with tf.GradientTape() as tape:
            enc = self.model.encode(adj, ops, training=True)
            loss = pairwise_loss(self.model.all_pair_logits(enc), y, cells)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _epoch_body(self, adj, ops, y, cells):
        self.train_traces += 1  # Python side effect: once per trace
        steps = tf.shape(adj)[0]

        def body(i, total):
            return i + 1, total + self._step(adj[i], ops[i], y[i], cells[i])

        _, total = tf.while_loop(lambda i, total: i < steps, body, (tf.constant(0), tf.constant(0.0)),
                                 parallel_iterations=1)
        return total / tf.cast(steps, tf.float32)

    def fit(self, adj: np.ndarray, ops: np.ndarray, y: np.ndarray, epochs: int,
            rng: np.random.Generator) -> np.ndarray:
        """Trains ``epochs`` epochs on the cells ``adj (M, N, N), ops (M, N, K)`` with accuracies
        ``y (M,)`` (``M >= 2``); an epoch is ``ceil(M / batch_size)`` batches of shuffled passes over
        the set (:func:`~tfnas.predictors.fit.epoch_indices`). Returns each epoch's mean pair loss."""
        m = len(y)
        if m < 2:
            raise ValueError(f"RelationTrainer.fit needs at least 2 cells to form pairs. Received: {m}")
        adj, ops, y = (np.asarray(a, np.float32) for a in (adj, ops, y))
        self._reset_optimizer()
        steps = -(-m // self.batch_size)
        losses = []
        for epoch in range(int(epochs)):
            self.optimizer.learning_rate.assign(cosine_lr(self.lr, epoch, epochs))
            idx = epoch_indices(m, steps * self.batch_size, rng).reshape(steps, self.batch_size)
            losses.append(self._epoch(adj[idx], ops[idx], y[idx], idx.astype(np.int32)))
        return np.array([float(v) for v in losses], np.float32)

    def scores(self, adj: np.ndarray, ops: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """:meth:`BinaryRelationPredictor.scores` of cells ``adj (M, N, N), ops (M, N, K)`` (inference), ``(M,)``."""
        adj, ops = np.asarray(adj, np.float32), np.asarray(ops, np.float32)
        step = int(batch_size)
        chunks = [self._score(adj[i:i + step], ops[i:i + step]) for i in range(0, len(adj), step)]
        return tf.concat(chunks, axis=0).numpy() if chunks else np.zeros((0,), np.float32)
