"""The evolution loop on a toy space: limits, determinism, checkpoint/resume, driver outputs."""

import json
import os

import numpy as np
import pytest

from tests.toy_space import ToyProxy, ToySpace
from tfnas.config import load_config
from tfnas.methods.base import SearchContext
from tfnas.methods.evolution import EvolutionSearch, Limits
from tfnas.run.factory import build_method
from tfnas.run.store import ArtifactStore


def run(tmp_path, proxy, iterations=60, population=16, max_params=300.0, rows=None):
    rows = [] if rows is None else rows
    method = EvolutionSearch(ToySpace(), proxy, proxy_name="toy_sum", population=population,
                             iterations=iterations, limits=Limits(max_params=max_params), record_every=10)
    ctx = SearchContext(store=ArtifactStore(str(tmp_path)), seed=7, rng=np.random.default_rng(7),
                        progress=False, log=rows.append, logged_rows=len(rows))
    return method.search(ctx), rows


def test_limits_are_respected_and_the_best_member_wins(tmp_path):
    outcome, rows = run(tmp_path, ToyProxy())
    best = ToySpace().decode(outcome.best_arch)
    assert ToySpace().num_params(best) <= 300
    assert outcome.extra["rejected"]["params"] > 0  # the budget binds on this toy
    assert sum(best) > 12  # evolution improved on the start (4, 4, 4)
    assert [r["iteration"] for r in rows] == list(range(10, 61, 10))
    # a row describes the population the next children come from: cut back to 16 (it said 17, the median and
    # mean counted a member about to be dropped)
    assert rows[-1]["population"] == 16 and all(r["population"] <= 16 for r in rows)
    assert rows[-1]["best_score"] == pytest.approx(outcome.score)


@pytest.mark.parametrize("population", [2, 4, 10])
def test_a_population_of_ten_or_fewer_evolves_too(tmp_path, population):
    """Up to 10 members, children are mutations of the start (the reference's rule); a population capped at 10
    or fewer never grew past that, so its search only ever tried single mutations of the start."""
    outcome, _ = run(tmp_path, ToyProxy(), iterations=60, population=population)
    assert sum(ToySpace().decode(outcome.best_arch)) > 12 + 3  # beyond any one mutation of the start (4, 4, 4)


def _search(population, max_rho=0.5):
    return EvolutionSearch(ToySpace(), ToyProxy(), proxy_name="toy_sum", population=population, iterations=30,
                           limits=Limits(max_params=300.0, max_rho=max_rho), record_every=10)


def _context(out):
    return SearchContext(store=ArtifactStore(str(out)), seed=7, rng=np.random.default_rng(7), progress=False,
                         log=lambda row: None)


def test_a_saved_state_of_a_small_population_from_before_it_evolved_is_refused(tmp_path):
    """A population of 10 or fewer saved before such populations evolved would switch rules halfway."""
    from tfnas.io import DamagedFileError

    _search(4).search(_context(tmp_path))
    path = tmp_path / "search_state" / "evolution.json"
    state = json.loads(path.read_text())
    assert state["identity"].pop("evolves_when_full") is True
    path.write_text(json.dumps(state))
    with pytest.raises(DamagedFileError, match="holds the state of another evolution"):
        _search(4).search(_context(tmp_path))
    state["identity"]["population"] = 16  # larger populations: their states of before stay valid
    path.write_text(json.dumps(state))
    with pytest.raises(DamagedFileError, match="'members' holds"):  # (read on: its 4 members are too few for 16)
        _search(16).search(_context(tmp_path))


def test_without_the_effectiveness_filter_another_max_rho_resumes_the_search(tmp_path):
    """max_rho is not read without the filter: a rerun with another value (or a state saved with another value
    before this was so) resumes; with the filter on it is another search."""
    from tfnas.io import DamagedFileError

    first = _search(16, max_rho=0.9).search(_context(tmp_path))
    assert not Limits().effectiveness_filter
    again = _search(16, max_rho=0.2).search(_context(tmp_path))  # finished: read back, not searched again
    assert (again.best_arch, again.score) == (first.best_arch, first.score)
    path = tmp_path / "search_state" / "evolution.json"
    state = json.loads(path.read_text())
    state["identity"]["limits"][4] = 0.7  # as any version wrote it: the value set, read or not
    path.write_text(json.dumps(state))
    again = _search(16, max_rho=0.5).search(_context(tmp_path))
    assert (again.best_arch, again.score) == (first.best_arch, first.score)
    filtered = EvolutionSearch(ToySpace(), ToyProxy(), proxy_name="toy_sum", population=16, iterations=30,
                               limits=Limits(max_params=300.0, effectiveness_filter=True, max_rho=0.9),
                               record_every=10)
    with pytest.raises(DamagedFileError, match="holds the state of another evolution"):
        filtered.search(_context(tmp_path))


