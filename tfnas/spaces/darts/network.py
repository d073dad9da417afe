"""The DARTS CIFAR evaluation network (Liu et al., ICLR 2019, ``model.py`` ``NetworkCIFAR``) in Keras.

``stem (3x3 conv to 3C, BN) -> layers cells -> global average pool -> dense``. Cells at
``layers // 3`` and ``2 * layers // 3`` are reduction cells: they double the channels and run
their ops on the two cell inputs with stride 2. Each cell preprocesses ``c_{k-2}`` with a
ReLU-1x1 conv-BN (a FactorizedReduce right after a reduction cell) and ``c_{k-1}`` with a
ReLU-1x1 conv-BN, both to ``C``; its output concatenates the states of ``concat``
(``len(concat) * C`` channels). The auxiliary head reads the output of cell ``2 * layers // 3``
(8x8 on CIFAR): ReLU, 5x5 average pool stride 3, 1x1 conv 128, BN, ReLU, 2x2 conv 768, BN,
ReLU, dense. Drop-path follows every op but the stride-1 skip connection.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import keras
from keras import ops

from tfnas.spaces.ops.common import build_once, with_list_children
from tfnas.checks import check_int, check_num_classes, positive_int
from tfnas.spaces.darts.genotype import parse_genotype
from tfnas.spaces.ops import (
    BN_EPSILON,
    BN_MOMENTUM,
    AvgPool3x3,
    DilConv,
    DropPath,
    FactorizedReduce,
    Identity,
    MaxPool3x3,
    ReLUConvBN,
    SepConv,
)

__all__ = ["AuxiliaryHeadCIFAR", "CellStackNetwork", "DartsCell", "DartsNetwork", "count_network_params", "make_op",
           "reduction_layers"]

AUX_CHANNELS = (128, 768)


def make_op(op: str, filters: int, strides: int, name: Optional[str] = None) -> keras.layers.Layer:
    """The Keras layer of DARTS op ``op`` on ``filters`` channels (input = output channels).

    ``skip_connect`` is :class:`Identity` at stride 1 and :class:`FactorizedReduce` at stride 2;
    pools exclude their padding; all BatchNorms are affine with PyTorch's defaults.
    """
    kw = dict(name=name)
    if op == "max_pool_3x3":
        return MaxPool3x3(strides, **kw)
    if op == "avg_pool_3x3":
        return AvgPool3x3(strides, **kw)
    if op == "skip_connect":
        return Identity(**kw) if strides == 1 else FactorizedReduce(filters, **kw)
    if op in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(filters, int(op[-1]), strides=strides, **kw)
    if op in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(filters, int(op[-1]), strides=strides, dilation=2, **kw)
    raise ValueError(f"unknown DARTS op {op!r}")


def op_params(op: str, c: int, strides: int) -> int:
    """Trainable parameters of ``make_op(op, c, strides)`` on ``c`` input channels."""
    if op in ("max_pool_3x3", "avg_pool_3x3") or (op == "skip_connect" and strides == 1):
        return 0
    if op == "skip_connect":
        return c * c + 2 * c
    k = int(op[-1])
    if op.startswith("sep_conv"):
        return 2 * (k * k * c + c * c + 2 * c)
    return k * k * c + c * c + 2 * c


def reduction_layers(layers: int) -> Tuple[int, int]:
    """Indices of the two reduction cells of a ``layers``-cell network."""
    return layers // 3, 2 * layers // 3


def count_network_params(genotype: Any, num_classes: int, channels: int, layers: int, auxiliary: bool) -> int:
    """Analytic trainable-parameter count of :class:`DartsNetwork` (see ``DartsSpace.num_params``)."""
    c_curr = 3 * channels
    total = 27 * c_curr + 2 * c_curr  # stem conv + BN
    c_pp, c_p, c = c_curr, c_curr, channels
    c_aux = 0
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        if reduction:
            c *= 2
        pairs, concat = genotype.cell(reduction)
        total += c_pp * c + 2 * c + c_p * c + 2 * c  # preprocess0 (ReLUConvBN or FactorizedReduce), preprocess1
        total += sum(op_params(op, c, 2 if reduction and src < 2 else 1) for op, src in pairs)
        c_pp, c_p = c_p, len(concat) * c
        if i == reduction_layers(layers)[1]:
            c_aux = c_p
    total += c_p * num_classes + num_classes
    if auxiliary:
        a, b = AUX_CHANNELS
        total += c_aux * a + 2 * a + a * b * 4 + 2 * b + b * num_classes + num_classes
    return int(total)


@keras.saving.register_keras_serializable(package="tfnas")
class DartsCell(keras.layers.Layer):
    """One DARTS cell: ``[c_{k-2}, c_{k-1}] -> concat of its node states``.

    Args:
        pairs: the cell's 8 ``[op, input]`` pairs (node ``j`` sums pairs ``2j`` and ``2j + 1``).
        concat: states concatenated into the output.
        filters: ``C`` of the cell (per-node channels).
        reduction: ops on the two cell inputs run at stride 2.
        reduction_prev: the previous cell reduced, so ``c_{k-2}`` goes through FactorizedReduce.
        drop_path_rate: None (no drop-path) or the initial DropPath rate of every non-identity op.
        seed: seed of the first DropPath layer (the k-th gets ``seed + k``), or None.
        share_with: another cell of the same structure whose preprocessing and op layers (and so
            weights) this one uses instead of making its own (not serialized; see
            :meth:`DartsNetwork.inference_model`).

    Input shape: ``[(B, H0, W0, C0), (B, H1, W1, C1)]`` with ``H0 = 2 * H1`` when ``reduction_prev``.
    Output shape: ``(B, H1 / s, W1 / s, len(concat) * filters)``, ``s = 2`` for a reduction cell.
    """

    def __init__(self, pairs: Sequence[Sequence[Any]], concat: Sequence[int], filters: int, reduction: bool = False,
                 reduction_prev: bool = False, drop_path_rate: Optional[float] = None, seed: Optional[int] = None,
                 share_with: Optional["DartsCell"] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pairs = [[str(op), int(src)] for op, src in pairs]
        self.concat = [int(c) for c in concat]
        self.filters = int(filters)
        self.reduction, self.reduction_prev = bool(reduction), bool(reduction_prev)
        self.drop_path_rate = None if drop_path_rate is None else float(drop_path_rate)
        self.seed = seed
        c = self.filters
        if share_with is not None:
            same = (share_with.pairs, share_with.filters, share_with.reduction, share_with.reduction_prev)
            if same != (self.pairs, self.filters, self.reduction, self.reduction_prev):
                raise ValueError(f"DartsCell {self.name}: share_with must be a cell of the same structure")
            self.preprocess0, self.preprocess1 = share_with.preprocess0, share_with.preprocess1
        else:
            self.preprocess0 = (FactorizedReduce(c, name="preprocess0") if reduction_prev
                                else ReLUConvBN(c, 1, name="preprocess0"))
            self.preprocess1 = ReLUConvBN(c, 1, name="preprocess1")
        self.cell_ops: List[keras.layers.Layer] = []
        self.drops: List[Optional[DropPath]] = []
        for k, (op, src) in enumerate(self.pairs):
            strides = 2 if self.reduction and src < 2 else 1
            layer = share_with.cell_ops[k] if share_with is not None else make_op(op, c, strides, name=f"op{k}_{op}")
            self.cell_ops.append(layer)
            identity = isinstance(layer, Identity)
            if self.drop_path_rate is None or identity:
                self.drops.append(None)
            else:
                layer_seed = None if seed is None else seed + len([d for d in self.drops if d is not None])
                self.drops.append(DropPath(self.drop_path_rate, seed=layer_seed, name=f"op{k}_drop"))

    def build(self, input_shape: Sequence[Tuple[Optional[int], ...]]) -> None:
        shape0, shape1 = (tuple(s) for s in input_shape)
        build_once(self.preprocess0, shape0)
        build_once(self.preprocess1, shape1)
        states = [self.preprocess0.compute_output_shape(shape0), self.preprocess1.compute_output_shape(shape1)]
        for node in range(len(self.pairs) // 2):
            out = None
            for k in (2 * node, 2 * node + 1):
                op, src = self.pairs[k]
                build_once(self.cell_ops[k], states[src])
                out = self.cell_ops[k].compute_output_shape(states[src])
                if self.drops[k] is not None:
                    build_once(self.drops[k], out)
            states.append(out)
        self._out_shape = states[-1][:3] + (len(self.concat) * self.filters,)

    def call(self, inputs, training=None):
        s0, s1 = inputs
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        for node in range(len(self.pairs) // 2):
            terms = []
            for k in (2 * node, 2 * node + 1):
                h = self.cell_ops[k](states[self.pairs[k][1]], training=training) if _takes_training(
                    self.cell_ops[k]) else self.cell_ops[k](states[self.pairs[k][1]])
                if self.drops[k] is not None:
                    h = self.drops[k](h, training=training)
                terms.append(h)
            states.append(terms[0] + terms[1])
        return ops.concatenate([states[i] for i in self.concat], axis=-1)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        return with_list_children(children, (("cell_ops", self.cell_ops), ("drops", self.drops)))

    def compute_output_shape(self, input_shape: Sequence[Tuple[Optional[int], ...]]) -> Tuple[Optional[int], ...]:
        b, h, w, _ = tuple(input_shape[1])
        if self.reduction:
            h, w = (None if h is None else (h - 1) // 2 + 1), (None if w is None else (w - 1) // 2 + 1)
        return (b, h, w, len(self.concat) * self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"pairs": self.pairs, "concat": self.concat, "filters": self.filters,
                       "reduction": self.reduction, "reduction_prev": self.reduction_prev,
                       "drop_path_rate": self.drop_path_rate, "seed": self.seed})
        return config


def _takes_training(layer: keras.layers.Layer) -> bool:
    return not isinstance(layer, (MaxPool3x3, AvgPool3x3, Identity))


@keras.saving.register_keras_serializable(package="tfnas")
class AuxiliaryHeadCIFAR(keras.layers.Layer):
    """The DARTS CIFAR auxiliary classifier, for an ``8x8`` input (``AuxiliaryHeadCIFAR``).

    ``relu -> avgpool 5x5/3 (valid) -> conv1x1 128 -> BN -> relu -> conv2x2 768 -> BN -> relu -> dense``;
    convs without bias. Trainable parameters: ``128 C + 256 + 393,216 + 1,536 + 769 * classes``.

    Args:
        num_classes: logits.

    Input shape: ``(B, 8, 8, C)``. Output shape: ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        a, b = AUX_CHANNELS
        bn = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
        self.pool = keras.layers.AveragePooling2D(5, strides=3, padding="valid", name="pool")
        self.conv1 = keras.layers.Conv2D(a, 1, use_bias=False, kernel_initializer="he_normal", name="conv1")
        self.bn1 = keras.layers.BatchNormalization(name="bn1", **bn)
        self.conv2 = keras.layers.Conv2D(b, 2, use_bias=False, kernel_initializer="he_normal", name="conv2")
        self.bn2 = keras.layers.BatchNormalization(name="bn2", **bn)
        self.flatten = keras.layers.Flatten(name="flatten")
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier")

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        shape = self.pool.compute_output_shape(tuple(input_shape))
        self.conv1.build(shape)
        shape = self.conv1.compute_output_shape(shape)
        self.bn1.build(shape)
        self.conv2.build(shape)
        shape = self.conv2.compute_output_shape(shape)
        self.bn2.build(shape)
        self.classifier.build((shape[0], shape[1] * shape[2] * shape[3]))

    def call(self, inputs, training=None):
        x = self.pool(ops.relu(inputs))
        x = ops.relu(self.bn1(self.conv1(x), training=training))
        x = ops.relu(self.bn2(self.conv2(x), training=training))
        return self.classifier(self.flatten(x))

    def compute_output_shape(self, input_shape: Tuple[Optional[int], ...]) -> Tuple[Optional[int], ...]:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config


