"""Siamese-NAS on an open space: a candidate pool of Tiny-NanoBench cells + the training oracle."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfnas.benchmarks.base import BudgetExceededError
from tfnas.benchmarks.base import CountingSession
from tfnas.config import ConfigError, load_config
from tfnas.run.sweep import run_sweep
from tfnas.spaces.pool import CandidatePool
from tfnas.spaces.tinynano import TinyNanoSpace


def test_pool_is_distinct_deterministic_and_tabular():
    space = TinyNanoSpace(widths=(16, 32, 64), cells_per_block=1, flops_limit=None)
    a, b = CandidatePool(space, size=40, seed=3), CandidatePool(space, size=40, seed=3)
    assert a.keys == b.keys and len(set(a.keys)) == 40
    assert CandidatePool(space, size=40, seed=4).keys != a.keys
    for i in (0, 17, 39):
        assert a.index(a.from_index(i)) == i and a.index(a.keys[i]) == i
    adj, ops = a.all_graphs()
    assert adj.shape[0] == ops.shape[0] == 40
    np.testing.assert_array_equal(adj[17], space.to_graph(a.from_index(17))[0])
    with pytest.raises(KeyError):
        a.index("not-in-the-pool")


def test_counting_session_counts_and_enforces_the_budget():
    asked = []

    def lookup(indices):
        asked.extend(int(i) for i in indices)
        return indices / 100.0

    session = CountingSession(lookup, 10, "cifar10", budget=2,
                              no_low_fidelity="set [predictor] ec_source = train")
    assert session.query(3) == pytest.approx(0.03) and session.query(3) == pytest.approx(0.03)
    session.query(4)
    assert session.queries == 2 and session.queried() == {3: pytest.approx(0.03), 4: pytest.approx(0.04)}
    with pytest.raises(BudgetExceededError):
        session.query(5)
    assert asked == [3, 4]  # nothing trained past the budget, re-asking is free
    with pytest.raises(ValueError, match="ec_source = train"):
        session.low_fidelity([3])


def tiny_sets(out_dir):
    return [
        f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
        "space.channels=16", "space.cells_per_stage=1", "budget.max_flops=0", "budget.start=4",
        "budget.stop=4", "budget.repeats=1", f"dataset.data_dir={os.path.join(str(out_dir), 'no_data')}",
        "dataset.download=false", "dataset.train_subset=32", "dataset.eval_subset=16", "dataset.batch_size=16",
        "dataset.eval_batch_size=16", "predictor.epochs=4", "predictor.ec_epochs=1", "predictor.ec_subset=32",
        "search.pool_size=30",
        "search.rank_k=2", "search.final_rank_k=2", "search.update_split=2", "train.epochs=1",
    ]


@pytest.mark.slow  # ~2 min on 2 cores
def test_tinynano_siamese_cfg_runs_end_to_end_and_resumes(tmp_path):
    sets = tiny_sets(tmp_path)
    with tfds.testing.mock_data(num_examples=48):
        outcome = run_sweep(load_config("cfg/tinynano_siams.cfg", sets), progress=False)
    (record,) = outcome.records
    assert record.queries == record.budget == 4
    assert record.ec_evals >= 4  # every training cell has an estimation code
    assert 0.0 <= record.top1_acc <= 100.0 and np.isnan(record.spearman)
    pool = open(os.path.join(tmp_path, "pool.txt")).read().split()
    assert len(pool) == 30 and record.arch in pool
    assert os.listdir(os.path.join(tmp_path, "oracle_cache")) and os.listdir(os.path.join(tmp_path, "ec_cache"))
    for name in ("summary.csv", "runs.jsonl", "best_arch.txt", "accuracy_vs_budget.png"):
        assert os.path.exists(os.path.join(tmp_path, name)), name
    again = run_sweep(load_config("cfg/tinynano_siams.cfg", sets), progress=False)
    assert again.new_records == 0


def test_table_estimation_code_is_refused_with_the_training_oracle(tmp_path):
    cfg = load_config("cfg/tinynano_siams.cfg", tiny_sets(tmp_path) + ["predictor.ec_source=table"])
    with pytest.raises(ConfigError, match="ec_source"):
        run_sweep(cfg, progress=False)


def test_nb201_table_refuses_another_space(tmp_path):
    cfg = load_config("cfg/tinynano_siams.cfg", tiny_sets(tmp_path) + ["benchmark.name=nb201"])
    with pytest.raises(ConfigError, match="benchmark"):
        run_sweep(cfg, progress=False)


def test_a_pool_sweep_stopped_before_its_first_record_leaves_nothing(tmp_path, monkeypatch):
    """pool.txt (written from the config) counted as a result: config.cfg stayed, the Ctrl-C line said
    "what finished is saved", and the corrected config was refused as another configuration."""
    from tfnas.methods import random_search

    out = tmp_path / "run"
    sets = [f"run.out_dir={out}", "run.progress=false", "method.name=rand", "space.name=tinynano",
            "space.channels=16", "budget.max_flops=0", "benchmark.name=train", "dataset.name=cifar10",
            "dataset.download=false", f"dataset.data_dir={tmp_path / 'nodata'}", "dataset.train_subset=32",
            "dataset.eval_subset=16", "dataset.batch_size=16", "dataset.eval_batch_size=16", "train.epochs=1",
            "budget.start=2", "budget.stop=2", "budget.repeats=1", "search.pool_size=20", "run.tensorboard=false"]

    def interrupted(self, session, budget, rng):
        raise KeyboardInterrupt  # Ctrl-C during the first record

    with monkeypatch.context() as patch:
        patch.setattr(random_search.RandomSearch, "run", interrupted)
        with tfds.testing.mock_data(num_examples=48), pytest.raises(KeyboardInterrupt) as stop:
            run_sweep(load_config(None, sets))
    # nothing left that would refuse the corrected configuration there
    assert getattr(stop.value, "tfnas_nothing_saved", False) and not out.exists()
