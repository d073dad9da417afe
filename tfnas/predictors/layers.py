"""Graph layers of the predictors: graph convolution, GCN group, NSAM and estimation-code fusion.

Siamese-NAS ("Siamese-NAS: using trained samples efficiently to find lightweight neural
architecture by prior knowledge"), predictor section. Every layer takes node features
``x (B, N, F)`` and an adjacency ``adj (B, N, N)`` with ``adj[b, i, j] = 1`` for an edge
i->j. The layers use ``adj`` as given: the models add the self loops
(:func:`with_self_loops`) before the first layer, so inside a model ``adj`` holds the
identity and the attention masks below are the 0/1 adjacency *including* self loops.

Weights are initialised from ``seed`` (an ``int >= 0`` or ``None`` for Keras' global
generator); a layer with sublayers derives one child seed per sublayer, so a seeded model
is reproducible without any global seeding.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfnas.checks import check_int

Shape = Tuple[Optional[int], ...]


def mish(x):
    """Mish activation ``x * tanh(softplus(x))`` (Misra 2019), elementwise, any shape.

    This form is what oneDNN's graph rewrite fuses into one kernel at inference.
    """
    return x * tf.tanh(tf.math.softplus(x))


@tf.custom_gradient
def mish_exp(x):
    """Mish as ``x * n / (n + 2)``, ``n = e^x (e^x + 2)``, with its analytic gradient.

    The same function as :func:`mish` (``tanh(log(1 + e^x)) = n / (n + 2)``) with one ``exp``
    instead of ``exp``, ``log1p`` and ``tanh``, and the gradient
    ``t + x * 4 e^x (e^x + 1) / (n + 2)^2`` written out (fewer ops than autodiff; training
    steps of the predictors are op-overhead bound). ``x`` is clipped at 20 inside the
    exponential, where ``t = n / (n + 2)`` is 1 in float32.
    """
    e = tf.exp(tf.minimum(x, 20.0))
    n = e * (e + 2.0)
    inv = tf.math.reciprocal(n + 2.0)
    t = n * inv

    def grad(upstream):
        return upstream * (t + x * (4.0 * e * (e + 1.0)) * tf.square(inv))

    return x * t, grad


def _mish(x, training):
    """Training: :func:`mish_exp` (cheap gradient); inference: :func:`mish` (oneDNN fuses it)."""
    return mish_exp(x) if training else mish(x)


def child_seed(seed: Optional[int], index: int) -> Optional[int]:
    """Derives the seed of sublayer ``index`` from a parent ``seed`` (``None`` stays ``None``).

    Uses ``numpy.random.SeedSequence([seed, index])`` so that children of different parents
    or positions do not collide (a plain ``seed + index`` would give two sibling groups
    identical weights).
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] >> 1)


def check_seed(seed: Optional[int], who: str) -> Optional[int]:
    """Validates a layer or model ``seed`` (``None`` or an int >= 0); raises ``ValueError``."""
    if seed is None:
        return None
    return check_int(seed, "seed", who, low=0,
                     message="{owner}: seed must be None or an int >= 0. Received: seed={value!r}")


def check_units(units: Any, who: str, name: str = "units") -> int:
    """Validates a positive integer size; raises ``ValueError``."""
    return check_int(units, name, who, low=1,
                     message="{owner}: {name} must be an int >= 1. Received: {name}={value!r}")


def _last_dim(shape: Shape, who: str) -> int:
    if shape[-1] is None:
        raise ValueError(f"{who} needs a known last (feature) axis. Received: shape={tuple(shape)}")
    return int(shape[-1])


def with_self_loops(adj):
    """``adj (B, N, N) -> max(adj, I) (B, N, N)``: the 0/1 adjacency with the identity added."""
    return tf.maximum(adj, tf.eye(adj.shape[-1], dtype=adj.dtype))


def adjacency_attention(scores, adj, v):
    """Two-way masked attention of Siamese-NAS: ``softmax(S * A) v + softmax(S * A^T) v``.

    ``*`` is the elementwise product with the 0/1 adjacency, exactly as in the paper's
    reference: a masked entry gets score 0 (weight ``exp(0)`` before normalisation), not
    ``-inf``. The softmax runs over the last axis (the attended node ``j``).

    ``scores S (B, N, N)`` (``S[b, i, j] = q_i . k_j``), ``adj A (B, N, N)`` (0/1 with self
    loops), ``v (B, N, F)`` -> ``(B, N, F)``.
    """
    forward = tf.nn.softmax(scores * adj, axis=-1)
    backward = tf.nn.softmax(scores * tf.transpose(adj, (0, 2, 1)), axis=-1)
    return tf.matmul(forward, v) + tf.matmul(backward, v)


