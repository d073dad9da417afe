"""NAS-Bench-201 with the architecture as a tensor: one traced graph for all 15,625 cells.

Every NB201 cell shares one network shape (:mod:`tfnas.spaces.nb201`), so zero-shot scoring
does not need a Keras model per cell. :class:`Nb201TensorNetwork` holds the weights of all 5
candidate ops on each of the 6 edges of every cell and picks the op of edge ``e`` with
``tf.switch_case(op_ids[e], ...)``: only the chosen branch runs, forwards and backwards, and
the op ids are an ``int32 [6]`` tensor, so a ``tf.function`` over it traces **once** for every
cell (DESIGN.md, "Performance rules"). Ops, edge order, op ids, initialisers and layer
conventions are those of :meth:`Nb201Space.build`; with the same weights the two give the same
logits (``tests/proxies/test_nb201_tensor.py``).

Weights live in ``tf.Variable`` s named like the variables of the Keras model
(``stage0_cell0_e01_nor_conv_3x3/conv/kernel``, ``reduction1/conv_a/bn/gamma``, ...), so
:meth:`Nb201TensorNetwork.load_keras_weights` copies a built model's weights by path.
:meth:`Nb201TensorNetwork.redraw` re-draws, inside a graph and from an explicit stateless seed,
the kernels a cell uses (fresh random network per cell at the cost of the used ops only).

:class:`Nb201FastPath` is the per-proxy cache of networks and traced scoring functions that
proxies use to override :meth:`tfnas.proxies.base.Proxy.score_arch` on :class:`Nb201Space`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfnas.graph_options import GraphCall
from tfnas.spaces.nb201 import EDGES, NUM_EDGES, OPS, Nb201Arch, Nb201Space
from tfnas.spaces.ops import BN_EPSILON

__all__ = [
    "BN_MODES",
    "KERNEL_INITS",
    "CONV_OPS",
    "Nb201FastPath",
    "Nb201TensorNetwork",
    "ReluTap",
    "op_ids_of",
    "stateless_seed",
]

#: Op ids (indices into ``OPS``) of the two convolution ops and their kernel sizes.
CONV_OPS: Dict[int, int] = {OPS.index("nor_conv_1x1"): 1, OPS.index("nor_conv_3x3"): 3}
_NONE, _SKIP, _CONV1, _CONV3, _POOL = (OPS.index(op) for op in OPS)
#: How BatchNorm behaves in a forward pass: ``moving`` (inference: moving statistics),
#: ``batch`` (training-mode batch statistics; moving statistics are never updated) or ``off``
#: (BatchNorm removed, the identity).
BN_MODES = ("moving", "batch", "off")
#: Initialisations of the convolution kernels (``Nb201TensorNetwork(kernel_init=...)``).
KERNEL_INITS = ("keras", "normal")
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")
# Keras' he_normal draws a truncated normal whose standard deviation this constant corrects.
_TRUNCATED_STD = 0.87962566103423978


#: A pre-ReLU activation of the forward pass and how many ReLUs read it (a float scalar
#: tensor: 0 when the op that would apply the ReLU is not selected). NASWOT reads these.
ReluTap = Tuple[tf.Tensor, tf.Tensor]


def op_ids_of(arch: Nb201Arch) -> np.ndarray:
    """``int32 [6]`` op ids of ``arch`` in edge order (the tensor form of a cell)."""
    if not isinstance(arch, Nb201Arch):
        raise TypeError(f"expected an Nb201Arch, got {type(arch).__name__}; parse strings with Nb201Space.decode")
    return np.asarray(arch.ids, dtype=np.int32)


def _cell_prefix(stage: int, cell: int) -> str:
    return f"stage{stage}_cell{cell}"


def _edge_name(stage: int, cell: int, edge: int, op_id: int) -> str:
    src, dst = EDGES[edge]
    return f"{_cell_prefix(stage, cell)}_e{src}{dst}_{OPS[op_id]}"


class Nb201TensorNetwork(tf.Module):
    """The NB201 network of every cell at once, the cell entering as an ``int32 [6]`` tensor.

    Same structure as :meth:`Nb201Space.build` (stem 3x3 conv + BN; ``N`` cells at ``C``;
    residual reduction to ``2C``; ``N`` cells; reduction to ``4C``; ``N`` cells; BN, ReLU,
    global average pool, dense), but each cell edge holds all 5 candidate ops and
    ``tf.switch_case`` runs the one ``op_ids[edge]`` selects; every cell of the network uses
    the same op ids, as in NB201. Convolution kernels follow Keras ``he_normal`` (or, with
    ``kernel_init="normal"``, N(0, 1) as the Zen score prescribes), the classifier
    ``glorot_uniform`` with a zero bias, BatchNorm ``gamma = 1, beta = 0``.

    Example:
        >>> net = Nb201TensorNetwork(num_classes=10, seed=0)
        >>> arch = Nb201Space().from_index(1234)
        >>> net(tf.zeros((2, 32, 32, 3)), op_ids_of(arch), bn="moving").shape
        TensorShape([2, 10])

    Args:
        num_classes: logits per image.
        input_shape: ``(H, W, channels)`` with ``H`` and ``W`` divisible by 4.
        channels: first-stage width ``C`` (NB201: 16).
        cells_per_stage: cells per stage ``N`` (NB201: 5).
        dtype: dtype of the weights and of the computation (``tf.float32`` or ``tf.float64``).
        seed: integer seed of the initial weights (stateless draws).
        kernel_init: ``"keras"`` (``he_normal`` convolutions, as ``Nb201Space.build``) or
            ``"normal"`` (every convolution kernel N(0, 1)).
        name: module name.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Tuple[int, int, int] = (32, 32, 3),
        channels: int = 16,
        cells_per_stage: int = 5,
        dtype: tf.DType = tf.float32,
        seed: int = 0,
        kernel_init: str = "keras",
        name: str = "nb201_tensor",
    ):
        super().__init__(name=name)
        space = Nb201Space(channels=channels, cells_per_stage=cells_per_stage)
        h, w, c_img = space._check_input_shape(input_shape)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"Nb201TensorNetwork: num_classes must be a positive integer. Received: {num_classes!r}")
        dtype = tf.as_dtype(dtype)
        if dtype not in (tf.float32, tf.float64):
            raise ValueError(f"Nb201TensorNetwork: dtype must be float32 or float64. Received: dtype={dtype.name}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"Nb201TensorNetwork: seed must be an integer. Received: seed={seed!r}")
        if kernel_init not in KERNEL_INITS:
            raise ValueError(f"Nb201TensorNetwork: kernel_init must be one of {KERNEL_INITS}. "
                             f"Received: kernel_init={kernel_init!r}")
        self.kernel_init = kernel_init
        self.num_classes = int(num_classes)
        self.input_shape = (h, w, c_img)
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.space = space
        self.compute_dtype = dtype
        self.widths = (channels, 2 * channels, 4 * channels)

        # name -> (shape, initializer kind); the insertion order fixes each kernel's seed index.
        specs: Dict[str, Tuple[Tuple[int, ...], str]] = {}
        self._edge_of_kernel: Dict[str, Tuple[int, int]] = {}

        def conv(name: str, k: int, c_in: int, c_out: int) -> None:
            specs[name] = ((k, k, c_in, c_out), "he_normal")

        def bn(name: str, c: int) -> None:
            for var in _BN_VARS:
                specs[f"{name}/{var}"] = ((c,), "ones" if var in ("gamma", "moving_variance") else "zeros")

        c1 = channels
        conv("stem_conv/kernel", 3, c_img, c1)
        bn("stem_bn", c1)
        for stage, c in enumerate(self.widths):
            if stage > 0:
                c_in = c // 2
                conv(f"reduction{stage}/conv_a/conv/kernel", 3, c_in, c)
                bn(f"reduction{stage}/conv_a/bn", c)
                conv(f"reduction{stage}/conv_b/conv/kernel", 3, c, c)
                bn(f"reduction{stage}/conv_b/bn", c)
                conv(f"reduction{stage}/shortcut_conv/kernel", 1, c_in, c)
            for cell in range(cells_per_stage):
                for edge in range(NUM_EDGES):
                    for op_id, k in CONV_OPS.items():
                        prefix = _edge_name(stage, cell, edge, op_id)
                        conv(f"{prefix}/conv/kernel", k, c, c)
                        bn(f"{prefix}/bn", c)
                        self._edge_of_kernel[f"{prefix}/conv/kernel"] = (edge, op_id)
        bn("head_bn", self.widths[-1])
        specs["classifier/kernel"] = ((self.widths[-1], self.num_classes), "glorot_uniform")
        specs["classifier/bias"] = ((self.num_classes,), "zeros")
        self._specs = specs
        self._seed_index = {name: i for i, name in enumerate(specs)}
        # Only kernels are trainable (watched by tapes); BatchNorm weights and statistics stay
        # at their initial values, as in a freshly built model scored without training.
        self.weights: Dict[str, tf.Variable] = {
            name: tf.Variable(tf.zeros(shape, dtype), trainable=name.endswith("/kernel"), name=name.replace("/", "__"))
            for name, (shape, _) in specs.items()
        }
        self.initialize(seed)

    # ---- weights ------------------------------------------------------------------------

    @property
    def kernel_names(self) -> Tuple[str, ...]:
        """Names of the convolution and dense kernels (the weights zero-cost proxies measure)."""
        return tuple(n for n in self._specs if n.endswith("/kernel"))

    def kernels(self) -> List[tf.Variable]:
        """The kernel variables, in ``kernel_names`` order."""
        return [self.weights[n] for n in self.kernel_names]

    def kernels_in_use(self, op_ids: Any) -> List[tf.Tensor]:
        """Boolean scalar tensors, one per kernel (``kernel_names`` order): does cell ``op_ids`` use it?

        Stem, reduction and classifier kernels are always used; an edge kernel is used when
        its op is the one ``op_ids`` selects on that edge.
        """
        op_ids = tf.convert_to_tensor(op_ids, tf.int32)
        used = []
        for name in self.kernel_names:
            if name in self._edge_of_kernel:
                edge, op_id = self._edge_of_kernel[name]
                used.append(tf.equal(op_ids[edge], op_id))
            else:
                used.append(tf.constant(True))
        return used

    def sum_over_used_kernels(self, op_ids: Any, term: Callable[[int], tf.Tensor], zero: tf.Tensor) -> tf.Tensor:
        """``sum_k term(k)`` over the kernels (``kernel_names`` indices) that cell ``op_ids`` uses.

        The terms of the candidate ops the cell does not select are skipped with ``tf.cond``
        (their gradients are all zero anyway), so a per-kernel reduction costs only the used
        weights. ``zero`` fixes the shape and dtype of the sum.
        """
        op_ids = tf.convert_to_tensor(op_ids, tf.int32)
        total = zero
        for k, name in enumerate(self.kernel_names):
            if name in self._edge_of_kernel:
                edge, op_id = self._edge_of_kernel[name]
                total += tf.cond(tf.equal(op_ids[edge], op_id), lambda k=k: term(k), lambda: zero)
            else:
                total += term(k)
        return total

    def edge_kernel_name(self, stage: int, cell: int, edge: int, op_id: int) -> str:
        """Name of the kernel of conv op ``op_id`` on ``edge`` of ``cell`` in ``stage``."""
        if op_id not in CONV_OPS:
            raise ValueError(f"op {OPS[op_id]!r} has no kernel; conv ops are {[OPS[i] for i in CONV_OPS]}")
        return f"{_edge_name(stage, cell, edge, op_id)}/conv/kernel"

    def _draw(self, name: str, seed: tf.Tensor) -> tf.Tensor:
        """Stateless draw of weight ``name`` from ``seed`` (``int32/int64 [2]``), as Keras initialises it."""
        shape, kind = self._specs[name]
        dtype = self.compute_dtype
        if kind == "zeros":
            return tf.zeros(shape, dtype)
        if kind == "ones":
            return tf.ones(shape, dtype)
        var_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), self._seed_index[name])
        if kind == "he_normal" and self.kernel_init == "normal":
            return tf.random.stateless_normal(shape, var_seed, dtype=dtype)
        if kind == "he_normal":
            fan_in = int(np.prod(shape[:-1]))
            std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
            return tf.random.stateless_truncated_normal(shape, var_seed, stddev=std, dtype=dtype)
        fan_in, fan_out = shape
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return tf.random.stateless_uniform(shape, var_seed, minval=-limit, maxval=limit, dtype=dtype)

    def initialize(self, seed: Any) -> None:
        """Re-draws every weight (all ops of all edges) from ``seed`` (an int or an int ``[2]`` tensor)."""
        seed_t = _seed_tensor(seed)
        for name, var in self.weights.items():
            var.assign(self._draw(name, seed_t))

    def redraw(self, op_ids: Any, seed: Any) -> None:
        """Re-draws the kernels the cell ``op_ids`` uses, from ``seed``; graph-friendly.

        Draws the stem, reduction and classifier kernels, and on each edge the kernel of the
        selected conv op only (a ``tf.switch_case`` per edge), so a fresh random network costs
        the random numbers of the ops the cell uses. BatchNorm weights and statistics keep
        their initial values (``gamma = 1, beta = 0``, moving mean 0 and variance 1), which is
        what a freshly built model has.

        Args:
            op_ids: ``int32 [6]`` op ids.
            seed: int ``[2]`` stateless seed (or a Python int).
        """
        seed_t = _seed_tensor(seed)
        op_ids = tf.convert_to_tensor(op_ids, tf.int32)
        for name in self.kernel_names:
            if name.startswith(("stem", "reduction", "classifier")):
                self.weights[name].assign(self._draw(name, seed_t))
        for stage in range(3):
            for cell in range(self.cells_per_stage):
                for edge in range(NUM_EDGES):
                    branches = [
                        self._assign_branch(self.edge_kernel_name(stage, cell, edge, op_id), seed_t)
                        if op_id in CONV_OPS else _no_op
                        for op_id in range(len(OPS))
                    ]
                    tf.switch_case(op_ids[edge], branches)

    def _assign_branch(self, name: str, seed: tf.Tensor) -> Callable[[], tf.Tensor]:
        def branch() -> tf.Tensor:
            self.weights[name].assign(self._draw(name, seed))
            return tf.constant(0, tf.int32)

        return branch

    def load_keras_weights(self, model: Any, arch: Nb201Arch) -> None:
        """Copies the weights of ``Nb201Space.build(arch, ...)`` into this network (by variable path).

        Only the ops ``arch`` uses exist in ``model``; the other candidate ops keep their weights.

        Raises:
            ValueError: when a variable of ``model`` has no counterpart here or its shape differs
                (a model built with other ``channels``/``cells_per_stage``/``num_classes``).
        """
        op_ids_of(arch)
        for var in model.variables:
            path = var.path
            if path not in self.weights:
                raise ValueError(
                    f"model variable {path!r} has no counterpart in {self.name} "
                    f"(channels={self.channels}, cells_per_stage={self.cells_per_stage}); was the model built by "
                    "Nb201Space.build with the same settings?"
                )
            target = self.weights[path]
            if tuple(target.shape) != tuple(var.shape):
                raise ValueError(
                    f"model variable {path!r} has shape {tuple(var.shape)}, expected {tuple(target.shape)} "
                    f"(num_classes={self.num_classes}, channels={self.channels})"
                )
            target.assign(tf.cast(var.value if hasattr(var, "value") else var, self.compute_dtype))

    # ---- forward ------------------------------------------------------------------------

    def __call__(
        self,
        images: Any,
        op_ids: Any,
        *,
        bn: str = "batch",
        reduction_bn: Optional[str] = None,
        transform: Optional[Callable[[tf.Tensor], tf.Tensor]] = None,
        taps: Optional[List[ReluTap]] = None,
        bn_log_std: Optional[List[tf.Tensor]] = None,
    ) -> tf.Tensor:
        """Logits of the cell ``op_ids`` on ``images``.

        Args:
            images: ``(B, H, W, channels)`` images (cast to the network dtype).
            op_ids: ``int32 [6]`` op ids, edge order of :data:`tfnas.spaces.nb201.EDGES`.
            bn: BatchNorm mode of the stem, cells and head, one of :data:`BN_MODES`. ``batch``
                normalises with the batch statistics (as ``training=True``) and never updates the
                moving statistics.
            reduction_bn: BatchNorm mode of the two residual reduction blocks (default: ``bn``).
            transform: applied to every weight when it is read (e.g. ``tf.abs`` for synflow).
            taps: when a list, receives a :data:`ReluTap` for every ReLU input (cell conv ops,
                reduction convs, head) in forward order.
            bn_log_std: when a list (``bn="batch"`` only), receives for every BatchNorm that runs
                ``log(sqrt(mean_c var_c))`` of its input's batch variance (the Zen score's BN
                term), and a 0 for every edge whose op has no BatchNorm.

        Returns:
            ``(B, num_classes)`` logits in the network dtype.
        """
        for key, mode in (("bn", bn), ("reduction_bn", reduction_bn)):
            if mode is not None and mode not in BN_MODES:
                raise ValueError(f"Nb201TensorNetwork: {key} must be one of {BN_MODES}. Received: {key}={mode!r}")
        reduction_bn = bn if reduction_bn is None else reduction_bn
        if bn_log_std is not None and (bn != "batch" or reduction_bn != "batch"):
            raise ValueError("Nb201TensorNetwork: bn_log_std needs bn='batch' (batch variances)")
        if transform is None:
            transform = tf.identity

        def read(name: str) -> tf.Tensor:
            return transform(self.weights[name])

        op_ids = tf.convert_to_tensor(op_ids, tf.int32)
        x = tf.cast(images, self.compute_dtype)
        x = tf.nn.conv2d(x, read("stem_conv/kernel"), 1, "SAME")
        x = self._bn(x, "stem_bn", bn, read, bn_log_std)
        for stage, c in enumerate(self.widths):
            if stage > 0:
                x = self._reduction(x, stage, reduction_bn, read, taps, bn_log_std)
            for cell in range(self.cells_per_stage):
                x = self._cell(x, stage, cell, op_ids, bn, read, taps, bn_log_std)
        x = self._bn(x, "head_bn", bn, read, bn_log_std)
        if taps is not None:
            taps.append((x, tf.constant(1.0, self.compute_dtype)))
        x = tf.reduce_mean(tf.nn.relu(x), axis=(1, 2))
        return tf.matmul(x, read("classifier/kernel")) + read("classifier/bias")

    def _bn(self, x: tf.Tensor, name: str, mode: str, read: Callable[[str], tf.Tensor],
            log_std: Optional[List[tf.Tensor]] = None) -> tf.Tensor:
        if mode == "off":
            return x
        gamma, beta = read(f"{name}/gamma"), read(f"{name}/beta")
        if mode == "batch":
            mean, var = tf.nn.moments(x, axes=(0, 1, 2))
            if log_std is not None:
                log_std.append(0.5 * tf.math.log(tf.reduce_mean(var)))
        else:
            mean, var = self.weights[f"{name}/moving_mean"], self.weights[f"{name}/moving_variance"]
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, BN_EPSILON)

    def _relu_conv_bn(self, x: tf.Tensor, prefix: str, strides: int, bn: str, read,
                      log_std: Optional[List[tf.Tensor]] = None) -> tf.Tensor:
        kernel = read(f"{prefix}/conv/kernel")
        x = tf.nn.relu(x)
        if strides == 1:
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
        else:  # symmetric padding, as PyTorch (and tfnas.spaces.ops.ReLUConvBN) pad
            pad = (int(kernel.shape[0]) - 1) // 2
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            x = tf.nn.conv2d(x, kernel, strides, "VALID")
        return self._bn(x, f"{prefix}/bn", bn, read, log_std)

    def _reduction(self, x: tf.Tensor, stage: int, bn: str, read, taps: Optional[List[ReluTap]],
                   log_std: Optional[List[tf.Tensor]] = None) -> tf.Tensor:
        prefix = f"reduction{stage}"
        one = tf.constant(1.0, self.compute_dtype)
        if taps is not None:
            taps.append((x, one))
        branch = self._relu_conv_bn(x, f"{prefix}/conv_a", 2, bn, read, log_std)
        if taps is not None:
            taps.append((branch, one))
        branch = self._relu_conv_bn(branch, f"{prefix}/conv_b", 1, bn, read, log_std)
        shortcut = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        shortcut = tf.nn.conv2d(shortcut, read(f"{prefix}/shortcut_conv/kernel"), 1, "VALID")
        return branch + shortcut

    def _cell(self, x: tf.Tensor, stage: int, cell: int, op_ids: tf.Tensor, bn: str, read,
              taps: Optional[List[ReluTap]], log_std: Optional[List[tf.Tensor]] = None) -> tf.Tensor:
        nodes = [x]
        is_conv = tf.logical_or(tf.equal(op_ids, _CONV1), tf.equal(op_ids, _CONV3))
        for node in (1, 2, 3):
            terms = []
            for edge, (src, dst) in enumerate(EDGES):
                if dst != node:
                    continue
                branches = self._edge_branches(nodes[src], stage, cell, edge, bn, read, log_std is not None)
                if log_std is None:
                    terms.append(tf.switch_case(op_ids[edge], branches))
                else:  # each branch also returns its BN term (0 without a BN), from inside the branch
                    out, term = tf.switch_case(op_ids[edge], branches)
                    terms.append(out)
                    log_std.append(term)
            nodes.append(tf.add_n(terms))
        if taps is not None:
            # One ReLU per conv edge reads its source node (NB201 ReLUConvBN); count them per source.
            for src in (0, 1, 2):
                edges = [e for e, (s, _) in enumerate(EDGES) if s == src]
                count = tf.reduce_sum(tf.cast(tf.gather(is_conv, edges), self.compute_dtype))
                taps.append((nodes[src], count))
        return nodes[3]

    def _edge_branches(self, x: tf.Tensor, stage: int, cell: int, edge: int, bn: str, read,
                       with_log_std: bool = False) -> List[Callable]:
        if with_log_std:  # (output, BN log-std term) per branch
            zero = tf.constant(0.0, self.compute_dtype)

            def conv_term(op_id: int) -> Callable[[], Tuple[tf.Tensor, tf.Tensor]]:
                def run() -> Tuple[tf.Tensor, tf.Tensor]:
                    terms: List[tf.Tensor] = []
                    out = self._relu_conv_bn(x, _edge_name(stage, cell, edge, op_id), 1, bn, read, terms)
                    return out, terms[0]

                return run

            plain = self._edge_branches(x, stage, cell, edge, bn, read)
            return [conv_term(op_id) if op_id in CONV_OPS else (lambda f=f: (f(), zero))
                    for op_id, f in enumerate(plain)]

        def conv_branch(op_id: int) -> Callable[[], tf.Tensor]:
            return lambda: self._relu_conv_bn(x, _edge_name(stage, cell, edge, op_id), 1, bn, read)

        branches: List[Callable[[], tf.Tensor]] = [None] * len(OPS)  # type: ignore[list-item]
        branches[_NONE] = lambda: tf.zeros_like(x)
        branches[_SKIP] = lambda: tf.identity(x)
        branches[_CONV1] = conv_branch(_CONV1)
        branches[_CONV3] = conv_branch(_CONV3)
        # TF's SAME average pooling leaves the padding out of the count (PyTorch count_include_pad=False).
        branches[_POOL] = lambda: tf.nn.avg_pool2d(x, 3, 1, "SAME")
        return branches


