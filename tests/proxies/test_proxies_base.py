"""Tests of the proxy contract and its shared helpers (tfnas.proxies.base)."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import numpy as np
import pytest

from tfnas.config import ProxyConfig
from tfnas.proxies.base import Proxy, ProxyBatch, dtype_policy_scope, get_proxy, proxy_options, random_batch
from tfnas.registry import PROXIES, UnknownNameError

NAMES = ("synflow", "grad_norm", "snip", "naswot", "te_nas", "jacob_cov", "flops", "params", "random")


def test_all_registered_with_names():
    for name in NAMES:
        assert name in PROXIES
        proxy = get_proxy(name)
        assert proxy.name == name


def test_each_proxy_declares_its_options():
    class Section:
        zen_weight, entropy_weight, grad_norm, zen_bn_variance = 0.7, 0.2, "layer_sum", "running"

    assert proxy_options("grad_norm", Section()) == {"reduction": "layer_sum"}
    for name in ("incorporated_l", "incorporated_s"):
        assert proxy_options(name, Section()) == {"zen_weight": 0.7, "entropy_weight": 0.2, "bn_variance": "running"}
    assert proxy_options("zen", Section()) == {"bn_variance": "running"}
    for name in ("synflow", "snip", "naswot", "te_nas", "jacob_cov", "flops", "params", "random"):
        assert proxy_options(name, Section()) == {}
    proxy = get_proxy("grad_norm", **proxy_options("grad_norm", Section()))
    assert proxy.reduction == "layer_sum"
    with pytest.raises(UnknownNameError):
        proxy_options("no_such_proxy", Section())


def test_declared_options_are_proxy_keys_and_constructor_arguments():
    keys = {f.name for f in dataclasses.fields(ProxyConfig)}
    for name in PROXIES.names():
        cls = PROXIES.get(name)
        params = inspect.signature(cls.__init__).parameters
        for key, keyword in cls.options.items():
            assert key in keys, f"{name}: [proxy] has no key {key!r}"
            assert keyword in params, f"{name}: the constructor takes no {keyword!r}"
    defaults = proxy_options("incorporated_l", ProxyConfig())
    assert set(defaults) == {"zen_weight", "entropy_weight", "bn_variance"}


def test_dtype_policy_scope_restores_the_policy():
    before = keras.config.dtype_policy().name
    with dtype_policy_scope("float64"):
        assert keras.config.dtype_policy().name == "float64"
        assert keras.layers.Dense(2).dtype_policy.name == "float64"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(RuntimeError):
        with dtype_policy_scope("float64"):
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before
    with dtype_policy_scope(None):
        assert keras.config.dtype_policy().name == before


def test_fast_path_state_is_made_once_per_proxy():
    proxy, other = get_proxy("random"), get_proxy("random")
    made = []
    first = proxy.fast_path_state("k", lambda: made.append(1) or object())
    assert proxy.fast_path_state("k", lambda: made.append(1) or object()) is first and made == [1]
    assert other.fast_path_state("k", object) is not first
    assert isinstance(proxy, Proxy) and Proxy.options == {}


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


SHIPPED = sorted(n for n in PROXIES.names() if PROXIES.get(n).__module__.startswith("tfnas."))  # not the tests' toys


@pytest.mark.parametrize("name", sorted(set(SHIPPED) - {"incorporated_l", "incorporated_s"}))
def test_every_proxy_names_a_batch_that_is_not_a_proxy_batch(name):
    """A tuple ``(images, labels)`` in place of a ProxyBatch is named, not an AttributeError deep inside."""
    rng = np.random.default_rng(0)
    good = random_batch(rng, 2, (8, 8, 3), 3)
    proxy, model = get_proxy(name), _tiny_model()
    with pytest.raises(TypeError, match=f"{name}: the batch must be a ProxyBatch.*got tuple"):
        proxy.score(model, (good.images, good.labels), rng)
    with pytest.raises(ValueError, match="B >= 1"):
        proxy.score(model, ProxyBatch(good.images[:0], good.labels[:0], 3), rng)
    if name in ("grad_norm", "snip", "jacob_cov", "naswot", "te_nas"):  # the proxies that use the labels
        with pytest.raises(TypeError, match="labels must be integer class ids"):
            proxy.score(model, ProxyBatch(good.images, good.labels + 0.7, 3), rng)
        with pytest.raises(ValueError, match="num_classes"):
            proxy.score(model, ProxyBatch(good.images, good.labels, None), rng)
    assert np.isfinite(proxy.score(model, good, rng))


def test_a_new_proxy_object_per_architecture_is_warned_about_once(caplog, monkeypatch):
    import tfnas.proxies.base as base

    monkeypatch.setattr(base, "_STATES_MADE", base.collections.Counter())
    with caplog.at_level("WARNING", logger="tfnas.proxies.base"):
        for _ in range(base.RETRACE_WARNING_AT + 3):
            get_proxy("random").fast_path_state("k", object)
    warned = [r for r in caplog.records if "proxy objects have each traced" in r.getMessage()]
    assert len(warned) == 1 and "'random'" in warned[0].getMessage()
    caplog.clear()
    proxy = get_proxy("snip")
    with caplog.at_level("WARNING", logger="tfnas.proxies.base"):
        for key in range(base.RETRACE_WARNING_AT + 3):  # one object, many network shapes: no warning
            proxy.fast_path_state(f"shape{key}", object)
    assert not caplog.records
