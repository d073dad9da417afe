"""A sweep's records computed by worker processes equal those computed in this process."""

from __future__ import annotations

import json

import pytest

from tfnas.config import load_config
from tfnas.run.sweep import run_sweep

#: Fields that depend on the machine's speed, not on the search.
TIMING = ("wall_s", "extra")


def comparable(records):
    """Records as JSON text without timings (NaN fields compare equal as text)."""
    return [json.dumps({k: v for k, v in vars(r).items() if k not in TIMING}, sort_keys=True) for r in records]


@pytest.mark.slow  # ~2 min on 2 cores
def test_siamese_sweep_records_are_the_same_on_a_process_pool(tmp_path):
    sets = ["run.progress=false", "budget.start=20", "budget.stop=20", "budget.repeats=2",
            "predictor.epochs=5"]
    local = run_sweep(load_config("cfg/siams_nsam.cfg", [*sets, f"run.out_dir={tmp_path / 'local'}"]))
    pooled = run_sweep(load_config("cfg/siams_nsam.cfg", [*sets, f"run.out_dir={tmp_path / 'pool'}",
                                                          "run.executor=process", "run.workers=2"]))
    assert pooled.new_records == local.new_records == 2
    assert comparable(pooled.records) == comparable(local.records)
    # the executor is not part of the run's identity: the local run directory resumes under the pool
    again = run_sweep(load_config("cfg/siams_nsam.cfg", [*sets, f"run.out_dir={tmp_path / 'local'}",
                                                         "run.executor=process", "budget.repeats=3"]))
    assert again.new_records == 1
    assert comparable(again.records[:2]) == comparable(local.records)
