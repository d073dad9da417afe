"""Budget accounting: every method spends exactly its budget of counted ground-truth queries."""

import numpy as np
import pytest

from tfnas.benchmarks.base import BudgetExceededError
from tfnas.benchmarks.nb201 import Nb201Benchmark
from tfnas.config import load_config
from tfnas.methods import siamese
from tfnas.run.factory import build_space
from tfnas.registry import METHODS
from tfnas.run.factory import build_method


@pytest.fixture(scope="module")
def benchmark():
    return Nb201Benchmark()


def make_method(name, *overrides):
    cfg = load_config(None, [f"method.name={name}", "predictor.epochs=12", "predictor.units=16", *overrides])
    return build_method(cfg, build_space(cfg))


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("rand", ()),
        ("predictor", ("search.bts=false",)),
        ("predictor", ("search.bts=true",)),
        ("siamese", ("search.bts=false", "predictor.nsam=false")),
        ("siamese", ("search.bts=true", "predictor.nsam=true")),
        ("siamese", ("search.bts=true", "search.update_split=3", "search.reserve=0")),
        ("brp_nas", ("brp.units=16", "brp.epochs=5")),
        ("brp_nas", ("brp.units=16", "brp.epochs=5", "brp.iterations=1", "brp.top_fraction=0")),
    ],
)
@pytest.mark.parametrize("budget", [6, 23])
def test_queries_equal_budget(benchmark, name, overrides, budget):
    method = make_method(name, *overrides)
    session = benchmark.session("cifar100", budget)
    result = method.run(session, budget, np.random.default_rng(budget))
    assert session.queries == budget
    assert 0 <= result.best_index < 15625
    if result.scores is not None:
        assert result.scores.shape == (15625,)
    if name == "siamese":
        assert result.ec_evals >= budget - 3  # codes of the training cells at least
        assert result.extra["train_traces"] == 1


def test_session_refuses_queries_past_budget(benchmark):
    session = benchmark.session("cifar10", 2)
    session.query(5)
    session.query(5)  # re-reading a known cell is free
    session.query(7)
    assert session.queries == 2
    with pytest.raises(BudgetExceededError):
        session.query(9)


@pytest.mark.parametrize("index, error", [(-1, IndexError), (15625, IndexError), (5.7, TypeError), (True, TypeError),
                                          ("5", TypeError), (np.float64(3.0), TypeError)])
def test_session_refuses_what_is_no_cell_index_for_queries_and_estimation_codes(benchmark, index, error):
    """``low_fidelity([-1])`` read the last cell's 12-epoch figures (NumPy's negative index) and counted it;
    ``query(5.7)``, ``query(True)`` and ``query("5")`` read cells 5, 1 and 5."""
    session = benchmark.session("cifar10", budget=10)
    with pytest.raises(error):
        session.query(index)
    with pytest.raises(error):
        session.low_fidelity([index])
    assert (session.queries, session.ec_evals) == (0, 0)
    assert session.query(np.int64(5)) == session.query(5)  # NumPy integers are cell indices
    assert session.low_fidelity(np.array([5])).shape[0] == 1


@pytest.mark.parametrize("budget", [2.5, "5", True, -1])
def test_a_session_budget_is_a_whole_count(benchmark, budget):
    with pytest.raises(ValueError, match="budget must be an integer >= 0 or None"):
        benchmark.session("cifar10", budget=budget)


def test_session_returns_fractions_of_the_table(benchmark):
    session = benchmark.session("cifar10", None)
    truth = benchmark.ground_truth("cifar10")
    assert session.query(123) == pytest.approx(truth[123] / 100.0)
    codes = session.low_fidelity([1, 2])
    assert codes.shape == (2, 2) and session.ec_evals == 2 and session.queries == 1


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_trainings_shorter_than_the_bts_schedule_still_spend_the_whole_budget(benchmark, epochs):
    # 2 epochs used to place a BTS point at epoch 2 (never reached) and 3 checks in 2 epochs: 15 of 20 queries
    method = make_method("siamese", f"predictor.epochs={epochs}", "search.bts=true", "search.reserve=3")
    session = benchmark.session("cifar100", 20)
    method.run(session, 20, np.random.default_rng(0))
    assert session.queries == 20


