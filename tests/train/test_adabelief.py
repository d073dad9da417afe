"""AdaBelief (tfnas.train.adabelief): the paper's update, the Trainer's ``optimizer = adabelief``, resume;
the NAG paper setting's final-training keys (``[train] optimizer = adabelief``, ``[space] dropout``)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.config import ConfigError, TrainConfig, load_config
from tfnas.run.factory import build_space
from tfnas.train import Trainer
from tfnas.train.adabelief import AdaBelief
from tfnas.train.optim import make_optimizer


def numpy_adabelief(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """The paper's Algorithm 2 (no rectification, no AMSGrad), written out in float64."""
    theta = np.array(theta, np.float64)
    m, s = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps
        theta = theta - lr * (m / (1 - b1 ** t)) / (np.sqrt(s / (1 - b2 ** t)) + eps)
    return theta


def test_steps_follow_the_papers_algorithm():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) * (k + 1) for k in range(7)]
    var = tf.Variable(start, dtype=tf.float64)
    opt = AdaBelief(learning_rate=0.01)
    for g in grads:
        opt.apply_gradients([(tf.constant(g), var)])
    # (Keras holds the learning rate in float32: 0.01 is off by 2e-10, hence the tolerance)
    np.testing.assert_allclose(var.numpy(), numpy_adabelief(start, grads, 0.01), rtol=1e-7, atol=1e-8)
    # Adam's first step moves every weight by lr; AdaBelief's first belief is (g - m)^2 = (0.9 g)^2, so
    # with the bias corrections its first step is lr * g / sqrt(0.81 g^2) = lr / 0.9 per weight.
    one = tf.Variable(start, dtype=tf.float64)
    AdaBelief(learning_rate=0.01).apply_gradients([(tf.constant(grads[0]), one)])
    np.testing.assert_allclose(np.abs(one.numpy() - start), 0.01 / 0.9, rtol=1e-3)


def test_arguments_are_checked_and_the_config_round_trips():
    for kwargs in ({"beta_1": 1.0}, {"beta_2": -0.1}, {"epsilon": 0.0}):
        with pytest.raises(ValueError, match="AdaBelief"):
            AdaBelief(**kwargs)
    opt = AdaBelief(learning_rate=0.002, beta_1=0.8, epsilon=1e-6)
    again = AdaBelief.from_config(opt.get_config())
    assert (again.beta_1, again.beta_2, again.epsilon) == (0.8, 0.999, 1e-6)
    assert float(again.learning_rate) == pytest.approx(0.002)


def arrays(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[..., 0].mean(axis=(1, 2)) > 0).astype(int)]
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def tiny_model():
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same")(inp)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
    return keras.Model(inp, keras.layers.Dense(2)(h))


def test_trainer_uses_it_and_a_resumed_training_equals_an_uninterrupted_one(tmp_path):
    recipe = TrainConfig(epochs=2, optimizer="adabelief", lr=0.01, weight_decay=5e-4, grad_clip=5.0,
                         schedule="constant")
    assert isinstance(make_optimizer(recipe, 0.01), AdaBelief)
    first = Trainer(tiny_model, recipe, jit_compile=False, progress=False, checkpoint_dir=str(tmp_path), seed=0)
    h = first.fit(arrays())
    assert h.loss[-1] < h.loss[0]
    longer = dataclasses.replace(recipe, epochs=4)
    resumed = Trainer(tiny_model, longer, jit_compile=False, progress=False, checkpoint_dir=str(tmp_path), seed=0,
                      steps_per_epoch=4)
    assert resumed.restore() == 2
    # the optimizer's moments come back with the weights: the last two epochs match a straight run
    tail = resumed.fit(arrays())
    straight = Trainer(tiny_model, longer, jit_compile=False, progress=False, seed=0).fit(arrays())
    np.testing.assert_allclose(tail.loss, straight.loss[2:], rtol=1e-4)


def test_config_accepts_adabelief_and_space_dropout_only_where_a_network_has_one(tmp_path):
    cfg = load_config("cfg/nag_darts_cifar10.cfg")
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay, cfg.space.dropout) == ("adabelief", 1e-3,
                                                                                            5e-4, 0.4)
    assert build_space(cfg).dropout == 0.4  # the networks the run builds and trains have it
    assert cfg.train.weight_decay_scope == "all"  # the reference's AdaBelief decays model.parameters()
    with pytest.raises(ConfigError, match=r"space.dropout.*only the nasnet_dag space.*'darts'"):
        build_space(load_config("cfg/relativenas_tiny.cfg", ["space.dropout=0.2"]))
    with pytest.raises(ConfigError, match="train.optimizer"):
        load_config("cfg/nag_tiny.cfg", ["train.optimizer=adabeleif"])