class CellStackNetwork(keras.Model):
    """What the DARTS and NASNet-DAG CIFAR networks share (module docstring): the ``3C`` stem, ``layers``
    cells with reductions at :func:`reduction_layers` (channels doubled there), the auxiliary head on
    the second reduction cell's output, global pooling, optional dropout and the classifier.

    ``call(images, training)`` returns logits ``(B, num_classes)``, or ``(logits, aux_logits)`` when
    ``training`` is true and the network has an auxiliary head (the Trainer's ``aux_weight``
    contract); inference and export see logits only, and the exported network is
    :meth:`inference_model`. A subclass names its architecture (:meth:`arch_text`) and its copy for
    serving (:meth:`_serving_copy`), and calls :meth:`_make_layers` from its constructor with a
    function that makes its cells.
    """

    def arch_text(self) -> str:
        raise NotImplementedError

    def _serving_copy(self) -> "CellStackNetwork":
        raise NotImplementedError

    def _make_layers(self, num_classes: int, image_shape: Sequence[int], channels: int, layers: int, auxiliary: bool,
                     dropout: float, drop_path_rate: Optional[float], seed: Optional[int],
                     share_with: Optional["CellStackNetwork"], make_cell: Callable[..., keras.layers.Layer]) -> None:
        """Checks the sizes and makes the layers; ``make_cell(index, filters, reduction, reduction_prev,
        seed, share_with)`` makes cell ``index`` (its ``drops`` are its DropPath layers or None each)."""
        kind = type(self).__name__
        shape = tuple(int(d) for d in image_shape)
        if len(shape) != 3 or shape[0] % 4 or shape[1] % 4:
            raise ValueError(f"{kind}: `image_shape` must be (H, W, C) with H and W divisible by 4 (two stride-2 "
                             f"reductions). Received: image_shape={tuple(image_shape)}")
        channels, layers = positive_int(channels, "channels", kind), positive_int(layers, "layers", kind)
        seed = None if seed is None else check_int(seed, "seed", kind, low=0)
        if layers < 3:
            raise ValueError(f"{kind}: `layers` must be >= 3 (two reduction cells). Received: layers={layers}")
        if auxiliary and min(shape[0], shape[1]) < 32:
            raise ValueError(f"{kind}: the auxiliary head needs images of at least 32x32 (an 8x8 map after two "
                             f"reductions); pass auxiliary=False. Received: image_shape={tuple(image_shape)}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{kind}: `dropout` must be in [0, 1). Received: {dropout!r}")
        if drop_path_rate is not None and not 0.0 <= float(drop_path_rate) < 1.0:
            raise ValueError(f"{kind}: `drop_path_rate` must be None or in [0, 1). Received: {drop_path_rate!r}")
        self.num_classes, self.image_shape = check_num_classes(num_classes, kind), shape
        self.channels, self.layers_count = int(channels), int(layers)
        self.auxiliary, self.dropout = bool(auxiliary), float(dropout)
        self.drop_path_rate = None if drop_path_rate is None else float(drop_path_rate)
        self.seed = seed
        if share_with is not None:
            mine = (self.arch_text(), self.num_classes, self.image_shape, self.channels, self.layers_count)
            theirs = (share_with.arch_text(), share_with.num_classes, share_with.image_shape, share_with.channels,
                      share_with.layers_count)
            if mine != theirs:
                raise ValueError(f"{kind}: share_with must have the same architecture and sizes; {mine} != {theirs}")
            self.stem_conv, self.stem_bn = share_with.stem_conv, share_with.stem_bn
        else:
            self.stem_conv = keras.layers.Conv2D(3 * self.channels, 3, padding="same", use_bias=False,
                                                 kernel_initializer="he_normal", name="stem_conv")
            self.stem_bn = keras.layers.BatchNormalization(name="stem_bn", momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
        self.cells: List[keras.layers.Layer] = []
        c, reduction_prev, drops = self.channels, False, 0
        for i in range(self.layers_count):
            reduction = i in reduction_layers(self.layers_count)
            c = 2 * c if reduction else c
            cell = make_cell(i, c, reduction, reduction_prev, None if seed is None else seed + drops,
                             None if share_with is None else share_with.cells[i])
            drops += sum(d is not None for d in cell.drops)
            self.cells.append(cell)
            reduction_prev = reduction
        shared_head = None if share_with is None else share_with.auxiliary_head
        self.auxiliary_head = (shared_head or AuxiliaryHeadCIFAR(self.num_classes, name="auxiliary_head")
                               if self.auxiliary else None)
        self.global_pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        self.drop = keras.layers.Dropout(self.dropout, seed=seed, name="dropout") if self.dropout else None
        self.classifier = (share_with.classifier if share_with is not None
                           else keras.layers.Dense(self.num_classes, name="classifier"))

    @property
    def input_shape(self) -> Tuple[Optional[int], ...]:
        """``(None, H, W, C)`` (used by the SavedModel export signature)."""
        return (None,) + self.image_shape

    def build(self, input_shape: Tuple[Optional[int], ...]) -> None:
        input_shape = tuple(input_shape)
        build_once(self.stem_conv, input_shape)
        stem = self.stem_conv.compute_output_shape(input_shape)
        build_once(self.stem_bn, stem)
        s0 = s1 = stem
        aux_at = reduction_layers(self.layers_count)[1]
        for i, cell in enumerate(self.cells):
            cell.build([s0, s1])
            s0, s1 = s1, cell.compute_output_shape([s0, s1])
            if i == aux_at and self.auxiliary_head is not None:
                build_once(self.auxiliary_head, s1)
        build_once(self.classifier, (s1[0], s1[-1]))
        self.built = True

    def inference_model(self) -> "CellStackNetwork":
        """The network to serve: the same cells and classifier, sharing this network's layers and
        weights, without the auxiliary head, DropPath layers and dropout.

        Its trainable parameters are the space's ``num_params(arch)`` (the published count); its
        outputs equal ``self(x, training=False)``. Returns ``self`` when there is nothing to drop.
        """
        if self.auxiliary_head is None and self.drop_path_rate is None and self.drop is None:
            return self
        net = self._serving_copy()
        net.build((None,) + self.image_shape)
        return net

    def _cells(self, inputs, training):
        """``(features, aux_logits or None)``: the last cell's output and the auxiliary head's logits."""
        x = self.stem_bn(self.stem_conv(inputs), training=training)
        s0 = s1 = x
        aux = None
        aux_at = reduction_layers(self.layers_count)[1]
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell([s0, s1], training=training)
            if i == aux_at and training and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s1, training=training)
        return s1, aux

    def call(self, inputs, training=None):
        features, aux = self._cells(inputs, training)
        x = self.global_pool(features)
        if self.drop is not None:
            x = self.drop(x, training=training)
        logits = self.classifier(x)
        return (logits, aux) if aux is not None else logits

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        return with_list_children(children, (("cells", self.cells),))

    def pre_pool_features(self, inputs, training=None):
        """The feature map ``(B, H', W', C')`` that global pooling averages, computed as in
        :meth:`call` (the auxiliary head runs too in training mode); the Zen score reads it."""
        return self._cells(inputs, training)[0]


