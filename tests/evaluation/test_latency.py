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


def test_the_timed_model_is_the_archs_network_at_the_setups_shape_and_precision(tmp_path, monkeypatch):
    """What reaches the timer: each arch's own network (its parameters), one image of the setup's
    shape, float16 weights when asked, and the setup's runs, warm-up, threads and seed."""
    import numpy as np

    from tfnas.evaluation import latency as latency_mod
    from tfnas.train.litert import load_interpreter

    timed = []

    def recording(flatbuffer, **kwargs):
        timed.append((flatbuffer, kwargs))
        return LatencyStats(min_ms=1.0, median_ms=2.0, p90_ms=3.0, runs=kwargs["num_runs"],
                            warmup=kwargs["warmup"], num_threads=kwargs["num_threads"])

    monkeypatch.setattr(latency_mod, "measure_latency", recording)
    for quantize in ("none", "float16"):
        setup = dataclasses.replace(SETUP, input_shape=(16, 16, 3), threads=2, quantize=quantize)
        measurer = LatencyMeasurer(SPACE, setup, None, seed=5)
        measurer.measure(A), measurer.measure(B)
    assert [kwargs for _, kwargs in timed] == [dict(num_runs=3, warmup=1, num_threads=2, seed=5)] * 4
    structures = []
    for (flatbuffer, _), quantize in zip(timed, ("none", "none", "float16", "float16")):
        interpreter = load_interpreter(flatbuffer)
        (image,), (logits,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert list(image["shape"]) == [1, 16, 16, 3] and list(logits["shape"]) == [1, 10]
        kernels = [t for t in interpreter.get_tensor_details() if len(t["shape"]) == 4 and t["shape"][0] > 1]
        stored = [t for t in kernels if t["dtype"] == np.float16]  # float16: stored so, dequantized to float32
        assert bool(stored) == (quantize == "float16")
        structures.append(sorted(tuple(t["shape"]) for t in kernels if t["dtype"] == np.float32))
    assert structures[0] == structures[2] and structures[1] == structures[3]
    assert structures[0] != structures[1]  # A's network, then B's


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
