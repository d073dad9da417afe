"""Hardware-aware table sweeps: feasible cells only, constrained regret, config errors, Pareto outputs."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfnas.benchmarks.nb201 import Nb201Benchmark
from tfnas.config import ConfigError, load_config
from tfnas.pareto import hypervolume
from tfnas.registry import METHODS
from tfnas.run.constraints import constrain
from tfnas.run.factory import build_method
from tfnas.run.search import run_search
from tfnas.run.sweep import run_sweep
from tfnas.spaces.nb201 import Nb201Space

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMIT = 10.676  # pixel3 median, as in cfg/siams_nsam_pixel3.cfg
TINY = ["predictor.epochs=4", "predictor.units=8", "search.update_split=2"]


def brute_force(dataset="cifar100", device="pixel3", limit=LIMIT, max_params=0.0, num_classes=100):
    """Feasible mask and optimum by a loop over every cell of the table (independent of the views)."""
    bench, space = Nb201Benchmark(), Nb201Space()
    lat, truth = bench.latency(device), bench.ground_truth(dataset)
    feasible = np.zeros(space.size, bool)
    for i in range(space.size):
        ok = lat[i] <= limit if limit else True
        if max_params:
            ok = ok and space.num_params(space.from_index(i), num_classes) <= max_params
        feasible[i] = ok
    return feasible, float(max(truth[i] for i in range(space.size) if feasible[i]))


def constrained_views(cfg_name, sets):
    cfg = load_config(cfg_name, sets)
    space, bench = Nb201Space(), Nb201Benchmark()
    con = constrain(cfg, METHODS.get(cfg.method.name), space, bench)
    return cfg, con


BRP_PIXEL3 = ["search.objective=latency:pixel3", f"search.max_latency_ms={LIMIT}", "brp.units=8", "brp.epochs=4"]


@pytest.mark.parametrize("cfg_name, extra", [("cfg/rand_pixel3.cfg", []), ("cfg/predictor_pixel3.cfg", []),
                                             ("cfg/siams_nsam_pixel3.cfg", []), ("cfg/brp_nas.cfg", BRP_PIXEL3)])
def test_every_queried_and_returned_cell_is_feasible(tmp_path, cfg_name, extra):
    budget = 20
    cfg, con = constrained_views(cfg_name, [f"run.out_dir={tmp_path}", "budget.start=20", "budget.stop=20"] + TINY
                                 + extra)
    feasible, _ = brute_force()
    assert con.rows.tolist() == np.flatnonzero(feasible).tolist()
    method = build_method(cfg, con.space)
    session = con.benchmark.session("cifar100", budget)
    result = method.run(session, budget, np.random.default_rng(1))
    full = con.rows[np.fromiter(session.queried().keys(), np.int64)]
    assert session.queries == budget and len(set(full.tolist())) == budget
    assert feasible[full].all()
    assert feasible[con.rows[result.best_index]]
    # the session answers the feasible cell's own accuracy (the row mapping is right)
    truth = Nb201Benchmark().ground_truth("cifar100")
    got = np.array(list(session.queried().values()))
    np.testing.assert_allclose(got, truth[full] / 100.0, rtol=1e-6)


def test_sweep_regret_is_to_the_constrained_optimum(tmp_path):
    max_params = 4e5
    sets = [f"run.out_dir={tmp_path}", "budget.start=30", "budget.stop=30", "budget.repeats=3",
            "search.objective=latency:pixel3", f"search.max_latency_ms={LIMIT}", f"budget.max_params={max_params}"]
    outcome = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    feasible, best = brute_force(max_params=max_params)
    assert best < Nb201Benchmark().optimum("cifar100")  # the constraint binds
    space, truth = Nb201Space(), Nb201Benchmark().ground_truth("cifar100")
    lat = Nb201Benchmark().latency("pixel3")
    assert outcome.optimum == pytest.approx(best)
    for rec in outcome.records:
        i = space.index(space.decode(rec.arch))
        assert feasible[i] and rec.queries == rec.budget
        assert rec.optimum == pytest.approx(best)
        assert rec.regret == pytest.approx(best - truth[i], abs=1e-4)
        assert rec.latency_ms == pytest.approx(lat[i]) and rec.latency_ms <= LIMIT
        assert rec.params == space.num_params(space.decode(rec.arch), 100) <= max_params
        assert "pixel3 latency <= 10.676 ms" in rec.constraint and "params <= 400000" in rec.constraint
    df = pd.read_csv(tmp_path / "summary.csv")
    assert {"optimum", "constraint", "latency_ms", "params"} <= set(df.columns)
    assert not (tmp_path / "pareto.png").exists()  # latency: objective writes no front


@pytest.mark.parametrize("sets, key, words", [
    (["search.objective=latency:pixel9", "search.max_latency_ms=5"], "--set search.objective", "pixel3, raspi4"),
    (["search.objective=latency:pixel9"], "--set search.objective", "unknown device 'pixel9'"),  # not "needs a limit"
    (["search.objective=latency:pixel3", "search.max_latency_ms=0.5", "budget.stop=300"],  # 273 cells
     "--set search.max_latency_ms", "leaves 273 feasible cells"),  # (given with --set: named so, not the file)
    (["budget.max_params=80000", "budget.stop=1000"], "--set budget.max_params", "leaves 729 feasible cells"),
    (["budget.stop=15000"], "cfg/rand_pixel3.cfg: [search] max_latency_ms", "feasible cells"),  # set in the file
    (["search.objective=pixel3"], "--set search.objective", "latency:<device>"),
    (["search.objective=latency:pixel3"], "cfg/rand.cfg: [search] max_latency_ms", "needs a limit"),
    (["search.max_latency_ms=5"], "--set search.max_latency_ms", "needs a device"),
])
def test_config_errors_name_the_key(tmp_path, sets, key, words):
    with pytest.raises(ConfigError, match="^.*$") as err:
        path = "cfg/rand_pixel3.cfg" if key.startswith("cfg/rand_pixel3") else "cfg/rand.cfg"
        run_sweep(load_config(path, [f"run.out_dir={tmp_path / 'r'}"] + sets), progress=False)
    message = str(err.value)
    assert key in message and words in message and "\n" not in message
    assert not (tmp_path / "r").exists()  # refused before the run directory is written


def test_the_limit_that_alone_leaves_too_few_cells_is_the_one_named(tmp_path):
    """A parameter limit no cell meets, beside the file's latency limit, was reported as both, the latency first."""
    with pytest.raises(ConfigError) as err:
        run_sweep(load_config("cfg/rand_pixel3.cfg", [f"run.out_dir={tmp_path / 'r'}", "budget.max_params=1000",
                                                      "budget.start=10", "budget.stop=10"]), progress=False)
    assert str(err.value).startswith("--set budget.max_params: leaves 0 feasible cells of 15,625")


