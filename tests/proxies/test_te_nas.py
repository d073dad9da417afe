"""Tests of te_nas (tfnas.proxies.te_nas)."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.proxies.te_nas import ntk_score


def test_ntk_score_formula():
    assert ntk_score(np.diag([2.0, 8.0, 4.0])) == pytest.approx(-4.0)
    assert ntk_score(np.ones((3, 3))) == float("-inf")
    with pytest.raises(ValueError, match="square"):
        ntk_score(np.ones((2, 3)))


def test_te_nas_conditions_the_kernel_of_per_image_weight_gradients():
    """For logits (x W)^2 the gradient of image x's summed logits by W is 2 x (x W) (outer product),
    so the NTK is the Gram matrix of those per-image gradients, computed here by hand."""
    from tests.proxies.nb201_setup import squared_dense
    from tfnas.proxies.base import ProxyBatch, get_proxy

    model, w, x = squared_dense(3)
    x64 = x.astype(np.float64)
    rows = np.stack([2.0 * np.outer(xi, xi @ w.astype(np.float64)).ravel() for xi in x64])
    score = get_proxy("te_nas").score(model, ProxyBatch(x, np.zeros(4, np.int32), 3), np.random.default_rng(0))
    assert score == pytest.approx(ntk_score(rows @ rows.T), rel=1e-4)
    assert score < -1.0  # a real conditioning, not the identity's -1
