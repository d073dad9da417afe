"""perf.train_step: the Trainer's train step timed on a tiny model (moved with the code from tfnas.train)."""

import keras
import pytest

from perf.train_step import benchmark_train_step


def tiny_model():
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


def test_benchmark_train_step_on_a_tiny_model():
    r = benchmark_train_step(tiny_model, batch_size=8, image_shape=(8, 8, 3), num_classes=2, steps=3, warmup_steps=1)
    assert r["steps_per_s"] > 0 and r["images_per_s"] == pytest.approx(8 * r["steps_per_s"])
    assert r["traces"] == 1 and r["jit_compile"] is False and r["num_replicas"] == 1


def test_benchmark_train_step_refuses_no_steps():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        benchmark_train_step(tiny_model, steps=0)
