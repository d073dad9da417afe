"""Tests of the fast-path registry (tfnas.proxies.fastpaths) and of the rule that only the
fast paths know concrete spaces."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import tfnas.proxies
from tfnas.proxies.base import Proxy
from tfnas.proxies.fastpaths import find_fast_path, register_fast_path, registered_fast_paths


class _Space:
    pass


class _SubSpace(_Space):
    pass


class _Probe(Proxy):
    name = "_probe_fast_path_test"

    def __init__(self, on: bool = True):
        self.on = on

    def score(self, model, batch, rng):
        raise AssertionError("the fast path should have been taken")


@register_fast_path(_Probe.name, _Space, applies=lambda proxy: proxy.on)
def _probe_fast_path(proxy, space, arch, *, num_classes, input_shape, batch_size, rng):
    return float(arch) + num_classes + batch_size


def test_lookup_walks_the_space_mro_and_respects_applies():
    kw = dict(num_classes=10, input_shape=(8, 8, 3), batch_size=2, rng=np.random.default_rng(0))
    assert find_fast_path(_Probe(), _Space()) is _probe_fast_path
    assert find_fast_path(_Probe(), _SubSpace()) is _probe_fast_path  # inherited by subclasses
    assert _Probe().score_arch(_SubSpace(), 1, **kw) == 13.0
    assert find_fast_path(_Probe(on=False), _Space()) is None
    assert find_fast_path(_Probe(), object()) is None
    assert (_Probe.name, "_Space") in registered_fast_paths()


def test_registration_refuses_duplicates_and_non_classes():
    register_fast_path(_Probe.name, _Space)(_probe_fast_path)  # the same function again is fine
    with pytest.raises(ValueError, match="already registered"):
        register_fast_path(_Probe.name, _Space)(lambda *a, **k: 0.0)
    with pytest.raises(TypeError, match="must be a class"):
        register_fast_path(_Probe.name, _Space())


def test_built_in_fast_paths():
    names = set(registered_fast_paths())
    for proxy in ("grad_norm", "snip", "naswot", "jacob_cov", "te_nas", "synflow", "zen"):
        assert (proxy, "Nb201Space") in names
    for proxy in ("grad_norm", "snip", "naswot", "synflow", "zen"):
        assert (proxy, "ZenSpace") in names


def test_proxy_modules_import_no_concrete_space():
    """Only tfnas/proxies/fastpaths/ may import a space package (NB201, Zen, DARTS, Tiny-NanoBench)."""
    root = pathlib.Path(tfnas.proxies.__file__).parent
    spaces = ("tfnas.spaces.nb201", "tfnas.spaces.zen", "tfnas.spaces.darts", "tfnas.spaces.tinynano")
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(n.startswith(spaces) for n in names), f"{path.name} imports {names}"