def test_same_seed_same_search_and_resume_follows_the_same_path(tmp_path):
    a, _ = run(tmp_path / "a", ToyProxy())
    b, _ = run(tmp_path / "b", ToyProxy())
    assert (a.best_arch, a.score) == (b.best_arch, b.score)
    rows = []
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "c", ToyProxy(fail_at=35), rows=rows)
    assert os.path.exists(tmp_path / "c" / "search_state" / "evolution.json")
    logged = len(rows)
    c, rows = run(tmp_path / "c", ToyProxy(), rows=rows)
    assert (c.best_arch, c.score) == (a.best_arch, a.score)
    assert [r["iteration"] for r in rows] == list(range(10, 61, 10)) and logged < len(rows)


def test_start_breaking_the_limits_is_a_config_error(tmp_path):
    from tfnas.config import ConfigError
    from tfnas.methods.evolution import EvolutionSearch as E

    cfg = load_config(None, ["method.name=evolution", "space.name=toy_widths", "proxy.name=toy_sum",
                             "budget.max_params=10", "search.effectiveness_filter=false"])
    with pytest.raises(ConfigError, match=r"^--set budget\.max_params: the start architecture already breaks this "
                                          r"limit \(params 48 > 10\); loosen it, or give a start within it "
                                          r"\(.*\[space\] start\)$"):
        build_method(cfg, ToySpace())  # (it said "loosen [budget]" for the effectiveness filter too)
    cfg = load_config(None, ["method.name=evolution", "space.name=toy_widths", "proxy.name=toy_sum",
                             "search.max_rho=0.01"])
    with pytest.raises(ConfigError, match=r"^--set search\.max_rho: the start architecture already breaks this "
                                          r"limit \(the effectiveness filter's max rho 0\.3077 > 0\.01\); loosen it"):
        build_method(cfg, ToySpace())
    # an unknown proxy is refused when the config loads, before anything is built
    with pytest.raises(ConfigError, match=r"proxy\.name: unknown proxy 'nosuch'; registered proxies: .*synflow"):
        load_config(None, ["method.name=evolution", "space.name=toy_widths", "proxy.name=nosuch"])


def test_search_flow_writes_outputs_and_resumes(tmp_path):
    from tfnas.run.search import run_search

    sets = ["method.name=evolution", "space.name=toy_widths", "proxy.name=toy_sum", "budget.max_params=300",
            "search.population=16", "search.iterations=40", "search.record_every=10",
            "search.effectiveness_filter=false", f"run.out_dir={tmp_path}", "run.progress=false"]
    run1 = run_search(load_config(None, sets))
    for name in ("config.cfg", "history.csv", "search_progress.png", "best_arch.txt", "result.json"):
        assert os.path.exists(tmp_path / name), name
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["best_arch"] == run1.outcome.best_arch and result["extra"]["params"] <= 300
    # one line, the architecture: `$(cat best_arch.txt)` is the --arch or space.arch a tool takes (a comment line
    # after it made both tools fail to parse it)
    assert (tmp_path / "best_arch.txt").read_text() == run1.outcome.best_arch + "\n"
    (tmp_path / "best_arch.txt").write_text(f"{run1.outcome.best_arch}\n# evolution toy_widths cifar10 toy_sum=1\n")
    assert run_search(load_config(None, sets)).resumed  # a finished run of before: its file is made one line
    assert (tmp_path / "best_arch.txt").read_text() == run1.outcome.best_arch + "\n"
    run2 = run_search(load_config(None, sets))
    assert run2.resumed and run2.outcome.best_arch == run1.outcome.best_arch
    with pytest.raises(Exception, match="different configuration"):
        run_search(load_config(None, sets[:-2] + ["budget.max_params=200", f"run.out_dir={tmp_path}"]))


def _rng_without_inc(state):
    del state["mutation_rng"]["state"]["inc"]