@keras.saving.register_keras_serializable(package="tfnas")
class DartsNetwork(CellStackNetwork):
    """The DARTS CIFAR network of one genotype (module docstring; the layers and calls are those of
    :class:`CellStackNetwork`).

    Args:
        genotype: the genotype text (``DartsGenotype`` string form).
        num_classes: logits per image.
        image_shape: ``(H, W, C)`` of the inputs, ``H`` and ``W`` divisible by 4.
        channels: initial channels ``C`` (stem has ``3C``).
        layers: number of cells.
        auxiliary: add the auxiliary head after cell ``2 * layers // 3``.
        drop_path_rate: None or the initial DropPath rate of every non-identity op.
        seed: DropPath seed (None = unseeded).
        share_with: a network of the same genotype and sizes whose layers (and so weights) this
            one uses instead of making its own (not serialized; see :meth:`inference_model`).
    """

    def __init__(self, genotype: str, num_classes: int, image_shape: Sequence[int] = (32, 32, 3), channels: int = 36,
                 layers: int = 20, auxiliary: bool = True, drop_path_rate: Optional[float] = None,
                 seed: Optional[int] = None, share_with: Optional["DartsNetwork"] = None, **kwargs: Any):
        super().__init__(**kwargs)
        arch = parse_genotype(genotype)
        self.genotype = str(arch)

        def make_cell(index, filters, reduction, reduction_prev, cell_seed, shared):
            pairs, concat = arch.cell(reduction)
            return DartsCell(pairs, concat, filters, reduction, reduction_prev, self.drop_path_rate, cell_seed,
                             share_with=shared, name=f"cell{index}")

        self._make_layers(num_classes, image_shape, channels, layers, auxiliary, 0.0, drop_path_rate, seed, share_with,
                          make_cell)

    def arch_text(self) -> str:
        return self.genotype

    def _serving_copy(self) -> "DartsNetwork":
        return DartsNetwork(self.genotype, self.num_classes, self.image_shape, self.channels, self.layers_count,
                            auxiliary=False, drop_path_rate=None, seed=self.seed, share_with=self, name=self.name)

    def get_config(self) -> dict:
        return {"genotype": self.genotype, "num_classes": self.num_classes, "image_shape": list(self.image_shape),
                "channels": self.channels, "layers": self.layers_count, "auxiliary": self.auxiliary,
                "drop_path_rate": self.drop_path_rate, "seed": self.seed, "name": self.name}
