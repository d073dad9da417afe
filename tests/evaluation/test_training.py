"""Tests of tfnas/evaluation/training.py through its users: the ``train`` estimation code and the training oracle,
on mocked CIFAR-10 (``tfds.testing.mock_data``) with a tiny NB201 (channels 4, one cell per stage)."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfnas.benchmarks.base import BudgetExceededError
from tfnas.config import load_config
from tfnas.evaluation import training as train_mod
from tfnas.evaluation.training import CACHE_FORMAT, TrainCache, TrainCacheError, check_accuracy
from tfnas.predictors import estimation
from tfnas.run.factory import build_benchmark, build_ec_factory, build_method, build_space

training_ec_factory = build_ec_factory

CELLS = [0, 1]


def make_cfg(out_dir, *overrides):
    """A tiny, offline config: data_dir is an empty folder, so only mock_data can provide images."""
    data_dir = os.path.join(str(out_dir), "no_data")
    return load_config(None, [
        f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
        "space.channels=4", "space.cells_per_stage=1", "dataset.name=cifar10", f"dataset.data_dir={data_dir}",
        "dataset.download=false", "dataset.train_subset=32", "dataset.eval_subset=16", "dataset.batch_size=16",
        "dataset.eval_batch_size=16", "predictor.ec_source=train", "predictor.ec_epochs=2", "train.epochs=1",
        *overrides,
    ])


class TrainerCount:
    """Patches ``training.Trainer`` to count constructions (one per trained cell)."""

    def __init__(self, monkeypatch):
        self.made = 0
        original = train_mod.Trainer

        def counting(*args, **kwargs):
            self.made += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(train_mod, "Trainer", counting)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ECs of CELLS (and cell 0 again) computed once, with the count of trainings it took."""
    out_dir = tmp_path_factory.mktemp("ec_run")
    cfg = make_cfg(out_dir)
    space, built = build_space(cfg), []
    with pytest.MonkeyPatch.context() as mp:
        count = TrainerCount(mp)
        build = space.build
        mp.setattr(space, "build", lambda arch, *args, **kwargs: built.append(arch) or build(arch, *args, **kwargs))
        ec = training_ec_factory(cfg, space)()
        with tfds.testing.mock_data(num_examples=48):
            codes = ec(np.array(CELLS + [0]))
    return {"cfg": cfg, "out_dir": str(out_dir), "codes": codes, "made": count.made, "ec": ec,
            "built": [space.encode(arch) for arch in built],
            "cells": [space.encode(space.from_index(i)) for i in CELLS]}


def test_ec_shape_dtype_and_finite_losses(trained):
    codes, ec = trained["codes"], trained["ec"]
    assert codes.shape == (3, 2) and codes.dtype == np.float32
    assert np.isfinite(codes).all() and (codes > 0).all()  # cross-entropy losses
    np.testing.assert_array_equal(codes[0], codes[2])  # the same cell twice
    assert ec.dim == 2
    assert ec.evals == 2 and ec.computed == 2
    assert trained["made"] == 2  # one training per distinct cell
    assert trained["built"] == trained["cells"]  # each code is its own cell's training
    assert not np.array_equal(codes[0], codes[1])


def test_cache_file_holds_recipe_and_entries(trained):
    folder = os.path.join(trained["out_dir"], "ec_cache")
    files = os.listdir(folder)
    assert len(files) == 1 and files[0].endswith(".json")
    data = json.load(open(os.path.join(folder, files[0]), encoding="utf-8"))
    assert data["format"] == CACHE_FORMAT and data["kind"] == "ec"
    recipe = data["recipe"]
    assert recipe["dataset"] == "cifar10" and recipe["train_subset"] == 32 and recipe["batch_size"] == 16
    assert recipe["seed"] == 0 and recipe["train"]["epochs"] == 2 and recipe["train"]["optimizer"] == "adam"
    assert "channels=4" in recipe["space"]
    # a [train] key added later is left out at its default, so caches made before it keep their names
    assert "weight_decay_scope" not in recipe["train"] and "file_order" not in recipe
    space = build_space(trained["cfg"])
    keys = [space.encode(space.from_index(i)) for i in CELLS]
    assert list(data["entries"]) == keys
    np.testing.assert_allclose(np.array([data["entries"][k] for k in keys], np.float32), trained["codes"][:2])


def test_fresh_factory_loads_the_cache_without_training(trained, monkeypatch):
    count = TrainerCount(monkeypatch)
    cfg = trained["cfg"]
    make_ec = training_ec_factory(cfg, build_space(cfg))  # no mock_data: loading any data would fail
    ec = make_ec()
    codes = ec([1, 0])
    np.testing.assert_array_equal(codes, trained["codes"][[1, 0]])
    assert count.made == 0 and ec.computed == 0
    assert ec.evals == 2  # loaded cells count as evaluations of this run
    assert make_ec().evals == 0  # each EC object counts its own run


