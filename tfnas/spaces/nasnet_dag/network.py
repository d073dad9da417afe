"""The CIFAR network of a NASNet-DAG architecture (NAG spec, "Space" and "Final training").

The skeleton is the DARTS evaluation network's (:class:`~tfnas.spaces.darts.network.DartsNetwork`):
stem ``3x3 conv (3C) + BN``, ``layers`` cells with reductions at ``layers // 3`` and
``2 * layers // 3`` (``N`` and ``2N + 1`` for ``3N + 2`` cells) that double ``C``, the DARTS
auxiliary head after the second reduction, global pooling, dropout and a dense classifier. Each
cell preprocesses ``c_{k-2}`` (FactorizedReduce after a reduction) and ``c_{k-1}`` with
ReLU-1x1 conv-BN to ``C``; ops are the DARTS ops (:func:`~tfnas.spaces.darts.network.make_op`).

Inside a reduction cell the inputs are at ``H`` and the op nodes at ``H / 2``: a node fed only by
inputs runs its op at stride 2 (``skip_connect`` becomes FactorizedReduce); a node fed by inputs
and op nodes passes each input through its own FactorizedReduce, sums, and runs its op at stride
1; an input wired to the output goes through a FactorizedReduce too. The cell's output is the
concatenation of the nodes wired to the output node (``k * C`` channels). Drop-path follows
every op but the stride-1 skip connection. Normal and reduction cells are the architecture's own
two cells (the reference's dataset builder used the normal cell twice; not here).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
from keras import ops

from tfnas.spaces.darts.network import AUX_CHANNELS, CellStackNetwork, make_op, op_params, reduction_layers
from tfnas.spaces.nasnet_dag.arch import NODE_OPS, DagCell, NasnetDagArch, parse_arch, parse_cell
from tfnas.spaces.ops import AvgPool3x3, DropPath, FactorizedReduce, Identity, MaxPool3x3, ReLUConvBN
from tfnas.spaces.ops.common import build_once, with_list_children

__all__ = ["NasnetDagCell", "NasnetDagNetwork", "count_network_params", "node_plan"]


def node_plan(cell: DagCell, reduction: bool) -> List[Tuple[int, List[int], List[int], int]]:
    """Per op node ``(node, preds at the cell's output size, input preds to reduce, op stride)``."""
    plan = []
    for j in cell.op_nodes:
        preds = cell.preds(j)
        if not reduction:
            plan.append((j, preds, [], 1))
            continue
        ins, mids = [i for i in preds if i < 2], [i for i in preds if i >= 2]
        plan.append((j, ins, [], 2) if not mids else (j, mids, ins, 1))
    return plan


def count_network_params(arch: NasnetDagArch, num_classes: int, channels: int, layers: int,
                         auxiliary: bool = False, dropout: float = 0.0) -> int:
    """Analytic trainable parameters of :class:`NasnetDagNetwork` (BatchNorm gamma/beta included)."""
    c_curr = 3 * channels
    total = 27 * c_curr + 2 * c_curr
    c_pp, c_p, c, c_aux = c_curr, c_curr, channels, 0
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        c = 2 * c if reduction else c
        cell = arch.cell(reduction)
        total += c_pp * c + 2 * c + c_p * c + 2 * c
        for j, _, reduce_ins, stride in node_plan(cell, reduction):
            total += op_params(NODE_OPS[cell.types[j]], c, stride) + len(reduce_ins) * (c * c + 2 * c)
        outs = cell.preds(cell.num_nodes - 1)
        if reduction:
            total += sum(c * c + 2 * c for i in outs if i < 2)
        c_pp, c_p = c_p, len(outs) * c
        if i == reduction_layers(layers)[1]:
            c_aux = c_p
    total += c_p * num_classes + num_classes
    if auxiliary:
        a, b = AUX_CHANNELS
        total += c_aux * a + 2 * a + a * b * 4 + 2 * b + b * num_classes + num_classes
    return int(total)


def _takes_training(layer: keras.layers.Layer) -> bool:
    return not isinstance(layer, (MaxPool3x3, AvgPool3x3, Identity))


@keras.saving.register_keras_serializable(package="tfnas")
class NasnetDagCell(keras.layers.Layer):
    """One cell: ``[c_{k-2}, c_{k-1}] -> concat of the nodes wired to the output`` (module docstring).

    Args:
        cell: the cell's text (``DagCell`` string form).
        filters: ``C`` of the cell. reduction / reduction_prev: as for the DARTS cell.
        drop_path_rate: None or the initial DropPath rate of every non-identity op. seed: DropPath seed.
        share_with: a cell of the same structure whose layers this one uses (not serialized).
    """

    def __init__(self, cell: str, filters: int, reduction: bool = False, reduction_prev: bool = False,
                 drop_path_rate: Optional[float] = None, seed: Optional[int] = None,
                 share_with: Optional["NasnetDagCell"] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.cell = parse_cell(cell)
        self.filters, self.reduction, self.reduction_prev = int(filters), bool(reduction), bool(reduction_prev)
        self.drop_path_rate = None if drop_path_rate is None else float(drop_path_rate)
        self.seed = seed
        c = self.filters
        self.plan = node_plan(self.cell, self.reduction)
        self.outs = self.cell.preds(self.cell.num_nodes - 1)
        if share_with is not None:
            if (str(share_with.cell), share_with.filters, share_with.reduction, share_with.reduction_prev) != (
                    str(self.cell), self.filters, self.reduction, self.reduction_prev):
                raise ValueError(f"NasnetDagCell {self.name}: share_with must be a cell of the same structure")
            self.preprocess0, self.preprocess1 = share_with.preprocess0, share_with.preprocess1
            self.node_ops, self.reducers = share_with.node_ops, share_with.reducers
        else:
            self.preprocess0 = (FactorizedReduce(c, name="preprocess0") if reduction_prev
                                else ReLUConvBN(c, 1, name="preprocess0"))
            self.preprocess1 = ReLUConvBN(c, 1, name="preprocess1")
            names = [NODE_OPS[self.cell.types[j]] for j, _, _, _ in self.plan]
            self.node_ops = [make_op(op, c, stride, name=f"node{j}_{op}")
                             for op, (j, _, _, stride) in zip(names, self.plan)]
            wires = [(j, i) for j, _, ins, _ in self.plan for i in ins]
            if self.reduction:
                wires += [(self.cell.num_nodes - 1, i) for i in self.outs if i < 2]
            self.reducers = {f"{j}_{i}": FactorizedReduce(c, name=f"reduce{i}_to{j}") for j, i in wires}
        self.drops: List[Optional[DropPath]] = []
        for layer in self.node_ops:
            if self.drop_path_rate is None or isinstance(layer, Identity):
                self.drops.append(None)
            else:
                layer_seed = None if seed is None else seed + sum(d is not None for d in self.drops)
                self.drops.append(DropPath(self.drop_path_rate, seed=layer_seed, name=f"{layer.name}_drop"))

    def build(self, input_shape: Sequence[Tuple[Optional[int], ...]]) -> None:
        shape0, shape1 = (tuple(s) for s in input_shape)
        build_once(self.preprocess0, shape0)
        build_once(self.preprocess1, shape1)
        full = self.preprocess1.compute_output_shape(shape1)
        half = FactorizedReduce(self.filters).compute_output_shape(full) if self.reduction else full
        for layer in self.reducers.values():
            build_once(layer, full)
        for (_, _, _, stride), layer, drop in zip(self.plan, self.node_ops, self.drops):
            src = full if stride == 2 or not self.reduction else half
            build_once(layer, src)
            if drop is not None:
                build_once(drop, half)
        self.built = True

    def call(self, inputs, training=None):
        s0, s1 = inputs
        states: Dict[int, Any] = {0: self.preprocess0(s0, training=training),
                                  1: self.preprocess1(s1, training=training)}
        for (j, preds, ins, _), layer, drop in zip(self.plan, self.node_ops, self.drops):
            terms = [states[i] for i in preds] + [self.reducers[f"{j}_{i}"](states[i], training=training) for i in ins]
            x = terms[0]
            for t in terms[1:]:
                x = x + t
            h = layer(x, training=training) if _takes_training(layer) else layer(x)
            states[j] = drop(h, training=training) if drop is not None else h
        out = self.cell.num_nodes - 1
        parts = [self.reducers[f"{out}_{i}"](states[i], training=training) if self.reduction and i < 2 else states[i]
                 for i in self.outs]
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        return with_list_children(children, (("node_ops", self.node_ops), ("drops", self.drops),
                                             ("reducers", [self.reducers[k] for k in sorted(self.reducers)])))

    def compute_output_shape(self, input_shape: Sequence[Tuple[Optional[int], ...]]) -> Tuple[Optional[int], ...]:
        b, h, w, _ = tuple(input_shape[1])
        if self.reduction:
            h, w = (None if h is None else h // 2), (None if w is None else w // 2)
        return (b, h, w, len(self.outs) * self.filters)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"cell": str(self.cell), "filters": self.filters, "reduction": self.reduction,
                       "reduction_prev": self.reduction_prev, "drop_path_rate": self.drop_path_rate,
                       "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class NasnetDagNetwork(CellStackNetwork):
    """The network of one NASNet-DAG architecture (module docstring; the layers and calls are those of
    :class:`tfnas.spaces.darts.network.CellStackNetwork`, with the DARTS auxiliary head).

    Args:
        arch: the architecture text. num_classes: logits. image_shape: ``(H, W, C)``, sides divisible by 4.
        channels: ``C``. layers: cells (``3N + 2``). auxiliary: the DARTS auxiliary head (needs 32x32 inputs).
        dropout: rate before the classifier. drop_path_rate, seed: DropPath. share_with: see the cell.
    """

    def __init__(self, arch: str, num_classes: int, image_shape: Sequence[int] = (32, 32, 3), channels: int = 36,
                 layers: int = 20, auxiliary: bool = True, dropout: float = 0.0, drop_path_rate: Optional[float] = None,
                 seed: Optional[int] = None, share_with: Optional["NasnetDagNetwork"] = None, **kwargs: Any):
        super().__init__(**kwargs)
        parsed = parse_arch(arch)
        self.arch = str(parsed)

        def make_cell(index, filters, reduction, reduction_prev, cell_seed, shared):
            return NasnetDagCell(str(parsed.cell(reduction)), filters, reduction, reduction_prev, self.drop_path_rate,
                                 cell_seed, share_with=shared, name=f"cell{index}")

        self._make_layers(num_classes, image_shape, channels, layers, auxiliary, dropout, drop_path_rate, seed,
                          share_with, make_cell)

    def arch_text(self) -> str:
        return self.arch

    def _serving_copy(self) -> "NasnetDagNetwork":
        return NasnetDagNetwork(self.arch, self.num_classes, self.image_shape, self.channels, self.layers_count,
                                auxiliary=False, dropout=0.0, drop_path_rate=None, seed=self.seed, share_with=self,
                                name=self.name)

    def get_config(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "image_shape": list(self.image_shape),
                "channels": self.channels, "layers": self.layers_count, "auxiliary": self.auxiliary,
                "dropout": self.dropout, "drop_path_rate": self.drop_path_rate, "seed": self.seed, "name": self.name}
