"""NAG: generator / discriminator contracts, deterministic and resumable GAN training, quality
metrics, RS-NAG budgets and the ``nag`` sweep end to end on NAS-Bench-201."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfnas.config import ConfigError, load_config
from tfnas.methods.base import SearchContext
from tfnas.methods.nag import quality
from tfnas.methods.nag.gan import CellData, GanTrainer
from tfnas.methods.nag.models import DagDiscriminator, DagGenerator
from tfnas.methods.nag.search import QUALITY_FILE, STATE_FILE
from tfnas.run.factory import build_method, build_space
from tfnas.run.store import ArtifactStore
from tfnas.run.sweep import run_sweep
from tfnas.spaces.dag import DagSpec
from tfnas.spaces.nb201.dag import NB201_DAG, all_dags, dag_lookup

CFG = "cfg/nag_nb201.cfg"
SMALL = dict(node_units=8, graph_units=6, noise_dim=4, embed_dim=3, prop_layers=1)


def tiny(out_dir, *more):
    return [f"run.out_dir={out_dir}", "run.progress=false", "run.jit_compile=false", "nag.pool=96",
            "nag.pretrain_epochs=1", "nag.epochs=2", "nag.batch_size=32", "nag.node_units=8", "nag.graph_units=6",
            "nag.noise_dim=4", "nag.embed_dim=3", "nag.prop_layers=1", "nag.samples=20", "nag.gen_batch=64", "budget.start=5",
            "budget.stop=10", "budget.step=5", "budget.repeats=2", *more]


def models(seed=0):
    s = NB201_DAG
    gen = DagGenerator(s.num_types, s.max_nodes, s.input_codes, s.output_code, dropout=0.5, seed=seed, **SMALL)
    disc = DagDiscriminator(s.num_types, node_units=8, graph_units=6, embed_dim=3, hidden=(5, 4), seed=seed + 1)
    return gen, disc


def pool_data(n=64, seed=0):
    adj, types = all_dags()
    idx = np.array(sorted(dag_lookup().values()))[:n]
    labels = np.random.default_rng(seed).integers(0, 3, (n, 2))
    data = CellData.from_dags(adj[idx], types[idx], labels, NB201_DAG.num_types)
    for i in range(n):  # one-hot rows exactly where the cell has nodes
        assert np.array_equal(data.x[i, 0].argmax(-1)[types[idx][i] >= 0], types[idx][i][types[idx][i] >= 0])
        assert np.all(data.x[i, 0][types[idx][i] < 0] == 0)
    return data


# ---- models ---------------------------------------------------------------------------------

def test_generated_cells_are_well_formed():
    gen, _ = models()
    z = tf.random.stateless_normal([40, SMALL["noise_dim"]], [1, 2])
    labels = tf.constant(np.random.default_rng(0).integers(0, 3, (40, 2)), tf.int32)
    x, a = gen(z, labels, hard=True, seed=tf.constant([3, 4]))
    x, a = x.numpy(), a.numpy()
    m = NB201_DAG.max_nodes
    assert x.shape == (40, m, NB201_DAG.num_types) and a.shape == (40, m, m)
    assert np.all(np.tril(a) == 0), "edges only go from earlier to later nodes"
    assert np.all(x[:, 0, 1] == 1), "every cell opens with its input"
    assert np.all(x[:, 1:, 1] == 0), "input codes are never generated"
    for b in range(40):
        present = np.flatnonzero(x[b].sum(-1) > 0)
        assert present.tolist() == list(range(len(present))), "nodes are contiguous"
        assert x[b, present[-1], NB201_DAG.output_code] == 1, "the last node is the output"
        assert x[b, present[:-1], NB201_DAG.output_code].sum() == 0
        assert a[b][:, len(present):].sum() == 0 and a[b][len(present):].sum() == 0
    # training, straight-through (default): the discriminator sees sampled one-hot cells
    xt, at = gen(z, labels, training=True, seed=tf.constant([3, 4]))
    for sampled in (xt.numpy(), at.numpy()):
        assert set(np.unique(np.round(sampled, 5))) <= {0.0, 1.0}
    # training, soft (the paper's wording): probabilities weighted by the chance the cell is still open
    soft = DagGenerator(NB201_DAG.num_types, m, NB201_DAG.input_codes, NB201_DAG.output_code, relax="soft", seed=0,
                        **SMALL)
    xs, as_ = soft(z, labels, training=True, seed=tf.constant([3, 4]))
    xs, as_ = xs.numpy(), as_.numpy()
    assert np.all(xs.sum(-1) <= 1 + 1e-5) and np.all((as_ >= 0) & (as_ <= 1))
    assert np.any((xs > 0.01) & (xs < 0.99)), "soft outputs are probabilities, not samples"
    with pytest.raises(ValueError, match="relax"):
        DagGenerator(6, 8, (1,), 0, relax="gumbel")


def test_generator_sampling_is_seeded():
    gen, _ = models()
    z = tf.random.stateless_normal([16, SMALL["noise_dim"]], [1, 2])
    labels = tf.zeros([16, 2], tf.int32)
    x1, a1 = gen(z, labels, hard=True, seed=tf.constant([5, 6]))
    x2, a2 = gen(z, labels, hard=True, seed=tf.constant([5, 6]))
    x3, a3 = gen(z, labels, hard=True, seed=tf.constant([5, 7]))
    assert np.array_equal(x1, x2) and np.array_equal(a1, a2)
    assert not (np.array_equal(x1, x3) and np.array_equal(a1, a3))


@pytest.mark.parametrize("edges", ["independent", "sequential"])
def test_one_step_build_makes_the_weights_of_a_whole_call(edges):
    """GanTrainer builds its generators with build_weights (one generation step, not max_nodes - 2)."""
    def generator():
        return DagGenerator(NB201_DAG.num_types, NB201_DAG.max_nodes, NB201_DAG.input_codes, NB201_DAG.output_code,
                            edges=edges, seed=3, **SMALL)

    z, labels = tf.zeros([1, SMALL["noise_dim"]]), tf.zeros([1, 2], tf.int32)
    called, stepped = generator(), generator()
    called(z, labels, hard=True, seed=tf.constant([0, 0]))
    stepped.build_weights(z, labels)
    assert stepped.built and len(stepped.weights) == len(called.weights) > 0
    for w0, w1 in zip(called.weights, stepped.weights):
        assert w0.path.split("/", 1)[1] == w1.path.split("/", 1)[1]  # the same layer (model names differ)
        assert w1.path.startswith(stepped.name + "/")
        np.testing.assert_array_equal(w0.numpy(), w1.numpy())
    z = tf.random.stateless_normal([6, SMALL["noise_dim"]], [1, 2])
    labels = tf.constant(np.random.default_rng(0).integers(0, 3, (6, 2)), tf.int32)
    for x0, x1 in zip(called(z, labels, hard=True, seed=tf.constant([5, 6])),
                      stepped(z, labels, hard=True, seed=tf.constant([5, 6]))):
        np.testing.assert_array_equal(x0.numpy(), x1.numpy())


def test_models_config_round_trip():
    gen, disc = models()
    assert DagGenerator.from_config(gen.get_config()).get_config() == gen.get_config()
    seq = DagGenerator(6, 8, (1,), 0, edges="sequential", **SMALL)
    assert DagGenerator.from_config(seq.get_config()).get_config()["edges"] == "sequential"
    with pytest.raises(ValueError, match="edges"):
        DagGenerator(6, 8, (1,), 0, edges="parallel")
    assert DagDiscriminator.from_config(disc.get_config()).get_config() == disc.get_config()


def test_discriminator_ignores_missing_nodes_and_sees_labels():
    _, disc = models()
    data = pool_data(8)
    x, a, labels = data.x[:, 0], data.a[:, 0], data.labels
    disc([(x, a)], labels)
    rng = np.random.default_rng(0)
    for v in disc.weights:  # a trained discriminator's biases: an empty node slot is no longer all zeros inside
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.5, tuple(v.shape)).astype(np.float32))
    score = disc([(x, a)], labels).numpy()
    assert score.shape == (8,)
    # two more empty node slots (zero features, no edges): the same scores
    padded = (np.pad(x, ((0, 0), (0, 2), (0, 0))), np.pad(a, ((0, 0), (0, 2), (0, 2))))
    np.testing.assert_allclose(disc([padded], labels).numpy(), score, rtol=1e-5, atol=1e-6)
    other = labels.copy()
    other[:, 0] = (other[:, 0] + 1) % 3
    assert not np.allclose(disc([(x, a)], other).numpy(), score)


# ---- training -------------------------------------------------------------------------------

def trainer(seed=0):
    gen, disc = models()
    return GanTrainer([gen], disc, batch_size=16, seed=seed)


@pytest.mark.slow  # ~75 s on 2 cores
def test_training_is_deterministic_and_resumes_exactly():
    data = pool_data(48)
    a = trainer()
    init = a.get_state()
    a.train_epoch(data, 0)
    a.train_epoch(data, 1)
    b = trainer()
    for x, y in zip(init, b.get_state()):  # seeded initialisation
        np.testing.assert_array_equal(x, y)
    b.train_epoch(data, 0)
    saved = b.get_state()
    c = trainer()
    c.set_state(saved)  # a fresh process restoring the epoch-1 checkpoint
    c.train_epoch(data, 1)
    for x, y in zip(a.get_state(), c.get_state()):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(init, a.get_state()))
    assert a.traces == 1
    with pytest.raises(ValueError, match="checkpoint holds"):
        c.set_state(saved[:-1])


def test_maximum_likelihood_warm_up_fits_the_real_cells():
    data = pool_data(48)
    gen, _ = models()
    z = tf.zeros([48, SMALL["noise_dim"]])
    x, a, labels = data.x[:, 0], data.a[:, 0], data.labels
    before = gen.log_likelihood(z, labels, x, a).numpy()
    assert before.shape == (48,) and np.all(np.isfinite(before)) and np.all(before > 0)
    gen2, disc2 = models()
    t = GanTrainer([gen2], disc2, batch_size=16, seed=0, pretrain_lr=1e-2)
    for epoch in range(15):
        row = t.pretrain_epoch(data, epoch)
    assert set(row) == {"nll", "steps"}
    after = t.generators[0].log_likelihood(z, labels, x, a).numpy()
    assert after.mean() < 0.85 * before.mean()
    fresh = trainer()  # the discriminator is untouched by the warm-up
    for w0, w1 in zip(fresh.discriminator.get_weights(), t.discriminator.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_a_cosine_warm_up_decays_its_rate_each_epoch_and_resumes_to_the_same_weights():
    """``[nag] pretrain_schedule = cosine``: the likelihood epochs' rate falls from 1e-3 to 0, set per epoch, so
    a warm-up resumed at epoch 1 ends where an uninterrupted one does."""
    data = pool_data(16)
    half_way = 1e-3 * (1 + np.cos(np.pi / 3)) / 2

    def cosine():
        gen, disc = models()
        return GanTrainer([gen], disc, batch_size=16, seed=0, pretrain_schedule="cosine")

    whole = cosine()
    assert [whole.pretrain_rate(epoch, 3) for epoch in range(3)] == pytest.approx([1e-3, half_way, 1e-3 - half_way])
    assert trainer().pretrain_rate(2, 3) == pytest.approx(1e-3)  # constant, the default
    whole.fit(data, 3, pretrain_epochs=3)
    assert float(whole.p_opt.learning_rate) == pytest.approx(1e-3 - half_way)
    first = cosine()
    first.fit(data, 1, pretrain_epochs=3)
    resumed = cosine()
    resumed.set_state(first.get_state())
    resumed.fit(data, 3, start_epoch=1, pretrain_epochs=3)
    for x, y in zip(whole.get_state(), resumed.get_state()):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="pretrain_schedule must be"):
        gen, disc = models()
        GanTrainer([gen], disc, pretrain_schedule="linear")


def test_sequential_edges_learn_edges_that_must_agree():
    """Real cells feed the output from the first op or from the second, never both or neither (the two
    are alike, so nothing but the other decision tells them apart). One decision per earlier node
    from the same state cannot learn that; deciding one edge at a time can."""
    spec = DagSpec(type_names=("output", "input", "op"), input_codes=(1,), output_code=0, max_nodes=4)
    adj = np.zeros((64, 4, 4), np.uint8)
    adj[:, 0, 1] = adj[:, 0, 2] = 1
    adj[0::2, 1, 3] = 1
    adj[1::2, 2, 3] = 1
    data = CellData.from_dags(adj, np.tile([1, 2, 2, 0], (64, 1)), np.zeros((64, 2), np.int32), spec.num_types)
    exactly_one, nll = {}, {}
    for edges in ("independent", "sequential"):
        gen = DagGenerator(spec.num_types, spec.max_nodes, spec.input_codes, spec.output_code, dropout=0.0,
                           edges=edges, seed=0, **SMALL)
        _, disc = models()
        t = GanTrainer([gen], DagDiscriminator(spec.num_types, node_units=8, graph_units=6, embed_dim=3,
                                               hidden=(5, 4), seed=1), batch_size=16, seed=0, pretrain_lr=1e-2)
        for epoch in range(40):
            nll[edges] = t.pretrain_epoch(data, epoch)["nll"]
        z = np.random.default_rng(0).standard_normal((400, 1, SMALL["noise_dim"])).astype(np.float32)
        (x, a), = t.generate(z, np.zeros((400, 2), np.int32), seed=np.array([1, 2]))
        assert np.all(x[:, 3, spec.output_code] == 1)
        exactly_one[edges] = float(np.mean(a[:, 1, 3] + a[:, 2, 3] == 1))
    assert exactly_one["sequential"] >= 0.9 and exactly_one["independent"] <= 0.75, exactly_one
    assert nll["sequential"] < nll["independent"] - 0.4, nll  # ln 2 apart at the optimum


# ---- metrics --------------------------------------------------------------------------------

def test_quality_metrics():
    data = pool_data(10)
    x, a = data.x[:, 0], data.a[:, 0]
    x = np.concatenate([x, np.zeros_like(x[:1])])  # an empty (invalid) sample
    a = np.concatenate([a, a[:1]])
    lookup = dag_lookup()
    decoded = quality.decode(np.concatenate([x, x[:2]]), np.concatenate([a, a[:2]]), NB201_DAG, lookup)
    assert decoded[10] is None and all(d is not None for d in decoded[:10])
    stats = quality.sample_stats(decoded, training=set(decoded[:5]))
    assert stats["valid"] == pytest.approx(12 / 13) and stats["unique"] == pytest.approx(10 / 12)
    assert stats["novel"] == pytest.approx(0.5)
    cuts = quality.tertiles(np.arange(9.0))
    assert quality.class_of(np.arange(9.0), cuts).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert quality.confusion([0, 0, 2], [0, 1, 2]).tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    truth, params = np.arange(20.0), np.arange(20.0) * 1e6
    row = quality.class_report((2, 1), [18, 19], truth, params, real=[10, 11], top5_cut=19.0)
    assert row["gen_acc_mean"] == 18.5 and row["real_acc_mean"] == 10.5 and row["gen_top5_frac"] == 0.5
    assert row["gen_params_mean_M"] == 18.5


# ---- the method and the sweep ---------------------------------------------------------------

def build(tmp_path, *more):
    cfg = load_config(CFG, tiny(tmp_path, *more))
    return cfg, build_method(cfg, build_space(cfg))


def context(path):
    rows = []
    return SearchContext(store=ArtifactStore(str(path)), seed=0, rng=np.random.default_rng(0), progress=False,
                         log=rows.append), rows


@pytest.mark.slow  # ~2.5 min on 2 cores
def test_killed_gan_training_resumes_to_the_same_weights(tmp_path):
    # The checkpoints do not depend on how the generator decides edges; the one-shot edge head
    # traces the GAN step in about half the time of the shipped sequential one (4 trainers here).
    # The sweep below runs the shipped setting.
    one_shot = "nag.edges=independent"
    _, full = build(tmp_path / "a", one_shot)
    ctx, _ = context(tmp_path / "a")
    full.prepare(ctx)
    _, first = build(tmp_path / "b", one_shot, "nag.epochs=1")
    ctx_b, rows = context(tmp_path / "b")
    first.prepare(ctx_b)  # "killed" after epoch 2 (the warm-up epoch and one GAN epoch)
    assert json.loads(ctx_b.store.read_text(STATE_FILE)) == {"epoch": 2}
    assert [r["epoch"] for r in rows] == [1, 2]
    assert "nll" in rows[0] and "d_loss" not in rows[0] and "d_loss" in rows[1]
    _, again = build(tmp_path / "b", one_shot, "nag.epochs=1")
    ctx_again, rows_again = context(tmp_path / "b")
    again.prepare(ctx_again)  # finished for this config: reloads, trains nothing
    assert rows_again == []
    for x, y in zip(first.trainer.get_state(), again.trainer.get_state()):
        np.testing.assert_array_equal(x, y)
    _, resumed = build(tmp_path / "b", one_shot)
    ctx_b2, rows2 = context(tmp_path / "b")
    ctx_b2.logged_rows = 2
    resumed.prepare(ctx_b2)
    assert len(rows2) == 1 and rows2[0]["epoch"] == 3
    for x, y in zip(full.trainer.get_state(), resumed.trainer.get_state()):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def nag_sweep(tmp_path_factory):
    """The tiny NAG sweep, run once: ``(cfg, SweepOutput)``; its run directory also serves the
    damaged-checkpoint tests below (as copies)."""
    cfg = load_config(CFG, tiny(tmp_path_factory.mktemp("nag_sweep") / "run"))
    return cfg, run_sweep(cfg)


def test_nag_sweep_end_to_end(nag_sweep):
    cfg, out = nag_sweep
    assert len(out.records) == 4
    for rec in out.records:
        assert rec.queries == rec.budget  # RS-NAG spends its budget exactly
        assert rec.extra["label_cells"] == 96 and rec.extra["labels"] == "short"
        assert rec.extra["drawn"] >= 64 and rec.extra["drawn"] % 64 == 0  # whole generation batches
    assert len({r.seed for r in out.records}) == 4
    run = out.run_dir
    for name in (QUALITY_FILE, "nag_quality.txt", "nag_confusion.txt", "history.csv", "prepare_progress.png"):
        assert os.path.exists(os.path.join(run, name)), name
    import pandas as pd

    confusion = open(os.path.join(run, "nag_confusion.txt")).read()  # which classes are whose: said, as they differ
    assert "accuracy: requested class (rows; tertiles of the accuracies the labels came from) vs obtained class " \
           "(columns; tertiles of the pool's final (benchmark) accuracies)" in confusion
    table = pd.read_csv(os.path.join(run, QUALITY_FILE))
    assert len(table) == 13 and {"valid", "unique", "novel", "gen_acc_mean", "gen_top5_frac"} <= set(table)
    drawn = table[table["params_class"] == "drawn"]  # each accuracy class as RS-NAG asks for it
    assert drawn["acc_class"].astype(int).tolist() == [0, 1, 2] and (drawn["samples"] == 60).all()
    history = pd.read_csv(os.path.join(run, "history.csv"))
    assert history["epoch"].tolist() == [1, 2, 3] and {"nll", "d_loss", "g_loss", "valid"} <= set(history)
    again = run_sweep(cfg)  # finished: nothing reruns, the GAN reloads from its checkpoint
    assert again.new_records == 0 and [r.top1_acc for r in again.records] == [r.top1_acc for r in out.records]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"--set space\.name: method 'nag'"):
        build(tmp_path, "space.name=darts")
    with pytest.raises(ConfigError, match=r"nag.labels"):
        load_config(CFG, tiny(tmp_path, "nag.labels=oracle"))
    with pytest.raises(ConfigError, match=r"nag.target_acc"):
        load_config(CFG, tiny(tmp_path, "nag.target_acc=3"))
    with pytest.raises(ConfigError, match=r"nag.beta_2"):
        load_config(CFG, tiny(tmp_path, "nag.beta_2=1.0"))
    with pytest.raises(ConfigError, match=r"--set budget\.stop: RS-NAG queries distinct cells"):
        build(tmp_path / "c", "budget.stop=9000")
    # tertiles of one cell, or a pool larger than the distinct cells (silently every cell, as pool = 0)
    for pool in (1, 2, 9000):
        with pytest.raises(ConfigError, match=r"--set nag\.pool: 'nag' labels its cells by tertiles of 8,764 distinct "
                                              r"cells; expected 0 \(every one\) or 3\.\.8,764, got "):
            build(tmp_path / f"p{pool}", f"nag.pool={pool}")


def test_short_labels_use_the_12_epoch_table(tmp_path):
    from tfnas.benchmarks.nb201 import Nb201Benchmark

    _, table = build(tmp_path / "t", "nag.labels=table")
    cfg, short = build(tmp_path / "s")
    assert np.array_equal(table.pool_idx, short.pool_idx)
    assert not np.array_equal(table.pool_labels, short.pool_labels)
    # labelled from the 12-epoch validation accuracies of the run's dataset (another split or column passed)
    benchmark = Nb201Benchmark()
    np.testing.assert_array_equal(short.label_acc, benchmark.low_fidelity(cfg.dataset.name, "val"))
    np.testing.assert_array_equal(table.label_acc, benchmark.ground_truth(cfg.dataset.name))


@pytest.mark.parametrize("epoch, problem", [(-1, "must be a non-negative integer; got -1"),
                                            (1.5, "must be a non-negative integer; got 1.5"),
                                            (float("nan"), "must be a non-negative integer; got nan"),
                                            (4, "must be at most 3, the epochs of this run; got 4")],
                         ids=["negative", "fractional", "nan", "beyond-the-run"])
def test_a_damaged_epoch_of_the_gan_checkpoint_is_named_before_any_work(nag_sweep, tmp_path, monkeypatch, epoch,
                                                                         problem):
    """A copy of the sweep's run directory (its GAN trained 3 epochs: one warm-up, two GAN epochs)
    with a damaged epoch in the GAN checkpoint."""
    import shutil

    from tfnas.io import DamagedFileError
    from tfnas.methods.nag.search import WEIGHTS_FILE
    from tfnas.methods.weight_sharing import load_arrays, npz_bytes

    out = tmp_path / "run"
    shutil.copytree(nag_sweep[1].run_dir, out)
    path = out / WEIGHTS_FILE
    arrays = load_arrays(str(path))
    assert arrays[-1].tolist() == 3
    path.write_bytes(npz_bytes(arrays[:-1] + [np.array(epoch)]))
    damaged = path.read_bytes()
    for step in ("pretrain_epoch", "train_epoch"):
        monkeypatch.setattr(GanTrainer, step, lambda *args, **kwargs: pytest.fail("a GAN epoch ran"))
    _, method = build(out)
    with pytest.raises(DamagedFileError) as caught:
        method.prepare(context(out)[0])
    assert str(caught.value) == (f"{path}: its last array (the epoch) {problem}; "
                                 f"delete it to train the GAN again (or the run directory to restart)")
    assert path.read_bytes() == damaged  # left in place for the user to look at
