"""The BRP-NAS binary relation predictor: pair loss, relation head, ranking scores, trainer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.predictors.binary import (
    BinaryRelationPredictor,
    RelationTrainer,
    cosine_lr,
    pairwise_loss,
    relation_targets,
    with_global_node,
)
from tfnas.metrics import spearman
from tfnas.spaces.nb201.graph import all_graphs


@pytest.fixture(scope="module")
def graphs():
    adj, ops = all_graphs()
    return adj[:64].copy(), ops[:64].copy()


def test_targets_order_pairs_and_tie_at_one_half():
    t = relation_targets(tf.constant([0.7, 0.5, 0.7])).numpy()
    assert t[0, 1] == 1.0 and t[1, 0] == 0.0 and t[0, 2] == 0.5 and t[1, 1] == 0.5


def test_pairwise_loss_gradient_pushes_the_better_cell_up():
    """d loss / d logit[a, b] < 0 when a is more accurate (descent raises P(a > b)), > 0 the other way,
    and the diagonal (a cell against itself) gets no gradient."""
    y = tf.constant([0.9, 0.2, 0.5])
    logits = tf.Variable(tf.zeros((3, 3)))
    with tf.GradientTape() as tape:
        loss = pairwise_loss(logits, y)
    grad = tape.gradient(loss, logits).numpy()
    assert grad[0, 1] < 0 and grad[1, 0] > 0 and grad[2, 1] < 0 and grad[1, 2] > 0
    assert np.all(np.diag(grad) == 0)
    # at zero logits every off-diagonal BCE is log 2
    assert float(loss) == pytest.approx(np.log(2.0), rel=1e-6)


def test_pairs_of_a_cell_with_its_own_copy_are_left_out():
    """A small training set repeats cells within a batch: those pairs (target 1/2) carry no loss."""
    y = tf.constant([0.9, 0.2, 0.9])
    logits = tf.Variable(tf.random.stateless_normal((3, 3), seed=(1, 2)))
    with tf.GradientTape() as tape:
        loss = pairwise_loss(logits, y, tf.constant([7, 4, 7]))
    grad = tape.gradient(loss, logits).numpy()
    assert grad[0, 2] == 0 and grad[2, 0] == 0 and np.all(np.diag(grad) == 0)
    assert grad[0, 1] != 0 and grad[1, 2] != 0
    kept = [(0, 1), (1, 0), (1, 2), (2, 1)]
    labels = np.array([1.0, 0.0, 0.0, 1.0])
    lg = logits.numpy()[tuple(np.array(kept).T)]
    expected = np.mean(np.maximum(lg, 0) - lg * labels + np.log1p(np.exp(-np.abs(lg))))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_global_node_reads_every_node_and_nothing_reads_it(graphs):
    adj, ops = graphs
    a, o = with_global_node(tf.constant(adj[:2]), tf.constant(ops[:2]))
    a, o = a.numpy(), o.numpy()
    assert a.shape == (2, 11, 11) and o.shape == (2, 11, 10)
    assert np.all(a[:, 10, :] == 1) and np.all(a[:, :10, 10] == 0)
    assert np.all(np.diagonal(a, axis1=1, axis2=2) == 1)
    assert np.all(o[:, 10, -1] == 1) and np.all(o[:, :10, -1] == 0)
    np.testing.assert_array_equal(a[:, :10, :10], np.maximum(adj[:2], np.eye(10)))


def test_all_pair_logits_equal_the_head_on_each_concatenated_pair(graphs):
    adj, ops = graphs
    model = BinaryRelationPredictor(10, 9, units=32, seed=3)
    enc = model.encode(adj[:6], ops[:6])
    grid = model.all_pair_logits(enc).numpy()
    i, j = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    explicit = model.pair_logits(tf.gather(enc, i.ravel()), tf.gather(enc, j.ravel())).numpy().reshape(6, 6)
    np.testing.assert_allclose(grid, explicit, rtol=1e-5, atol=1e-5)
    # the ranking score is the antisymmetric part of the relation: logit(a, b) - logit(b, a) = s(a) - s(b)
    s = model.scores(enc).numpy()
    np.testing.assert_allclose(grid - grid.T, s[:, None] - s[None, :], rtol=1e-4, atol=1e-5)
    prob = model((adj[:3], ops[:3], adj[3:6], ops[3:6])).numpy()
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-grid[[0, 1, 2], [3, 4, 5]])), rtol=1e-5)


def test_config_round_trip_and_bad_arguments():
    model = BinaryRelationPredictor(10, 9, units=8, num_layers=2, dropout=0.1, seed=5)
    clone = BinaryRelationPredictor.from_config(model.get_config())
    model.build(), clone.build()
    for a, b in zip(model.weights, clone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="dropout"):
        BinaryRelationPredictor(10, 9, dropout=1.0)
    with pytest.raises(ValueError, match="units"):
        BinaryRelationPredictor(10, 9, units=0)
    with pytest.raises(ValueError, match="batch_size"):
        RelationTrainer(model, batch_size=1)
    with pytest.raises(ValueError, match="at least 2"):
        RelationTrainer(model, batch_size=4).fit(np.zeros((1, 10, 10)), np.zeros((1, 10, 9)), np.zeros(1), 1,
                                                 np.random.default_rng(0))
    assert keras.saving.get_registered_object("tfnas>BinaryRelationPredictor") is BinaryRelationPredictor


def test_training_learns_the_order_and_a_reset_replays_it(graphs):
    """Accuracy = a linear function of the op counts: after training, the scores rank held-out
    cells far better than chance; reset + the same generator gives the same losses and scores."""
    adj, ops = all_graphs()
    rng = np.random.default_rng(0)
    cells = rng.choice(len(adj), 96, replace=False)
    weights = np.linspace(-1, 1, ops.shape[2])
    y = (ops[cells].sum(axis=1) @ weights).astype(np.float32)
    model = BinaryRelationPredictor(10, 9, units=32, num_layers=2, dropout=0.0, seed=1)
    trainer = RelationTrainer(model, batch_size=16, lr=3e-3, jit_compile=False)
    losses = trainer.fit(adj[cells[:64]], ops[cells[:64]], y[:64], 30, np.random.default_rng(1))
    assert losses[-1] < losses[0]
    held = trainer.scores(adj[cells[64:]], ops[cells[64:]])
    assert spearman(held, y[64:]) > 0.5
    assert trainer.train_traces == 1  # batches of a growing set never retrace

    trainer.reset(1)
    again = trainer.fit(adj[cells[:64]], ops[cells[:64]], y[:64], 30, np.random.default_rng(1))
    np.testing.assert_allclose(again, losses, rtol=1e-5)
    np.testing.assert_allclose(trainer.scores(adj[cells[64:]], ops[cells[64:]]), held, rtol=1e-4, atol=1e-5)


def test_one_step_on_a_pair_raises_the_probability_of_the_true_order(graphs):
    adj, ops = graphs
    model = BinaryRelationPredictor(10, 9, units=16, num_layers=2, dropout=0.0, seed=2)
    trainer = RelationTrainer(model, batch_size=2, lr=1e-2, jit_compile=False)
    pair = (adj[[0]], ops[[0]], adj[[1]], ops[[1]])
    before = float(model(pair)[0])
    trainer.fit(adj[:2], ops[:2], np.array([0.9, 0.1], np.float32), 1, np.random.default_rng(0))
    assert float(model(pair)[0]) > before


def test_cosine_schedule_starts_at_lr_and_ends_at_zero():
    assert cosine_lr(0.1, 0, 10) == pytest.approx(0.1)
    assert cosine_lr(0.1, 5, 10) == pytest.approx(0.05)
    assert cosine_lr(0.1, 10, 10) == pytest.approx(0.0, abs=1e-12)
