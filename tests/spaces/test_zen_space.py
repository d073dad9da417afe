"""Tests of the Zen-NAS space: choices, mutation, sampling, splitting, factory."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.config import ConfigError, load_config
from tfnas.spaces.zen import (
    FAMILY_KINDS,
    KERNEL_WEIGHTS,
    ZenSpace,
    channel_choices,
    layer_choices,
    num_layers,
    reference_kind_weights,
    split_long_blocks,
)
from tfnas.run.factory import build_space
from tfnas.spaces.zen import parse_arch


@pytest.fixture(scope="module")
def space() -> ZenSpace:
    return ZenSpace()


def test_choices():
    assert channel_choices(64) == (160, 128, 96, 80, 64, 48, 40, 32, 24)
    assert channel_choices(8) == (16, 8)  # 20 -> 16 and 12 -> 16: round half to even, as the reference
    assert channel_choices(2048) == (2048, 1640, 1368, 1024, 816)
    assert layer_choices(1) == (3, 2, 1) and layer_choices(4) == (6, 5, 4, 3, 2)
    assert layer_choices(256) == (256, 255, 254)  # tfnas.spaces.zen.blocks.MAX_SUB_LAYERS


def test_a_mutation_stays_within_the_arch_size_bounds(space):
    """A search with a parameter budget but no layer limit grows deep networks (Zen rewards depth): its
    children must stay valid archs, or the search stops with an error part-way."""
    deep = parse_arch("SuperConvK3BNRELU(3,8,1,1)" + "SuperResK1K3K1(8,8,1,8,5)" * 102 + "SuperConvK1BNRELU(8,16,1,1)")
    assert sum(block.num_units for block in deep) == 1022
    for seed in range(40):
        child = space.split_long_blocks(space.mutate(deep, np.random.default_rng(seed)))
        assert sum(block.num_units for block in child) <= 1024


def _changed(before, after):
    return [i for i, (a, b) in enumerate(zip(before, after)) if a.replace(cin=b.cin) != b]


@pytest.mark.parametrize("family", ["resnet", "mobile"])
def test_mutation_rules(family):
    space = ZenSpace(family=family)
    rng = np.random.default_rng(0)
    kinds_seen = set()
    arch = space.start_arch
    for step in range(300):
        num_blocks = 1 + step % 2
        new = space.mutate(arch, rng, num_blocks=num_blocks)
        assert new != arch and len(new) == len(arch)
        assert [b.stride for b in new] == [b.stride for b in arch]
        assert new[0].cin == arch[0].cin == 3
        changed = _changed(arch, new)
        assert len(changed) == num_blocks
        for i, (old, b) in enumerate(zip(arch, new)):
            if i:
                assert b.cin == new[i - 1].cout
            if i not in changed:
                continue
            assert b.cout % 8 == 0 and 8 <= b.cout <= 2048 and b.cout in channel_choices(old.cout)
            if old.is_conv:
                assert (b.kind, b.sub_layers, b.bottleneck) == (old.kind, old.sub_layers, None)
                assert not (family == "mobile" and old.kernel == 1), "the mobile head conv is fixed"
            else:
                assert b.kind in FAMILY_KINDS[family]
                assert b.bottleneck % 8 == 0 and b.bottleneck in channel_choices(old.bottleneck)
                assert max(1, old.sub_layers - 2) <= b.sub_layers <= old.sub_layers + 2
                kinds_seen.add(b.kind)
        arch = split_long_blocks(new)
    assert kinds_seen == set(FAMILY_KINDS[family])


def test_mutation_and_sampling_are_deterministic(space):
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    first = [space.mutate(space.start_arch, a) for _ in range(20)]
    assert first == [space.mutate(space.start_arch, b) for _ in range(20)]
    samples = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert samples[0] == samples[1]
    for arch in [space.sample(np.random.default_rng(s)) for s in range(20)]:
        assert all(block.is_conv or block.sub_layers < 6 for block in arch)
        assert parse_arch(space.encode(arch)) == arch


def test_mutate_rejects_fixed_archs():
    space = ZenSpace(start="SuperConvK1BNRELU(3,16,1,1)", family="mobile")
    with pytest.raises(ValueError, match="no block"):
        space.mutate(space.start_arch, np.random.default_rng(0))


def test_split_long_blocks(space):
    arch = space.decode("SuperConvK3BNRELU(3,8,1,8)SuperResK1K3K1(8,32,2,16,7)SuperResK3K3(32,32,1,8,5)")
    split = split_long_blocks(arch)
    assert space.encode(split) == ("SuperConvK3BNRELU(3,8,1,8)SuperResK1K3K1(8,32,2,16,3)"
                                   "SuperResK1K3K1(32,32,1,16,4)SuperResK3K3(32,32,1,8,5)")
    assert space.split_long_blocks(split) == split
    six = space.decode("SuperConvK3BNRELU(3,8,1,1)SuperResK5K5(8,16,2,8,6)")
    assert space.encode(split_long_blocks(six)).endswith("SuperResK5K5(8,16,2,8,3)SuperResK5K5(16,16,1,8,3)")
    assert num_layers(split_long_blocks(arch)) == num_layers(arch)


def _drawn_kinds(space: ZenSpace, draws: int, seed: int = 0):
    """Kinds of the residual blocks of ``draws`` mutations of the start, every block mutated."""
    rng = np.random.default_rng(seed)
    arch = space.start_arch
    kinds = [b.kind for _ in range(draws) for b in space.mutate(arch, rng, num_blocks=len(arch)) if not b.is_conv]
    return {kind: kinds.count(kind) / len(kinds) for kind in FAMILY_KINDS[space.family]}


def test_reference_kernel_weights():
    """The reference's flattened candidate lists weigh kernels 3 : 5 : 7 as 3 : 3 : 2 per type group
    (the 12 IDW types 12 : 12 : 11 : ... : 2); ``kernel_weights`` picks them or uniform types."""
    assert reference_kind_weights("resnet") == (3, 3, 2, 3, 3, 2)
    assert reference_kind_weights("mobile") == (12, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2)
    assert KERNEL_WEIGHTS == ("uniform", "reference")
    with pytest.raises(ValueError, match="kernel_weights"):
        ZenSpace(kernel_weights="weighted")


@pytest.mark.parametrize("family", ["resnet", "mobile"])
@pytest.mark.parametrize("kernel_weights", ["uniform", "reference"])
def test_drawn_kind_frequencies(family, kernel_weights):
    """Seeded frequencies of the drawn block types within 0.02 of the chosen weights (about 6
    standard errors at these sample sizes)."""
    space = ZenSpace(family=family, kernel_weights=kernel_weights)
    kinds = FAMILY_KINDS[family]
    weights = np.ones(len(kinds)) if kernel_weights == "uniform" else np.asarray(reference_kind_weights(family))
    expected = weights / weights.sum()
    frequencies = _drawn_kinds(space, 1500 if family == "resnet" else 3000)
    np.testing.assert_allclose([frequencies[k] for k in kinds], expected, atol=0.02)
    if family == "resnet" and kernel_weights == "reference":  # kernel sizes 3 : 5 : 7 drawn 3 : 3 : 2
        by_kernel = [frequencies[f"SuperResK{n}K{n}"] + frequencies[f"SuperResK1K{n}K1"] for n in (3, 5, 7)]
        np.testing.assert_allclose(by_kernel, [3 / 8, 3 / 8, 2 / 8], atol=0.02)


def test_uniform_kernel_weights_keep_the_default_draws():
    a = ZenSpace()
    b = ZenSpace(kernel_weights="uniform")
    ra, rb = np.random.default_rng(5), np.random.default_rng(5)
    assert [a.mutate(a.start_arch, ra) for _ in range(30)] == [b.mutate(b.start_arch, rb) for _ in range(30)]


def test_space_section_sets_kernel_weights():
    cfg = load_config(None, ["space.name=zen", "space.kernel_weights=reference", "dataset.name=cifar10"])
    assert build_space(cfg).kernel_weights == "reference"
    assert build_space(load_config(None, ["space.name=zen", "dataset.name=cifar10"])).kernel_weights == "uniform"
    with pytest.raises(ConfigError, match="kernel_weights"):
        load_config(None, ["space.name=zen", "space.kernel_weights=weighted"])