def _no_op() -> tf.Tensor:
    return tf.constant(0, tf.int32)


def _seed_tensor(seed: Any) -> tf.Tensor:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return tf.constant([int(seed) & 0x7FFFFFFF, int(seed) >> 31], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2) or not seed.dtype.is_integer:
        raise ValueError(f"a stateless seed must be an int or an integer tensor of shape [2]; got {seed!r}")
    return tf.cast(seed, tf.int64)


class Nb201FastPath:
    """Per-proxy cache of arch-as-tensor networks and their traced scoring functions.

    For each key (space settings, classes, input shape) it builds one
    :class:`Nb201TensorNetwork` and one ``tf.function`` of ``(op_ids, seed, *inputs)``, so any
    number of cells is scored without retracing: :attr:`traces` counts how often a scoring
    function's Python body ran (a test checks it stays at 1 over many cells).

    Weights: the network's weights are drawn once, from the ``rng`` of the first call for that
    key, and shared by every cell scored afterwards (common random numbers). With
    ``fresh_weights=True`` the kernels a cell uses are re-drawn for every call instead, from a
    stateless seed taken from that call's ``rng``, inside the same traced function.

    Args:
        body: ``body(network) -> fn``; ``fn(op_ids, *inputs)`` returns the tensor(s) a proxy
            needs for one cell (``op_ids``: ``int32 [6]``; ``inputs``: what the caller passes).
        dtype: network dtype (``tf.float64`` for synflow, else ``tf.float32``).
        fresh_weights: re-draw the used kernels for every scored cell.
        kernel_init: convolution kernel initialisation of the networks (:data:`KERNEL_INITS`).
    """

    def __init__(self, body: Callable[[Nb201TensorNetwork], Callable[..., Any]], dtype: tf.DType = tf.float32,
                 fresh_weights: bool = False, kernel_init: str = "keras"):
        if kernel_init not in KERNEL_INITS:
            raise ValueError(f"Nb201FastPath: kernel_init must be one of {KERNEL_INITS}. Received: {kernel_init!r}")
        self.kernel_init = kernel_init
        self._body = body
        self.dtype = tf.as_dtype(dtype)
        self.fresh_weights = bool(fresh_weights)
        self._entries: Dict[Hashable, Tuple[Nb201TensorNetwork, Any]] = {}
        self.traces = 0

    def network(self, space: Nb201Space, num_classes: int, input_shape: Sequence[int],
                rng: np.random.Generator) -> Tuple[Nb201TensorNetwork, Any]:
        """``(network, traced_fn)`` for ``space`` at ``num_classes`` and ``input_shape``.

        The first request for a key draws the network's weight seed from ``rng`` (unless
        ``fresh_weights``, where every call re-draws the weights it uses).
        """
        if not isinstance(space, Nb201Space):
            raise TypeError(f"the NB201 fast path needs an Nb201Space; got {type(space).__name__}")
        shape = tuple(int(d) for d in input_shape)
        key = (space.channels, space.cells_per_stage, int(num_classes), shape)
        if key not in self._entries:
            network = Nb201TensorNetwork(
                num_classes=int(num_classes),
                input_shape=shape,
                channels=space.channels,
                cells_per_stage=space.cells_per_stage,
                dtype=self.dtype,
                # With fresh weights every used kernel is re-drawn per call; the initial draw
                # then never matters and takes nothing from ``rng``.
                seed=0 if self.fresh_weights else int(rng.integers(0, 2**31 - 1)),
                kernel_init=self.kernel_init,
            )
            fn = self._body(network)
            fresh = self.fresh_weights

            def traced(op_ids: tf.Tensor, seed: tf.Tensor, *inputs: tf.Tensor) -> Any:
                self.traces += 1
                if fresh:
                    network.redraw(op_ids, seed)
                return fn(op_ids, *inputs)

            # Grappler off on CPU: its first-call pass over the switch_case graph costs about a
            # minute and the steady-state call is no faster with it (tfnas/graph_options.py).
            self._entries[key] = (network, GraphCall(tf.function(traced, reduce_retracing=True, autograph=False)))
        return self._entries[key]

    def __call__(self, space: Nb201Space, arch: Nb201Arch, *, num_classes: int, input_shape: Sequence[int],
                 rng: np.random.Generator, inputs: Sequence[Any] = ()) -> Any:
        """Runs the traced function for ``arch``; returns its output(s) as NumPy values."""
        _, fn = self.network(space, num_classes, input_shape, rng)
        seed = stateless_seed(rng) if self.fresh_weights else np.zeros(2, np.int64)
        out = fn(tf.constant(op_ids_of(arch)), tf.constant(seed), *(tf.constant(x) for x in inputs))
        return tf.nest.map_structure(lambda t: t.numpy(), out)


def stateless_seed(rng: np.random.Generator) -> np.ndarray:
    """An ``int64 [2]`` stateless seed drawn from ``rng``."""
    return rng.integers(0, 2**31 - 1, size=2, dtype=np.int64)
