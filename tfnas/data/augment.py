"""Data augmentation as pure TensorFlow functions, usable inside ``tf.data`` graphs.

Every random function takes an explicit ``seed``: an int32/int64 tensor of shape ``[2]`` (a
stateless-RNG key, e.g. a row of ``tf.random.experimental.stateless_split``). The same image
and seed always give the same output; nothing reads global RNG state.

Per-example functions take one image ``[H, W, C]`` (float or uint8 unless stated);
:func:`mixup` takes a batch. Order used by :func:`tfnas.data.make_pipeline`: colour jitter,
random greyscale, flip, random-resized crop and pad-crop on pixels (the first four in the
order of the SLNAS image-folder recipe, torchvision's ``ColorJitter``, ``RandomGrayscale``,
``RandomHorizontalFlip``, ``RandomResizedCrop``), then normalisation, then cutout and random
erasing (so "zero" and the erasing noise are in normalised space, as in DARTS and Zhong et
al.), then mixup on batches.
"""

from __future__ import annotations

import math
from typing import Callable, List, Tuple, Union

import tensorflow as tf

Seed = Union[tf.Tensor, Tuple[int, int]]
PAD_MODES = {"zero": "CONSTANT", "reflect": "REFLECT"}
# ITU-R 601-2 luma, as PIL's ``convert("L")`` and torchvision's ``rgb_to_grayscale``.
LUMA = (0.299, 0.587, 0.114)


def split_seed(seed: Seed, num: int) -> tf.Tensor:
    """``num`` independent stateless keys derived from ``seed``: int ``[num, 2]``."""
    return tf.random.experimental.stateless_split(tf.convert_to_tensor(seed, tf.int64), num)


