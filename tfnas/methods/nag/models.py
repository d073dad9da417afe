"""The NAG generator and discriminator as Keras models (NAG spec, "Generator", "Discriminator").

Both work on padded DAG cells (:mod:`tfnas.spaces.dag`): node features ``x [B, M, T]`` (one-hot
codes for real cells, soft probabilities for generated ones, zero rows for missing nodes) and
adjacency ``a [B, M, M]`` (``a[b, u, v]`` = edge ``u -> v``, upper triangular).

:class:`DagGenerator` grows a cell one node at a time (DeepGMG): the input nodes start from their
code's embedding and the condition ``z' = [z; l2(acc class emb); l2(params class emb)]``; before
each new node, ``prop_layers`` rounds of message passing (messages ``Linear([h_src; h_dst])``
with separate forward and reverse weights, summed, GRU update, dropout, L2 norm) and a gated-sum
readout ``h_G``; then the add-node head picks the new node's code (input codes masked; the output
code ends the cell and is forced in the last slot), the node starts from ``[code emb; h_G; z']``,
and the add-edge head gives ``sigmoid(MLP([h_u; h_v; h_G; z']))`` for each earlier node ``u``.
Generation samples codes (Gumbel-max) and edges (logistic noise, i.e. Bernoulli) (``hard=True``).
Training passes to the discriminator either the soft probabilities weighted by the chance that the
cell is still open (``relax = "soft"``, the spec's wording) or the same samples with
straight-through gradients of their Gumbel-softmax / binary-concrete relaxations
(``relax = "straight_through"``, the default): with soft outputs the discriminator tells one-hot
real cells from soft fake ones at a glance, and in tfnas' NB201 runs the generator's validity fell
to 0 % within 30 epochs (docs/RESULTS.md).

A message ``Linear([h_u; h_v])`` summed over the neighbours ``u`` of ``v`` equals
``sum_u a_uv W_s h_u + deg(v) (W_d h_v + b)``, so messages cost ``O(M D^2)``, not ``O(M^2 D^2)``.
Dropout is stateless (seeded per call), so a resumed training repeats the same masks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import tensorflow as tf

__all__ = ["DagDiscriminator", "DagGenerator", "build_models", "l2_normalize"]

_NEG = -1e9


def l2_normalize(x):
    return tf.math.l2_normalize(x, axis=-1)


def _dropout(x, rate: float, seed):
    if rate <= 0.0 or seed is None:
        return x
    keep = tf.random.stateless_uniform(tf.shape(x), seed) >= rate
    return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))


class _Inits:
    """Seeded initialisers, one distinct seed per layer in construction order (None = Keras' own)."""

    def __init__(self, seed: Optional[int]):
        self.seed, self.count = seed, 0

    def _next(self) -> Optional[int]:
        self.count += 1
        return None if self.seed is None else int(self.seed) * 7919 + self.count

    def dense(self, units: int, **kwargs: Any) -> keras.layers.Dense:
        return keras.layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(self._next()), **kwargs)

    def embedding(self, n: int, dim: int, **kwargs: Any) -> keras.layers.Embedding:
        init = keras.initializers.RandomUniform(-0.05, 0.05, seed=self._next())
        return keras.layers.Embedding(n, dim, embeddings_initializer=init, **kwargs)

    def gru(self, units: int, **kwargs: Any) -> keras.layers.GRUCell:
        return keras.layers.GRUCell(units, kernel_initializer=keras.initializers.GlorotUniform(self._next()),
                                    recurrent_initializer=keras.initializers.Orthogonal(seed=self._next()), **kwargs)


def _uniform(shape, seed):
    """Uniform in (0, 1), never 0 or 1 (safe under log)."""
    return tf.random.stateless_uniform(shape, seed, minval=1e-6, maxval=1.0 - 1e-6)


def _fold(seed, k: int):
    return None if seed is None else tf.random.experimental.stateless_fold_in(seed, k)


