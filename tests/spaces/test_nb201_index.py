"""Tests of the NAS-Bench-201 index order the space ships (tfnas.spaces.nb201.index)."""

from __future__ import annotations

import numpy as np

from tfnas.benchmarks.nb201_data import load_arrays
from tfnas.spaces.nb201.arch import NUM_CELLS, OPS
from tfnas.spaces.nb201.index import code_of_ids, index_of_code, ops_by_index


def test_space_order_equals_the_shipped_table_order():
    table = load_arrays()
    assert tuple(str(name) for name in table["op_names"]) == OPS
    np.testing.assert_array_equal(ops_by_index(), np.asarray(table["ops"], np.int64))


def test_order_lists_every_cell_once_and_inverts():
    codes = code_of_ids(ops_by_index())
    assert ops_by_index().shape == (NUM_CELLS, 6)
    np.testing.assert_array_equal(np.sort(codes), np.arange(NUM_CELLS))
    np.testing.assert_array_equal(index_of_code()[codes], np.arange(NUM_CELLS))
    assert not ops_by_index().flags.writeable and not index_of_code().flags.writeable


def test_order_is_not_an_enumeration_of_the_cells():
    """Why the order is shipped as data: in any nested enumeration of the 6 edges over the 5 ops
    (whatever the nesting and op orders), index 0 puts the first op on every edge and index 1
    differs from it on one edge only; the official order does neither."""
    ops = ops_by_index()
    assert len(set(ops[0].tolist())) > 1
    assert int(np.sum(ops[0] != ops[1])) > 1
