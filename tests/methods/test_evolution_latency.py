"""Evolution under a measured-latency budget (``[search] objective = latency:litert``).

The loop's rules on a toy space with a deterministic stand-in for the latency evaluator (latency
proportional to width, so the limit binds by construction), then the shipped
``cfg/zen_cifar10_tflite_latency.cfg`` end to end with real LiteRT measurements on a tiny budget.
"""

import json
import os

import numpy as np
import pytest

from tests.toy_space import ToySpace
from tfnas.config import ConfigError, load_config
from tfnas.evaluation.base import Evaluator
from tfnas.methods.base import SearchContext
from tfnas.methods.evolution import EvolutionSearch, Limits
from tfnas.pareto import hypervolume, pareto_front
from tfnas.run.factory import build_method, build_space
from tfnas.proxies.base import Proxy
from tfnas.run.store import ArtifactStore
from tfnas.run.search import run_search
from tfnas.run.sweep import run_sweep
from tfnas.train.litert import LatencyStats


Widths = ToySpace  # tuples of 3 widths in [1, 64]; params = sum w^2, flops = 10 * sum w


class SumProxy(Proxy):
    def score(self, model, batch, rng):
        raise NotImplementedError

    def score_arch(self, space, arch, *, num_classes, input_shape, batch_size, rng):
        return float(sum(arch))


class WidthLatency(Evaluator):
    """Latency = 0.1 ms per unit of width (a deterministic stand-in for LiteRT); remembers its calls."""

    def __init__(self):
        self.seen = []

    def evaluate(self, archs):
        self.seen.extend(archs)
        return [LatencyStats(0.1 * sum(a), 0.1 * sum(a), 0.1 * sum(a), 1, 0, 1) for a in archs]


def search(tmp_path, latency, iterations=150, max_params=200.0, max_latency_ms=2.0):
    method = EvolutionSearch(Widths(), SumProxy(), proxy_name="sum", population=16, iterations=iterations,
                             limits=Limits(max_params=max_params, max_latency_ms=max_latency_ms), record_every=20,
                             latency=latency)
    rows = []
    ctx = SearchContext(store=ArtifactStore(str(tmp_path)), seed=3, rng=np.random.default_rng(3), progress=False,
                        log=rows.append, logged_rows=0)
    return method.search(ctx), rows


def test_children_over_the_limit_are_rejected_after_the_analytic_checks(tmp_path):
    latency = WidthLatency()
    outcome, rows = search(tmp_path, latency)
    rejected = outcome.extra["rejected"]
    assert rejected["latency"] > 0 and rejected["params"] > 0  # both limits bind on this toy
    assert outcome.extra["scored"] + sum(rejected.values()) == 150
    # measured only when the cheap checks pass: no analytically rejected child reached the evaluator
    assert all(Widths().num_params(a) <= 200 for a in latency.seen)
    state = json.loads((tmp_path / "search_state" / "evolution.json").read_text())
    members = [Widths().decode(a) for a, _ in state["members"]]
    assert members and all(0.1 * sum(a) <= 2.0 for a in members)
    assert outcome.extra["latency_ms"] == pytest.approx(0.1 * sum(Widths().decode(outcome.best_arch)))
    assert outcome.extra["latency_ms"] <= outcome.extra["max_latency_ms"] == 2.0
    assert all(r["best_latency_ms"] <= 2.0 for r in rows)


def test_a_limit_needs_an_evaluator_and_the_checkpoint_knows_the_limit(tmp_path):
    with pytest.raises(ValueError, match="needs a latency evaluator"):
        search(tmp_path, None)
    search(tmp_path, WidthLatency(), iterations=20)
    with pytest.raises(ValueError, match="state of another evolution"):  # same folder, another limit
        search(tmp_path, WidthLatency(), iterations=40, max_latency_ms=1.5)