def test_other_recipe_does_not_reuse_entries(trained, monkeypatch):
    count = TrainerCount(monkeypatch)
    cfg = make_cfg(trained["out_dir"], "run.seed=1")
    ec = training_ec_factory(cfg, build_space(cfg))()
    with tfds.testing.mock_data(num_examples=48):
        codes = ec([0])
    assert count.made == 1 and ec.computed == 1
    assert not np.array_equal(codes[0], trained["codes"][0])  # other initial weights and batches
    assert len(os.listdir(os.path.join(trained["out_dir"], "ec_cache"))) == 2


def test_a_cell_value_does_not_depend_on_what_trained_before(trained, tmp_path):
    import keras

    keras.utils.set_random_seed(123)  # global seeds left behind by some other training
    cfg = make_cfg(tmp_path)
    ec = training_ec_factory(cfg, build_space(cfg))()
    with tfds.testing.mock_data(num_examples=48):
        alone = ec([1])  # trained first here, second in the fixture
    np.testing.assert_allclose(alone[0], trained["codes"][1], rtol=1e-5)


def test_a_cache_of_another_recipe_under_this_name_is_refused(tmp_path):
    recipe = {"dataset": "cifar10", "seed": 0}
    cache = TrainCache(str(tmp_path), "ec", recipe)
    cache.put("|arch|", [1.0, 2.0])
    data = json.load(open(cache.path, encoding="utf-8"))
    data["recipe"]["seed"] = 7
    with open(cache.path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    with pytest.raises(TrainCacheError, match="another recipe") as err:
        TrainCache(str(tmp_path), "ec", recipe)
    assert cache.path in str(err.value) and "delete it" in str(err.value)
    with open(cache.path, "w", encoding="utf-8") as fh:
        fh.write("{not json")
    with pytest.raises(TrainCacheError, match="not a readable"):
        TrainCache(str(tmp_path), "ec", recipe)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TrainCacheError, match=r"afile: the tfnas training cache folder is a file"):
        TrainCache(str(tmp_path / "afile"), "ec", recipe)  # at once, not at the first result


def test_caches_of_several_processes_keep_each_others_entries(tmp_path):
    """The workers of a parallel sweep each hold a cache of the same file: each write replaced the file with its
    own entries, so the others' results were lost (and trained again on a resume)."""
    recipe = {"seed": 0}
    first, second = TrainCache(str(tmp_path), "oracle", recipe), TrainCache(str(tmp_path), "oracle", recipe)
    first.put("|a|", 0.5)
    second.put("|b|", 0.25)
    first.put("|c|", 0.75)
    again = TrainCache(str(tmp_path), "oracle", recipe, check_accuracy)
    assert {key: again.get(key) for key in ("|a|", "|b|", "|c|")} == {"|a|": 0.5, "|b|": 0.25, "|c|": 0.75}
    assert "|b|" in first  # what the other one wrote, read at the write



def test_a_cache_folder_that_cannot_be_locked_still_keeps_the_others_entries(tmp_path, monkeypatch):
    """NFS refuses an exclusive lock of a folder opened for reading: the write goes on, merging without it."""
    import fcntl

    def refused(fd, operation):
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", refused)
    first, second = TrainCache(str(tmp_path), "oracle", {"seed": 0}), TrainCache(str(tmp_path), "oracle", {"seed": 0})
    first.put("|a|", 0.5)
    second.put("|b|", 0.25)
    assert sorted(TrainCache(str(tmp_path), "oracle", {"seed": 0})._entries) == ["|a|", "|b|"]


def test_bad_cached_entries_are_refused(tmp_path):
    recipe = {"seed": 0}
    TrainCache(str(tmp_path), "oracle", recipe).put("|arch|", 1.5)
    with pytest.raises(TrainCacheError, match="accuracy in"):
        TrainCache(str(tmp_path), "oracle", recipe, check_accuracy)


def test_oracle_counts_queries_enforces_budget_and_caches(tmp_path, monkeypatch):
    count = TrainerCount(monkeypatch)
    cfg = make_cfg(tmp_path, "benchmark.name=train")
    space = build_space(cfg)
    benchmark = build_benchmark(cfg, space)
    oracle = benchmark.session("cifar10", budget=1)
    with tfds.testing.mock_data(num_examples=48):
        acc = oracle.query(0)
    assert 0.0 <= acc <= 1.0 and count.made == 1
    assert oracle.query(0) == acc and oracle.query_many([0, 0])[1] == np.float32(acc)  # re-asking is free
    assert oracle.queries == 1 and oracle.remaining == 0
    assert oracle.queried() == {0: acc}
    with pytest.raises(BudgetExceededError, match="budget of 1"):
        oracle.query(1)
    assert count.made == 1 and oracle.queries == 1  # nothing trained past the budget
    files = os.listdir(os.path.join(str(tmp_path), "oracle_cache"))
    assert len(files) == 1

    # A fresh factory (a resumed search) answers from disk, and still counts the query.
    fresh = build_benchmark(cfg, space)
    again = fresh.session("cifar10", budget=None)
    np.testing.assert_array_equal(again.query_many([0]), np.array([acc], np.float32))
    assert again.queries == 1 and fresh.evaluator.computed == 0 and count.made == 1
    assert fresh.evaluate(0) == pytest.approx(100 * acc)  # the found cell, outside any budget