class DagGenerator(keras.Model):
    """Conditional sequential DAG generator.

    Args:
      num_types: node codes ``T``.
      max_nodes: slots ``M`` (the output is forced into the last one).
      input_codes: codes of the input nodes (they open every cell, in this order).
      output_code: the code that ends a cell.
      classes: number of classes of each condition (NAG: accuracy 3, parameters 3).
      node_units / graph_units: node state (NAG: 250) and graph readout (NAG: 56) widths.
      noise_dim: ``z`` (NAG: 100). embed_dim: width of each class embedding (NAG: 10).
      prop_layers: message-passing rounds per step (NAG: 3). dropout: in propagation (NAG: 0.5).
    """

    def __init__(self, num_types: int, max_nodes: int, input_codes: Sequence[int], output_code: int,
                 classes: Sequence[int] = (3, 3), node_units: int = 250, graph_units: int = 56,
                 noise_dim: int = 100, embed_dim: int = 10, prop_layers: int = 3, dropout: float = 0.5,
                 relax: str = "straight_through", edges: str = "independent", seed: Optional[int] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if relax not in ("soft", "straight_through"):
            raise ValueError(f"DagGenerator: relax must be 'soft' or 'straight_through'; got {relax!r}")
        if edges not in ("independent", "sequential"):
            raise ValueError(f"DagGenerator: edges must be 'independent' or 'sequential'; got {edges!r}")
        self.seed, self.relax, self.edges = seed, relax, edges
        self.num_types, self.max_nodes = int(num_types), int(max_nodes)
        self.input_codes, self.output_code = tuple(int(c) for c in input_codes), int(output_code)
        self.classes, self.node_units, self.graph_units = tuple(int(c) for c in classes), node_units, graph_units
        self.noise_dim, self.embed_dim, self.prop_layers, self.dropout = noise_dim, embed_dim, prop_layers, dropout
        inits = _Inits(seed)
        d, dense = node_units, inits.dense
        self.class_embeds = [inits.embedding(c, embed_dim, name=f"class_embed_{i}")
                             for i, c in enumerate(self.classes)]
        self.code_embed = dense(d, use_bias=False, name="code_embed")
        self.init_input = dense(d, name="init_input")
        self.init_node = dense(d, name="init_node")
        self.fwd_src = [dense(d, name=f"fwd_src_{k}") for k in range(prop_layers)]
        self.fwd_dst = [dense(d, use_bias=False, name=f"fwd_dst_{k}") for k in range(prop_layers)]
        self.rev_src = [dense(d, name=f"rev_src_{k}") for k in range(prop_layers)]
        self.rev_dst = [dense(d, use_bias=False, name=f"rev_dst_{k}") for k in range(prop_layers)]
        self.grus = [inits.gru(d, name=f"gru_{k}") for k in range(prop_layers)]
        self.gate = dense(graph_units, activation="sigmoid", name="readout_gate")
        self.project = dense(graph_units, name="readout_project")
        self.node_hidden = dense(d, activation="relu", name="add_node_hidden")
        self.node_logits = dense(num_types, name="add_node_logits")
        self.edge_hidden = dense(d, activation="relu", name="add_edge_hidden")
        self.edge_logit = dense(1, name="add_edge_logit")
        if edges == "sequential":  # the new node's state after each edge decision
            self.edge_gru = inits.gru(d, name="edge_gru")
        mask = [0.0] * num_types
        for c in self.input_codes:
            mask[c] = _NEG
        self._input_mask = tf.constant(mask, tf.float32)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(num_types=self.num_types, max_nodes=self.max_nodes, input_codes=list(self.input_codes),
                      output_code=self.output_code, classes=list(self.classes), node_units=self.node_units,
                      graph_units=self.graph_units, noise_dim=self.noise_dim, embed_dim=self.embed_dim,
                      prop_layers=self.prop_layers, dropout=self.dropout, relax=self.relax, edges=self.edges,
                      seed=self.seed)
        return config

    def condition(self, z, labels):
        """``z' = [z; l2(emb_0(labels[:, 0])); ...]`` for ``labels [B, len(classes)]`` int."""
        parts = [z] + [l2_normalize(emb(labels[:, i])) for i, emb in enumerate(self.class_embeds)]
        return tf.concat(parts, -1)

    def _propagate(self, h, a, mask, training, seed):
        b, n = tf.shape(h)[0], h.shape[1]
        deg_in = tf.reduce_sum(a, 1)[..., None]  # [B, n, 1]
        deg_out = tf.reduce_sum(a, 2)[..., None]
        for k in range(self.prop_layers):
            fwd = tf.linalg.matmul(a, self.fwd_src[k](h), transpose_a=True) + deg_in * self.fwd_dst[k](h)
            rev = tf.linalg.matmul(a, self.rev_src[k](h)) + deg_out * self.rev_dst[k](h)
            msg = tf.reshape(tf.concat([fwd, rev], -1), [b * n, 2 * self.node_units])
            new, _ = self.grus[k](msg, [tf.reshape(h, [b * n, self.node_units])])
            new = tf.reshape(new, [b, n, self.node_units])
            if training:
                new = _dropout(new, self.dropout, _fold(seed, k))
            h = mask[..., None] * l2_normalize(new) + (1.0 - mask[..., None]) * h
        return h

    def _readout(self, h, mask):
        return tf.reduce_sum(mask[..., None] * self.gate(h) * self.project(h), 1)

    def call(self, z, labels, training: bool = False, hard: bool = False, seed=None):
        """``(x [B, M, T], a [B, M, M])`` of cells generated for noise ``z [B, noise_dim]`` and
        ``labels [B, len(classes)]``; ``seed`` (int32 ``[2]``) drives dropout and, with ``hard``,
        the sampling of codes and edges."""
        x, a, _ = self._unroll(z, labels, training, hard, seed, None)
        return x, a

    def log_likelihood(self, z, labels, x, a, training: bool = False, seed=None):
        """Negative log-likelihood ``[B]`` of the real cells ``x [B, M, T]``, ``a [B, M, M]`` under the
        generator, teacher-forced: each step sees the real cell so far and is scored on the real
        next code (cross-entropy) and the real incoming edges (binary cross-entropy), as DeepGMG
        trains by maximum likelihood."""
        return self._unroll(z, labels, training, False, seed, (x, a))[2]

    def build_weights(self, z, labels) -> None:
        """Creates every weight by running the first generation step only: each step uses every layer,
        so the weights are those a whole call would create (their initialisers are seeded when the
        layers are made), at a fraction of an eager call's cost (one step of ``max_nodes - 2``)."""
        with keras.name_scope(self.name, caller=self):  # the weights' paths of a call: "<model>/<layer>/..."
            self._unroll(z, labels, False, False, None, None, last=len(self.input_codes) + 1)
        self.built = True

    def _unroll(self, z, labels, training, hard, seed, teacher, last: Optional[int] = None):
        """The generation steps ``len(input_codes) .. last - 1`` (``last``: ``max_nodes``, every step)."""
        cond = self.condition(z, labels)
        if seed is None and (hard or (training and self.relax == "straight_through")):
            seed = tf.zeros([2], tf.int32)
        batch = tf.shape(z)[0]
        ones = tf.ones([batch], tf.float32)
        xs, hs, cols = [], [], []
        for code in self.input_codes:
            x = tf.one_hot(tf.fill([batch], code), self.num_types)
            xs.append(x)
            hs.append(l2_normalize(self.init_input(tf.concat([self.code_embed(x), cond], -1))))
            cols.append(tf.zeros([batch, len(cols)]))
        masks = [ones] * len(self.input_codes)
        alive = ones
        nll = tf.zeros([batch], tf.float32)
        n_in = len(self.input_codes)
        for t in range(n_in, self.max_nodes if last is None else last):
            step_seed = _fold(seed, 1000 + t)  # dropout of this step's propagation
            a = self._adjacency(cols, t)
            mask = tf.stack(masks, 1)
            h = self._propagate(tf.stack(hs, 1), a, mask, training, step_seed)
            hs = tf.unstack(h, axis=1)  # node states carry over to the next step (DeepGMG)
            h_g = self._readout(h, mask)
            sample = teacher is None and (hard or (training and self.relax == "straight_through"))
            if t == self.max_nodes - 1:
                probs = tf.one_hot(tf.fill([batch], self.output_code), self.num_types)
            else:
                logits = self.node_logits(self.node_hidden(tf.concat([h_g, cond], -1))) + self._input_mask
                probs = tf.nn.softmax(logits)
                if sample:
                    gumbel = -tf.math.log(-tf.math.log(_uniform(tf.shape(logits), _fold(seed, 2000 + t))))
                    soft = tf.nn.softmax(logits + gumbel)
                    one_hot = tf.one_hot(tf.argmax(soft, -1), self.num_types)
                    probs = one_hot if hard else one_hot + soft - tf.stop_gradient(soft)
            if teacher is not None:  # the real node; rows past the real cell's end are zero
                probs = tf.cast(teacher[0][:, t], tf.float32)
                if t < self.max_nodes - 1:
                    nll += tf.nn.softmax_cross_entropy_with_logits(probs, logits)
                alive = tf.reduce_sum(probs, -1)
            h_t = l2_normalize(self.init_node(tf.concat([self.code_embed(probs), h_g, cond], -1)))
            context = tf.concat([h_g, cond], -1)
            real_edges = None if teacher is None else tf.cast(teacher[1][:, :t, t], tf.float32)
            if self.edges == "sequential":
                p_edge, edge_logits = self._sequential_edges(h, h_t, context, mask, real_edges, sample, hard, seed, t)
            else:
                pair = tf.concat([h, tf.repeat(h_t[:, None], t, 1), tf.repeat(context[:, None], t, 1)], -1)
                edge_logits = self.edge_logit(self.edge_hidden(pair))[..., 0]  # [B, t]
                p_edge = self._edge_draw(edge_logits, sample, hard, _fold(seed, 3000 + t))
            if teacher is not None:
                p_edge = real_edges
                bce = tf.nn.sigmoid_cross_entropy_with_logits(p_edge, edge_logits)
                nll += tf.reduce_sum(bce * mask, -1) * alive
            xs.append(alive[:, None] * probs)
            cols.append(p_edge * mask * alive[:, None])
            hs.append(h_t)
            masks.append(alive)
            alive = alive * (1.0 - probs[:, self.output_code])
        return tf.stack(xs, 1), self._adjacency(cols, self.max_nodes), nll

    @staticmethod
    def _edge_draw(logits, sample: bool, hard: bool, seed):
        """Edge probabilities ``sigmoid(logits)``, or (``sample``) Bernoulli draws by logistic noise:
        hard bits, or bits with the binary-concrete relaxation's straight-through gradient."""
        if not sample:
            return tf.sigmoid(logits)
        u = _uniform(tf.shape(logits), seed)
        soft = tf.sigmoid(logits + tf.math.log(u) - tf.math.log1p(-u))  # binary concrete
        bits = tf.cast(soft > 0.5, tf.float32)
        return bits if hard else bits + soft - tf.stop_gradient(soft)

    def _sequential_edges(self, h, h_t, context, mask, real_edges, sample: bool, hard: bool, seed, t: int):
        """``edges = "sequential"``: the new node decides its incoming edges one earlier node at a
        time, ``u = t-1 .. 0``, its state ``s`` (from ``h_t``) updated by a GRU after each decision
        with ``[e_u h_u; e_u]``, so a decision sees the ones before it (DeepGMG adds edges one at a
        time; the spec's independent head cannot make them agree, e.g. "from node a, or from both b
        and c"). Teacher-forced, the decisions fed back are the real edges. Returns ``(p [B, t],
        logits [B, t])``."""
        s = h_t
        probs, logits = [None] * t, [None] * t
        for u in range(t - 1, -1, -1):
            logit = self.edge_logit(self.edge_hidden(tf.concat([h[:, u], s, context], -1)))[:, 0]
            p = self._edge_draw(logit, sample, hard, _fold(seed, 3000 + 100 * t + u))
            taken = (p if real_edges is None else real_edges[:, u]) * mask[:, u]
            s, _ = self.edge_gru(tf.concat([taken[:, None] * h[:, u], taken[:, None]], -1), [s])
            s = l2_normalize(s)
            probs[u], logits[u] = p, logit
        return tf.stack(probs, 1), tf.stack(logits, 1)

    @staticmethod
    def _adjacency(cols, n: int):
        """``[B, n, n]`` from the incoming-edge columns ``cols[v] [B, v]``."""
        full = [tf.pad(c, [[0, 0], [0, n - c.shape[1]]]) for c in cols[:n]]
        return tf.stack(full, 2)


class DagDiscriminator(keras.Model):
    """GCN discriminator over one or more cells and their class labels (NAG spec, "Discriminator").

    Per cell type: ``Linear(T -> node_units)``, ``gcn_layers`` GCN layers with the normalised
    adjacency ``D^-1/2 (A + A^T + I) D^-1/2`` and ReLU, gated readout to ``graph_units``; then
    ``[readouts; class embeddings]`` through the MLP ``hidden`` (LeakyReLU 0.2, dropout) to one
    score (LSGAN: real 1, fake 0).
    """

    def __init__(self, num_types: int, cells: int = 1, classes: Sequence[int] = (3, 3), node_units: int = 250,
                 graph_units: int = 56, embed_dim: int = 10, gcn_layers: int = 3,
                 hidden: Sequence[int] = (61, 30, 15), dropout: float = 0.5, seed: Optional[int] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.seed = seed
        self.num_types, self.cells, self.classes = int(num_types), int(cells), tuple(int(c) for c in classes)
        self.node_units, self.graph_units, self.embed_dim = node_units, graph_units, embed_dim
        self.gcn_layers, self.hidden, self.dropout = gcn_layers, tuple(hidden), dropout
        inits = _Inits(seed)
        dense = inits.dense
        self.embeds = [dense(node_units, name=f"embed_{c}") for c in range(cells)]
        self.gcns = [[dense(node_units, name=f"gcn_{c}_{k}") for k in range(gcn_layers)] for c in range(cells)]
        self.gates = [dense(graph_units, activation="sigmoid", name=f"gate_{c}") for c in range(cells)]
        self.projects = [dense(graph_units, name=f"project_{c}") for c in range(cells)]
        self.class_embeds = [inits.embedding(c, embed_dim, name=f"class_embed_{i}")
                             for i, c in enumerate(self.classes)]
        self.mlp = [dense(u, name=f"mlp_{i}") for i, u in enumerate(self.hidden)]
        self.score = dense(1, name="score")

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(num_types=self.num_types, cells=self.cells, classes=list(self.classes),
                      node_units=self.node_units, graph_units=self.graph_units, embed_dim=self.embed_dim,
                      gcn_layers=self.gcn_layers, hidden=list(self.hidden), dropout=self.dropout, seed=self.seed)
        return config

    def _cell(self, c: int, x, a):
        mask = tf.minimum(tf.reduce_sum(x, -1, keepdims=True), 1.0)  # [B, M, 1]: node present
        sym = a + tf.linalg.matrix_transpose(a) + tf.eye(tf.shape(a)[1], batch_shape=[tf.shape(a)[0]])
        inv_sqrt = tf.math.rsqrt(tf.reduce_sum(sym, -1))
        norm = inv_sqrt[..., :, None] * sym * inv_sqrt[..., None, :]
        h = self.embeds[c](x)
        for layer in self.gcns[c]:
            h = tf.nn.relu(layer(tf.linalg.matmul(norm, h)))
        return tf.reduce_sum(mask * self.gates[c](h) * self.projects[c](h), 1)

    def call(self, cells: Sequence[Tuple[Any, Any]], labels, training: bool = False, seed=None):
        """Scores ``[B]`` of ``cells`` (one ``(x, a)`` per cell type) with ``labels [B, len(classes)]``."""
        parts = [self._cell(c, x, a) for c, (x, a) in enumerate(cells)]
        parts += [emb(labels[:, i]) for i, emb in enumerate(self.class_embeds)]
        h = tf.concat(parts, -1)
        for k, layer in enumerate(self.mlp):
            h = tf.nn.leaky_relu(layer(h), 0.2)
            if training:
                h = _dropout(h, self.dropout, _fold(seed, k))
        return self.score(h)[:, 0]


_GENERATOR_KEYS = ("node_units", "graph_units", "noise_dim", "embed_dim", "prop_layers", "dropout", "relax", "edges")
_DISCRIMINATOR_KEYS = ("node_units", "graph_units", "embed_dim", "dropout")


def build_models(spec: Any, model: Mapping[str, Any], cells: int, seeds: Sequence[int],
                 d_seed: int) -> Tuple[List[DagGenerator], DagDiscriminator]:
    """One generator per cell type (``seeds[c]``) for the DAG spec ``spec`` and a discriminator over
    all of them, with the settings in ``model`` (``[nag]``'s widths etc.; missing keys = NAG's)."""
    gens = [DagGenerator(spec.num_types, spec.max_nodes, spec.input_codes, spec.output_code, classes=(3, 3),
                         seed=seeds[c], **{k: model[k] for k in _GENERATOR_KEYS if k in model})
            for c in range(cells)]
    disc = DagDiscriminator(spec.num_types, cells=cells, classes=(3, 3), seed=d_seed,
                            **{k: model[k] for k in _DISCRIMINATOR_KEYS if k in model})
    return gens, disc