class FirstWidthLatency(WidthLatency):
    """Latency from the first and last widths only, so speed and the width sum (the score) conflict
    only in part and the front is a real trade-off."""

    def evaluate(self, archs):
        self.seen.extend(archs)
        return [LatencyStats(*(0.1 * a[0] + 0.05 * a[2],) * 3, 1, 0, 1) for a in archs]


def pareto_search(tmp_path, iterations, pareto=True, max_latency_ms=0.0):
    method = EvolutionSearch(Widths(), SumProxy(), proxy_name="sum", population=12, iterations=iterations,
                             limits=Limits(max_params=400.0, max_latency_ms=max_latency_ms), record_every=20,
                             latency=FirstWidthLatency(), pareto=pareto)
    rows = []
    ctx = SearchContext(store=ArtifactStore(str(tmp_path)), seed=5, rng=np.random.default_rng(5), progress=False,
                        log=rows.append, logged_rows=0)
    return method, method.search(ctx), rows


def latency_of(a):
    return 0.1 * a[0] + 0.05 * a[2]


def test_pareto_evolution_keeps_the_front_of_everything_it_scored(tmp_path):
    method, outcome, rows = pareto_search(tmp_path / "p", 120)
    scored = sorted(set(method.latency.seen))
    score, lat = np.array([sum(a) for a in scored], float), np.array([latency_of(a) for a in scored])
    truth = {(score[i], lat[i]) for i in pareto_front(score, lat)}
    front = outcome.extra["pareto_front"]
    assert {(r["score"], r["latency_ms"]) for r in front} == truth and len(front) >= 3
    assert [r["latency_ms"] for r in front] == sorted(r["latency_ms"] for r in front)
    assert all(r["params"] == Widths().num_params(Widths().decode(r["arch"])) for r in front)
    ranges = outcome.extra["hypervolume_ranges"]
    assert ranges == [[score.min(), score.max()], [lat.min(), lat.max()]]
    assert outcome.extra["hypervolume"] == pytest.approx(hypervolume(score, lat, *ranges)) and \
        0 < outcome.extra["hypervolume"] < 1
    assert outcome.score == score.max()  # the answer is still the best score
    assert [r["front_size"] for r in rows][-1] == len(front) and 0 < rows[-1]["hypervolume"] < 1
    for name in ("pareto.csv", "pareto.txt", "pareto.png"):
        assert (tmp_path / "p" / name).stat().st_size > 0
    assert "hypervolume" in (tmp_path / "p" / "pareto.txt").read_text()
    # the population is cut back by NSGA-II, not by score: it keeps faster members than a score cut
    members = json.loads((tmp_path / "p" / "search_state" / "evolution.json").read_text())["members"]
    plain_method, plain, _ = pareto_search(tmp_path / "s", 120, pareto=False, max_latency_ms=1e9)
    plain_state = json.loads((tmp_path / "s" / "search_state" / "evolution.json").read_text())
    plain_members = plain_state["members"]
    # a score-only search that measures latency reports the front it saw too, and remembers only
    # its members' latencies
    seen = sorted(set(plain_method.latency.seen))
    p_score, p_lat = np.array([sum(a) for a in seen], float), np.array([latency_of(a) for a in seen])
    assert {(r["score"], r["latency_ms"]) for r in plain.extra["pareto_front"]} == \
        {(p_score[i], p_lat[i]) for i in pareto_front(p_score, p_lat)}
    assert set(plain_state["pareto"]["latency"]) == {a for a, _ in plain_members}
    assert (tmp_path / "s" / "pareto.txt").exists()
    fastest = min(latency_of(Widths().decode(a)) for a, _ in members)
    assert fastest < min(latency_of(Widths().decode(a)) for a, _ in plain_members)
    # the two ends of the front of everything scored are never dropped (rank 0, infinite crowding)
    codes = {a for a, _ in members}
    fastest = min(scored, key=lambda a: (latency_of(a), -sum(a)))
    best = max(scored, key=lambda a: (sum(a), -latency_of(a)))
    assert len(members) <= 13 and {Widths().encode(fastest), Widths().encode(best)} <= codes
    assert Widths().encode(fastest) not in {a for a, _ in plain_members}


