"""Tests of the Zen-NAS Keras MasterNet builder and its squeeze-excite layer (tfnas.spaces.zen.network)."""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.spaces.archs import ZEN_MIXED as MIXED
from tests.testing import run_layer_test
from tfnas.spaces.zen import ZenSpace
from tfnas.spaces.zen import ZenSqueezeExcite


@pytest.fixture(scope="module")
def space() -> ZenSpace:
    return ZenSpace()


def test_builder_structure_and_init(space):
    arch = space.decode(MIXED)
    model = space.build(arch, num_classes=5, input_shape=(15, 15, 3), seed=1)
    assert model.get_layer("global_pool").input.shape[1:] == (2, 2, 48)  # 15 -> 8 -> 4 -> 2
    gamma = model.get_layer("b1_u0_bn2").gamma.numpy()
    assert np.all(gamma == 0) and np.all(model.get_layer("b1_u0_bn0").gamma.numpy() == 1)
    bn = model.get_layer("b0_u0_bn0")
    assert (bn.epsilon, bn.momentum) == (1e-3, 0.99)
    assert model.get_layer("b1_u0_proj").use_bias and model.get_layer("b1_u1_proj").use_bias
    kernel = model.get_layer("b2_u0_conv1").kernel.numpy()  # 7x7, 8 -> 8: std 3.26033 * sqrt(2 / (2 * 392))
    assert kernel.std() == pytest.approx(3.26033 * math.sqrt(2 / 784), rel=0.1)
    plain = space.build(arch, num_classes=5, input_shape=(15, 15, 3), residual=False)
    names = [layer.name for layer in plain.layers]
    assert not any(n.endswith(("_add", "_proj")) for n in names)
    assert np.all(plain.get_layer("b1_u0_bn2").gamma.numpy() == 1)
    with pytest.raises(ValueError, match="takes 3 channels"):
        space.build(arch, input_shape=(16, 16, 1))
    with pytest.raises(TypeError, match="unexpected keyword"):
        space.build(arch, width=2)


def test_builder_options_and_saving(space, tmp_path):
    from tfnas.train.export import export_saved_model

    arch = space.decode("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,16,2,8,1)SuperConvK1BNRELU(16,16,1,1)")
    model = space.build(arch, num_classes=3, input_shape=(8, 8, 3), se=True, drop_path_rate=0.1, seed=3)
    names = [layer.name for layer in model.layers]
    assert "b1_u0_se" in names and "b1_u1_drop" in names
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    expected = model(x, training=False).numpy()
    path = os.path.join(tmp_path, "zen.keras")
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x, training=False).numpy(), expected, atol=1e-5)
    served = tf.saved_model.load(export_saved_model(model, os.path.join(tmp_path, "saved")))
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), expected, atol=1e-5)


def test_squeeze_excite_layer_contract():
    layer = run_layer_test(ZenSqueezeExcite, {"ratio": 0.25}, (2, 4, 4, 8), expected_output_shape=(2, 4, 4, 8),
                           expected_num_trainable_weights=6, expected_num_non_trainable_weights=4)
    assert layer.reduce.filters == 2
    with pytest.raises(ValueError, match="ratio"):
        ZenSqueezeExcite(ratio=0.0)
