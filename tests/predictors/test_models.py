"""Tests of tfnas/predictors/models.py: shapes, ranges, branches, config and .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfnas.predictors.fit import PredictorTrainer
from tfnas.predictors.models import NeuralPredictor, SiamesePredictor
from tfnas.registry import PREDICTORS

N, K, E = 10, 9, 3


def _batch(rng: np.random.Generator, batch: int = 6, nodes: int = N, num_ops: int = K, ec_dim: int = E):
    adj = np.triu(rng.random((batch, nodes, nodes)) < 0.3, 1).astype(np.float32)
    ops = np.eye(num_ops, dtype=np.float32)[rng.integers(0, num_ops, (batch, nodes))]
    ec = rng.standard_normal((batch, ec_dim)).astype(np.float32)
    return adj, ops, ec


def _trained(model, adj, ops, ec=None):
    """A few train steps so BatchNorm statistics and weights are not at their initial values."""
    y = np.linspace(0.2, 0.9, len(adj)).astype(np.float32)
    data = (adj, ops, y) if ec is None else (adj, ops, y, ec)
    PredictorTrainer(model, total_epochs=3, steps_per_epoch=2, jit_compile=False).train_epochs(data, 3)
    return model


def test_registry_names():
    assert PREDICTORS.get("neural") is NeuralPredictor
    assert PREDICTORS.get("siamese") is SiamesePredictor


def test_neural_predictor_shape_and_range():
    adj, ops, _ = _batch(np.random.default_rng(0))
    model = NeuralPredictor(N, K, units=16, seed=0)
    out = model((adj, ops)).numpy()
    assert out.shape == (6,)
    assert np.all((out > 0) & (out < 1))
    np.testing.assert_allclose(model.accuracy(adj, ops), out, rtol=1e-6)
    assert len(model.groups) == 3
    with pytest.raises(ValueError, match="no estimation code"):
        model.accuracy(adj, ops, np.zeros((6, E), np.float32))


@pytest.mark.parametrize("nsam", [True, False])
def test_siamese_predictor_outputs_and_branches(nsam):
    adj, ops, ec = _batch(np.random.default_rng(1))
    model = SiamesePredictor(N, K, ec_dim=E, units=16, nsam=nsam, seed=1)
    without, with_code = (t.numpy() for t in model((adj, ops, ec)))
    for out in (without, with_code):
        assert out.shape == (6,)
        assert np.all((out >= 0) & (out <= 1))  # a sigmoid; float32 may round to 1 untrained
    assert not np.allclose(without, with_code)
    np.testing.assert_allclose(model.accuracy_without_code(adj, ops), without, rtol=1e-6)
    np.testing.assert_allclose(model.accuracy_with_code(adj, ops, ec), with_code, rtol=1e-6)
    np.testing.assert_allclose(model.accuracy(adj, ops), without, rtol=1e-6)
    # The without-code branch does not see the code at all.
    other, _ = model((adj, ops, ec + 5.0))
    np.testing.assert_allclose(other, without, rtol=1e-6)
    assert (model.embedding[2].name == "nsam") is nsam


def test_without_code_branch_runs_on_a_fresh_model():
    adj, ops, _ = _batch(np.random.default_rng(2))
    model = SiamesePredictor(N, K, units=8, seed=2)
    assert model.accuracy_without_code(adj, ops).shape == (6,)
    assert model.built


def test_self_loops_are_added_by_the_model():
    adj, ops, ec = _batch(np.random.default_rng(3))
    model = SiamesePredictor(N, K, units=8, seed=3)
    with_loops = np.maximum(adj, np.eye(N, dtype=np.float32))
    for a, b in zip(model((adj, ops, ec)), model((with_loops, ops, ec))):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_generic_sizes():
    adj, ops, ec = _batch(np.random.default_rng(4), batch=2, nodes=7, num_ops=4, ec_dim=5)
    siamese = SiamesePredictor(7, 4, ec_dim=5, units=8, seed=4)
    assert [tuple(t.shape) for t in siamese((adj, ops, ec))] == [(2,), (2,)]
    neural = NeuralPredictor(7, 4, units=8, num_layers=2, seed=4)
    assert tuple(neural((adj, ops)).shape) == (2,)


def test_seed_determinism():
    adj, ops, ec = _batch(np.random.default_rng(5))
    a = SiamesePredictor(N, K, units=8, seed=11)((adj, ops, ec))
    b = SiamesePredictor(N, K, units=8, seed=11)((adj, ops, ec))
    c = SiamesePredictor(N, K, units=8, seed=12)((adj, ops, ec))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


def test_config_round_trip():
    for model in (NeuralPredictor(N, K, units=8, num_layers=2, seed=1),
                  SiamesePredictor(N, K, ec_dim=4, units=8, nsam=False, seed=2)):
        config = model.get_config()
        clone = type(model).from_config(config)
        assert clone.get_config() == config
    config = SiamesePredictor(N, K, ec_dim=4, units=8, nsam=False, seed=2).get_config()
    assert {k: config[k] for k in ("num_nodes", "num_ops", "ec_dim", "units", "nsam", "seed")} == {
        "num_nodes": N, "num_ops": K, "ec_dim": 4, "units": 8, "nsam": False, "seed": 2}


def test_bad_arguments():
    adj, ops, ec = _batch(np.random.default_rng(6))
    with pytest.raises(ValueError, match="nsam"):
        SiamesePredictor(N, K, nsam="yes")
    with pytest.raises(ValueError, match="num_nodes"):
        NeuralPredictor(0, K)
    with pytest.raises(ValueError, match="inputs"):
        SiamesePredictor(N, K, units=8)((adj, ops))


def test_neural_predictor_keras_round_trip(tmp_path):
    adj, ops, _ = _batch(np.random.default_rng(7))
    model = _trained(NeuralPredictor(N, K, units=8, seed=7), adj, ops)
    before = model((adj, ops)).numpy()
    path = str(tmp_path / "neural.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is NeuralPredictor
    np.testing.assert_array_equal(loaded((adj, ops)).numpy(), before)


def test_siamese_predictor_keras_round_trip(tmp_path):
    adj, ops, ec = _batch(np.random.default_rng(8))
    model = _trained(SiamesePredictor(N, K, units=8, seed=8), adj, ops, ec)
    before = [t.numpy() for t in model((adj, ops, ec))]
    path = str(tmp_path / "siamese.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is SiamesePredictor
    after = [t.numpy() for t in loaded((adj, ops, ec))]
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(loaded.accuracy_without_code(adj, ops).numpy(), before[0])


@pytest.mark.parametrize("cls, extra", [(NeuralPredictor, ()), (SiamesePredictor, (np.zeros((2, 2), np.float32),))])
def test_inputs_of_another_node_or_op_count_are_named(cls, extra):
    """``NeuralPredictor(10, 9)((adj, ops[..., :5]))`` failed in a GCN group's reshape ("Input to reshape is a
    tensor with 200 values, but the requested shape requires a multiple of 9")."""
    model = cls(10, 9) if cls is NeuralPredictor else cls(10, 9, ec_dim=2)
    adj, ops = np.zeros((2, 10, 10), np.float32), np.zeros((2, 10, 9), np.float32)
    out = model((adj, ops) + extra)
    assert (out[0] if isinstance(out, tuple) else out).shape == (2,)  # (the siamese one: without and with the code)
    with pytest.raises(ValueError, match=r"ops must end in \(10, 9\) \(10 nodes, 9 ops\); received shape \(2, 10, 5\)"):
        model((adj, ops[..., :5]) + extra)
    with pytest.raises(ValueError, match="adj must end in"):
        model((adj[:, :8, :8], ops) + extra)