@pytest.mark.parametrize("damage, fragment", [
    (lambda s: s.pop("members"), "its 'members' field is missing"),
    (lambda s: s.update(members="4-4-4"), "'members' must be a list"),
    (lambda s: s.update(members=s["members"] * 2), "'members' must be a list of at most 17 items; got a list of"),
    (lambda s: s["members"].__setitem__(0, s["members"][0][:1]), "'members'[0] must be a list of 2 items"),
    (lambda s: s["members"][1].__setitem__(1, "high"), "'members'[1][1] must be a finite number; got 'high'"),
    (lambda s: s["members"][2].__setitem__(0, "4-x-4"), "cannot be read back (ValueError"),
    (lambda s: s.update(iteration=-1), "'iteration' must be an integer in [0, 40] ([search] iterations); got -1"),
    (lambda s: s.update(iteration="20"), "'iteration' must be an integer in [0, 40] ([search] iterations); got '20'"),
    (lambda s: s.update(iteration=41), "'iteration' must be an integer in [0, 40] ([search] iterations); got 41"),
    (lambda s: s.update(seconds=None), "'seconds' must be a finite number >= 0; got None"),
    (lambda s: s["counts"].pop("flops"), "its 'counts'['flops'] field is missing"),
    (_rng_without_inc, "its 'mutation_rng'['state']['inc'] field is missing"),
    (lambda s: s.update(score_rng=[1, 2]), "'score_rng' must be an object; got a list of 2 items"),
    (lambda s: s["members"][0].__setitem__(0, "64-64-64"), "the saved architecture '64-64-64' breaks the search's params limit"),
    (lambda s: s.update(members=[]), "'members' holds 0 architectures where its "),
    (lambda s: s.update(members=s["members"][:3]), "'members' holds 3 architectures where its "),
    (lambda s: s["counts"].update(nonfinite=s["counts"]["scored"] + 1), "has more non-finite scores"),
    (lambda s: s["counts"].update(nonfinite=-1), "'counts'['nonfinite'] must be"),
], ids=["members-missing", "members-a-string", "members-too-many", "member-too-short", "score-a-string",
        "arch-undecodable", "iteration-negative", "iteration-a-string", "iteration-too-high", "seconds-null",
        "count-missing", "rng-incomplete", "rng-a-list", "member-over-budget", "members-emptied", "members-cut", "nonfinite-too-many",
        "nonfinite-negative"])
def test_a_damaged_field_of_the_state_is_named_before_any_work(tmp_path, damage, fragment):
    from tfnas.io import DamagedFileError

    run(tmp_path, ToyProxy(), iterations=20)
    path = tmp_path / "search_state" / "evolution.json"
    state = json.loads(path.read_text())
    damage(state)
    path.write_text(json.dumps(state))
    damaged = path.read_bytes()
    proxy = ToyProxy()
    with pytest.raises(DamagedFileError) as caught:
        run(tmp_path, proxy, iterations=40)
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value), str(caught.value)
    assert str(caught.value).endswith("; delete the run directory to restart")
    assert proxy.calls == 0 and path.read_bytes() == damaged  # stopped before any work, the file left in place


class _SometimesNaN(ToyProxy):
    """NaN for every child whose first width is odd (or for every child with ``always``)."""

    def __init__(self, always=False):
        super().__init__()
        self.always = always

    def score_arch(self, space, arch, **kwargs):
        score = super().score_arch(space, arch, **kwargs)
        return float("nan") if self.always or arch[0] % 2 else score


def test_non_finite_scores_are_counted_and_a_resumed_state_holds_together(tmp_path):
    from tfnas.methods.base import SearchFailedError

    full, _ = run(tmp_path / "full", _SometimesNaN(), iterations=40)
    run(tmp_path / "half", _SometimesNaN(), iterations=20)
    state = json.loads((tmp_path / "half" / "search_state" / "evolution.json").read_text())
    assert state["counts"]["nonfinite"] > 0 and all(int(a.split("-")[0]) % 2 == 0 for a, _ in state["members"])
    resumed, _ = run(tmp_path / "half", _SometimesNaN(), iterations=40)  # the counts fit its members
    assert (resumed.best_arch, resumed.score) == (full.best_arch, full.score)
    with pytest.raises(SearchFailedError, match=r"all \d+ scored children had a non-finite"):
        run(tmp_path / "nan", _SometimesNaN(always=True), iterations=20)
    with pytest.raises(SearchFailedError, match=r"all \d+ scored children had a non-finite"):  # its state loads
        run(tmp_path / "nan", _SometimesNaN(always=True), iterations=20)


