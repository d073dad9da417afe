"""Tests of the lite-space architecture encoding (tfnas.spaces.lite.arch)."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.spaces.lite import PRESETS, LiteArch, describe_arch, from_ids, parse_arch, to_ids

PAPER_TEXT = ("[[0, 1, 0, 4, 1, 3, 0, 3, 0, 3, 0, 0, 1, 1, 0, 3, 0, 3, 1, 0], "
              "[0, 3, 1, 0, 0, 4, 1, 1, 1, 1, 0, 3, 0, 2, 1, 2, 1, 1, 0, 3]]")


def test_preset_text_round_trip_and_whitespace():
    arch = PRESETS["slnas_paper"]
    assert str(arch) == PAPER_TEXT
    assert parse_arch(PAPER_TEXT) == arch
    assert parse_arch(" SLNAS_paper \n") is arch
    assert parse_arch(PAPER_TEXT.replace(", ", ",").replace("[[", "[ \n[")) == arch
    assert hash(arch) == hash(parse_arch(PAPER_TEXT))
    with pytest.raises(Exception):
        arch.normal = ()  # frozen


def test_cells_and_nodes():
    arch = PRESETS["slnas_paper"]
    assert arch.cell(False) == arch.normal and arch.cell(True) == arch.reduce
    assert arch.nodes(False)[0] == (0, 1, 0, 4)
    assert arch.nodes(True)[4] == (1, 1, 0, 3)
    text = describe_arch(arch)
    assert "node 2 = shuffle_5x5(h_{k-2}) + conv_1x1(h_{k-2})" in text
    assert text.count("output = concat(node 2, node 3, node 4, node 5, node 6)") == 2


@pytest.mark.parametrize(
    "cell, match",
    [
        ([0] * 19, "needs 20 integers"),
        ([0] * 21, "needs 20 integers"),
        ([2] + [0] * 19, r"normal cell, entry 0 \(node 0 in_x\): input state must be an integer in \[0, 2\); got 2"),
        ([0] * 6 + [3] + [0] * 13, r"entry 6 \(node 1 in_y\): input state must be an integer in \[0, 3\); got 3"),
        ([0] * 17 + [5] + [0] * 2, r"entry 17 \(node 4 op_x\): op must be an integer in \[0, 5\); got 5"),
        ([0, -1] + [0] * 18, r"entry 1 \(node 0 op_x\).*got -1"),
        ([0, 1.0] + [0] * 18, r"entry 1 .*got 1.0"),
        ([True] + [0] * 19, r"entry 0 .*got True"),
    ],
)
def test_invalid_cells_name_the_entry_and_range(cell, match):
    with pytest.raises(ValueError, match=match):
        LiteArch(cell, [0] * 20)
    with pytest.raises(ValueError, match=match.replace("normal cell", "reduction cell")):
        LiteArch([0] * 20, cell)


def test_node_inputs_may_use_every_earlier_state():
    cell = [v for n in range(5) for v in (n + 1, 4, n + 1, 0)]  # every node reads the previous state
    arch = LiteArch(cell, cell)
    assert arch.normal == tuple(cell)
    assert LiteArch(np.array(cell), tuple(cell)) == arch
    with pytest.raises(TypeError, match="list of 20 integers"):
        LiteArch("0" * 20, cell)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "is not a list"),
        ("slnas", "is not a list"),
        ("[[0, 1]] + [[2]]", "is not a list"),
        ("__import__('os').system('true')", "is not a list"),
        ("[[0] * 20, [0] * 20]", "is not a list"),
        ("[" * 50000 + "]" * 50000, "at most 4096"),
        ("[[0, 0]]", "two lists"),
        ('{"normal": [], "reduce": []}', "two lists"),
        ("[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 7]", "both cells must be lists"),
        ("[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0]]", "reduction cell needs 20"),
        ('[["0", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], []]', "entry 0"),
        ("[[NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], []]", "entry 0"),
    ],
)
def test_parse_rejects_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        parse_arch(text)


def test_parse_needs_a_string():
    with pytest.raises(TypeError, match="string"):
        parse_arch([[0] * 20, [0] * 20])


def test_to_ids_layout_and_inverse():
    arch = PRESETS["slnas_paper"]
    ids = to_ids(arch)
    assert ids.shape == (2, 5, 2, 2) and ids.dtype == np.int32
    # [cell, node, slot, (input, op)]: normal node 0 = (0, 1, 0, 4); reduction node 2 = (1, 1, 0, 3)
    np.testing.assert_array_equal(ids[0, 0], [[0, 1], [0, 4]])
    np.testing.assert_array_equal(ids[1, 2], [[1, 1], [0, 3]])
    assert from_ids(ids) == arch
    with pytest.raises(ValueError, match="shape"):
        from_ids(ids[:, :4])
    with pytest.raises(ValueError, match="integer array"):
        from_ids(ids.astype(np.float32))
    bad = ids.copy()
    bad[1, 0, 0, 0] = 2
    with pytest.raises(ValueError, match="reduction cell, entry 0"):
        from_ids(bad)
