"""Tests for tfnas/data/augment.py: each augmentation against what it promises."""

import numpy as np
import pytest
import tensorflow as tf

from tfnas.data import augment

SEED = tf.constant([3, 7], tf.int64)


def _ramp(h=8, w=8, c=3):
    """float32 [h, w, c] with distinct values everywhere."""
    return tf.reshape(tf.range(h * w * c, dtype=tf.float32) + 1.0, (h, w, c))


def test_split_seed_gives_distinct_keys():
    keys = augment.split_seed(SEED, 4).numpy()
    assert keys.shape == (4, 2)
    assert len({tuple(k) for k in keys}) == 4


def test_random_flip_flips_or_keeps_and_is_deterministic():
    image = _ramp()
    outcomes = set()
    for i in range(16):
        seed = tf.constant([i, 1], tf.int64)
        out = augment.random_flip(image, seed).numpy()
        np.testing.assert_array_equal(out, augment.random_flip(image, seed).numpy())
        if np.array_equal(out, image.numpy()):
            outcomes.add("kept")
        else:
            np.testing.assert_array_equal(out, image.numpy()[:, ::-1, :])
            outcomes.add("flipped")
    assert outcomes == {"kept", "flipped"}


def test_pad_crop_zero_pad_is_identity():
    image = _ramp()
    np.testing.assert_array_equal(augment.pad_crop(image, 0, SEED).numpy(), image.numpy())


@pytest.mark.parametrize("mode", ["zero", "reflect"])
def test_pad_crop_is_a_shifted_window(mode):
    image = _ramp()
    pad = 2
    padded = np.pad(image.numpy(), ((pad, pad), (pad, pad), (0, 0)), mode="constant" if mode == "zero" else "reflect")
    shifts = set()
    for i in range(12):
        out = augment.pad_crop(image, pad, tf.constant([i, 5], tf.int64), mode=mode).numpy()
        assert out.shape == (8, 8, 3)
        match = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(out, padded[dy : dy + 8, dx : dx + 8])
        ]
        assert match, "output is not a window of the padded image"
        shifts.add(match[0])
    assert len(shifts) > 1


def test_pad_crop_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        augment.pad_crop(_ramp(), 2, SEED, mode="wrap")


def test_cutout_at_zeroes_exactly_the_square_away_from_borders():
    image = tf.ones((16, 16, 3))
    out = augment.cutout_at(image, 4, tf.constant(8), tf.constant(7)).numpy()
    zero = out == 0
    assert zero.sum() == 4 * 4 * 3
    expected = np.zeros((16, 16, 3), bool)
    expected[6:10, 5:9, :] = True
    np.testing.assert_array_equal(zero, expected)


def test_cutout_at_clips_at_the_border():
    out = augment.cutout_at(tf.ones((16, 16, 3)), 6, tf.constant(0), tf.constant(15)).numpy()
    # rows [-3, 3) -> [0, 3); cols [12, 18) -> [12, 16)
    assert (out == 0).sum() == 3 * 4 * 3
    assert np.all(out[:3, 12:] == 0)


def test_cutout_random_centre_is_deterministic_and_bounded():
    image = tf.ones((16, 16, 3))
    a = augment.cutout(image, 4, SEED).numpy()
    b = augment.cutout(image, 4, SEED).numpy()
    np.testing.assert_array_equal(a, b)
    zeros = (a == 0).sum() // 3
    assert 4 <= zeros <= 16  # clipped squares are smaller, never larger
    masks = {augment.cutout(image, 4, tf.constant([i, 1], tf.int64)).numpy().tobytes() for i in range(8)}
    assert len(masks) > 1  # the centre moves with the seed


def test_sample_beta_mean_and_range():
    lam = augment.sample_beta(0.4, SEED, shape=(4000,)).numpy()
    assert lam.min() >= 0 and lam.max() <= 1
    assert abs(lam.mean() - 0.5) < 0.03
    # Beta(0.4, 0.4) is U-shaped: more mass near the ends than in the middle.
    assert np.mean((lam < 0.1) | (lam > 0.9)) > np.mean((lam > 0.4) & (lam < 0.6))