class OneLatency(WidthLatency):
    """Every network takes the same time: the front is one point and its hypervolume undefined."""

    def evaluate(self, archs):
        self.seen.extend(archs)
        return [LatencyStats(1.0, 1.0, 1.0, 1, 0, 1) for a in archs]


def test_an_undefined_hypervolume_is_null_in_result_json_and_named_in_the_text(tmp_path):
    """It was NaN: ``"hypervolume": NaN`` in result.json, which strict JSON readers refuse, and "hypervolume
    nan" in pareto.txt."""
    from tfnas.results import strict_json

    method = EvolutionSearch(Widths(), SumProxy(), proxy_name="sum", population=6, iterations=10,
                             limits=Limits(max_params=400.0), record_every=5, latency=OneLatency(), pareto=True)
    ctx = SearchContext(store=ArtifactStore(str(tmp_path)), seed=5, rng=np.random.default_rng(5), progress=False,
                        log=lambda row: None, logged_rows=0)
    outcome = method.search(ctx)
    assert outcome.extra["hypervolume"] is None and len(outcome.extra["pareto_front"]) == 1
    assert "hypervolume undefined: every scored child had one score or one latency" in (
        tmp_path / "pareto.txt").read_text()
    assert json.loads(json.dumps(strict_json({"a": [np.float32("nan"), np.int64(3), (1.5, float("inf"))]}),
                                 allow_nan=False)) == {"a": [None, 3, [1.5, None]]}


def test_pareto_evolution_resumes_to_the_same_front(tmp_path):
    _, straight, _ = pareto_search(tmp_path / "a", 100)
    pareto_search(tmp_path / "b", 40)  # "killed" after its iteration-40 checkpoint
    _, resumed, _ = pareto_search(tmp_path / "b", 100)
    assert resumed.extra["pareto_front"] == straight.extra["pareto_front"]
    assert resumed.extra["hypervolume"] == straight.extra["hypervolume"]
    pareto_search(tmp_path / "c", 20, max_latency_ms=50.0)
    with pytest.raises(ValueError, match="state of another evolution"):  # the same limit, score only
        pareto_search(tmp_path / "c", 40, pareto=False, max_latency_ms=50.0)


def test_a_latency_limited_checkpoint_from_before_fronts_were_kept_resumes(tmp_path):
    _, straight, _ = pareto_search(tmp_path / "a", 150, pareto=False, max_latency_ms=1.5)
    pareto_search(tmp_path / "b", 40, pareto=False, max_latency_ms=1.5)
    path = tmp_path / "b" / "search_state" / "evolution.json"
    state = json.loads(path.read_text())
    del state["pareto"]  # as written before this version
    path.write_text(json.dumps(state))
    _, resumed, _ = pareto_search(tmp_path / "b", 150, pareto=False, max_latency_ms=1.5)
    assert resumed.best_arch == straight.best_arch
    # its front starts from the members it resumed with, so it holds no point the full one dominates
    full = {(r["score"], r["latency_ms"]) for r in straight.extra["pareto_front"]}
    assert resumed.extra["pareto_front"] and all(
        not any(s >= r["score"] and t <= r["latency_ms"] and (s, t) != (r["score"], r["latency_ms"]) for s, t in full)
        for r in resumed.extra["pareto_front"])


def test_pareto_objective_builds_a_measuring_nsga_search(tmp_path):
    cfg = load_config(CFG, [f"run.out_dir={tmp_path}", "search.objective=pareto:litert", "search.max_latency_ms=0"])
    method = build_method(cfg, build_space(cfg))
    assert method.pareto and method.latency is not None and method.limits.max_latency_ms == 0
    cfg = load_config(CFG, [f"run.out_dir={tmp_path}", "search.objective=pareto:litert"])
    assert build_method(cfg, build_space(cfg)).limits.max_latency_ms == cfg.search.max_latency_ms > 0
    with pytest.raises(ValueError, match="Pareto search needs a latency evaluator"):
        EvolutionSearch(Widths(), SumProxy(), proxy_name="sum", population=4, iterations=1, limits=Limits(),
                        pareto=True)


