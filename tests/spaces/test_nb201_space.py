"""Tests of the NAS-Bench-201 space: strings, index, canonical form, graphs, costs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.spaces.archs import NB201_FIVE_CONV3, NB201_MIXED
from tfnas.benchmarks.nb201_data import load_arrays
from tfnas.registry import SPACES
from tfnas.spaces.nb201 import graph
from tfnas.spaces.base import GraphSpace, TabularSpace
from tfnas.spaces.nb201 import GRAPH_OPS, OPS, Nb201Arch, Nb201Space

ALL_CONV3 = Nb201Arch(("nor_conv_3x3",) * 6)
ALL_NONE = Nb201Arch(("none",) * 6)


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    return Nb201Space()


def test_registered_and_capabilities():
    cls = SPACES.get("nb201")
    assert cls is Nb201Space
    s = cls()
    assert s.name == "nb201" and s.size == 15625
    assert (s.channels, s.cells_per_stage) == (16, 5)
    assert isinstance(s, GraphSpace) and isinstance(s, TabularSpace)
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_space_rejects_bad_kwargs():
    with pytest.raises(ValueError, match="channels=0"):
        Nb201Space(channels=0)
    with pytest.raises(ValueError, match="cells_per_stage"):
        Nb201Space(cells_per_stage=2.5)


def test_arch_is_immutable_hashable_and_validated():
    a = Nb201Arch(["skip_connect"] * 6)
    assert a.ops == ("skip_connect",) * 6 and isinstance(a.ops, tuple)
    assert hash(a) == hash(Nb201Arch(("skip_connect",) * 6)) and a == Nb201Arch(("skip_connect",) * 6)
    with pytest.raises(AttributeError):
        a.ops = ("none",) * 6  # type: ignore[misc]
    with pytest.raises(ValueError, match="needs 6 ops"):
        Nb201Arch(("none",) * 5)
    with pytest.raises(ValueError, match="unknown op 'conv'"):
        Nb201Arch(("none",) * 5 + ("conv",))
    with pytest.raises(TypeError):
        Nb201Arch("none")
    assert Nb201Arch.from_ids([3, 3, 3, 3, 3, 3]) == ALL_CONV3
    assert ALL_CONV3.ids == (3,) * 6


def test_encode_official_string(space):
    arch = Nb201Arch(("nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "none", "nor_conv_3x3"))
    assert space.encode(arch) == NB201_MIXED
    assert space.decode(NB201_MIXED) == arch


def test_all_cells_round_trip_and_table_order(space):
    table = load_arrays()["ops"]
    seen = set()
    for i in range(space.size):
        arch = space.from_index(i)
        assert arch.ids == tuple(int(v) for v in table[i])
        text = space.encode(arch)
        assert space.decode(text) == arch
        assert space.index(arch) == i
        seen.add(text)
    assert len(seen) == 15625
    np.testing.assert_array_equal(space.ops_matrix(), table)
    np.testing.assert_array_equal(space.indices(space.ops_matrix()), np.arange(15625))


def test_index_errors(space):
    with pytest.raises(IndexError, match="15625"):
        space.from_index(15625)
    with pytest.raises(IndexError):
        space.from_index(-1)
    with pytest.raises(TypeError):
        space.from_index(1.0)
    with pytest.raises(TypeError, match="decode"):
        space.index(NB201_FIVE_CONV3)


@pytest.mark.parametrize(
    "text, match",
    [
        ("|none~0|+|none~0|none~1|", "3 '\\+'-separated"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "start and end with '\\|'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must list 2 input"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "must come from node 1"),
        ("|none~0|+|none~0|conv~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form"),
        (" |none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "start and end"),
        ("", "3 '\\+'-separated"),
    ],
)
def test_decode_is_strict(space, text, match):
    with pytest.raises(ValueError, match=match):
        space.decode(text)


def test_canonical_published_unique_count(space):
    # NAS-Bench-201 (Dong & Yang 2020, Sec. 2.1): 6,466 unique cells among 15,625.
    keys = {space.canonical(space.from_index(i)) for i in range(space.size)}
    assert len(keys) == 6466


def test_canonical_merges_equivalent_cells(space):
    # node1 = skip(x); node3 = conv(node1)  ==  node3 = conv(x)
    a = space.decode("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    b = space.decode("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert space.canonical(a) == space.canonical(b)
    # ops feeding only dead (zero) paths do not matter
    c = space.decode("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    d = space.decode("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert space.canonical(c) == space.canonical(d)
    # a different function differs
    e = space.decode("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|")
    assert space.canonical(e) != space.canonical(b)


def test_sample_deterministic_and_covers_ops(space):
    a = [space.sample(np.random.default_rng(42)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(400)]
    assert len(set(draws)) > 350
    counts = np.bincount(np.array([d.ids for d in draws]).ravel(), minlength=5)
    assert counts.min() > 0.15 * 2400 and counts.max() < 0.25 * 2400


def test_mutate_changes_exactly_one_edge(space):
    rng = np.random.default_rng(3)
    arch = space.sample(rng)
    changed_edges = set()
    for _ in range(200):
        child = space.mutate(arch, rng)
        diff = [k for k in range(6) if child.ops[k] != arch.ops[k]]
        assert len(diff) == 1
        changed_edges.add(diff[0])
    assert changed_edges == set(range(6))
    m1 = space.mutate(arch, np.random.default_rng(9))
    assert m1 == space.mutate(arch, np.random.default_rng(9))


def test_to_graph_encoding(space):
    adj, ops = space.to_graph(space.decode(NB201_MIXED))
    assert adj.shape == (10, 10) and ops.shape == (10, len(GRAPH_OPS)) and len(GRAPH_OPS) == 9
    assert adj.dtype == np.float32 and ops.dtype == np.float32
    assert np.trace(adj) == 0 and adj.sum() == 12
    expected_edges = {(0, 1), (0, 3), (0, 6), (1, 2), (2, 4), (2, 7), (3, 5), (4, 5), (5, 8), (6, 9), (7, 9), (8, 9)}
    assert {tuple(e) for e in np.argwhere(adj == 1)} == expected_edges
    np.testing.assert_array_equal(ops.sum(axis=1), np.ones(10))
    labels = [GRAPH_OPS[k] for k in ops.argmax(axis=1)]
    assert labels == [
        "split_3", "nor_conv_3x3", "split_2", "nor_conv_1x1", "skip_connect",
        "none", "avg_pool_3x3", "zeros", "nor_conv_3x3", "output",
    ]


def test_all_graphs_fast_and_consistent(space):
    graph.all_graphs.cache_clear()
    start = time.perf_counter()
    adj, ops = space.all_graphs()
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"all_graphs took {elapsed:.3f}s"  # ~20 ms; a loop over cells in Python takes minutes
    assert adj.shape == (15625, 10, 10) and ops.shape == (15625, 10, 9)
    assert adj.dtype == np.float32 and ops.dtype == np.float32
    assert space.all_graphs()[0] is adj  # cached
    for i in list(range(0, 15625, 97)) + [15624]:
        a, o = space.to_graph(space.from_index(i))
        np.testing.assert_array_equal(adj[i], a)
        np.testing.assert_array_equal(ops[i], o)
    idx = np.array([5, 9930, 0, 5])
    sub_adj, sub_ops = space.graphs(idx)
    np.testing.assert_array_equal(sub_ops, ops[idx])
    np.testing.assert_array_equal(sub_adj, adj[idx])
    with pytest.raises(IndexError):
        space.graphs([15625])
    with pytest.raises(ValueError):
        space.graphs(np.zeros((2, 2), np.int64))


# Published NAS-Bench-201 / NATS-Bench cost ranges (min = all-none cell, max = all-nor_conv_3x3):
# params (M) CIFAR-10 0.073306..1.531546, CIFAR-100 0.079156..1.537396, ImageNet16-120 0.080456..1.538696;
# FLOPs (M) CIFAR-10 7.78305..220.11969, ImageNet16-120 (16x16 input) 1.9534..55.03756.
@pytest.mark.parametrize(
    "arch, classes, params",
    [
        (ALL_CONV3, 10, 1_531_546),
        (ALL_NONE, 10, 73_306),
        (ALL_CONV3, 100, 1_537_396),
        (ALL_NONE, 100, 79_156),
        (ALL_CONV3, 120, 1_538_696),
        (ALL_NONE, 120, 80_456),
    ],
)
def test_num_params_published(space, arch, classes, params):
    assert space.num_params(arch, num_classes=classes) == params


def test_num_params_mixed_cells(space):
    # Per edge and stage (C = 16, 32, 64; 5 cells each): 3x3 conv 9C^2 + 2C -> 243,040 in
    # total, 1x1 conv C^2 + 2C -> 28,000, other ops 0; on top of the 73,306 of the skeleton.
    assert space.num_params(space.decode(NB201_MIXED)) == 73_306 + 2 * 243_040 + 28_000 == 587_386
    assert space.num_params(space.decode(NB201_FIVE_CONV3)) == 73_306 + 5 * 243_040 == 1_288_506


@pytest.mark.parametrize(
    "arch, shape, classes, flops",
    [
        (ALL_CONV3, (32, 32, 3), 10, 220_119_690),
        (ALL_NONE, (32, 32, 3), 10, 7_783_050),
        (ALL_CONV3, (16, 16, 3), 120, 55_037_560),
        (ALL_NONE, (16, 16, 3), 120, 1_953_400),
    ],
)
def test_flops_published(space, arch, shape, classes, flops):
    assert space.flops(arch, input_shape=shape, num_classes=classes) == flops
