"""RelativeNAS: the shared supernet's contracts and the slow-fast search end to end (mock CIFAR-10).

Every test here uses the supernet configuration of the tiny search below (3 cells, C=8, 32x32,
10 classes, seed 0), so the traced steps are built once per test process (``get_supernet``).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.damage import damaged_state_copy, saved_step
from tests.run.tb_reader import scalars
from tests.served import serving_outputs
from tfnas.config import ConfigError, load_config
from tfnas.methods.relativenas import (STATE_FILE, RelativeNasSearch, cosine_lr, get_supernet, load_halves,
                                       slow_learner_update)
from tfnas.run.store import ArtifactStore
from tfnas.run.search import run_search
from tfnas.spaces.darts import PRESETS, DartsSpace, parse_genotype, vector_bounds
from tfnas.spaces.darts import used_ops

CFG = "cfg/relativenas_tiny.cfg"
C, LAYERS = 8, 3


def supernet():
    return get_supernet(10, (32, 32, 3), C, LAYERS, 0.9, 3e-4, 5.0, False, 0)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.standard_normal((n, 32, 32, 3)), tf.float32),
            tf.one_hot(rng.integers(0, 10, n), 10))


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "run.strategy=one_device",
            f"dataset.data_dir={os.path.join(str(out_dir), 'no_data')}", "dataset.download=false",
            "dataset.train_subset=32", "dataset.eval_subset=16", "dataset.batch_size=16",
            "dataset.eval_batch_size=16", "search.batch_size=8", "search.steps_per_epoch=2",
            f"space.search_channels={C}", f"space.search_layers={LAYERS}", "space.channels=4", "space.layers=3",
            "train.epochs=1", *more]


# ---- formulas -------------------------------------------------------------------------------


def test_cosine_lr_runs_from_lr_towards_lr_min():
    assert cosine_lr(0, 50, 0.1, 0.001) == pytest.approx(0.1)
    assert cosine_lr(25, 50, 0.1, 0.001) == pytest.approx(0.0505)
    values = [cosine_lr(g, 50, 0.1, 0.001) for g in range(50)]
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] > 0.001


def test_slow_learner_update_is_eq_4_5_with_fresh_draws_and_clipping():
    lower, upper = vector_bounds()
    xs, xf = np.full(32, 1.0), np.full(32, 1.9)
    vs = np.full(32, 0.5)
    x_new, v_new = slow_learner_update(xs, vs, xf, np.random.default_rng(7), lower, upper)
    r = np.random.default_rng(7)
    r1, r2 = r.random(32), r.random(32)
    np.testing.assert_allclose(v_new, r1 * 0.5 + r2 * 0.9)
    np.testing.assert_allclose(x_new, np.clip(1.0 + v_new, lower, upper))
    far = slow_learner_update(np.zeros(32), np.full(32, 100.0), upper, np.random.default_rng(0), lower, upper)[0]
    assert np.all(far <= upper) and np.all(far >= lower)


# ---- the supernet ---------------------------------------------------------------------------


@pytest.mark.slow  # ~2 min on 2 cores
def test_one_trace_serves_every_candidate_and_only_used_rows_move():
    net = supernet()
    space = DartsSpace(channels=C, layers=LAYERS)
    rng = np.random.default_rng(1)
    x, y = batch()
    before_traces = dict(net.trace_counts)
    for _ in range(4):
        arch = space.sample(rng)
        before = net.get_weights()
        net.reset_momentum()
        loss = net.train_step(x, y, arch, 0.05)[0]
        assert np.isfinite(float(loss))
        after = net.get_weights()
        used = used_ops(DartsSpace.to_ids(arch), LAYERS)
        for k, owner in enumerate(net.owners):
            if owner is None:
                continue
            cell, op, edges = owner
            for r, e in enumerate(edges):
                changed = not np.array_equal(before[k][r], after[k][r])
                # parameters and BN statistics of unused ops never change (no decay, no momentum)
                assert changed == ((cell, e, op) in used), (cell, e, op, k)
        net.eval_step(x, y, arch)
    # at most one trace of each step for the whole process, whatever the candidate
    assert net.trace_counts["train"] <= max(1, before_traces["train"]) and net.trace_counts["train"] == 1
    assert net.trace_counts["eval"] == 1


def test_a_cell_that_never_reads_c_k_minus_2_leaves_its_preprocessing_of_it_alone():
    """The reference updates no parameter without a gradient; the preprocessing of c_{k-2} of a cell whose
    nodes all read c_{k-1} got weight decay (and momentum) every step."""
    net = supernet()
    ids = np.zeros((2, 4, 2, 2), np.int32)
    ids[..., 1] = 3  # sep_conv_3x3 everywhere
    ids[0, :, :, 0] = 1  # normal cells read c_{k-1} only; reduction cells read c_{k-2} only
    x, y = batch()
    before = [[v.numpy() for v in pre0.trainable_weights] for pre0, _ in net.preprocess]
    net.reset_momentum()
    assert np.isfinite(float(net.train_step(x, y, ids, 0.1)[0]))
    for i, (pre0, _) in enumerate(net.preprocess):
        moved = [not np.array_equal(a, v.numpy()) for a, v in zip(before[i], pre0.trainable_weights)]
        assert any(moved) == moved[0] == (i in net.reductions), (i, moved)  # a used kernel moves at least by decay


def test_merge_takes_slow_only_ops_from_the_slow_learner():
    net = supernet()
    g_fast, g_slow = PRESETS["relativenas"], PRESETS["darts_v2"]
    base = net.get_weights()
    fast = [a + 1.0 for a in base]
    slow = [a + 2.0 for a in base]
    merged = net.merge_weights(fast, slow, g_fast, g_slow)
    f_ops = used_ops(DartsSpace.to_ids(g_fast), LAYERS)
    s_ops = used_ops(DartsSpace.to_ids(g_slow), LAYERS)
    seen_slow = 0
    for k, owner in enumerate(net.owners):
        if owner is None:
            np.testing.assert_array_equal(merged[k], fast[k])  # stem, preprocessing, classifier: fast
            continue
        cell, op, edges = owner
        for r, e in enumerate(edges):
            key = (cell, e, op)
            expected = slow[k][r] if key in s_ops and key not in f_ops else fast[k][r]
            seen_slow += key in s_ops and key not in f_ops
            np.testing.assert_array_equal(merged[k][r], expected)
    assert seen_slow > 0


def test_weights_transfer_to_the_standalone_network():
    net = supernet()
    arch = PRESETS["relativenas"]
    x, y = batch(seed=3)
    for _ in range(2):
        net.train_step(x, y, arch, 0.05)
    model = DartsSpace(channels=C, layers=LAYERS).build(arch, 10, (32, 32, 3), auxiliary=False)
    net.transfer_to(model, arch)
    expected = float(net.eval_step(x, y, arch)[0]) / 8
    got = float(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, model(x, training=False))))
    assert got == pytest.approx(expected, rel=1e-4)


# ---- the search -----------------------------------------------------------------------------


def test_tiny_cfg_search_trains_and_exports(tmp_path):
    cfg = load_config(CFG, tiny(tmp_path))
    with tfds.testing.mock_data(num_examples=32):
        run = run_search(cfg)
    best = parse_genotype(run.outcome.best_arch)
    assert (tmp_path / "best_arch.txt").read_text().startswith(str(best))
    assert "node 2 = " in (tmp_path / "best_cell.txt").read_text()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["score_name"] == "valid_loss" and np.isfinite(result["score"])
    assert result["extra"]["generations"] == 2 and result["extra"]["member_epochs"] == 2 * 4
    assert result["extra"]["supernet_traces"] == {"train": 1, "eval": 1}
    records = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in records] == [1, 2]
    for r in records:
        assert len(r["pairs"]) == 2 and sorted(m for p in r["pairs"] for m in (p["fast"], p["slow"])) == [0, 1, 2, 3]
        assert all(p["fast_loss"] <= p["slow_loss"] for p in r["pairs"])
        assert r["best_cell"].startswith("normal cell:")
    # the answer is the lowest loss measured in the last generation
    last = {p[f"{w}_arch"]: p[f"{w}_loss"] for p in records[-1]["pairs"] for w in ("slow", "fast")}
    assert run.outcome.best_arch == min(last, key=last.get)
    assert (tmp_path / "history.csv").read_text().count("\n") == 1 + 2
    assert [o.shape for o in serving_outputs(tmp_path / "train" / "saved_model", (2, 32, 32, 3))] == [(2, 10)]
    # one parameter count for the found network: the search's, the training's (the served network, without
    # the auxiliary head the training used) and the space's analytic one
    trained = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert trained["params"] == result["extra"]["params"] == DartsSpace(channels=4, layers=3).num_params(best, 10)


@pytest.mark.slow  # ~2 min on 2 cores
def test_killed_search_resumes_at_the_next_pair_and_follows_the_same_path(tmp_path, monkeypatch):
    sets = ["train.enabled=false", "search.generations=2"]
    reseeds, set_seed = [], tf.random.set_seed
    set_seed(None)  # as in a user's process (the tests otherwise start at 0, conftest.py)
    monkeypatch.setattr(tf.random, "set_seed", lambda seed: (reseeds.append(seed), set_seed(seed)))
    with tfds.testing.mock_data(num_examples=32):
        whole = run_search(load_config(CFG, tiny(tmp_path / "whole", *sets)))
        # The flow holds the run seed: no pipeline built during the search reseeds (which would clear
        # TensorFlow's function caches and re-instantiate the supernet's steps on every member epoch);
        # the search sets it once and puts the caller's back at the end.
        assert reseeds == [0, None], reseeds
        set_seed(0)
        pairs = [p for line in (tmp_path / "whole" / "generations.jsonl").read_text().splitlines()
                 for p in json.loads(line)["pairs"]]
        points = scalars(str(tmp_path / "whole" / "tensorboard" / "search"))["candidate/valid_loss"]
        assert [s for s, _ in points] == list(range(2 * len(pairs)))  # one point per member epoch
        assert sorted(v for _, v in points) == pytest.approx(sorted(p[f"{w}_loss"] for p in pairs
                                                                    for w in ("fast", "slow")))
        # Killed at the worst moment: the third pair's weights are written, its json is not.
        original, calls = ArtifactStore.write_text, {"n": 0}

        def dies_before_third_state(self, name, text):
            if name == STATE_FILE:
                calls["n"] += 1
                if calls["n"] == 3:
                    raise KeyboardInterrupt("killed")
            return original(self, name, text)

        monkeypatch.setattr(ArtifactStore, "write_text", dies_before_third_state)
        with pytest.raises(KeyboardInterrupt):
            run_search(load_config(CFG, tiny(tmp_path / "killed", *sets)))
        state = json.loads((tmp_path / "killed" / "search_state" / "relativenas.json").read_text())
        assert (state["generation"], state["pair"]) == (1, 0)
        assert [saved_step(tmp_path / "killed" / "search_state" / name)
                for name in ("weights.npz", "weights.prev.npz")] == [3, 2]  # the resume takes the older
        monkeypatch.setattr(ArtifactStore, "write_text", original)
        resumed = run_search(load_config(CFG, tiny(tmp_path / "killed", *sets)))
    assert resumed.outcome.best_arch == whole.outcome.best_arch
    assert resumed.outcome.score == pytest.approx(whole.outcome.score, rel=1e-5)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"--set search\.population: .*even"):
        run_search(load_config(CFG, tiny(tmp_path, "search.population=5")))
    with pytest.raises(ConfigError, match=r"--set space\.name: method .relativenas. needs a space with DartsSpace"):
        run_search(load_config(CFG, tiny(tmp_path / "b", "space.name=nb201")))
    # a batch above the 16 images that train the shared weights: every step was one partial batch of them all
    with tfds.testing.mock_data(num_examples=32):
        with pytest.raises(ConfigError, match=r"--set search\.batch_size=100000: larger than the 16 images that "
                                              r"train the shared weights"):
            run_search(load_config(CFG, tiny(tmp_path / "c", "search.batch_size=100000")))
        with pytest.raises(ConfigError, match=r"--set dataset\.batch_size=17: larger than the 16 images"):
            run_search(load_config(CFG, tiny(tmp_path / "d", "search.batch_size=0", "dataset.batch_size=17",
                                              "dataset.train_subset=32")))
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_the_search_reads_images_at_image_size_and_a_size_the_trained_network_cannot_take_stops_it_first(tmp_path):
    with tfds.testing.mock_data(num_examples=32):
        first, _, second, _, info = load_halves("cifar10", data_dir=str(tmp_path / "no_data"), download="false",
                                                subset=32, image_size=16)
        assert first.shape == second.shape == (16, 16, 16, 3) and info.image_shape == (16, 16, 3)
        # 16x16 suits the supernet (two reductions) but not the auxiliary head of the training after the search:
        # refused before the search (it used to stop there after the whole search, naming [space] arch)
        with pytest.raises(ConfigError, match=r"--set dataset\.image_size; .*\[train\] aux_weight: the network "
                                              r"trained after the search cannot be built .*cifar10, 16x16x3.*32x32"):
            run_search(load_config(CFG, tiny(tmp_path / "run", "dataset.image_size=16")))
    assert not (tmp_path / "run").exists()


# ---- a damaged state --------------------------------------------------------------------------

DAMAGE_SETS = ["train.enabled=false", "search.generations=2"]


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    """The run directory of a finished tiny search (population 4, 2 generations)."""
    out = tmp_path_factory.mktemp("relativenas_state") / "run"
    with tfds.testing.mock_data(num_examples=32):
        run_search(load_config(CFG, tiny(out, *DAMAGE_SETS)))
    return out


def _mid_generation(state, pairs):
    """Back into generation 2 after its first pair (as a killed search leaves it), with ``pairs``."""
    state.update(generation=1, pair=1, pairs=pairs, results=state["results"][:1])


@pytest.mark.parametrize("damage, fragment", [
    (lambda s: s.pop("x"), "its 'x' field is missing"),
    (lambda s: s["x"].pop(), "'x' must be a list of 4 items; got a list of 3 items"),
    (lambda s: s["x"][0].pop(), "'x'[0] must be a list of 32 items; got a list of 31 items"),
    (lambda s: s["v"][1].__setitem__(5, "fast"), "'v'[1][5] must be a finite number; got 'fast'"),
    (lambda s: s["x"][2].__setitem__(0, 99.0), "'x' must lie within the bounds of the encoding"),
    (lambda s: s.update(generation=-1), "'generation' must be an integer in [0, 2]; got -1"),
    (lambda s: s.update(generation="2"), "'generation' must be an integer in [0, 2]; got '2'"),
    (lambda s: s.update(pair=1), "'pair' must be 0 while 'pairs' is null (between generations); got 1"),
    (lambda s: _mid_generation(s, [[0, 0], [2, 3]]), "'pairs' must pair each of the 4 members once"),
    (lambda s: _mid_generation(s, [[0, 1]]), "'pairs' must be a list of 2 items; got a list of 1 item"),
    (lambda s: s["results"][0].pop("fast_loss"), "its 'results'[0]['fast_loss'] field is missing"),
    (lambda s: s.update(final_losses={k: "low" for k in s["final_losses"]}), "must be a number; got 'low'"),
    (lambda s: s.update(final_losses={}, last_losses={}), "'last_losses' must hold the loss of at least one"),
    (lambda s: s.update(final_losses={"Genotype(normal=": 0.5}), "cannot be read back (ValueError: genotype text"),
    (lambda s: s.update(rng=None), "'rng' must be an object; got None"),
], ids=["x-missing", "x-too-few-members", "x-member-too-short", "v-a-string", "x-out-of-bounds",
        "generation-negative", "generation-a-string", "pair-without-pairs", "pairs-not-a-pairing", "pairs-too-few",
        "result-loss-missing", "loss-a-string", "losses-empty", "genotype-undecodable", "rng-null"])
def test_a_damaged_field_of_the_state_is_named_before_any_work(finished_search, tmp_path, monkeypatch, damage,
                                                               fragment):
    from tfnas.io import DamagedFileError
    from tfnas.spaces.darts import DartsSupernet

    out = tmp_path / "run"
    path, damaged = damaged_state_copy(finished_search, out, "relativenas.json", damage)
    monkeypatch.setattr(DartsSupernet, "train_epoch", lambda *args, **kwargs: pytest.fail("a member epoch ran"))
    sets = [*DAMAGE_SETS, f"dataset.data_dir={os.path.join(str(finished_search), 'no_data')}"]  # its config
    with tfds.testing.mock_data(num_examples=32), pytest.raises(DamagedFileError) as caught:
        run_search(load_config(CFG, tiny(out, *sets)))
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value), str(caught.value)
    assert str(caught.value).endswith("; delete the run directory to restart")
    assert path.read_bytes() == damaged  # left in place for the user to look at


def test_a_search_state_on_an_image_folder_records_its_file_order():
    # Its files were served class by class until 2026-12-06: a state written then is refused on resume
    # ("holds the state of another RelativeNAS search"), not continued on other weights / score splits.
    from tfnas.data.base import DatasetInfo

    def identity(name):
        info = DatasetInfo(name, 10, (32, 32, 3), (0.5,) * 3, (0.25,) * 3)
        data = (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4), np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4), info)
        return RelativeNasSearch(DartsSpace(), data, population=2)._identity()

    assert identity("image_folder")["file_order"] == "shuffled-seed-0"
    assert "file_order" not in identity("cifar10")  # the tfds datasets' states stay as they were