@keras.saving.register_keras_serializable(package="tfnas")
class GraphConv(keras.layers.Layer):
    """Batched graph convolution ``GCN(A, X) = A (X W) + b`` (Siamese-NAS, predictors).

    Example: ``GraphConv(64)(x, adj)`` with ``x (8, 10, 9)``, ``adj (8, 10, 10)`` gives
    ``(8, 10, 64)``.

    Args:
        units: output features per node.
        seed: ``int >= 0`` seeding the Glorot-uniform kernel, or ``None``.

    Input shape: ``x (B, N, F)``, ``adj (B, N, N)``.
    Output shape: ``(B, N, units)``.
    """

    def __init__(self, units: int, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = check_units(units, "GraphConv")
        self.seed = check_seed(seed, "GraphConv")

    def build(self, x_shape: Shape, adj_shape: Shape) -> None:
        self.kernel = self.add_weight(
            name="kernel",
            shape=(_last_dim(x_shape, "GraphConv"), self.units),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x, adj):
        return tf.matmul(adj, tf.einsum("bnf,fu->bnu", x, self.kernel)) + self.bias

    def compute_output_shape(self, x_shape: Shape, adj_shape: Shape) -> Shape:
        return (*x_shape[:-1], self.units)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "units": self.units, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfnas")
class NodeBatchNorm(keras.layers.Layer):
    """BatchNorm over the feature axis of node features, on TF's fused kernel.

    ``y = gamma (x - mean) / sqrt(var + epsilon) + beta`` with statistics per feature over
    the batch and node axes (Keras' ``BatchNormalization(axis=-1)`` on ``(B, N, C)``), in one
    ``FusedBatchNormV3`` op instead of some twenty (the predictors are op-overhead bound).
    Training updates ``moving = momentum * moving + (1 - momentum) * batch``; the fused kernel
    uses the unbiased batch variance for the moving variance.

    Args:
        momentum: moving-average momentum.
        epsilon: added to the variance.

    Input shape: ``(B, N, C)`` (any rank >= 2; the last axis is normalised).
    Output shape: same as input.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"NodeBatchNorm: momentum must lie in [0, 1). Received: momentum={momentum}")
        if epsilon <= 0.0:
            raise ValueError(f"NodeBatchNorm: epsilon must be > 0. Received: epsilon={epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Shape) -> None:
        channels = _last_dim(input_shape, "NodeBatchNorm")
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(channels,), initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(channels,), initializer="ones", trainable=False
        )

    def call(self, x, training=None):
        args = dict(x=tf.reshape(x, (-1, 1, 1, self.gamma.shape[0])), scale=self.gamma,
                    offset=self.beta, mean=self.moving_mean, variance=self.moving_variance,
                    epsilon=self.epsilon, data_format="NHWC", is_training=bool(training))
        if training:
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                exponential_avg_factor=1.0 - self.momentum, **args
            )
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        else:
            y = tf.raw_ops.FusedBatchNormV3(**args)[0]
        return tf.reshape(y, tf.shape(x))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def _glorot_blocks(seed: Optional[int], blocks: int):
    """Initialiser of a ``(F, blocks * U)`` kernel made of independent Glorot ``(F, U)`` blocks.

    Each block gets the fan of one ``GraphConv(U)``, so a stacked kernel starts as separate
    graph convolutions would; block ``i`` is seeded by ``child_seed(seed, i)``.
    """
    inits = [keras.initializers.GlorotUniform(seed=child_seed(seed, i)) for i in range(blocks)]

    def initializer(shape, dtype=None):
        block = (shape[0], shape[1] // blocks)
        return tf.concat([init(block, dtype=dtype) for init in inits], axis=1)

    return initializer


@keras.saving.register_keras_serializable(package="tfnas")
class GCNGroup(keras.layers.Layer):
    """GCN group: ``(Mish(BN_f(GCN(A, X))) + Mish(BN_b(GCN(A^T, X)))) / 2`` (Siamese-NAS).

    One graph convolution follows the edges, one runs against them; each has its own
    BatchNorm and Mish, and the two results are averaged. ``num_groups`` independent groups
    on the same input can run side by side (NSAM's ``q, k, v``); their outputs are
    concatenated on the feature axis, group ``g`` at ``[..., g * units:(g + 1) * units]``.

    Implementation, exact and op-lean (the predictors are op-overhead bound on CPU):
    ``kernel_forward``/``kernel_backward`` ``(F, G U)`` hold the ``W`` of every group's
    forward/backward graph convolution; ``[A X W_f | A^T X W_b]`` goes through one
    :class:`NodeBatchNorm` over its ``2 G U`` features (per-feature statistics, so exactly
    independent BatchNorms), Mish, and the average of the two halves. The graph-convolution
    bias ``b`` is left out because the BatchNorm right after it cancels it exactly
    (``BN(h + b) = BN(h)`` with batch statistics; the moving mean absorbs it otherwise).

    Args:
        units: output features per node and group.
        num_groups: groups computed side by side.
        seed: ``int >= 0`` seeding the kernels, or ``None``.

    Input shape: ``x (B, N, F)``, ``adj (B, N, N)``.
    Output shape: ``(B, N, num_groups * units)``.
    """

    def __init__(self, units: int, num_groups: int = 1, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = check_units(units, "GCNGroup")
        self.num_groups = check_units(num_groups, "GCNGroup", "num_groups")
        self.seed = check_seed(seed, "GCNGroup")
        self.norm = NodeBatchNorm(name="norm")

    def build(self, x_shape: Shape, adj_shape: Shape) -> None:
        shape = (_last_dim(x_shape, "GCNGroup"), self.num_groups * self.units)
        self.kernel_forward = self.add_weight(
            name="kernel_forward", shape=shape,
            initializer=_glorot_blocks(child_seed(self.seed, 0), self.num_groups),
        )
        self.kernel_backward = self.add_weight(
            name="kernel_backward", shape=shape,
            initializer=_glorot_blocks(child_seed(self.seed, 1), self.num_groups),
        )
        self.norm.build((*x_shape[:-1], 2 * shape[1]))

    def call(self, x, adj, training=None):
        width = self.num_groups * self.units
        flat = tf.reshape(x, (-1, self.kernel_forward.shape[0]))
        rows = (tf.shape(x)[0], -1, width)
        along = tf.matmul(adj, tf.reshape(tf.matmul(flat, self.kernel_forward), rows))
        against = tf.matmul(
            adj, tf.reshape(tf.matmul(flat, self.kernel_backward), rows), transpose_a=True
        )
        h = _mish(self.norm(tf.concat([along, against], axis=-1), training=training), training)
        forward, backward = tf.split(h, 2, axis=-1)
        return 0.5 * (forward + backward)

    def compute_output_shape(self, x_shape: Shape, adj_shape: Shape) -> Shape:
        return (*x_shape[:-1], self.num_groups * self.units)

    def get_config(self) -> Dict[str, Any]:
        config = {"units": self.units, "num_groups": self.num_groups, "seed": self.seed}
        return {**super().get_config(), **config}


def _check_width(x_shape: Shape, units: int, who: str) -> None:
    if x_shape[-1] is not None and int(x_shape[-1]) != units:
        raise ValueError(
            f"{who}({units}) adds its input as a residual, so the input needs {units} "
            f"features. Received: x_shape={tuple(x_shape)}"
        )


def _attend(x, q, k, v, adj):
    """``x + softmax(q k^T * A) v + softmax(q k^T * A^T) v`` for ``(B, N, F)`` operands."""
    return x + adjacency_attention(tf.matmul(q, k, transpose_b=True), adj, v)


@keras.saving.register_keras_serializable(package="tfnas")
class NodeSelfAttention(keras.layers.Layer):
    """NSAM, the node self-attention module of Siamese-NAS.

    ``q, k, v = G_q(x), G_k(x), G_v(x)`` (three GCN groups, run side by side as one
    ``GCNGroup(units, num_groups=3)``), ``S = q k^T``,
    ``h = x + softmax(S * A) v + softmax(S * A^T) v``, output ``G_o(h)``; see
    :func:`adjacency_attention` for the mask semantics.

    Args:
        units: features per node; the input must have ``units`` features (residual).
        seed: ``int >= 0`` seeding the GCN groups, or ``None``.

    Input shape: ``x (B, N, units)``, ``adj (B, N, N)`` (0/1 with self loops).
    Output shape: ``(B, N, units)``.
    """

    def __init__(self, units: int, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = check_units(units, "NodeSelfAttention")
        self.seed = check_seed(seed, "NodeSelfAttention")
        self.qkv = GCNGroup(self.units, num_groups=3, seed=child_seed(self.seed, 0), name="qkv")
        self.output_group = GCNGroup(self.units, seed=child_seed(self.seed, 1), name="output_group")

    def build(self, x_shape: Shape, adj_shape: Shape) -> None:
        _check_width(x_shape, self.units, "NodeSelfAttention")
        self.qkv.build(x_shape, adj_shape)
        self.output_group.build(x_shape, adj_shape)

    def call(self, x, adj, training=None):
        q, k, v = tf.split(self.qkv(x, adj, training=training), 3, axis=-1)
        return self.output_group(_attend(x, q, k, v, adj), adj, training=training)

    def compute_output_shape(self, x_shape: Shape, adj_shape: Shape) -> Shape:
        return (*x_shape[:-1], self.units)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "units": self.units, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfnas")
class CodeFusion(keras.layers.Layer):
    """Estimation-code fusion of Siamese-NAS: attention from the cell's nodes to its code.

    ``k = G_k(Mish(BN(reshape(Dense(N * units)(ec), [N, units]))))``, ``q = G_q(x1)``,
    ``v = G_v(x1)`` (its own weights; the reference reuses ``G_q`` by mistake; here ``G_q``
    and ``G_v`` run side by side as one ``GCNGroup(units, num_groups=2)``),
    ``x2 = G_o(x1 + softmax(q k^T * A) v + softmax(q k^T * A^T) v)``.

    Args:
        num_nodes: ``N``, the number of graph nodes (the code is spread over them).
        units: features per node; ``x1`` must have ``units`` features.
        seed: ``int >= 0`` seeding the Dense layer and the GCN groups, or ``None``.

    Input shape: ``x (B, N, units)``, ``adj (B, N, N)`` (0/1 with self loops), ``code (B, E)``.
    Output shape: ``(B, N, units)``.
    """

    def __init__(self, num_nodes: int, units: int, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_nodes = check_units(num_nodes, "CodeFusion", "num_nodes")
        self.units = check_units(units, "CodeFusion")
        self.seed = check_seed(seed, "CodeFusion")
        self.code_dense = keras.layers.Dense(
            self.num_nodes * self.units,
            kernel_initializer=keras.initializers.GlorotUniform(seed=child_seed(self.seed, 0)),
            name="code_dense",
        )
        self.code_norm = NodeBatchNorm(name="code_norm")
        self.key = GCNGroup(self.units, seed=child_seed(self.seed, 1), name="key")
        self.query_value = GCNGroup(
            self.units, num_groups=2, seed=child_seed(self.seed, 2), name="query_value"
        )
        self.output_group = GCNGroup(self.units, seed=child_seed(self.seed, 3), name="output_group")

    def build(self, x_shape: Shape, adj_shape: Shape, code_shape: Shape) -> None:
        _check_width(x_shape, self.units, "CodeFusion")
        if x_shape[-2] is not None and int(x_shape[-2]) != self.num_nodes:
            raise ValueError(
                f"CodeFusion(num_nodes={self.num_nodes}) got graphs of {x_shape[-2]} nodes. "
                f"Received: x_shape={tuple(x_shape)}"
            )
        node_shape = (code_shape[0], self.num_nodes, self.units)
        self.code_dense.build(code_shape)
        self.code_norm.build(node_shape)
        self.key.build(node_shape, adj_shape)
        self.query_value.build(x_shape, adj_shape)
        self.output_group.build(x_shape, adj_shape)

    def call(self, x, adj, code, training=None):
        k = tf.reshape(self.code_dense(code), (-1, self.num_nodes, self.units))
        k = self.key(_mish(self.code_norm(k, training=training), training), adj, training=training)
        q, v = tf.split(self.query_value(x, adj, training=training), 2, axis=-1)
        return self.output_group(_attend(x, q, k, v, adj), adj, training=training)

    def compute_output_shape(self, x_shape: Shape, adj_shape: Shape, code_shape: Shape) -> Shape:
        return (*x_shape[:-1], self.units)

    def get_config(self) -> Dict[str, Any]:
        config = {"num_nodes": self.num_nodes, "units": self.units, "seed": self.seed}
        return {**super().get_config(), **config}
