"""Tests of the helpers shared by the proxies scored from one batch (tfnas.proxies.gradients)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tests.proxies.nb201_setup import BATCH, CLASSES, SHAPE, snapshot
from tests.spaces.archs import NB201_MIXED
from tfnas.proxies.base import ProxyBatch, get_proxy, random_batch
from tfnas.proxies.gradients import BatchProxy, check_batch, kernel_gradients


def _softmax_regression():
    """Dense-only model: the CE gradient has the closed form X^T (softmax - onehot) / B."""
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, use_bias=False)])
    w = rng.standard_normal((6, 4)).astype(np.float32)
    model.set_weights([w])
    x = rng.standard_normal((5, 6)).astype(np.float32)
    y = np.array([0, 3, 1, 1, 2], np.int32)
    logits = x.astype(np.float64) @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = x.T.astype(np.float64) @ (p - np.eye(4)[y]) / len(y)
    return model, ProxyBatch(x, y, 4), w.astype(np.float64), grad


def test_grad_norm_and_snip_match_closed_form():
    model, batch, w, grad = _softmax_regression()
    rng = np.random.default_rng(0)
    assert get_proxy("grad_norm").score(model, batch, rng) == pytest.approx(np.sqrt((grad**2).sum()), rel=1e-5)
    assert get_proxy("snip").score(model, batch, rng) == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)


@pytest.mark.parametrize("name", ["grad_norm", "snip", "naswot", "jacob_cov", "te_nas", "synflow"])
def test_caller_model_is_left_unchanged(space, name):
    model = space.build(space.decode(NB201_MIXED), num_classes=CLASSES, input_shape=SHAPE)
    before = snapshot(model)
    score = get_proxy(name).score(model, random_batch(np.random.default_rng(0), BATCH, SHAPE, CLASSES),
                                  np.random.default_rng(0))
    assert math.isfinite(score)
    for var, old in zip(model.variables, before):
        np.testing.assert_array_equal(var.numpy(), old, err_msg=var.path)


def test_kernel_gradients_are_the_closed_form():
    model, batch, w, grad = _softmax_regression()
    kernels, grads = kernel_gradients(model, batch)
    assert len(kernels) == len(grads) == 1
    np.testing.assert_allclose(kernels[0], w, rtol=1e-7)
    np.testing.assert_allclose(grads[0], grad, rtol=1e-4, atol=1e-7)


def test_check_batch_and_fresh_weights_are_validated():
    images = np.zeros((3, 2), np.float32)
    check_batch(ProxyBatch(images, np.array([0, 1, 2], np.int32), 3), "x")
    with pytest.raises(ValueError, match="labels"):
        check_batch(ProxyBatch(images, np.array([0, 1], np.int32), 3), "x")
    with pytest.raises(ValueError, match=r"x: labels must lie in \[0, 3\)"):
        check_batch(ProxyBatch(images, np.array([0, 1, 3], np.int32), 3), "x")
    for name in ("grad_norm", "snip", "naswot", "jacob_cov", "te_nas"):
        proxy = get_proxy(name, fresh_weights=True)
        assert isinstance(proxy, BatchProxy) and proxy.fresh_weights is True
        with pytest.raises(ValueError, match="fresh_weights must be a bool"):
            get_proxy(name, fresh_weights=1)