def test_mixup_labels_sum_to_one_and_match_images():
    batch = 6
    values = np.arange(1, batch + 1, dtype=np.float32) * 10.0
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (batch, 4, 4, 3)).copy())
    labels = tf.one_hot(tf.range(batch), batch)
    mixed_x, mixed_y = augment.mixup(images, labels, 1.0, SEED)
    mixed_x, mixed_y = mixed_x.numpy(), mixed_y.numpy()
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, atol=1e-6)
    # One lambda for the whole batch: recover it from a row whose partner is another example.
    for i in range(batch):
        expected = float(mixed_y[i] @ values)
        np.testing.assert_allclose(mixed_x[i], expected, rtol=1e-5)
        assert np.count_nonzero(mixed_y[i] > 1e-7) <= 2
    lams = {round(float(mixed_y[i, i]), 5) for i in range(batch) if mixed_y[i, i] < 1 - 1e-6}
    assert len(lams) == 1
    x2, y2 = augment.mixup(images, labels, 1.0, SEED)
    np.testing.assert_array_equal(x2.numpy(), mixed_x)


def test_mixup_alpha_zero_is_identity():
    images = tf.random.stateless_uniform((4, 2, 2, 3), SEED)
    labels = tf.one_hot([0, 1, 2, 3], 4)
    x, y = augment.mixup(images, labels, 0.0, SEED)
    np.testing.assert_array_equal(x.numpy(), images.numpy())
    np.testing.assert_array_equal(y.numpy(), labels.numpy())


def test_random_erasing_probability_zero_is_identity():
    image = _ramp(16, 16)
    np.testing.assert_array_equal(augment.random_erasing(image, 0.0, SEED).numpy(), image.numpy())


def test_random_erasing_probability_one_erases_a_bounded_rectangle():
    image = tf.fill((32, 32, 3), 100.0)  # noise N(0, 1) can never equal 100
    areas = []
    for i in range(20):
        out = augment.random_erasing(image, 1.0, tf.constant([i, 2], tf.int64)).numpy()
        changed = np.any(out != 100.0, axis=-1)
        rows = np.flatnonzero(changed.any(axis=1))
        cols = np.flatnonzero(changed.any(axis=0))
        assert rows.size and cols.size
        # the erased region is one full rectangle, all channels
        assert changed[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        assert changed.sum() == rows.size * cols.size
        areas.append(changed.sum() / (32 * 32))
    assert min(areas) >= 0.01 and max(areas) <= 0.36
    assert len(set(areas)) > 1


def test_random_erasing_rejects_bad_probability():
    with pytest.raises(ValueError, match="probability"):
        augment.random_erasing(_ramp(), 1.5, SEED)


def test_augmentations_run_inside_tf_function():
    @tf.function
    def run(image, seed):
        image = augment.random_flip(image, seed)
        image = augment.pad_crop(image, 2, seed)
        image = augment.cutout(image, 3, seed)
        return augment.random_erasing(image, 0.5, seed)

    out = run(_ramp(), SEED)
    assert out.shape == (8, 8, 3) and out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), run(_ramp(), SEED).numpy())