def test_tiny_samples_still_spend_the_whole_budget(benchmark):
    # A 1-cell sample per BTS point / check cannot hold enough new cells: the rest are drawn at random.
    method = make_method("siamese", "search.bts=true", "search.sample_fraction=0.00001", "search.update_split=2")
    session = benchmark.session("cifar100", 20)
    method.run(session, 20, np.random.default_rng(0))
    assert session.queries == 20


@pytest.mark.slow  # ~50 s on 2 cores
def test_a_sweep_of_budgets_shares_one_trainer_and_finds_what_one_trainer_per_budget_finds(benchmark):
    """With room for [budget] stop's steps, budgets 16 and 40 run on one compiled trainer (one
    trace). Budget 16 gives the same answers on it as on a trainer built for its own 2 steps; at
    budget 40 the method without a [budget] stop takes that same trainer from the pool."""
    siamese._IDLE_TRAINERS.clear()
    shared = make_method("siamese", "budget.start=16", "budget.stop=40", "budget.step=24")
    assert shared.max_budget == 40
    apart = make_method("siamese")
    apart.max_budget = 0  # the trainer per step count of before
    for budget in (16, 40):
        before = siamese._IDLE_TRAINERS.stats()
        a = shared.run(benchmark.session("cifar100", budget), budget, np.random.default_rng(budget))
        after = siamese._IDLE_TRAINERS.stats()
        taken = (after["hits"] - before["hits"], after["misses"] - before["misses"])
        assert taken == ((0, 1) if budget == 16 else (1, 0))
        assert a.extra["train_traces"] == 1
        b = apart.run(benchmark.session("cifar100", budget), budget, np.random.default_rng(budget))
        assert a.best_index == b.best_index
        np.testing.assert_array_equal(a.scores, b.scores)
    # budget 16 alone: 2 steps; with room for budget 40: 5 (apart's budget 40 took shared's)
    assert sorted(key[-1] for key, _ in siamese._IDLE_TRAINERS.items()) == [2, 5]


def test_searches_of_one_configuration_share_an_idle_trainer_and_give_the_same_answers(benchmark):
    """Another method object of the same configuration takes the first one's compiled trainer (no
    new trace), also with another schedule (epochs, learning rates), and finds exactly what a new
    trainer finds."""
    def search(*sets):
        method = make_method("predictor", "search.bts=false", *sets)
        return method.run(benchmark.session("cifar100", 12), 12, np.random.default_rng(3))

    siamese._IDLE_TRAINERS.clear()
    before = siamese._IDLE_TRAINERS.stats()
    first, again = search("predictor.epochs=4"), search("predictor.epochs=4")
    longer = search("predictor.epochs=6", "predictor.lr=0.002")  # the same trainer, another schedule
    siamese._IDLE_TRAINERS.clear()
    longer_fresh = search("predictor.epochs=6", "predictor.lr=0.002")
    after = siamese._IDLE_TRAINERS.stats()
    assert (after["misses"] - before["misses"], after["hits"] - before["hits"]) == (2, 2)
    assert [run.extra["train_traces"] for run in (first, again, longer, longer_fresh)] == [1, 1, 1, 1]
    for a, b in ((first, again), (longer, longer_fresh)):
        assert a.best_index == b.best_index
        np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(first.scores, longer.scores)  # the schedule did change the training
    search("predictor.epochs=4", "predictor.units=8")  # other weights: its own trainer
    assert len(siamese._IDLE_TRAINERS) == 2


def test_a_search_that_fails_does_not_give_its_trainer_back(benchmark):
    siamese._IDLE_TRAINERS.clear()
    method = make_method("predictor", "search.bts=false", "predictor.epochs=4")
    with pytest.raises(BudgetExceededError):
        method.run(benchmark.session("cifar100", 5), 12, np.random.default_rng(0))  # a session too small
    assert len(siamese._IDLE_TRAINERS) == 0
    method.run(benchmark.session("cifar100", 12), 12, np.random.default_rng(0))
    assert len(siamese._IDLE_TRAINERS) == 1


def test_random_search_names_a_size_or_budget_that_cannot_be(benchmark):
    """``RandomSearch(-5)`` was accepted; ``run(session, 0, rng)`` failed with "attempt to get argmax of an empty
    sequence"."""
    from tfnas.methods.random_search import RandomSearch

    with pytest.raises(ValueError, match="space_size"):
        RandomSearch(-5)
    with pytest.raises(ValueError, match="budget"):
        RandomSearch(15625).run(benchmark.session("cifar10"), 0, np.random.default_rng(0))
