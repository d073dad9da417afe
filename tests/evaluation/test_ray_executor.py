"""The Ray executor on a private local instance: same results as local, dead actors, failures.

Every test that starts Ray lives in this file (pytest-xdist runs each file in one worker): one
instance in this process for the module, and in the slow set a few more in subprocesses (or by
`ray start`), each with folders and processes of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time

import numpy as np
import pytest

from tests.evaluation.executor_jobs import (DieOnce, Niceness, NoisySquare, SleepFor, TempFolder, TensorflowState,
                                          noisy_items)
from tfnas.evaluation.executors import Failed, LocalExecutor

ray = pytest.importorskip("ray")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def kill_processes_with_env(entry: str) -> list:
    """Kills the processes whose environment holds ``entry`` (``NAME=value``, inherited from the process a
    test started) and returns their pids: what such a process left running."""
    import signal

    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as environ:
            if b"\0" + entry.encode() + b"\0" in b"\0" + environ.read():
                left.append(pid)
                os.kill(int(pid), signal.SIGKILL)
    return left


def ray_init_kwargs(folder: str) -> dict:
    """A small local Ray: capped object store, its files under ``folder``, the tests importable."""
    # 4 logical CPUs: the fixture's two actors and the two of a search started beside them
    return {"num_cpus": 4, "object_store_memory": 80 * 1024 ** 2, "_temp_dir": folder,
            "runtime_env": {"env_vars": {"PYTHONPATH": ROOT}}}


@pytest.fixture(scope="module")
def ray_executor():
    from tfnas.evaluation.ray_executor import RayExecutor

    # a short private folder: Ray's socket paths inside it must stay under 108 bytes, which pytest's
    # nested temporary folders (with xdist's popen-gwN level) can exceed
    folder = tempfile.mkdtemp(prefix="tfnas-ray-")
    home = os.path.join(folder, "home")  # where Ray would write its token file
    saved = {name: os.environ.pop(name, None) for name in (*_AUTH_ENV, "HOME")}
    os.environ["HOME"] = home
    try:
        executor = RayExecutor(2, init_kwargs=ray_init_kwargs(folder))
        # token authentication, with a token of this process instead of one Ray writes under the home folder
        assert os.environ["RAY_AUTH_MODE"] == "token" and os.environ["RAY_AUTH_TOKEN"]
        yield executor
        executor.close()
        assert not os.path.exists(os.path.join(home, ".ray"))  # (Keras and matplotlib write their own files there)
        assert [os.environ.get(name) for name in _AUTH_ENV] == [None] * 3  # put back as they were
    finally:
        os.environ.pop("HOME", None)
        os.environ.update({name: value for name, value in saved.items() if value is not None})
        shutil.rmtree(folder, ignore_errors=True)
    assert not ray.is_initialized()  # the executor started Ray, so it stops it


def test_ray_equals_local_in_order(ray_executor):
    local = LocalExecutor().map(NoisySquare(), noisy_items(12) + [(-1, np.random.default_rng(0))])
    out = ray_executor.map(NoisySquare(delay=0.2), noisy_items(12) + [(-1, np.random.default_rng(0))])
    assert [r[0] for r in out[:12]] == [r[0] for r in local[:12]]
    assert isinstance(out[12], Failed) and out[12].error == local[12].error
    assert len({pid for _, pid in out[:12]}) == 2
    # the workers of a private instance run at this process' priority (Ray's default is nice 15,
    # which let the other test workers starve them: this file took ~9x longer in the full suite)
    assert ray_executor.map(Niceness(), list(range(4))) == [os.nice(0)] * 4
    # the actors ran toy jobs only: no TensorFlow yet, until a job needs it
    assert ray_executor.map(TensorflowState(needs=False), [0, 1]) == [(False, None)] * 2
    assert [loaded for loaded, _ in ray_executor.map(TensorflowState(needs=True), [0, 1])] == [True, True]


def test_ray_imap_yields_each_result_in_order_while_later_items_still_run(ray_executor):
    received = [(seconds, finished, time.time())
                for seconds, finished in ray_executor.imap(SleepFor(), [0.0, 3.0, 0.0], chunk=1)]
    assert [seconds for seconds, _, _ in received] == [0.0, 3.0, 0.0]
    assert received[0][2] < received[1][1]  # the first result came while the slow item still ran


def test_ray_imap_closed_early_stops_its_actors_and_the_next_batch_gets_new_ones(ray_executor):
    results = ray_executor.imap(SleepFor(), [0.0, 60.0, 60.0], chunk=1)
    assert next(results)[0] == 0.0
    start = time.time()
    results.close()  # the 60 s items are not waited for
    assert time.time() - start < 20 and not ray_executor._actors
    assert [seconds for seconds, _ in ray_executor.imap(SleepFor(), [0.0, 0.0])] == [0.0, 0.0]
    assert len(ray_executor._actors) == 2


def test_ray_imap_closed_after_its_last_result_keeps_its_actors(ray_executor):
    ray_executor.map(SleepFor(), [0.0, 0.0])  # actors started
    actors = list(ray_executor._actors)
    results = ray_executor.imap(SleepFor(), [0.0, 0.0, 0.0], chunk=1)
    assert [next(results)[0] for _ in range(3)] == [0.0] * 3
    results.close()  # every result read, the generator not run to its end: nothing to stop
    assert ray_executor._actors == actors


def test_ray_starts_the_actors_a_batch_needs_not_every_worker_at_once(ray_executor, monkeypatch):
    """``workers = 50`` started 50 actors for a batch of one; the process pool starts what its tasks need."""
    import tfnas.evaluation.ray_executor as module

    monkeypatch.setattr(module, "cpu_count", lambda: 1)  # this machine runs one actor at a time
    pool = module.RayExecutor(2)  # joins the fixture's instance, which has two CPUs free
    try:
        assert len(pool._actors) == 1  # started with the executor, beside the caller's own set-up
        assert [seconds for seconds, _ in pool.map(SleepFor(), [0.0])] == [0.0]
        assert len(pool._actors) == 1
        out = pool.map(SleepFor(), [0.5, 0.5])
        assert [seconds for seconds, _ in out] == [0.5, 0.5] and len(pool._actors) == 2
        assert len(pool.map(SleepFor(), [0.0] * 6)) == 6 and len(pool._actors) == 2  # never more than workers
        actors = list(pool._actors)
        assert pool.map(SleepFor(), []) == [] and pool._actors == actors  # an empty batch stopped every actor
    finally:
        pool.close()


def test_ray_restarts_a_dead_actor_and_retries_its_task(ray_executor, tmp_path):
    folders = set(ray_executor.map(TempFolder(), list(range(8))))
    assert len(folders) == 2  # one per actor, inside the instance's Ray folder (not the system's temp folder)
    assert {os.path.dirname(f) for f in folders} == {ray_executor._actor_root}
    marker = str(tmp_path / "died")
    out = ray_executor.map(DieOnce(marker, victim=2), list(range(6)))
    assert os.path.exists(marker)
    assert out == [x + 1 for x in range(6)]
    # the restarted actor took over its dead predecessor's temp folder: a killed actor's folder stayed behind
    assert set(ray_executor.map(TempFolder(), list(range(8)))) == folders


def test_worker_deaths_are_counted_per_batch_not_over_the_run(ray_executor, tmp_path, caplog):
    """Ray's own restart limit counts over an actor's life: a long Ray search failed (exit 5) after a few
    deaths hours apart, each in another batch, where the process pool, which counts per batch, went on."""
    import logging

    from tfnas.evaluation.ray_executor import RayExecutor

    pool = RayExecutor(1, max_restarts=1)  # joins the fixture's instance
    try:
        with caplog.at_level(logging.WARNING, logger="tfnas.evaluation.ray_executor"):
            for batch in range(3):  # one death per batch, three in all
                out = pool.map(DieOnce(str(tmp_path / f"died-{batch}"), victim=1), [0, 1, 2])
                assert out == [1, 2, 3] and os.path.exists(tmp_path / f"died-{batch}")
    finally:
        pool.close()
    assert pool.restarts == 3
    warned = [r.getMessage() for r in caplog.records if "a Ray worker died" in r.getMessage()]
    assert len(warned) == 3 and all("a new one takes its chunk" in m for m in warned)


def test_a_worker_that_dies_too_often_is_one_line_naming_why(ray_executor, tmp_path):
    """The error (exit 5 on the command line) went on with Ray's dump of the actor's ids, eight lines."""
    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_executor import RayExecutor

    pool = RayExecutor(1, max_restarts=0)  # joins the fixture's instance
    try:
        with pytest.raises(ExecutorError, match="a Ray worker died once while evaluating a batch: ") as err:
            pool.map(DieOnce(str(tmp_path / "died"), victim=0), [0])
    finally:
        pool.close()
    message = str(err.value)
    assert "\n" not in message and "actor_id" not in message and "class_name" not in message
    assert "exit" in message.split("batch: ", 1)[1].lower()  # Ray's reason (its worker exited), not only its first line
    assert ray.is_initialized()  # the instance is the fixture's: left running


def test_batched_evolution_on_ray_equals_the_local_search(ray_executor, tmp_path, monkeypatch):
    """``[run] executor = ray`` joins the running instance (the fixture's) and leaves it running."""
    from tests.evaluation.executor_jobs import count_worker_items
    from tests.methods.test_evolution_parallel import outcome, sets
    from tfnas.config import load_config
    from tfnas.evaluation.ray_executor import RayExecutor
    from tfnas.run.search import run_search

    sent = count_worker_items(monkeypatch, RayExecutor)
    runs = {}
    for executor in ("local", "ray"):
        run_search(load_config("cfg/zen_cifar10_1M.cfg", sets(tmp_path / executor, f"run.executor={executor}",
                                                               "run.workers=2")))
        runs[executor] = outcome(tmp_path / executor)
    assert ray.is_initialized()
    assert runs["ray"][:3] == runs["local"][:3] and runs["local"][2] > 0
    assert runs["ray"][3].equals(runs["local"][3])
    assert sum(sent) == runs["ray"][2]  # every candidate went to the actors


@pytest.mark.slow  # ~70 s on 2 cores, most of it tracing the supernet's steps here and on the actor
def test_slnas_ga_rewards_on_ray_equal_the_local_search(ray_executor, tmp_path, monkeypatch):
    """The SLNAS GA's rewards on Ray actors (each builds the search supernet from its recipe and
    loads the epoch's weights from the object store): the same members, rewards and GA state as in
    this process. Population 4, 3 rewards per epoch, 2 epochs: a generation boundary in epoch 2; two
    actors share each batch."""
    import json

    import tensorflow_datasets as tfds

    from tests.evaluation.executor_jobs import count_pool_batches
    from tests.methods.test_slnas_search import CFG, tiny
    from tfnas.config import load_config
    from tfnas.evaluation.ray_executor import RayExecutor
    from tfnas.run.search import run_search

    batches = count_pool_batches(monkeypatch, RayExecutor)
    sets = ["train.enabled=false", "search.epochs=2", "controller.kind=ga", "controller.ga_population=4"]
    runs = {}
    with tfds.testing.mock_data(num_examples=40):
        for executor in ("local", "ray"):
            runs[executor] = run_search(load_config(CFG, tiny(tmp_path / executor, *sets, f"run.executor={executor}",
                                                               "run.workers=2")))
    epochs = [[json.loads(line)["samples"] for line in (tmp_path / d / "epochs.jsonl").read_text().splitlines()]
              for d in ("local", "ray")]
    assert batches == [3, 1, 2]  # the rewards ran on the actors, a generation's members at a time
    assert len(epochs[0]) == 2 and epochs[0] == epochs[1]  # the same members with the same rewards
    assert (runs["ray"].outcome.best_arch, runs["ray"].outcome.score) == (runs["local"].outcome.best_arch,
                                                                         runs["local"].outcome.score)
    state = [np.load(tmp_path / d / "search_state" / "controller.npz") for d in ("local", "ray")]
    for key in state[0].files:
        np.testing.assert_array_equal(state[0][key], state[1][key])  # population, fitness, generator


@pytest.mark.parametrize("reply, accepted", [
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", False),  # a web server on that port
    (b"", False),  # closes the connection
    (b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64", True),  # a SETTINGS frame: gRPC
])
def test_an_address_is_a_ray_head_only_if_it_answers_http2(reply, accepted, monkeypatch):
    import socket
    import threading

    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_access import check_reachable

    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = []

    def answer():
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(64))
            conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    start = time.perf_counter()
    try:
        if accepted:
            check_reachable(address)
        else:
            with pytest.raises(ExecutorError, match="something answers there, but not a Ray head"):
                check_reachable(address)
    finally:
        thread.join(10)
        server.close()
    assert received and received[0].startswith(b"PRI * HTTP/2.0") and time.perf_counter() - start < 5


def test_an_address_that_accepts_but_never_answers_is_named_as_such():
    import socket

    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_access import check_reachable

    with socket.socket() as server:  # listens (the kernel accepts the connection) but never replies
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(ExecutorError, match="accepted the connection but did not answer within 1 s"):
            check_reachable(address, timeout=1.0)


_MORE_ACTORS_THAN_GPUS = """
import os, sys, tempfile
os.environ.pop("TF_FORCE_GPU_ALLOW_GROWTH", None)
from tests.evaluation.executor_jobs import DeviceEnv
from tfnas.evaluation.ray_executor import RayExecutor
folder, meet = sys.argv[1], sys.argv[2]
pool = RayExecutor(3, init_kwargs={"num_cpus": 4, "num_gpus": 2, "object_store_memory": 80 * 1024 ** 2,
                                   "_temp_dir": folder})
print(sorted(gpu + "/" + growth for _, gpu, growth in pool.map(DeviceEnv(meet=3), [meet] * 3)))
pool.close()
"""


@pytest.mark.slow  # a Ray instance of its own (~15 s), in a subprocess: this file's instance declares no GPUs
def test_more_ray_actors_than_gpus_share_them_instead_of_waiting_forever(tmp_path):
    """Three actors on two (declared) GPUs: each asks for half a GPU, so all three start; asking for a
    whole one each, the third waited for a GPU that never came free and the batch never finished."""
    import ast
    import subprocess
    import sys

    folder = tempfile.mkdtemp(prefix="tfnas-ray-")  # short: Ray's socket paths must stay under 108 bytes
    (tmp_path / "meet").mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_AUTH_MODE="disabled")
    try:
        done = subprocess.run([sys.executable, "-c", _MORE_ACTORS_THAN_GPUS, folder, str(tmp_path / "meet")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert sorted(seen.count(g) for g in ("0/true", "1/true")) == [1, 2]  # two actors share a GPU


_LOCAL_DESPITE_RAY_ADDRESS = """
import os, sys
from tests.evaluation.executor_jobs import DeviceEnv
from tfnas.evaluation.executors import cpu_count
from tfnas.evaluation.ray_executor import RayExecutor
workers = cpu_count() + 1  # more workers than cores: each reserves a CPU, and all must start
pool = RayExecutor(workers, init_kwargs={"object_store_memory": 80 * 1024 ** 2})
folder = pool._temp_dir
print(len({pid for pid, _, _ in pool.map(DeviceEnv(meet=workers), [sys.argv[1]] * workers)}), workers)
pool.close()
print(os.path.isdir(folder) or folder)
"""


@pytest.mark.slow  # a Ray instance of its own (~15 s), in a subprocess
def test_a_local_ray_starts_every_worker_ignores_ray_address_and_leaves_no_files(tmp_path):
    """`ray_address = local` started no instance when RAY_ADDRESS named a cluster (Ray followed it);
    more workers than free CPUs waited for ever (Ray never placed the extra actors, and their chunks
    with them); each instance left its session files in /tmp/ray (and its token in ~/.ray/auth_token)."""
    import subprocess
    import sys

    (tmp_path / "meet").mkdir()
    env = {name: value for name, value in os.environ.items() if name not in _AUTH_ENV}
    env.update(PYTHONPATH=ROOT, RAY_ADDRESS="127.0.0.1:9", HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", _LOCAL_DESPITE_RAY_ADDRESS, str(tmp_path / "meet")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    started, expected = done.stdout.strip().splitlines()[-2].split()
    assert started == expected  # every worker ran an item at the same time
    assert done.stdout.strip().splitlines()[-1].startswith(tempfile.gettempdir())  # the folder, removed
    assert not (tmp_path / "home" / ".ray").exists()  # nor a token file (the instance's token was in its env)
    assert "Started a local Ray instance" not in done.stderr + done.stdout  # Ray's INFO lines: with tfnas' (-v)


def test_a_token_file_that_cannot_be_read_is_named_before_ray_starts(tmp_path, monkeypatch):
    """Ray said the cluster refused this process and to set RAY_AUTH_TOKEN_PATH, which was set (exit 2)."""
    from tfnas.evaluation.ray_access import check_token_file

    for name in _AUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(OSError, match="RAY_AUTH_TOKEN_PATH names a token file that cannot be read") as err:
        check_token_file()
    assert err.value.filename == str(tmp_path / "missing")
    (tmp_path / "token").write_text("abc")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    check_token_file()
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")  # taken first by Ray: the path is not read
    check_token_file()


def test_on_a_cluster_as_many_workers_start_as_its_free_cpus_can_place(caplog):
    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_executor import RayExecutor

    pool = object.__new__(RayExecutor)  # the placement rule alone: no Ray started
    pool.threads, pool._owns = 2, False
    with caplog.at_level("WARNING"):
        assert pool._fitting(5, 2, 4.0) == 2
    assert "[run] workers = 5: Ray has 4 free CPUs for workers of 2 CPUs each, so 2 workers start" in caplog.text
    assert pool._fitting(2, 2, 7.0) == 2
    with pytest.raises(ExecutorError, match=r"worker_threads = 2: a Ray worker reserves 2 CPUs and Ray has 1.5 free"):
        pool._fitting(1, 2, 1.5)


@pytest.mark.parametrize("name", _AUTH_ENV)
def test_a_user_setting_of_ray_authentication_is_left_alone(name, monkeypatch):
    from tfnas.evaluation.ray_access import use_process_token

    for other in _AUTH_ENV:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, "disabled" if name == "RAY_AUTH_MODE" else "mine")
    assert use_process_token() is False
    assert [os.environ.get(other) for other in _AUTH_ENV] == [os.environ.get(name) if other == name else None
                                                              for other in _AUTH_ENV]


_CTRL_C_WHILE_RAY = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal
import logging, ray, ray._private.node as node, ray._private.worker as worker
from tfnas.evaluation.ray_executor import RayExecutor
logging.getLogger("tfnas").setLevel(logging.INFO)  # Ray's INFO lines too (as at -v): "Started a local Ray instance"
when = sys.argv[1]  # Ctrl-C as the driver connects to the started processes, as the executor asks the started
# instance for its CPUs (before any actor starts), or as Ray kills its processes; or once the raylet (and the
# agents it launches) runs, before the driver's node is complete
owner, name = {"start": (worker, "connect"), "started": (ray, "cluster_resources"),
               "stop": (node.Node, "kill_all_processes"), "raylet": (node.Node, "start_raylet")}[when]
signum = getattr(signal, sys.argv[2])  # SIGINT, or SIGTERM as the command line handles it
original = getattr(owner, name)
def interrupted(*args, **kwargs):
    if when == "raylet":
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signum)
        return result
    os.kill(os.getpid(), signum)
    return original(*args, **kwargs)
setattr(owner, name, interrupted)
from tfnas.interrupts import termination_as_interrupt
with termination_as_interrupt([]):
    try:
        RayExecutor(2, init_kwargs={"object_store_memory": 80 * 1024 ** 2}).close()
        print("no KeyboardInterrupt")
    except KeyboardInterrupt as stop:
        print(type(stop).__name__)
"""


@pytest.mark.slow  # a Ray instance of its own (~10 s), in a subprocess
@pytest.mark.parametrize("when, signame", [("start", "SIGINT"), ("started", "SIGINT"), ("stop", "SIGINT"),
                                           ("start", "SIGTERM"), ("stop", "SIGTERM"), ("raylet", "SIGTERM")])
def test_ctrl_c_while_a_private_ray_starts_or_stops_leaves_no_process_or_folder(when, signame, tmp_path):
    """Ctrl-C in ``ray.init`` left the GCS (and Ray's agents) running and the session folder behind; in
    ``ray.shutdown`` it left the processes not yet killed and the folder, and right after ``ray.init`` (before
    the actors started) it never reached :meth:`RayExecutor.close`. Now Ray finishes starting (and is
    stopped) or stopping, and then the KeyboardInterrupt comes; SIGTERM likewise (Ray's own handler, which cut
    ``ray.init`` short and left the raylet's agents running, is not installed)."""
    import subprocess
    import sys

    folder = tempfile.mkdtemp(prefix="tfnas-ray-")  # short: Ray's socket paths must stay under 108 bytes
    env = {name: value for name, value in os.environ.items() if name not in _AUTH_ENV}
    env.update(PYTHONPATH=ROOT, RAY_TMPDIR=folder, HOME=str(tmp_path))
    try:
        done = subprocess.run([sys.executable, "-c", _CTRL_C_WHILE_RAY, when, signame], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180)
        time.sleep(2)  # a process still exiting
        left = kill_processes_with_env(f"RAY_TMPDIR={folder}")  # Ray's processes inherit RAY_TMPDIR
        expected = "Terminated" if signame == "SIGTERM" else "KeyboardInterrupt"
        assert done.stdout.strip().splitlines()[-1:] == [expected], done.stderr[-3000:]
        assert not left and os.listdir(folder) == []
        if when == "raylet":  # the start was completed, not cut short while the raylet launched its agents
            assert "Started a local Ray instance" in done.stderr, done.stderr[-3000:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_STOPPED_EARLY = """
import time
from tests.evaluation.executor_jobs import SleepFor
from tfnas.evaluation.ray_executor import RayExecutor
pool = RayExecutor(2, init_kwargs={"object_store_memory": 80 * 1024 ** 2})
results = pool.imap(SleepFor(), [0.0, 60.0, 60.0], chunk=1)
next(results)
results.close()  # as Ctrl-C or an error in the caller does
time.sleep(3)  # Ray's driver prints what its raylet reports from a thread of its own
pool.close()
"""


@pytest.mark.slow  # a Ray instance of its own (~8 s), in a subprocess (in this file's instance Ray prints no such line)
def test_tasks_stopped_early_are_cancelled_not_retried_on_their_killed_actors(tmp_path):
    """Each Ctrl-C of a run on Ray printed one "(raylet) Task _Worker.run failed. There are 3 retries
    remaining, so the task will be retried" line per running task: the tasks were not cancelled (Ray
    refuses force=True for actor tasks) before their actors were killed."""
    import subprocess
    import sys

    env = {name: value for name, value in os.environ.items() if name not in _AUTH_ENV}
    env.update(PYTHONPATH=ROOT, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _STOPPED_EARLY], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "retried" not in done.stdout + done.stderr


_AUTOGRAPH = """
import os
from tests.evaluation.executor_jobs import Autographed
from tfnas.evaluation.ray_executor import RayExecutor
pool = RayExecutor(2, init_kwargs={"object_store_memory": 80 * 1024 ** 2})
assert pool.map(Autographed(), [1, 2, 3, 4]) == [2, 4, 6, 8]
actors = os.path.join(pool._temp_dir, "tfnas-actors")  # inside the instance's folder, which goes even after Ctrl-C
print(sorted(name for folder in os.listdir(actors) for name in os.listdir(os.path.join(actors, folder))))
pool.close()
"""


@pytest.mark.slow  # a Ray instance of its own (~8 s), in a subprocess with a temp folder of its own
def test_ray_actors_leave_nothing_in_the_temp_folder():
    """Killed at the end of every run, the actors never ran TensorFlow's exit handlers, which remove the
    files AutoGraph writes to the temp folder: about five were left there per run."""
    import subprocess
    import sys

    folder = tempfile.mkdtemp(prefix="tfnas-t-")  # short: Ray's socket paths must stay under 108 bytes
    env = {name: value for name, value in os.environ.items() if name not in _AUTH_ENV}
    env.update(PYTHONPATH=ROOT, TMPDIR=folder)
    try:
        done = subprocess.run([sys.executable, "-c", _AUTOGRAPH], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "__autograph_generated_file" in done.stdout  # the actors wrote into their folders while they ran
        assert os.listdir(folder) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("env, expected", [
    ({}, r"uses token authentication and this process sends none \(RAY_AUTH_MODE is not token\); set RAY_AUTH_MODE"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "b" * 64},
     "uses token authentication and refused this process' token"),
    # a token without RAY_AUTH_MODE=token: ray.init sends it only to a cluster it finds itself (auto), not to HOST:PORT
    ({"RAY_AUTH_TOKEN": "a" * 64}, r"uses token authentication and this process sends none"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a" * 64}, None),  # the right token: the client is made
])
def test_a_head_that_refuses_the_token_or_a_port_that_is_no_head_is_named_at_once(env, expected, monkeypatch,
                                                                                   tmp_path):
    """A head with token authentication, or a raylet's port, took ``ray.init`` 20 s of retries (and a warning a
    second) to refuse, with "Failed to connect to Ray cluster" and no word of why."""
    import ray._raylet
    from ray.exceptions import AuthenticationError

    from tfnas.evaluation import ray_access
    from tfnas.evaluation.executors import ExecutorError

    def client(address):  # the head of `RAY_AUTH_MODE=token RAY_AUTH_TOKEN=aaa... ray start --head`
        if os.environ.get("RAY_AUTH_MODE") != "token" or os.environ.get("RAY_AUTH_TOKEN") != "a" * 64:
            raise AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing or incorrect")

    monkeypatch.setattr(ray._raylet, "GcsClient", client)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    for name in _AUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if expected is None:
        ray_access.check_head("127.0.0.1:6399")
    else:
        with pytest.raises(ExecutorError, match=r"ray_address = 127\.0\.0\.1:6399: the Ray head there " + expected):
            ray_access.check_head("127.0.0.1:6399")
    if not env:  # another Ray process' gRPC port (a raylet's, say) answered the HTTP/2 check too
        def raylet(address):
            raise ray.exceptions.RpcError("RPC error: ", rpc_code=12)

        monkeypatch.setattr(ray._raylet, "GcsClient", raylet)
        with pytest.raises(ExecutorError, match=r"a gRPC server answers there, but not a Ray head"):
            ray_access.check_head("127.0.0.1:6399")
    try:  # ray.init's own failure, 20 s later, is recognised too
        raise ConnectionError("Failed to connect to Ray cluster") from RuntimeError("... InvalidAuthToken: ...")
    except ConnectionError as exc:
        assert ray_access.refused_token(exc) and not ray_access.refused_token(ConnectionError("timeout"))


def test_auto_with_no_cluster_says_to_start_one(monkeypatch):
    """Ray's own words were about an `--address` flag and RAY_ADDRESS, which a tfnas user does not have."""
    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_executor import RayExecutor

    def init(**kwargs):  # what ray.init(address="auto") raises where no `ray start` ran
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                              "setting `--address` flag or `RAY_ADDRESS` environment variable.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(ExecutorError, match=r"ray_address = auto: no Ray cluster runs on this machine; start one "
                                            r"with `ray start --head`"):
        RayExecutor(2, address="auto")


def test_sigterms_handler_is_back_before_ray_kills_its_processes():
    """Ray's core worker puts SIGTERM to its default action as it stops; a SIGTERM while Ray then killed its
    processes ended the driver at once (its folder left behind), and an ignored SIGTERM was no longer ignored.
    The handler is back when ``state.disconnect`` runs (right before the kill), and the patch is gone after."""
    import signal
    import types

    from tfnas.evaluation.ray_signals import shutdown

    seen = []

    class State:
        def disconnect(self):
            seen.append(signal.getsignal(signal.SIGTERM))

    state = State()

    def ray_shutdown(wait_for_processes=False):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the core worker's stop
        state.disconnect()
        seen.append("killed")  # kill_all_processes

    fake_ray = types.SimpleNamespace(_private=types.SimpleNamespace(state=types.SimpleNamespace(state=state)),
                                     shutdown=ray_shutdown)

    def mine(signum, frame):
        pass

    before = signal.getsignal(signal.SIGTERM)
    try:
        for handler in (mine, signal.SIG_IGN):
            seen.clear()
            signal.signal(signal.SIGTERM, handler)
            shutdown(fake_ray)
            assert seen == [handler, "killed"] and signal.getsignal(signal.SIGTERM) is handler
            assert "disconnect" not in vars(state)
    finally:
        signal.signal(signal.SIGTERM, before)


def test_rays_sigterm_handler_is_kept_out_of_ray_init_unless_sigterm_is_at_its_default():
    """Ray's handler (sys.exit(15)) cut ray.init short while the raylet launched its agents; an ignored SIGTERM
    must stay ignored and a Python handler in place; at the default action Ray's handler is what ends the start."""
    import signal
    import types

    from tfnas.evaluation.ray_signals import sigterm_kept

    def ray_exit(signum, frame):
        raise SystemExit(signum)

    utils = types.SimpleNamespace(set_sigterm_handler=lambda handler: signal.signal(signal.SIGTERM, handler))
    fake_ray = types.SimpleNamespace(_private=types.SimpleNamespace(utils=utils))
    installer = utils.set_sigterm_handler

    def mine(signum, frame):
        pass

    before = signal.getsignal(signal.SIGTERM)
    try:
        for handler, kept in ((signal.SIG_IGN, True), (mine, True), (signal.SIG_DFL, False)):
            signal.signal(signal.SIGTERM, handler)
            with sigterm_kept(fake_ray):
                fake_ray._private.utils.set_sigterm_handler(ray_exit)  # what ray.init does first
                assert (signal.getsignal(signal.SIGTERM) is handler) == kept, handler
            assert signal.getsignal(signal.SIGTERM) is handler and utils.set_sigterm_handler is installer
    finally:
        signal.signal(signal.SIGTERM, before)


def test_auto_with_a_refused_token_is_named_at_once_with_the_cluster_found(monkeypatch, tmp_path):
    """``RAY_AUTH_MODE=token`` and a wrong token with ``auto``: 20 s of ray.init's retries, a warning a second and
    advice to `ray stop`, before the refusal was named."""
    import ray._private.services
    import ray._raylet
    from ray.exceptions import AuthenticationError

    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.ray_executor import RayExecutor

    asked = []

    def client(address):
        asked.append(address)
        raise AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing or incorrect")

    def init(**kwargs):
        raise AssertionError("ray.init was called")

    monkeypatch.setattr(ray._raylet, "GcsClient", client)
    monkeypatch.setattr(ray._private.services, "canonicalize_bootstrap_address", lambda address: "10.1.2.3:6379")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in _AUTH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "b" * 64)
    with pytest.raises(ExecutorError, match=r"ray_address = auto \(the cluster at 10\.1\.2\.3:6379\): the Ray head "
                                            r"there uses token authentication and refused this process' token"):
        RayExecutor(2, address="auto")
    assert asked == ["10.1.2.3:6379"]
    monkeypatch.delenv("RAY_AUTH_MODE")  # ray.init learns the cluster's mode itself: not checked, ray.init says
    with pytest.raises(AssertionError, match="ray.init was called"):
        RayExecutor(2, address="auto")
    assert asked == ["10.1.2.3:6379"]


def test_a_temp_folder_ray_cannot_use_is_named_with_where_it_comes_from(monkeypatch, tmp_path):
    """``RAY_TMPDIR=/proc`` said only "/proc/tfnas-ray-sedxuz5u: No such file or directory"."""
    from tfnas.evaluation.ray_executor import RayExecutor

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("Ray was started"))
    # nothing was started, so nothing is stopped (this stopped the module's instance, and a later call on an
    # actor started a new one, whose files stayed in the temp folder)
    monkeypatch.setattr(ray, "shutdown", lambda **kwargs: pytest.fail("Ray was stopped"))
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "missing"))
    with pytest.raises(OSError, match="cannot make Ray's session folder there .*; it comes from RAY_TMPDIR") as err:
        RayExecutor(2)
    assert err.value.filename == str(tmp_path / "missing")


