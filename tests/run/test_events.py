"""TensorBoard events of a run directory (``[run] tensorboard``), read back from the event files."""

import logging
import os

import numpy as np
import pandas as pd
import pytest

from tests.run.tb_reader import hparams_sessions, scalars
import tests.toy_space  # noqa: F401  (registers the toy_widths space)
from tfnas.config import load_config
from tfnas.proxies.base import Proxy
from tfnas.registry import register_proxy
from tfnas.run.search import run_search
from tfnas.run.sweep import run_sweep


@register_proxy("tb_toy_sum")
class ToyProxy(Proxy):
    """Score = sum of widths; raises KeyboardInterrupt (a killed search) at call ``fail_at``."""

    fail_at = None

    def __init__(self):
        self.calls = 0

    def score(self, model, batch, rng):
        raise NotImplementedError

    def score_arch(self, space, arch, *, num_classes, input_shape, batch_size, rng):
        self.calls += 1
        if ToyProxy.fail_at is not None and self.calls == ToyProxy.fail_at:
            raise KeyboardInterrupt
        return float(sum(arch)) + 0.01 * float(rng.standard_normal())


def evolution(out_dir, *extra):
    return load_config(None, ["method.name=evolution", "space.name=toy_widths", "proxy.name=tb_toy_sum",
                              "budget.max_params=300", "search.population=8", "search.iterations=50",
                              "search.record_every=10", "search.effectiveness_filter=false",
                              f"run.out_dir={out_dir}", "run.progress=false", *extra])


def test_search_history_rows_become_scalars_once_across_a_resume(tmp_path):
    ToyProxy.fail_at = 33  # killed after logging 3 of the 5 rows
    try:
        with pytest.raises(KeyboardInterrupt):
            run_search(evolution(tmp_path))
    finally:
        ToyProxy.fail_at = None
    assert [s for s, _ in scalars(str(tmp_path / "tensorboard" / "search"))["history/best_score"]] == [10, 20, 30]
    run = run_search(evolution(tmp_path))
    history = pd.read_csv(tmp_path / "history.csv")
    points = scalars(str(tmp_path / "tensorboard" / "search"))
    assert list(history["iteration"]) == [10, 20, 30, 40, 50]
    for column in ("best_score", "mean_score", "median_score", "population", "best_params"):
        assert [s for s, _ in points[f"history/{column}"]] == list(history["iteration"]), column  # no duplicates
        np.testing.assert_allclose([v for _, v in points[f"history/{column}"]], history[column], rtol=1e-6)
    (session,) = hparams_sessions(str(tmp_path / "tensorboard" / "hparams"))
    assert session["method.name"] == "evolution" and session["proxy.name"] == "tb_toy_sum"
    assert session["space.name"] == "toy_widths" and session["run.seed"] == 0 and session["search.iterations"] == 50
    # keys an evolution never reads are not in its row (a Zen search's row named predictor.nsam and search.bts)
    assert not {"predictor.nsam", "predictor.epochs", "search.bts", "search.epochs", "benchmark.name"} & set(session)
    assert session["search.objective"] == "accuracy"
    final = scalars(str(tmp_path / "tensorboard" / "hparams"))
    assert final["final/best_score"][0][1] == pytest.approx(run.outcome.score, rel=1e-6)
    run_search(evolution(tmp_path))  # finished: nothing new, no second hparams row
    assert len(hparams_sessions(str(tmp_path / "tensorboard" / "hparams"))) == 1
    assert run_search(evolution(tmp_path, "run.tensorboard=false")).resumed  # same run directory identity


def test_points_a_killed_process_drew_are_not_drawn_again_by_the_resumed_one(tmp_path, caplog):
    """A resumed weight-sharing search redoes the steps after its last saved state; the candidate
    values of those steps, drawn by the killed process, appeared twice in TensorBoard. Reading the
    old points puts nothing on the console (a deprecated reader logged a warning there)."""
    import logging

    from tfnas.run.events import EventStream

    killed = EventStream(str(tmp_path), "search")
    for step in range(5):
        killed.scalars({"loss": step, "reward": -step}, step, prefix="candidate/")
    killed.close()
    first = next((tmp_path / "search").iterdir())
    first.write_bytes(first.read_bytes()[:-7])  # the killed writer's last record torn
    resumed = EventStream(str(tmp_path), "search")
    with caplog.at_level(logging.WARNING):
        for step in range(3, 7):  # redoes steps 3 and 4
            resumed.scalars({"loss": step, "reward": -step}, step, prefix="candidate/")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    resumed.scalars({"loss": 9}, 2, prefix="other/")
    resumed.close()
    points = scalars(str(tmp_path / "search"))
    assert [s for s, _ in points["candidate/loss"]] == [0, 1, 2, 3, 4, 5, 6]  # each step once
    assert points["candidate/reward"] == [(s, -s) for s in range(7)]  # step 4's torn record: drawn by the resumed run
    assert points["other/loss"] == [(2, 9.0)]  # another tag at an earlier step is new