def to_unit_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 ``image`` -> float32 in ``[0, 1]`` (``/ 255``); float images are cast to float32."""
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def random_flip(image: tf.Tensor, seed: Seed) -> tf.Tensor:
    """Flips ``image`` ``[H, W, C]`` left-right with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def pad_crop(image: tf.Tensor, pad: int, seed: Seed, mode: str = "zero") -> tf.Tensor:
    """Pads ``pad`` pixels on every side, then crops a random window of the original size.

    The CIFAR recipe of He et al. 2016 (Sec. 4.2) and DARTS/NAS-Bench-201 (``RandomCrop(32,
    padding=4)``) pads with zeros (``mode="zero"``); ``mode="reflect"`` mirrors the border
    instead (without repeating the edge pixel) and needs ``pad < min(H, W)``.

    Args:
      image: ``[H, W, C]``.
      pad: margin in pixels (>= 0); 0 returns ``image`` unchanged.
      seed: stateless key ``[2]``.
      mode: ``"zero"`` or ``"reflect"``.

    Returns:
      ``[H, W, C]``, same dtype.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad_crop mode must be one of {', '.join(PAD_MODES)}; received mode={mode!r}")
    if pad < 0:
        raise ValueError(f"pad_crop pad must be >= 0; received pad={pad}")
    if pad == 0:
        return image
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode=PAD_MODES[mode])
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed)


def cutout_at(image: tf.Tensor, size: int, center_y: tf.Tensor, center_x: tf.Tensor) -> tf.Tensor:
    """Zeroes the ``size x size`` square with rows ``[cy - size//2, cy - size//2 + size)``
    (columns likewise), clipped at the image borders.

    Args:
      image: ``[H, W, C]``.
      size: side of the square in pixels (>= 0; 0 returns ``image`` unchanged).
      center_y, center_x: int scalars, the square's centre (may lie anywhere in the image).

    Returns:
      ``[H, W, C]``, same dtype, with all channels of the square set to 0.
    """
    if size <= 0:
        return image
    shape = tf.shape(image)
    top = tf.cast(center_y, tf.int32) - size // 2
    left = tf.cast(center_x, tf.int32) - size // 2
    rows = tf.range(shape[0])
    cols = tf.range(shape[1])
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    mask = in_rows[:, None] & in_cols[None, :]
    return tf.where(mask[:, :, None], tf.zeros_like(image), image)


def cutout(image: tf.Tensor, size: int, seed: Seed) -> tf.Tensor:
    """Cutout (DeVries & Taylor 2017): zeroes a ``size x size`` square at a uniformly random
    centre in the image, clipped at the borders (see :func:`cutout_at`)."""
    if size <= 0:
        return image
    shape = tf.shape(image)
    center = tf.random.stateless_uniform(
        [2], seed, minval=0, maxval=tf.int32.max, dtype=tf.int32
    ) % shape[:2]
    return cutout_at(image, size, center[0], center[1])


def sample_beta(alpha: float, seed: Seed, shape: Tuple[int, ...] = ()) -> tf.Tensor:
    """Draws Beta(alpha, alpha) as ``g1 / (g1 + g2)`` with ``g1, g2 ~ Gamma(alpha, 1)``.

    Returns float32 of ``shape`` in ``[0, 1]``; 0.5 where both gammas underflow to 0 (tiny alpha).
    """
    if alpha <= 0:
        raise ValueError(f"sample_beta alpha must be > 0; received alpha={alpha}")
    seeds = split_seed(seed, 2)
    g1 = tf.random.stateless_gamma(shape, seeds[0], alpha, dtype=tf.float32)
    g2 = tf.random.stateless_gamma(shape, seeds[1], alpha, dtype=tf.float32)
    total = g1 + g2
    return tf.where(total > 0, g1 / tf.maximum(total, 1e-30), tf.fill(shape, 0.5))


def mix_batch(
    images: tf.Tensor, labels: tf.Tensor, lam: tf.Tensor, perm: tf.Tensor
) -> Tuple[tf.Tensor, tf.Tensor]:
    """``lam * x + (1 - lam) * x[perm]`` for images and labels alike.

    Args:
      images: float ``[B, H, W, C]``.
      labels: float ``[B, K]`` (one-hot or already soft).
      lam: float scalar in ``[0, 1]``.
      perm: int ``[B]``, a permutation of the batch.

    Returns:
      ``(images [B, H, W, C], labels [B, K])``; each label row still sums to the same total.
    """
    lam_x = tf.cast(lam, images.dtype)
    lam_y = tf.cast(lam, labels.dtype)
    mixed_x = lam_x * images + (1 - lam_x) * tf.gather(images, perm)
    mixed_y = lam_y * labels + (1 - lam_y) * tf.gather(labels, perm)
    return mixed_x, mixed_y


def mixup(
    images: tf.Tensor, labels: tf.Tensor, alpha: float, seed: Seed
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Mixup (Zhang et al. 2018, Eq. 1): one ``lam ~ Beta(alpha, alpha)`` per batch; every
    example is mixed with a partner from a random permutation of the same batch.

    Args:
      images: float ``[B, H, W, C]``.
      labels: float ``[B, K]``.
      alpha: Beta parameter; ``alpha <= 0`` returns the inputs unchanged.
      seed: stateless key ``[2]``.

    Returns:
      ``(images, labels)`` with the shapes and dtypes of the inputs.
    """
    if alpha <= 0:
        return images, labels
    seeds = split_seed(seed, 2)
    lam = sample_beta(alpha, seeds[0])
    keys = tf.random.stateless_uniform(tf.shape(images)[:1], seeds[1])
    perm = tf.argsort(keys)
    return mix_batch(images, labels, lam, perm)


def random_erasing(
    image: tf.Tensor,
    probability: float,
    seed: Seed,
    area_range: Tuple[float, float] = (0.02, 0.33),
    aspect_range: Tuple[float, float] = (0.3, 3.3),
    attempts: int = 10,
) -> tf.Tensor:
    """Random erasing (Zhong et al. 2020, Alg. 1) of one normalised image.

    With probability ``probability`` a rectangle of area ``s * H * W`` (``s ~ U(area_range)``)
    and aspect ``h / w = r`` (``log r ~ U(log aspect_range)``) is placed uniformly at random
    and filled with standard-normal values. Up to ``attempts`` candidates are drawn at once
    and the first that fits is used; if none fits the image is left unchanged.

    Args:
      image: float ``[H, W, C]`` (already normalised, so N(0, 1) noise matches its scale).
      probability: in ``[0, 1]``; 0 returns ``image`` unchanged.
      seed: stateless key ``[2]``.
      area_range: ``(min, max)`` fraction of the image area.
      aspect_range: ``(min, max)`` of ``h / w``.
      attempts: candidates drawn per image.

    Returns:
      ``[H, W, C]``, same dtype.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"random_erasing probability must be in [0, 1]; received probability={probability}")
    if probability == 0.0:
        return image
    seeds = split_seed(seed, 5)
    shape = tf.shape(image)
    h_img = tf.cast(shape[0], tf.float32)
    w_img = tf.cast(shape[1], tf.float32)
    area = tf.random.stateless_uniform([attempts], seeds[0], *area_range) * h_img * w_img
    log_aspect = tf.random.stateless_uniform(
        [attempts], seeds[1], math.log(aspect_range[0]), math.log(aspect_range[1])
    )
    aspect = tf.exp(log_aspect)
    heights = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    widths = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (heights >= 1) & (widths >= 1) & (heights <= shape[0]) & (widths <= shape[1])
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    h = heights[first]
    w = widths[first]
    corner = tf.random.stateless_uniform([2], seeds[2])
    top = tf.cast(corner[0] * tf.cast(shape[0] - h + 1, tf.float32), tf.int32)
    left = tf.cast(corner[1] * tf.cast(shape[1] - w + 1, tf.float32), tf.int32)
    rows = tf.range(shape[0])
    cols = tf.range(shape[1])
    mask = ((rows >= top) & (rows < top + h))[:, None] & ((cols >= left) & (cols < left + w))[None, :]
    apply = (tf.random.stateless_uniform([], seeds[3]) < probability) & tf.reduce_any(fits)
    noise = tf.random.stateless_normal(shape, seeds[4], dtype=image.dtype)
    return tf.where(apply & mask[:, :, None], noise, image)


def random_resized_crop_window(
    height: tf.Tensor,
    width: tf.Tensor,
    seed: Seed,
    scale: Tuple[float, float] = (0.08, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The window of an Inception-style crop (Szegedy et al. 2015, Sec. 6), drawn exactly as
    torchvision's ``RandomResizedCrop.get_params``.

    Up to ``attempts`` candidates have area ``s * H * W`` (``s ~ U(scale)``) and aspect
    ``w / h = r`` (``log r ~ U(log ratio)``), with ``w = round(sqrt(s H W r))`` and
    ``h = round(sqrt(s H W / r))``; the first that fits is placed uniformly at random. When none
    fits, the fallback is torchvision's too: the central crop of the whole image, narrowed to
    the nearest aspect in ``ratio``. (``tf.image.sample_distorted_bounding_box`` draws the
    height and the aspect uniformly instead and falls back to the whole image, a different
    distribution, so it is not used.)

    Args:
      height, width: int scalars, the image size.
      seed: stateless key ``[2]``.
      scale: ``(min, max)`` fraction of the image area, ``0 < min <= max``.
      ratio: ``(min, max)`` of ``w / h``, ``0 < min <= max``.
      attempts: candidates drawn per image (torchvision: 10).

    Returns:
      int32 scalars ``(top, left, crop_height, crop_width)``; the window lies inside the image.
    """
    if not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"random_resized_crop needs 0 < min <= max; received scale={scale}, ratio={ratio}")
    seeds = split_seed(seed, 3)
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    h_img = tf.cast(height, tf.float32)
    w_img = tf.cast(width, tf.float32)
    area = tf.random.stateless_uniform([attempts], seeds[0], scale[0], scale[1]) * h_img * w_img
    aspect = tf.exp(tf.random.stateless_uniform([attempts], seeds[1], math.log(ratio[0]), math.log(ratio[1])))
    widths = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    heights = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    in_ratio = w_img / h_img
    fallback_h = tf.where(
        in_ratio < ratio[0], tf.cast(tf.round(w_img / ratio[0]), tf.int32), height
    )
    fallback_w = tf.where(
        in_ratio > ratio[1], tf.cast(tf.round(h_img * ratio[1]), tf.int32), width
    )
    found = tf.reduce_any(fits)
    crop_h = tf.where(found, heights[first], fallback_h)
    crop_w = tf.where(found, widths[first], fallback_w)
    corner = tf.random.stateless_uniform([2], seeds[2])
    top = tf.where(
        found, tf.cast(corner[0] * tf.cast(height - crop_h + 1, tf.float32), tf.int32), (height - crop_h) // 2
    )
    left = tf.where(
        found, tf.cast(corner[1] * tf.cast(width - crop_w + 1, tf.float32), tf.int32), (width - crop_w) // 2
    )
    return tf.minimum(top, height - crop_h), tf.minimum(left, width - crop_w), crop_h, crop_w


