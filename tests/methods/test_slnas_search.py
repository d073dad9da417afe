"""SLNAS: the lite supernet's contracts and the weight-sharing search end to end (mock CIFAR-10).

The supernet tests share one small configuration (1 reduction cell, C=8, 32x32, 10 classes) with
the tiny search below, so its two steps are traced once per test process (the trace grows with the
cells: about 25 s for one cell, 60 s for two on a 2-core CPU); the slow test of the one trace and
the ops that move uses two chained cells.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.damage import damaged_state_copy, saved_step
from tests.served import serving_outputs
from tfnas.config import ConfigError, load_config
from tfnas.methods.slnas import pick_best
from tfnas.methods.slnas.search import STATE_FILE, SlnasSearch
from tfnas.run.method_args import lite_supernet
from tfnas.run.store import ArtifactStore
from tfnas.run.search import run_search
from tfnas.spaces.lite import LiteSpace
from tfnas.spaces.lite.supernet import LiteSupernet

CFG = "cfg/slnas_tiny.cfg"


def supernet(blocks=(0,)):
    # the configuration of the tiny search below, so the search reuses these traces
    net = lite_supernet(10, (32, 32, 3), channels=8, blocks=blocks, stem_stride=4, momentum=0.9, weight_decay=3e-4,
                        grad_clip=5.0, aux_weight=0.4, jit_compile=False, seed=0)
    net.set_drop_path_rate(0.0)
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.standard_normal((n, 32, 32, 3)), tf.float32), tf.one_hot(rng.integers(0, 10, n), 10))


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
            f"dataset.data_dir={os.path.join(str(out_dir), 'no_data')}", "dataset.download=false",
            "dataset.train_subset=40", "dataset.eval_subset=16", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", "search.batch_size=8", "search.steps_per_epoch=2",
            "search.controller_steps=3", "controller.hidden=16", "space.search_blocks=0", "space.channels=4",
            "space.blocks=0, 0", "train.epochs=1", *more]


# ---- supernet contracts ---------------------------------------------------------------------


@pytest.mark.slow  # ~2 min on 2 cores
def test_one_trace_for_every_candidate_and_only_the_sampled_ops_move():
    net = supernet(blocks=(0, 0))
    space = LiteSpace()
    images, labels = batch()
    archs = [space.sample(np.random.default_rng(k)) for k in range(3)]
    before = {v.path if hasattr(v, "path") else v.name: np.array(v.numpy()) for v in net._trainable}
    net.train_step(images, labels, archs[0], 0.05)
    ids = net.to_ids(archs[0])
    for i, cell in enumerate(net.cells):
        kind = 1 if cell["reduction"] else 0
        for q in range(10):
            chosen = int(ids[kind, q // 2, q % 2, 1])
            for t, layer in enumerate(cell["ops"][q]):
                moved = [not np.array_equal(np.array(v.numpy()), before[v.path if hasattr(v, "path") else v.name])
                         for v in layer.trainable_variables]
                stats_moved = [not np.allclose(np.array(v.numpy()), 0.0) and not np.allclose(np.array(v.numpy()), 1.0)
                               for v in layer.non_trainable_variables]
                if t == chosen:
                    assert any(moved), f"cell {i} slot {q}: the chosen op {t} did not train"
                else:
                    assert not any(moved), f"cell {i} slot {q}: op {t} moved without being sampled"
                    assert not any(stats_moved), f"cell {i} slot {q}: op {t} changed its BatchNorm statistics"
    for arch in archs[1:]:
        net.train_step(images, labels, arch, 0.05)
        net.eval_step(images, labels, arch)
    assert net.trace_counts == {"train": 1, "eval": 1}


def test_eval_is_deterministic_and_the_train_step_lowers_the_loss_of_its_candidate():
    net = supernet()
    arch = LiteSpace().sample(np.random.default_rng(5))
    images, labels = batch(16, seed=1)
    first = float(net.eval_step(images, labels, arch)[0])
    assert float(net.eval_step(images, labels, arch)[0]) == pytest.approx(first, rel=1e-6)
    for _ in range(5):
        net.train_step(images, labels, arch, 0.05)
    assert float(net.eval_step(images, labels, arch)[0]) < first


def test_supernet_checks_its_arguments():
    with pytest.raises(ValueError, match="stem_stride"):
        LiteSupernet(10, (32, 32, 3), channels=8, blocks=(0, 0), stem_stride=2)
    with pytest.raises(ValueError, match="input_shape"):
        LiteSupernet(10, (8, 8, 3), channels=8, blocks=(0, 0))
    with pytest.raises(ValueError, match="shape"):
        supernet().to_ids(np.zeros((3, 20), np.int32))


def test_pick_best_averages_the_samples_of_each_architecture():
    samples = [("a", 90.0), ("b", 80.0), ("a", 10.0), ("b", 70.0), ("c", 60.0)]
    assert pick_best(samples) == ("b", 75.0, 2)
    assert pick_best([("x", 1.0), ("y", 1.0)])[0] == "x"
    with pytest.raises(ValueError):
        pick_best([])


# ---- the search ------------------------------------------------------------------------------


def test_tiny_config_runs_search_training_and_export(tmp_path):
    cfg = load_config(CFG, tiny(tmp_path))
    with tfds.testing.mock_data(num_examples=40):
        run = run_search(cfg)
    best = LiteSpace().decode(run.outcome.best_arch)
    assert (tmp_path / "best_arch.txt").read_text().startswith(str(best))
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["score_name"] == "mean_reward" and 0.0 <= result["score"] <= 100.0
    assert result["extra"]["epochs"] == 2 and result["extra"]["supernet_traces"] == {"train": 1, "eval": 1}
    records = [json.loads(line) for line in (tmp_path / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(len(r["samples"]) == 3 for r in records)
    assert records[1]["drop_path"] == pytest.approx(0.35 / 2)
    sampled = [(s["arch"], s["reward"]) for r in records for s in r["samples"]]
    assert pick_best(sampled)[:2] == (run.outcome.best_arch, pytest.approx(run.outcome.score))
    from tests.run.tb_reader import scalars

    points = scalars(str(tmp_path / "tensorboard" / "search"))  # per candidate: every sample, every step
    assert points["candidate/reward"] == [(i, pytest.approx(r)) for i, (_, r) in enumerate(sampled)]
    losses = points["candidate/supernet_loss"]
    assert [s for s, _ in losses] == list(range(len(losses))) and len(losses) >= 2
    assert np.mean([v for _, v in losses]) == pytest.approx(np.mean([r["train_loss"] for r in records]), rel=1e-4)
    assert (tmp_path / "history.csv").read_text().count("\n") == 1 + 2
    history = pd.read_csv(tmp_path / "history.csv")  # an accuracy is a fraction, as in a training's history.csv
    assert history["train_acc"].between(0.0, 1.0).all() and history["epoch"].tolist() == [1, 2]
    # one output: no auxiliary head in the served model (a fresh Python without tfnas: tests/train/test_export.py)
    assert [o.shape for o in serving_outputs(tmp_path / "train" / "saved_model", (2, 32, 32, 3))] == [(2, 10)]


@pytest.mark.slow  # ~2 min per controller on 2 cores
@pytest.mark.parametrize("controller", ["ga", "lstm"])
def test_killed_search_resumes_at_the_next_epoch_and_ends_the_same(tmp_path, monkeypatch, controller):
    # Both cases are in the slow set (~2 min each here); the LSTM controller's own state
    # round trip is tested in test_slnas_controller.py. The GA's uninterrupted search is also the
    # reference for the same search with its rewards on worker processes.
    sets = ["train.enabled=false", "search.epochs=2", f"controller.kind={controller}", "controller.ga_population=4"]
    with tfds.testing.mock_data(num_examples=40):
        whole = run_search(load_config(CFG, tiny(tmp_path / "whole", *sets)))
        # Killed at the worst moment: epoch 2's weights and controller are written, its json is not.
        original = ArtifactStore.write_text

        def dies_before_second_state(self, name, text):
            if name == STATE_FILE and json.loads(text)["epoch"] == 2:
                raise KeyboardInterrupt("killed")
            return original(self, name, text)

        monkeypatch.setattr(ArtifactStore, "write_text", dies_before_second_state)
        with pytest.raises(KeyboardInterrupt):
            run_search(load_config(CFG, tiny(tmp_path / "killed", *sets)))
        state = json.loads((tmp_path / "killed" / "search_state" / "slnas.json").read_text())
        assert state["epoch"] == 1
        assert [saved_step(tmp_path / "killed" / "search_state" / name)
                for name in ("controller.npz", "controller.prev.npz")] == [2, 1]  # the resume takes the older
        monkeypatch.setattr(ArtifactStore, "write_text", original)
        resumed = run_search(load_config(CFG, tiny(tmp_path / "killed", *sets)))
    assert resumed.outcome.best_arch == whole.outcome.best_arch
    assert resumed.outcome.score == pytest.approx(whole.outcome.score, rel=1e-5)
    samples = [[json.loads(line)["samples"] for line in (tmp_path / d / "epochs.jsonl").read_text().splitlines()]
               for d in ("whole", "killed")]
    assert samples[0] == samples[1]
    if controller == "ga":
        ga_rewards_on_a_process_pool_give_the_same_search(tmp_path, whole, sets, monkeypatch)


def ga_rewards_on_a_process_pool_give_the_same_search(tmp_path, local, sets, monkeypatch):
    """The GA's rewards on a worker process (``[run] executor = process``): the same search as
    ``local``'s, which ran in this process. Population 4, 3 rewards per epoch: epoch 1 hands out
    members 0-2 at once; epoch 2 member 3 (the end of the generation), then members 0-1 of the next."""
    from tests.evaluation.executor_jobs import count_pool_batches

    batches = count_pool_batches(monkeypatch)
    with tfds.testing.mock_data(num_examples=40):
        pooled = run_search(load_config(CFG, tiny(tmp_path / "pool", *sets, "run.executor=process", "run.workers=1")))
    assert batches == [3, 1, 2]
    epochs = [[json.loads(line) for line in (tmp_path / d / "epochs.jsonl").read_text().splitlines()]
              for d in ("whole", "pool")]
    assert [r["samples"] for r in epochs[0]] == [r["samples"] for r in epochs[1]]  # same members, same rewards
    assert (pooled.outcome.best_arch, pooled.outcome.score) == (local.outcome.best_arch, local.outcome.score)
    state = [np.load(tmp_path / d / "search_state" / "controller.npz") for d in ("whole", "pool")]
    for key in state[0].files:
        np.testing.assert_array_equal(state[0][key], state[1][key])  # population, fitness, generator


def test_a_reward_that_fails_on_a_worker_stops_the_search_with_its_arch():
    # in this process the error would propagate; from a worker it comes back as Failed
    from tfnas.evaluation.executors import Failed
    from tfnas.methods.slnas.rewards import LiteSupernetRecipe

    class Net:
        def get_weights(self):
            return [np.zeros(3, np.float32)]

    class Pool:
        name = "process"

        def map(self, job, items):
            return [50.0, Failed("FloatingPointError: NaN logits")]

    search = SlnasSearch(LiteSpace(), (None,) * 5, LiteSupernetRecipe.of(10, (32, 32, 3)), lambda seed: None)
    rewards = search._rewarder(Net(), 0, Pool())
    archs = [np.array(json.loads(LiteSpace().encode(LiteSpace().sample(np.random.default_rng(k))))) for k in range(2)]
    batch = (np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 10), np.float32))
    with pytest.raises(RuntimeError, match="failed on a worker: FloatingPointError: NaN logits") as err:
        rewards(archs, [batch, batch])
    assert f"SLNAS reward of {search._arch_text(archs[1])} failed" in str(err.value)  # the member that failed
    # the worker's exception, where it came back, is raised again (as in this process), the member named as its cause
    failure = FloatingPointError("NaN logits")
    Pool.map = lambda self, job, items: [50.0, Failed("FloatingPointError: NaN logits", failure)]
    with pytest.raises(FloatingPointError, match="NaN logits") as err:
        search._rewarder(Net(), 0, Pool())(archs, [batch, batch])
    assert err.value is failure and f"SLNAS reward of {search._arch_text(archs[1])} failed" in str(err.value.__cause__)


def test_ga_next_batch_stops_at_the_end_of_the_generation():
    from tfnas.methods.slnas import GeneticController, lite_gene_bounds

    ga = GeneticController(lite_gene_bounds(), cell_types=2, population=4, seed=0)
    first = ga.next_batch(3)
    assert len(first) == 3 and all(np.array_equal(a, ga.population[k]) for k, a in enumerate(first))
    for arch in first:
        assert np.array_equal(ga.sample()[0], arch)
        ga.update(arch, 50.0)
    (last,) = ga.next_batch(3)  # only member 3 is left in this generation
    ga.update(last, 10.0)
    assert ga.generation == 1 and len(ga.next_batch(5)) == 4
    with pytest.raises(ValueError, match="n >= 1"):
        ga.next_batch(0)


def test_config_errors(tmp_path):
    with tfds.testing.mock_data(num_examples=40), pytest.raises(ConfigError, match=r"--set search\.reward_fraction"):
        run_search(load_config(CFG, tiny(tmp_path, "search.reward_fraction=0")))
    with pytest.raises(ConfigError, match=r"--set space\.name: method .slnas. needs a space with LiteSpace"):
        run_search(load_config(CFG, tiny(tmp_path / "b", "space.name=nb201")))
    for width in (7, 2):  # a traceback from the network once built, after the data was read
        with pytest.raises(ConfigError, match=rf"^--set space\.search_channels={width}: the SLNAS search network "
                                              r"needs an even width >= 4 \(ShuffleNet units split the channels "
                                              r"in halves\)$"):
            run_search(load_config(CFG, tiny(tmp_path / f"c{width}", f"space.search_channels={width}")))
        assert not (tmp_path / f"c{width}").exists()


# ---- a damaged state --------------------------------------------------------------------------

DAMAGE_SETS = ["train.enabled=false", "search.epochs=2", "controller.kind=ga", "controller.ga_population=4"]


@pytest.fixture(scope="module")
def finished_ga_search(tmp_path_factory):
    """The run directory of a finished tiny search (GA controller: no controller to trace)."""
    out = tmp_path_factory.mktemp("slnas_state") / "run"
    with tfds.testing.mock_data(num_examples=40):
        run_search(load_config(CFG, tiny(out, *DAMAGE_SETS)))
    return out


def _copy_sets(finished):
    """The sets of the tiny search in a copy of ``finished``: the same configuration (its data_dir)."""
    return [*DAMAGE_SETS, f"dataset.data_dir={os.path.join(str(finished), 'no_data')}"]


def _every_arch(state, arch):
    for epoch in state["samples"]:
        for sample in epoch:
            sample["arch"] = arch


@pytest.mark.parametrize("damage, fragment", [
    (lambda s: s.pop("samples"), "its 'samples' field is missing"),
    (lambda s: s["samples"].pop(), "'samples' must hold one list per epoch done (2); got 1"),
    (lambda s: s["samples"][1].pop(), "'samples'[1] must be a list of 3 items; got a list of 2 items"),
    (lambda s: s["samples"][0][1].update(reward="high"), "'samples'[0][1]['reward'] must be a finite number"),
    (lambda s: _every_arch(s, "[[1, 2]]"), "cannot be read back (ValueError: lite arch text"),
    (lambda s: s.update(epoch=-1), "'epoch' must be an integer in [0, 2]; got -1"),
    (lambda s: s.update(epoch="2"), "'epoch' must be an integer in [0, 2]; got '2'"),
    (lambda s: s.update(seconds="x"), "'seconds' must be a finite number >= 0; got 'x'"),
], ids=["samples-missing", "samples-too-few", "epoch-samples-too-few", "reward-a-string", "arch-undecodable",
        "epoch-negative", "epoch-a-string", "seconds-a-string"])
def test_a_damaged_field_of_the_state_is_named_before_any_work(finished_ga_search, tmp_path, monkeypatch, damage,
                                                               fragment):
    from tfnas.io import DamagedFileError

    out = tmp_path / "run"
    path, damaged = damaged_state_copy(finished_ga_search, out, "slnas.json", damage)
    monkeypatch.setattr(SlnasSearch, "_epoch", lambda *args, **kwargs: pytest.fail("an epoch ran"))
    with tfds.testing.mock_data(num_examples=40), pytest.raises(DamagedFileError) as caught:
        run_search(load_config(CFG, tiny(out, *_copy_sets(finished_ga_search))))
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value), str(caught.value)
    assert str(caught.value).endswith("; delete the run directory to restart")
    assert path.read_bytes() == damaged  # left in place for the user to look at