def test_a_sweeps_mean_over_more_repeats_replaces_the_earlier_means_in_step_order(tmp_path):
    """A sweep's mean over more repeats was drawn beside the earlier mean: TensorBoard purges none of a TF2 file's
    points by their step, so the chart held both. Now the stream is rewritten once, when the sweep's events close
    (a rewrite per budget was 7x slower over 150 budgets, and left a file per budget, read out of step order)."""
    from types import SimpleNamespace

    from tfnas.run.events import SWEEP_METRICS, SweepEvents

    def records(repeats, budgets):
        return [SimpleNamespace(budget=b, repeat=r, extra={}, **{m: float(b + r) for m in SWEEP_METRICS})
                for b in budgets for r in range(repeats)]

    budgets = list(range(10, 160, 10))  # 15 budgets: more writers in one second than a one-digit counter
    first = SweepEvents(str(tmp_path), 2)
    done = records(2, budgets)
    for record in done:
        first.record(record, done)
    first.close()
    again = SweepEvents(str(tmp_path), 3)
    more = records(3, budgets)
    for record in [r for r in more if r.repeat == 2]:
        again.record(record, more)
    again.close()
    folder = tmp_path / "sweep" / "mean"
    assert len(os.listdir(folder)) == 1
    assert scalars(str(folder))["sweep/top1_acc"] == [(b, b + 1.0) for b in budgets]  # (b + 0, 1, 2) / 3
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    shown = EventAccumulator(str(folder))  # what TensorBoard's own reader shows
    shown.Reload()
    assert [e.step for e in shown.Tensors("sweep/top1_acc")] == budgets
    again = SweepEvents(str(tmp_path), 3)  # the same means again: nothing rewritten
    for record in [r for r in more if r.repeat == 2]:
        again.record(record, more)
    again.close()
    assert len(scalars(str(folder))["sweep/top1_acc"]) == len(budgets)


def test_a_training_started_afresh_replaces_every_later_point_of_the_one_before(tmp_path):
    """After its checkpoints were deleted, a 2-epoch training drawn over a 3-epoch one left the earlier epochs
    beside the new ones, and the earlier epoch 3 as the newest point."""
    from tfnas.run.events import EventStream

    first = EventStream(str(tmp_path), "train")
    for epoch in (1, 2, 3):
        first.scalars({"train/loss": 2.0 - 0.1 * epoch, "eval/accuracy": 0.1}, epoch, replace="after")
    first.close()
    again = EventStream(str(tmp_path), "train")
    for epoch in (1, 2):  # eval/accuracy unchanged at 0.1: drawn again all the same (its earlier points are gone)
        again.scalars({"train/loss": 3.0 - 0.1 * epoch, "eval/accuracy": 0.1}, epoch, replace="after")
    again.close()
    points = scalars(str(tmp_path / "train"))
    assert points["train/loss"] == [(1, pytest.approx(2.9)), (2, pytest.approx(2.8))]
    assert points["eval/accuracy"] == [(1, pytest.approx(0.1)), (2, pytest.approx(0.1))]
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    shown = EventAccumulator(str(tmp_path / "train"))  # what TensorBoard's own reader shows
    shown.Reload()
    assert [e.step for e in shown.Tensors("train/loss")] == [1, 2]


