"""A training-oracle sweep trains each batch of new queries on worker processes: same records."""

from __future__ import annotations

import json
import os

import pytest

from tests.evaluation.executor_jobs import count_pool_batches
from tests.images import write_image_folder
from tfnas.config import load_config
from tfnas.run.sweep import run_sweep


def sets(out_dir, data, *more):
    # a folder dataset (not tfds mock data, which only patches this process): workers read it too
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
            "dataset.name=image_folder", f"dataset.data_dir={data}", "dataset.image_size=16",
            "space.channels=16", "space.cells_per_stage=1", "budget.max_flops=0", "budget.start=4", "budget.stop=4",
            "budget.repeats=1", "dataset.train_subset=16", "dataset.eval_subset=16", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", "predictor.epochs=4", "predictor.ec_source=synflow",
            "search.pool_size=30", "search.rank_k=2", "search.final_rank_k=2", "search.update_split=2",
            "train.epochs=1", *more]


@pytest.mark.slow  # ~2.5 min on 2 cores
def test_oracle_queries_trained_on_a_pool_give_the_same_records_and_cache(tmp_path, monkeypatch):
    batches = count_pool_batches(monkeypatch)
    data = write_image_folder(tmp_path / "images", per_class=16)
    local = run_sweep(load_config("cfg/tinynano_siams.cfg", sets(tmp_path / "local", data)))
    pooled = run_sweep(load_config("cfg/tinynano_siams.cfg", sets(tmp_path / "pool", data, "run.executor=process",
                                                                    "run.workers=2")))
    (a,), (b,) = local.records, pooled.records
    assert (a.arch, a.top1_acc, a.queries) == (b.arch, b.top1_acc, b.queries) and a.queries == 4

    def cache(run):
        (name,) = os.listdir(tmp_path / run / "oracle_cache")
        return json.loads((tmp_path / run / "oracle_cache" / name).read_text())["entries"]

    assert cache("pool") == cache("local") and len(cache("pool")) >= 4
    assert batches and max(batches) >= 2  # queries were trained side by side