_CHECK_HEAD = """
import sys
from tfnas.evaluation.executors import ExecutorError
from tfnas.evaluation.ray_access import check_head
try:
    check_head(sys.argv[1])
    print("accepted")
except ExecutorError as exc:
    print(exc)
"""


@pytest.mark.slow  # a token-protected Ray head of its own (`ray start --head`), ~15 s
def test_check_head_against_a_real_token_protected_head():
    """The checks above mock Ray's GcsClient; this one asks a real head started with
    ``RAY_AUTH_MODE=token``, so that a Ray upgrade that changes what its client raises is caught."""
    import signal
    import socket
    import subprocess
    import sys
    import uuid

    from tfnas.evaluation.ray_access import check_reachable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder, marker = tempfile.mkdtemp(prefix="tfnas-h-"), uuid.uuid4().hex  # short: Ray's socket paths
    token = "a" * 64
    env = {name: value for name, value in os.environ.items() if name not in _AUTH_ENV and name != "RAY_ADDRESS"}
    env.update(PYTHONPATH=ROOT, HOME=folder, TFNAS_TEST_HEAD=marker)
    head = None
    try:
        head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
                                 "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={folder}", "--block"],
                                env=dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(120):
            try:
                check_reachable(f"127.0.0.1:{port}", timeout=1.0)
                break
            except Exception:
                time.sleep(0.5)
        seen = {}
        for case, extra in {"none": {}, "wrong": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "b" * 64},
                            "right": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}}.items():
            done = subprocess.run([sys.executable, "-c", _CHECK_HEAD, f"127.0.0.1:{port}"], cwd=ROOT,
                                  env=dict(env, **extra), capture_output=True, text=True, timeout=60)
            seen[case] = done.stdout.strip().splitlines()[-1:]
            assert not done.stderr.strip(), (case, done.stderr)  # Ray's C++ client logged its refusal too
        assert "this process sends none" in seen["none"][0], seen
        assert "refused this process' token" in seen["wrong"][0], seen
        assert seen["right"] == ["accepted"], seen
    finally:
        if head is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(timeout=20)
        kill_processes_with_env(f"TFNAS_TEST_HEAD={marker}")  # Ray's processes that outlived `ray start`
        shutil.rmtree(folder, ignore_errors=True)