def test_a_search_started_afresh_replaces_the_later_points_of_the_differing_tags_only(tmp_path):
    """SLNAS counts its candidate/ rewards and supernet losses in steps of their own: a redone reward that differed
    removed the supernet losses of earlier epochs for good."""
    from tfnas.run.events import EventStream

    first = EventStream(str(tmp_path), "search")
    for step in range(4):
        first.scalars({"reward": float(step), "supernet_loss": float(step)}, step, "candidate/", replace="tag")
    first.scalars({"loss": 1.0}, 1, "history/", replace="after")
    first.close()
    again = EventStream(str(tmp_path), "search")
    again.scalars({"reward": 0.0}, 0, "candidate/", replace="tag")  # the same: not drawn again
    again.scalars({"reward": 5.0}, 1, "candidate/", replace="tag")  # another search from here on
    again.close()
    points = scalars(str(tmp_path / "search"))
    assert points["candidate/reward"] == [(0, 0.0), (1, 5.0)] and points["history/loss"] == [(1, 1.0)]
    assert points["candidate/supernet_loss"] == [(s, float(s)) for s in range(4)]
    assert len(os.listdir(tmp_path / "search")) == 2  # the earlier file rewritten in place, and the new one


def test_tensorboard_false_writes_no_folder(tmp_path):
    run_search(evolution(tmp_path, "run.tensorboard=false"))
    assert os.path.exists(tmp_path / "history.csv") and not os.path.exists(tmp_path / "tensorboard")
    run_sweep(load_config("cfg/rand.cfg", [f"run.out_dir={tmp_path / 's'}", "budget.start=5", "budget.stop=5",
                                           "budget.repeats=1", "run.tensorboard=false"]), progress=False)
    assert os.path.exists(tmp_path / "s" / "runs.jsonl") and not os.path.exists(tmp_path / "s" / "tensorboard")


def test_a_failing_writer_warns_once_and_the_search_finishes(tmp_path, caplog):
    (tmp_path / "tensorboard").write_text("a file where the event folder should be")
    with caplog.at_level(logging.WARNING, logger="tfnas.run.events"):
        run = run_search(evolution(tmp_path))
    assert run.outcome.best_arch and len(pd.read_csv(tmp_path / "history.csv")) == 5
    warnings = [r for r in caplog.records if "TensorBoard events" in r.getMessage()]
    assert len([r for r in warnings if "search" in r.getMessage()]) == 1  # once per stream, not per row


def test_sweep_records_per_repeat_mean_and_hparams(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=10", "budget.stop=20", "budget.step=10", "budget.repeats=2"]
    first = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    root = tmp_path / "tensorboard"
    for repeat in (0, 1):
        points = scalars(str(root / "sweep" / f"repeat_{repeat}"))
        mine = sorted((r for r in first.records if r.repeat == repeat), key=lambda r: r.budget)
        assert [s for s, _ in points["sweep/top1_acc"]] == [10, 20]
        np.testing.assert_allclose([v for _, v in points["sweep/top1_acc"]], [r.top1_acc for r in mine], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in points["sweep/regret"]], [r.regret for r in mine], rtol=1e-5)
        spearman = [r.spearman for r in mine]
        if np.isnan(spearman).all():  # NaN (nothing ranked) is not drawn
            assert "sweep/spearman" not in points
        else:
            np.testing.assert_allclose([v for _, v in points["sweep/spearman"]], spearman, rtol=1e-5)
    mean = scalars(str(root / "sweep" / "mean"))["sweep/top1_acc"]
    expected = [np.mean([r.top1_acc for r in first.records if r.budget == b]) for b in (10, 20)]
    assert [s for s, _ in mean] == [10, 20] and np.allclose([v for _, v in mean], expected, rtol=1e-6)
    (session,) = hparams_sessions(str(root / "hparams"))
    assert session["method.name"] == "rand" and session["dataset.name"] == "cifar100"
    assert session["benchmark.name"] == "nb201" and "search.population" not in session and "proxy.name" not in session
    final = scalars(str(root / "hparams"))
    assert final["final/top1_acc"] == [(0, pytest.approx(expected[1], rel=1e-6))]
    more = run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=3"]), progress=False)
    assert more.new_records == 2
    (session,) = hparams_sessions(str(root / "hparams"))  # replaced, not a second row
    expected = np.mean([r.top1_acc for r in more.records if r.budget == 20])
    assert scalars(str(root / "hparams"))["final/records"] == [(0, 6.0)]
    assert scalars(str(root / "hparams"))["final/top1_acc"] == [(0, pytest.approx(expected, rel=1e-6))]
    assert [s for s, _ in scalars(str(root / "sweep" / "repeat_0"))["sweep/top1_acc"]] == [10, 20]  # not rewritten
    assert [s for s, _ in scalars(str(root / "sweep" / "repeat_2"))["sweep/top1_acc"]] == [10, 20]
    # the mean over three repeats replaces the mean of two at each budget (the files hold the new points only)
    means = [np.mean([r.top1_acc for r in more.records if r.budget == b]) for b in (10, 20)]
    drawn = scalars(str(root / "sweep" / "mean"))["sweep/top1_acc"]
    assert [s for s, _ in drawn] == [10, 20]
    np.testing.assert_allclose([v for _, v in drawn], means, rtol=1e-6)
    run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=3"]), progress=False)  # nothing new
    assert len(scalars(str(root / "sweep" / "mean"))["sweep/top1_acc"]) == 2


