"""Measured latency (tfnas.evaluation.latency): cache hits and misses, key separation, corrupted
caches, evaluator order. Tiny NB201 networks (C=4, one cell per stage) on 8x8 inputs, few runs."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from tfnas.evaluation.latency import LatencyEvaluator, LatencyMeasurer, LatencySetup, measure
from tfnas.evaluation.training import TrainCacheError
from tfnas.spaces.nb201 import Nb201Space
from tfnas.train.litert import LatencyStats

SETUP = LatencySetup(input_shape=(8, 8, 3), num_classes=10, threads=1, quantize="none", runs=3, warmup=1)
SPACE = Nb201Space(channels=4, cells_per_stage=1)
A, B = SPACE.from_index(1234), SPACE.from_index(777)


def _files(folder) -> list:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_miss_then_hit_from_disk(tmp_path):
    first = LatencyMeasurer(SPACE, SETUP, str(tmp_path))
    stats = first.measure(A)
    assert isinstance(stats, LatencyStats) and 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert (stats.runs, stats.warmup, stats.num_threads) == (3, 1, 1)
    assert first.measured == 1 and len(first.convert_seconds) == 1
    assert first.measure(A) == stats and first.measured == 1  # hit in the same object
    (name,) = _files(tmp_path)
    data = json.loads((tmp_path / name).read_text())
    assert data["format"] == "tfnas.latency_cache/1" and data["kind"] == "latency"
    assert data["recipe"]["space"] == repr(SPACE) and data["recipe"]["input_shape"] == [8, 8, 3]
    assert list(data["entries"]) == [SPACE.encode(A)]
    second = LatencyMeasurer(SPACE, SETUP, str(tmp_path))  # a later search: read back, nothing measured
    assert second.measure(A) == stats and second.measured == 0


def test_key_separation(tmp_path):
    """Each of space width, input shape, threads and quantization gets its own cache file; arch
    strings are the entries."""
    setups = [(SPACE, SETUP), (Nb201Space(channels=8, cells_per_stage=1), SETUP),
              (SPACE, dataclasses.replace(SETUP, input_shape=(16, 16, 3))),
              (SPACE, dataclasses.replace(SETUP, threads=2)),
              (SPACE, dataclasses.replace(SETUP, quantize="float16"))]
    for space, setup in setups:
        measurer = LatencyMeasurer(space, setup, str(tmp_path))
        measurer.measure(A)
        assert measurer.measured == 1, f"{space!r} {setup} hit another setup's entry"
    assert len(_files(tmp_path)) == len(setups)
    measurer = LatencyMeasurer(SPACE, SETUP, str(tmp_path))
    measurer.measure(B)  # another arch of a known setup: a miss in the same file
    assert measurer.measured == 1 and len(_files(tmp_path)) == len(setups) and len(measurer.cache) == 2


def test_evaluator_returns_one_result_per_arch_in_order(tmp_path):
    measurer = LatencyMeasurer(SPACE, SETUP, str(tmp_path))
    evaluator = LatencyEvaluator(measurer)
    results = evaluator.evaluate([A, B, A])
    assert evaluator.computed == 2 and len(evaluator.seconds) == 3
    assert results[0] == results[2] != results[1]
    assert evaluator.evaluate([B, A]) == [results[1], results[0]] and evaluator.computed == 2
    # the one-call form reads the same cache
    assert measure(SPACE, B, input_shape=(8, 8, 3), runs=3, warmup=1, cache_dir=str(tmp_path)) == results[1]


def test_corrupted_cache_is_a_clear_error_naming_the_file(tmp_path):
    measurer = LatencyMeasurer(SPACE, SETUP, str(tmp_path))
    measurer.measure(A)
    path = measurer.cache.path
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"format": "tfnas.latency_cache/1", "kind": "lat')  # cut short
    with pytest.raises(TrainCacheError, match=f"{path}: not a readable tfnas latency cache"):
        LatencyMeasurer(SPACE, SETUP, str(tmp_path))
    data = {"format": "tfnas.latency_cache/1", "kind": "latency", "recipe": measurer.recipe(),
            "entries": {SPACE.encode(A): {"median_ms": -1.0}}}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    with pytest.raises(TrainCacheError, match="bad entry"):
        LatencyMeasurer(SPACE, SETUP, str(tmp_path))


def test_setup_is_checked():
    with pytest.raises(ValueError, match="quantization"):
        LatencySetup(quantize="int4")
    with pytest.raises(ValueError, match="threads"):
        LatencySetup(threads=0)
    with pytest.raises(ValueError, match="input_shape"):
        LatencySetup(input_shape=(8, 8))
