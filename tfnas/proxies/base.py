"""The zero-shot proxy contract.

A proxy scores an untrained network; **higher is better for every proxy** (modules flip the
sign where a paper ranks lower-is-better and say so). Two entry points:

* :meth:`Proxy.score` works on any Keras network (NB201 cells, Zen blocks, DARTS cells): it
  gets the model, a batch of inputs/labels and a generator, and must not change the caller's
  weights or BN statistics (score a copy, or restore what it touches).
* :meth:`Proxy.score_arch` scores an architecture of a space. The default builds the space's
  Keras network and calls :meth:`score`; proxies override it for spaces with a faster path
  (NB201 arch-as-tensor networks, Zen blocks evaluated without building a Keras model).

Proxies are registered by name in :data:`tfnas.registry.PROXIES` (one module each, imported
by ``tfnas/proxies/__init__.py``); ``get_proxy(name, **kwargs)`` builds one.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np


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
    images = rng.standard_normal((batch_size,) + tuple(input_shape)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch_size).astype(np.int32)
    return ProxyBatch(images, labels, num_classes)


class Proxy(abc.ABC):
    """A zero-shot score of an untrained network; higher is better."""

    name: str = ""

    @abc.abstractmethod
    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        """Scores ``model`` (a ``keras.Model`` images -> logits) on ``batch``; higher is better."""

    def score_arch(self, space: Any, arch: Any, *, num_classes: int,
                   input_shape: Tuple[int, int, int], batch_size: int,
                   rng: np.random.Generator) -> float:
        """Scores ``arch`` of ``space``; the default builds the space's Keras network.

        The network is ``space.build(arch, ...)`` with the space's ``proxy_build_options`` where
        it has them (the ``zen`` space: without residual links, as the Zen-NAS search scores).
        """
        model = build_for_scoring(space, arch, num_classes, input_shape)
        batch = random_batch(rng, batch_size, input_shape, num_classes)
        return float(self.score(model, batch, rng))


def build_for_scoring(space: Any, arch: Any, num_classes: int, input_shape: Tuple[int, int, int]) -> Any:
    """``space.build(arch, ...)`` with the space's ``proxy_build_options`` where it has them: the
    network a proxy scores (Zen space: without residual links, as the Zen-NAS search scores;
    DARTS: without the training-only auxiliary head)."""
    options = dict(getattr(space, "proxy_build_options", None) or {})
    return space.build(arch, num_classes=num_classes, input_shape=input_shape, **options)


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


def clone_model_for_scoring(model: Any, dtype: Optional[str] = None) -> Any:
    """A copy of ``model`` with the same weights (optionally in another ``dtype``); ``model`` is untouched.

    Functional and sequential models are cloned by ``keras.models.clone_model``; a subclassed
    model (such as :class:`tfnas.spaces.darts_net.DartsNetwork`) is rebuilt from its
    ``get_config()`` and built on its input shape. With ``dtype`` (e.g. ``"float64"`` for
    synflow) every layer of the copy computes and stores its weights in that dtype.

    Raises:
        TypeError: for a subclassed model without a usable ``get_config``/``from_config`` or input shape.
    """
    import keras

    previous = keras.config.dtype_policy()
    if dtype is not None:
        keras.config.set_dtype_policy(dtype)
    try:
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
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    return clone


def get_proxy(name: str, **kwargs: Any) -> Proxy:
    """The registered proxy ``name`` built with ``kwargs`` (e.g. Incorporated weights)."""
    from tfnas.registry import PROXIES

    return PROXIES.get(name)(**kwargs)


def proxy_options(name: str, proxy_cfg: Any) -> Dict[str, Any]:
    """The constructor options of proxy ``name`` taken from a ``[proxy]`` section.

    ``incorporated_*``: ``zen_weight``, ``entropy_weight``; ``grad_norm``: ``reduction``
    (``[proxy] grad_norm``); every other proxy: none.
    """
    if name.startswith("incorporated"):
        return {"zen_weight": proxy_cfg.zen_weight, "entropy_weight": proxy_cfg.entropy_weight}
    if name == "grad_norm":
        return {"reduction": proxy_cfg.grad_norm}
    return {}


def proxy_from_config(name: str, cfg: Any) -> Proxy:
    """``get_proxy(name)`` with the options of ``cfg``'s ``[proxy]`` section (:func:`proxy_options`)."""
    return get_proxy(name, **proxy_options(name, cfg.proxy))
