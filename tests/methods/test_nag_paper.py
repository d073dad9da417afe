"""NAG in the paper's setting (``nag_supernet``) end to end: pool, supernet, scores, GAN, report,
RS-NAG, training and export; resume; RS-NAG's trainings on worker processes (``[run] executor =
process``: the same results as in this process; a training that fails is recorded as failed and the
best of the others is returned); config errors.

One tiny run, killed after the GAN and resumed, goes through the whole pipeline (the module
fixture); the RS-NAG tests start from a copy of its directory without RS-NAG's results, so they
resume at the RS-NAG stage (the executor keys are not part of a run's identity). The data is a
generated image folder rather than tfds' mock data, which patches only this process: the workers
read it too."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.evaluation.executor_jobs import count_pool_batches
from tests.images import write_image_folder
from tests.run.tb_reader import scalars
from tfnas.config import ConfigError, load_config
from tfnas.methods.nag.paper import NagSupernetSearch, decode_pairs
from tfnas.methods.weight_sharing import load_arrays
from tfnas.run.search import run_search
from tfnas.spaces.dag import padded
from tfnas.spaces.nasnet_dag import NASNET_DAG, NasnetDagSpace

CFG = "cfg/nag_tiny.cfg"
RS_FILE = ("search_state", "rs_nag.json")
# The tests that run RS-NAG again stop at the found pair: the pipeline fixture trains and exports it
# ([train] and [export] are not part of a search's identity).
NO_TRAINING = ("train.enabled=false", "export.enabled=false")


def tiny(out_dir, data, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
            "dataset.name=image_folder", f"dataset.data_dir={data}", "dataset.image_size=32",
            "dataset.train_subset=64", "dataset.eval_subset=16", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", "search.batch_size=16", "search.steps_per_epoch=2",
            "space.search_channels=4", "space.search_layers=3", "space.channels=4", "space.layers=3",
            "nag.pool=12", "nag.prop_layers=1", "nag.rs_candidates=3", "train.epochs=1", *more]


def one_hot_cells(archs):
    m, t = NASNET_DAG.max_nodes, NASNET_DAG.num_types
    cells = []
    for c in range(2):
        x, a = np.zeros((len(archs), m, t), np.float32), np.zeros((len(archs), m, m), np.float32)
        for b, arch in enumerate(archs):
            cell = arch.cell(c == 1)
            a[b], types = padded(cell.adjacency(), np.array(cell.types), m)
            x[b, np.flatnonzero(types >= 0), types[types >= 0]] = 1
        cells.append((x, a))
    return cells


def test_decode_pairs_round_trips_and_rejects_broken_cells():
    space = NasnetDagSpace()
    archs = [space.sample(np.random.default_rng(k)) for k in range(5)]
    cells = one_hot_cells(archs)
    assert decode_pairs(cells) == archs
    cells[1][1][2] = 0  # the third pair's reduction cell loses every edge
    out = decode_pairs(cells)
    assert out[2] is None and out[:2] == archs[:2]


def test_lean_tiny_config_runs_the_search_end_to_end(tmp_path):
    """The default run's end-to-end test of ``nag_supernet`` (the pipeline fixture's tests are slow): pool,
    supernet, scores, likelihood and GAN epochs, the quality report and RS-NAG, at the smallest sizes."""
    data = write_image_folder(tmp_path / "images", per_class=24, size=(32, 32))
    out = tmp_path / "run"
    run = run_search(load_config(CFG, tiny(out, data, "nag.pool=8", "nag.rs_candidates=1", "nag.pretrain_epochs=1",
                                           *NO_TRAINING)))
    space = NasnetDagSpace(channels=4, layers=3)
    best = space.decode(run.outcome.best_arch)
    result = json.loads((out / "result.json").read_text())
    assert result["best_arch"] == space.encode(best) and result["extra"]["pool"] == 8
    assert result["extra"]["rs_trained"] == 1 and result["extra"]["params"] == space.num_params(best, 2)
    rs = json.loads(out.joinpath(*RS_FILE).read_text())
    assert rs == {space.encode(best): result["score"]} and 0.0 <= result["score"] <= 100.0
    history = [row.split(",")[1] for row in (out / "history.csv").read_text().splitlines()[1:]]
    assert history == ["supernet"] * 2 + ["gan"] * 2  # 2 supernet epochs, 1 likelihood + 1 GAN epoch
    pool_scores = load_arrays(str(out / "search_state" / "nag_pool.npz"))[0]
    assert len(pool_scores) == 8 and np.all(np.isfinite(pool_scores))
    assert (out / "nag_quality.csv").read_text().startswith("score_class,params_class,samples,valid,unique,novel")
    assert not (out / "train").exists()


def kill_after_the_gan(monkeypatch):
    """Makes the next search die after the supernet, the scores and the GAN are saved; returns the undo."""
    original = NagSupernetSearch._report

    def dies(self, *args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(NagSupernetSearch, "_report", dies)
    return lambda: monkeypatch.setattr(NagSupernetSearch, "_report", original)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """``(root, data, run)``: the tiny run under ``root / "run"``, killed after the GAN and resumed."""
    root = tmp_path_factory.mktemp("nag_paper")
    data = write_image_folder(root / "images", per_class=48, size=(32, 32))
    out = root / "run"
    calls = {"supernet": 0}
    with pytest.MonkeyPatch.context() as monkeypatch:
        undo = kill_after_the_gan(monkeypatch)
        with pytest.raises(KeyboardInterrupt):
            run_search(load_config(CFG, tiny(out, data)))
        state = out / "search_state"
        assert (state / "nag_pool.npz").exists() and json.loads((state / "nag.json").read_text())["epoch"] == 3
        assert not (out / "result.json").exists() and not (out / "nag_quality.csv").exists()
        undo()
        monkeypatch.setattr(NagSupernetSearch, "_train_supernet", lambda *a: calls.update(supernet=1))
        run = run_search(load_config(CFG, tiny(out, data)))
    assert calls["supernet"] == 0  # the saved scores were reused
    return root, data, run


@pytest.mark.slow  # the pipeline fixture: ~7 min on 2 cores
def test_tiny_config_killed_and_resumed_runs_the_whole_pipeline_and_exports(pipeline):
    root, _, run = pipeline
    out, state = root / "run", root / "run" / "search_state"
    space = NasnetDagSpace(channels=4, layers=3)
    best = space.decode(run.outcome.best_arch)
    result = json.loads((out / "result.json").read_text())
    assert result["score_name"] == "rs_val_acc" and 0.0 <= result["score"] <= 100.0
    assert result["extra"]["pool"] == 12 and result["extra"]["rs_trained"] == 3
    assert result["extra"]["params"] == space.num_params(best, 2)
    rs = json.loads((state / "rs_nag.json").read_text())
    assert len(rs) == 3 and space.encode(best) in rs and rs[space.encode(best)] == max(rs.values())
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 + 3  # 2 supernet epochs, 2 likelihood + 1 GAN epochs, each once
    assert [row.split(",")[1] for row in history[1:]] == ["supernet"] * 2 + ["gan"] * 3
    points = scalars(str(out / "tensorboard" / "search"))  # per candidate, written before the kill
    pool_scores = load_arrays(str(state / "nag_pool.npz"))[0]
    assert points["candidate/pool_score"] == [(i, pytest.approx(s)) for i, s in enumerate(pool_scores)]
    assert [s for s, _ in points["candidate/supernet_loss"]] == [0, 1, 2, 3]  # 2 epochs x 2 steps
    quality = (out / "nag_quality.csv").read_text().splitlines()
    assert quality[0].startswith("score_class,params_class,samples,valid,unique,novel") and len(quality) == 10
    saved = out / "train" / "saved_model"
    code = ("import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
            "out = list(m.signatures['serving_default'](tf.zeros([2, 32, 32, 3])).values()); "
            "print(len(out), out[0].shape)")
    proc = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""}, cwd=str(root))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 (2, 2)" in proc.stdout  # logits only: no auxiliary head in the served model


# ---- RS-NAG's trainings on worker processes ------------------------------------------------------

def rs_results(out_dir):
    return json.loads(out_dir.joinpath(*RS_FILE).read_text())


def before_rs_nag(root, name):
    """A copy of the pipeline's run directory without RS-NAG's results and what came after them."""
    out = root / name
    shutil.copytree(root / "run", out)
    out.joinpath(*RS_FILE).unlink()
    (out / "result.json").unlink()
    shutil.rmtree(out / "train")
    return out


@pytest.mark.slow  # needs the pipeline fixture
def test_rs_nag_on_a_process_pool_gives_the_same_trainings(pipeline, monkeypatch):
    root, data, run = pipeline
    batches = count_pool_batches(monkeypatch)
    out = before_rs_nag(root, "pool")
    pooled = run_search(load_config(CFG, tiny(out, data, "run.executor=process", "run.workers=2", *NO_TRAINING)))
    assert batches == [2, 1]  # three trainings, two side by side, saved after each batch
    assert rs_results(out) == rs_results(root / "run") and len(rs_results(out)) == 3
    assert pooled.outcome.best_arch == run.outcome.best_arch


@pytest.mark.slow  # needs the pipeline fixture
def test_a_failed_training_is_recorded_and_the_others_still_count(pipeline, monkeypatch):
    from tfnas.train.trainer import Trainer

    root, data, run = pipeline
    calls = []
    fit = Trainer.fit

    def second_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("loss is NaN")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", second_fails)
    out = before_rs_nag(root, "failing")
    outcome = run_search(load_config(CFG, tiny(out, data, *NO_TRAINING))).outcome
    results = rs_results(out)
    failed = [k for k, v in results.items() if math.isnan(v)]
    assert len(calls) == 3 and len(results) == 3 and len(failed) == 1  # the three RS-NAG trainings
    assert outcome.best_arch != failed[0]
    good = {k: v for k, v in rs_results(root / "run").items() if k != failed[0]}
    assert {k: v for k, v in results.items() if k != failed[0]} == good  # the others are the local trainings


# ---- a damaged state ------------------------------------------------------------------------------

def _stops_before_any_work(monkeypatch):
    """Makes the search fail the test if it trains the supernet, scores the pool or trains the GAN."""
    import tfnas.methods.nag.paper as paper

    def ran(*args, **kwargs):
        pytest.fail("the search started working")

    for name in ("_train_supernet", "_score"):
        monkeypatch.setattr(NagSupernetSearch, name, ran)
    monkeypatch.setattr(paper, "fit_checkpointed", ran)


@pytest.mark.parametrize("damage, fragment", [
    (lambda done: {k: str(v) for k, v in done.items()}, "must be a number; got '"),
    (lambda done: [[k, v] for k, v in done.items()], "its content must be an object; got a list of 3 items"),
    (lambda done: {**done, "Cell(...)": None}, "'Cell(...)' must be a number; got None"),
], ids=["accuracy-a-string", "a-list-of-pairs", "accuracy-null"])
@pytest.mark.slow  # needs the pipeline fixture
def test_a_damaged_rs_nag_file_is_named_before_any_work(pipeline, tmp_path, monkeypatch, damage, fragment):
    from tfnas.io import DamagedFileError

    root, data, _ = pipeline
    out = tmp_path / "run"
    shutil.copytree(root / "run", out)
    (out / "result.json").unlink()
    shutil.rmtree(out / "train")
    path = out.joinpath(*RS_FILE)
    path.write_text(json.dumps(damage(rs_results(out))))
    damaged = path.read_bytes()
    _stops_before_any_work(monkeypatch)
    with pytest.raises(DamagedFileError) as caught:
        run_search(load_config(CFG, tiny(out, data)))
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value), str(caught.value)
    assert str(caught.value).endswith("; delete it to train RS-NAG's candidates again")
    assert path.read_bytes() == damaged  # left in place for the user to look at


@pytest.mark.slow  # needs the pipeline fixture
def test_a_damaged_epoch_of_the_supernet_checkpoint_is_named_before_any_work(pipeline, tmp_path, monkeypatch):
    from tfnas.io import DamagedFileError
    from tfnas.methods.weight_sharing import npz_bytes
    from tfnas.spaces.nasnet_dag.supernet import NasnetDagSupernet

    root, data, _ = pipeline
    out = tmp_path / "run"
    shutil.copytree(root / "run", out)
    for name in ("result.json", "search_state/nag_pool.npz"):  # the supernet stage runs again
        (out / name).unlink()
    shutil.rmtree(out / "train")
    path = out / "search_state" / "nag_supernet.npz"
    arrays = load_arrays(str(path))
    assert arrays[-1].tolist() == 2
    path.write_bytes(npz_bytes(arrays[:-1] + [np.array(-2)]))
    damaged = path.read_bytes()
    monkeypatch.setattr(NasnetDagSupernet, "train_step", lambda *args, **kwargs: pytest.fail("a step ran"))
    monkeypatch.setattr(NagSupernetSearch, "_score", lambda *args, **kwargs: pytest.fail("the pool was scored"))
    with pytest.raises(DamagedFileError) as caught:
        run_search(load_config(CFG, tiny(out, data)))
    assert str(caught.value) == (f"{path}: its last array (the epoch) must be a non-negative integer; got -2; "
                                 f"delete the run directory to restart")
    assert path.read_bytes() == damaged  # left in place for the user to look at


@pytest.mark.slow  # needs the pipeline fixture
def test_a_pool_score_that_is_not_an_accuracy_is_named_before_any_work(pipeline, tmp_path, monkeypatch):
    from tfnas.io import DamagedFileError
    from tfnas.methods.weight_sharing import npz_bytes
    from tfnas.spaces.nasnet_dag.supernet import NasnetDagSupernet

    root, data, _ = pipeline
    out = tmp_path / "run"
    shutil.copytree(root / "run", out)
    (out / "result.json").unlink()
    shutil.rmtree(out / "train")
    path = out / "search_state" / "nag_pool.npz"
    scores, params = load_arrays(str(path))
    scores[1] = np.nan
    path.write_bytes(npz_bytes([scores, params]))
    for step in ("train_step", "eval_step"):
        monkeypatch.setattr(NasnetDagSupernet, step, lambda *args, **kwargs: pytest.fail("a step ran"))
    with pytest.raises(DamagedFileError) as caught:
        run_search(load_config(CFG, tiny(out, data)))
    assert str(caught.value) == (f"{path}: must hold accuracies in [0, 100] and positive finite parameter counts; "
                                 f"delete it to score the pool again")


@pytest.mark.slow
def test_killed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    data = write_image_folder(tmp_path / "images", per_class=48)
    sets = ["train.enabled=false"]
    whole = run_search(load_config(CFG, tiny(tmp_path / "whole", data, *sets)))
    undo = kill_after_the_gan(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_search(load_config(CFG, tiny(tmp_path / "killed", data, *sets)))
    undo()
    resumed = run_search(load_config(CFG, tiny(tmp_path / "killed", data, *sets)))
    assert resumed.outcome.best_arch == whole.outcome.best_arch
    assert resumed.outcome.score == pytest.approx(whole.outcome.score)
    for name in ("nag_quality.csv", "search_state/rs_nag.json", "history.csv"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "whole" / name).read_text(), name


def test_config_errors(tmp_path):
    data = write_image_folder(tmp_path / "images", per_class=2)
    with pytest.raises(ConfigError, match=r"--set space\.name: method 'nag_supernet' needs a space with NasnetDagSpace; "
                                          r"'darts' has not \(spaces that fit: nasnet_dag\)"):
        run_search(load_config(CFG, tiny(tmp_path / "a", data, "space.name=darts")))
    with pytest.raises(ConfigError, match=r"--set nag\.holdout"):
        run_search(load_config(CFG, tiny(tmp_path / "b", data, "nag.holdout=0")))
