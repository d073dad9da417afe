"""The drop-path schedule hook: a tiny protocol between the Trainer and model layers.

A layer takes part in the drop-path schedule when it exposes either

* a method ``set_drop_path_rate(rate: float) -> None``, or
* an attribute ``drop_path_rate`` holding a ``tf.Variable`` or ``keras.Variable``
  (anything with ``assign``), read by the layer's ``call``.

Before each epoch the Trainer sets the rate to ``drop_path * epoch / epochs`` (``epoch``
0-based, as in DARTS' ``model.drop_path_prob``), ramped only during the first ``until``
fraction of the epochs and then held (:func:`drop_path_rate_for_epoch`). Implementations must
store the rate in a variable that ``call`` reads: a Python float would be baked into the
traced step and either be ignored or force a retrace every epoch.
"""

from __future__ import annotations

import math
from typing import Any, List

import keras


def _all_layers(model: keras.Model) -> List[Any]:
    """Every layer nested in ``model`` (itself included), each once."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=True, recursive=True))
    seen, out, stack = set(), [], [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        stack.extend(getattr(layer, "layers", []) or [])
    return out


def drop_path_layers(model: keras.Model) -> List[Any]:
    """The layers of ``model`` that follow the drop-path protocol (module docstring)."""
    found = []
    for layer in _all_layers(model):
        if callable(getattr(layer, "set_drop_path_rate", None)):
            found.append(layer)
        elif hasattr(getattr(layer, "drop_path_rate", None), "assign"):
            found.append(layer)
    return found


def set_drop_path_rate(layers: List[Any], rate: float) -> None:
    """Sets the drop-path rate of every protocol layer in ``layers`` to ``rate`` (in [0, 1))."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop-path rate must be in [0, 1). Received: rate={rate!r}")
    for layer in layers:
        setter = getattr(layer, "set_drop_path_rate", None)
        if callable(setter):
            setter(float(rate))
        else:
            layer.drop_path_rate.assign(float(rate))


def drop_path_rate_for_epoch(final_rate: float, epoch: int, epochs: int, until: float = 1.0) -> float:
    """The drop-path rate of 0-based ``epoch``: ``final_rate * e / epochs``, where ``e = epoch``
    while ``epoch < until * epochs`` and ``e`` is frozen at the last such epoch afterwards.

    ``until = 1`` (the default) is the plain linear ramp of DARTS, 0 in the first epoch. With
    ``until < 1`` the rate ramps only during the first ``until`` fraction of training and then
    stays at the rate of the last ramped epoch, ``final_rate * (ceil(until * epochs) - 1) /
    epochs`` (so it never reaches ``final_rate``); this is the SLNAS retraining recipe
    (``until = 0.7``), whose loop updates ``drop_prob`` only ``if epoch < epochs * 0.7`` and
    keeps the last value for the remaining epochs. ``until = 0`` ramps no epoch: the rate stays 0.

    Args:
      final_rate: the rate the linear ramp would reach at ``epoch = epochs``, in ``[0, 1)``.
      epoch: 0-based epoch index.
      epochs: total epochs of the training (values < 1 count as 1).
      until: fraction of the epochs during which the rate ramps, in ``[0, 1]``.

    Returns:
      The rate (float) to set before ``epoch``.
    """
    if not 0.0 <= until <= 1.0:
        raise ValueError(f"drop-path until must be in [0, 1]; received until={until!r}")
    epochs = max(epochs, 1)
    if until < 1.0 and not epoch < until * epochs:
        epoch = max(math.ceil(until * epochs) - 1, 0)
    return float(final_rate) * epoch / epochs
