"""The zero-shot proxy contract.

A proxy scores an untrained network; **higher is better for every proxy** (modules flip the
sign where a paper ranks lower-is-better and say so). Two entry points:

* :meth:`Proxy.score` works on any Keras network (NB201 cells, Zen blocks, DARTS cells): it
  gets the model, a batch of inputs/labels and a generator, and must not change the caller's
  weights or BN statistics (score a copy, or restore what it touches).
* :meth:`Proxy.score_arch` scores an architecture of a space. It takes the fast path registered
  for (proxy, space type) in :mod:`tfnas.proxies.fastpaths` where there is one (NB201
  arch-as-tensor networks, Zen blocks evaluated without building a Keras model), else builds
  the space's Keras network and calls :meth:`score`.

Proxies are registered by name in :data:`tfnas.registry.PROXIES` (one module each, imported
by ``tfnas/proxies/__init__.py``); ``get_proxy(name, **kwargs)`` builds one. Each proxy class
declares the ``[proxy]`` keys it takes in :attr:`Proxy.options`; :func:`proxy_options` reads them.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

from tfnas.checks import check_image_shape, check_num_classes, check_rng, positive_int
from tfnas.proxies.fastpaths import find_fast_path

logger = logging.getLogger(__name__)

#: Fast-path states made so far in this process, per (proxy name, key): a count that keeps growing means a
#: new proxy object per architecture, each tracing its networks again (:meth:`Proxy.fast_path_state`).
_STATES_MADE: "collections.Counter[Tuple[str, str]]" = collections.Counter()
#: ... and the count at which that is said, once per (proxy name, key).
RETRACE_WARNING_AT = 5


@dataclass
class ProxyBatch:
    """Random inputs for scoring.

    Attributes:
      images: float32 ``(B, H, W, C)`` drawn from N(0, 1).
      labels: int32 ``(B,)`` drawn uniformly from ``[0, num_classes)``.
      num_classes: number of classes of the network's head.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int


def random_batch(rng: np.random.Generator, batch_size: int, input_shape: Tuple[int, int, int],
                 num_classes: int) -> ProxyBatch:
    """Gaussian images and uniform labels, as the zero-shot papers use."""
    check_score_args(num_classes, input_shape, batch_size, rng, "random_batch")
    images = rng.standard_normal((batch_size,) + tuple(input_shape)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch_size).astype(np.int32)
    return ProxyBatch(images, labels, num_classes)


def check_score_args(num_classes: Any, input_shape: Any, batch_size: Any, rng: Any, owner: str,
                     needs_rng: bool = True) -> None:
    """Raises ``ValueError`` / ``TypeError`` naming the argument of a scoring call that is not a positive class
    count, an ``(H, W, C)`` image shape, a positive batch size or (where ``needs_rng``) a NumPy Generator."""
    check_num_classes(num_classes, owner)
    check_image_shape(input_shape, owner)
    positive_int(batch_size, "batch_size", owner)
    if needs_rng:
        check_rng(rng, owner)


def check_batch(batch: Any, who: str, *, labels: bool = True) -> None:
    """Raises ``TypeError`` unless ``batch`` is a :class:`ProxyBatch` (an object with the same attributes is
    refused too), and ``ValueError`` unless it holds inputs ``(B, ...)`` (images ``(B, H, W, C)``) and, where
    ``labels``, a positive ``num_classes`` and integer labels ``(B,)`` in ``[0, num_classes)``."""
    if not isinstance(batch, ProxyBatch):
        raise TypeError(f"{who}: the batch must be a ProxyBatch(images, labels, num_classes) (random_batch() makes "
                        f"one); got {type(batch).__name__}")
    images = np.asarray(batch.images)
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(f"{who}: expected inputs (B, ...) with B >= 1; got {images.shape}")
    if not labels:
        return
    check_num_classes(batch.num_classes, f"{who}: the batch's num_classes")
    labels_ = np.asarray(batch.labels)
    if not np.issubdtype(labels_.dtype, np.integer):
        raise TypeError(f"{who}: labels must be integer class ids; got {labels_.dtype}")
    if labels_.shape != images.shape[:1]:
        raise ValueError(f"{who}: expected inputs (B, ...) and labels (B,); got {images.shape} and {labels_.shape}")
    if labels_.min() < 0 or labels_.max() >= batch.num_classes:
        raise ValueError(f"{who}: labels must lie in [0, {batch.num_classes}); got [{labels_.min()}, {labels_.max()}]")