def _photo(h=32, w=24, seed=0):
    """uint8 [h, w, 3] random colours."""
    return tf.constant(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _torchvision_crop_areas(height, width, n, rng):
    """Area fractions of torchvision's RandomResizedCrop.get_params (defaults), drawn in numpy."""
    areas = []
    for _ in range(n):
        for _ in range(10):
            target = height * width * rng.uniform(0.08, 1.0)
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w, h = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                areas.append(w * h / (height * width))
                break
        else:
            areas.append(1.0)  # the fallback for an image whose aspect lies inside the range
    return np.array(areas)


def test_random_resized_crop_shape_range_and_determinism():
    image = _photo()
    out = augment.random_resized_crop(image, (20, 16), SEED)
    assert out.shape == (20, 16, 3) and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_array_equal(out.numpy(), augment.random_resized_crop(image, (20, 16), SEED).numpy())
    lanczos = augment.random_resized_crop(image, (20, 16), SEED, method="lanczos3").numpy()
    assert 0.0 <= lanczos.min() and lanczos.max() <= 1.0  # Lanczos overshoot is clipped
    others = {augment.random_resized_crop(image, (20, 16), tf.constant([i, 5], tf.int64)).numpy().tobytes()
              for i in range(6)}
    assert len(others) == 6


def test_random_resized_crop_of_the_whole_image_is_the_image():
    image = _photo(16, 16)
    out = augment.random_resized_crop(image, (16, 16), SEED, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(out.numpy(), image.numpy() / 255.0, atol=1e-6)


def test_random_resized_crop_window_follows_torchvision_distribution():
    @tf.function
    def windows(seeds):
        return tf.map_fn(lambda s: tf.stack(augment.random_resized_crop_window(64, 48, s)), seeds,
                         fn_output_signature=tf.int32)

    w = windows(augment.split_seed(SEED, 3000)).numpy()
    top, left, h, wd = w.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 64).all() and (left + wd <= 48).all()
    area = h * wd / (64 * 48)
    assert area.min() < 0.1 and area.max() > 0.95 and area.min() >= 0.07  # 8 % up to rounding
    assert 0.7 <= (wd / h).min() and (wd / h).max() <= 1.4  # 3/4 .. 4/3 up to rounding
    reference = _torchvision_crop_areas(64, 48, 20000, np.random.default_rng(0))
    np.testing.assert_allclose(np.quantile(area, [0.1, 0.25, 0.5, 0.75, 0.9]),
                               np.quantile(reference, [0.1, 0.25, 0.5, 0.75, 0.9]), atol=0.03)
    assert len(set(top)) > 20 and len(set(left)) > 20  # placed anywhere, not centred


def test_random_resized_crop_window_falls_back_to_the_central_crop():
    # scale 1 on a 64 x 16 image: every candidate is wider than the image; torchvision then
    # takes the full width and height round(16 / (3/4)) = 21, centred.
    window = augment.random_resized_crop_window(64, 16, SEED, scale=(1.0, 1.0))
    assert [int(v) for v in window] == [21, 0, 21, 16]
    with pytest.raises(ValueError, match="scale"):
        augment.random_resized_crop_window(8, 8, SEED, scale=(0.5, 0.1))


def test_color_jitter_off_is_identity_and_on_is_deterministic():
    image = _photo()
    assert augment.color_jitter(image, SEED) is image
    out = augment.color_jitter(image, SEED, 0.4, 0.4, 0.4, 0.1)
    assert out.shape == (32, 24, 3) and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_array_equal(out.numpy(), augment.color_jitter(image, SEED, 0.4, 0.4, 0.4, 0.1).numpy())
    others = {augment.color_jitter(image, tf.constant([i, 5], tf.int64), 0.4, 0.4, 0.4, 0.1).numpy().tobytes()
              for i in range(6)}
    assert len(others) == 6
    with pytest.raises(ValueError, match="hue"):
        augment.color_jitter(image, SEED, hue=0.6)


def test_color_jitter_parts_follow_torchvision_semantics():
    x = tf.random.stateless_uniform((8, 8, 3), SEED, 0.3, 0.6)  # nothing clips at factors 0.6..1.4
    factors, contrasts, saturations = [], [], []
    for i in range(20):
        seed = tf.constant([i, 9], tf.int64)
        bright = augment.color_jitter(x, seed, brightness=0.4).numpy()
        ratio = bright / x.numpy()
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)  # one multiplicative factor
        factors.append(ratio.flat[0])
        grey_mean = float(tf.reduce_mean(augment.grayscale(x)))
        contrast = augment.color_jitter(x, seed, contrast=0.4)
        assert float(tf.reduce_mean(augment.grayscale(contrast))) == pytest.approx(grey_mean, abs=1e-5)
        # contrast: c * x + (1 - c) * mean grey, one factor c; saturation: s * x + (1 - s) * grey(x) per pixel
        contrasts.append(_one_blend_factor(contrast.numpy(), x.numpy(), grey_mean))
        grey = augment.grayscale(x).numpy()
        saturated = augment.color_jitter(x, seed, saturation=0.4).numpy()
        saturations.append(_one_blend_factor(saturated, x.numpy(), grey))
    for drawn in (factors, contrasts, saturations):
        assert 0.6 <= min(drawn) < 0.8 and 1.2 < max(drawn) <= 1.4
    grey = augment.grayscale(x)  # saturation and hue leave grey images grey and unchanged
    np.testing.assert_allclose(augment.color_jitter(grey, SEED, saturation=0.4, hue=0.1).numpy(), grey.numpy(),
                               atol=1e-5)
    shifted = augment.color_jitter(x, SEED, hue=0.1).numpy()
    assert not np.allclose(shifted, x.numpy(), atol=1e-3)


