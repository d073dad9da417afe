"""The Zen score (Lin et al., Zen-NAS, ICCV 2021, https://arxiv.org/abs/2102.01063, Sec. 3).

At random initialisation (weights N(0, 1), BN in training mode with ``gamma = 1, beta = 0``,
Gaussian inputs ``x`` and noise ``eps``) and with ``f`` the pre-pooling feature map::

    Delta = mean_b sum_{h,w,c} |f(x) - f(x + gamma * eps)|          (gamma = 0.01)
    Zen   = log(Delta) + sum_{BN layers i} log(sqrt(mean_c sigma_{i,c}^2))

where ``sigma_{i,c}^2`` is the batch variance of channel ``c`` at the input of BN ``i`` on the
clean pass (the paper's formula, ``bn_variance="batch"``, the default; ``[proxy]
zen_bn_variance``). The reference code (``ZeroShotProxy/compute_zen_score.py``) instead reads
each BN's PyTorch ``running_var`` of a freshly built network (``running_var = 1``, momentum 0.1)
after the clean and then the perturbed training-mode pass: ``0.9 + 0.1 v(x)`` after the first,
``0.81 + 0.09 v(x) + 0.1 v(x + gamma eps)`` when it reads them (``bn_variance="running"``;
biased variances are used here, PyTorch's are unbiased, a factor ``n / (n - 1)`` with
``n = B H W``). Since ``v >> 1`` at N(0, 1) kernels the running form is about
``log sqrt(0.19)`` per BN below the batch form and ranks networks with more BNs lower.
Measured on 40 in-budget Zen-space candidates with the same kernels and inputs
(``tools/bench.py zen-fidelity``, ``perf/torch_reference.py --zen-values``; docs/RESULTS.md):
against the reference's values the running form has Spearman 1.000 (largest difference
0.014), the batch form Spearman 0.986 / Kendall 0.92 and scores 26.9 higher on average.

Higher is better. The Zen-NAS search scores the network with its residual links removed:
:meth:`ZenProxy.score_arch` does so for the ``zen`` space through its fast path
(:mod:`tfnas.proxies.fastpaths.zen`); on NAS-Bench-201 one traced arch-as-tensor function with
N(0, 1) kernels scores every cell in either form (:mod:`tfnas.proxies.fastpaths.nb201`);
:meth:`ZenProxy.score` scores any Keras network as it is.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple

import keras
import numpy as np

from tfnas.checks import check_rng, is_number
from tfnas.proxies.base import (Proxy, ProxyBatch, check_batch, clone_model_for_scoring, is_graph_model,
                                scored_network)
from tfnas.proxies.gradients import KERNEL_NAMES
from tfnas.registry import register_proxy

__all__ = [
    "PRE_POOL_HOOK",
    "ZenProxy",
    "check_zen_options",
    "zen_from_passes",
    "zen_score_keras",
]

#: Method a subclassed Keras model provides for :meth:`ZenProxy.score`:
#: ``model.pre_pool_features(images, training=...)`` returns the feature map its global pooling
#: averages (functional models need none: a sub-model ends at their pooling layer's input).
PRE_POOL_HOOK = "pre_pool_features"

_BN_VARIANCE = ("batch", "running")
_ZERO_NAMES = ("bias", "beta", "moving_mean")
_ONE_NAMES = ("gamma", "moving_variance")


def check_zen_options(perturbation: Any, bn_variance: Any) -> Tuple[float, str]:
    """``(perturbation, bn_variance)`` validated: a positive number and one of ``batch``, ``running``."""
    if not is_number(perturbation) or not perturbation > 0:
        raise ValueError(f"Zen: `perturbation` must be a positive number. Received: perturbation={perturbation!r}")
    if bn_variance not in _BN_VARIANCE:
        raise ValueError(f"Zen: `bn_variance` must be one of {', '.join(_BN_VARIANCE)}. "
                         f"Received: bn_variance={bn_variance!r}")
    return float(perturbation), bn_variance


def zen_from_passes(features: np.ndarray, perturbed_features: np.ndarray, variances: np.ndarray,
                    perturbed_variances: np.ndarray, bn_variance: str = "batch") -> float:
    """The Zen score from the two forward passes.

    Args:
        features, perturbed_features: pre-pooling features ``(B, H, W, C)`` of ``x`` and ``x + gamma eps``.
        variances, perturbed_variances: ``(num_bn,)`` channel-mean batch variance of each BN input per pass.
        bn_variance: ``"batch"`` (paper) or ``"running"`` (reference code), see the module docstring.

    Returns:
        ``log(Delta) + sum_i log sqrt(v_i)``; ``-inf`` when ``Delta`` or some ``v_i`` is 0.
    """
    f = np.asarray(features, dtype=np.float64)
    g = np.asarray(perturbed_features, dtype=np.float64)
    if f.shape != g.shape or f.ndim < 2:
        raise ValueError(f"feature maps must have the same (B, ...) shape; got {f.shape} and {g.shape}")
    delta = float(np.mean(np.sum(np.abs(f - g), axis=tuple(range(1, f.ndim)))))
    v = np.asarray(variances, dtype=np.float64)
    if bn_variance == "running":
        v = 0.81 + 0.09 * v + 0.1 * np.asarray(perturbed_variances, dtype=np.float64)
    elif bn_variance != "batch":
        raise ValueError(f"`bn_variance` must be one of {', '.join(_BN_VARIANCE)}. Received: {bn_variance!r}")
    if delta <= 0.0 or np.any(v <= 0.0):
        return float("-inf")
    return float(math.log(delta) + 0.5 * np.sum(np.log(v)))


# ---- any Keras network ----------------------------------------------------------------------


def _all_layers(model: keras.Model) -> List[Any]:
    """Every layer nested in ``model``, each once (Keras' own traversal where it exists)."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    seen, out, stack = set(), [], list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
            stack.extend(getattr(layer, "layers", []) or [])
    return out


def _scoring_clone(model: keras.Model, rng: Optional[np.random.Generator]) -> keras.Model:
    """A clone of ``model`` prepared for scoring; ``model`` itself is never touched.

    Weights are copied, or, with ``rng``, re-drawn: kernels N(0, 1), biases and BN ``beta`` /
    moving means 0, BN ``gamma`` / moving variances 1. BN momentum is set to 0 so that after
    a training-mode pass each BN's moving variance holds that pass's batch variance; dropout
    and drop-path rates are set to 0 (other stochastic layers are left as they are).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Zen scores a keras.Model; got {type(model).__name__}")
    clone = clone_model_for_scoring(scored_network(model))
    clone.trainable = True
    if rng is not None:
        for variable in clone.weights:
            leaf = variable.name.split("/")[-1]
            if leaf in KERNEL_NAMES:
                variable.assign(rng.standard_normal(tuple(variable.shape), dtype=np.float32))
            elif leaf in _ZERO_NAMES:
                variable.assign(np.zeros(tuple(variable.shape), np.float32))
            elif leaf in _ONE_NAMES:
                variable.assign(np.ones(tuple(variable.shape), np.float32))
    for layer in _all_layers(clone):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
        elif isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
        elif callable(getattr(layer, "set_drop_path_rate", None)):
            layer.set_drop_path_rate(0.0)
    return clone


def _pre_pool_features(clone: keras.Model) -> Callable[[np.ndarray], Any]:
    """``images -> features``, the feature map the clone's global average pooling reads, in a
    training-mode call.

    A functional or sequential model gets a sub-model ending at the input of its last
    GlobalAveragePooling2D layer; a subclassed model (DARTS) provides the features through its
    ``pre_pool_features(images, training)`` method (:data:`PRE_POOL_HOOK`).
    """
    if is_graph_model(clone):
        pools = [layer for layer in clone.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
        if not pools:
            raise ValueError(f"Zen needs the pre-pooling features: model {clone.name!r} has no "
                             "GlobalAveragePooling2D layer whose input they are")
        inputs = clone.inputs[0] if len(clone.inputs) == 1 else clone.inputs
        features_model = keras.Model(inputs, pools[-1].input, name=f"{clone.name}_pre_pool")
        return lambda images: features_model(images, training=True)
    hook = getattr(clone, PRE_POOL_HOOK, None)
    if not callable(hook):
        raise ValueError(f"Zen needs the pre-pooling features: the subclassed model {clone.name!r} has no "
                         f"`{PRE_POOL_HOOK}(images, training)` method that returns them")
    return lambda images: hook(images, training=True)


def _pass(features_model: Callable[[np.ndarray], Any], bns: List[Any],
          images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One training-mode pass: features and the channel-mean batch variance of each BN that ran."""
    for bn in bns:
        bn.moving_variance.assign(-np.ones(tuple(bn.moving_variance.shape), np.float32))  # "did not run" marker
    features = np.asarray(features_model(images))
    variances = []
    for bn in bns:
        v = np.asarray(bn.moving_variance)
        if not np.all(v == -1.0):
            variances.append(float(np.mean(v)))
    return features, np.asarray(variances)


def zen_score_keras(model: keras.Model, images: np.ndarray, noise: np.ndarray, perturbation: float = 0.01,
                    bn_variance: str = "batch", redraw_rng: Optional[np.random.Generator] = None) -> float:
    """Zen score of a Keras network (features: the input of its last GlobalAveragePooling2D).

    Scores a clone: with ``redraw_rng`` its weights are re-drawn as the Zen score prescribes,
    without it the model's own weights are used (e.g. kernels loaded for a parity check).
    BN layers that do not feed the features take no part.

    Args:
        model: a functional or sequential ``keras.Model``, or a subclassed one with the
            :data:`PRE_POOL_HOOK` method (left unchanged).
        images, noise: float32 ``(B, H, W, C)``.
        perturbation: ``gamma``.
        bn_variance: ``"batch"`` or ``"running"``.
        redraw_rng: generator for the N(0, 1) re-draw, or ``None`` to keep the weights.
    """
    perturbation, bn_variance = check_zen_options(perturbation, bn_variance)
    images = np.asarray(images, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if images.shape != noise.shape:
        raise ValueError(f"images and noise must have the same shape; got {images.shape} and {noise.shape}")
    clone = _scoring_clone(model, redraw_rng)
    features_model = _pre_pool_features(clone)
    bns = [layer for layer in _all_layers(clone) if isinstance(layer, keras.layers.BatchNormalization)]
    f_clean, v_clean = _pass(features_model, bns, images)
    f_pert, v_pert = _pass(features_model, bns, images + np.float32(perturbation) * noise)
    return zen_from_passes(f_clean, f_pert, v_clean, v_pert, bn_variance)


@register_proxy("zen")
class ZenProxy(Proxy):
    """The Zen score (module docstring); higher is better.

    Args:
        perturbation: ``gamma``, the scale of the input perturbation (paper: 0.01).
        bn_variance: ``"batch"`` (the paper's formula, default) or ``"running"`` (what the
            reference code reads; ``[proxy] zen_bn_variance``), see the module docstring.
        fresh_weights: NB201 fast path only: re-draw the kernels a cell uses for every cell
            (default: all cells share one N(0, 1) draw made from the first call's ``rng``, as
            the other proxies' NB201 fast paths do).
    """

    name = "zen"
    options = {"zen_bn_variance": "bn_variance"}

    def __init__(self, perturbation: float = 0.01, bn_variance: str = "batch", fresh_weights: bool = False):
        self.perturbation, self.bn_variance = check_zen_options(perturbation, bn_variance)
        if not isinstance(fresh_weights, bool):
            raise ValueError(f"Zen: `fresh_weights` must be a bool. Received: fresh_weights={fresh_weights!r}")
        self.fresh_weights = fresh_weights

    def score(self, model: Any, batch: ProxyBatch, rng: np.random.Generator) -> float:
        """Zen of ``model`` as it is built (residual links kept) at an N(0, 1) re-draw from ``rng``."""
        check_batch(batch, self.name, labels=False)
        check_rng(rng, f"{self.name}.score")
        images = np.asarray(batch.images, dtype=np.float32)
        clone_rng = np.random.default_rng(rng.integers(2 ** 63))
        noise = rng.standard_normal(images.shape, dtype=np.float32)
        return zen_score_keras(model, images, noise, self.perturbation, self.bn_variance, redraw_rng=clone_rng)