def random_resized_crop(
    image: tf.Tensor,
    size: Tuple[int, int],
    seed: Seed,
    scale: Tuple[float, float] = (0.08, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
    method: str = "bilinear",
) -> tf.Tensor:
    """Crops the window of :func:`random_resized_crop_window` and resizes it to ``size``.

    The resize is antialiased (``tf.image.resize(..., antialias=True)``), as PIL's resampling
    that torchvision uses; ``method="lanczos3"`` matches PIL's ``ANTIALIAS`` filter of the
    SLNAS recipe, ``"bilinear"`` torchvision's default.

    Args:
      image: ``[H, W, C]``, uint8 or float in ``[0, 1]``.
      size: output ``(height, width)`` in pixels.
      seed: stateless key ``[2]``.
      scale, ratio: see :func:`random_resized_crop_window`.
      method: a ``tf.image.resize`` method.

    Returns:
      float32 ``[size[0], size[1], C]`` in ``[0, 1]``.
    """
    image = to_unit_float(image)
    shape = tf.shape(image)
    top, left, crop_h, crop_w = random_resized_crop_window(shape[0], shape[1], seed, scale, ratio)
    crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([crop_h, crop_w, shape[2]]))
    resized = tf.image.resize(crop, size, method=method, antialias=True)
    return tf.ensure_shape(tf.clip_by_value(resized, 0.0, 1.0), (*size, image.shape[-1]))


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """RGB float ``[H, W, 3]`` -> its ITU-R 601-2 luma (:data:`LUMA`) repeated in 3 channels."""
    red, green, blue = tf.unstack(image, 3, axis=-1)
    luma = LUMA[0] * red + LUMA[1] * green + LUMA[2] * blue
    return tf.stack([luma, luma, luma], axis=-1)


