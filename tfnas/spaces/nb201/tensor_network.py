"""NAS-Bench-201 with the architecture as a tensor: one traced graph for all 15,625 cells.

Every NB201 cell shares one network shape (:mod:`tfnas.spaces.nb201.network`), so zero-shot scoring
does not need a Keras model per cell. :class:`Nb201TensorNetwork` holds the weights of all 5
candidate ops on each of the 6 edges of every cell and picks the op of edge ``e`` with
``tf.switch_case(op_ids[e], ...)``: only the chosen branch runs, forwards and backwards, and
the op ids are an ``int32 [6]`` tensor, so a ``tf.function`` over it traces **once** for every
cell (DESIGN.md, "Performance rules"). Ops, edge order, op ids, initialisers and layer
conventions are those of :meth:`Nb201Space.build`; with the same weights the two give the same
logits (``tests/spaces/test_nb201_tensor_network.py``).

Weights live in ``tf.Variable`` s named like the variables of the Keras model
(``stage0_cell0_e01_nor_conv_3x3/conv/kernel``, ``reduction1/conv_a/bn/gamma``, ...), so
:meth:`Nb201TensorNetwork.load_keras_weights` copies a built model's weights by path.
:meth:`Nb201TensorNetwork.redraw` re-draws, inside a graph and from an explicit stateless seed,
the kernels a cell uses (fresh random network per cell at the cost of the used ops only).

The weight layout and initialisers are in :mod:`tfnas.spaces.nb201.tensor_weights`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from tfnas.checks import check_int, check_num_classes
from tfnas.spaces.nb201.arch import EDGES, NUM_EDGES, OPS, Nb201Arch
from tfnas.spaces.nb201.space import Nb201Space
from tfnas.spaces.nb201.tensor_weights import (
    CONV_OPS,
    KERNEL_INITS,
    draw_weight,
    edge_name,
    op_ids_of,
    seed_tensor,
    weight_specs,
)
from tfnas.spaces.ops import BN_EPSILON

__all__ = ["BN_MODES", "Nb201TensorNetwork", "ReluTap"]

_NONE, _SKIP, _CONV1, _CONV3, _POOL = (OPS.index(op) for op in OPS)
#: How BatchNorm behaves in a forward pass: ``moving`` (inference: moving statistics),
#: ``batch`` (training-mode batch statistics; moving statistics are never updated) or ``off``
#: (BatchNorm removed, the identity).
BN_MODES = ("moving", "batch", "off")

#: A pre-ReLU activation of the forward pass and how many ReLUs read it (a float scalar
#: tensor: 0 when the op that would apply the ReLU is not selected). NASWOT reads these.
ReluTap = Tuple[tf.Tensor, tf.Tensor]


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
        num_classes = check_num_classes(num_classes, "Nb201TensorNetwork",
                                        message="{owner}: num_classes must be a positive integer. Received: {value!r}")
        dtype = tf.as_dtype(dtype)
        if dtype not in (tf.float32, tf.float64):
            raise ValueError(f"Nb201TensorNetwork: dtype must be float32 or float64. Received: dtype={dtype.name}")
        seed = check_int(seed, "seed", "Nb201TensorNetwork",
                         message="{owner}: seed must be an integer. Received: seed={value!r}")
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

        self._specs, self._edge_of_kernel = weight_specs(c_img, self.widths, cells_per_stage, self.num_classes)
        self._seed_index = {name: i for i, name in enumerate(self._specs)}
        # Only kernels are trainable (watched by tapes); BatchNorm weights and statistics stay
        # at their initial values, as in a freshly built model scored without training.
        self.weights: Dict[str, tf.Variable] = {
            name: tf.Variable(tf.zeros(shape, dtype), trainable=name.endswith("/kernel"), name=name.replace("/", "__"))
            for name, (shape, _) in self._specs.items()
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
        return f"{edge_name(stage, cell, edge, op_id)}/conv/kernel"

    def _draw(self, name: str, seed: tf.Tensor) -> tf.Tensor:
        """Stateless draw of weight ``name`` from ``seed`` (``int32/int64 [2]``), as Keras initialises it."""
        shape, kind = self._specs[name]
        return draw_weight(shape, kind, seed, self._seed_index[name], self.compute_dtype, self.kernel_init)

    def initialize(self, seed: Any) -> None:
        """Re-draws every weight (all ops of all edges) from ``seed`` (an int or an int ``[2]`` tensor)."""
        seed_t = seed_tensor(seed)
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
        seed_t = seed_tensor(seed)
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
                    out = self._relu_conv_bn(x, edge_name(stage, cell, edge, op_id), 1, bn, read, terms)
                    return out, terms[0]

                return run

            plain = self._edge_branches(x, stage, cell, edge, bn, read)
            return [conv_term(op_id) if op_id in CONV_OPS else (lambda f=f: (f(), zero))
                    for op_id, f in enumerate(plain)]

        def conv_branch(op_id: int) -> Callable[[], tf.Tensor]:
            return lambda: self._relu_conv_bn(x, edge_name(stage, cell, edge, op_id), 1, bn, read)

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
