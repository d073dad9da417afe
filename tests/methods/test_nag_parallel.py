"""RS-NAG on worker processes (``[run] executor = process``): same short-training results as in this
process; a training that fails is recorded as failed and the best of the others is returned.

One tiny run goes through the whole pipeline; the other runs start from a copy of its directory
without RS-NAG's results, so they resume at the RS-NAG stage (the executor keys are not part of a
run's identity)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.evaluation.executor_jobs import count_pool_batches
from tests.images import write_image_folder
from tfnas.config import load_config
from tfnas.run.search import run_search

CFG = "cfg/nag_tiny.cfg"
RS_FILE = ("search_state", "rs_nag.json")


def sets(out_dir, data, *more):
    # a folder dataset (tfds mock data only patches this process): the workers read it too
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "dataset.name=image_folder",
            f"dataset.data_dir={data}", "dataset.image_size=16", "dataset.train_subset=64", "dataset.eval_subset=16",
            "dataset.batch_size=16", "dataset.eval_batch_size=16", "search.batch_size=16", "train.enabled=false",
            "export.enabled=false", "nag.rs_candidates=3",
            # the smallest pipeline before RS-NAG (what these tests compare is RS-NAG's trainings)
            "space.search_channels=4", "space.search_layers=3", "search.epochs=1", "nag.pretrain_epochs=1",
            "nag.epochs=0", *more]


def rs_results(out_dir):
    return json.loads(out_dir.joinpath(*RS_FILE).read_text())


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = tmp_path_factory.mktemp("nag_parallel")
    data = write_image_folder(root / "images", per_class=48)
    run = run_search(load_config(CFG, sets(root / "local", data)))
    return root, data, run


def before_rs_nag(root, name):
    """A copy of the local run directory without RS-NAG's results (nor the finished search's result)."""
    out = root / name
    shutil.copytree(root / "local", out)
    out.joinpath(*RS_FILE).unlink()
    (out / "result.json").unlink()
    return out


def test_rs_nag_on_a_process_pool_gives_the_same_trainings(local, monkeypatch):
    root, data, run = local
    batches = count_pool_batches(monkeypatch)
    out = before_rs_nag(root, "pool")
    pooled = run_search(load_config(CFG, sets(out, data, "run.executor=process", "run.workers=2")))
    assert batches == [2, 1]  # three trainings, two side by side, saved after each batch
    assert rs_results(out) == rs_results(root / "local") and len(rs_results(out)) == 3
    assert pooled.outcome.best_arch == run.outcome.best_arch


def test_a_failed_training_is_recorded_and_the_others_still_count(local, monkeypatch):
    from tfnas.train.trainer import Trainer

    root, data, run = local
    calls = []
    fit = Trainer.fit

    def second_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("loss is NaN")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", second_fails)
    out = before_rs_nag(root, "failing")
    outcome = run_search(load_config(CFG, sets(out, data))).outcome
    results = rs_results(out)
    failed = [k for k, v in results.items() if math.isnan(v)]
    assert len(calls) == 3 and len(results) == 3 and len(failed) == 1
    assert outcome.best_arch != failed[0]
    good = {k: v for k, v in rs_results(root / "local").items() if k != failed[0]}
    assert {k: v for k, v in results.items() if k != failed[0]} == good  # the others are the local trainings
