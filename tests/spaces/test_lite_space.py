"""Tests of the lite search space (tfnas.spaces.lite.space) and its [space] configuration."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.config import ConfigError, load_config
from tfnas.registry import SPACES
from tfnas.run.factory import build_space
from tfnas.spaces.base import GraphSpace
from tfnas.spaces.lite import GRAPH_OPS, PRESETS, LiteArch, LiteSpace, entry_bounds, to_ids


def test_registered_and_configured():
    assert SPACES.get("lite") is LiteSpace
    space = build_space(load_config(None, ["space.name=lite", "space.channels=8", "space.blocks=1, 0, 3"]))
    assert isinstance(space, LiteSpace) and isinstance(space, GraphSpace)
    assert (space.channels, space.blocks, space.auxiliary) == (8, (1, 0, 3), False)
    aux = build_space(load_config(None, ["space.name=lite", "train.aux_weight=0.4"]))
    assert aux.blocks == (2, 2) and aux.auxiliary
    with pytest.raises(ConfigError, match="space.blocks: expected a comma-separated list of integers >= 0"):
        load_config(None, ["space.name=lite", "space.blocks=2, -1"])
    with pytest.raises(ConfigError, match=r"^--set space\.blocks; <defaults>: \[space\] channels: .*non-empty"):
        build_space(load_config(None, ["space.name=lite", "space.blocks="]))
    with pytest.raises(ConfigError, match=r"^--set space\.channels; <defaults>: \[space\] blocks: .*even"):
        build_space(load_config(None, ["space.name=lite", "space.channels=9"]))


def test_encode_decode_round_trip_and_presets():
    space = LiteSpace()
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.decode(space.encode(arch)) == arch
    paper = space.decode("slnas_paper")
    assert paper is PRESETS["slnas_paper"]
    assert space.encode(paper).startswith("[[0, 1, 0, 4, 1, 3,")
    with pytest.raises(TypeError, match="LiteArch"):
        space.encode("slnas_paper")
    np.testing.assert_array_equal(space.to_ids(paper), to_ids(paper))


def test_sampling_is_uniform_over_valid_entries():
    space = LiteSpace()
    rng = np.random.default_rng(1)
    bounds = entry_bounds()
    np.testing.assert_array_equal(bounds[:4], [2, 5, 2, 5])
    np.testing.assert_array_equal(bounds[16:], [6, 5, 6, 5])
    values = np.array([list(a.normal) + list(a.reduce) for a in (space.sample(rng) for _ in range(600))])
    for k in range(40):
        counts = np.bincount(values[:, k], minlength=bounds[k % 20])
        assert len(counts) == bounds[k % 20] and counts.min() > 600 / bounds[k % 20] / 2, (k, counts)
    assert space.sample(np.random.default_rng(7)) == space.sample(np.random.default_rng(7))


def test_mutate_changes_exactly_one_entry_and_never_returns_the_arch():
    space = LiteSpace()
    rng = np.random.default_rng(2)
    arch = space.decode("slnas_paper")
    before = np.array(arch.normal + arch.reduce)
    changed_positions = set()
    for _ in range(300):
        child = space.mutate(arch, rng)
        assert isinstance(child, LiteArch) and child != arch
        diff = np.flatnonzero(np.array(child.normal + child.reduce) != before)
        assert len(diff) == 1
        changed_positions.add(int(diff[0]))
    assert len(changed_positions) > 30


def test_graph_view():
    space = LiteSpace()
    arch = space.decode("slnas_paper")
    adj, ops = space.to_graph(arch)
    assert adj.shape == (36, 36) and ops.shape == (36, len(GRAPH_OPS)) == (36, 14)
    assert adj.dtype == ops.dtype == np.float32
    np.testing.assert_array_equal(ops.sum(1), np.ones(36))
    assert np.all(np.triu(adj, 1) == adj)  # topological order, no self loops
    assert adj.sum() == 2 * (10 + 10 + 5)  # input->op, op->add, add->output per cell
    assert not adj[:18, 18:].any() and not adj[18:, :18].any()
    labels = [GRAPH_OPS[i] for i in ops.argmax(1)]
    # normal node 0 = shuffle_5x5(h_{k-2}) + conv_1x1(h_{k-2}); node 1 = two max pools;
    # reduction node 0 = max pool (h_{k-2}) + shuffle_3x3 (h_{k-1})
    assert labels[:8] == ["input_prev_prev", "input_prev", "normal_shuffle_5x5", "normal_conv_1x1", "add",
                          "normal_conv_1x1_max_pool_3x3", "normal_conv_1x1_max_pool_3x3", "add"]
    assert adj[0, 2] == adj[0, 3] == adj[2, 4] == adj[3, 4] == adj[4, 17] == 1
    assert labels[18 + 2 : 18 + 4] == ["reduce_conv_1x1_max_pool_3x3", "reduce_shuffle_3x3"]
    assert adj[18, 20] == adj[19, 21] == 1
    other = space.mutate(arch, np.random.default_rng(0))
    assert not (np.array_equal(space.to_graph(other)[0], adj) and np.array_equal(space.to_graph(other)[1], ops))


def test_num_params_overrides_and_argument_checks():
    space = LiteSpace(channels=8, blocks=(1, 1))
    arch = space.decode("slnas_paper")
    assert space.num_params(arch, 10, channels=40, blocks=(2, 2)) == 624_800
    assert space.num_params(arch, 10, auxiliary=True) - space.num_params(arch, 10) == 16 * 10
    assert space.num_params(arch, 100) > space.num_params(arch, 10)
    with pytest.raises(ValueError, match="even"):
        space.num_params(arch, channels=7)
    with pytest.raises(ValueError, match="channels"):
        LiteSpace(channels=2)
    with pytest.raises(ValueError, match="non-empty"):
        LiteSpace(blocks=())
    with pytest.raises(TypeError, match="unexpected keyword"):
        space.build(arch, 10, (16, 16, 3), layers=3)
    with pytest.raises(TypeError, match="LiteArch"):
        space.to_graph("slnas_paper")
    assert "LiteSpace(channels=8, blocks=(1, 1)" in repr(space)
