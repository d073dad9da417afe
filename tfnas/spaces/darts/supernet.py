"""The weight-sharing DARTS search network of RelativeNAS: every op on every edge, one graph for all.

Each cell holds all 7 ops of :data:`tfnas.spaces.darts.genotype.OPS` on all 14 edges (node ``j`` has
edges from states ``0 .. 1 + j``), like the reference ``model_search.NetworkCIFAR`` (affine
BatchNorms, no auxiliary head; Tan et al., https://arxiv.org/abs/2009.06193, Sec. III-C). A
candidate enters the traced steps as an int32 tensor ``ids [2, 4, 2, 2]``
(``DartsSpace.to_ids``: cell kind, node, slot, (input, op)); per node slot a
``tf.switch_case`` over ``(input, op)`` runs only the chosen op, so one trace of the train step
and one of the eval step serve every candidate, and only chosen ops move BatchNorm statistics.

Storage: the parameters of one op type in one cell are a single variable ``[rows, P]`` with one
flat row per edge (BatchNorm statistics likewise, ``[rows, S]``); a step gathers the rows of
the 8 chosen edges before the ``switch_case`` and slices them inside. This keeps each
``switch_case`` down to a handful of captured tensors (its gradient creates zeros for every
capture of every branch, so per-op variables would make the graph quadratic in the op count)
and turns the update into a scatter of 8 rows per stack.

Update (the reference builds a fresh ``torch.optim.SGD`` per candidate): the data gradient is
clipped to global norm ``grad_clip`` over the parameters the candidate uses, then
``g += weight_decay * w``, ``buf = momentum * buf + g``, ``w -= lr * buf`` (PyTorch SGD,
dampening 0) on used rows only; unused rows get no decay and no momentum, nor does the preprocessing of
``c_{k-2}`` in a cell none of whose nodes reads it. As with PyTorch's
``weight_decay``, decay applies to every used trainable parameter (BatchNorm ``gamma``/``beta``
and the classifier bias included). ``reset_momentum`` zeroes the buffers between candidates.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.spaces.darts.genotype import NUM_NODES, OPS, DartsGenotype
from tfnas.spaces.darts.network import reduction_layers
from tfnas.spaces.darts.space import DartsSpace
from tfnas.spaces.darts.supernet_slots import NodeSlots
from tfnas.spaces.darts.supernet_storage import EDGE_OFFSET, NUM_EDGES, OpStack, edge_index, unpack_row, used_ops
from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM, AvgPool3x3, FactorizedReduce, MaxPool3x3, ReLUConvBN
from tfnas.train.seeding import LayerSeedStream
from tfnas.train.supernet import SupernetEngine, correct, masked_sgd

__all__ = ["DartsSupernet"]


class DartsSupernet(SupernetEngine):
    """The RelativeNAS weight set ``W`` with one traced train step and one traced eval step
    (:class:`~tfnas.train.supernet.SupernetEngine`).

    Args:
        num_classes: logits.
        input_shape: ``(H, W, C)`` images, ``H``/``W`` divisible by 4.
        channels: initial channels ``C`` (RelativeNAS search: 16).
        layers: cells (RelativeNAS search: 8).
        momentum, weight_decay, grad_clip: SGD settings (module docstring); ``grad_clip = 0`` = off.
        jit_compile: XLA for the steps (pays on GPU).
        seed: seeds the initial weights.
        graph_optimizer: Grappler for the two steps (:class:`~tfnas.grappler.GraphCall`);
            ``None``: on where a GPU is visible, off on CPU.

    Attributes:
        trace_counts: ``{"train": n, "eval": n}`` Python traces of the two steps.
        owners: per entry of :meth:`get_weights`: ``None`` (stem, preprocessing, classifier) or
            ``(cell, op id, edges)``: a stack whose row ``r`` belongs to edge ``edges[r]``.
    """

    ids_shape = (2, NUM_NODES, 2, 2)

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (32, 32, 3), channels: int = 16, layers: int = 8,
                 momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                 jit_compile: bool = False, seed: int = 0, graph_optimizer: Optional[bool] = None):
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or shape[0] % 4 or shape[1] % 4:
            raise ValueError(f"DartsSupernet: input_shape must be (H, W, C) with H, W divisible by 4; got {input_shape!r}")
        if layers < 3:
            raise ValueError(f"DartsSupernet: layers must be >= 3 (two reduction cells); got {layers}")
        self.num_classes, self.input_shape, self.channels, self.layers = int(num_classes), shape, int(channels), int(layers)
        self.momentum, self.weight_decay, self.grad_clip = float(momentum), float(weight_decay), float(grad_clip)
        self.jit_compile = bool(jit_compile)
        self.reductions = reduction_layers(self.layers)
        # Keras draws the seeds of unseeded layers from Python's `random`: a private seeded stream
        # makes them follow `seed` without reseeding anyone's global generators.
        with LayerSeedStream(seed).active():
            self._build(np.random.default_rng(seed))
        self._init_steps(shape, self.num_classes, self.jit_compile, graph_optimizer)
        self._slots = NodeSlots(self.stacks, self.pools, self.reductions, self.noise_seed, self.noise_step,
                                self.drop_path_rate)

    # ---- construction ---------------------------------------------------------------------

    def _build(self, rng: np.random.Generator) -> None:
        bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
        h, w, _ = self.input_shape
        c = self.channels
        self.stem_conv = keras.layers.Conv2D(3 * c, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                                             name="stem_conv")
        self.stem_bn = keras.layers.BatchNormalization(name="stem_bn", **bn)
        self.stem_conv.build((None,) + self.input_shape)
        self.stem_bn.build((None, h, w, 3 * c))
        s0 = s1 = (None, h, w, 3 * c)
        self.preprocess: List[Tuple[keras.layers.Layer, keras.layers.Layer]] = []
        self.stacks: List[Dict[int, OpStack]] = []
        self.cell_channels: List[int] = []
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in self.reductions
            c = c * 2 if reduction else c
            pre0 = FactorizedReduce(c, name=f"cell{i}_pre0") if reduction_prev else ReLUConvBN(c, 1, name=f"cell{i}_pre0")
            pre1 = ReLUConvBN(c, 1, name=f"cell{i}_pre1")
            pre0.build(s0)
            pre1.build(s1)
            stacks = {}
            for t, op in enumerate(OPS):
                if op in ("max_pool_3x3", "avg_pool_3x3"):
                    continue
                if op == "skip_connect":
                    if not reduction:
                        continue
                    edges = [edge_index(j, src) for j in range(NUM_NODES) for src in (0, 1)]
                else:
                    edges = list(range(NUM_EDGES))
                stacks[t] = OpStack(i, t, c, edges, rng)
            self.preprocess.append((pre0, pre1))
            self.stacks.append(stacks)
            self.cell_channels.append(c)
            out = pre1.compute_output_shape(s1)
            if reduction:
                out = (None, (out[1] - 1) // 2 + 1, (out[2] - 1) // 2 + 1, c)
            s0, s1 = s1, out[:3] + (NUM_NODES * c,)
            reduction_prev = reduction
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier")
        self.classifier.build((None, s1[-1]))
        self.pools = {(p, s): (MaxPool3x3(s) if p == 0 else AvgPool3x3(s)) for p in (0, 1) for s in (1, 2)}
        shared = [self.stem_conv, self.stem_bn] + [l for pair in self.preprocess for l in pair] + [self.classifier]
        self.shared_trainable = [v for l in shared for v in l.trainable_weights]
        pre0_ids = {id(v): i for i, (pre0, _) in enumerate(self.preprocess) for v in pre0.trainable_weights}
        #: per shared variable, the cell whose c_{k-2} preprocessing it belongs to (None: always used)
        self._pre0_cell = [pre0_ids.get(id(v)) for v in self.shared_trainable]
        self._shared_buffers = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.shared_trainable]
        self._state: List[Any] = [v for l in shared for v in l.weights]
        self.owners: List[Optional[Tuple[int, int, Tuple[int, ...]]]] = [None] * len(self._state)
        for stacks in self.stacks:
            for t, stack in stacks.items():
                self._state += [stack.params, stack.stats]
                self.owners += [(stack.cell, t, tuple(stack.edges))] * 2
        self._buffers = self._shared_buffers + [s.buffer for cell in self.stacks for s in cell.values()]

    # ---- weight set -----------------------------------------------------------------------

    def merge_weights(self, fast: Sequence[np.ndarray], slow: Sequence[np.ndarray], fast_arch: Any,
                      slow_arch: Any) -> List[np.ndarray]:
        """The RelativeNAS weight-set update after a pair (Sec. III-C of the paper).

        Rows of ops used only by the slow learner come from ``slow``; every other array and row
        (ops of the fast learner, ops neither used, stem, preprocessing, BatchNorm statistics,
        classifier) from ``fast``. ``fast``/``slow`` are :meth:`get_weights` after training each.
        """
        fast_ops = used_ops(self._ids(fast_arch).numpy(), self.layers)
        slow_only = used_ops(self._ids(slow_arch).numpy(), self.layers) - fast_ops
        merged = [np.array(a) for a in fast]
        for k, owner in enumerate(self.owners):
            if owner is None:
                continue
            cell, t, edges = owner
            rows = [r for r, e in enumerate(edges) if (cell, e, t) in slow_only]
            if rows:
                merged[k][rows] = slow[k][rows]
        return merged

    def num_params(self, arch: Any = None) -> int:
        """Trainable parameters of the whole supernet, or the shared ones plus the ops ``arch`` uses."""
        shared = sum(int(np.prod(v.shape)) for v in self.shared_trainable)
        stacks = [s for cell in self.stacks for s in cell.values()]
        if arch is None:
            return shared + sum(int(np.prod(s.params.shape)) for s in stacks)
        used = used_ops(self._ids(arch).numpy(), self.layers)
        per_row = {(s.cell, s.op): int(s.params.shape[1]) for s in stacks}
        rows = {(s.cell, s.op): s.numpy_rows for s in stacks}
        return shared + sum(per_row[(c, t)] for c, e, t in used if (c, t) in rows and rows[(c, t)][e] >= 0)

    def _forward(self, images: tf.Tensor, ids: tf.Tensor, training: bool):
        """Logits ``[B, classes]`` and, per stack, ``(stack, rows [8], gathered rows [8, P], op ids [8])``."""
        x = self.stem_bn(self.stem_conv(images), training=training)
        s0 = s1 = x
        slot_offsets = tf.constant([EDGE_OFFSET[q // 2] for q in range(2 * NUM_NODES)], tf.int32)
        records = []
        for i in range(self.layers):
            kind = 1 if i in self.reductions else 0
            srcs = tf.reshape(ids[kind, :, :, 0], [2 * NUM_NODES])
            op_ids = tf.reshape(ids[kind, :, :, 1], [2 * NUM_NODES])
            edges = slot_offsets + srcs
            selected = {}
            for t, stack in self.stacks[i].items():
                rows = tf.gather(stack.row_of_edge, edges)
                gathered = tf.gather(stack.params, tf.maximum(rows, 0))
                selected[t] = (tf.maximum(rows, 0), tf.unstack(gathered, num=2 * NUM_NODES))
                records.append((stack, rows, gathered, op_ids))
            pre0, pre1 = self.preprocess[i]
            states = [pre0(s0, training=training), pre1(s1, training=training)]
            for node in range(NUM_NODES):
                terms = [self._slots.output(i, q, srcs[q], op_ids[q], states, selected, training)
                         for q in (2 * node, 2 * node + 1)]
                states.append(terms[0] + terms[1])
            s0, s1 = s1, tf.concat(states[2:], axis=-1)
        return self.classifier(tf.reduce_mean(s1, axis=[1, 2])), records

    def _train_step(self, images: tf.Tensor, labels: tf.Tensor, ids: tf.Tensor, lr: tf.Tensor):
        with tf.GradientTape() as tape:
            logits, records = self._forward(images, ids, training=True)
            per_example = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, self.shared_trainable + [r[2] for r in records])
        shared_grads, stack_grads = grads[: len(self.shared_trainable)], grads[len(self.shared_trainable) :]
        sq_norm = tf.add_n([tf.reduce_sum(tf.square(g)) for g in shared_grads])
        plans = []
        for (stack, rows, gathered, op_ids), g in zip(records, stack_grads):
            g = tf.zeros_like(gathered) if g is None else g
            mask = tf.cast(tf.logical_and(tf.equal(op_ids, stack.op), rows >= 0), tf.float32)
            r = tf.maximum(rows, 0)
            same = tf.cast(tf.equal(r[:, None], r[None, :]), tf.float32)
            shared_use = same * mask[None, :]
            row_grad = tf.matmul(shared_use, g)  # slots sharing a row carry the row's summed gradient
            used = tf.reduce_max(shared_use, axis=1)
            sq_norm += tf.reduce_sum(used / tf.reduce_sum(same, axis=1) * tf.reduce_sum(tf.square(row_grad), axis=1))
            plans.append((stack, r, gathered, row_grad, used))
        scale = tf.constant(1.0)
        if self.grad_clip > 0:
            scale = tf.minimum(1.0, self.grad_clip / (tf.sqrt(sq_norm) + 1e-6))
        # A cell none of whose nodes reads c_{k-2} leaves its preprocessing of it unused: no decay, no momentum
        # step (the reference's parameters without a gradient)
        reads_c0 = [tf.reduce_any(tf.equal(ids[1 if i in self.reductions else 0, :, :, 0], 0))
                    for i in range(self.layers)]
        used = [True if cell is None else reads_c0[cell] for cell in self._pre0_cell]
        masked_sgd(self.shared_trainable, self._shared_buffers, shared_grads, used, lr, self.momentum,
                   self.weight_decay, 0.0, scale=scale)
        for stack, r, w_rows, row_grad, used in plans:
            b_rows = tf.gather(stack.buffer, r)
            used_rows = used[:, None] > 0
            b_new = tf.where(used_rows, self.momentum * b_rows + row_grad * scale + self.weight_decay * w_rows, b_rows)
            w_new = tf.where(used_rows, w_rows - lr * b_new, w_rows)
            stack.buffer.scatter_update(tf.IndexedSlices(b_new, r))
            stack.params.scatter_update(tf.IndexedSlices(w_new, r))
        return tf.reduce_sum(per_example), correct(labels, logits), tf.cast(tf.shape(labels)[0], tf.float32)

    # ---- public steps ---------------------------------------------------------------------

    def to_ids(self, arch: Any) -> np.ndarray:
        """``DartsSpace.to_ids`` of a genotype, or int ids ``[2, 4, 2, 2]`` passed through (checked)."""
        ids = DartsSpace.to_ids(arch) if isinstance(arch, DartsGenotype) else np.asarray(arch, np.int32)
        if ids.shape != (2, NUM_NODES, 2, 2):
            raise ValueError(f"a candidate is a DartsGenotype or int ids of shape (2, {NUM_NODES}, 2, 2); got {ids.shape}")
        return ids.astype(np.int32)

    def transfer_to(self, model: Any, arch: DartsGenotype) -> None:
        """Copies ``arch``'s weights (stem, preprocessing, chosen ops with their BatchNorm statistics,
        classifier) into a built standalone :class:`~tfnas.spaces.darts.network.DartsNetwork` of the same
        genotype, ``channels`` and ``layers`` (inference outputs then agree)."""
        if model.channels != self.channels or model.layers_count != self.layers or model.genotype != str(arch):
            raise ValueError(f"transfer_to needs a DartsNetwork of genotype {arch} with channels={self.channels}, "
                             f"layers={self.layers}; got channels={model.channels}, layers={model.layers_count}, "
                             f"genotype {model.genotype}")
        model.stem_conv.set_weights(self.stem_conv.get_weights())
        model.stem_bn.set_weights(self.stem_bn.get_weights())
        model.classifier.set_weights(self.classifier.get_weights())
        for i, cell in enumerate(model.cells):
            for mine, theirs in zip(self.preprocess[i], (cell.preprocess0, cell.preprocess1)):
                theirs.set_weights(mine.get_weights())
            pairs, _ = arch.cell(i in self.reductions)
            for k, (op, src) in enumerate(pairs):
                stack = self.stacks[i].get(OPS.index(op))
                row = -1 if stack is None else int(stack.numpy_rows[edge_index(k // 2, src)])
                if row < 0:
                    continue
                values = {n: np.asarray(v) for n, v in unpack_row(tf.constant(stack.params.numpy()[row]), stack.layout).items()}
                stats = stack.stats.numpy()[row]
                layer = cell.cell_ops[k]
                for b, bn_name in enumerate(stack.bns):
                    getattr(layer, bn_name).set_weights([values[f"{bn_name}.gamma"], values[f"{bn_name}.beta"],
                                                         stats[b, 0], stats[b, 1]])
                for name, _ in stack.layout:
                    if "." not in name:
                        getattr(layer, name).kernel.assign(values[name])
