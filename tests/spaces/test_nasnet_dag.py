"""The NASNet-DAG space: text form, validity, canonical keys, the Keras network and the supernet."""

import numpy as np
import pytest
import tensorflow as tf

from tfnas.registry import SPACES
from tfnas.spaces.nasnet_dag import NasnetDagSpace, make_cell, parse_arch
from tfnas.spaces.nasnet_dag.arch import DagCell, NasnetDagArch
from tfnas.spaces.nasnet_dag.supernet import NasnetDagSupernet
from tfnas.train.export import count_params

ARCH = "12340:0>2,1>3,2>3,3>4 / 1250:0>2,1>2,2>3"
MIXED = "12370:0>2,1>3,2>3,3>4 / 123570:0>2,0>3,1>4,2>3,2>4,3>5,4>5,1>5"  # reduction: mixed node, input->output


def small(**kwargs):
    return NasnetDagSpace(channels=4, layers=3, search_channels=4, search_layers=3, **kwargs)


def test_text_round_trip_and_registration():
    space = SPACES.get("nasnet_dag")()
    arch = space.decode(ARCH)
    assert space.encode(arch) == ARCH and space.decode(space.encode(arch)) == arch
    assert [arch.normal.types, arch.reduction.types] == [(1, 2, 3, 4, 0), (1, 2, 5, 0)]


@pytest.mark.parametrize("text, match", [
    ("12340:0>2", "<normal cell> / <reduction cell>"),
    ("12340:0>2,1>3,2>4,3>4 / 12x:0>1", "expected '<codes>"),
    ("12340:3>2,2>4 / 1250:0>2,2>3", "must go forward"),
    ("1230:0>3 / 1250:0>2,2>3", "not a valid cell"),  # no op node on a path
    ("21340:0>2,2>4 / 1250:0>2,2>3", "not a valid cell"),  # inputs out of order
    ("12390:0>2,2>4 / 1250:0>2,2>3", "not a valid cell"),  # unknown code 9
    ("12340:0>2 1>3,2>3,3>4 / 1250:0>2,1>2,2>3", "edge '0>2 1>3' must read i>j"),  # a space for a comma
    ("12340:0>2,1>3,2>3,3>4, / 1250:0>2,1>2,2>3", "edge '' must read i>j"),  # a trailing comma
    ("12340:0>2,,1>3,2>3,3>4 / 1250:0>2,1>2,2>3", "expected '<codes>"),
    ("12340:0>2,1>3,2>3,3>4,0>2 / 1250:0>2,1>2,2>3", "edge 0>2 is listed twice"),
    ("12340:0>\u0662,1>3,2>3,3>4 / 1250:0>2,1>2,2>3", "expected '<codes>"),  # an Arabic-Indic digit two
])
def test_bad_text_is_refused_with_the_reason(text, match):
    with pytest.raises(ValueError, match=match):
        parse_arch(text)


@pytest.mark.parametrize("types, edges, error, match", [
    ((1, 2, 9, 0), ((0, 2), (2, 3)), ValueError, "not a valid cell"),  # unknown code 9
    ((1, 2, 3, 0), ((0, 2),), ValueError, "not a valid cell"),  # the op node reaches no output
    ((1, 2, 3, 3, 0), ((0, 2), (2, 4)), ValueError, "keeps nodes off every input -> output path"),  # not pruned
    ((1, 2, 3, 0), ((0, 2), (2, 3), (0, 2)), ValueError, "distinct and go forward"),
    ((1, 2, 3, 0), ((2, 0), (2, 3)), ValueError, "distinct and go forward"),
    ((1, 2, 3, 0), ((0, 2), (2, 7)), ValueError, "distinct and go forward"),
    ((1, 2, 3, 0), ((0, 2), (2, 3), (0, 1)), ValueError, "an edge enters an input node"),
    ((1, 2, 0), ((0, 2),), ValueError, "3 nodes; a cell has 4..10"),
    ((1, 2, 3.5, 0), ((0, 2), (2, 3)), TypeError, "must be integers"),
    ((1, 2, 3, 0), ((0, 2, 3),), TypeError, "each edge an \\(i, j\\) pair"),
    (5, (), TypeError, "types must be a sequence"),
])
def test_cells_built_directly_are_checked(types, edges, error, match):
    with pytest.raises(error, match=match):
        DagCell(types, edges)


def test_a_cell_built_directly_equals_its_parsed_form_and_archs_take_cells_only():
    cell = parse_arch(ARCH).normal
    assert DagCell(list(cell.types), [list(e) for e in reversed(cell.edges)]) == cell
    assert DagCell(np.array(cell.types), np.array(cell.edges)) == cell
    with pytest.raises(TypeError, match="normal must be a DagCell"):
        NasnetDagArch(str(cell), cell)
    with pytest.raises(TypeError, match="reduction must be a DagCell"):
        NasnetDagArch(cell, None)