class Proxy(abc.ABC):
    """A zero-shot score of an untrained network; higher is better.

    Attributes:
        name: the registry name; fast paths are registered under it.
        options: the ``[proxy]`` section keys the proxy takes, each mapped to the keyword
            argument of its constructor (e.g. ``{"grad_norm": "reduction"}``); read by
            :func:`proxy_options`.
    """

    name: str = ""
    options: ClassVar[Mapping[str, str]] = {}

    @abc.abstractmethod
    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        """Scores ``model`` (a ``keras.Model`` images -> logits) on ``batch``; higher is better."""

    def score_arch(self, space: Any, arch: Any, *, num_classes: int,
                   input_shape: Tuple[int, int, int], batch_size: int,
                   rng: np.random.Generator) -> float:
        """Scores ``arch`` of ``space``: through the fast path registered for this proxy and the
        space's type (:func:`tfnas.proxies.fastpaths.find_fast_path`) where there is one, else on
        the space's Keras network.

        The network is ``space.build(arch, ...)`` with the space's ``proxy_build_options`` where
        it has them (the ``zen`` space: without residual links, as the Zen-NAS search scores).
        """
        check_score_args(num_classes, input_shape, batch_size, rng, f"{type(self).__name__}.score_arch")
        fast = find_fast_path(self, space)
        if fast is not None:
            return float(fast(self, space, arch, num_classes=num_classes, input_shape=input_shape,
                              batch_size=batch_size, rng=rng))
        model = build_for_scoring(space, arch, num_classes, input_shape)
        batch = random_batch(rng, batch_size, input_shape, num_classes)
        return float(self.score(model, batch, rng))

    def fast_path_state(self, key: str, create: Callable[[], Any]) -> Any:
        """State a fast path keeps for this proxy (e.g. traced networks), made by ``create()`` on
        first use; it lives as long as the proxy, so one proxy traces once per network shape. A new proxy
        object per architecture traces again each time (about 10x slower): the fifth proxy object of a
        name that makes such state in a process draws a warning."""
        states = self.__dict__.setdefault("_fast_path_states", {})
        if key not in states:
            states[key] = create()
            made = (self.name, key)
            _STATES_MADE[made] += 1
            if _STATES_MADE[made] == RETRACE_WARNING_AT:
                logger.warning("proxy %r: %d proxy objects have each traced their own %s networks; one proxy "
                               "object scoring every architecture traces them once (get_proxy(...) once, then "
                               "score_arch in the loop)", self.name, RETRACE_WARNING_AT, key)
        return states[key]


def build_for_scoring(space: Any, arch: Any, num_classes: int, input_shape: Tuple[int, int, int]) -> Any:
    """``space.build(arch, ...)`` with the space's ``proxy_build_options`` where it has them: the
    network a proxy scores (Zen space: without residual links, as the Zen-NAS search scores;
    DARTS: without the training-only auxiliary head)."""
    options = dict(getattr(space, "proxy_build_options", None) or {})
    return space.build(arch, num_classes=num_classes, input_shape=input_shape, **options)


def scored_network(model: Any) -> Any:
    """The network a proxy scores for ``model``: the inference network that an export writes
    (:func:`tfnas.train.export.inference_model`: the DARTS network without its auxiliary head and
    DropPath, a functional model without its top-level dropout-like layers; the same weights). An
    auxiliary head's parameters and activations are no part of the network a proxy ranks (NASWOT
    counted its ReLUs, the params baseline its weights)."""
    from tfnas.train.export import inference_model

    return inference_model(model)