def test_methods_that_cannot_honour_a_constraint_are_refused(tmp_path):
    sets = [f"run.out_dir={tmp_path / 'n'}", "search.objective=pareto:pixel3"]
    with pytest.raises(ConfigError, match=r"--set search\.objective: method 'nag' cannot search a restricted table"):
        run_sweep(load_config("cfg/nag_nb201.cfg", sets), progress=False)
    with pytest.raises(ConfigError, match=r"--set search\.max_latency_ms: method 'evolution'"):
        run_search(load_config("cfg/zen_cifar10_1M.cfg", [f"run.out_dir={tmp_path / 'z'}",
                                                          "search.max_latency_ms=3"]), progress=False)


@pytest.mark.parametrize("path, sets, key", [
    ("cfg/rand.cfg", ["budget.max_flops=1"], "max_flops"),  # ran unconstrained, without a word
    ("cfg/rand.cfg", ["budget.max_layers=1"], "max_layers"),
    ("cfg/proxy_corr_nb201.cfg", ["budget.max_params=1"], "max_params"),
    ("cfg/relativenas_cifar10.cfg", ["budget.max_params=1e6"], "max_params"),
    ("cfg/slnas_cifar10.cfg", ["budget.max_flops=1e8"], "max_flops"),
])
def test_a_limit_the_run_would_not_apply_is_refused(tmp_path, path, sets, key):
    from tfnas.run import flow_of
    from tfnas.run.analysis import run_analysis

    cfg = load_config(path, [f"run.out_dir={tmp_path / 'r'}"] + sets)
    run = {"sweep": run_sweep, "search": run_search, "analysis": run_analysis}[flow_of(cfg)]
    with pytest.raises(ConfigError, match=rf"^--set budget\.{key}: method '\w+' \(a[n ].*\) does not apply this "):
        run(cfg, progress=False)
    assert not (tmp_path / "r").exists()


