"""tools/bench.py latency-corr: measured LiteRT latency of NB201 cells vs the table's device columns."""

import json
import os

import numpy as np

from tests.perf.test_bench_cli import load_bench
from tfnas.benchmarks.nb201 import Nb201Benchmark
from tfnas.metrics import spearman

def test_flags_and_defaults():
    args = load_bench().parser().parse_args(["latency-corr"])
    assert (args.cells, args.seed, args.threads, args.runs, args.warmup, args.cache_dir) == (
        300, 0, 1, 50, 5, "latency_cache")


def test_three_cells_end_to_end_and_the_cache_resumes(tmp_path, capsys):
    """Three seeded cells of a small NB201 width: one line per measured cell, then the correlations,
    equal to the Spearman of the cached medians with the table's columns; a rerun measures nothing.
    (Tiny networks, so the figures themselves mean nothing here.)"""
    load_bench()  # puts the repository root on sys.path for `perf`
    from perf import latency_corr

    cache = str(tmp_path / "cache")
    kwargs = dict(cells=3, seed=1, runs=3, warmup=1, cache_dir=cache, channels=4, cells_per_stage=1, input_size=8,
                  every=1)
    figures = latency_corr.run(**kwargs)
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["bench"] for line in lines] == ["latency_cell"] * 3 + ["latency_corr"]
    assert figures["converted"] == 3 and figures["cells"] == 3
    table = Nb201Benchmark()
    assert list(figures["spearman"])[:3] == ["gold_6226", "raspi4", "pixel3"]
    assert set(figures["spearman"]) == set(table.latency_devices)
    rows = sorted(line["index"] for line in lines[:3])
    assert rows == sorted(np.random.default_rng(1).choice(15625, size=3, replace=False).tolist())
    (name,) = os.listdir(cache)
    with open(os.path.join(cache, name), encoding="utf-8") as fh:
        entries = json.load(fh)["entries"]
    from tfnas.spaces.nb201 import Nb201Space

    space = Nb201Space(channels=4, cells_per_stage=1)
    medians = np.array([entries[space.encode(space.from_index(r))]["median_ms"] for r in rows])
    for device in ("gold_6226", "pixel3"):
        expected = spearman(medians, np.asarray(table.latency(device), np.float64)[rows])
        assert figures["spearman"][device] == round(expected, 4)
    again = latency_corr.run(**kwargs)
    assert again["converted"] == 0 and again["spearman"] == figures["spearman"]
