"""Tests of the Incorporated-NAS scores (tfnas.proxies.incorporated)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfnas.proxies.base import get_proxy, random_batch
from tfnas.proxies.incorporated import IncorporatedLogProxy, IncorporatedSqrtProxy
from tfnas.proxies.zen import ZenProxy
from tfnas.registry import PROXIES
from tfnas.spaces.nb201 import Nb201Space
from tfnas.spaces.zen import ZenSpace


def test_registered():
    assert {"zen", "incorporated_l", "incorporated_s"} <= set(PROXIES.names())
    proxy = get_proxy("incorporated_s", zen_weight=0.9, entropy_weight=0.1)
    assert isinstance(proxy, IncorporatedSqrtProxy) and (proxy.zen_weight, proxy.entropy_weight) == (0.9, 0.1)
    assert get_proxy("incorporated_l", zen_weight=0).zen_weight == 0  # the entropy alone: an ablation
    with pytest.raises(ValueError, match="both 0, so every score would be 0"):
        get_proxy("incorporated_l", zen_weight=0, entropy_weight=0)
    with pytest.raises(ValueError, match="`entropy_weight` must be a finite number >= 0. Received: entropy_weight=-5"):
        get_proxy("incorporated_s", entropy_weight=-5)


def test_only_spaces_with_an_entropy_are_scored():
    nb201 = Nb201Space(channels=4, cells_per_stage=1)
    arch = nb201.decode(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    with pytest.raises(TypeError, match="'nb201'"):
        IncorporatedLogProxy().score_arch(nb201, arch, num_classes=10, input_shape=(8, 8, 3), batch_size=4,
                                          rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="score_arch"):
        IncorporatedLogProxy().score(None, random_batch(np.random.default_rng(0), 2, (8, 8, 3), 10), None)


@pytest.mark.parametrize("proxy_cls, normalize", [(IncorporatedLogProxy, math.log), (IncorporatedSqrtProxy, math.sqrt)])
def test_incorporated_is_the_combination(proxy_cls, normalize):
    space = ZenSpace(resolution=16)
    arch = space.start_arch
    kwargs = dict(num_classes=10, input_shape=(16, 16, 3), batch_size=8)
    zen = ZenProxy().score_arch(space, arch, rng=np.random.default_rng(4), **kwargs)
    e = space.entropy(arch, resolution=16)
    assert e > 0
    score = proxy_cls().score_arch(space, arch, rng=np.random.default_rng(4), **kwargs)
    assert score == pytest.approx(0.5 * zen + 0.01 * normalize(e), rel=1e-12)
    custom = proxy_cls(zen_weight=1.0, entropy_weight=2.0).score_arch(space, arch, rng=np.random.default_rng(4),
                                                                       **kwargs)
    assert custom == pytest.approx(zen + 2.0 * normalize(e), rel=1e-12)
    assert proxy_cls().combine(3.0, -1.0) == float("-inf") and proxy_cls().combine(3.0, 0.0) == float("-inf")
