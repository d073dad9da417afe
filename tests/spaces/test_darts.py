"""Tests for tfnas.spaces.darts (genotypes, text form, RelativeNAS encoding, graph view) and darts_net."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfnas.registry import SPACES
from tfnas.spaces.darts import (
    OPS,
    PRESETS,
    VECTOR_SIZE,
    DartsGenotype,
    DartsSpace,
    parse_genotype,
    vector_bounds,
)
from tfnas.spaces.darts_net import count_network_params, op_params

# The DARTS code prints genotypes with range(2, 6) concats; this is genotypes.DARTS_V2 verbatim.
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


def test_registered_and_text_round_trip():
    space = SPACES.get("darts")()
    assert isinstance(space, DartsSpace)
    g = parse_genotype(DARTS_V2_TEXT)
    assert g == PRESETS["darts_v2"]
    text = space.encode(g)
    assert "range" not in text and text.startswith("Genotype(normal=[('sep_conv_3x3', 0)")
    assert space.decode(text) == g
    assert space.decode("  RelativeNAS ") == PRESETS["relativenas"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.decode(space.encode(arch)) == arch


@pytest.mark.parametrize(
    "text, match",
    [
        ("Genotype(normal=[('none', 0)] * 8, normal_concat=[2], reduce=[], reduce_concat=[2])", "literal list"),
        (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('none', 2)"), "no 'none' op"),
        (DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('conv_7x7', 2)"), "unknown op"),
        (DARTS_V2_TEXT.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 2), ('sep_conv_3x3', 0)"),
         "input must be a state index"),
        (DARTS_V2_TEXT.replace(", reduce_concat=range(2, 6)", ""), "missing reduce_concat"),
        ("__import__('os').system('true')", "keyword form"),
        ("Genotype(normal=", "not an expression"),
    ],
)
def test_bad_genotype_text_is_a_clear_error(text, match):
    with pytest.raises(ValueError, match=match):
        parse_genotype(text)


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


@pytest.mark.parametrize("preset", ["relativenas", "darts_v2"])
def test_analytic_params_equal_the_keras_network(preset):
    arch = PRESETS[preset]
    space = DartsSpace(channels=8, layers=5)
    model = space.build(arch, 10, (32, 32, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == space.num_params(arch, auxiliary=True)
    model = space.build(arch, 10, (32, 32, 3), auxiliary=False)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == space.num_params(arch)
    assert count_network_params(arch, 10, 8, 5, False) == trainable


def test_network_outputs_aux_logits_only_in_training_and_drop_path():
    space = DartsSpace(channels=4, layers=3)
    model = space.build(PRESETS["relativenas"], 7, (32, 32, 3), drop_path_rate=0.2, seed=1)
    x = tf.random.normal((2, 32, 32, 3), seed=0)
    logits, aux = model(x, training=True)
    assert logits.shape == aux.shape == (2, 7)
    assert model(x, training=False).shape == (2, 7)
    # inference is deterministic (DropPath off); training is not when ops are dropped.
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))
    no_aux = space.build(PRESETS["relativenas"], 7, (16, 16, 3), auxiliary=False)
    assert no_aux(tf.zeros((1, 16, 16, 3)), training=True).shape == (1, 7)
    with pytest.raises(ValueError, match="auxiliary head needs images"):
        space.build(PRESETS["relativenas"], 7, (16, 16, 3), auxiliary=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        space.build(PRESETS["relativenas"], 7, bogus=1)


def test_keras_round_trip(tmp_path):
    import keras

    space = DartsSpace(channels=4, layers=3)
    model = space.build(PRESETS["darts_v2"], 5, (32, 32, 3))
    x = tf.random.normal((2, 32, 32, 3), seed=1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_op_param_formulas():
    from tfnas.spaces.darts_net import make_op

    for op in OPS:
        for strides in (1, 2):
            layer = make_op(op, 8, strides)
            layer.build((None, 8, 8, 8))
            trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            assert trainable == op_params(op, 8, strides), (op, strides)
            y = layer(tf.zeros((1, 8, 8, 8)))
            assert tuple(y.shape) == (1, 8 // strides, 8 // strides, 8), (op, strides)


def test_genotype_type_checks():
    g = PRESETS["darts_v2"]
    with pytest.raises(ValueError, match="8 .op, input. pairs"):
        DartsGenotype(g.normal[:7], g.normal_concat, g.reduce, g.reduce_concat)
    with pytest.raises(ValueError, match="concat"):
        DartsGenotype(g.normal, (2, 2, 3), g.reduce, g.reduce_concat)
    with pytest.raises(TypeError, match="DartsGenotype"):
        DartsSpace().encode("darts_v2")
