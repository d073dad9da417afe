"""BRP-NAS (``brp_nas``): iterative data selection, one ranking pass over the space, the sweep end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfnas.benchmarks.nb201 import Nb201Benchmark
from tfnas.config import ConfigError, load_config
from tfnas.methods import brp
from tfnas.methods.brp import BrpSearch
from tfnas.run.factory import build_method, build_space
from tfnas.run.sweep import run_sweep
from tfnas.spaces.nb201 import Nb201Space

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["run.progress=false", "brp.units=16", "brp.epochs=6", "brp.layers=2", "brp.jit_compile=false"]


def tiny_method(*sets):
    cfg = load_config("cfg/brp_nas.cfg", [*TINY, *sets])
    return build_method(cfg, build_space(cfg))


def test_rounds_spend_the_budget_exactly_and_rank_every_cell_once_per_round(monkeypatch):
    from tfnas.predictors.binary import RelationTrainer

    calls, scores_of = [], RelationTrainer.scores

    def counting_scores(trainer, adj, ops, **kwargs):  # how many cells each ranking call scores
        calls.append(len(adj))
        return scores_of(trainer, adj, ops, **kwargs)

    monkeypatch.setattr(RelationTrainer, "scores", counting_scores)
    method = tiny_method()
    session = Nb201Benchmark().session("cifar100", 23)
    result = method.run(session, 23, np.random.default_rng(4))
    assert session.queries == 23 and len(session.queried()) == 23
    # one batched pass over all 15,625 cells before each of rounds 1..4 and one final pass
    assert calls == [15625] * 5
    assert result.extra["rounds"] == 5 and result.extra["round_epochs"] == [1, 2, 4, 5, 6]
    # every cell has its own place in the ranking; the queried ones come first, by accuracy
    scores = result.scores
    known = session.queried()
    queried = np.fromiter(known.keys(), np.int64)
    rest = np.setdiff1d(np.arange(15625), queried)
    assert scores.shape == (15625,) and len(np.unique(scores[rest])) == len(rest)
    top = np.argsort(-scores)[:23]
    assert set(top.tolist()) == set(queried.tolist())
    assert result.best_index == max(known, key=known.get) == top[0]


def test_a_round_takes_the_top_new_cells_then_random_ones_from_the_top_part():
    method = BrpSearch.__new__(BrpSearch)  # select() needs only these fields
    method.size, method.top_fraction = 64, 0.5
    order = np.arange(64)[::-1]  # cell 63 ranked best
    known = {63: 0.5, 61: 0.4}
    picked = method.select(order, 6, 2, known, np.random.default_rng(0))
    assert picked[:3] == [62, 60, 59]  # the best cells not queried yet
    rest = picked[3:]
    assert len(set(picked)) == 6 and not set(picked) & set(known)
    assert all(c in order[:16] for c in rest)  # round 2: the top quarter of the ranking
    # a top part too small for the random share: any unqueried cell
    picked = method.select(order, 6, 6, known, np.random.default_rng(0))
    assert len(set(picked)) == 6 and not set(picked) & set(known)
    method.top_fraction = 0.0
    assert all(c in order[:32] for c in method.select(order, 8, 1, known, np.random.default_rng(1)))


@pytest.mark.parametrize("jit", ["false", "true"])
def test_same_seed_same_search_and_the_trainer_is_traced_once(jit):
    """Two searches, the second by another method object of the same configuration: it takes the
    first one's idle trainer from the process' pool (no new trace) and finds the same."""
    brp._IDLE_TRAINERS.clear()
    before = brp._IDLE_TRAINERS.stats()
    benchmark = Nb201Benchmark()
    runs = []
    for _ in range(2):
        session = benchmark.session("cifar100", 12)
        runs.append((tiny_method(f"brp.jit_compile={jit}").run(session, 12, np.random.default_rng(9)),
                     dict(session.queried())))
    (a, qa), (b, qb) = runs
    assert qa == qb and a.best_index == b.best_index
    np.testing.assert_allclose(a.scores, b.scores)
    assert a.extra["train_traces"] == b.extra["train_traces"] == 1  # growing training sets never retrace
    after = brp._IDLE_TRAINERS.stats()
    assert (after["misses"] - before["misses"], after["hits"] - before["hits"]) == (1, 1)


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_budgets_too_small_for_rounds_still_spend_exactly_the_budget(budget):
    method = tiny_method()
    session = Nb201Benchmark().session("cifar100", budget)
    result = method.run(session, budget, np.random.default_rng(0))
    assert session.queries == budget and result.best_index in session.queried()
    assert result.extra["rounds"] == (0 if budget == 1 else 1)
    assert np.argmax(result.scores) == result.best_index


def test_construction_checks_its_arguments():
    space = Nb201Space()
    for key, value in (("batch_size", 1), ("iterations", 0), ("epochs", 0), ("top_fraction", 2.0)):
        with pytest.raises(ValueError, match=f"brp_nas: {key}"):
            BrpSearch(space, **{key: value})


def test_sweep_records_count_every_query_and_resume(tmp_path):
    sets = [*TINY, f"run.out_dir={tmp_path}", "budget.start=10", "budget.stop=20", "budget.step=10",
            "budget.repeats=2"]
    outcome = run_sweep(load_config("cfg/brp_nas.cfg", sets))
    assert outcome.new_records == 4
    for rec in outcome.records:
        assert rec.method == "brp_nas" and rec.queries == rec.budget
        assert 0.0 <= rec.regret and -1.0 <= rec.spearman <= 1.0 and rec.top10_acc >= rec.top1_acc
        # the predictor's ranking of the whole space before rounds 1..4, scored after the search
        assert rec.extra["ranking_steps"] == [1, 2, 3, 4] and len(rec.extra["ranking_spearman"]) == 4
    again = run_sweep(load_config("cfg/brp_nas.cfg", [*sets, "budget.repeats=3"]))
    assert again.new_records == 2
    rows = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    assert len(rows) == 6


def test_brp_keys_are_checked_with_the_key_named():
    with pytest.raises(ConfigError, match="brp.top_fraction"):
        load_config("cfg/brp_nas.cfg", ["brp.top_fraction=1.5"])
    with pytest.raises(ConfigError, match="brp.batch_size"):
        load_config("cfg/brp_nas.cfg", ["brp.batch_size=1"])


def test_brp_needs_a_graph_table_space():
    cfg = load_config("cfg/brp_nas.cfg", TINY)
    with pytest.raises(TypeError, match="brp_nas"):
        BrpSearch(object())
    assert isinstance(build_method(cfg, Nb201Space()), BrpSearch)


def test_shipped_config_end_to_end_through_the_command_line(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_eval.py"), "cfg/brp_nas.cfg",
                           "--set", "budget.start=10", "--set", "budget.stop=10", "--set", "budget.repeats=1",
                           "--set", "brp.units=16", "--set", "brp.epochs=5", "--out-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "brp_nas" in proc.stdout and "regret" in proc.stdout
    rows = [json.loads(line) for line in open(out / "runs.jsonl")]
    assert len(rows) == 1 and rows[0]["queries"] == 10
