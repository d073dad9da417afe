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
from tfnas.proxies.base import Proxy
from tfnas.run.rundir import ArtifactStore
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


CFG = "cfg/zen_cifar10_tflite_latency.cfg"


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "train.enabled=false", "search.population=12",
            "search.iterations=10", "search.record_every=5", "proxy.batch_size=8", "search.latency_runs=5",
            "search.latency_warmup=1", *more]


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
    (["search.objective=latency:pixel3"], "[search] objective: method 'evolution' takes only latency:litert"),
    (["search.objective=pareto:litert"], "[search] objective: method 'evolution' takes only latency:litert"),
    (["search.max_latency_ms=0"], "[search] max_latency_ms: objective latency:litert needs a limit"),
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
                                          r"\(latency:litert, measured\)"):
        run_search(load_config("cfg/relativenas_tiny.cfg", sets), progress=False)
