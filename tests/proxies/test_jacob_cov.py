"""Tests of jacob_cov (tfnas.proxies.jacob_cov)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.proxies.nb201_setup import squared_dense
from tfnas.proxies.base import ProxyBatch, get_proxy
from tfnas.proxies.jacob_cov import jacobian_score


def test_jacobian_score_formula():
    k = 1e-5
    # Zero-mean, mutually orthogonal rows: the correlation matrix is the identity.
    rows = np.array([[1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], np.float64)
    assert jacobian_score(rows) == pytest.approx(-3 * (np.log(1 + k) + 1 / (1 + k)))
    # Identical rows are perfectly correlated: eigenvalues (3, 0, 0).
    same = np.tile([[1.0, 2.0, 4.0]], (3, 1))
    expected = -(np.log(3 + k) + 1 / (3 + k)) - 2 * (np.log(k) + 1 / k)
    assert jacobian_score(same) == pytest.approx(expected, rel=1e-6)
    assert jacobian_score(np.ones((3, 4))) == float("-inf")
    with pytest.raises(ValueError, match="B >= 2"):
        jacobian_score(np.ones((1, 4)))


def test_jacob_cov_uses_the_input_gradient_of_the_summed_logits():
    """For logits (x W)^2 the Jacobian row of image x is 2 W (x W)^T."""
    model, w, x = squared_dense(2)
    rows = 2.0 * (x.astype(np.float64) @ w) @ w.T.astype(np.float64)
    score = get_proxy("jacob_cov").score(model, ProxyBatch(x, np.zeros(4, np.int32), 3), np.random.default_rng(0))
    assert score == pytest.approx(jacobian_score(rows), rel=1e-4)