def _blend(image: tf.Tensor, other: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``factor * image + (1 - factor) * other``, clipped to ``[0, 1]`` (torchvision's ``_blend``)."""
    return tf.clip_by_value(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def color_jitter(
    image: tf.Tensor,
    seed: Seed,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
) -> tf.Tensor:
    """Colour jitter with the semantics of torchvision's ``ColorJitter`` (SLNAS: 0.4, 0.4, 0.4, 0.1).

    Factors ``b, c, s ~ U[max(0, 1 - x), 1 + x]`` for strengths ``x`` = ``brightness``,
    ``contrast``, ``saturation``, and a hue shift ``d ~ U[-hue, hue]``, applied in a random
    order, each clipped to ``[0, 1]``: brightness scales (``b * x``), contrast blends with the
    mean grey level of the image (``c * x + (1 - c) * mean(grey(x))``), saturation blends with
    the greyscale image, hue rotates the HSV hue by ``d`` turns (``tf.image.adjust_hue``).
    ``tf.image.stateless_random_brightness``/``_contrast``/``_saturation`` are not used: they
    add to brightness, contrast per channel and scale HSV saturation, which torchvision does not.

    Args:
      image: RGB ``[H, W, 3]``, uint8 or float in ``[0, 1]``.
      seed: stateless key ``[2]``.
      brightness, contrast, saturation: strengths (>= 0; 0 turns that part off).
      hue: hue strength in ``[0, 0.5]`` (0 = off).

    Returns:
      float32 ``[H, W, 3]`` in ``[0, 1]``; with every strength 0, ``image`` itself, unchanged.
    """
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError(
            f"color_jitter strengths must be >= 0 and hue <= 0.5; received brightness={brightness}, "
            f"contrast={contrast}, saturation={saturation}, hue={hue}"
        )
    if not (brightness or contrast or saturation or hue):
        return image
    image = to_unit_float(image)
    seeds = split_seed(seed, 5)

    def factor(strength: float, key: tf.Tensor) -> tf.Tensor:
        return tf.random.stateless_uniform([], key, max(0.0, 1.0 - strength), 1.0 + strength)

    ops: List[Callable[[tf.Tensor], tf.Tensor]] = []
    if brightness:
        b = factor(brightness, seeds[0])
        ops.append(lambda x: tf.clip_by_value(b * x, 0.0, 1.0))
    if contrast:
        c = factor(contrast, seeds[1])
        ops.append(lambda x: _blend(x, tf.reduce_mean(grayscale(x)), c))
    if saturation:
        s = factor(saturation, seeds[2])
        ops.append(lambda x: _blend(x, grayscale(x), s))
    if hue:
        d = tf.random.stateless_uniform([], seeds[3], -hue, hue)
        ops.append(lambda x: tf.image.adjust_hue(x, d))
    if len(ops) == 1:
        return ops[0](image)
    order = tf.argsort(tf.random.stateless_uniform([len(ops)], seeds[4]))
    for position in range(len(ops)):
        image = tf.switch_case(order[position], [lambda op=op, x=image: op(x) for op in ops])
    return image


def random_grayscale(image: tf.Tensor, probability: float, seed: Seed) -> tf.Tensor:
    """With probability ``probability``, :func:`grayscale` of ``image`` (torchvision's
    ``RandomGrayscale``; SLNAS: 0.2). ``image``: RGB ``[H, W, 3]``, uint8 or float in ``[0, 1]``.

    Returns float32 ``[H, W, 3]`` in ``[0, 1]``; ``probability = 0`` returns ``image`` unchanged.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"random_grayscale probability must be in [0, 1]; received probability={probability}")
    if probability == 0.0:
        return image
    image = to_unit_float(image)
    apply = tf.random.stateless_uniform([], seed) < probability
    return tf.where(apply, grayscale(image), image)


#: Side divisors of :func:`random_low_resolution`: the SLNAS image-folder recipe's 128, 64 and 32
#: pixels of its 256-pixel images.
LOW_RESOLUTION_FACTORS = (2, 4, 8)


def random_low_resolution(image: tf.Tensor, probability: float, seed: Seed,
                          factors: Tuple[int, ...] = LOW_RESOLUTION_FACTORS, method: str = "lanczos3") -> tf.Tensor:
    """With probability ``probability``, ``image`` downscaled by a factor drawn uniformly from
    ``factors`` and scaled back to its size, both antialiased (``method="lanczos3"`` is PIL's
    ``ANTIALIAS``): the SLNAS recipe's random multi-resolution training images (a ``RandomChoice``
    of resizes to 256/128/64/32 pixels with weights 0.55/0.15/0.15/0.15 before the resize back to
    256, i.e. probability 0.45).

    Args:
      image: ``[H, W, C]`` of static ``H, W``, uint8 or float in ``[0, 1]``.
      probability: chance of the low-resolution pass, in ``[0, 1]``.
      seed: stateless key ``[2]``.
      factors: side divisors to draw from (a low side is at least 1 pixel).
      method: a ``tf.image.resize`` method.

    Returns:
      float32 ``[H, W, C]`` in ``[0, 1]``.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"random_low_resolution probability must be in [0, 1]; received probability={probability}")
    if not factors or min(factors) < 1:
        raise ValueError(f"random_low_resolution factors must be integers >= 1; received factors={factors}")
    image = to_unit_float(image)
    height, width = image.shape[0], image.shape[1]
    if height is None or width is None:
        raise ValueError(f"random_low_resolution needs a static image size; received shape {image.shape}")
    draws = tf.random.stateless_uniform([2], seed)
    pick = tf.minimum(tf.cast(draws[1] * len(factors), tf.int32), len(factors) - 1)
    factor = tf.gather(tf.constant(factors, tf.float32), pick)

    def low() -> tf.Tensor:
        small = tf.maximum(tf.cast(tf.round(tf.constant([height, width], tf.float32) / factor), tf.int32), 1)
        down = tf.image.resize(image, small, method=method, antialias=True)
        return tf.clip_by_value(tf.image.resize(down, (height, width), method=method, antialias=True), 0.0, 1.0)

    return tf.ensure_shape(tf.cond(draws[0] < probability, low, lambda: image), image.shape)