@pytest.mark.parametrize("population", [64, 8])  # the population not yet full at the save, and full
def test_a_state_written_before_non_finite_scores_were_counted_resumes_again_and_again(tmp_path, population):
    """Such a state's count is worked out while every finite score joined the population, and
    otherwise left out of the saved state (not checked), so it resumes any number of times."""
    full, _ = run(tmp_path / "full", _SometimesNaN(), iterations=40, population=population)
    run(tmp_path / "old", _SometimesNaN(), iterations=20, population=population)
    path = tmp_path / "old" / "search_state" / "evolution.json"
    state = json.loads(path.read_text())
    assert state["counts"]["nonfinite"] > 0
    del state["counts"]["nonfinite"]  # as the version before wrote it
    path.write_text(json.dumps(state))
    run(tmp_path / "old", _SometimesNaN(), iterations=30, population=population)
    saved = json.loads(path.read_text())["counts"]
    resumed, _ = run(tmp_path / "old", _SometimesNaN(), iterations=40, population=population)
    assert (resumed.best_arch, resumed.score) == (full.best_arch, full.score)
    if population == 64:
        assert saved["nonfinite"] > 0 and resumed.extra["nonfinite"] == full.extra["nonfinite"]
    else:
        assert "nonfinite" not in saved and "nonfinite" not in resumed.extra


def test_evolution_arguments_that_cannot_be_are_named():
    """``population=0``, ``iterations=-1``, a proxy given by name and ``Limits(max_params=-1)`` were accepted."""
    from tfnas.methods.evolution import EvolutionSearch, Limits

    with pytest.raises(ValueError, match="Limits: max_params must be a finite number >= 0"):
        Limits(max_params=-1)
    with pytest.raises(ValueError, match="max_flops"):
        Limits(max_flops=float("nan"))
    with pytest.raises(ValueError, match="max_layers"):
        Limits(max_layers=2.5)
    proxy = ToyProxy()
    for kwargs, error, fragment in [({"population": 0}, ValueError, "population"),
                                    ({"iterations": -1}, ValueError, "iterations"),
                                    ({"record_every": 0}, ValueError, "record_every"),
                                    ({"proxy": "params"}, TypeError, "proxy must be a Proxy"),
                                    ({"limits": {}}, TypeError, "limits must be a Limits")]:
        args = dict(proxy=proxy, proxy_name="params", population=4, iterations=2, limits=Limits())
        args.update(kwargs)
        with pytest.raises(error, match=fragment):
            EvolutionSearch(ToySpace(), **args)


@pytest.mark.parametrize("batch, record_every, iterations, crash_after", [(3, 2, 12, 2), (1, 10, 60, 6), (4, 3, 20, 4)])
def test_a_row_logged_just_before_a_crash_is_not_logged_again(tmp_path, batch, record_every, iterations, crash_after):
    """A Ctrl-C after history.csv took a row and before the checkpoint: the resumed search logged the row again
    when the batch does not divide record_every, and the last row always."""
    def go(rows, folder, crash=None):
        search = EvolutionSearch(ToySpace(), ToyProxy(), proxy_name="toy_sum", population=16, iterations=iterations,
                                 limits=Limits(max_params=300.0), record_every=record_every, batch=batch)

        def log(row):
            rows.append(row)
            if len(rows) == crash:
                raise KeyboardInterrupt

        search.search(SearchContext(store=ArtifactStore(str(tmp_path / folder)), seed=7,
                                    rng=np.random.default_rng(7), progress=False, log=log, logged_rows=len(rows)))

    whole, broken = [], []
    go(whole, "whole")
    with pytest.raises(KeyboardInterrupt):
        go(broken, "broken", crash=crash_after)
    go(broken, "broken")
    assert [r["iteration"] for r in broken] == [r["iteration"] for r in whole]
    assert len(whole) > crash_after - 1 and whole[-1]["iteration"] == iterations


def test_failed_scorings_are_counted_across_a_resume(tmp_path):
    """result.json's `failed` counted the scorings that raised in the last session only."""
    class Flaky(ToyProxy):
        def score_arch(self, space, arch, **kw):
            if sum(arch) % 5 == 0:
                raise ValueError("flaky")
            return super().score_arch(space, arch, **kw)

    def go(folder, stop=None):
        search = EvolutionSearch(ToySpace(), Flaky(fail_at=stop), proxy_name="toy_sum", population=16,
                                 iterations=60, limits=Limits(max_params=300.0), record_every=10, batch=2)
        return search.search(SearchContext(store=ArtifactStore(str(tmp_path / folder)), seed=7,
                                           rng=np.random.default_rng(7), progress=False))

    whole = go("whole")
    with pytest.raises(KeyboardInterrupt):
        go("resumed", stop=45)
    resumed = go("resumed")
    assert whole.extra["failed"] > 0 and resumed.extra == {**whole.extra, "iterations_per_s": resumed.extra[
        "iterations_per_s"]}
