"""The Trainer's data contract: element specs and steps per epoch of ``tf.data`` datasets."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import tensorflow as tf


def check_element_spec(spec: Any) -> None:
    """Raises ``ValueError`` unless ``spec`` is ``(images [B,H,W,C], float labels [B,K])``."""
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(f"datasets must yield (images, labels) pairs; got element_spec={spec}")
    images, labels = spec
    if images.shape.rank != 4 or labels.shape.rank != 2:
        raise ValueError(
            f"expected images [B,H,W,3] and one-hot labels [B,C]; got {images.shape} and {labels.shape} "
            "(integer class labels need tf.one_hot)"
        )
    if not labels.dtype.is_floating:
        raise ValueError(f"labels must be float one-hot [B,C] (so mixup and smoothing compose); got {labels.dtype}")


def check_dataset(ds: Any, name: str, owner: str) -> None:
    """Raises ``TypeError`` unless ``ds`` is a ``tf.data.Dataset``, and :func:`check_element_spec`'s errors."""
    if not isinstance(ds, tf.data.Dataset):
        raise TypeError(f"{owner}: {name} must be a tf.data.Dataset of (images, one-hot labels) batches, e.g. "
                        f"tf.data.Dataset.from_tensor_slices((x, y)).batch(n); got {type(ds).__name__}")
    check_element_spec(ds.element_spec)


def check_label_width(spec: Any, model: Any) -> None:
    """Raises ``ValueError`` when the labels' one-hot width differs from the classes of the model's first output
    (a functional model's; a subclassed one is checked by its first step)."""
    width = spec[1].shape[-1]
    try:  # (a subclassed model has no symbolic outputs)
        outputs = model.outputs
        classes = outputs[0].shape[-1] if outputs else None
    except (AttributeError, IndexError, TypeError, ValueError):
        classes = None
    if width is not None and classes is not None and int(width) != int(classes):
        raise ValueError(f"the labels are one-hot over {width} classes but the model outputs {classes}; build the "
                         f"model for {width} classes, or one-hot the labels with depth {classes}")


def resolve_steps(ds: tf.data.Dataset, steps_per_epoch: Optional[int]) -> Tuple[int, bool]:
    """``(steps per epoch, whether ds repeats forever)``; ``steps_per_epoch`` wins when given.

    Raises:
        ValueError: for an empty dataset, or an infinite/unknown-length one without ``steps_per_epoch``.
    """
    card = int(ds.cardinality())
    infinite = card == int(tf.data.INFINITE_CARDINALITY)
    if steps_per_epoch is not None:
        return steps_per_epoch, infinite
    if infinite:
        raise ValueError("train_ds repeats forever: pass steps_per_epoch to the Trainer")
    if card == int(tf.data.UNKNOWN_CARDINALITY):
        raise ValueError(
            "train_ds has unknown cardinality: pass steps_per_epoch, or use "
            "ds.apply(tf.data.experimental.assert_cardinality(n))"
        )
    if card == 0:
        raise ValueError("train_ds is empty")
    return card, False
