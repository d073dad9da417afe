"""Tests of DARTS genotypes and their text form (tfnas.spaces.darts.genotype)."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.registry import SPACES
from tfnas.spaces.darts import PRESETS, DartsGenotype, DartsSpace, parse_genotype

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


def test_genotype_type_checks():
    g = PRESETS["darts_v2"]
    with pytest.raises(ValueError, match="8 .op, input. pairs"):
        DartsGenotype(g.normal[:7], g.normal_concat, g.reduce, g.reduce_concat)
    with pytest.raises(ValueError, match="concat"):
        DartsGenotype(g.normal, (2, 2, 3), g.reduce, g.reduce_concat)
    with pytest.raises(TypeError, match="DartsGenotype"):
        DartsSpace().encode("darts_v2")


# ---- huge or malformed ranges are checked before anything is built (issue 13, item 7) ---------


@pytest.mark.parametrize(
    "replacement, match",
    [
        ("reduce_concat=range(0, 1000000000000)", r"reduce_concat .* has 1000000000000 entries; at most 4"),
        ("reduce_concat=range(0, 20000000)", r"has 20000000 entries"),
        ("reduce_concat=range(2, 6, 0)", r"bad range\(\.\.\.\) for reduce_concat"),
        ("reduce_concat=range(2.0, 6)", r"integer literals"),
        ("reduce_concat=range(2, 10**12)", r"integer literals"),
        ("reduce_concat=range(1, 5)", r"distinct increasing node states"),
        ("reduce_concat=range(stop=6)", r"bad range"),
        ("reduce_concat=5", r"list of state indices"),
    ],
)
def test_concat_ranges_are_bounded_before_expansion(replacement, match):
    import tracemalloc

    text = DARTS_V2_TEXT.replace("reduce_concat=range(2, 6)", replacement)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            parse_genotype(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # range(0, 20000000) used to take 1.4 GB


def test_pairs_and_concats_of_any_length_are_refused_lazily():
    g = PRESETS["darts_v2"]
    with pytest.raises(ValueError, match="normal has 1000000000000 entries; at most 8"):
        DartsGenotype(range(10**12), g.normal_concat, g.reduce, g.reduce_concat)
    with pytest.raises(ValueError, match="normal_concat .* has 1000000000000 entries"):
        DartsGenotype(g.normal, range(0, 10**12), g.reduce, g.reduce_concat)
    with pytest.raises(ValueError, match="more than 4 entries"):
        DartsGenotype(g.normal, iter(range(10**12)), g.reduce, g.reduce_concat)  # an endless-looking iterator
    assert DartsGenotype(g.normal, range(2, 6), g.reduce, iter([2, 3, 4, 5])) == g
    text = DARTS_V2_TEXT.replace("normal=[", "normal=range(0, 1000000000000) or [", 1)
    with pytest.raises(ValueError, match="literal list"):
        parse_genotype(text)


def test_export_tool_reports_a_huge_range_as_one_error_line(tmp_path):
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = DARTS_V2_TEXT.replace("reduce_concat=range(2, 6)", "reduce_concat=range(0,1000000000000)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=repo)
    proc = subprocess.run(
        [sys.executable, os.path.join(repo, "tools", "export.py"), "--space", "darts", "--arch", text,
         "--num-classes", "10", "--out", str(tmp_path / "out")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "1000000000000 entries" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    assert not (tmp_path / "out").exists()