CFG = "cfg/zen_cifar10_tflite_latency.cfg"


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "train.enabled=false", "search.population=12",
            "search.iterations=10", "search.record_every=5", "proxy.batch_size=8", "search.latency_runs=5",
            "search.latency_warmup=1", *more]


@pytest.mark.slow  # ~50 s on 2 cores
def test_shipped_cfg_end_to_end(tmp_path):
    """Real LiteRT measurements: every member of the final population and the found network satisfy
    the limit (their cached medians), the rejections are counted, a second run measures nothing."""
    cfg = load_config(CFG, tiny(tmp_path))
    assert cfg.search.objective == "latency:litert" and cfg.search.max_latency_ms > 0
    limit = cfg.search.max_latency_ms
    run = run_search(cfg, progress=False)
    extra = run.outcome.extra
    assert set(extra["rejected"]) >= {"latency", "params"}
    assert extra["scored"] + sum(extra["rejected"].values()) == 10
    assert 0 < extra["latency_ms"] <= limit and extra["latency_p90_ms"] >= extra["latency_ms"]
    (cache,) = os.listdir(tmp_path / "latency_cache")
    entries = json.loads((tmp_path / "latency_cache" / cache).read_text())["entries"]
    state = json.loads((tmp_path / "search_state" / "evolution.json").read_text())
    assert state["members"] and all(entries[a]["median_ms"] <= limit for a, _ in state["members"])
    assert entries[run.outcome.best_arch]["median_ms"] == pytest.approx(extra["latency_ms"], abs=1e-4)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["extra"]["latency_ms"] == extra["latency_ms"] and "latency_ms: " in run.summary()


@pytest.mark.parametrize("sets, words", [
    (["search.objective=latency:pixel3"], "--set search.objective: method 'evolution' takes only latency:litert"),
    (["search.objective=pareto"], "--set search.objective: expected accuracy"),
    (["search.objective=pareto:pixel3"], "--set search.objective: method 'evolution' takes only latency:litert or "
                                         "pareto:litert"),
    (["search.max_latency_ms=0"], "--set search.max_latency_ms: objective latency:litert needs a limit"),
    (["search.objective=accuracy"], "[search] max_latency_ms: method 'evolution' measures latency"),
])
def test_nonsensical_combinations_are_refused_in_one_line(tmp_path, sets, words):
    with pytest.raises(ConfigError) as err:
        run_search(load_config(CFG, tiny(tmp_path / "r", *sets)), progress=False)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r" / "result.json").exists()


def test_table_searches_refuse_the_measured_device(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "search.objective=latency:litert", "search.max_latency_ms=5"]
    with pytest.raises(ConfigError, match="litert, measured on this machine, is for method evolution"):
        run_sweep(load_config("cfg/rand.cfg", sets), progress=False)


def test_other_one_shot_searches_refuse_the_measured_device(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "search.objective=latency:litert", "search.max_latency_ms=5"]
    with pytest.raises(ConfigError, match=r"method 'relativenas' \(a one-shot search\) cannot honour.*evolution "
                                          r"\(latency:litert or pareto:litert, measured\)"):
        run_search(load_config("cfg/relativenas_tiny.cfg", sets), progress=False)


def test_more_litert_threads_than_cores_are_named(tmp_path, caplog):
    """`search.latency_threads=1000` on 2 cores measured 2 threads' latencies without a word."""
    import logging

    over = (os.cpu_count() or 1) + 1
    for threads, warned in ((over, True), (1, False)):
        cfg = load_config("cfg/zen_cifar10_tflite_latency.cfg", [f"run.out_dir={tmp_path}",
                                                                 f"search.latency_threads={threads}"])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tfnas.run.method_args"):
            build_method(cfg, build_space(cfg))
        assert (f"--set search.latency_threads={threads}: more LiteRT threads than this machine's" in caplog.text) \
            is warned
