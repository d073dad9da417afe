"""Datasets by name -> batched, augmented, normalised ``tf.data`` pipelines.

:func:`load_dataset` returns the raw split of a registered dataset; :func:`make_pipeline`
turns it into training or evaluation batches. Both take plain arguments; the run layer
(:func:`tfnas.run.factory.build_datasets`) unpacks ``[dataset]`` and ``[train]`` into them.

Determinism: one integer ``seed`` drives the shuffle, a per-example random stream and a
per-batch random stream (three independent keys derived with ``numpy.random.SeedSequence``).
Each example's augmentation draws from its own stateless key, so parallel ``map`` calls
cannot change the result: two pipelines built with the same seed yield the same batches,
epoch after epoch (each new pass over the dataset reshuffles and redraws, deterministically).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfnas.checks import check_int
from tfnas.data import augment
from tfnas.data.base import DatasetInfo, check_download, check_split
from tfnas.registry import DATASETS

logger = logging.getLogger(__name__)

DEFAULT_SHUFFLE_BUFFER = 10_000
# Resampling of the random-resized crop: PIL's ANTIALIAS (Lanczos) filter of the SLNAS recipe.
CROP_RESIZE_METHOD = "lanczos3"


def load_dataset(
    name: str,
    *,
    split: str,
    data_dir: str = "",
    manual_dir: str = "",
    download: str = "auto",
    subset: int = 0,
    image_size: int = 0,
) -> Tuple[tf.data.Dataset, DatasetInfo]:
    """One split of a registered dataset, unbatched and in a fixed order.

    Args:
      name: registered dataset (``cifar10``, ``cifar100``, ``imagenet16-120``,
        ``imagenet2012``, ``image_folder``).
      split: ``"train"`` or ``"eval"`` (the dataset's test/validation split).
      data_dir: tfds data dir (empty = tfds default) or the image-folder root.
      manual_dir: tfds manual dir (imagenet2012: the ILSVRC2012 tar files).
      download: ``"true"`` lets tfds download missing data; ``"false"`` never downloads;
        ``"auto"`` downloads only when ``TFNAS_OFFLINE`` is unset and the download host
        answers within ~3 s. Missing data that is not downloaded raises at once.
      subset: keep only the first ``subset`` examples (after class filtering); 0 keeps all.
      image_size: resize to ``image_size x image_size``; 0 keeps the native size (variable-size
        datasets then use their default: 224 for imagenet2012, the first image for folders).

    Returns:
      ``(ds, info)``: ``ds`` yields ``(image uint8 [H, W, 3], label int64 [])`` with
      ``(H, W, 3) == info.image_shape`` and labels in ``[0, info.num_classes)``.

    Raises:
      tfnas.registry.UnknownNameError: ``name`` is not registered.
      DatasetNotFoundError: the data is missing and was not downloaded (the message says how
        to get it).
      ValueError: a bad ``split``, ``download``, ``subset`` or ``image_size``.
    """
    check_split(split)
    check_download(download)
    if subset < 0:
        raise ValueError(f"subset must be >= 0 (0 = all); received subset={subset}")
    if image_size < 0:
        raise ValueError(f"image_size must be >= 0 (0 = native); received image_size={image_size}")
    source = DATASETS.get(name)
    ds, info = source.load(
        split, data_dir=data_dir, manual_dir=manual_dir, download=download, image_size=image_size
    )
    if subset:
        ds = ds.take(subset)
    return ds, info


def derive_seeds(seed: int, num: int) -> Tuple[int, ...]:
    """``num`` independent non-negative int32 seeds from one integer seed."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0; received seed={seed}")
    state = np.random.SeedSequence(seed).generate_state(num, dtype=np.uint32)
    return tuple(int(s) >> 1 for s in state)


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """``(image / 255 - mean) / std`` per channel for uint8 ``image``, or ``(image - mean) / std``
    for float ``image`` already in ``[0, 1]``. Returns float32 ``[..., 3]``."""
    if image.dtype == tf.uint8:
        image = tf.cast(image, tf.float32) / 255.0
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _static_size(ds: tf.data.Dataset) -> Tuple[int, int]:
    """The static ``(height, width)`` of the images of ``ds``; ValueError when not static."""
    shape = ds.element_spec[0].shape
    if shape.rank != 3 or shape[0] is None or shape[1] is None:
        raise ValueError(f"random_resized_crop and low_resolution need images of one static size [H, W, C]; "
                         f"received shape {shape} (set image_size when loading the dataset)")
    return int(shape[0]), int(shape[1])