_SIGTERM_ON_RAY = """
import os, signal, sys
import ray._private.worker as worker
from tfnas.evaluation.ray_executor import RayExecutor
from tfnas.interrupts import Terminated, termination_as_interrupt
if sys.argv[1] == "start":  # SIGTERM while ray.init runs, where Ray's own handler calls sys.exit(15)
    connect = worker.connect
    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return connect(*args, **kwargs)
    worker.connect = terminated
with termination_as_interrupt([]):
    try:
        pool = RayExecutor(2, init_kwargs={"object_store_memory": 80 * 1024 ** 2})
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            print("no Terminated")
        finally:
            pool.close()
    except Terminated:
        print("Terminated")
    try:  # ray.shutdown resets SIGTERM to its default: the command line's handling is back after it
        os.kill(os.getpid(), signal.SIGTERM)
        import time
        time.sleep(2)
    except Terminated:
        print("Terminated after close")
"""


@pytest.mark.slow  # a Ray instance of its own (~8 s), in a subprocess
@pytest.mark.parametrize("when", ["start", "started"])
def test_sigterm_of_a_run_on_ray_stops_it_as_ctrl_c_does(when):
    """``ray.init`` installs Ray's own SIGTERM handler in the driver: while it starts ``sys.exit(15)`` (exit
    15, no message), afterwards a stack dump and SIGABRT (exit -6, three lines of addresses)."""
    import subprocess
    import sys

    env = {name: value for name, value in os.environ.items() if name not in _AUTH_ENV}
    done = subprocess.run([sys.executable, "-c", _SIGTERM_ON_RAY, when], cwd=ROOT, env=dict(env, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-2:] == ["Terminated", "Terminated after close"], done.stderr[-3000:]
    assert "SIGTERM received" not in done.stderr


def test_rays_note_on_a_token_found_on_disk_is_shown_at_v_only():
    """Joining a cluster with ~/.ray/auth_token, Ray advised "Set RAY_AUTH_MODE=disabled to opt out", advice for
    whoever started the cluster, without -v."""
    import logging

    from tfnas.evaluation.ray_executor import _RAY_AUTH_LOGGER, _quiet_logger

    target = logging.getLogger(_RAY_AUTH_LOGGER)
    with _quiet_logger(_RAY_AUTH_LOGGER, quiet=True):
        assert not target.isEnabledFor(logging.WARNING)
    assert target.level == logging.NOTSET
    with _quiet_logger(_RAY_AUTH_LOGGER, quiet=False):
        assert target.level == logging.NOTSET
