"""Op-on-node DAG cells: pruning, validity, canonical keys, and NAS-Bench-201 cells as DAGs."""

import numpy as np
import pytest

from tfnas.spaces.dag import DagSpec, dag_key, padded, prune, unpad
from tfnas.spaces.nb201.arch import OP_ID
from tfnas.spaces.nb201.dag import NB201_DAG, all_dags, dag_keys, dag_lookup, dag_of_ids
from tfnas.spaces.nb201.space import Nb201Space

# two inputs (codes 1, 2), output 0, ops 3..5
SPEC = DagSpec(type_names=("out", "in0", "in1", "a", "b", "c"), input_codes=(1, 2), output_code=0, max_nodes=7)


def chain(*edges, types):
    adj = np.zeros((len(types), len(types)), np.uint8)
    for i, j in edges:
        adj[i, j] = 1
    return adj, np.array(types)


def test_prune_drops_nodes_off_every_input_output_path():
    # node 3 feeds the output; node 4 has no input (dead); node 5 feeds nothing (dead)
    adj, types = chain((0, 3), (3, 6), (4, 6), (1, 5), types=[1, 2, 3, 4, 5, 3, 0])
    cell = prune(adj, types, SPEC)
    assert cell is not None
    kept_adj, kept_types = cell
    assert kept_types.tolist() == [1, 2, 4, 0]  # inputs keep their slots
    assert kept_adj.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


@pytest.mark.parametrize("edges,types", [
    (((0, 2),), [1, 2, 0]),                     # no op node on the path: 2 nodes left
    (((0, 3), (3, 4)), [1, 2, 3, 4, 3]),         # last node is not the output
    (((0, 2), (2, 3)), [1, 2, 1, 0]),            # an input code in the middle
    (((0, 2), (2, 3)), [2, 1, 3, 0]),            # inputs out of order (in order, a cell: the test below)
    ((), [1, 2, 3, 0]),                          # output unreachable
])
def test_prune_refuses_what_is_not_a_cell(edges, types):
    adj, t = chain(*edges, types=types)
    assert prune(adj, t, SPEC) is None


def test_the_cell_with_its_inputs_in_order_is_one():
    adj, t = chain((0, 2), (2, 3), types=[1, 2, 3, 0])
    assert prune(adj, t, SPEC) is not None


def test_prune_refuses_backward_edges_and_edges_into_inputs():
    adj, types = chain((0, 2), (2, 3), types=[1, 2, 3, 0])
    adj[3, 2] = 1
    assert prune(adj, types, SPEC) is None
    adj, types = chain((0, 1), (1, 2), (2, 3), types=[1, 2, 3, 0])  # input0 -> input1
    assert prune(adj, types, SPEC) is None


def test_dag_key_is_invariant_to_node_numbering_and_separates_cells():
    adj, types = chain((0, 3), (1, 4), (3, 5), (4, 5), (5, 6), (3, 6), types=[1, 2, 3, 4, 5, 3, 0])
    perm = np.array([0, 1, 4, 3, 2, 5, 6])  # swap nodes 2 and 4 (any renumbering)
    inv = np.argsort(perm)
    assert dag_key(adj[np.ix_(inv, inv)], types[inv]) == dag_key(adj, types)
    other = types.copy()
    other[3] = 5  # same wiring, one op changed
    assert dag_key(adj, other) != dag_key(adj, types)
    rewired = adj.copy()
    rewired[3, 6] = 0
    assert dag_key(rewired, types) != dag_key(adj, types)


def test_padded_round_trip():
    adj, types = chain((0, 2), (2, 3), types=[1, 2, 3, 0])
    a, t = padded(adj, types, 7)
    assert a.shape == (7, 7) and t.tolist() == [1, 2, 3, 0, -1, -1, -1]
    back_a, back_t = unpad(a, t)
    assert np.array_equal(back_a, adj) and np.array_equal(back_t, types)
    with pytest.raises(ValueError):
        padded(adj, types, 3)


def test_spec_checks_codes():
    with pytest.raises(ValueError):
        DagSpec(type_names=("o", "i"), input_codes=(1,), output_code=1, max_nodes=4)
    assert SPEC.op_codes == (3, 4, 5) and SPEC.num_types == 6


# ---- NAS-Bench-201 as DAGs ------------------------------------------------------------------

def ids(*ops):
    return np.array([OP_ID[o] for o in ops])


def test_nb201_cell_becomes_one_node_per_live_edge():
    adj, types = dag_of_ids(ids("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "none", "nor_conv_1x1"))
    # input, e(0->1) conv3, e(0->2) skip, e(0->3) pool, e(2->3) conv1, output; e(0->1) feeds nothing live
    assert NB201_DAG.type_names[0] == "output" and NB201_DAG.type_names[1] == "input"
    names = [NB201_DAG.type_names[t] for t in types]
    assert names == ["input", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "output"]
    assert adj.tolist() == [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_nb201_cells_differing_only_in_dead_parts_share_a_dag():
    base = ["none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"]
    variant = list(base)
    variant[2], variant[4] = "avg_pool_3x3", "skip_connect"  # edges out of node 1, which is zero
    space = Nb201Space()
    keys = dag_keys()
    i = space.index(space.decode("|" + "|+|".join(["none~0", "nor_conv_3x3~0|nor_conv_1x1~1",
                                                     "skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2"]) + "|"))
    j = space.indices(np.array([ids(*variant)]))[0]
    assert keys[i] == keys[j] != ""
    assert dag_lookup()[keys[i]] == min(i, j, dag_lookup()[keys[i]])
    live = list(base)
    live[5] = "nor_conv_1x1"  # a live edge changed: another function
    assert keys[space.indices(np.array([ids(*live)]))[0]] != keys[i]


def test_nb201_tables_cover_the_space():
    adj, types = all_dags()
    keys = dag_keys()
    assert adj.shape == (15625, 8, 8) and types.shape == (15625, 8)
    zero = np.array([k == "" for k in keys])
    assert np.all(types[zero] == -1) and np.all(types[~zero, 0] == 1)
    # every cell's padded DAG prunes to itself and hashes to its key
    for i in np.random.default_rng(0).choice(np.flatnonzero(~zero), 50, replace=False):
        cell = unpad(adj[i], types[i])
        assert dag_key(*prune(*cell, NB201_DAG)) == keys[i]
    # the lookup's cells are the lowest index of their key
    lookup = dag_lookup()
    assert len(lookup) == len(set(keys) - {""})
    first = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    assert all(lookup[k] == first[k] for k in lookup)