def main_output(outputs: Any) -> Any:
    """The logits of a model call: the first element when the model returns a tuple or list.

    Networks with an auxiliary head (DARTS) return ``(logits, aux_logits)`` in training mode;
    proxies score the main classifier, as the network is used at test time.
    """
    if isinstance(outputs, (tuple, list)):
        if not outputs:
            raise ValueError("the model returned an empty tuple; proxies need its logits")
        return outputs[0]
    return outputs


def is_graph_model(model: Any) -> bool:
    """Whether ``model`` is a functional or sequential Keras model (a graph of layers with known
    inputs and outputs), as opposed to a subclassed one."""
    try:
        return bool(getattr(model, "inputs", None)) and bool(getattr(model, "outputs", None))
    except (AttributeError, ValueError):  # unbuilt models raise on these properties
        return False


@contextlib.contextmanager
def dtype_policy_scope(dtype: Optional[str]) -> Iterator[None]:
    """Within the block, Keras layers created without a ``dtype`` use ``dtype`` (``None``: no change).

    Keras keeps the default dtype policy process-wide and has no scoped form; this sets it for
    the block and restores the previous policy on exit, also when the block raises.
    """
    import keras

    if dtype is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def clone_model_for_scoring(model: Any, dtype: Optional[str] = None) -> Any:
    """A copy of ``model`` with the same weights (optionally in another ``dtype``); ``model`` is untouched.

    Functional and sequential models are cloned by ``keras.models.clone_model``; a subclassed
    model (such as :class:`tfnas.spaces.darts.network.DartsNetwork`) is rebuilt from its
    ``get_config()`` and built on its input shape. With ``dtype`` (e.g. ``"float64"`` for
    synflow) every layer of the copy computes and stores its weights in that dtype (sublayers
    that custom layers create in ``__init__`` through :func:`dtype_policy_scope`).

    Python's global ``random`` stream, from which Keras draws the layers' default seeds, is left as it was
    (the copy's weights are the model's; a scoring call must not shift a caller's later initialisations).

    Raises:
        TypeError: for a subclassed model without a usable ``get_config``/``from_config`` or input shape.
    """
    import random

    caller = random.getstate()
    try:
        return _clone(model, dtype)
    finally:
        random.setstate(caller)


def _clone(model: Any, dtype: Optional[str]) -> Any:
    import keras

    with dtype_policy_scope(dtype):
        if is_graph_model(model):
            def clone_layer(layer: Any) -> Any:
                config = layer.get_config()
                if dtype is not None:
                    config["dtype"] = dtype
                return layer.__class__.from_config(config)

            clone = keras.models.clone_model(model, clone_function=clone_layer)
        else:
            try:
                clone = model.__class__.from_config(model.get_config())
                shape = tuple(model.input_shape)
                clone.build(shape)
                clone(np.zeros((1,) + shape[1:], np.float32), training=False)  # create every sublayer's weights
            except (NotImplementedError, TypeError, ValueError, AttributeError) as exc:
                raise TypeError(
                    f"cannot copy model {getattr(model, 'name', model)!r} for scoring: a subclassed model needs "
                    f"get_config/from_config and an input_shape ({type(exc).__name__}: {exc})"
                ) from exc
    clone.set_weights(model.get_weights())
    return clone


def get_proxy(name: str, **kwargs: Any) -> Proxy:
    """The registered proxy ``name`` built with ``kwargs`` (e.g. Incorporated weights)."""
    from tfnas.registry import PROXIES

    return PROXIES.get(name)(**kwargs)


def proxy_options(name: str, section: Any) -> Dict[str, Any]:
    """The constructor options of proxy ``name`` read from ``section`` (a ``[proxy]`` section or any
    object with the attributes the proxy declares in :attr:`Proxy.options`).

    Raises:
        tfnas.registry.UnknownNameError: when no proxy is registered as ``name``.
        AttributeError: when ``section`` lacks a declared key.
    """
    from tfnas.registry import PROXIES

    declared = getattr(PROXIES.get(name), "options", {})
    return {keyword: getattr(section, key) for key, keyword in declared.items()}