def make_pipeline(
    ds: tf.data.Dataset,
    *,
    batch_size: int,
    training: bool,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = 0,
    color_jitter: float = 0.0,
    hue_jitter: float = 0.0,
    grayscale: float = 0.0,
    low_resolution: float = 0.0,
    flip: bool = False,
    random_resized_crop: bool = False,
    pad_crop: int = 0,
    pad_mode: str = "zero",
    cutout: int = 0,
    mixup_alpha: float = 0.0,
    random_erasing: float = 0.0,
    drop_remainder: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Shuffles (training), augments, normalises, one-hot encodes, batches and prefetches.

    Augmentations apply only when ``training`` is true, in this order: low resolution, colour
    jitter, random greyscale, flip, random-resized crop, pad-crop (on pixels), normalisation,
    cutout, random erasing (in normalised space), batching, mixup. The first five follow the
    order of the SLNAS image-folder recipe (its random multi-resolution resize, torchvision
    ``ColorJitter``, ``RandomGrayscale``, ``RandomHorizontalFlip``, ``RandomResizedCrop``; it
    resamples with Lanczos, :data:`CROP_RESIZE_METHOD`). Low resolution, colour jitter, greyscale
    and the random-resized crop draw from a per-example key of their own, so turning them on
    leaves the draws of the others unchanged.

    Args:
      ds: unbatched ``(image uint8 or float in [0, 1] [H, W, 3], label int [])``, e.g. from
        :func:`load_dataset`.
      batch_size: examples per batch (>= 1).
      training: shuffle and augment.
      num_classes: one-hot depth.
      mean, std: per-channel statistics of images in ``[0, 1]`` (``DatasetInfo.mean/std``).
      seed: root of every random draw of this pipeline (>= 0).
      color_jitter: brightness, contrast and saturation strength of
        :func:`tfnas.data.augment.color_jitter` (0 = off).
      hue_jitter: hue strength of the colour jitter, in ``[0, 0.5]`` (0 = off).
      grayscale: probability of a greyscale image (0 = off).
      low_resolution: probability of :func:`tfnas.data.augment.random_low_resolution` (the image
        down to 1/2, 1/4 or 1/8 of its side and back; 0 = off; needs a static image size).
      flip: random left-right flip.
      random_resized_crop: :func:`tfnas.data.augment.random_resized_crop` (area 8-100 %, aspect
        3/4-4/3) back to the images' size, which must be static (fixed-size datasets, or
        ``image_size`` set when loading).
      pad_crop: pad-and-random-crop margin in pixels (0 = off).
      pad_mode: ``"zero"`` or ``"reflect"`` padding for ``pad_crop``.
      cutout: cutout square side in pixels (0 = off).
      mixup_alpha: mixup Beta(alpha, alpha) parameter (0 = off).
      random_erasing: random-erasing probability (0 = off).
      drop_remainder: drop the last, smaller batch.
      shuffle_buffer: shuffle buffer size (training only; >= 1).

    Returns:
      A dataset of ``(images float32 [B, H, W, 3], labels float32 [B, num_classes])``; labels
      are one-hot (mixup makes them soft, each row still sums to 1).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received batch_size={batch_size}")
    if not isinstance(ds, tf.data.Dataset):
        raise TypeError(f"ds must be a tf.data.Dataset of (image, label) pairs, e.g. "
                        f"tf.data.Dataset.from_tensor_slices((images, labels)); got {type(ds).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; received num_classes={num_classes}")
    for name, value in (("pad_crop", pad_crop), ("cutout", cutout)):
        check_int(value, name, "make_pipeline", low=0)
    if not (math.isfinite(mixup_alpha) and mixup_alpha >= 0.0):
        raise ValueError(f"mixup_alpha must be a finite number >= 0 (0 = off); received mixup_alpha={mixup_alpha}")
    if not 0.0 <= random_erasing <= 1.0:
        raise ValueError(f"random_erasing must be a probability in [0, 1]; received random_erasing={random_erasing}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 channels and std > 0; received mean={mean}, std={std}")
    if training and shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be >= 1; received shuffle_buffer={shuffle_buffer}")
    if pad_mode not in augment.PAD_MODES:
        raise ValueError(f"pad_mode must be one of {', '.join(augment.PAD_MODES)}; received pad_mode={pad_mode!r}")
    static = _static_size(ds) if training and (random_resized_crop or low_resolution) else None
    crop_size = static if random_resized_crop else None
    if not (0.0 <= color_jitter and 0.0 <= hue_jitter <= 0.5 and 0.0 <= grayscale <= 1.0
            and 0.0 <= low_resolution <= 1.0):
        raise ValueError(f"need color_jitter >= 0, hue_jitter in [0, 0.5], grayscale and low_resolution in [0, 1]; "
                         f"received color_jitter={color_jitter}, hue_jitter={hue_jitter}, grayscale={grayscale}, "
                         f"low_resolution={low_resolution}")
    mean = tuple(float(m) for m in mean)
    std = tuple(float(s) for s in std)
    shuffle_seed, example_seed, batch_seed = derive_seeds(seed, 3)
    autotune = tf.data.AUTOTUNE

    def prepare(image: tf.Tensor, label: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        label = tf.cast(label, tf.int32)
        check = tf.debugging.assert_less(label, num_classes, message=f"a label is not below num_classes="
                                         f"{num_classes} (its one-hot row would be all zeros)")
        with tf.control_dependencies([check, tf.debugging.assert_non_negative(label, message="a label is negative")]):
            one_hot = tf.one_hot(label, num_classes, dtype=tf.float32)
        return normalize(image, mean, std), one_hot

    def prepare_augmented(
        example: Tuple[tf.Tensor, tf.Tensor], key: tf.Tensor
    ) -> Tuple[tf.Tensor, tf.Tensor]:
        image, label = example
        seeds = augment.split_seed(tf.stack([key, tf.constant(0, tf.int64)]), 4)
        more = augment.split_seed(tf.stack([key, tf.constant(2, tf.int64)]), 3)
        if low_resolution:
            image = augment.random_low_resolution(image, low_resolution, tf.stack([key, tf.constant(3, tf.int64)]),
                                                  method=CROP_RESIZE_METHOD)
        if color_jitter or hue_jitter:
            image = augment.color_jitter(image, more[0], color_jitter, color_jitter, color_jitter, hue_jitter)
        if grayscale:
            image = augment.random_grayscale(image, grayscale, more[1])
        if flip:
            image = augment.random_flip(image, seeds[0])
        if crop_size is not None:
            image = augment.random_resized_crop(image, crop_size, more[2], method=CROP_RESIZE_METHOD)
        if pad_crop:
            image = augment.pad_crop(image, pad_crop, seeds[1], mode=pad_mode)
        image, one_hot = prepare(image, label)
        if cutout:
            image = augment.cutout(image, cutout, seeds[2])
        if random_erasing:
            image = augment.random_erasing(image, random_erasing, seeds[3])
        return image, one_hot

    if training:
        ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
        keys = tf.data.Dataset.random(seed=example_seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, keys)).map(prepare_augmented, num_parallel_calls=autotune)
    else:
        ds = ds.map(prepare, num_parallel_calls=autotune)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=autotune)
    if training and mixup_alpha > 0:
        batch_keys = tf.data.Dataset.random(seed=batch_seed, rerandomize_each_iteration=True)

        def mix(batch: Tuple[tf.Tensor, tf.Tensor], key: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
            images, labels = batch
            return augment.mixup(images, labels, mixup_alpha, tf.stack([key, tf.constant(1, tf.int64)]))

        ds = tf.data.Dataset.zip((ds, batch_keys)).map(mix, num_parallel_calls=autotune)
    return ds.prefetch(autotune)
