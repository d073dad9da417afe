"""NAG's single-path weight-sharing supernet over the NASNet-DAG space: one graph for every cell pair.

NAG spec, "NAS dataset": ``3N + 2`` cells (the paper's 11 at ``C = 20``), each step trains one
architecture of the pool. A candidate enters the traced steps of
:class:`~tfnas.train.supernet.SupernetEngine` as ``ids int32 [2, 10, 11]`` (:meth:`to_ids`): per
cell type and node *slot* the node code (``-1`` = no node) and the adjacency row. Slots 0 and 1
are the inputs, 2..8 the op nodes in order, 9 the output (a cell of ``n`` nodes puts its output in
slot 9 and leaves slots ``n - 1 .. 8`` empty).

Per op slot a :class:`~tfnas.train.supernet.BankSwitch` runs only the chosen op (one layer per op
code in every slot; an empty slot runs the identity on its all-zero input). A node's input is
the adjacency-weighted sum of the earlier slots, so edges are data, not structure. Reduction
cells follow :class:`~tfnas.spaces.nasnet_dag.network.NasnetDagCell`: a node fed only by inputs
runs a stride-2 op layer on the inputs' sum; otherwise each input edge goes through its own
FactorizedReduce (switched off, i.e. not computed, when the edge is absent) and the node runs a
stride-1 layer; inputs wired to the output are reduced the same way. Stride-2 and stride-1 layers
of a slot are separate weights. The cell output concatenates all 9 non-output slots, absent ones
as zeros, so the next cell's 1x1 preprocessing reads ``9 C`` channels (a standalone network reads
``k C``; its weights are the rows of the wired nodes).

Only the chosen layers' parameters move (:func:`~tfnas.train.supernet.masked_sgd`). BatchNorms use
batch statistics in both steps (the spec scores architectures "with batch statistics"). Loss:
``CE + aux_weight * CE_aux`` with the DARTS auxiliary head after the second reduction.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfnas.checks import check_num_classes
from tfnas.spaces.darts.network import AuxiliaryHeadCIFAR, make_op, reduction_layers
from tfnas.spaces.nasnet_dag.arch import NASNET_DAG, NODE_OPS, NasnetDagArch, parse_arch
from tfnas.spaces.ops import BN_EPSILON, BN_MOMENTUM, FactorizedReduce, Identity, ReLUConvBN
from tfnas.train.seeding import LayerSeedStream
from tfnas.train.supernet import BankSwitch, SupernetEngine, correct, drop_path, masked_sgd

__all__ = ["NasnetDagSupernet", "SLOTS"]

SLOTS = NASNET_DAG.max_nodes  # 10: inputs 0, 1; op nodes 2..8; output 9
_OUT = SLOTS - 1
_CODES = tuple(sorted(NODE_OPS))  # 3..7, branch k runs code _CODES[k]
_SKIP = len(_CODES) - 1  # the identity (also what an empty slot runs)


def _zeros_half(h: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(h[:, ::2, ::2, :])


class NasnetDagSupernet(SupernetEngine):
    """The supernet (module docstring).

    Args:
        num_classes: logits. input_shape: ``(H, W, C)`` with sides divisible by 4.
        channels: ``C`` (NAG: 20). layers: cells (NAG: 11).
        momentum, weight_decay, grad_clip: SGD of :func:`masked_sgd`. aux_weight: 0 = no auxiliary head.
        jit_compile, graph_optimizer: of the traced steps. seed: weight initialisation.
    """

    ids_shape = (2, SLOTS, SLOTS + 1)

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (32, 32, 3), channels: int = 20,
                 layers: int = 11, momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                 aux_weight: float = 0.4, jit_compile: bool = False, seed: int = 0,
                 graph_optimizer: Optional[bool] = None):
        self.num_classes = check_num_classes(num_classes, "NasnetDagSupernet")
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or shape[0] % 4 or shape[1] % 4 or layers < 3 or channels % 2:
            raise ValueError(f"NasnetDagSupernet: needs input_shape (H, W, C) with H, W divisible by 4, layers >= 3 "
                             f"and even channels; got input_shape={input_shape!r}, layers={layers}, "
                             f"channels={channels}")
        if aux_weight and min(shape[:2]) < 32:
            raise ValueError(f"NasnetDagSupernet: the auxiliary head needs inputs of at least 32x32; set aux_weight "
                             f"0. Received: input_shape={shape}")
        self.input_shape, self.channels, self.layers = shape, int(channels), int(layers)
        self.momentum, self.weight_decay, self.grad_clip = float(momentum), float(weight_decay), float(grad_clip)
        self.aux_weight = float(aux_weight)
        self._switch = BankSwitch()
        with LayerSeedStream(seed).active():
            self._build()
        self._init_steps(shape, self.num_classes, bool(jit_compile), graph_optimizer)

    # ---- construction ---------------------------------------------------------------------

    def _build(self) -> None:
        bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
        c, (h, w) = self.channels, self.input_shape[:2]
        self.stem_conv = keras.layers.Conv2D(3 * c, 3, padding="same", use_bias=False,
                                             kernel_initializer="he_normal", name="stem_conv")
        self.stem_bn = keras.layers.BatchNormalization(name="stem_bn", **bn)
        self.stem_conv.build((None, h, w, 3))
        self.stem_bn.build((None, h, w, 3 * c))
        shared: List[keras.layers.Layer] = [self.stem_conv, self.stem_bn]
        self.cells: List[Dict[str, Any]] = []
        c_pp = c_p = 3 * c
        size_pp = size_p = (h, w)
        reduction_prev = False
        self.op_layers: List[List[tf.Variable]] = []  # per switchable layer, its trainable variables
        for i in range(self.layers):
            reduction = i in reduction_layers(self.layers)
            c = 2 * c if reduction else c
            cell: Dict[str, Any] = {"reduction": reduction, "channels": c, "size": size_p}
            pre0 = (FactorizedReduce(c, name=f"cell{i}_pre0") if reduction_prev
                    else ReLUConvBN(c, 1, name=f"cell{i}_pre0"))
            pre1 = ReLUConvBN(c, 1, name=f"cell{i}_pre1")
            pre0.build((None,) + size_pp + (c_pp,))
            pre1.build((None,) + size_p + (c_p,))
            cell["pre"] = (pre0, pre1)
            shared += [pre0, pre1]
            full = (None,) + size_p + (c,)
            half = (None, size_p[0] // 2, size_p[1] // 2, c) if reduction else full
            banks = []
            for j in range(2, _OUT):
                bank = [make_op(NODE_OPS[code], c, 2 if reduction else 1, name=f"cell{i}_n{j}_{NODE_OPS[code]}")
                        for code in _CODES]
                if reduction:
                    bank += [make_op(NODE_OPS[code], c, 1, name=f"cell{i}_n{j}_{NODE_OPS[code]}_s1") for code in _CODES]
                for k, layer in enumerate(bank):
                    layer.build(full if k < len(_CODES) else half)
                banks.append(bank)
            cell["ops"] = banks
            if reduction:  # (target slot, input) -> [FactorizedReduce, Identity]
                cell["reducers"] = {(j, s): [FactorizedReduce(c, name=f"cell{i}_fr{s}_to{j}"), Identity()]
                                    for j in list(range(3, _OUT)) + [_OUT] for s in (0, 1)}
                for pair in cell["reducers"].values():
                    for layer in pair:
                        layer.build(full)
            self.cells.append(cell)
            c_pp, c_p = c_p, (SLOTS - 1) * c
            size_pp, size_p = size_p, half[1:3]
            reduction_prev = reduction
            if i == reduction_layers(self.layers)[1]:
                self.aux_at, aux_shape = i, (None,) + size_p + (c_p,)
        self.aux_head = None
        if self.aux_weight:
            self.aux_head = AuxiliaryHeadCIFAR(self.num_classes, name="aux_head")
            self.aux_head.build(aux_shape)
            shared.append(self.aux_head)
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier")
        self.classifier.build((None, c_p))
        shared.append(self.classifier)
        self.shared_trainable = [v for layer in shared for v in layer.trainable_weights]
        switchable = [layer for cell in self.cells for bank in cell["ops"] for layer in bank]
        switchable += [pair[0] for cell in self.cells for pair in cell.get("reducers", {}).values()]
        self._switchable = switchable
        self._trainable = self.shared_trainable + [v for layer in switchable for v in layer.trainable_weights]
        self._buffers = [tf.Variable(tf.zeros_like(v), trainable=False, name="momentum") for v in self._trainable]
        seen, self._state = set(), []
        for layer in shared + switchable:
            for v in layer.weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    self._state.append(v)

    # ---- forward --------------------------------------------------------------------------

    def _reduce(self, cell: Dict[str, Any], target: int, src: int, x: tf.Tensor, on: tf.Tensor) -> tf.Tensor:
        """FactorizedReduce of input ``src`` for ``target`` where ``on``; zeros (not computed) elsewhere."""
        index = tf.where(on, 0, 1)
        key = ("fr", cell["channels"], cell["size"])
        return self._switch(key, index, [(0, 0, tf.identity), (1, 0, _zeros_half)], [x],
                            cell["reducers"][(target, src)])

    def _cell(self, i: int, cell: Dict[str, Any], s0, s1, types, adj, training: bool, used: List[tf.Tensor]):
        pre0, pre1 = cell["pre"]
        states = [pre0(s0, training=True), pre1(s1, training=True)]
        red, key = cell["reduction"], ("op", cell["reduction"], cell["channels"], cell["size"])
        for j in range(2, _OUT):
            code = types[j]
            branch = tf.where(code >= 3, code - 3, _SKIP)
            bank = cell["ops"][j - 2]
            if not red:
                x = tf.add_n([adj[s, j] * states[s] for s in range(j)])
                index = branch
                h = self._switch(key, index, [(k, 0, tf.identity) for k in range(len(_CODES))], [x], bank)
            else:
                has_mid = tf.reduce_sum(adj[2:j, j]) > 0 if j > 2 else tf.constant(False)
                full = adj[0, j] * states[0] + adj[1, j] * states[1]
                terms = [adj[s, j] * states[s] for s in range(2, j)]
                if j > 2:
                    terms += [self._reduce(cell, j, s, states[s], tf.logical_and(has_mid, adj[s, j] > 0))
                              for s in (0, 1)]
                    used += [tf.logical_and(has_mid, adj[s, j] > 0) for s in (0, 1)]
                half = tf.add_n(terms) if terms else _zeros_half(full)
                index = tf.where(tf.logical_or(has_mid, code < 0), len(_CODES), 0) + branch
                branches = [(k, 0, tf.identity) for k in range(len(_CODES))]
                branches += [(len(_CODES) + k, 1, tf.identity) for k in range(len(_CODES))]
                h = self._switch(key + (j > 2,), index, branches, [full, half], bank)
            used.append(tf.logical_and(code >= 0, tf.equal(tf.range(len(bank)), index)))
            if training:
                seed = tf.stack([self.noise_seed, self.noise_step * 4096 + i * SLOTS + j])
                h = drop_path(h, self.drop_path_rate, seed)
            states.append(h)
        parts = []
        for s in range(_OUT):
            if red and s < 2:
                parts.append(self._reduce(cell, _OUT, s, states[s], adj[s, _OUT] > 0))
            else:
                parts.append(adj[s, _OUT] * states[s])
        if red:
            used += [adj[s, _OUT] > 0 for s in (0, 1)]
        return tf.concat(parts, axis=-1)

    def _forward_used(self, images: tf.Tensor, ids: tf.Tensor, training: bool):
        x = self.stem_bn(self.stem_conv(images), training=True)
        s0 = s1 = x
        op_used: List[tf.Tensor] = []
        fr_used: List[tf.Tensor] = []
        aux = None
        for i, cell in enumerate(self.cells):
            kind = 1 if cell["reduction"] else 0
            types, adj = ids[kind, :, 0], tf.cast(ids[kind, :, 1:], tf.float32)
            used: List[tf.Tensor] = []
            out = self._cell(i, cell, s0, s1, types, adj, training, used)
            for u in used:  # op-bank masks ([bank]) vs FactorizedReduce flags (scalars), in call order
                (op_used if u.shape.rank else fr_used).append(u)
            s0, s1 = s1, out
            if self.aux_head is not None and i == self.aux_at:
                aux = self.aux_head(s1, training=True)
        logits = self.classifier(tf.reduce_mean(s1, axis=[1, 2]))
        return logits, aux, op_used, fr_used

    def _forward(self, images: tf.Tensor, ids: tf.Tensor, training: bool):
        logits, aux, _, _ = self._forward_used(images, ids, training)
        return logits, aux

    def _train_step(self, images: tf.Tensor, labels: tf.Tensor, ids: tf.Tensor, lr: tf.Tensor):
        with tf.GradientTape() as tape:
            logits, aux, op_used, fr_used = self._forward_used(images, ids, training=True)
            per_example = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_mean(per_example)
            if aux is not None:
                loss += self.aux_weight * tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, aux))
        grads = tape.gradient(loss, self._trainable)
        used: List[Any] = [True] * len(self.shared_trainable)
        masks = [m[k] for m in op_used for k in range(m.shape[0])] + fr_used
        for layer, flag in zip(self._switchable, masks):
            used += [flag] * len(layer.trainable_weights)
        masked_sgd(self._trainable, self._buffers, grads, used, lr, self.momentum, self.weight_decay, self.grad_clip)
        return tf.reduce_sum(per_example), correct(labels, logits), tf.cast(tf.shape(labels)[0], tf.float32)

    # ---- candidates -----------------------------------------------------------------------

    def to_ids(self, arch: Any) -> np.ndarray:
        """``ids [2, 10, 11]`` of a :class:`NasnetDagArch` or its text (module docstring)."""
        arch = parse_arch(arch) if isinstance(arch, str) else arch
        if not isinstance(arch, NasnetDagArch):
            raise ValueError(f"a nasnet_dag candidate is a NasnetDagArch or its text; got {type(arch).__name__}")
        ids = np.zeros(self.ids_shape, np.int32)
        for kind, cell in enumerate((arch.normal, arch.reduction)):
            n = cell.num_nodes
            slot = list(range(n - 1)) + [_OUT]
            ids[kind, :, 0] = -1
            for node, code in enumerate(cell.types):
                ids[kind, slot[node], 0] = code
            for a, b in cell.edges:
                ids[kind, slot[a], 1 + slot[b]] = 1
        return ids
