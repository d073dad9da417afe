"""What every dataset source shares: :class:`DatasetInfo`, the :class:`DatasetSource` contract,
the errors, and the image resizing used when ``image_size`` is set.

A source is what ``register_dataset`` stores: a small object with ``num_classes``,
``image_shape`` and ``load(split, ...)``. :func:`tfnas.data.load_dataset` looks a source up by
name and calls it; nothing else in tfnas needs to know whether the images come from tfds or
from a folder.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

SPLITS = ("train", "eval")
DOWNLOAD_MODES = ("auto", "true", "false")

# Per-channel statistics of images scaled to [0, 1] (RGB order).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# NAS-Bench-201's ImageNet16-120 statistics (pixel means/stds 122.68, 116.66, 104.01 /
# 63.22, 61.26, 65.09 on the 0..255 scale).
IMAGENET16_MEAN = (122.68 / 255.0, 116.66 / 255.0, 104.01 / 255.0)
IMAGENET16_STD = (63.22 / 255.0, 61.26 / 255.0, 65.09 / 255.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DatasetNotFoundError(FileNotFoundError):
    """The data is not on disk and cannot (or may not) be downloaded; the message says how to get it.

    Attributes:
      reason: what is missing, without the remedies (which name config keys such as ``[dataset]
        manual_dir``): for tools that take the dataset another way (``tools/export.py --calibration``).
    """

    def __init__(self, message: str, *, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class DatasetFormatError(ValueError):
    """The data is on disk but not in the expected layout (e.g. an image folder without classes)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and a pipeline need to know about a dataset.

    Attributes:
      name: registered name (``cifar10``, ``imagenet16-120``, ...).
      num_classes: number of classes; labels are int64 in ``[0, num_classes)``.
      image_shape: ``(H, W, 3)`` of the images :func:`load_dataset` yields.
      mean: per-channel mean of images scaled to ``[0, 1]``, RGB order.
      std: per-channel standard deviation of images scaled to ``[0, 1]``, RGB order.
      class_names: class names in label order where known (image folders), else empty.
    """

    name: str
    num_classes: int
    image_shape: Tuple[int, int, int]
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    class_names: Tuple[str, ...] = ()


class DatasetSource(abc.ABC):
    """A registered dataset: static facts plus a loader.

    Attributes:
      name: the registered name.
      num_classes: number of classes, or 0 when only the data itself tells (image folders).
      image_shape: ``(H, W, 3)`` at native resolution, or ``None`` when images vary in size.
      mean, std: default normalisation statistics (see :class:`DatasetInfo`).
    """

    name: str = ""
    num_classes: int = 0
    image_shape: Optional[Tuple[int, int, int]] = None
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    @abc.abstractmethod
    def load(
        self,
        split: str,
        *,
        data_dir: str = "",
        manual_dir: str = "",
        download: str = "auto",
        image_size: int = 0,
    ) -> Tuple[tf.data.Dataset, DatasetInfo]:
        """Returns the whole split, unbatched, in a fixed order, and its :class:`DatasetInfo`.

        Args:
          split: ``"train"`` or ``"eval"`` (the test/validation split of the source).
          data_dir: where the data lives (tfds data dir or image-folder root); empty = default.
          manual_dir: tfds manual dir for datasets that cannot be downloaded (imagenet2012).
          download: ``"auto"``, ``"true"`` or ``"false"`` (see :func:`tfnas.data.load_dataset`).
          image_size: resize to ``image_size x image_size``; 0 keeps the native size.

        Returns:
          ``(ds, info)``: ``ds`` yields ``(image uint8 [H, W, 3], label int64 [])``.
        """


def check_split(split: str) -> None:
    """Raises ``ValueError`` unless ``split`` is ``"train"`` or ``"eval"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; received split={split!r}")


def check_download(download: str) -> None:
    """Raises ``ValueError`` unless ``download`` is ``"auto"``, ``"true"`` or ``"false"``."""
    if download not in DOWNLOAD_MODES:
        raise ValueError(
            f"download must be one of {', '.join(DOWNLOAD_MODES)}; received download={download!r}"
        )


def resize_and_crop(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Aspect-preserving resize so the image covers ``height x width``, then a central crop.

    An image that already has the target aspect ratio is only resized (nothing is cropped).
    Resizing is bilinear with antialiasing; the result is rounded back to uint8.

    Args:
      image: uint8 ``[H, W, 3]`` (any H, W >= 1).
      height, width: output size in pixels (>= 1).

    Returns:
      uint8 ``[height, width, 3]``.
    """
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = tf.maximum(float(height) / h, float(width) / w)
    new_h = tf.maximum(height, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(width, tf.cast(tf.round(w * scale), tf.int32))
    resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    top = (new_h - height) // 2
    left = (new_w - width) // 2
    cropped = tf.image.crop_to_bounding_box(resized, top, left, height, width)
    cropped = tf.ensure_shape(cropped, (height, width, 3))
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0.0, 255.0), tf.uint8)
