"""Graph predictors of Siamese-NAS: the neural predictor baseline and the siamese predictor.

Both map an op-on-node graph (``adj (B, N, N)`` 0/1 *without* self loops, ``ops (B, N, K)``
one-hot) to a predicted accuracy in ``(0, 1)``; the models add the self loops themselves.
The siamese predictor also takes the estimation code ``ec (B, E)`` (normalised by the
caller) and returns two accuracies, without and with the code; the without-code branch
runs alone (:meth:`SiamesePredictor.accuracy_without_code`), so ranking a whole space
needs no code.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import keras
from keras import ops as kops

from tfnas.predictors.layers import (
    CodeFusion,
    GCNGroup,
    NodeSelfAttention,
    check_seed,
    check_units,
    child_seed,
    with_self_loops,
)

Shape = Tuple[Optional[int], ...]


def _accuracy_head(seed: Optional[int]) -> keras.layers.Dense:
    return keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name="accuracy_head",
    )


def _node_values(x):
    """``x (B, N, F) -> (B, N)``: the mean over the feature axis, one value per node."""
    return kops.mean(x, axis=-1)


def _check_inputs(inputs: Sequence[Any], count: int, who: str, nodes: int, num_ops: int) -> None:
    if not isinstance(inputs, (tuple, list)) or len(inputs) != count:
        names = "(adj, ops)" if count == 2 else "(adj, ops, ec)"
        raise ValueError(f"{who} takes inputs {names}. Received: {type(inputs).__name__} "
                         f"of length {len(inputs) if isinstance(inputs, (tuple, list)) else '?'}")
    for tensor, name, expected in ((inputs[0], "adj", (nodes, nodes)), (inputs[1], "ops", (nodes, num_ops))):
        shape = getattr(tensor, "shape", None)  # static shapes, where known
        try:
            last = [None if d is None else int(d) for d in shape][-2:] if shape is not None else []
        except (TypeError, ValueError):  # an unknown rank
            last = []
        if len(last) == 2 and any(g is not None and g != e for g, e in zip(last, expected)):
            raise ValueError(f"{who}: {name} must end in {expected} ({nodes} nodes, {num_ops} ops); "
                             f"received shape {tuple(shape)}")


@keras.saving.register_keras_serializable(package="tfnas")
class NeuralPredictor(keras.Model):
    """Neural predictor baseline: GCN groups -> feature mean -> Dense(1, sigmoid).

    Siamese-NAS, "Neural predictor": ``num_layers`` GCN groups of ``units`` features, a mean
    over the feature axis (one value per node) and a sigmoid dense layer.

    Example: ``NeuralPredictor(10, 9)((adj, ops))`` with ``adj (B, 10, 10)``,
    ``ops (B, 10, 9)`` gives ``(B,)`` in ``(0, 1)``.

    Args:
        num_nodes: ``N``.
        num_ops: ``K``, the length of the op one-hot.
        units: features per node in every GCN group.
        num_layers: number of GCN groups.
        seed: ``int >= 0`` seeding every weight, or ``None``.

    Input shape: ``(adj (B, N, N), ops (B, N, K))``.
    Output shape: ``(B,)``.
    """

    ec_dim = 0

    def __init__(
        self,
        num_nodes: int,
        num_ops: int,
        units: int = 64,
        num_layers: int = 3,
        seed: Optional[int] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_nodes = check_units(num_nodes, "NeuralPredictor", "num_nodes")
        self.num_ops = check_units(num_ops, "NeuralPredictor", "num_ops")
        self.units = check_units(units, "NeuralPredictor")
        self.num_layers = check_units(num_layers, "NeuralPredictor", "num_layers")
        self.seed = check_seed(seed, "NeuralPredictor")
        self.groups = [
            GCNGroup(self.units, seed=child_seed(self.seed, i), name=f"gcn_group_{i}")
            for i in range(self.num_layers)
        ]
        self.head = _accuracy_head(child_seed(self.seed, self.num_layers))

    def input_shapes(self, batch: Optional[int] = None) -> Tuple[Shape, Shape]:
        """``((batch, N, N), (batch, N, K))``."""
        return (batch, self.num_nodes, self.num_nodes), (batch, self.num_nodes, self.num_ops)

    def build(self, input_shape: Optional[Sequence[Shape]] = None) -> None:
        adj_shape, ops_shape = self.input_shapes()
        x_shape = ops_shape
        for group in self.groups:
            group.build(x_shape, adj_shape)
            x_shape = (None, self.num_nodes, self.units)
        self.head.build((None, self.num_nodes))

    def accuracy(self, adj, ops, ec=None, training: bool = False):
        """``adj (B, N, N), ops (B, N, K) -> (B,)`` predicted accuracy; ``ec`` must be ``None``."""
        if ec is not None:
            raise ValueError("NeuralPredictor takes no estimation code; pass ec=None.")
        if not self.built:
            self.build(self.input_shapes())
        adj = with_self_loops(adj)
        x = ops
        for group in self.groups:
            x = group(x, adj, training=training)
        return kops.squeeze(self.head(_node_values(x)), axis=-1)

    def call(self, inputs, training=None):
        _check_inputs(inputs, 2, "NeuralPredictor", self.num_nodes, self.num_ops)
        return self.accuracy(inputs[0], inputs[1], training=bool(training))

    def get_config(self) -> Dict[str, Any]:
        return {
            **super().get_config(),
            "num_nodes": self.num_nodes,
            "num_ops": self.num_ops,
            "units": self.units,
            "num_layers": self.num_layers,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "NeuralPredictor":
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfnas")
class SiamesePredictor(keras.Model):
    """Siamese predictor of Siamese-NAS with optional NSAM and estimation-code fusion.

    Embedding ``x1 = G3([NSAM](G2(G1(ops))))`` (GCN groups), fusion ``x2 = CodeFusion(x1, ec)``;
    both are reduced by the feature mean and go through **one shared** Dense(1, sigmoid):
    ``acc_without_code = head(mean(x1))``, ``acc_with_code = head(mean(x2))``.

    Example: ``SiamesePredictor(10, 9)((adj, ops, ec))`` gives two ``(B,)`` tensors;
    ``model.accuracy_without_code(adj, ops)`` ranks cells with no code.

    Args:
        num_nodes: ``N``.
        num_ops: ``K``, the length of the op one-hot.
        ec_dim: ``E``, the length of the estimation code.
        units: features per node.
        nsam: insert the node self-attention module in the embedding.
        seed: ``int >= 0`` seeding every weight, or ``None``.

    Input shape: ``(adj (B, N, N), ops (B, N, K), ec (B, E))``.
    Output shape: ``(acc_without_code (B,), acc_with_code (B,))``.
    """

    def __init__(
        self,
        num_nodes: int,
        num_ops: int,
        ec_dim: int = 3,
        units: int = 64,
        nsam: bool = True,
        seed: Optional[int] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_nodes = check_units(num_nodes, "SiamesePredictor", "num_nodes")
        self.num_ops = check_units(num_ops, "SiamesePredictor", "num_ops")
        self.ec_dim = check_units(ec_dim, "SiamesePredictor", "ec_dim")
        self.units = check_units(units, "SiamesePredictor")
        if not isinstance(nsam, bool):
            raise ValueError(f"SiamesePredictor: nsam must be a bool. Received: nsam={nsam!r}")
        self.nsam = nsam
        self.seed = check_seed(seed, "SiamesePredictor")
        self.embedding = [
            GCNGroup(self.units, seed=child_seed(self.seed, 0), name="embed_group_0"),
            GCNGroup(self.units, seed=child_seed(self.seed, 1), name="embed_group_1"),
        ]
        if self.nsam:
            self.embedding.append(
                NodeSelfAttention(self.units, seed=child_seed(self.seed, 2), name="nsam")
            )
        self.embedding.append(
            GCNGroup(self.units, seed=child_seed(self.seed, 3), name="embed_group_2")
        )
        self.fusion = CodeFusion(
            self.num_nodes, self.units, seed=child_seed(self.seed, 4), name="code_fusion"
        )
        self.head = _accuracy_head(child_seed(self.seed, 5))

    def input_shapes(self, batch: Optional[int] = None) -> Tuple[Shape, Shape, Shape]:
        """``((batch, N, N), (batch, N, K), (batch, E))``."""
        return (
            (batch, self.num_nodes, self.num_nodes),
            (batch, self.num_nodes, self.num_ops),
            (batch, self.ec_dim),
        )

    def build(self, input_shape: Optional[Sequence[Shape]] = None) -> None:
        adj_shape, ops_shape, code_shape = self.input_shapes()
        x_shape = ops_shape
        for layer in self.embedding:
            layer.build(x_shape, adj_shape)
            x_shape = (None, self.num_nodes, self.units)
        self.fusion.build(x_shape, adj_shape, code_shape)
        self.head.build((None, self.num_nodes))

    def _embed(self, adj, ops, training: bool):
        if not self.built:
            self.build(self.input_shapes())
        x = ops
        for layer in self.embedding:
            x = layer(x, adj, training=training)
        return x

    def _head(self, x):
        return kops.squeeze(self.head(_node_values(x)), axis=-1)

    def accuracy_without_code(self, adj, ops, training: bool = False):
        """``adj (B, N, N), ops (B, N, K) -> (B,)``: the branch that needs no estimation code."""
        return self._head(self._embed(with_self_loops(adj), ops, training))

    def accuracy_with_code(self, adj, ops, ec, training: bool = False):
        """``adj (B, N, N), ops (B, N, K), ec (B, E) -> (B,)``: the code-fused branch."""
        adj = with_self_loops(adj)
        x1 = self._embed(adj, ops, training)
        return self._head(self.fusion(x1, adj, ec, training=training))

    def accuracy(self, adj, ops, ec=None, training: bool = False):
        """The with-code accuracy when ``ec`` is given, else the without-code one; ``(B,)``."""
        if ec is None:
            return self.accuracy_without_code(adj, ops, training=training)
        return self.accuracy_with_code(adj, ops, ec, training=training)

    def call(self, inputs, training=None):
        _check_inputs(inputs, 3, "SiamesePredictor", self.num_nodes, self.num_ops)
        adj, ops, ec = inputs
        training = bool(training)
        adj = with_self_loops(adj)
        x1 = self._embed(adj, ops, training)
        x2 = self.fusion(x1, adj, ec, training=training)
        return self._head(x1), self._head(x2)

    def get_config(self) -> Dict[str, Any]:
        return {
            **super().get_config(),
            "num_nodes": self.num_nodes,
            "num_ops": self.num_ops,
            "ec_dim": self.ec_dim,
            "units": self.units,
            "nsam": self.nsam,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "SiamesePredictor":
        return cls(**config)
