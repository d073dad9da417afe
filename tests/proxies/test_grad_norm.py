"""Tests of grad_norm on Keras networks (tfnas.proxies.grad_norm)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tfnas.proxies.base import ProxyBatch
from tfnas.proxies.grad_norm import GradNormProxy


def test_grad_norm_reductions_match_closed_form_on_two_linear_layers():
    """logits = x W1 W2: dL/dW2 = (x W1)^T G / B and dL/dW1 = x^T G W2^T / B with G = softmax - onehot."""
    rng = np.random.default_rng(4)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, use_bias=False),
                              keras.layers.Dense(4, use_bias=False)])
    w1, w2 = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    model.set_weights([w1, w2])
    x = rng.standard_normal((7, 6)).astype(np.float32)
    y = rng.integers(0, 4, 7).astype(np.int32)
    h = x.astype(np.float64) @ w1
    logits = h @ w2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(4)[y]) / len(y)
    n1, n2 = np.linalg.norm(x.T @ g @ w2.T.astype(np.float64)), np.linalg.norm(h.T @ g)
    batch = ProxyBatch(x, y, 4)
    assert GradNormProxy().score(model, batch, rng) == pytest.approx(math.hypot(n1, n2), rel=1e-5)
    assert GradNormProxy(reduction="layer_sum").score(model, batch, rng) == pytest.approx(n1 + n2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction must be one of global, layer_sum"):
        GradNormProxy(reduction="mean")
