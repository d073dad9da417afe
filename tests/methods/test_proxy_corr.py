"""Tests of the proxy_corr analysis (tfnas/methods/proxy_corr.py)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from tfnas.benchmarks.nb201 import Nb201Benchmark
from tfnas.config import ConfigError, load_config
from tfnas.methods.proxy_corr import CORRELATION_COLUMNS, ProxyCorrelation
from tfnas.metrics import kendall, spearman
from tfnas.registry import METHODS
from tfnas.spaces.nb201 import Nb201Space
from tfnas.methods.base import Analysis
from tfnas.run import flow_of
from tfnas.proxies.fastpaths.nb201 import nb201_fast_path
from tfnas.run.factory import build_method

CFG = os.path.join("cfg", "proxy_corr_nb201.cfg")


def _method(tmp_path, *overrides, space=None):
    cfg = load_config(CFG, [f"run.out_dir={tmp_path}", "run.progress=false", *overrides])
    return build_method(cfg, space or Nb201Space())


def test_registered_as_analysis_and_shipped_cfg_loads():
    assert METHODS.get("proxy_corr") is ProxyCorrelation
    assert issubclass(ProxyCorrelation, Analysis) and flow_of(load_config(CFG)) == "analysis"
    cfg = load_config(CFG)
    assert cfg.method.name == "proxy_corr" and cfg.space.name == "nb201" and cfg.dataset.name == "cifar100"
    assert cfg.proxy.names == ("synflow", "grad_norm", "snip", "naswot", "jacob_cov", "te_nas", "flops", "params",
                               "random")
    method = build_method(cfg, Nb201Space())
    assert list(method.proxies) == list(cfg.proxy.names)
    assert method.proxies["grad_norm"].reduction == "layer_sum"  # the published correlations' form
    zen_form = build_method(load_config(CFG, ["proxy.grad_norm=global"]), Nb201Space())
    assert zen_form.proxies["grad_norm"].reduction == "global"
    assert (method.num_classes, method.input_shape) == (100, (32, 32, 3))
    assert 0 < cfg.proxy.subset < 15625


def test_subset_is_seeded_sorted_and_distinct(tmp_path):
    a = _method(tmp_path, "proxy.subset=300", "run.seed=1").cells()
    assert len(a) == 300 and len(np.unique(a)) == 300 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, _method(tmp_path, "proxy.subset=300", "run.seed=1").cells())
    assert not np.array_equal(a, _method(tmp_path, "proxy.subset=300", "run.seed=2").cells())
    np.testing.assert_array_equal(_method(tmp_path, "proxy.subset=0").cells(), np.arange(15625))


def test_outputs_and_correlations(tmp_path):
    method = _method(tmp_path, "proxy.names=params,random", "proxy.subset=60", "dataset.name=imagenet16-120")
    assert (method.num_classes, method.input_shape) == (120, (16, 16, 3))
    table = analyse(method, tmp_path)
    assert list(table.columns) == list(CORRELATION_COLUMNS)
    assert list(table["proxy"]) == ["params", "random"] and set(table["dataset"]) == {"imagenet16-120"}
    written = pd.read_csv(tmp_path / "correlation.csv")
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    truth = Nb201Benchmark().ground_truth("imagenet16-120")
    space = Nb201Space()
    for name in ("params", "random"):
        scores = pd.read_csv(tmp_path / f"scores_{name}.csv")
        assert list(scores.columns) == ["index", "arch", "score", "seconds"]
        np.testing.assert_array_equal(scores["index"], method.cells())
        assert [space.index(space.decode(a)) for a in scores["arch"]] == list(scores["index"])
        row = table.set_index("proxy").loc[name]
        acc = truth[scores["index"]]
        assert row["cells"] == 60
        assert row["spearman"] == pytest.approx(spearman(scores["score"], acc))
        assert row["kendall"] == pytest.approx(kendall(scores["score"], acc))
        assert (tmp_path / f"scatter_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    params = pd.read_csv(tmp_path / "scores_params.csv")
    expected = [space.num_params(space.from_index(int(i)), num_classes=120) for i in params["index"]]
    np.testing.assert_array_equal(params["score"], expected)
    assert not list(tmp_path.glob("*.partial.csv")) and not list(tmp_path.glob(".tmp-*"))


class _FailAfter:
    """Wraps a proxy and raises after ``limit`` cells, like a run killed half-way."""

    name = "random"

    def __init__(self, proxy, limit):
        self.proxy, self.limit, self.calls = proxy, limit, 0

    def score_arch(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.limit:
            raise KeyboardInterrupt
        return self.proxy.score_arch(*args, **kwargs)


def test_resume_gives_the_scores_of_an_uninterrupted_run(tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    analyse(_method(whole, "proxy.names=random", "proxy.subset=50"), whole)
    killed = _method(part, "proxy.names=random", "proxy.subset=50")
    killed.chunk = 10
    killed.proxies["random"] = _FailAfter(killed.proxies["random"], limit=1 + 25)  # 1 priming call
    with pytest.raises(KeyboardInterrupt):
        analyse(killed, part)
    assert len(pd.read_csv(part / "scores_random.partial.csv")) == 20 and not (part / "scores_random.csv").exists()
    resumed = _method(part, "proxy.names=random", "proxy.subset=50")
    resumed.chunk = 10
    counter = _FailAfter(resumed.proxies["random"], limit=10**9)
    resumed.proxies["random"] = counter
    analyse(resumed, part)
    assert counter.calls == 1 + 30
    a, b = pd.read_csv(whole / "scores_random.csv"), pd.read_csv(part / "scores_random.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    # A finished proxy is skipped entirely on a rerun.
    again = _method(part, "proxy.names=random", "proxy.subset=50")
    again.proxies["random"] = _FailAfter(again.proxies["random"], limit=0)
    analyse(again, part)
    # Another subset does not silently mix with the saved scores.
    with pytest.raises(ValueError, match="other cells"):
        analyse(_method(part, "proxy.names=random", "proxy.subset=40"), part)


def test_synflow_on_small_cells_traces_once(tmp_path):
    space = Nb201Space(channels=4, cells_per_stage=1)
    method = _method(tmp_path, "proxy.names=synflow", "proxy.subset=40", "dataset.image_size=8", space=space)
    table = analyse(method, tmp_path)
    assert nb201_fast_path(method.proxies["synflow"]).traces == 1
    scores = pd.read_csv(tmp_path / "scores_synflow.csv")["score"]
    assert len(scores) == 40 and scores.nunique() > 30
    assert table.loc[0, "cells"] == 40 and -1.0 <= table.loc[0, "spearman"] <= 1.0


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="NAS-Bench-201 table"):
        _method(tmp_path, "dataset.name=imagenet2012")
    with pytest.raises(ConfigError, match="more than once"):
        _method(tmp_path, "proxy.names=synflow,params,synflow")
    with pytest.raises(ConfigError, match="unknown proxy 'nope'"):
        _method(tmp_path, "proxy.names=params,nope")
    with pytest.raises(ConfigError, match="needs the NAS-Bench-201 table"):
        _method(tmp_path, "benchmark.name=none")
    with pytest.raises(ConfigError, match=r"proxy.grad_norm.*global, layer_sum"):
        _method(tmp_path, "proxy.grad_norm=mean")
    # names empty -> the single [proxy] name
    method = _method(tmp_path, "proxy.names=", "proxy.name=flops")
    assert list(method.proxies) == ["flops"]


def analyse(method, run_dir):
    """Runs an analysis method into ``run_dir`` as the run layer does (without the config checks)."""
    from tfnas.methods.base import SearchContext
    from tfnas.run.store import ArtifactStore

    os.makedirs(str(run_dir), exist_ok=True)
    context = SearchContext(store=ArtifactStore(str(run_dir)), seed=0, rng=np.random.default_rng(0), progress=False)
    return method.analyse(context)


def test_the_analysis_writes_its_tensorboard_hparams_row(tmp_path):
    """Every run directory gets tensorboard/ (README); proxy_corr's got none."""
    from tests.run.tb_reader import hparams_sessions, scalars
    from tfnas.config import load_config
    from tfnas.run.analysis import run_analysis

    cfg = load_config("cfg/proxy_corr_nb201.cfg", [f"run.out_dir={tmp_path}", "proxy.names=params, random",
                                                   "proxy.subset=20", "run.progress=false"])
    table = run_analysis(cfg).set_index("proxy")
    (session,) = hparams_sessions(str(tmp_path / "tensorboard" / "hparams"))
    assert session["method.name"] == "proxy_corr" and session["proxy.names"] == "params, random"
    final = scalars(str(tmp_path / "tensorboard" / "hparams"))
    assert final["final/spearman/params"] == [(0, pytest.approx(table.loc["params", "spearman"], rel=1e-5))]
    assert final["final/kendall/random"] == [(0, pytest.approx(table.loc["random", "kendall"], rel=1e-5))]
    assert final["final/cells"] == [(0, 20.0)]