def test_a_deleted_or_never_written_tensorboard_folder_is_drawn_again_by_a_rerun(tmp_path):
    """A rerun that adds no record left a deleted tensorboard/ (or one of a run with tensorboard = false) with the
    hparams row only, while summary.csv and the plots were written again."""
    import shutil

    sets = [f"run.out_dir={tmp_path}", "budget.start=10", "budget.stop=20", "budget.step=10", "budget.repeats=2"]
    first = run_sweep(load_config("cfg/rand.cfg", sets + ["run.tensorboard=false"]), progress=False)
    root = tmp_path / "tensorboard"
    assert not root.exists()
    for _ in range(2):
        assert run_sweep(load_config("cfg/rand.cfg", sets), progress=False).new_records == 0
        for repeat in (0, 1):
            mine = sorted((r for r in first.records if r.repeat == repeat), key=lambda r: r.budget)
            drawn = scalars(str(root / "sweep" / f"repeat_{repeat}"))["sweep/top1_acc"]
            assert [s for s, _ in drawn] == [10, 20]
            np.testing.assert_allclose([v for _, v in drawn], [r.top1_acc for r in mine], rtol=1e-6)
        assert [s for s, _ in scalars(str(root / "sweep" / "mean"))["sweep/top1_acc"]] == [10, 20]
        shutil.rmtree(root / "sweep" / "repeat_1")  # the second time: one stream gone
    files = sorted(os.listdir(root / "sweep" / "repeat_0"))
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert sorted(os.listdir(root / "sweep" / "repeat_0")) == files  # nothing missing: no file opened


def test_a_restored_stream_leaves_the_others_and_the_mean_as_they_are(tmp_path):
    """Restoring a deleted repeat redrew the mean from the records prefix by prefix: rerun with fewer
    [budget] repeats, TensorBoard's mean became one repeat's value."""
    import shutil

    sets = [f"run.out_dir={tmp_path}", "budget.start=10", "budget.stop=10", "budget.repeats=2"]
    first = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    root = tmp_path / "tensorboard" / "sweep"
    before = scalars(str(root / "mean"))["sweep/top1_acc"]
    shutil.rmtree(root / "repeat_1")
    run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=1"]), progress=False)
    assert scalars(str(root / "mean"))["sweep/top1_acc"] == before
    assert [s for s, _ in scalars(str(root / "repeat_1"))["sweep/top1_acc"]] == [10]
    shutil.rmtree(root / "mean")  # drawn again over both records of the budget
    run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=1"]), progress=False)
    ((step, value),) = scalars(str(root / "mean"))["sweep/top1_acc"]
    assert step == 10 and value == pytest.approx(np.mean([r.top1_acc for r in first.records]), rel=1e-6)


def test_predictor_sweep_draws_spearman(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=20", "budget.stop=20", "budget.repeats=1",
            "predictor.epochs=2", "search.update_split=2"]
    (record,) = run_sweep(load_config("cfg/siams_nsam.cfg", sets), progress=False).records
    points = scalars(str(tmp_path / "tensorboard" / "sweep" / "repeat_0"))
    assert points["sweep/spearman"] == [(20, pytest.approx(record.spearman, rel=1e-5))]
    assert points["sweep_extra/train_s"][0][0] == 20
    assert points["sweep/queries"] == [(20, record.queries)]


