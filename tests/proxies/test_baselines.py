"""Tests of the baseline proxies: params, flops, random (tfnas.proxies.baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.proxies.nb201_setup import CLASSES, SHAPE
from tests.spaces.archs import NB201_ALL_NONE, NB201_MIXED
from tfnas.proxies.base import get_proxy, random_batch
from tfnas.proxies.baselines import count_macs, count_params
from tfnas.spaces.nb201 import Nb201Space


def test_params_and_flops_analytic_agree_with_the_model(space):
    for arch in (space.decode(NB201_MIXED), space.from_index(321)):
        model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
        batch = random_batch(np.random.default_rng(0), 1, SHAPE, CLASSES)
        kw = dict(num_classes=CLASSES, input_shape=SHAPE, batch_size=1, rng=np.random.default_rng(0))
        params = get_proxy("params")
        assert params.score_arch(space, arch, **kw) == space.num_params(arch, num_classes=CLASSES)
        assert params.score(model, batch, None) == count_params(model) == space.num_params(arch, num_classes=CLASSES)
        flops = get_proxy("flops")
        assert flops.score_arch(space, arch, **kw) == space.flops(arch, input_shape=SHAPE, num_classes=CLASSES)
        # The analytic count adds the classifier's bias additions; the graph count has MACs only.
        assert count_macs(model, SHAPE) == space.flops(arch, input_shape=SHAPE, num_classes=CLASSES) - CLASSES
        assert flops.score(model, batch, None) == count_macs(model, SHAPE)


def test_published_nb201_size_range():
    """NB201 CIFAR-10 FLOPs range 7.78305M .. 220.11969M and 1,531,546 parameters (all 3x3 convs)."""
    space = Nb201Space()
    kw = dict(num_classes=10, input_shape=(32, 32, 3), batch_size=1, rng=np.random.default_rng(0))
    conv = space.decode("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                        "nor_conv_3x3~2|")
    assert get_proxy("flops").score_arch(space, conv, **kw) == 220119690
    assert get_proxy("flops").score_arch(space, space.decode(NB201_ALL_NONE), **kw) == 7783050
    assert get_proxy("params").score_arch(space, conv, **kw) == 1531546


def test_random_is_seeded_and_ignores_the_network(space):
    proxy = get_proxy("random")
    kw = dict(num_classes=CLASSES, input_shape=SHAPE, batch_size=1)
    a = [proxy.score_arch(space, space.from_index(i), rng=np.random.default_rng(7), **kw) for i in (0, 1)]
    assert a[0] == a[1] == np.random.default_rng(7).random()
    assert 0.0 <= a[0] < 1.0
    # on a built model (the proxy_corr path of spaces without a fast path) the same draw
    model = space.build(space.from_index(0), num_classes=CLASSES, input_shape=SHAPE)
    batch = random_batch(np.random.default_rng(0), 2, SHAPE, CLASSES)
    assert [proxy.score(model, batch, np.random.default_rng(seed)) for seed in (7, 8)] == [
        np.random.default_rng(seed).random() for seed in (7, 8)]


def test_flops_of_a_zen_arch_follow_the_input_shape():
    """The Zen space counts by ``resolution``, which the proxy never passed: the same FLOPs at every size."""
    from tfnas.spaces.zen import ZenSpace

    space = ZenSpace(resolution=8)
    arch = space.sample(np.random.default_rng(0))
    flops = get_proxy("flops")
    for side in (8, 16):
        got = flops.score_arch(space, arch, num_classes=10, input_shape=(side, side, 3), batch_size=2, rng=None)
        assert got == space.flops(arch, resolution=side, num_classes=10)
    assert space.flops(arch, resolution=8) != space.flops(arch, resolution=16)
    with pytest.raises(ValueError, match="square images only"):
        flops.score_arch(space, arch, num_classes=10, input_shape=(8, 16, 3), batch_size=2, rng=None)


@pytest.mark.parametrize("name", ["naswot", "synflow", "params", "random"])
@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"batch_size": 0}, ValueError, "batch_size"), ({"batch_size": 2.5}, ValueError, "batch_size"),
    ({"num_classes": 0}, ValueError, "num_classes"), ({"input_shape": (8, 8)}, ValueError, "(H, W, C)"),
    ({"rng": None}, TypeError, "rng must be a numpy.random.Generator"),
])
def test_scoring_arguments_that_cannot_be_are_named(name, kwargs, error, fragment):
    """naswot with batch_size 0 failed in a BatchNorm's graph ("Incompatible shapes: [3] vs. [4]"), num_classes 0
    in NumPy ("high <= 0"), rng None with "'NoneType' object has no attribute 'standard_normal'"."""
    if name == "params" and "rng" in kwargs:
        pytest.skip("a parameter count draws nothing")
    space = Nb201Space()
    args = dict(num_classes=CLASSES, input_shape=SHAPE, batch_size=2, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(error) as err:
        get_proxy(name).score_arch(space, space.decode(NB201_MIXED), **args)
    assert fragment in str(err.value)
