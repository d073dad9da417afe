"""The SLNAS weight-sharing search network over the lite space: one graph for every candidate.

The reference (``model_arc/model_maker.py`` with ``normal_block_repeat = [4, 4]`` in
``train_search_cifar.py``) holds, in every node slot of every cell, one layer per op (5); a
sampled architecture picks an input and an op per slot. Here a candidate enters the traced steps
of :class:`~tfnas.train.supernet.SupernetEngine` as ``ids int32 [2, 5, 2, 2]`` (``to_ids``: cell
kind, node, slot x/y, (input, op)); per slot a ``tf.switch_case`` runs only the chosen op, so one
trace of the train step and one of the eval step serve every candidate, and only the chosen ops'
parameters (masked SGD: value, momentum, decay) and BatchNorm statistics move.

Shapes. Normal cells keep every state at the input size, so a slot gathers its input from the
stacked states. In a reduction cell (inputs at ``H``, nodes at ``T = H // 2``) a branch's size
depends on its input (a cell input or an earlier node) and its op (ops 0-3 at stride 2, op 4 at
stride 1): ``H``, ``T`` or ``T // 2``. :class:`~tfnas.spaces.lite.cell.LiteCell` upsamples the
smaller branch of a node to the larger one, sums, and resizes the sum to ``T``; here every slot
resizes its own branch straight to ``T``, so all slot outputs share one static shape and a slot
is a switch over ``(input kind, op)`` (10 branches). The two agree whenever both branches of a
node have the same size; otherwise they differ by the difference between one bilinear resize
and two (an approximation in the search network only: found cells are retrained as
:class:`~tfnas.spaces.lite.network.LiteNetwork`). Drop-path acts per example and commutes with
the resizing. Slots run through :class:`~tfnas.train.supernet.BankSwitch`, whose gradient
recomputes only the chosen branch.

Search stems (reference ``train_search_cifar.py``): each of the two stems is
``Mish(BN(conv3x3/2(Mish(BN(conv3x3/2(x))))))`` with reflection padding (CIFAR is searched at
8x8); ``stem_stride = 1`` uses the retraining stems (3x3 and 5x5 at stride 1) instead.

BatchNorm: the reference searches with ``track_running_stats=False`` BatchNorms in most places,
i.e. batch statistics also when scoring a candidate; here every BatchNorm of the supernet uses
batch statistics in both steps (the moving statistics are kept up to date but not read).
Loss: ``CE + aux_weight * CE_aux`` (the reference's ``(i + 1) * 0.1``-weighted mean of the
auxiliary heads, one head per reduction cell but the last).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.checks import check_num_classes
from tfnas.spaces.lite.arch import NUM_NODES, OPS, LiteArch, parse_arch, to_ids
from tfnas.spaces.lite.cell import SE_RATIO
from tfnas.spaces.lite.network import check_blocks, check_channels, stage_layout
from tfnas.spaces.lite.ops import ReflectConvBN, SqueezeExcite, batch_norm, make_op, pointwise_conv
from tfnas.spaces.ops import mish
from tfnas.train.seeding import LayerSeedStream
from tfnas.train.supernet import SupernetEngine, BankSwitch, correct, drop_path, masked_sgd

__all__ = ["LiteSupernet"]

_NUM_OPS = len(OPS)


def _resize(x: tf.Tensor, size: Tuple[int, int]) -> tf.Tensor:
    """Bilinear resize with half-pixel centres (PyTorch ``align_corners=False``); identity at the same size."""
    if (int(x.shape[1]), int(x.shape[2])) == tuple(size):
        return x
    return tf.cast(tf.image.resize(x, size, method="bilinear", antialias=False), x.dtype)


class _SearchStem(keras.layers.Layer):
    """Two ``reflect-pad -> conv3x3 stride 2 -> BN -> Mish`` stages (the reference's search stem)."""

    def __init__(self, filters: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.convs = [keras.layers.Conv2D(filters, 3, strides=2, padding="valid", use_bias=False,
                                          kernel_initializer="he_normal", name=f"conv{i}") for i in range(2)]
        self.bns = [batch_norm(f"bn{i}") for i in range(2)]

    def build(self, input_shape):
        b, h, w, c = input_shape
        for conv, bn in zip(self.convs, self.bns):
            conv.build((b, h + 2, w + 2, c))
            h, w, c = (h + 1) // 2, (w + 1) // 2, conv.filters
            bn.build((b, h, w, c))

    def call(self, x, training=None):
        for conv, bn in zip(self.convs, self.bns):
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
            x = mish(bn(conv(x), training=training))
        return x


class LiteSupernet(SupernetEngine):
    """The SLNAS weight set ``W`` with one traced train step and one traced eval step (module docstring).

    Args:
        num_classes: logits.
        input_shape: ``(H, W, C)`` images.
        channels: stem channels ``C`` (SLNAS search: 16, ``child_out_filters``).
        blocks: normal cells per stage (SLNAS search: ``(4, 4)``: 10 cells).
        stem_stride: 4 (the search stems, two stride-2 convs) or 1 (the retraining stems).
        momentum, weight_decay, grad_clip: SGD settings (paper: 0.9, 3e-4, 5; 0 = no clipping).
        aux_weight: weight of the auxiliary loss (paper: 0.4).
        jit_compile: XLA for the steps (pays on GPU).
        seed: seeds the initial weights.
        graph_optimizer: Grappler for the two steps; ``None``: on where a GPU is visible.
    """

    ids_shape = (2, NUM_NODES, 2, 2)

    def __init__(self, num_classes: int, input_shape: Sequence[int] = (32, 32, 3), channels: int = 16,
                 blocks: Sequence[int] = (4, 4), stem_stride: int = 4, momentum: float = 0.9,
                 weight_decay: float = 3e-4, grad_clip: float = 5.0, aux_weight: float = 0.4,
                 jit_compile: bool = False, seed: int = 0, graph_optimizer: Optional[bool] = None):
        self.num_classes = check_num_classes(num_classes, "LiteSupernet")
        self.channels = check_channels(channels, "LiteSupernet")
        self.blocks = check_blocks(blocks, "LiteSupernet")
        if stem_stride not in (1, 4):
            raise ValueError(f"LiteSupernet: stem_stride must be 1 or 4; got {stem_stride!r}")
        shape = tuple(int(d) for d in input_shape)
        reductions = len(self.blocks)
        side = min(shape[:2]) // stem_stride if len(shape) == 3 else 0
        if len(shape) != 3 or side < 2 ** reductions:
            raise ValueError(f"LiteSupernet: input_shape must be (H, W, C) with sides of at least "
                             f"{stem_stride * 2 ** reductions} ({reductions} reductions after the stems); "
                             f"got {input_shape!r}")
        self.input_shape, self.stem_stride = shape, int(stem_stride)
        self.momentum, self.weight_decay, self.grad_clip = float(momentum), float(weight_decay), float(grad_clip)
        self.aux_weight, self.jit_compile = float(aux_weight), bool(jit_compile)
        self.layout = stage_layout(self.blocks)
        self._switch = BankSwitch()
        with LayerSeedStream(seed).active():
            self._build()
        self._init_steps(shape, self.num_classes, self.jit_compile, graph_optimizer)

    # ---- construction ---------------------------------------------------------------------

    def _build(self) -> None:
        c = self.channels
        if self.stem_stride == 1:
            self.stems = [ReflectConvBN(c, k, name=f"stem{i}") for i, k in enumerate((3, 5))]
        else:
            self.stems = [_SearchStem(c, name=f"stem{i}") for i in range(2)]
        images = (None,) + self.input_shape
        for stem in self.stems:
            stem.build(images)
        h, w = self.input_shape[:2]
        if self.stem_stride == 4:  # two reflect-padded 3x3 convs at stride 2: ceil(n / 2) twice
            h, w = (((h + 1) // 2) + 1) // 2, (((w + 1) // 2) + 1) // 2
        self.cells: List[Dict[str, Any]] = []
        self.skip_convs: List[keras.layers.Layer] = []
        self.aux_heads: List[keras.layers.Layer] = []
        for i, (stage, reduction) in enumerate(self.layout):
            out = 2 * c if reduction else c
            cell: Dict[str, Any] = {"reduction": reduction, "size": (h, w), "channels": c,
                                    "ops": [[make_op(t, out, reduction, name=f"cell{i}_slot{q}_{OPS[t]}")
                                             for t in range(_NUM_OPS)] for q in range(2 * NUM_NODES)]}
            target = (h // 2, w // 2) if reduction else (h, w)
            for q, bank in enumerate(cell["ops"]):
                for layer in bank:
                    layer.build((None, h, w, c))
                    if reduction:  # ops also read earlier nodes, at the target size
                        layer.compute_output_shape((None,) + target + (c,))
            if reduction:
                cell["calibrate"] = pointwise_conv(c, f"cell{i}_calibrate")
                cell["calibrate"].build((None,) + target + (out,))
            cat = (None,) + target + (NUM_NODES * c,)
            cell["out_bn"], cell["out_se"] = batch_norm(f"cell{i}_out_bn"), SqueezeExcite(SE_RATIO, name=f"cell{i}_se")
            cell["out_conv"] = pointwise_conv(out, f"cell{i}_out_conv")
            for name in ("out_bn", "out_se", "out_conv"):
                cell[name].build(cat)
            self.cells.append(cell)
            if reduction and stage < len(self.blocks) - 1:
                skip = pointwise_conv(out, f"cell{i}_skip_conv")
                skip.build((None, h, w, c))
                self.skip_convs.append(skip)
                head = keras.layers.Dense(self.num_classes, use_bias=False, name=f"aux_head{stage}")
                head.build((None, out))
                self.aux_heads.append(head)
            h, w, c = target[0], target[1], out
        self.classifier = keras.layers.Dense(self.num_classes, use_bias=False, name="classifier")
        self.classifier.build((None, c))
        shared = list(self.stems) + self.skip_convs + self.aux_heads + [self.classifier]
        for cell in self.cells:
            shared += [cell[n] for n in ("calibrate", "out_bn", "out_se", "out_conv") if n in cell]
        self.shared_trainable = [v for layer in shared for v in layer.trainable_weights]
        # (cell, slot, op) -> trainable variables of that op layer
        self.op_trainable = [[[list(layer.trainable_weights) for layer in bank] for bank in cell["ops"]]
                             for cell in self.cells]
        op_vars = [v for cell in self.op_trainable for bank in cell for vs in bank for v in vs]
        self._trainable = self.shared_trainable + op_vars
        self._buffers = [tf.Variable(tf.zeros_like(v), trainable=False, name="momentum") for v in self._trainable]
        layers = shared + [layer for cell in self.cells for bank in cell["ops"] for layer in bank]
        seen, self._state = set(), []
        for layer in layers:
            for v in layer.weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    self._state.append(v)

    # ---- forward --------------------------------------------------------------------------

    def _slot(self, cell: Dict[str, Any], i: int, q: int, states: List[tf.Tensor], src: tf.Tensor, op: tf.Tensor,
              training: bool) -> tf.Tensor:
        """Output of node slot ``q`` of cell ``i`` at the node size (drop-path applied in training)."""
        bank = cell["ops"][q]
        if not cell["reduction"]:
            x = tf.gather(tf.stack(states), src)
            h = self._switch((False, cell["channels"], cell["size"]), op,
                             [(t, 0, tf.identity) for t in range(_NUM_OPS)], [x], bank)
        else:
            size = cell["size"]
            target = (size[0] // 2, size[1] // 2)
            inputs = [tf.gather(tf.stack(states[:2]), tf.minimum(src, 1))]
            node = len(states) - 2
            if node:
                inputs.append(tf.gather(tf.stack(states[2:]), tf.clip_by_value(src - 2, 0, node - 1)))
            post = lambda h: _resize(h, target)  # noqa: E731
            branches = [(t, kind, post) for kind in range(len(inputs)) for t in range(_NUM_OPS)]
            index = tf.where(src >= 2, _NUM_OPS, 0) + op if node else op
            h = self._switch((True, cell["channels"], cell["size"], min(node, 1)), index, branches, inputs, bank)
        if not training:
            return h
        seed = tf.stack([self.noise_seed, self.noise_step * 4096 + i * 2 * NUM_NODES + q])
        return drop_path(h, self.drop_path_rate, seed)

    def _forward(self, images: tf.Tensor, ids: tf.Tensor, training: bool):
        """``(logits, aux logits list)``; BatchNorms use batch statistics (module docstring)."""
        s0, s1 = (stem(images, training=True) for stem in self.stems)
        aux, skip = [], 0
        for i, cell in enumerate(self.cells):
            kind = 1 if cell["reduction"] else 0
            srcs = tf.reshape(ids[kind, :, :, 0], [2 * NUM_NODES])
            ops_ = tf.reshape(ids[kind, :, :, 1], [2 * NUM_NODES])
            states = [_resize(s0, cell["size"]), s1]
            for n in range(NUM_NODES):
                terms = []
                for slot in range(2):
                    q = 2 * n + slot
                    terms.append(self._slot(cell, i, q, states, srcs[q], ops_[q], training))
                node = terms[0] + terms[1]
                if cell["reduction"]:
                    node = cell["calibrate"](node)
                states.append(node)
            h = cell["out_bn"](tf.concat(states[2:], axis=-1), training=True)
            out = cell["out_conv"](cell["out_se"](mish(h)))
            if cell["reduction"] and skip < len(self.skip_convs):
                s1 = self.skip_convs[skip](s1)
                aux.append(self.aux_heads[skip](tf.reduce_mean(out, axis=[1, 2])))
                skip += 1
            s0, s1 = s1, out
        return self.classifier(tf.reduce_mean(s1, axis=[1, 2])), aux

    def _loss(self, labels: tf.Tensor, logits: tf.Tensor, aux: List[tf.Tensor]):
        per_example = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        loss = tf.reduce_mean(per_example)
        if aux and self.aux_weight:
            weights = [0.1 * (k + 1) for k in range(len(aux))]
            aux_loss = tf.add_n([w * tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, a))
                                 for w, a in zip(weights, aux)]) / sum(weights)
            loss = loss + self.aux_weight * aux_loss
        return per_example, loss

    def _train_step(self, images: tf.Tensor, labels: tf.Tensor, ids: tf.Tensor, lr: tf.Tensor):
        with tf.GradientTape() as tape:
            logits, aux = self._forward(images, ids, training=True)
            per_example, loss = self._loss(labels, logits, aux)
        grads = tape.gradient(loss, self._trainable)
        used: List[Any] = [True] * len(self.shared_trainable)
        for i, cell in enumerate(self.cells):
            kind = 1 if cell["reduction"] else 0
            ops_ = tf.reshape(ids[kind, :, :, 1], [2 * NUM_NODES])
            for q in range(2 * NUM_NODES):
                for t in range(_NUM_OPS):
                    used += [tf.equal(ops_[q], t)] * len(self.op_trainable[i][q][t])
        masked_sgd(self._trainable, self._buffers, grads, used, lr, self.momentum, self.weight_decay, self.grad_clip)
        return tf.reduce_sum(per_example), correct(labels, logits), tf.cast(tf.shape(labels)[0], tf.float32)

    # ---- candidates -----------------------------------------------------------------------

    def to_ids(self, arch: Any) -> np.ndarray:
        """``ids [2, 5, 2, 2]`` of a :class:`LiteArch`, its text, or an int array ``[2, 20]`` / ``[2, 5, 2, 2]``."""
        if isinstance(arch, str):
            arch = parse_arch(arch)
        if isinstance(arch, LiteArch):
            return to_ids(arch)
        values = np.asarray(arch)
        if values.shape == (2, 4 * NUM_NODES):
            return to_ids(parse_arch(str(values.astype(int).tolist())))
        if values.shape == self.ids_shape:
            return to_ids(parse_arch(str(values.reshape(2, -1).astype(int).tolist())))
        raise ValueError(f"a lite candidate is a LiteArch, its text, or ints of shape (2, 20) or {self.ids_shape}; "
                         f"got shape {values.shape}")

    def num_params(self, arch: Any = None) -> int:
        """Trainable parameters of the whole supernet, or the shared ones plus the ops ``arch`` uses."""
        shared = sum(int(np.prod(v.shape)) for v in self.shared_trainable)
        if arch is None:
            return sum(int(np.prod(v.shape)) for v in self._trainable)
        ids = self.to_ids(arch)
        total = shared
        for i, cell in enumerate(self.cells):
            kind = 1 if cell["reduction"] else 0
            for q in range(2 * NUM_NODES):
                t = int(ids[kind, q // 2, q % 2, 1])
                total += sum(int(np.prod(v.shape)) for v in self.op_trainable[i][q][t])
        return total
