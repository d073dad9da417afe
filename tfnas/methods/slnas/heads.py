"""The two heads of the SLNAS stage controller as Keras layers, and the categorical step they share.

Stage 1, :class:`ConnectionHead`, picks the inputs of each node with an LSTM cell and attention
over the node's anchors (ENAS' micro controller without its op choices; Pham et al., ICML 2018,
https://arxiv.org/abs/1802.03268, Sec. 2.3). Stage 2, :class:`OpHead`, reads the picked input
indices with a bidirectional LSTM and scores the op of every input at once. Both bound their
logits as the SLNAS code does: ``logits = c * tanh(raw / T)`` (``T`` = temperature 5, ``c`` = 1.1
for connections and 1.1 / 2.5 = 0.44 for ops), so no choice ever becomes (near) certain: with
``c = 0.44`` and 5 ops the most likely op has probability at most 0.376.

Sampling is Gumbel-max on uniforms handed in by the caller (one ``tf.random.Generator`` draw per
architecture), so a layer holds no random state; "teacher forcing" passes the choices instead.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

#: Smallest uniform handed to the Gumbel transform (``-log(-log(u))`` is finite above 0).
UNIFORM_LOW = 1e-7


def bounded_logits(raw: tf.Tensor, temperature: float, tanh_constant: float) -> tf.Tensor:
    """``tanh_constant * tanh(raw / temperature)`` (SLNAS/ENAS logit smoothing)."""
    return tanh_constant * tf.tanh(raw / temperature)


def choose(logits: tf.Tensor, noise: Optional[tf.Tensor] = None,
           forced: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Categorical choices over the last axis of ``logits``: sampled from ``noise``, or ``forced``.

    Args:
      logits: float ``[..., K]``.
      noise: uniforms in (0, 1), ``[..., K]``; the choice is ``argmax(logits + Gumbel(noise))``,
        an exact draw from ``softmax(logits)``. Ignored when ``forced`` is given.
      forced: int ``[...]``: the choices to score (teacher forcing).

    Returns:
      ``(choice int32 [...], log-probability [...], entropy [...])`` in nats.
    """
    log_p = tf.nn.log_softmax(logits)
    if forced is None:
        gumbel = -tf.math.log(-tf.math.log(noise))
        choice = tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)
    else:
        choice = tf.cast(forced, tf.int32)
    picked = tf.reduce_sum(tf.one_hot(choice, tf.shape(logits)[-1], dtype=log_p.dtype) * log_p, axis=-1)
    entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
    return choice, picked, entropy


def _check_positive(name: str, value: Any, cls: str) -> None:
    if not value > 0:
        raise ValueError(f"{cls} {name} must be > 0; Received: {name}={value}")


@keras.saving.register_keras_serializable(package="tfnas")
class ConnectionHead(keras.layers.Layer):
    """Stage 1 of the SLNAS controller: the two inputs of each node of one cell.

    Anchors are the cell inputs ``h_{k-2}``, ``h_{k-1}`` and the nodes built so far. For input
    ``t`` of node ``n`` the LSTM cell steps once and the logits over the ``n + 2`` anchors are
    ``c * tanh(v^T tanh(W1 a_j + W2 h_t) / T)``; the chosen anchor's hidden state is the next
    LSTM input. After both inputs one more step gives the node's own anchor ``a``. The two cell-
    input anchors have zero hidden states and keys from two LSTM steps on the learned start
    embedding; the state carries on between those steps and from one cell type to the next, as in
    ENAS (the SLNAS code resets it, so both cell-input keys coincide there and each cell type
    starts afresh).

    Example:

    >>> head = ConnectionHead(num_nodes=5, units=32)
    >>> state = [tf.zeros((1, 32)), tf.zeros((1, 32))]
    >>> idx, log_p, ent, state = head(state, noise=tf.random.uniform((10, 6), 1e-7, 1.0))
    >>> idx.shape
    TensorShape([10])

    Args:
      num_nodes: nodes per cell (5 in the lite space).
      units: LSTM and attention width (256 in SLNAS).
      temperature: ``T``.
      tanh_constant: ``c``.

    Input shape:
      ``state`` = ``[h (1, units), c (1, units)]``; ``noise`` ``(2 num_nodes, num_nodes + 1)``
      uniforms (row ``2n + s`` is input ``s`` of node ``n``; its first ``n + 2`` entries are used)
      or ``forced`` int ``(2 num_nodes,)``.
    Output shape:
      ``(indices int32 (2 num_nodes,), log_p (2 num_nodes,), entropy (2 num_nodes,), state)``.
    """

    def __init__(self, num_nodes: int = 5, units: int = 256, temperature: float = 5.0,
                 tanh_constant: float = 1.1, **kwargs: Any):
        super().__init__(**kwargs)
        for name, value in (("num_nodes", num_nodes), ("units", units), ("temperature", temperature),
                            ("tanh_constant", tanh_constant)):
            _check_positive(name, value, "ConnectionHead")
        self.num_nodes, self.units = int(num_nodes), int(units)
        self.temperature, self.tanh_constant = float(temperature), float(tanh_constant)

    def build(self, input_shape: Any = None) -> None:
        u = self.units
        self.cell = keras.layers.LSTMCell(u, name="lstm")
        self.cell.build((None, u))
        self.start = self.add_weight(name="start", shape=(1, u))
        self.w_anchor = self.add_weight(name="w_anchor", shape=(u, u))
        self.w_query = self.add_weight(name="w_query", shape=(u, u))
        self.v = self.add_weight(name="v", shape=(u, 1))
        self.built = True

    def call(self, state: Sequence[tf.Tensor], noise: Optional[tf.Tensor] = None,
             forced: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, List[tf.Tensor]]:
        h, c = state
        x = self.start
        keys: List[tf.Tensor] = []
        values: List[tf.Tensor] = []
        for _ in range(2):  # the cell inputs h_{k-2}, h_{k-1}
            h, (h, c) = self.cell(x, [h, c])
            keys.append(tf.matmul(h, self.w_anchor))
            values.append(tf.zeros_like(h))
        picks, log_ps, entropies = [], [], []
        for node in range(self.num_nodes):
            width = node + 2
            for side in range(2):
                t = 2 * node + side
                h, (h, c) = self.cell(x, [h, c])
                query = tf.tanh(tf.concat(keys, 0) + tf.matmul(h, self.w_query))  # (width, units)
                raw = tf.reshape(tf.matmul(query, self.v), [width])
                logits = bounded_logits(raw, self.temperature, self.tanh_constant)
                pick, log_p, entropy = choose(logits, None if noise is None else noise[t, :width],
                                              None if forced is None else forced[t])
                picks.append(pick)
                log_ps.append(log_p)
                entropies.append(entropy)
                x = tf.gather(tf.concat(values, 0), pick)[None]
            h, (h, c) = self.cell(x, [h, c])  # the node's own anchor
            keys.append(tf.matmul(h, self.w_anchor))
            values.append(h)
            x = self.start
        return tf.stack(picks), tf.stack(log_ps), tf.stack(entropies), [h, c]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"num_nodes": self.num_nodes, "units": self.units, "temperature": self.temperature,
                       "tanh_constant": self.tanh_constant})
        return config