def test_cells_are_pruned_and_isomorphic_cells_share_a_key():
    # node 3 (sep5x5) reaches nothing: pruned away
    arch = parse_arch("123450:0>2,1>3,2>5,3>4 / 1250:0>2,2>3")
    assert arch.normal.types == (1, 2, 3, 0) and arch.normal.edges == ((0, 2), (2, 3))
    a = parse_arch("123450:0>2,1>3,2>4,3>4,4>5 / 1250:0>2,2>3")
    b = parse_arch("124350:0>3,1>2,3>4,2>4,4>5 / 1250:0>2,2>3")  # op nodes 2 and 3 swapped
    assert str(a) != str(b) and a.key == b.key
    assert make_cell(np.zeros((4, 4)), [1, 2, 3, 0]) is None


def test_samples_and_mutations_are_valid_and_seeded():
    space = NasnetDagSpace()
    draws = [space.sample(np.random.default_rng(k)) for k in range(30)]
    assert draws[0] == space.sample(np.random.default_rng(0))
    assert len({d.key for d in draws}) == 30
    sizes = [d.normal.num_nodes for d in draws]
    assert min(sizes) >= 4 and max(sizes) <= 10
    rng = np.random.default_rng(1)
    for d in draws[:10]:
        m = space.mutate(d, rng)
        assert m.key != d.key and space.decode(space.encode(m)) == m


@pytest.mark.parametrize("seed", range(6))
def test_analytic_params_equal_the_keras_count(seed):
    space = small()
    arch = space.sample(np.random.default_rng(seed)) if seed else space.decode(MIXED)
    model = space.build(arch, 10)
    assert space.num_params(arch, 10, auxiliary=True) == count_params(model)
    assert space.num_params(arch, 10) == count_params(model.inference_model())


def test_reduction_cell_shapes_and_the_inference_network():
    space = small()
    arch = space.decode(MIXED)
    model = space.build(arch, 10, drop_path_rate=0.2, dropout=0.3)
    x = tf.random.stateless_normal((2, 32, 32, 3), seed=(1, 2))
    logits, aux = model(x, training=True)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    cell = model.cells[1]  # reduction: nodes 3 and 4 mix a (reduced) input with node 2; input 1 feeds the output
    assert cell.reduction and sorted(cell.reducers) == ["3_0", "4_1", "5_1"]
    assert [stride for *_, stride in cell.plan] == [2, 1, 1]
    assert cell.compute_output_shape([(2, 32, 32, 12), (2, 32, 32, 12)]) == (2, 16, 16, 3 * 8)
    served = model.inference_model()
    np.testing.assert_allclose(served(x, training=False), model(x, training=False), atol=1e-5)
    assert served.auxiliary_head is None and served.drop is None
    # zero-cost proxies score networks in training mode: without the classifier dropout a space may have
    from tfnas.proxies.base import build_for_scoring

    scored = build_for_scoring(small(dropout=0.4), arch, 10, (32, 32, 3))
    assert scored.drop is None and scored.auxiliary_head is None


@pytest.mark.slow  # ~2 min on 2 cores
def test_supernet_traces_once_and_moves_only_the_chosen_layers():
    space = small()
    net = NasnetDagSupernet(10, (32, 32, 3), channels=4, layers=3, aux_weight=0.4, seed=0)
    archs = [space.decode(MIXED)] + [space.sample(np.random.default_rng(k)) for k in range(3)]
    ids = net.to_ids(archs[0])
    assert ids.shape == (2, 10, 11) and ids[1, 9, 0] == 0 and ids[1, 5, 0] == -1  # output in slot 9
    assert ids[1, 4, 1 + 9] == 1 and ids[1, 1, 1 + 9] == 1  # node 4 and input 1 feed the output
    rng = np.random.default_rng(0)
    images = tf.constant(rng.standard_normal((8, 32, 32, 3)), tf.float32)
    labels = tf.one_hot(rng.integers(0, 10, 8), 10)
    before = [np.array(v) for v in net._trainable]
    loss, _, count = net.train_step(images, labels, archs[0], 0.05)
    assert np.isfinite(float(loss)) and float(count) == 8
    changed = {layer.name for layer in net._switchable
               if any(not np.array_equal(np.array(v), b) for v, b in zip(net._trainable, before)
                      if any(v is w for w in layer.trainable_weights))}
    # reduction cell (cell 1): node 2 (sep3x3, fed by input 0 only) at stride 2; nodes 3 and 4 mix a
    # reduced input with node 2; input 1 is reduced into the output
    assert {"cell1_n2_sep_conv_3x3", "cell1_fr0_to3", "cell1_fr1_to4", "cell1_fr1_to9"} <= changed
    assert not {"cell1_n2_sep_conv_3x3_s1", "cell1_fr1_to3", "cell1_fr0_to4", "cell1_fr0_to9"} & changed
    # cells 1 and 2 are both reductions in a 3-cell network; cell 0 is normal (node 2 sep3x3)
    expected = {"cell0_n2_sep_conv_3x3"} | {f"cell{i}_{n}" for i in (1, 2) for n in (
        "n2_sep_conv_3x3", "fr0_to3", "fr1_to4", "fr1_to9")}
    assert changed == expected
    for arch in archs[1:]:
        net.train_step(images, labels, arch, 0.05)
        net.eval_step(images, labels, arch)
    assert net.trace_counts == {"train": 1, "eval": 1}
