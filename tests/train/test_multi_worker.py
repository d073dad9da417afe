"""[run] strategy = multi_worker: two local workers on loopback train one model in step.

Each worker is its own ``tools/train.py`` process with ``TF_CONFIG`` naming both (the way a
cluster runs it). The global batch is ``[dataset] batch_size``, split over the two replicas, so the
run is compared with one worker at the same global batch: the first epoch's loss agrees within a
few per cent (batch-norm statistics are per replica, 8 images instead of 16, so the curves drift
apart slowly after that); the two workers report the same curve.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.images import write_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def train(out_dir, data, strategy, tf_config=None, epochs=2):
    sets = [f"space.arch={ARCH}", "space.channels=4", "space.cells_per_stage=1", "dataset.name=image_folder",
            f"dataset.data_dir={data}", "dataset.image_size=16", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", f"train.epochs={epochs}", "train.flip=false", "train.pad_crop=0",
            "run.progress=false", "run.jit_compile=false", "run.tensorboard=false", "export.enabled=false",
            f"run.out_dir={out_dir}", f"run.strategy={strategy}"]
    env = {**os.environ, "TFNAS_OFFLINE": "1", "PYTHONPATH": ROOT}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    args = [sys.executable, os.path.join(ROOT, "tools", "train.py"),
            os.path.join(ROOT, "cfg", "train_nb201_cifar10.cfg")]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # ~60 s on 2 cores
def test_two_local_workers_train_in_step_like_one_worker(tmp_path):
    data = write_image_folder(tmp_path / "images", per_class=32)
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    procs = [train(tmp_path / f"w{i}", data, "multi_worker",
                   {"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    one = train(tmp_path / "one", data, "one_device")
    for proc in procs + [one]:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    w0, w1, single = (pd.read_csv(tmp_path / name / "history.csv") for name in ("w0", "w1", "one"))
    assert list(w0["epoch"]) == [1, 2]
    np.testing.assert_allclose(w0["loss"], w1["loss"], rtol=1e-6)  # one model, two workers
    np.testing.assert_allclose(w0["eval_loss"], w1["eval_loss"], rtol=1e-6)
    np.testing.assert_allclose(w0["lr"], single["lr"])  # same steps per epoch: the same global batch
    assert abs(w0["loss"][0] - single["loss"][0]) <= 0.03 * single["loss"][0]


@pytest.mark.slow  # ~60 s on 2 cores
def test_sigterm_stops_a_training_worker_and_its_peer_says_so_in_one_line(tmp_path):
    """TensorFlow's coordination service puts its own SIGTERM handler in place when the workers join
    (a preemption notice that lets training go on): the command line's is put back over it."""
    data = write_image_folder(tmp_path / "images", per_class=32)
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    procs = [train(tmp_path / f"w{i}", data, "multi_worker", {"cluster": cluster, "task": {"type": "worker",
                                                                                         "index": i}}, epochs=500)
             for i in range(2)]
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "w0" / "history.csv").exists():  # training, not waiting for the peer
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.5)
        procs[0].send_signal(signal.SIGTERM)
        out0, _ = procs[0].communicate(timeout=120)
        out1, _ = procs[1].communicate(timeout=300)
    finally:
        for proc in procs:
            proc.kill() if proc.poll() is None else None
    assert procs[0].returncode == -signal.SIGTERM, out0[-3000:]
    assert "terminated: what finished is saved" in out0
    assert len(pd.read_csv(tmp_path / "w0" / "history.csv")) < 500
    assert procs[1].returncode == 5, out1[-3000:]
    assert "error: multi_worker: another task of the cluster stopped" in out1 and "Traceback" not in out1



@pytest.mark.slow  # ~60 s on 2 cores
def test_a_sigterm_while_waiting_for_the_cluster_stops_the_worker_once_it_has_joined(tmp_path):
    """While a task waits for its cluster, TensorFlow's SIGTERM handler is in place and only records the
    signal; the worker reads the coordination service's preemption notice back after the join and stops."""
    data = write_image_folder(tmp_path / "images", per_class=32)
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    spec = [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)]
    first = train(tmp_path / "w0", data, "multi_worker", spec[0], epochs=500)
    procs = [first]
    try:
        seen = []
        for line in first.stdout:  # the worker says it waits before TensorFlow starts waiting
            seen.append(line)
            if "waiting for the other 1 task(s)" in line:
                break
        assert first.poll() is None, "".join(seen)[-3000:]
        time.sleep(5)  # inside TensorFlow's wait
        first.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert first.poll() is None  # the signal was recorded, not acted on
        procs.append(train(tmp_path / "w1", data, "multi_worker", spec[1], epochs=500))
        out0, _ = first.communicate(timeout=180)
        out1, _ = procs[1].communicate(timeout=300)
    finally:
        for proc in procs:
            proc.kill() if proc.poll() is None else None
    out0 = "".join(seen) + out0
    assert first.returncode == -signal.SIGTERM, out0[-3000:]
    assert "a SIGTERM arrived while this task waited for the cluster" in out0 and "Traceback" not in out0
    assert not (tmp_path / "w0" / "history.csv").exists()  # stopped before its first epoch
    assert procs[1].returncode != 0 and "Traceback" not in out1, out1[-3000:]
