"""RS-NAG on worker processes (``[run] executor = process``): same short-training results as in this
process; a training that fails is recorded as failed and the best of the others is returned."""

from __future__ import annotations

import json
import math

from tests.images import write_image_folder
from tfnas.config import load_config
from tfnas.evaluation.executors import ProcessExecutor
from tfnas.run.search import run_search

CFG = "cfg/nag_tiny.cfg"


def sets(out_dir, data, *more):
    # a folder dataset (tfds mock data only patches this process): the workers read it too
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "dataset.name=image_folder",
            f"dataset.data_dir={data}", "dataset.image_size=16", "dataset.train_subset=64", "dataset.eval_subset=16",
            "dataset.batch_size=16", "dataset.eval_batch_size=16", "search.batch_size=16", "train.enabled=false",
            "export.enabled=false", "nag.rs_candidates=3", *more]


def rs_results(out_dir):
    return json.loads((out_dir / "search_state" / "rs_nag.json").read_text())


def test_rs_nag_on_a_process_pool_gives_the_same_trainings(tmp_path, monkeypatch):
    batches = []
    pool_map = ProcessExecutor.map

    def counting_map(self, job, items):
        batches.append(len(items))
        return pool_map(self, job, items)

    monkeypatch.setattr(ProcessExecutor, "map", counting_map)
    data = write_image_folder(tmp_path / "images", per_class=48)
    local = run_search(load_config(CFG, sets(tmp_path / "local", data)))
    pooled = run_search(load_config(CFG, sets(tmp_path / "pool", data, "run.executor=process", "run.workers=2")))
    assert batches == [2, 1]  # three trainings, two side by side, saved after each batch
    assert rs_results(tmp_path / "pool") == rs_results(tmp_path / "local") and len(rs_results(tmp_path / "pool")) == 3
    assert pooled.outcome.best_arch == local.outcome.best_arch


def test_a_failed_training_is_recorded_and_the_others_still_count(tmp_path, monkeypatch):
    from tfnas.train.trainer import Trainer

    calls = []
    fit = Trainer.fit

    def first_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second RS-NAG training (the supernet search does not use Trainer.fit)
            raise FloatingPointError("loss is NaN")
        return fit(self, *args, **kwargs)

    data = write_image_folder(tmp_path / "images", per_class=48)
    monkeypatch.setattr(Trainer, "fit", first_fails)
    run = run_search(load_config(CFG, sets(tmp_path / "run", data)))
    results = rs_results(tmp_path / "run")
    failed = [k for k, v in results.items() if math.isnan(v)]
    assert len(results) == 3 and len(failed) == 1
    assert run.outcome.best_arch != failed[0]
