import itertools

import numpy as np
import pytest

from tfnas.metrics import kendall, spearman, top_k_best


def brute_kendall(x, y):
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if a == 0 and b == 0:
            continue
        if a == 0:
            tx += 1
        elif b == 0:
            ty += 1
        elif a * b > 0:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / np.sqrt((conc + disc + tx) * (conc + disc + ty))


@pytest.mark.parametrize("seed", range(8))
def test_kendall_matches_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 70))
    x = rng.integers(0, 6, n).astype(float) if seed % 2 else rng.normal(size=n)
    y = rng.integers(0, 4, n).astype(float)
    assert kendall(x, y) == pytest.approx(brute_kendall(x, y), abs=1e-12)


def test_spearman_known_values():
    x = np.arange(10.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # Ties: average ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> Pearson of the ranks.
    r = np.array([1, 2.5, 2.5, 4]) - 2.5
    s = np.arange(1, 5) - 2.5
    assert spearman(np.array([0, 1, 1, 2.0]), np.arange(4.0)) == pytest.approx((r * s).sum() / np.sqrt((r * r).sum() * (s * s).sum()))


def test_top_k_best():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    truth = np.array([99.0, 10.0, 50.0, 70.0])
    assert top_k_best(scores, truth, 1) == 10.0
    assert top_k_best(scores, truth, 2) == 70.0
    assert top_k_best(scores, truth, 10) == 99.0


@pytest.mark.parametrize("fn", [spearman, kendall])
def test_a_nan_gives_no_correlation_instead_of_ranking_it_highest(fn):
    """``spearman([1, 2, 3, 4, 5], [1, nan, 3, 4, 5])`` was 0.4: the NaN was ranked above every number."""
    assert np.isnan(fn([1, 2, 3, 4, 5], [1, np.nan, 3, 4, 5]))
    assert np.isnan(fn([np.nan, 2, 3], [1, 2, 3]))
    assert fn([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [spearman, kendall])
def test_sequences_of_two_lengths_are_named(fn):
    with pytest.raises(ValueError, match=f"{fn.__name__}: expected two 1-D sequences of one length"):
        fn([1, 2, 3], [1, 2])


@pytest.mark.parametrize("scores, truth, k", [([1, 2], [3, 4], 0), ([1, 2], [3, 4], 1.5), ([1, 2], [3], 1),
                                               ([], [], 1)])
def test_top_k_best_names_what_it_cannot_take(scores, truth, k):
    with pytest.raises(ValueError, match="top_k_best: "):
        top_k_best(np.array(scores), np.array(truth), k)


def test_top_k_best_of_nan_scores_is_nan_like_the_correlations():
    assert np.isnan(top_k_best(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, 3.0]), 1))