def test_a_failed_oracle_training_is_recorded_as_failed_not_lost(tmp_path, monkeypatch, caplog):
    """A cell whose loss became NaN: the query still counts, answers 0 (it ranks last), the cache
    stores null so a rerun does not train it again, and a warning names it; on an executor too."""
    from tfnas.evaluation.executors import Failed
    from tfnas.train.trainer import Trainer

    def nan_loss(self, *args, **kwargs):
        raise FloatingPointError("training loss is nan")

    cfg = make_cfg(tmp_path, "benchmark.name=train")
    space = build_space(cfg)
    benchmark = build_benchmark(cfg, space)
    key = space.encode(space.from_index(1))
    session = benchmark.session("cifar10", budget=2)
    with tfds.testing.mock_data(num_examples=48):
        good = session.query(0)
        monkeypatch.setattr(Trainer, "fit", nan_loss)
        with caplog.at_level("WARNING"):
            failed = session.query(1)
    assert 0.0 <= good <= 1.0 and failed == 0.0 and session.queries == 2
    assert f"training cell {key} failed" in caplog.text and "training loss is nan" in caplog.text
    assert benchmark.evaluator.failed == 1
    (name,) = os.listdir(os.path.join(str(tmp_path), "oracle_cache"))
    entries = json.loads(open(os.path.join(str(tmp_path), "oracle_cache", name)).read())["entries"]
    assert entries[key] is None and entries[space.encode(space.from_index(0))] == pytest.approx(good)
    fresh = build_benchmark(cfg, space)  # a rerun reads the failure back without training again
    assert fresh.session("cifar10").query(1) == 0.0 and fresh.evaluator.computed == 0

    class FailingPool:  # the executor path: the worker's item came back Failed
        name = "process"

        def imap(self, job, items, chunk=0):
            assert chunk == 1  # one cell per task: each is cached as soon as it is done
            return iter([Failed(f"{kind}: training loss is nan")  # tfnas' own type, and the builtin one it derives
                         for kind, _ in zip(("TrainingDivergedError", "FloatingPointError"), items)])

    pooled = build_benchmark(make_cfg(tmp_path / "pool", "benchmark.name=train"), space)
    pooled.evaluator.executor = FailingPool()
    assert list(pooled.session("cifar10").query_many([2, 3])) == [0.0, 0.0] and pooled.evaluator.failed == 2

    class BrokenPool(FailingPool):  # any other worker error is not a diverged training: raised, not cached
        def imap(self, job, items, chunk=0):
            return iter([Failed("OSError: no data in the worker") for _ in items])

    pooled.evaluator.executor = BrokenPool()
    with pytest.raises(train_mod.CellTrainingError, match="failed in a worker: OSError: no data"):
        pooled.session("cifar10").query_many([6, 7])
    assert space.encode(space.from_index(6)) not in pooled.evaluator.cache
    pooled.evaluator.executor = FailingPool()
    with pytest.raises(train_mod.CellTrainingError, match=r"diverged \(in a worker: TrainingDivergedError"):
        pooled.evaluator.kind = "ec"
        pooled.evaluator.evaluate([space.from_index(4), space.from_index(5)])


def test_a_pooled_batch_keeps_the_cells_finished_before_an_interrupt_and_raises_worker_errors_as_they_are(
        tmp_path):
    """The pool's results were cached only once the whole batch was back: a Ctrl-C lost every cell the workers
    had trained. And a worker's missing dataset came back as CellTrainingError (exit 2), not as itself (exit 3)."""
    from tfnas.data.base import DatasetNotFoundError
    from tfnas.evaluation.executors import Failed
    from tfnas.evaluation.failed import picklable

    cfg = make_cfg(tmp_path, "benchmark.name=train")
    space = build_space(cfg)
    benchmark = build_benchmark(cfg, space)

    class InterruptedPool:
        name = "process"

        def imap(self, job, items, chunk=0):
            yield 0.5  # the first cell is done, then Ctrl-C
            raise KeyboardInterrupt

    benchmark.evaluator.executor = InterruptedPool()
    with pytest.raises(KeyboardInterrupt):
        benchmark.evaluator.evaluate([space.from_index(i) for i in (1, 2, 3)])
    fresh = build_benchmark(cfg, space)  # a rerun reads it back from disk
    assert fresh.evaluator.cache.get(space.encode(space.from_index(1))) == 0.5
    assert space.encode(space.from_index(2)) not in fresh.evaluator.cache

    class MissingData(InterruptedPool):
        def imap(self, job, items, chunk=0):
            exc = DatasetNotFoundError("dataset 'cifar10' is not available offline")
            return iter([Failed(f"DatasetNotFoundError: {exc}", picklable(exc)) for _ in items])

    benchmark.evaluator.executor = MissingData()
    with pytest.raises(DatasetNotFoundError, match="not available offline"):
        benchmark.evaluator.evaluate([space.from_index(i) for i in (4, 5)])


