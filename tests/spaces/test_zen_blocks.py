"""Tests of Zen-NAS block strings, block validation and unit plans (tfnas.spaces.zen.blocks, .units)."""

from __future__ import annotations

import pytest

from tfnas.registry import SPACES
from tfnas.spaces.zen import DEFAULT_START, FAMILY_KINDS, ZenSpace
from tfnas.spaces.zen import IDW_KINDS, ConvSpec, ZenBlock, block_units, parse_arch

from tests.spaces.archs import INCORPORATED_S, ZEN_MIXED as MIXED, ZENNET


@pytest.fixture(scope="module")
def space() -> ZenSpace:
    return ZenSpace()


def test_registered_and_defaults(space):
    assert SPACES.get("zen") is ZenSpace
    assert (space.family, space.resolution, space.num_classes) == ("resnet", 32, 10)
    assert space.encode(space.start_arch) == DEFAULT_START
    assert len(IDW_KINDS) == 12 and len(FAMILY_KINDS["resnet"]) == 6
    with pytest.raises(ValueError, match="family"):
        ZenSpace(family="dense")
    with pytest.raises(ValueError, match="resolution"):
        ZenSpace(resolution=0)


@pytest.mark.parametrize("text", [DEFAULT_START, MIXED, INCORPORATED_S] + [s for s, _ in ZENNET.values()])
def test_round_trip(space, text):
    arch = space.decode(text)
    assert isinstance(arch, tuple) and all(isinstance(b, ZenBlock) for b in arch)
    assert space.encode(arch) == text
    assert space.decode(text + "\n") == arch  # the reference files end with a newline


def test_block_properties():
    idw, btl, res, conv = parse_arch(MIXED)[1], parse_arch(MIXED)[2], parse_arch(MIXED)[3], parse_arch(MIXED)[4]
    assert (idw.family, idw.kernel, idw.expansion, idw.num_units) == ("idw", 5, 2, 2)
    assert (btl.family, btl.kernel, btl.expansion, btl.num_units) == ("bottleneck", 7, None, 2)
    assert (res.family, res.kernel, res.num_units, res.bottleneck) == ("res", 5, 2, 16)
    assert (conv.family, conv.kernel, conv.bottleneck, conv.is_conv) == ("conv", 1, None, True)
    assert hash(res) == hash(parse_arch(MIXED)[3]) and res == parse_arch(MIXED)[3]
    with pytest.raises(AttributeError):
        res.cout = 8  # type: ignore[misc]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("SuperConvK3BNRELU(3,8,1,1)garbage", "cannot parse a block at character 26"),
    ("SuperResK3K5(3,8,1,8,1)", "unknown kind 'SuperResK3K5'"),
    ("SuperConvK2BNRELU(3,8,1,1)", "unknown kind"),
    ("SuperConvK3BNRELU(3,8,1,8,1)", "takes 4 arguments"),
    ("SuperResK3K3(3,8,1,1)", "takes 5 arguments"),
    ("SuperConvK3BNRELU(3,8,3,1)", "stride"),
    ("SuperConvK3BNRELU(3,0,1,1)", "cout"),
    ("SuperConvK3BNRELU(3,8,1,-1)", "non-negative integers"),
    ("SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(16,16,1,8,1)", "takes 16 channels but block 0"),
    # sizes that would build for hours: refused at once
    ("SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,100000)", r"`sub_layers` must be an integer in \[1, 256\]"),
    ("SuperConvK3BNRELU(3,16385,1,1)", r"`cout` must be an integer in \[1, 16384\]"),
    ("SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,8,1,99999,1)", r"`bottleneck` must be an integer in \[1, 16384\]"),
    ("SuperConvK3BNRELU(3,8,1,1)" + "SuperResK1K3K1(8,8,1,8,200)" * 3, "at most 1024 units .* this one has 1,201"),
])
def test_decode_rejects_bad_strings(space, text, message):
    with pytest.raises(ValueError, match=message):
        space.decode(text)


def test_block_validation():
    with pytest.raises(ValueError, match="no bottleneck"):
        ZenBlock("SuperConvK3BNRELU", 3, 8, 1, 8, 1)
    with pytest.raises(ValueError, match="bottleneck"):
        ZenBlock("SuperResK3K3", 3, 8, 1, None, 1)
    with pytest.raises(TypeError, match="tuple of ZenBlock"):
        ZenSpace().encode(DEFAULT_START)


def test_unit_plans_follow_the_reference():
    idw = ZenBlock("SuperResIDWE4K3", 16, 24, 2, 12, 1)
    first, second = block_units(idw)
    assert first.convs == (ConvSpec(16, 48, 1, 1), ConvSpec(48, 48, 3, 2, True), ConvSpec(48, 12, 1, 1))
    assert second.convs == (ConvSpec(12, 96, 1, 1), ConvSpec(96, 96, 3, 1, True), ConvSpec(96, 24, 1, 1))
    assert first.projection and second.projection  # 12 -> 24 changes shape
    res = block_units(ZenBlock("SuperResK3K3", 8, 16, 2, 8, 2))
    assert [u.projection for u in res] == [True, False] and res[0].stride == 2 and res[1].stride == 1
    btl = block_units(ZenBlock("SuperResK1K5K1", 16, 16, 1, 8, 1))
    assert [u.projection for u in btl] == [True, False]  # the first unit of a block always projects
    conv = block_units(ZenBlock("SuperConvK5BNRELU", 3, 8, 2, None, 2))
    assert [(u.residual, u.convs[0].stride, u.convs[0].cin) for u in conv] == [(False, 2, 3), (False, 1, 8)]
