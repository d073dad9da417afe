"""Tests of tfnas.train.distribute, and of MirroredStrategy on two logical CPUs (in a subprocess)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from tfnas.train.distribute import (ClusterError, StrategyError, make_strategy, preemption_notice, resolve_jit_compile,
                                    stop_if_preempted)


def test_auto_and_one_device_on_cpu():
    assert make_strategy("auto").num_replicas_in_sync == 1
    one = make_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy) and one.num_replicas_in_sync == 1
    assert make_strategy(one) is one


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(StrategyError, match="one_device, mirrored, multi_worker"):
        make_strategy("tpu")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(StrategyError, match="set TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(StrategyError, match="not valid JSON"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(StrategyError, match="'task'"):
        make_strategy("multi_worker")


_TWO = {"worker": ["localhost:2222", "localhost:2223"]}


@pytest.mark.parametrize("cluster, task, fragment", [
    (_TWO, {"type": "worker", "index": 2},
     "task index 2 is out of range: the cluster has 2 'worker' task(s) (indices 0, 1)"),
    (_TWO, {"type": "chief", "index": 0}, "task type 'chief' is not in the cluster ('worker')"),
    ({"worker": {"1": "h:2222"}}, {"type": "worker", "index": 1}, "must number its tasks 0..0 (MultiWorkerMirrored"),
    (_TWO, {"type": "worker", "index": "0"}, "task index must be a non-negative integer; got '0'"),
    (_TWO, ["worker", 0], "'task' must be"),
    ({"worker": "localhost:2222"}, {"type": "worker", "index": 0}, "must be a non-empty list"),
    ({"worker": []}, {"type": "worker", "index": 0}, "must be a non-empty list"),
    ({"worker": ["localhost"]}, {"type": "worker", "index": 0}, "holds 'localhost', not a \"host:port\""),
    ([], {"type": "worker", "index": 0}, "'cluster' must map task types"),
    ({**_TWO, "ps": ["h:2"]}, {"type": "worker", "index": 0}, "task type(s) 'ps'; MultiWorkerMirroredStrategy takes"),
    (_TWO, {"type": "evaluator", "index": 0}, "task type 'evaluator' cannot run here: MultiWorkerMirroredStrategy"),
    # a task waited for ever for a peer at its own address, or at a port that cannot be
    ({"worker": ["localhost:2222", "localhost:2222"]}, {"type": "worker", "index": 0},
     "holds 'localhost:2222', also the address of task 'worker' 0; every task needs an address of its own"),
    ({"chief": ["h:1"], "worker": {"0": "h:1"}}, {"type": "worker", "index": 0}, "also the address of task 'chief' 0"),
    # ... or at its own endpoint written otherwise
    ({"worker": ["localhost:2222", "127.0.0.1:2222"]}, {"type": "worker", "index": 0},
     "holds '127.0.0.1:2222', the same endpoint as 'localhost:2222' of task 'worker' 0"),
    ({"worker": ["localhost:2222", "LOCALHOST:2222"]}, {"type": "worker", "index": 0}, "the same endpoint as"),
    ({"worker": ["localhost:0", "localhost:2223"]}, {"type": "worker", "index": 0}, "port is not one of 1..65535"),
    ({"worker": ["localhost:70000"]}, {"type": "worker", "index": 0}, "holds 'localhost:70000', whose port is not"),
])
def test_a_tf_config_that_parses_but_is_wrong_is_refused(monkeypatch, cluster, task, fragment):
    from tfnas.train.distribute import check_cluster_spec

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    with pytest.raises(StrategyError, match="TF_CONFIG: ") as info:
        check_cluster_spec("multi_worker")
    assert fragment in str(info.value)


def test_a_valid_tf_config_is_accepted(monkeypatch):
    from tfnas.train.distribute import check_cluster_spec

    for cluster in (_TWO, {"chief": ["[::1]:2221"], "worker": {"0": "h:2222"}}, {"worker": {"1": "h:2", "0": "h:3"}}):
        index = int(next(iter(cluster["worker"]))) if isinstance(cluster["worker"], dict) else 0
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        check_cluster_spec("multi_worker")


def test_ctrl_c_ends_the_wait_for_a_worker_that_never_starts(tmp_path):
    # TensorFlow waits for the cluster in C++, where Python's SIGINT handler never runs.
    import signal
    import socket
    import time

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("localhost", 0))
            ports.append(sock.getsockname()[1])
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                                  "task": {"type": "worker", "index": 0}})}
    code = "from tfnas.train.distribute import make_strategy; make_strategy('multi_worker'); print('formed')"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        lines = []
        for line in proc.stderr:  # the warning comes before the wait
            lines.append(line)
            if "waiting for the other 1 task(s)" in line:
                break
        assert lines and "Ctrl-C stops" in lines[-1], "".join(lines)[-2000:]
        time.sleep(3)  # inside the strategy's wait by now
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGINT and "formed" not in proc.stdout.read()


def test_resolve_jit_compile(monkeypatch):
    assert resolve_jit_compile("auto") is bool(tf.config.list_physical_devices("GPU"))
    assert resolve_jit_compile("true") is True and resolve_jit_compile(False) is False
    with pytest.raises(ValueError, match="jit_compile"):
        resolve_jit_compile("yes")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["a GPU"])
    assert resolve_jit_compile("auto") is True  # a network trained once: XLA with a GPU
    # supernets and one-candidate trainings: off unless asked for
    assert resolve_jit_compile("auto", auto=False) is False and resolve_jit_compile("true", auto=False) is True


# Runs in a fresh interpreter: logical devices must be configured before TF initialises them.
MIRRORED_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, math
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from tfnas.config import TrainConfig
    from tfnas.train import Trainer, make_strategy

    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8, 8, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[..., 0].mean(axis=(1, 2)) > 0).astype(int)]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # last batch of 4: uneven split

    def model_fn(bn):
        def build():
            inp = keras.Input((8, 8, 3))
            h = keras.layers.Conv2D(4, 3, padding="same")(inp)
            if bn:
                h = keras.layers.BatchNormalization()(h)
            h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
            return keras.Model(inp, keras.layers.Dense(2)(h))
        return build

    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    out = {}
    base = TrainConfig(epochs=3, lr=0.2, weight_decay=1e-3, schedule="constant")
    for clip in (1.0, 0.0):  # with clipping: explicit all-reduce path; without: optimizer's
        cfg = dataclasses.replace(base, grad_clip=clip)
        for name, strat in (("one", "one_device"), ("mirrored", strategy)):
            t = Trainer(model_fn(False), cfg, strategy=strat, jit_compile=False, progress=False, seed=1)
            h = t.fit(ds, ds)
            out[f"{name}_{clip}"] = h.loss
            out[f"{name}_{clip}_w"] = float(sum(np.abs(v.numpy()).sum() for v in t.model.weights))
    t = Trainer(model_fn(True), base, strategy=strategy, jit_compile=True, progress=False, seed=1)
    out["bn_jit"] = t.fit(ds, ds).loss
    out["bn_jit_traces"] = t.trace_counts["train"]
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow  # ~50 s on 2 cores
def test_mirrored_on_two_logical_cpus_matches_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    for clip in ("1.0", "0.0"):
        # Loss scaled by the global batch, decay and clipping counted once: same run as one device.
        assert out[f"mirrored_{clip}"] == pytest.approx(out[f"one_{clip}"], rel=1e-4)
        assert out[f"mirrored_{clip}_w"] == pytest.approx(out[f"one_{clip}_w"], rel=1e-4)
        assert out[f"mirrored_{clip}"][-1] < out[f"mirrored_{clip}"][0]
    bn = out["bn_jit"]  # per-replica BatchNorm statistics, per-replica XLA
    assert all(v == v and v < 10 for v in bn) and bn[-1] < bn[0]
    assert out["bn_jit_traces"] == 1


def test_a_lost_peer_is_told_from_other_tensorflow_errors(monkeypatch):
    """Only a collective op's or the cluster's failure, with another task to lose, is "another task stopped";
    a failed read of the data (the same UnavailableError type) or an empty message is reported as itself."""
    from tfnas.train.distribute import ClusterError, peer_lost

    two = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}
    collective = tf.errors.UnavailableError(None, None, "{{function_node __wrapped__CollectiveReduceV2_device_/job:"
                                                        "worker/replica:0/task:0/device:CPU:0}} "
                                                        "Collective ops is aborted by: failed to connect to all "
                                                        "addresses\nAdditional GRPC error information "
                                                        "[Op:CollectiveReduceV2]")
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    lost = peer_lost(collective)
    assert isinstance(lost, ClusterError)
    assert str(lost) == ("multi_worker: another task of the cluster stopped or cannot be reached, so this one stops "
                         "too (UnavailableError: Collective ops is aborted by: failed to connect to all addresses); "
                         "start every task again with the same command")
    heartbeat = tf.errors.AbortedError(None, None, "/job:worker/replica:0/task:1 unhealthy (stopped sending "
                                                   "heartbeats)")
    assert isinstance(peer_lost(heartbeat), ClusterError)
    read = tf.errors.UnavailableError(None, None, "{{function_node __wrapped__ReadFile_device_/job:worker/replica:0/"
                                                  "task:0/device:CPU:0}} Error executing an HTTP request: HTTP "
                                                  "response code 503")  # TensorFlow's prefix names the job
    assert peer_lost(read) is None and peer_lost(tf.errors.UnavailableError(None, None, "")) is None
    assert peer_lost(ValueError("collective")) is None
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert peer_lost(collective) is None  # one task: no peer to lose


def test_no_preemption_notice_outside_a_cluster():
    """Without a coordination service there is no notice to read: an empty name, at once."""
    assert preemption_notice(wait_ms=50) == ""


def test_the_notice_is_read_under_its_key_with_the_wait(monkeypatch):
    from tensorflow.python.eager import context

    asked = []

    def read(self, key, timeout_in_ms=0):
        asked.append((key, timeout_in_ms))
        if len(asked) > 1:
            raise tf.errors.DeadlineExceededError(None, None, f"GetKeyValue() timed out with key: {key}")
        return "/job:worker/task:1"

    monkeypatch.setattr(context.Context, "get_config_key_value", read)
    assert preemption_notice() == "/job:worker/task:1" and preemption_notice(wait_ms=20) == ""
    assert asked == [("TF_DEFAULT_PREEMPTION_NOTICE_KEY", 1500), ("TF_DEFAULT_PREEMPTION_NOTICE_KEY", 20)]


def test_a_notice_stops_the_task_that_got_the_signal_and_tells_the_others(monkeypatch):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, signum: sent.append((pid, signum)))
    me = "/job:worker/task:0"
    stop_if_preempted(me, "", main=True)  # no notice: nothing
    assert sent == []
    stop_if_preempted(me, me, main=True)  # this task's SIGTERM, sent again now that Python's handler is back
    assert sent == [(os.getpid(), signal.SIGTERM)]
    with pytest.raises(ClusterError, match="task /job:chief/task:0 got a SIGTERM while the cluster was joining"):
        stop_if_preempted(me, "/job:chief/task:0", main=True)
    with pytest.raises(ClusterError, match="this task got a SIGTERM"):  # off the main thread: no handler to send to
        stop_if_preempted(me, me, main=False)
    assert len(sent) == 1
