"""NAS-Bench-201 fast paths of the zero-shot proxies: traced arch-as-tensor scoring.

:class:`Nb201FastPath` is the per-proxy cache of :class:`~tfnas.spaces.nb201.Nb201TensorNetwork`
networks and their traced scoring functions: one trace scores every cell of a space setting.
:func:`nb201_fast_path` gives a proxy's cache (kept in the proxy, made on first use); the traced
bodies of ``grad_norm``, ``snip``, ``naswot``, ``jacob_cov``, ``te_nas``, ``synflow`` and ``zen``
(both ``bn_variance`` forms) follow, each registered for :class:`~tfnas.spaces.nb201.Nb201Space`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfnas.grappler import GraphCall
from tfnas.lru import LRUCache
from tfnas.proxies.base import random_batch
from tfnas.proxies.fastpaths import register_fast_path
from tfnas.proxies.gradients import cross_entropy
from tfnas.proxies.jacob_cov import jacobian_score
from tfnas.proxies.naswot import log_abs_det
from tfnas.proxies.synflow import log_synflow
from tfnas.proxies.te_nas import ntk_score
from tfnas.spaces.nb201 import (
    KERNEL_INITS,
    Nb201Arch,
    Nb201Space,
    Nb201TensorNetwork,
    ReluTap,
    op_ids_of,
    stateless_seed,
)
from tfnas.spaces.zen.residual_free import relu_code_agreement

__all__ = ["Nb201FastPath", "nb201_fast_path", "nb201_loss_gradients"]


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
        # One entry per space setting scored (usually one per run); bounded all the same.
        self._entries: LRUCache[Tuple[Nb201TensorNetwork, Any]] = LRUCache("nb201 traced networks", maxsize=8)
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

        def create() -> Tuple[Nb201TensorNetwork, Any]:
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
            # minute and the steady-state call is no faster with it (tfnas/grappler.py).
            return network, GraphCall(tf.function(traced, reduce_retracing=True, autograph=False))

        return self._entries.get_or_create(key, create)

    def __call__(self, space: Nb201Space, arch: Nb201Arch, *, num_classes: int, input_shape: Sequence[int],
                 rng: np.random.Generator, inputs: Sequence[Any] = ()) -> Any:
        """Runs the traced function for ``arch``; returns its output(s) as NumPy values."""
        _, fn = self.network(space, num_classes, input_shape, rng)
        seed = stateless_seed(rng) if self.fresh_weights else np.zeros(2, np.int64)
        out = fn(tf.constant(op_ids_of(arch)), tf.constant(seed), *(tf.constant(x) for x in inputs))
        return tf.nest.map_structure(lambda t: t.numpy(), out)


# ---- a proxy's cache ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Body:
    """How a proxy's NB201 function is traced: ``build(proxy, network) -> fn(op_ids, *inputs)``."""

    build: Callable[[Any, Nb201TensorNetwork], Callable[..., Any]]
    dtype: tf.DType = tf.float32
    kernel_init: str = "keras"


_BODIES: Dict[str, _Body] = {}


def nb201_fast_path(proxy: Any) -> Nb201FastPath:
    """The :class:`Nb201FastPath` of ``proxy`` (its traced networks), made on first use and kept
    by the proxy (``Proxy.fast_path_state``); ``proxy.fresh_weights`` sets its weight draws.

    Raises:
        KeyError: when no NB201 fast path is registered for ``proxy.name``.
    """
    body = _BODIES.get(proxy.name)
    if body is None:
        raise KeyError(f"proxy {proxy.name!r} has no NAS-Bench-201 fast path; those with one: {sorted(_BODIES)}")
    return proxy.fast_path_state("nb201", lambda: Nb201FastPath(
        lambda network: body.build(proxy, network), dtype=body.dtype, fresh_weights=proxy.fresh_weights,
        kernel_init=body.kernel_init))


