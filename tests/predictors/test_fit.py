"""Tests of tfnas/predictors/fit.py: schedule, loss, optimiser, training, tracing, prediction."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.predictors.fit import (
    FusedAdam,
    GraphData,
    PredictorTrainer,
    epoch_indices,
    huber,
    learning_rate_at,
    steps_for_budget,
)
from tfnas.predictors.models import NeuralPredictor, SiamesePredictor

N, K, E = 10, 9, 3


def _cells(rng: np.random.Generator, count: int):
    """Random graphs with a learnable target: the fraction of nodes carrying op 3."""
    adj = np.triu(rng.random((count, N, N)) < 0.3, 1).astype(np.float32)
    ops = np.eye(K, dtype=np.float32)[rng.integers(0, K, (count, N))]
    y = (0.2 + 2.0 * ops[:, :, 3].mean(axis=1)).clip(0.0, 1.0).astype(np.float32)
    ec = (ops[:, :, :E].mean(axis=1) * 5.0 + 0.1 * rng.standard_normal((count, E))).astype(np.float32)
    return GraphData(adj, ops, y, ec)


def _siamese_trainer(seed: int = 0, units: int = 16, **kwargs) -> PredictorTrainer:
    kwargs.setdefault("jit_compile", False)
    kwargs.setdefault("steps_per_epoch", 4)
    model = SiamesePredictor(N, K, ec_dim=E, units=units, seed=seed)
    return PredictorTrainer(model, seed=seed, **kwargs)


def test_schedule_boundaries():
    assert learning_rate_at(0, 200) == 1e-3
    assert learning_rate_at(139, 200) == 1e-3
    assert learning_rate_at(140, 200) == 1e-4
    assert learning_rate_at(199, 200) == 1e-4
    assert learning_rate_at(250, 200) == 1e-4
    assert learning_rate_at(6, 10) == 1e-3 and learning_rate_at(7, 10) == 1e-4
    assert learning_rate_at(0, 1) == 1e-4  # floor(0.7) = 0 epochs at the high rate
    assert learning_rate_at(2, 10, lr_high=0.5, lr_low=0.25, high_fraction=0.2) == 0.25
    with pytest.raises(ValueError, match="epoch"):
        learning_rate_at(-1, 10)
    assert steps_for_budget(100) == 12 and steps_for_budget(5) == 1


def test_trainer_applies_the_schedule_per_epoch():
    data = _cells(np.random.default_rng(0), 10)
    trainer = _siamese_trainer(total_epochs=10, steps_per_epoch=1, units=8)
    assert [trainer.learning_rate_at(e) for e in (0, 6, 7, 9)] == [1e-3, 1e-3, 1e-4, 1e-4]
    trainer.train_epochs(data, 7)
    assert trainer.epoch == 7
    assert float(trainer.optimizer.learning_rate) == pytest.approx(1e-3)
    trainer.train_epochs(data, 1)
    assert trainer.epoch == 8
    assert float(trainer.optimizer.learning_rate) == pytest.approx(1e-4)
    trainer.set_schedule(20, 0.5, 0.25)  # epoch 8 of 20 is in the high part again, at once
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.5) and trainer.learning_rate_at(14) == 0.25
    assert trainer.train_traces == 1
    with pytest.raises(ValueError, match="total_epochs"):
        trainer.set_schedule(0, 0.5, 0.25)


def test_huber_formula():
    y = tf.constant([0.5, 0.5, 0.5, 0.5])
    p = tf.constant([0.5, 0.7, 0.0, 1.4])  # errors 0, 0.2, 0.5, 0.9
    expected = np.mean([0.0, 0.5 * 0.04, 0.5 * 0.25, 0.5 * (0.9 - 0.25)])
    assert float(huber(y, p, 0.5)) == pytest.approx(expected, rel=1e-6)


def test_fused_adam_matches_keras_adam():
    rng = np.random.default_rng(1)
    init = rng.standard_normal((4, 3)).astype(np.float32)
    target = rng.standard_normal((4, 3)).astype(np.float32)
    ours, theirs = tf.Variable(init), keras.Variable(init)
    fused = FusedAdam([ours], learning_rate=0.01)
    reference = keras.optimizers.Adam(learning_rate=0.01)
    for _ in range(5):
        for var, apply in ((ours, lambda g: fused.apply_gradients(g)),
                           (theirs, lambda g: reference.apply_gradients(zip(g, [theirs])))):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.convert_to_tensor(var) - target) ** 1.5)
            apply(tape.gradient(loss, [var]))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_epoch_indices_are_shuffled_passes():
    rng = np.random.default_rng(2)
    idx = epoch_indices(5, 12, rng)
    assert len(idx) == 12
    assert sorted(idx[:5]) == list(range(5)) and sorted(idx[5:10]) == list(range(5))
    np.testing.assert_array_equal(epoch_indices(1, 8, rng), np.zeros(8))
    # shuffled: passes in other orders than 0..n-1, and not all in one order (their sorting alone passed)
    passes = {tuple(epoch_indices(6, 6, rng)) for _ in range(20)}
    assert len(passes) > 10 and tuple(range(6)) not in passes


def test_graph_data_validation():
    data = _cells(np.random.default_rng(3), 4)
    assert len(data) == 4 and data.adj.dtype == np.float32
    with pytest.raises(ValueError, match="length"):
        GraphData(data.adj, data.ops, data.y[:3])
    with pytest.raises(ValueError, match="at least one"):
        GraphData(data.adj[:0], data.ops[:0], data.y[:0])
    trainer = _siamese_trainer(units=8)
    with pytest.raises(ValueError, match="estimation code"):
        trainer.train_epochs((data.adj, data.ops, data.y))
    with pytest.raises(ValueError, match="graphs"):
        trainer.train_epochs((data.adj[:, :5, :5], data.ops[:, :5], data.y, data.ec))


def test_loss_decreases_on_a_learnable_target():
    rng = np.random.default_rng(4)
    train, held_out = _cells(rng, 48), _cells(rng, 64)
    for trainer, data in (
        (_siamese_trainer(seed=4, total_epochs=30), train),
        (PredictorTrainer(NeuralPredictor(N, K, units=16, seed=4), total_epochs=30, steps_per_epoch=4,
                          jit_compile=False), GraphData(train.adj, train.ops, train.y)),
    ):
        before, held_before = trainer.loss(data), trainer.loss(held_out)
        losses = trainer.train_epochs(data, 30, np.random.default_rng(0))
        assert losses.shape == (30,)
        assert trainer.loss(data) < 0.8 * before
        assert trainer.loss(held_out) < held_before
        assert losses[-5:].mean() < losses[:5].mean()


def test_train_trace_count_stays_one_as_the_data_grows():
    rng = np.random.default_rng(5)
    pool = _cells(rng, 60)
    trainer = _siamese_trainer(units=8, steps_per_epoch=3)
    for size in (1, 2, 7, 8, 9, 30, 60):
        subset = GraphData(pool.adj[:size], pool.ops[:size], pool.y[:size], pool.ec[:size])
        trainer.train_epochs(subset, 2, rng)
    assert trainer.epoch == 14
    assert trainer.train_traces == 1
    for count in (1, 5, 33, 60):
        trainer.predict(pool.adj[:count], pool.ops[:count], batch_size=16)
    assert trainer.predict_traces == 1
    trainer.predict(pool.adj, pool.ops, pool.ec, batch_size=7)
    trainer.predict(pool.adj[:3], pool.ops[:3], pool.ec[:3])
    assert trainer.predict_traces == 2  # one per branch
    assert trainer.train_traces == 1


def test_xla_training_matches_graph_training():
    data = _cells(np.random.default_rng(6), 20)
    results = []
    for jit in (False, True):
        trainer = _siamese_trainer(seed=6, units=8, steps_per_epoch=2, jit_compile=jit)
        losses = trainer.train_epochs(data, 3, np.random.default_rng(1))
        results.append((losses, trainer.predict(data.adj, data.ops)))
        assert trainer.train_traces == 1
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-3, atol=1e-4)


def test_predict_is_deterministic_for_a_seed():
    rng = np.random.default_rng(7)
    data, candidates = _cells(rng, 24), _cells(rng, 300)
    runs = []
    for _ in range(2):
        trainer = _siamese_trainer(seed=7, units=8)
        trainer.train_epochs(data, 5, np.random.default_rng(3))
        scores = trainer.predict(candidates.adj, candidates.ops, batch_size=64)
        assert scores.shape == (300,) and scores.dtype == np.float32
        np.testing.assert_allclose(scores, trainer.predict(candidates.adj, candidates.ops), rtol=1e-6)
        runs.append(scores)
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(np.argsort(-runs[0], kind="stable"), np.argsort(-runs[1], kind="stable"))


def test_predict_branches_and_errors():
    data = _cells(np.random.default_rng(8), 12)
    trainer = _siamese_trainer(units=8)
    model = trainer.model
    np.testing.assert_allclose(trainer.predict(data.adj, data.ops),
                               model.accuracy_without_code(data.adj, data.ops), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trainer.predict(data.adj, data.ops, data.ec),
                               model.accuracy_with_code(data.adj, data.ops, data.ec), rtol=1e-5, atol=1e-6)
    assert trainer.predict(data.adj[:0], data.ops[:0]).shape == (0,)
    neural = PredictorTrainer(NeuralPredictor(N, K, units=8), jit_compile=False)
    with pytest.raises(ValueError, match="no estimation code"):
        neural.predict(data.adj, data.ops, data.ec)


def test_huber_reaches_both_outputs():
    data = _cells(np.random.default_rng(9), 16)
    trainer = _siamese_trainer(units=8)
    model = trainer.model
    y = tf.constant(data.y[:8])
    outputs = model((data.adj[:8], data.ops[:8], data.ec[:8]), training=True)
    expected = float(huber(y, outputs[0], 0.5) + huber(y, outputs[1], 0.5))
    assert float(trainer.total_loss(y, outputs)) == pytest.approx(expected, rel=1e-6)

    fusion_before = [w.numpy() for w in model.fusion.trainable_weights]
    embed_before = [w.numpy() for w in model.embedding[0].trainable_weights]
    trainer.train_epochs(data, 1)
    for before, weight in zip(fusion_before, model.fusion.trainable_weights):
        assert not np.array_equal(before, weight.numpy()), weight.path
    for before, weight in zip(embed_before, model.embedding[0].trainable_weights):
        assert not np.array_equal(before, weight.numpy()), weight.path


def test_reset_redraws_weights_like_a_fresh_model_and_keeps_the_trace():
    from tfnas.predictors.fit import PredictorTrainer
    from tfnas.predictors.models import SiamesePredictor

    rng = np.random.default_rng(0)
    adj = (rng.random((20, 5, 5)) > 0.5).astype(np.float32)
    ops = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (20, 5))]
    data = (adj, ops, rng.random(20).astype(np.float32), rng.normal(size=(20, 2)).astype(np.float32))
    trainer = PredictorTrainer(SiamesePredictor(5, 4, ec_dim=2, units=8, seed=1), total_epochs=4, steps_per_epoch=2)
    trainer.train_epochs(data, 3)
    trainer.reset(seed=7)
    assert trainer.epoch == 0 and int(trainer.optimizer.iterations.numpy()) == 0
    fresh = SiamesePredictor(5, 4, ec_dim=2, units=8, seed=7)
    fresh.build(fresh.input_shapes())
    for a, b in zip(trainer.model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(trainer.predict(adj, ops), fresh.accuracy(adj, ops).numpy(), rtol=1e-5, atol=1e-6)
    trainer.train_epochs(data, 2)
    assert trainer.train_traces == 1


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=pytest.mark.slow)])  # XLA on CPU: ~50 s
def test_a_trainer_with_room_for_more_steps_trains_exactly_like_one_built_for_the_steps(jit):
    """The steps past ``steps_per_epoch`` are never run: same losses and weights as a trainer
    compiled for the step count, and one trace serves every step count up to the capacity."""
    data = _cells(np.random.default_rng(3), 30)
    exact = _siamese_trainer(seed=5, steps_per_epoch=3, jit_compile=jit)
    roomy = _siamese_trainer(seed=5, steps_per_epoch=3, step_capacity=7, jit_compile=jit)
    np.testing.assert_array_equal(exact.train_epochs(data, 3), roomy.train_epochs(data, 3))
    for a, b in zip(exact.model.weights, roomy.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    longer = _siamese_trainer(seed=9, steps_per_epoch=7, jit_compile=jit)
    roomy.reset(seed=9)
    roomy.set_steps_per_epoch(7)
    np.testing.assert_array_equal(longer.train_epochs(data, 2), roomy.train_epochs(data, 2))
    assert roomy.train_traces == 1 and int(roomy.optimizer.iterations.numpy()) == 14
    with pytest.raises(ValueError, match="exceeds this trainer's step_capacity=7"):
        roomy.set_steps_per_epoch(8)