def test_limits_a_run_applies_are_not_refused():
    from tfnas.run.constraints import refuse_unhonoured_limits

    refuse_unhonoured_limits(load_config("cfg/zen_cifar10_1M.cfg", ["budget.max_flops=1e8"]), "search")
    refuse_unhonoured_limits(load_config("cfg/tinynano_siams.cfg"), "sweep")  # its space applies max_flops
    refuse_unhonoured_limits(load_config("cfg/rand.cfg", ["budget.max_params=1e6"]), "sweep")  # (constrain's)


def test_pareto_sweep_end_to_end_and_resume(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=12", "budget.stop=12", "budget.repeats=2"] + TINY
    outcome = run_sweep(load_config("cfg/siams_nsam_pixel3.cfg", sets), progress=False)
    for name in ("pareto.png", "pareto.csv", "pareto.txt", "summary.csv", "runs.jsonl"):
        assert (tmp_path / name).exists(), name
    bench = Nb201Benchmark()
    truth, lat = bench.ground_truth("cifar100").astype(np.float64), bench.latency("pixel3").astype(np.float64)
    feasible = np.flatnonzero(lat <= LIMIT)
    ranges = ((truth[feasible].min(), truth[feasible].max()), (lat[feasible].min(), lat[feasible].max()))
    fronts = pd.read_csv(tmp_path / "pareto.csv")
    true = fronts[fronts["kind"] == "true"]
    # brute force: a feasible cell is on the true front iff no feasible cell dominates it (ties: one kept)
    a, t = truth[feasible], lat[feasible]
    on = [not np.any((a >= a[k]) & (t <= t[k]) & ((a > a[k]) | (t < t[k]))) for k in range(len(feasible))]
    distinct = {(a[k], t[k]) for k in range(len(feasible)) if on[k]}
    assert len(true) == len(distinct) and set(zip(true["accuracy"], true["latency_ms"])) <= {
        (float(x), float(y)) for x, y in distinct}
    for rec in outcome.records:
        assert rec.queries == 12 and rec.latency_ms <= LIMIT
        front = rec.extra["pareto_front"]
        assert front and all(lat[r] <= LIMIT for r in front)
        assert rec.hypervolume == pytest.approx(hypervolume(truth[front], lat[front], *ranges))
        assert 0 < rec.hypervolume < hypervolume(true["accuracy"], true["latency_ms"], *ranges)
    text = (tmp_path / "pareto.txt").read_text()
    assert "reference point (min accuracy, max latency)" in text and "true front" in text
    from tests.run.tb_reader import scalars  # the hardware-aware columns in TensorBoard too (they were left out)

    drawn = scalars(str(tmp_path / "tensorboard" / "sweep" / "repeat_0"))
    (rec,) = [r for r in outcome.records if r.repeat == 0]
    for name in ("hypervolume", "latency_ms", "params"):
        assert drawn[f"sweep/{name}"] == [(rec.budget, pytest.approx(getattr(rec, name), rel=1e-6))], name
    again = run_sweep(load_config("cfg/siams_nsam_pixel3.cfg", sets), progress=False)
    assert again.new_records == 0 and len(again.records) == 2


def test_cli_unknown_device_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)  # this checkout's tfnas, not an installed one
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_eval.py"), "cfg/rand_pixel3.cfg",
                           "--out-dir", str(tmp_path), "--set", "search.objective=pareto:iphone"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown device 'iphone'" in proc.stderr


def test_a_pareto_objective_without_a_limit_prints_the_benchmark_optimum(tmp_path, capsys):
    """It printed "constrained optimum (cifar100, none (pareto:pixel3))": with no limit every cell is feasible."""
    import re

    from tfnas.cli import train_eval_main

    common = ["--set", "budget.start=5", "--set", "budget.stop=5", "--set", "budget.repeats=1", "--no-progress"]
    assert train_eval_main(["cfg/rand_pixel3.cfg", "--set", "search.max_latency_ms=0", "--out-dir",
                            str(tmp_path / "free"), *common]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\nbenchmark optimum \(cifar100\): \d+\.\d\d%", out) and "constrained optimum" not in out
    assert train_eval_main(["cfg/rand_pixel3.cfg", "--out-dir", str(tmp_path / "limited"), *common]) == 0
    assert "\nconstrained optimum (cifar100, pixel3 latency <= 10.676 ms): " in capsys.readouterr().out