@keras.saving.register_keras_serializable(package="tfnas")
class OpHead(keras.layers.Layer):
    """Stage 2 of the SLNAS controller: op logits for every input of one cell at once.

    ``embedding(source indices) -> bidirectional LSTM -> dense(num_ops) -> c * tanh(. / T)``.
    The input is the sequence of source (anchor) indices of the cell's inputs: the ``2 num_nodes``
    indices stage 1 picked, or a fixed graph's edge sources (NAS-Bench-201: ``0, 0, 1, 0, 1, 2``).
    The final LSTM states carry over to the next cell type; the first cell type starts from zero
    states (the SLNAS code draws them from ``N(0, 0.01^2)`` at every call, unseeded).

    Example:

    >>> head = OpHead(num_sources=3, units=32)
    >>> logits, state = head(tf.constant([0, 0, 1, 0, 1, 2]), [tf.zeros((1, 32))] * 4)
    >>> logits.shape
    TensorShape([6, 5])

    Args:
      num_sources: number of distinct source indices (embedding rows).
      num_ops: ops per choice.
      units: embedding and LSTM width per direction (256 in SLNAS).
      temperature: ``T``.
      tanh_constant: ``c`` (SLNAS: 1.1 / 2.5).

    Input shape:
      ``sources`` int ``(L,)``; ``state`` = ``[h_fw, c_fw, h_bw, c_bw]``, each ``(1, units)``.
    Output shape:
      ``(logits (L, num_ops), state)``.
    """

    def __init__(self, num_sources: int, num_ops: int = 5, units: int = 256, temperature: float = 5.0,
                 tanh_constant: float = 0.44, **kwargs: Any):
        super().__init__(**kwargs)
        for name, value in (("num_sources", num_sources), ("num_ops", num_ops), ("units", units),
                            ("temperature", temperature), ("tanh_constant", tanh_constant)):
            _check_positive(name, value, "OpHead")
        self.num_sources, self.num_ops, self.units = int(num_sources), int(num_ops), int(units)
        self.temperature, self.tanh_constant = float(temperature), float(tanh_constant)

    def build(self, input_shape: Any = None) -> None:
        u = self.units
        self.embedding = keras.layers.Embedding(self.num_sources, u, name="embedding")
        self.embedding.build((None,))
        self.lstm = keras.layers.Bidirectional(keras.layers.LSTM(u, return_sequences=True, return_state=True, unroll=True),
                                               name="bilstm")
        self.lstm.build((1, None, u))
        self.dense = keras.layers.Dense(self.num_ops, name="dense")
        self.dense.build((None, 2 * u))
        self.built = True

    def call(self, sources: tf.Tensor, state: Sequence[tf.Tensor]) -> Tuple[tf.Tensor, List[tf.Tensor]]:
        x = self.embedding(sources)[None]  # (1, L, units)
        out, *new_state = self.lstm(x, initial_state=list(state))
        logits = bounded_logits(self.dense(out[0]), self.temperature, self.tanh_constant)
        return logits, list(new_state)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"num_sources": self.num_sources, "num_ops": self.num_ops, "units": self.units,
                       "temperature": self.temperature, "tanh_constant": self.tanh_constant})
        return config
