"""Optimizers, coupled L2 weight decay, and the classification loss.

Weight decay here is the *coupled* L2 of SGD-era recipes (PyTorch ``weight_decay``, DARTS,
NAS-Bench-201): the gradient of ``wd / 2 * ||w||^2``, i.e. ``wd * w``, is added to the data
gradient of every decayed variable after its clipping and before the optimizer update (where a
PyTorch optimizer adds it, after ``clip_grad_norm_``), so momentum and the adaptive optimizers'
moments see it. It is not AdamW's decoupled decay.

Decayed variables are convolution and dense **kernels** only by default (``[train]
weight_decay_scope = kernels``; the Zen-NAS and SLNAS recipes): a variable is decayed when the
last component of its path (``keras.Variable.path``, e.g. ``"cell_0/conv/kernel"``; the
``tf.Variable`` name without ``":0"`` otherwise) ends with ``"kernel"`` and it has rank >= 2.
That matches ``Dense``/``Conv*``/``DepthwiseConv2D`` ``kernel`` and ``SeparableConv*``
``depthwise_kernel``/``pointwise_kernel``; BatchNorm ``gamma``/``beta``, biases, embeddings and
scalars are not decayed. ``weight_decay_scope = all`` decays every trainable variable, as a
PyTorch optimizer given ``model.parameters()`` does (the DARTS-style recipes of RelativeNAS and
the NAG reference's final training).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import keras
import tensorflow as tf

from tfnas.config import TrainConfig
from tfnas.train.adabelief import AdaBelief

Outputs = Union[tf.Tensor, Tuple[tf.Tensor, ...], List[tf.Tensor]]


def make_optimizer(cfg: TrainConfig, learning_rate: Any) -> keras.optimizers.Optimizer:
    """SGD (``momentum``, ``nesterov``), Adam or AdaBelief from ``cfg.optimizer``, without built-in decay.

    Args:
        cfg: the ``[train]`` section.
        learning_rate: a float or a ``LearningRateSchedule`` (see ``schedules.WarmupSchedule``).

    Raises:
        ValueError: for an optimizer name other than ``sgd``, ``adam`` or ``adabelief``.
    """
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if cfg.optimizer == "adabelief":
        return AdaBelief(learning_rate=learning_rate)
    raise ValueError("make_optimizer: `optimizer` must be 'sgd', 'adam' or 'adabelief'. "
                     f"Received: optimizer={cfg.optimizer!r}")


def variable_path(variable: Any) -> str:
    """The variable's path (``keras.Variable.path``) or its TF name without the ``:0`` suffix."""
    path = getattr(variable, "path", None) or variable.name
    return path.split(":")[0]


def is_decayed(variable: Any) -> bool:
    """True for conv/dense kernels: path ends with ``kernel`` and rank >= 2 (module docstring)."""
    leaf = variable_path(variable).rsplit("/", 1)[-1]
    return leaf.endswith("kernel") and len(variable.shape) >= 2


def decayed_variables(variables: Sequence[Any]) -> List[Any]:
    """The subset of ``variables`` that weight decay touches, in order."""
    return [v for v in variables if is_decayed(v)]


DECAY_SCOPES = ("kernels", "all")


def add_coupled_decay(
    grads: Sequence[Optional[tf.Tensor]], variables: Sequence[Any], weight_decay: float, scope: str = "kernels"
) -> List[Optional[tf.Tensor]]:
    """``g + weight_decay * w`` for decayed variables, ``g`` unchanged otherwise.

    ``scope``: ``kernels`` (:func:`is_decayed`) or ``all`` (every variable given). A decayed
    variable without a data gradient (``None``) gets the decay term alone.
    """
    if scope not in DECAY_SCOPES:
        raise ValueError(f"add_coupled_decay: `scope` must be one of {DECAY_SCOPES}. Received: scope={scope!r}")
    if weight_decay == 0.0:
        return list(grads)
    out: List[Optional[tf.Tensor]] = []
    for g, v in zip(grads, variables):
        if scope == "all" or is_decayed(v):
            term = tf.cast(weight_decay, v.dtype) * tf.convert_to_tensor(v)
            g = term if g is None else g + term
        out.append(g)
    return out


def split_outputs(outputs: Outputs) -> Tuple[tf.Tensor, Tuple[tf.Tensor, ...]]:
    """``(logits, aux)`` from a model output: a tensor (no auxiliary head), or ``(logits, aux_1, ...,
    aux_k)`` with one entry per auxiliary head (DARTS: one; the lite space: one per reduction cell
    but the last). ``aux`` is a tuple, empty without heads."""
    if isinstance(outputs, (tuple, list)):
        if not outputs:
            raise ValueError("A model must return logits or (logits, aux_1, ..., aux_k). Received no output.")
        return outputs[0], tuple(outputs[1:])
    return outputs, ()


def smoothed_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """Per-example cross-entropy of one-hot (or soft) ``labels`` [B, C] and ``logits`` [B, C] -> [B].

    Label smoothing (Szegedy et al. 2016, Inception-v3, sec. 7) mixes the target with the
    uniform distribution: ``t = (1 - ls) * y + ls / C``; the loss is ``-sum_c t_c log softmax(z)_c``.
    Computed in float32 whatever the logits' dtype.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.float32)
    if label_smoothing > 0.0:
        num_classes = tf.cast(tf.shape(labels)[-1], tf.float32)
        labels = labels * (1.0 - label_smoothing) + label_smoothing / num_classes
    return -tf.reduce_sum(labels * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def per_example_loss(
    labels: tf.Tensor, outputs: Outputs, label_smoothing: float = 0.0, aux_weight: float = 0.0
) -> tf.Tensor:
    """``CE(logits) + aux_weight * sum_k CE(aux_k)`` per example [B] (DARTS' auxiliary tower, SLNAS'
    heads after each reduction cell but the last).

    The auxiliary terms are added only when the model returns auxiliary outputs and ``aux_weight > 0``.
    With several heads this is the SLNAS spec's sum (its retraining); the SLNAS reference code
    instead weights head ``k`` by ``0.1 (k + 1)`` and takes the weighted mean, as tfnas' lite supernet
    does. The two agree for one head, the two-stage networks of the paper.
    """
    logits, aux = split_outputs(outputs)
    loss = smoothed_cross_entropy(labels, logits, label_smoothing)
    if aux_weight > 0.0:
        for head in aux:
            loss = loss + aux_weight * smoothed_cross_entropy(labels, head, label_smoothing)
    return loss


def correct_count(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Number (float32 scalar) of examples whose arg-max logit is the arg-max label."""
    hits = tf.equal(tf.argmax(logits, axis=-1), tf.argmax(labels, axis=-1))
    return tf.reduce_sum(tf.cast(hits, tf.float32))
