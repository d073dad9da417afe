"""Tests of the DARTS CIFAR network (tfnas.spaces.darts.network)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.spaces.darts import OPS, PRESETS, DartsSpace
from tfnas.spaces.darts.network import count_network_params, op_params


@pytest.mark.parametrize("preset", ["relativenas", "darts_v2"])
def test_analytic_params_equal_the_keras_network(preset):
    arch = PRESETS[preset]
    space = DartsSpace(channels=8, layers=5)
    model = space.build(arch, 10, (32, 32, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == space.num_params(arch, auxiliary=True)
    model = space.build(arch, 10, (32, 32, 3), auxiliary=False)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == space.num_params(arch)
    assert count_network_params(arch, 10, 8, 5, False) == trainable


def test_network_outputs_aux_logits_only_in_training_and_drop_path():
    space = DartsSpace(channels=4, layers=3)
    model = space.build(PRESETS["relativenas"], 7, (32, 32, 3), drop_path_rate=0.2, seed=1)
    x = tf.random.normal((2, 32, 32, 3), seed=0)
    logits, aux = model(x, training=True)
    assert logits.shape == aux.shape == (2, 7)
    assert model(x, training=False).shape == (2, 7)
    # inference is deterministic (DropPath off); training is not when ops are dropped.
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))
    from tfnas.train.drop_path import drop_path_layers

    assert drop_path_layers(model)  # the cells' DropPath layers exist (the rate alone proved nothing)
    runs = [model(x, training=True)[0].numpy() for _ in range(3)]
    assert not all(np.allclose(runs[0], r) for r in runs[1:])
    no_aux = space.build(PRESETS["relativenas"], 7, (16, 16, 3), auxiliary=False)
    assert no_aux(tf.zeros((1, 16, 16, 3)), training=True).shape == (1, 7)
    with pytest.raises(ValueError, match="auxiliary head needs images"):
        space.build(PRESETS["relativenas"], 7, (16, 16, 3), auxiliary=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        space.build(PRESETS["relativenas"], 7, bogus=1)


def test_keras_round_trip(tmp_path):
    import keras

    space = DartsSpace(channels=4, layers=3)
    model = space.build(PRESETS["darts_v2"], 5, (32, 32, 3))
    x = tf.random.normal((2, 32, 32, 3), seed=1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_op_param_formulas():
    from tfnas.spaces.darts.network import make_op

    for op in OPS:
        for strides in (1, 2):
            layer = make_op(op, 8, strides)
            layer.build((None, 8, 8, 8))
            trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            assert trainable == op_params(op, 8, strides), (op, strides)
            y = layer(tf.zeros((1, 8, 8, 8)))
            assert tuple(y.shape) == (1, 8 // strides, 8 // strides, 8), (op, strides)


def test_tf_checkpoints_hold_every_cell_weight(tmp_path):
    """The Trainer's resume checkpoints and ``load_weights`` use ``tf.train.Checkpoint``, which
    does not see layers kept in Python lists: the cells' weights were silently left out."""

    space = DartsSpace(channels=4, layers=5)
    arch = space.decode("relativenas")
    keras.utils.set_random_seed(0)
    trained = space.build(arch, 7, (32, 32, 3), drop_path_rate=0.1)
    prefix = tf.train.Checkpoint(model=trained).write(str(tmp_path / "model"))
    stored = {name for name, _ in tf.train.list_variables(prefix)}
    assert len([n for n in stored if n.startswith("model/cells_")]) > 300
    keras.utils.set_random_seed(1)
    fresh = space.build(arch, 7, (32, 32, 3))  # no DropPath: extra checkpoint entries are fine
    tf.train.Checkpoint(model=fresh).read(prefix).assert_existing_objects_matched().expect_partial()
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(fresh(x, training=False).numpy(), trained(x, training=False).numpy(), atol=1e-6)


def test_inference_model_shares_weights_without_aux_head_and_drop_path():
    space = DartsSpace(channels=4, layers=5)
    arch = space.decode("darts_v2")
    model = space.build(arch, 7, (32, 32, 3), drop_path_rate=0.2)
    net = model.inference_model()
    assert net is not model and net.auxiliary_head is None and net.drop_path_rate is None
    assert sum(int(np.prod(w.shape)) for w in net.trainable_weights) == space.num_params(arch, 7)
    assert {id(w) for w in net.weights} <= {id(w) for w in model.weights}
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(net(x).numpy(), model(x, training=False).numpy(), atol=1e-6)
    model.classifier.bias.assign(model.classifier.bias + 1.0)  # shared, not copied
    np.testing.assert_allclose(net(x).numpy(), model(x, training=False).numpy(), atol=1e-6)
    plain = space.build(arch, 7, (32, 32, 3), auxiliary=False)
    assert plain.inference_model() is plain