def test_rankings_during_the_search_are_scored_after_it(tmp_path):
    """Siamese-NAS hands its ranking at each batch-top-sampling point to the session; the run layer
    scores it against the table after the search (record extra + ``ranking_spearman/budget_<b>``)."""
    from tfnas.benchmarks.nb201 import Nb201Benchmark
    from tfnas.metrics import spearman
    from tfnas.methods.siamese import bts_epochs

    sets = [f"run.out_dir={tmp_path}", "budget.start=20", "budget.stop=20", "budget.repeats=1",
            "predictor.epochs=8", "predictor.units=8", "search.update_split=3", "search.sample_fraction=0.05"]
    (record,) = run_sweep(load_config("cfg/siams_nsam.cfg", sets), progress=False).records
    assert record.extra["ranking_steps"] == bts_epochs(8, 3)
    rho = record.extra["ranking_spearman"]
    assert len(rho) == 3 and all(-1.0 <= r <= 1.0 for r in rho) and len(set(rho)) > 1
    points = scalars(str(tmp_path / "tensorboard" / "search" / "repeat_0"))["ranking_spearman/budget_20"]
    assert [s for s, _ in points] == bts_epochs(8, 3)
    np.testing.assert_allclose([v for _, v in points], rho, rtol=1e-4)
    # each observation is scored by the run layer against the table's accuracies of exactly the cells it
    # ranked: a ranking in their order scores 1, the reverse -1, and one of the whole table's order over
    # other cells something else
    from types import SimpleNamespace

    from tfnas.run.sweep import RecordContext

    benchmark = Nb201Benchmark()
    truth = benchmark.ground_truth("cifar100")
    cells = [3, 1, 2, 500, 7000, 12]
    other = [8, 9, 10, 11, 13, 14]

    def run(session, budget, rng):
        session.observe(4, cells, truth[cells])
        session.observe(6, cells, -truth[cells])
        session.observe(9, cells, truth[other])
        assert session.queries == 0  # observing is not querying
        return SimpleNamespace(best_index=cells[0], scores=None, ec_evals=0, extra={})

    method = SimpleNamespace(label="m", run=run)
    context = RecordContext(space=SimpleNamespace(from_index=lambda i: i, encode=str), benchmark=benchmark,
                            method=method, dataset="cifar100", truth=truth, optimum=float(truth.max()),
                            constrained=None, config_id="x")
    scored = context.record(0, 20, 0)
    assert scored.extra["ranking_steps"] == [4, 6, 9]
    assert scored.extra["ranking_spearman"][:2] == [1.0, -1.0]
    assert scored.extra["ranking_spearman"][2] == pytest.approx(spearman(truth[other], truth[cells]), abs=1e-4)
    with pytest.raises(ValueError, match="observe"):
        benchmark.session("cifar100", 0).observe(0, [1, 2], [0.5])


def _stopped_before_the_hparams_row(monkeypatch, module):
    """``module.write_hparams`` raising KeyboardInterrupt: a run stopped after saving its last result."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "write_hparams", interrupted)


def test_a_run_stopped_before_its_hparams_row_gets_it_from_the_next_run(tmp_path, monkeypatch):
    """A sweep or search stopped between its last result and the hparams row: the rerun adds nothing,
    and wrote no row either."""
    import tfnas.run.search as search_module
    import tfnas.run.sweep as sweep_module

    sets = [f"run.out_dir={tmp_path / 's'}", "budget.start=10", "budget.stop=10", "budget.repeats=2"]
    with monkeypatch.context() as patch:
        _stopped_before_the_hparams_row(patch, sweep_module)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert not os.path.exists(tmp_path / "s" / "tensorboard" / "hparams")
    again = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert again.new_records == 0
    (session,) = hparams_sessions(str(tmp_path / "s" / "tensorboard" / "hparams"))
    assert session["method.name"] == "rand"
    expected = np.mean([r.top1_acc for r in again.records])
    assert scalars(str(tmp_path / "s" / "tensorboard" / "hparams"))["final/top1_acc"] == [
        (0, pytest.approx(expected, rel=1e-6))]

    with monkeypatch.context() as patch:
        _stopped_before_the_hparams_row(patch, search_module)
        with pytest.raises(KeyboardInterrupt):
            run_search(evolution(tmp_path / "e"))
    assert not os.path.exists(tmp_path / "e" / "tensorboard" / "hparams")
    run = run_search(evolution(tmp_path / "e"))
    assert run.resumed
    (session,) = hparams_sessions(str(tmp_path / "e" / "tensorboard" / "hparams"))
    assert scalars(str(tmp_path / "e" / "tensorboard" / "hparams"))["final/best_score"][0][1] == pytest.approx(
        run.outcome.score, rel=1e-6)
    run_search(evolution(tmp_path / "e"))  # the row is there now: not written a second time
    assert len(hparams_sessions(str(tmp_path / "e" / "tensorboard" / "hparams"))) == 1
