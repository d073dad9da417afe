"""Tests of naswot on Keras networks (tfnas.proxies.naswot)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.proxies.nb201_setup import CLASSES, SHAPE
from tests.spaces.archs import NB201_MIXED
from tfnas.proxies.naswot import activation_kernel, log_abs_det, relu_inputs


def test_naswot_kernel_counts_agreements():
    # Two ReLU inputs, three images. Codes of the first: [1,0], [1,1], [0,0].
    first = np.array([[0.5, -1.0], [2.0, 0.1], [-3.0, 0.0]])
    second = np.array([[1.0], [1.0], [-1.0]])
    kernel = activation_kernel([first, second])
    expected = np.array([[2, 1, 1], [1, 2, 0], [1, 0, 2]]) + np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(kernel, expected)
    assert log_abs_det(kernel) == pytest.approx(np.log(abs(np.linalg.det(expected))))
    assert log_abs_det(np.ones((2, 2))) == float("-inf")


def test_relu_inputs_finds_relus_inside_custom_layers(space):
    arch = space.decode(NB201_MIXED)  # 3 conv edges per cell, 1 cell per stage
    model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
    images = np.random.default_rng(0).standard_normal((2,) + SHAPE).astype(np.float32)
    found = relu_inputs(model, images)
    assert len(found) == 3 * 3 + 2 * 2 + 1  # cell convs + reduction conv_a/conv_b + head
    with pytest.raises(ValueError, match="applies no ReLU"):
        relu_inputs(keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(2)]), images)