def test_short_trainings_leave_xla_off_under_auto_even_with_a_gpu(tmp_path, monkeypatch):
    """Each cell is a new network: with XLA, every short training would start with its own compile."""
    import tensorflow as tf

    seen = []

    class Stop(Exception):
        pass

    def trainer(*args, **kwargs):
        seen.append(kwargs["jit_compile"])
        raise Stop

    cfg = make_cfg(tmp_path)
    for value, want in (("auto", False), ("true", True)):
        training = train_mod.ShortTraining(build_space(cfg), cfg.train, dataset="cifar10", batch_size=16,
                                           train_subset=32, data_dir=cfg.dataset.data_dir, download="false",
                                           jit_compile=value, strategy=tf.distribute.get_strategy())
        with tfds.testing.mock_data(num_examples=48):
            training._split("train")  # the data first, then a GPU appears
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["a GPU"])
        monkeypatch.setattr(train_mod, "Trainer", trainer)
        with pytest.raises(Stop):
            training.train(0)
        monkeypatch.undo()
        assert seen[-1] is want


def test_ec_needs_a_tabular_space_and_a_full_batch(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(TypeError, match="TabularSpace"):
        training_ec_factory(cfg, object())
    small = make_cfg(tmp_path, "dataset.train_subset=8")
    with pytest.raises(ValueError, match="train_subset"):
        training_ec_factory(small, build_space(small))


def test_default_ec_subset_and_siamese_wiring(tmp_path):
    cfg = make_cfg(tmp_path, "dataset.train_subset=0", "method.name=siamese")
    space = build_space(cfg)
    method = build_method(cfg, space)
    ec = method._make_ec(session=None)
    assert isinstance(ec, estimation.TrainingEstimationCode)
    assert ec.evaluator.training.train_subset == estimation.DEFAULT_EC_SUBSET
    assert ec.evaluator.training.batch_size == estimation.EC_BATCH_SIZE and ec.dim == 2
    # [predictor] ec_subset wins over [dataset] train_subset (the training oracle's)
    for sets, subset in (([], 32), (["predictor.ec_subset=24"], 24)):
        cfg = make_cfg(tmp_path, "method.name=siamese", *sets)
        ec = build_method(cfg, build_space(cfg))._make_ec(session=None)
        assert ec.evaluator.training.train_subset == subset


@pytest.mark.slow
def test_siamese_search_with_trained_estimation_code(tmp_path):
    """The whole siamese search with ``ec_source = train`` (slow: every code is a short training)."""
    from tfnas.benchmarks.nb201 import Nb201Benchmark

    cfg = make_cfg(tmp_path, "method.name=siamese", "predictor.epochs=6", "predictor.units=8",
                   "search.rank_k=2", "search.final_rank_k=2", "search.reserve=1", "search.bts=false")
    with tfds.testing.mock_data(num_examples=48):
        method = build_method(cfg, build_space(cfg))
        session = Nb201Benchmark().session("cifar10", 4)
        result = method.run(session, 4, np.random.default_rng(0))
    assert session.queries == 4
    # Codes of the 3 training cells, the check's top-2 and the final top-2 (some may coincide).
    assert 3 <= result.ec_evals <= 7
    assert os.listdir(os.path.join(tmp_path, "ec_cache"))


def test_the_recipe_names_a_later_key_only_away_from_its_default_and_an_image_folders_order():
    from tfnas.config import TrainConfig
    from tfnas.evaluation.training import ShortTraining
    from tfnas.spaces.nb201 import Nb201Space

    def recipe(dataset="cifar10", **train):
        short = ShortTraining(Nb201Space(channels=4, cells_per_stage=1), TrainConfig(**train), dataset=dataset,
                              batch_size=8)
        return short.recipe(evaluate=False)

    assert "weight_decay_scope" not in recipe()["train"]  # the caches made before the key keep their names
    assert recipe(weight_decay_scope="all")["train"]["weight_decay_scope"] == "all"
    assert "file_order" not in recipe() and recipe("image_folder")["file_order"] == "shuffled-seed-0"
