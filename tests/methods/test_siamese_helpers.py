import numpy as np

from tfnas.predictors.estimation import EcNormaliser
from tfnas.methods.siamese import bts_epochs, rerank_top_k, split_evenly


def test_split_evenly():
    assert split_evenly(7, 3) == [3, 2, 2]
    assert split_evenly(2, 4) == [1, 1, 0, 0]
    assert sum(split_evenly(67, 10)) == 67


def test_bts_epochs_in_middle_half():
    epochs = bts_epochs(200, 10)
    assert len(epochs) == 10 and epochs[0] == 50 and epochs[-1] == 150
    assert all(50 <= e <= 150 for e in epochs)


def test_rerank_only_touches_top_k():
    rng = np.random.default_rng(0)
    scores = rng.random(100)
    top = np.argsort(-scores)[:5]
    out = rerank_top_k(scores, 5, lambda pos: -np.arange(len(pos), dtype=float)[::-1])  # reverse their order
    new_order = np.argsort(-out)
    assert set(new_order[:5]) == set(top)
    assert list(new_order[:5]) == list(top[::-1])
    # Everything else keeps its order and its scores.
    rest = np.argsort(-scores)[5:]
    assert list(new_order[5:]) == list(rest)
    np.testing.assert_array_equal(out[rest], scores[rest])


def test_ec_normaliser_uses_training_statistics_only():
    train = np.array([[1.0, 10.0], [3.0, 10.0]])
    norm = EcNormaliser(train)
    np.testing.assert_allclose(norm(train), [[-1.0, 0.0], [1.0, 0.0]])
    # A test code far outside is mapped with the training statistics, not its own.
    np.testing.assert_allclose(norm(np.array([[5.0, 12.0]])), [[3.0, 2.0]])
