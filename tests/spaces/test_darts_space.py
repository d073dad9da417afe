"""Tests of the DARTS space: RelativeNAS vector encoding, sampling, mutation, graph view, parameter counts."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.spaces.darts import OPS, PRESETS, VECTOR_SIZE, DartsSpace, vector_bounds


def test_vector_bounds_and_floor_decoding():
    lower, upper = vector_bounds()
    assert lower.shape == upper.shape == (VECTOR_SIZE,) == (32,)
    # node j: (input, op, input, op) with input < 2 + j, op < 7; same for the reduction half.
    np.testing.assert_array_equal(upper[:16], [2, 7, 2, 7, 3, 7, 3, 7, 4, 7, 4, 7, 5, 7, 5, 7])
    np.testing.assert_array_equal(upper[16:], upper[:16])
    # the upper bound decodes to ub - 1, the lower to 0.
    top = DartsSpace.from_vector(upper)
    assert top.normal[-1] == (OPS[-1], 4) and top.reduce[0] == (OPS[-1], 1)
    bottom = DartsSpace.from_vector(lower)
    assert all(p == (OPS[0], 0) for p in bottom.normal + bottom.reduce)
    x = np.full(32, 1.7)
    assert DartsSpace.from_vector(x).normal[0] == (OPS[1], 1)
    with pytest.raises(ValueError, match="shape"):
        DartsSpace.from_vector(np.zeros(31))


def test_vector_round_trip_sampling_and_mutation():
    space = DartsSpace()
    rng = np.random.default_rng(3)
    lower, upper = vector_bounds()
    for _ in range(30):
        x = space.sample_vector(rng)
        assert np.all(x >= lower) and np.all(x <= upper)
        arch = space.from_vector(x)
        v = space.to_vector(arch)
        assert space.from_vector(v) == arch
        np.testing.assert_array_equal(np.floor(v), np.floor(x))
        child = space.mutate(arch, rng)
        differences = np.count_nonzero(np.floor(space.to_vector(child)) != np.floor(v))
        assert differences == 1
    ids = DartsSpace.to_ids(PRESETS["relativenas"])
    assert ids.shape == (2, 4, 2, 2)
    assert tuple(ids[0, 0, 1]) == (1, OPS.index("dil_conv_5x5"))


def test_graph_view():
    adj, ops = DartsSpace().to_graph(PRESETS["relativenas"])
    assert adj.shape == (30, 30) and ops.shape[0] == 30
    np.testing.assert_array_equal(ops.sum(axis=1), 1)
    assert np.trace(adj) == 0
    # each cell: 8 input->op edges, 8 op->add edges, 4 add->output edges.
    assert adj[:15, :15].sum() == adj[15:, 15:].sum() == 20
    assert adj[:15, 15:].sum() == adj[15:, :15].sum() == 0
    # DAG: nodes are in topological order, so the adjacency is strictly upper triangular.
    assert np.all(np.tril(adj) == 0)


def test_published_parameter_counts():
    # CIFAR-10, C=36, 20 cells, auxiliary head excluded (the figure the papers report).
    space = DartsSpace()
    rel = space.num_params(PRESETS["relativenas"])
    darts = space.num_params(PRESETS["darts_v2"])
    assert round(rel / 1e6, 2) == 3.93
    assert round(darts / 1e6, 1) == 3.3
    assert darts == 3_349_342  # DARTS' own count_parameters_in_MB gives 3.349342
    assert space.num_params(PRESETS["relativenas"], num_classes=100) > rel
    assert round(space.num_params(PRESETS["relativenas"], num_classes=100) / 1e6, 2) == 3.98  # published CIFAR-100: 3.98 M
