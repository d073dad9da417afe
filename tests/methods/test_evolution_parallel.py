"""Batched evolution: the same records whatever executor scores the children, and across resumes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tfnas.config import ConfigError, load_config
from tfnas.methods.base import SearchContext
from tfnas.run.factory import build_executor, build_method, build_space
from tfnas.run.store import ArtifactStore
from tfnas.run.search import run_search


def sets(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "train.enabled=false", "search.population=12",
            "search.iterations=24", "search.record_every=8", "proxy.batch_size=8", "search.batch=4", *more]


def outcome(out_dir):
    result = json.loads((out_dir / "result.json").read_text())
    history = pd.read_csv(out_dir / "history.csv").drop(columns=["iterations_per_s"])
    return result["best_arch"], result["score"], result["extra"]["scored"], history


def test_local_and_process_pool_give_the_same_search(tmp_path, monkeypatch):
    """(Ray gives the same search too: tests/evaluation/test_ray_executor.py, where Ray runs.)"""
    from tests.evaluation.executor_jobs import count_worker_items

    sent = count_worker_items(monkeypatch)
    runs = {}
    for executor in ("local", "process"):
        out = tmp_path / executor
        run_search(load_config("cfg/zen_cifar10_1M.cfg", sets(out, f"run.executor={executor}", "run.workers=2")))
        runs[executor] = outcome(out)
    arch, score, scored, history = runs["process"]
    assert scored > 0 and (arch, score, scored) == runs["local"][:3]
    assert sum(sent) == scored  # every candidate went to the pool's workers (none when local)
    pd.testing.assert_frame_equal(history, runs["local"][3])


def test_batched_search_resumes_to_the_same_records(tmp_path):
    def search(store_dir, *more):
        cfg = load_config("cfg/zen_cifar10_1M.cfg", sets(tmp_path, *more))
        method = build_method(cfg, build_space(cfg))
        context = SearchContext(store=ArtifactStore(str(store_dir)), seed=cfg.run.seed,
                                rng=np.random.default_rng(cfg.run.seed), progress=False)
        out = method.search(context)
        return out.best_arch, out.score, out.extra["scored"]

    whole = search(tmp_path / "whole")
    search(tmp_path / "parts", "search.iterations=12")  # stopped after three batches, state saved
    assert search(tmp_path / "parts") == whole  # resumed from iteration 12
    with pytest.raises(ValueError, match="another evolution"):  # the batch is part of the identity
        search(tmp_path / "parts", "search.batch=2")


def test_executor_keys_are_checked(tmp_path, caplog):
    with pytest.raises(ConfigError, match="executor"):
        load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.executor=threads"])
    # refused with the config, before a run dir (a scheme other than ray://, or local/auto with a port, was
    # accepted and then failed with advice to start a head "on http://127.0.0.1" or "on auto")
    for address in ("nowhere", "host:", "host:99999", "ray://:10001", "http://127.0.0.1:6390", "auto:6379",
                    "local:6379", "ray://http://h:1", "h/x:1"):
        with pytest.raises(ConfigError, match="ray_address: expected local, auto, HOST:PORT or ray://HOST:PORT"):
            load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.executor=ray", f"run.ray_address={address}"])
    import socket
    import time

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.executor=ray", f"run.ray_address=127.0.0.1:{port}"])
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"^--set run.ray_address=127.0.0.1:{port}: no Ray head answers there"):
        build_executor(cfg)  # at once, not after minutes of Ray client retries; the address named as set
    assert time.perf_counter() - start < 30
    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_access import check_reachable

    with pytest.raises(ExecutorError, match=f"--port={port}` on 127.0.0.1, or"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ExecutorError, match=f"--ray-client-server-port={port}` on 127.0.0.1 \\(a ray:// address "):
        check_reachable(f"ray://127.0.0.1:{port}")  # the Ray Client port, not the head's --port
    cfg = load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.workers=3", "run.ray_address=auto"])
    with caplog.at_level("WARNING"), build_executor(cfg) as local:  # said, not silently ignored
        assert local.name == "local"
    assert "--set run.workers=3; --set run.ray_address=auto: not used with executor = local" in caplog.text
    cfg = load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.executor=process", "run.workers=3"])
    with build_executor(cfg) as pool:
        assert pool.name == "process" and pool.workers == 3


def test_ray_address_errors_are_said_as_the_setting_that_led_to_them(tmp_path, monkeypatch):
    """An ``auto`` address that found a cluster it cannot use was named under `executor` (its message did not begin
    as the factory's text match expected); a private instance that fails to start stays under `executor`."""
    import tfnas.evaluation.executors as executors
    from tfnas.evaluation.executors import RayAddressError

    def refused(address):
        def make(*args, **kwargs):
            raise RayAddressError(address, "the Ray head there uses token authentication", detail="the cluster at h:1"
                                  if address == "auto" else "")
        return make

    monkeypatch.setattr(executors, "make_executor", refused("auto"))
    cfg = load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.executor=ray", "run.ray_address=auto"])
    with pytest.raises(ConfigError, match=r"^--set run\.ray_address=auto \(the cluster at h:1\): the Ray head there "
                                          r"uses token authentication$"):
        build_executor(cfg)
    monkeypatch.setattr(executors, "make_executor", refused("local"))
    cfg = load_config("cfg/zen_cifar10_1M.cfg", [*sets(tmp_path), "run.executor=ray"])
    with pytest.raises(ConfigError, match=r"^--set run\.executor=ray: \[run\] ray_address = local: the Ray head"):
        build_executor(cfg)