def _one_blend_factor(out: np.ndarray, x: np.ndarray, towards) -> float:
    """The factor ``f`` of ``out = f * x + (1 - f) * towards``, checked to be one for every value."""
    away = x - towards
    ratio = ((out - towards) / np.where(np.abs(away) > 0.02, away, np.nan))
    ratio = ratio[np.isfinite(ratio)]
    assert ratio.size > 50
    np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-3, atol=1e-3)
    return float(np.median(ratio))


def test_random_grayscale():
    image = _photo()
    assert augment.random_grayscale(image, 0.0, SEED) is image
    out = augment.random_grayscale(image, 1.0, SEED).numpy()
    expected = (image.numpy() / 255.0) @ np.array(augment.LUMA)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], expected, atol=1e-5)
    grey = [np.allclose(augment.random_grayscale(image, 0.5, tf.constant([i, 3], tf.int64)).numpy()[..., 0],
                        expected, atol=1e-5) for i in range(16)]
    assert 0 < sum(grey) < 16
    with pytest.raises(ValueError, match="probability"):
        augment.random_grayscale(image, 1.5, SEED)


def test_random_low_resolution_keeps_only_the_coarse_content():
    image = _photo(32, 24)
    kept = augment.random_low_resolution(image, 0.0, SEED).numpy()
    np.testing.assert_allclose(kept, image.numpy() / 255.0, atol=1e-6)  # off: the image, as float
    flat = tf.fill((32, 24, 3), tf.constant(77, tf.uint8))
    np.testing.assert_allclose(augment.random_low_resolution(flat, 1.0, SEED).numpy(), 77 / 255.0, atol=1e-4)
    detail = []
    for i in range(24):
        out = augment.random_low_resolution(image, 1.0, tf.constant([i, 5], tf.int64))
        assert out.shape == (32, 24, 3) and out.dtype == tf.float32
        out = out.numpy()
        assert 0.0 <= out.min() and out.max() <= 1.0
        np.testing.assert_allclose(out.mean(), image.numpy().mean() / 255.0, atol=0.03)  # the mean colour stays
        detail.append(round(float(np.abs(np.diff(out, axis=1)).mean()), 3))  # fine detail is gone
    noise = float(np.abs(np.diff(image.numpy() / 255.0, axis=1)).mean())
    assert max(detail) < 0.5 * noise and len(set(detail)) == 3  # the three factors, all drawn
    again = augment.random_low_resolution(image, 1.0, tf.constant([3, 5], tf.int64)).numpy()
    np.testing.assert_array_equal(again, augment.random_low_resolution(image, 1.0, tf.constant([3, 5], tf.int64)))
    applied = [not np.allclose(augment.random_low_resolution(image, 0.45, tf.constant([i, 9], tf.int64)).numpy(),
                               image.numpy() / 255.0, atol=1e-6) for i in range(40)]
    assert 5 < sum(applied) < 35
    with pytest.raises(ValueError, match="probability"):
        augment.random_low_resolution(image, 1.5, SEED)


def test_image_folder_augmentations_run_inside_tf_function():
    @tf.function
    def run(image, seed):
        seeds = augment.split_seed(seed, 3)
        image = augment.color_jitter(image, seeds[0], 0.4, 0.4, 0.4, 0.1)
        image = augment.random_grayscale(image, 0.2, seeds[1])
        return augment.random_resized_crop(image, (16, 16), seeds[2], method="lanczos3")

    out = run(_photo(), SEED)
    assert out.shape == (16, 16, 3) and out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), run(_photo(), SEED).numpy())
