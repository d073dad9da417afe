"""Layer-contract and formula tests for tfnas.spaces.ops.common (and the reload of every shared layer)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.testing import run_layer_test
from tfnas.spaces.ops import AvgPool3x3, DropPath, Identity, ReLUConvBN, ResidualReduction, Zero, mish


@pytest.mark.parametrize(
    "kwargs, in_shape, out_shape",
    [
        ({"filters": 6, "kernel_size": 3}, (2, 8, 8, 4), (2, 8, 8, 6)),
        ({"filters": 6, "kernel_size": 1}, (2, 8, 8, 4), (2, 8, 8, 6)),
        ({"filters": 6, "kernel_size": 3, "strides": 2}, (2, 8, 8, 4), (2, 4, 4, 6)),
        ({"filters": 6, "kernel_size": 3, "strides": 2}, (2, 7, 7, 4), (2, 4, 4, 6)),
        ({"filters": 4, "kernel_size": 3, "dilation": 2}, (2, 8, 8, 4), (2, 8, 8, 4)),
    ],
)
def test_relu_conv_bn_contract(kwargs, in_shape, out_shape):
    # conv kernel + BN gamma/beta trainable; BN moving mean/var not.
    run_layer_test(ReLUConvBN, kwargs, in_shape, out_shape, 3, 2)


def test_relu_conv_bn_non_affine_has_conv_bias_and_no_bn_params():
    kwargs = {"filters": 5, "kernel_size": 1, "affine": False}
    layer = run_layer_test(ReLUConvBN, kwargs, (2, 4, 4, 3), (2, 4, 4, 5), 2, 2)
    assert sorted(int(np.prod(w.shape)) for w in layer.trainable_weights) == [5, 15]


def test_relu_conv_bn_param_count_and_formula():
    layer = ReLUConvBN(8, 3)
    layer.build((None, 6, 6, 4))
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 9 * 4 * 8 + 2 * 8
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 4)).astype(np.float32)
    y = layer(x, training=False).numpy()
    kernel = layer.conv.kernel.numpy()
    relu = np.pad(np.maximum(x, 0), ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 6, 6, 8), np.float32)
    for i in range(6):
        for j in range(6):
            ref[:, i, j] = np.einsum("bhwc,hwcf->bf", relu[:, i : i + 3, j : j + 3], kernel)
    # Fresh BN at inference: (x - 0) / sqrt(1 + eps) * 1 + 0 with eps 1e-5 (PyTorch default).
    np.testing.assert_allclose(y, ref / np.sqrt(1 + 1e-5), rtol=1e-4, atol=1e-5)


def test_relu_conv_bn_stride2_pads_symmetrically_like_pytorch():
    layer = ReLUConvBN(1, 3, strides=2, kernel_initializer="ones")
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 2, 2, 0] = 1.0
    y = layer(x, training=False).numpy()[0, :, :, 0] * np.sqrt(1 + 1e-5)
    # PyTorch pads 1 on each side: the windows cover rows/cols -1..1 and 1..3, so only output
    # (1, 1) sees pixel (2, 2). TF "same" (pad 0 before, 1 after) would give windows 0..2 and
    # 2..4 and light all four outputs.
    np.testing.assert_allclose(y, [[0.0, 0.0], [0.0, 1.0]], atol=1e-6)


def test_relu_conv_bn_rejects_bad_args():
    with pytest.raises(ValueError, match="kernel_size"):
        ReLUConvBN(4, 2)
    with pytest.raises(ValueError, match="filters"):
        ReLUConvBN(0, 3)
    with pytest.raises(ValueError, match="strides=2, dilation=2"):
        ReLUConvBN(4, 3, strides=2, dilation=2)


def test_avg_pool_contract():
    run_layer_test(AvgPool3x3, {}, (2, 5, 5, 3), (2, 5, 5, 3), 0, 0)
    run_layer_test(AvgPool3x3, {"strides": 2}, (2, 6, 6, 3), (2, 3, 3, 3), 0, 0)


def test_avg_pool_excludes_padding():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = AvgPool3x3()(x).numpy()[0, :, :, 0]
    # corner (0,0): mean of x[0:2, 0:2] = (0 + 1 + 4 + 5) / 4 = 2.5 (padding counted would give 10/9)
    assert y[0, 0] == pytest.approx(2.5)
    # edge (0,1): mean of x[0:2, 0:3] = (0+1+2+4+5+6) / 6 = 3.0
    assert y[0, 1] == pytest.approx(3.0)
    # interior (1,1): mean of x[0:3, 0:3] = 45 / 9 = 5.0
    assert y[1, 1] == pytest.approx(5.0)
    # bottom-right corner: (10 + 11 + 14 + 15) / 4 = 12.5
    assert y[3, 3] == pytest.approx(12.5)
    # a constant map stays constant everywhere (the defining property of excluded padding)
    np.testing.assert_allclose(AvgPool3x3()(np.full((1, 3, 5, 2), 7.0, np.float32)).numpy(), 7.0, rtol=1e-6)


def test_zero_contract_and_values():
    run_layer_test(Zero, {}, (2, 4, 4, 3), (2, 4, 4, 3), 0, 0)
    run_layer_test(Zero, {"strides": 2}, (2, 5, 5, 3), (2, 3, 3, 3), 0, 0)
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    assert not np.any(Zero(strides=2)(x).numpy())


def test_identity_contract():
    layer = run_layer_test(Identity, {}, (2, 3, 3, 2), (2, 3, 3, 2), 0, 0)
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_drop_path_contract():
    # one non-trainable weight: the scheduled rate
    run_layer_test(DropPath, {"rate": 0.3, "seed": 3}, (4, 3, 3, 2), (4, 3, 3, 2), 0, 1)


def test_drop_path_follows_trainer_schedule_protocol():
    from tfnas.train.drop_path import drop_path_layers, set_drop_path_rate

    inputs = keras.Input((2, 2, 1))
    layer = DropPath(0.0, seed=5)
    model = keras.Model(inputs, layer(inputs))
    assert drop_path_layers(model) == [layer]
    x = np.ones((512, 2, 2, 1), np.float32)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), x)  # rate 0: exact identity
    step = tf.function(lambda t: layer(t, training=True))
    np.testing.assert_array_equal(step(x).numpy(), x)
    set_drop_path_rate([layer], 0.5)
    y = step(x).numpy()  # the traced step reads the new rate without retracing
    assert step.experimental_get_tracing_count() == 1
    dropped = (y.reshape(512, -1) == 0).all(axis=1).mean()
    assert 0.4 < dropped < 0.6
    assert layer.get_config()["rate"] == 0.0
    with pytest.raises(ValueError, match="rate=1.5"):
        layer.set_drop_path_rate(1.5)


def test_drop_path_is_identity_at_inference_and_drops_samples_in_training():
    x = np.ones((256, 2, 2, 1), np.float32)
    layer = DropPath(0.25, seed=7)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    y = layer(x, training=True).numpy()
    per_sample = y.reshape(256, -1)
    # every sample is either dropped entirely or kept and scaled by 1 / (1 - rate)
    assert np.all((per_sample == 0.0).all(axis=1) | np.isclose(per_sample, 1 / 0.75).all(axis=1))
    kept = np.isclose(per_sample[:, 0], 1 / 0.75).mean()
    assert 0.6 < kept < 0.9
    # the layer-owned seed generator advances: the next mask differs
    assert not np.array_equal(y, layer(x, training=True).numpy())


def test_drop_path_seed_reproducible():
    x = np.ones((64, 1, 1, 1), np.float32)
    a = DropPath(0.5, seed=11)(x, training=True).numpy()
    b = DropPath(0.5, seed=11)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)


def test_drop_path_rejects_bad_rate():
    with pytest.raises(ValueError, match="rate=1.0"):
        DropPath(1.0)
    with pytest.raises(ValueError, match="rate=-0.1"):
        DropPath(-0.1)


def test_layers_reload_from_keras_file(tmp_path):
    inputs = keras.Input((8, 8, 4))
    x = ReLUConvBN(4, 3)(inputs)
    x = keras.layers.Add()([AvgPool3x3()(x), Zero()(x), Identity()(x), DropPath(0.2, seed=1)(x)])
    outputs = ResidualReduction(8)(x)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects: the layers are registered
    data = np.random.default_rng(0).standard_normal((2, 8, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(reloaded(data).numpy(), model(data).numpy(), atol=1e-6)


def test_mish_is_kerass_mish_in_bounded_form():
    """Same values and gradients as ``keras.activations.mish``; no intermediate beyond ``|x|``
    (so int8 TFLite calibration keeps small activations)."""
    x = tf.constant(np.linspace(-30.0, 30.0, 6001, dtype=np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, ref = mish(x), keras.activations.mish(x)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=2e-6, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(ref, x).numpy(), atol=1e-5)
    graph = tf.function(mish).get_concrete_function(tf.TensorSpec((None,), tf.float32)).graph
    exps = [op for op in graph.get_operations() if op.type == "Exp"]
    assert len(exps) == 1 and exps[0].inputs[0].op.type == "Neg"  # exp(-|x|) <= 1, never exp(x)