def nb201_body(name: str, dtype: tf.DType = tf.float32,
               kernel_init: str = "keras") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator declaring ``build(proxy, network)`` as the traced body of proxy ``name``."""

    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        _BODIES[name] = _Body(build, tf.as_dtype(dtype), kernel_init)
        return build

    return decorator


def _on_batch(finish: Callable[[Any], float]) -> Callable[..., float]:
    """A fast path that draws one random batch (images, labels) from ``rng`` and traces the cell."""

    def score(proxy: Any, space: Nb201Space, arch: Nb201Arch, *, num_classes: int,
              input_shape: Tuple[int, int, int], batch_size: int, rng: np.random.Generator) -> float:
        batch = random_batch(rng, batch_size, input_shape, num_classes)
        out = nb201_fast_path(proxy)(space, arch, num_classes=num_classes, input_shape=input_shape, rng=rng,
                                     inputs=(batch.images, batch.labels))
        return finish(out)

    return score


# ---- the proxies' traced bodies -----------------------------------------------------------


def nb201_loss_gradients(network: Nb201TensorNetwork, images: tf.Tensor, labels: tf.Tensor,
                         op_ids: tf.Tensor) -> Tuple[List[tf.Variable], List[tf.Tensor]]:
    """Kernels of ``network`` and the cross-entropy gradients for cell ``op_ids`` (batch-stat BN).

    Kernels of ops the cell does not use get zero gradients.
    """
    kernels = network.kernels()
    with tf.GradientTape() as tape:
        loss = cross_entropy(network(images, op_ids, bn="batch"), labels)
    grads = tape.gradient(loss, kernels)
    grads = [tf.zeros_like(k) if g is None else g for k, g in zip(kernels, grads)]
    return kernels, grads


@nb201_body("grad_norm")
def _grad_norm_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., tf.Tensor]:
    layer_sum = proxy.reduction == "layer_sum"

    def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        _, grads = nb201_loss_gradients(network, images, labels, op_ids)
        # Unused kernels have zero gradients (norm 0); summing them costs less than a tf.cond each.
        squares = [tf.reduce_sum(tf.square(tf.cast(g, tf.float64))) for g in grads]
        if layer_sum:
            return tf.add_n([tf.sqrt(q) for q in squares])
        return tf.sqrt(tf.add_n(squares))

    return body


@nb201_body("snip")
def _snip_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., tf.Tensor]:
    def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        kernels, grads = nb201_loss_gradients(network, images, labels, op_ids)
        # Unused kernels have zero gradients; summing them costs less than a tf.cond each.
        return tf.add_n([tf.reduce_sum(tf.abs(tf.cast(k * g, tf.float64))) for k, g in zip(kernels, grads)])

    return body


@nb201_body("naswot")
def _naswot_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., tf.Tensor]:
    def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        del labels
        taps: List[ReluTap] = []
        network(images, op_ids, bn="batch", taps=taps)
        batch = tf.shape(images)[0]
        kernel = tf.zeros((batch, batch), tf.float64)
        for x, count in taps:
            kernel += tf.cast(count, tf.float64) * tf.cast(relu_code_agreement(x), tf.float64)
        return kernel

    return body


@nb201_body("jacob_cov")
def _jacob_cov_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., tf.Tensor]:
    def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        del labels  # the Jacobian of the logits needs no labels
        with tf.GradientTape() as tape:
            tape.watch(images)
            total = tf.reduce_sum(network(images, op_ids, bn="batch"))
        jac = tape.gradient(total, images)
        return tf.reshape(jac, (tf.shape(jac)[0], -1))

    return body


@nb201_body("te_nas")
def _te_nas_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., tf.Tensor]:
    kernels = network.kernels()

    def body(op_ids: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        del labels
        with tf.GradientTape(persistent=True) as tape:
            per_image = tf.reduce_sum(network(images, op_ids, bn="batch"), axis=1)
        # A while loop of per-image gradients: pfor through the switch_case graph traces
        # for minutes and runs no faster on CPU.
        jac = tape.jacobian(per_image, kernels, experimental_use_pfor=False)
        batch = tf.shape(images)[0]

        def gram(k: int) -> tf.Tensor:
            if jac[k] is None:  # not connected to the logits
                return tf.zeros((batch, batch), tf.float64)
            block = tf.reshape(tf.cast(jac[k], tf.float64), (batch, -1))
            return tf.matmul(block, block, transpose_b=True)

        # Kernels of unselected ops have all-zero Jacobians: skip their B x B x P products.
        return network.sum_over_used_kernels(op_ids, gram, tf.zeros((batch, batch), tf.float64))

    return body


@nb201_body("synflow", dtype=tf.float64)
def _synflow_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., tf.Tensor]:
    kernels = network.kernels()
    reduction_bn = "batch" if proxy.reference_bn else "off"
    ones = tf.ones((1,) + network.input_shape, network.compute_dtype)

    def body(op_ids: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = network(ones, op_ids, bn="off", reduction_bn=reduction_bn, transform=tf.abs)
            total = tf.reduce_sum(logits)
        # d total / d k = sign(k) * d total / d|k|, so |k * grad| = ||k| * d total / d|k||.
        grads = [tf.zeros_like(k) if g is None else g for k, g in zip(kernels, tape.gradient(total, kernels))]
        return network.sum_over_used_kernels(op_ids, lambda k: tf.reduce_sum(tf.abs(kernels[k] * grads[k])),
                                             tf.constant(0.0, network.compute_dtype))

    return body


@nb201_body("zen", kernel_init="normal")
def zen_body(proxy: Any, network: Nb201TensorNetwork) -> Callable[..., Tuple[tf.Tensor, tf.Tensor]]:
    """``fn(op_ids, images, noise) -> (Delta, sum of BN log-stds)`` of the Zen score (float64).

    ``proxy.bn_variance == "running"`` takes each BN's log-std of ``0.81 + 0.09 v + 0.1 v'``
    (:func:`tfnas.proxies.zen.zen_from_passes`) from the clean and perturbed batch variances
    ``v = exp(2 a)``, ``v' = exp(2 a')`` of the two passes' log-std terms; an edge without BN
    gives ``a = a' = 0``, hence ``log(0.81 + 0.09 + 0.1) = 0``, no term, in both forms.
    """
    gamma = proxy.perturbation
    running = proxy.bn_variance == "running"

    def body(op_ids: Any, images: Any, noise: Any) -> Tuple[Any, Any]:
        clean_taps: List[Any] = []
        log_std: List[Any] = []
        network(images, op_ids, bn="batch", taps=clean_taps, bn_log_std=log_std)
        perturbed_taps: List[Any] = []
        perturbed_log_std: List[Any] = []
        network(images + gamma * noise, op_ids, bn="batch", taps=perturbed_taps,
                bn_log_std=perturbed_log_std if running else None)
        # The last tap is the head BN output; its ReLU is the pre-pooling feature map.
        difference = tf.abs(tf.nn.relu(clean_taps[-1][0]) - tf.nn.relu(perturbed_taps[-1][0]))
        delta = tf.reduce_mean(tf.reduce_sum(tf.cast(difference, tf.float64), axis=(1, 2, 3)))
        clean = tf.cast(tf.stack(log_std), tf.float64)
        if not running:
            return delta, tf.reduce_sum(clean)
        perturbed = tf.cast(tf.stack(perturbed_log_std), tf.float64)
        running_var = 0.81 + 0.09 * tf.exp(2.0 * clean) + 0.1 * tf.exp(2.0 * perturbed)
        return delta, tf.reduce_sum(0.5 * tf.math.log(running_var))

    return body


# ---- registrations ------------------------------------------------------------------------

register_fast_path("grad_norm", Nb201Space)(_on_batch(float))
register_fast_path("snip", Nb201Space)(_on_batch(float))
register_fast_path("naswot", Nb201Space)(_on_batch(log_abs_det))
register_fast_path("jacob_cov", Nb201Space)(_on_batch(jacobian_score))
register_fast_path("te_nas", Nb201Space)(_on_batch(ntk_score))


@register_fast_path("synflow", Nb201Space)
def _synflow(proxy: Any, space: Nb201Space, arch: Nb201Arch, *, num_classes: int,
             input_shape: Tuple[int, int, int], batch_size: int, rng: np.random.Generator) -> float:
    """One all-ones image: ``batch_size`` is not used."""
    return log_synflow(nb201_fast_path(proxy)(space, arch, num_classes=num_classes, input_shape=input_shape, rng=rng))


@register_fast_path("zen", Nb201Space)
def _zen(proxy: Any, space: Nb201Space, arch: Nb201Arch, *, num_classes: int,
         input_shape: Tuple[int, int, int], batch_size: int, rng: np.random.Generator) -> float:
    """Images, then noise drawn from ``rng``; ``log(Delta) + sum log std``, ``-inf`` for ``Delta = 0``."""
    shape = (batch_size,) + tuple(int(d) for d in input_shape)
    images = rng.standard_normal(shape, dtype=np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    delta, log_std = nb201_fast_path(proxy)(space, arch, num_classes=num_classes, input_shape=input_shape,
                                            rng=rng, inputs=(images, noise))
    if not delta > 0 or not np.isfinite(log_std):
        return float("-inf")
    return float(math.log(delta) + log_std)
