"""Representative images for int8 post-training quantization (TFLite calibration).

:func:`calibration_images` takes what ``tools/export.py --calibration`` names:

- a registered dataset (``cifar10``, ``cifar100``, ``imagenet16-120``, ``imagenet2012``): its
  training split through :func:`tfnas.data.load_dataset`;
- an image folder (``root/train/<class>/*.jpg|png``): the ``image_folder`` dataset's training split;
- nothing: a clearly labelled **synthetic** set of seeded standard-normal images, with a
  :class:`SyntheticCalibrationWarning` (activation ranges calibrated on noise, so int8 accuracy
  will suffer).

Real images are resized to the network's input, shuffled (seeded, over the first
:data:`SHUFFLE_BUFFER` examples) and normalised exactly as the evaluation pipeline does
(:func:`tfnas.data.make_pipeline` with ``training=False``: ``(x / 255 - mean) / std`` with the
dataset's statistics, no augmentation), so the calibrated ranges are those the model sees at
test time.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Optional, Sequence

import numpy as np

from tfnas.checks import check_image_shape, positive_int

__all__ = [
    "DEFAULT_CALIBRATION_IMAGES",
    "Calibration",
    "SyntheticCalibrationWarning",
    "calibration_images",
    "check_calibration_source",
]

DEFAULT_CALIBRATION_IMAGES = 100
SHUFFLE_BUFFER = 1024


class SyntheticCalibrationWarning(UserWarning):
    """int8 calibration ran on synthetic (random) images: expect an accuracy drop."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Representative images and where they came from.

    Attributes:
        images: float32 ``(N, H, W, C)``, normalised as the evaluation pipeline normalises.
        source: a human-readable description, e.g. ``"cifar10 train split, 100 images"`` or
            ``"SYNTHETIC: 100 seeded standard-normal images"``.
        synthetic: whether the images are random noise rather than data.
    """

    images: np.ndarray
    source: str
    synthetic: bool


def check_calibration_source(source: Optional[str]) -> str:
    """Which kind of source ``source`` is: ``"synthetic"`` (empty), ``"dataset"`` (a registered
    dataset name) or ``"folder"`` (an existing directory with a ``train/`` folder).

    Raises:
        ValueError: ``source`` is neither a registered dataset nor an existing folder, or the
            folder has no ``train/``.
    """
    from tfnas.registry import DATASETS

    if not source:
        return "synthetic"
    if source != "image_folder" and source in DATASETS:
        return "dataset"
    if os.path.isdir(source):
        if not os.path.isdir(os.path.join(source, "train")):
            raise ValueError(f"calibration folder {source} has no train/ folder; expected "
                             f"{os.path.join(source, 'train', '<class>', '*.jpg|png')} (calibration uses the "
                             f"training images)")
        return "folder"
    datasets = ", ".join(n for n in DATASETS.names() if n != "image_folder")
    raise ValueError(f"calibration source {source!r} is neither a registered dataset ({datasets}) nor an "
                     f"existing image folder (root/train/<class>/*)")


def calibration_images(
    source: Optional[str],
    input_shape: Sequence[int],
    num_images: int = DEFAULT_CALIBRATION_IMAGES,
    seed: int = 0,
    download: str = "auto",
    data_dir: str = "",
    manual_dir: str = "",
) -> Calibration:
    """Representative images for int8 calibration (see the module docstring).

    Args:
        source: registered dataset name, image-folder root, or ``None``/``""`` for synthetic images.
        input_shape: ``(H, W, 3)`` of the network input; images are resized to it.
        num_images: how many images (a smaller dataset gives all it has).
        seed: seed of the shuffle or of the synthetic images.
        download: tfds download mode for a dataset source (see :func:`tfnas.data.load_dataset`).
        data_dir, manual_dir: tfds data and manual dirs of a dataset source (empty = tfds defaults),
            e.g. those of the run whose training split calibrates.

    Raises:
        ValueError: a bad ``source`` or shape.
        tfnas.data.DatasetNotFoundError: the dataset is not on disk and was not downloaded.
        tfnas.data.DatasetFormatError: the folder does not hold ``train/<class>/*`` images.
    """
    kind = check_calibration_source(source)
    shape = check_image_shape(input_shape, message="input_shape must be (H, W, 3) with positive ints; got {value!r}")
    num_images = positive_int(num_images, "num_images", "calibration_images")
    if kind == "synthetic":
        warnings.warn(
            f"int8 calibration without data: using {num_images} SYNTHETIC seeded standard-normal images; "
            "the quantization ranges will not match real images and accuracy will suffer "
            "(pass a dataset name or an image folder as the calibration source)",
            SyntheticCalibrationWarning, stacklevel=2)
        rng = np.random.default_rng(seed)
        images = rng.standard_normal((num_images,) + shape).astype(np.float32)
        return Calibration(images, f"SYNTHETIC: {num_images} seeded standard-normal images (seed {seed})", True)
    if shape[0] != shape[1] or shape[2] != 3:
        raise ValueError(f"calibration from a dataset needs square RGB inputs (S, S, 3); got {shape}")
    from tfnas.data import load_dataset, make_pipeline

    if kind == "folder":
        name, data_dir, manual_dir = "image_folder", source, ""
    else:
        name = source
    ds, info = load_dataset(name, split="train", data_dir=data_dir, manual_dir=manual_dir, download=download,
                            image_size=shape[0])
    ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=False).take(num_images)
    ds = make_pipeline(ds, batch_size=num_images, training=False, num_classes=max(info.num_classes, 1),
                       mean=info.mean, std=info.std)
    images = np.concatenate([batch.numpy() for batch, _ in ds], axis=0).astype(np.float32)
    where = f"{source} train split" if kind == "dataset" else f"image folder {source} (train/)"
    return Calibration(images, f"{where}, {len(images)} images", False)
