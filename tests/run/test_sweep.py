"""End to end through the driver and the command line: records, outputs, resume."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tfnas.config import ConfigError, load_config
from tfnas.run.sweep import run_sweep
from tfnas.results import SUMMARY_COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_rand_sweep_writes_run_dir_and_resumes(tmp_path):
    out = tmp_path / "run"
    sets = [f"run.out_dir={out}", "budget.start=10", "budget.stop=20", "budget.step=10", "budget.repeats=2"]
    first = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert first.new_records == 4
    for name in ("config.cfg", "runs.jsonl", "summary.csv", "accuracy_vs_budget.png", "best_arch.txt"):
        assert (out / name).exists(), name
    df = pd.read_csv(out / "summary.csv")
    assert list(df.columns) == SUMMARY_COLUMNS
    assert (df["queries"] == df["budget"]).all()
    assert (df["top1_acc"] <= first.optimum).all()
    assert (df["regret"] >= 0).all()
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(l)["repeat"] for l in lines} == {0, 1}

    # Same command again: nothing to do; one more repeat: only the new records run.
    again = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert again.new_records == 0 and len(again.records) == 4
    more = run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=3"]), progress=False)
    assert more.new_records == 2 and len(more.records) == 6
    # Same seed, same records.
    by_key = {r.key: r for r in more.records}
    assert by_key[(10, 0)].arch == first.records[0].arch


def test_resume_refuses_a_different_config(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    with pytest.raises(ConfigError, match=r"different configuration \(\[dataset\] name = 'cifar100' there, "
                                          r"'cifar10' now; see its config\.cfg\)"):
        run_sweep(load_config("cfg/rand.cfg", sets + ["dataset.name=cifar10"]), progress=False)


def test_a_value_with_a_comment_mark_resumes(tmp_path):
    # config.cfg quotes it; read back unquoted, the run directory holds the same config
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1",
            "dataset.data_dir=/data/my set #1"]
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert 'data_dir = "/data/my set #1"' in (tmp_path / "config.cfg").read_text()
    assert run_sweep(load_config("cfg/rand.cfg", sets), progress=False).new_records == 0


def test_a_folder_with_or_without_its_trailing_separator_resumes(tmp_path):
    # "data/" and "data" name one folder: one configuration, not "a different configuration"
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets + ["dataset.data_dir=/data/sets/"]), progress=False)
    assert "data_dir = /data/sets\n" in (tmp_path / "config.cfg").read_text()
    again = run_sweep(load_config("cfg/rand.cfg", sets + ["dataset.data_dir=/data/sets"]), progress=False)
    assert again.new_records == 0 and len(again.records) == 1


def test_a_directory_written_before_folders_were_normalised_resumes(tmp_path, monkeypatch):
    """Its config.cfg says "data_dir = /data/sets/" and its records carry the id of that text: the same
    configuration, resumed (not "made by another configuration"), and carried over to today's id."""
    from tfnas.run.rundir import RunDir, config_id
    from tfnas.run.sweep import SWEEP_FREE_KEYS

    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1",
            "dataset.data_dir=/data/sets"]
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    config = tmp_path / "config.cfg"
    old_text = config.read_text().replace("data_dir = /data/sets\n", "data_dir = /data/sets/\n")
    old_id = config_id(RunDir(load_config("cfg/rand.cfg", sets), ignore=SWEEP_FREE_KEYS)._identity(old_text))
    record = json.loads((tmp_path / "runs.jsonl").read_text())
    assert record["config_id"] != old_id

    def make_old():
        config.write_text(old_text)
        (tmp_path / "runs.jsonl").write_text(json.dumps({**record, "config_id": old_id}) + "\n")

    make_old()
    for _ in range(2):  # and again, once config.cfg holds the normalised value
        again = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
        assert again.new_records == 0 and len(again.records) == 1
        assert json.loads((tmp_path / "runs.jsonl").read_text())["config_id"] == record["config_id"]
    make_old()
    with monkeypatch.context() as read_only:  # a finished old run on a read-only disk still reprints, unchanged

        def refuse(path, *args, **kwargs):
            raise PermissionError(30, "Read-only file system", path)

        read_only.setattr("tfnas.io.os.open", refuse)
        again = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
        assert again.new_records == 0 and len(again.records) == 1
    assert config.read_text() == old_text and json.loads((tmp_path / "runs.jsonl").read_text())["config_id"] == old_id
    other = dict(record, config_id="0123456789ab")  # a record of another configuration is still refused
    (tmp_path / "runs.jsonl").write_text(json.dumps(other) + "\n")
    with pytest.raises(ConfigError, match="made by another configuration"):
        run_sweep(load_config("cfg/rand.cfg", sets), progress=False)


def test_a_resume_with_another_worker_thread_count_is_said(tmp_path, caplog):
    """Allowed (the same configuration), but said: on a process pool, another thread count changes the
    scores' last digits (docs/SCALING.md)."""
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets + ["run.executor=process", "run.worker_threads=1"]), progress=False)
    with caplog.at_level("WARNING", logger="tfnas.run.rundir"):
        run_sweep(load_config("cfg/rand.cfg", sets + ["run.executor=process", "run.worker_threads=1",
                                                      "budget.repeats=2"]), progress=False)
        assert "worker_threads" not in caplog.text
        again = run_sweep(load_config("cfg/rand.cfg", sets + ["run.executor=process", "budget.repeats=3"]),
                          progress=False)
    assert again.new_records == 1
    said = [r.message for r in caplog.records if "worker_threads" in r.message]
    assert said == [f"{tmp_path}: its results were computed with [run] worker_threads = 1, this run uses 0: scores "
                    f"may differ from theirs in the last digits (a search may then take another path), as TensorFlow "
                    f"sums in another order with another thread count (0: TensorFlow's default, as the local "
                    f"executor always runs)"]


def test_a_resume_on_the_local_executor_counts_its_threads_as_tensorflows_default(tmp_path, caplog):
    """The local executor ignores worker_threads: a pool run of one thread resumed locally with worker_threads = 1
    left set was not said, though its scores came from another thread count."""
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1", "run.worker_threads=1"]
    run_sweep(load_config("cfg/rand.cfg", sets + ["run.executor=process"]), progress=False)
    with caplog.at_level("WARNING", logger="tfnas.run.rundir"):
        run_sweep(load_config("cfg/rand.cfg", sets + ["run.executor=local", "budget.repeats=2"]), progress=False)
    assert "worker_threads = 1, this run uses 0" in caplog.text


def test_a_folder_of_other_files_is_written_into_with_a_warning(tmp_path, caplog):
    (tmp_path / "notes.txt").write_text("mine\n")
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    with caplog.at_level("WARNING", logger="tfnas.run.rundir"):
        run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert any("holds files but no config.cfg" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="tfnas.run.rundir"):  # now it is a run directory: no word
        run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert not any("config.cfg" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_resume_accepts_a_run_dir_written_before_new_keys_existed(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    path = tmp_path / "config.cfg"
    text = path.read_text()
    assert "pool_size = 1000" in text
    path.write_text(text.replace("pool_size = 1000\n", ""))  # as an older tfnas wrote it
    assert run_sweep(load_config("cfg/rand.cfg", sets), progress=False).new_records == 0
    path.write_text(text.replace("pool_size = 1000\n", "no_such_key = 1\n"))  # unreadable: refused, named
    with pytest.raises(ConfigError, match=r"config\.cfg: the configuration of the results in this directory cannot "
                                          r"be read \(.*no_such_key.*unknown key"):
        run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # with a byte-order mark: the same configuration
    assert run_sweep(load_config("cfg/rand.cfg", sets), progress=False).new_records == 0


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_eval.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_cli_prints_table(tmp_path):
    proc = run_cli("cfg/rand.cfg", "--no-progress", "--out-dir", str(tmp_path), "--set", "budget.start=10",
                   "--set", "budget.stop=10", "--set", "budget.repeats=2")
    assert proc.returncode == 0, proc.stderr
    assert "top1 acc" in proc.stdout and "rand" in proc.stdout and "optimum" in proc.stdout


def test_cli_bad_config_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("[budget]\nrepeatz = 3\n")
    proc = run_cli(str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "[budget] repeatz" in proc.stderr and "unknown key" in proc.stderr


@pytest.mark.parametrize("cfg", ["siams_nsam", "siams", "siams_nsam_nobts", "siams_nsam_cifar10",
                                 "siams_nsam_imagenet16", "predictor"])
def test_every_predictor_cfg_runs_tiny(tmp_path, cfg):
    sets = [f"run.out_dir={tmp_path}", "budget.start=12", "budget.stop=12", "budget.repeats=1",
            "predictor.epochs=8", "predictor.units=16"]
    outcome = run_sweep(load_config(f"cfg/{cfg}.cfg", sets), progress=False)
    (record,) = outcome.records
    assert record.queries == 12
    assert -1.0 <= record.spearman <= 1.0
    assert record.top100_acc >= record.top10_acc >= record.top1_acc


def test_a_records_ranking_metrics_score_the_methods_ranking_against_the_truth():
    """The sweep's tests ran whole searches and checked only that Spearman lies in [-1, 1]: a record that
    scored the ranking upside down passed them."""
    from types import SimpleNamespace

    import numpy as np

    from tfnas.run.sweep import evaluate_result

    rng = np.random.default_rng(0)
    truth = rng.permutation(500) / 5.0  # distinct accuracies, so the ranks are unambiguous
    space = SimpleNamespace(from_index=lambda i: i, encode=lambda arch: f"cell {arch}")
    session = SimpleNamespace(queries=20, ec_evals=0)

    def record(scores, best):
        result = SimpleNamespace(best_index=best, scores=scores, ec_evals=0, extra={})
        return evaluate_result("m", "cifar10", 20, 0, 0, session, result, space, truth, 1.0)

    best = int(np.argmax(truth))
    right = record(truth + 1000.0, best)  # a ranking in the truth's order, on another scale
    assert (right.spearman, right.kendall) == (pytest.approx(1.0), pytest.approx(1.0))
    assert right.top10_acc == right.top100_acc == right.top1_acc == truth.max() and right.regret == 0.0
    assert right.arch == f"cell {best}"
    worst = int(np.argmin(truth))
    wrong = record(-truth, worst)  # the reverse order
    assert (wrong.spearman, wrong.kendall) == (pytest.approx(-1.0), pytest.approx(-1.0))
    assert wrong.top10_acc == np.sort(truth)[9] and wrong.top100_acc == np.sort(truth)[99]
    assert wrong.regret == truth.max() - truth.min()
    half = record(np.where(truth > np.median(truth), 1.0, 0.0) + rng.random(500) * 1e-3, best)
    assert 0.3 < half.spearman < 0.95  # ties broken at random inside each half: neither order


def test_compare_merges_run_dirs(tmp_path):
    dirs = []
    for name, seed in (("a", 0), ("b", 1)):
        out = tmp_path / name
        run_sweep(load_config("cfg/rand.cfg", [f"run.out_dir={out}", f"run.seed={seed}", "budget.start=5",
                                               "budget.stop=10", "budget.step=5", "budget.repeats=2"]),
                  progress=False)
        dirs.append(str(out))
    merged = tmp_path / "merged"
    from tests.tool_imports import run_tool

    proc, loaded = run_tool("compare.py", *dirs, "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    assert loaded == {"matplotlib", "pandas"}  # records, tables and plots: no TensorFlow
    df = pd.read_csv(merged / "summary.csv")
    assert len(df) == 8 and (merged / "accuracy_vs_budget.png").exists()
    proc, loaded = run_tool("compare.py", str(tmp_path / "nope"))
    assert proc.returncode == 4 and "error: " in proc.stderr and "nope: no such folder" in proc.stderr
    assert "tensorflow" not in loaded  # an error is reported without loading it either


def test_method_variants_get_their_own_labels(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=8", "budget.stop=8", "budget.repeats=1",
            "predictor.epochs=4", "predictor.units=8", "search.bts=false", "predictor.nsam=true"]
    (record,) = run_sweep(load_config("cfg/siams_nsam.cfg", sets), progress=False).records
    assert record.method == "siamese+nsam"


def test_records_carry_the_config_identity_even_without_config_cfg(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    first = run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    assert first.records[0].config_id
    (tmp_path / "config.cfg").unlink()  # the user deletes config.cfg, then runs another config here
    with pytest.raises(ConfigError, match="made by another configuration"):
        run_sweep(load_config("cfg/rand.cfg", sets + ["run.seed=5"]), progress=False)
    # the budget range and the repeat count are not part of a sweep's identity
    more = run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=2"]), progress=False)
    assert more.new_records == 1 and {r.config_id for r in more.records} == {first.records[0].config_id}


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    from tfnas.run.rundir import RunDir

    cfg = load_config("cfg/rand.cfg", [f"run.out_dir={tmp_path}"])
    with RunDir(cfg):
        with pytest.raises(ConfigError, match=rf"another run is writing this directory \(process {os.getpid()}\)"):
            RunDir(cfg).open()
    with RunDir(cfg):  # released: the next run may write
        pass


def test_a_lock_file_replaced_between_open_and_lock_is_locked_again(tmp_path, monkeypatch):
    """A run that failed and cleaned up removed its lock file while it held it: a run that had opened the old file
    then locked it, and a third run the new file at the same name, so both wrote the directory."""
    import fcntl

    from tfnas.run import rundir as rundir_mod

    cfg = load_config("cfg/rand.cfg", [f"run.out_dir={tmp_path}"])
    lock = tmp_path / rundir_mod.LOCK_FILE
    real, calls = fcntl.flock, []

    def flock(fd, op):
        if op & fcntl.LOCK_EX and not calls:  # the other run removes it, and a third makes it anew
            lock.unlink()
            lock.write_text("")
        calls.append(op)
        return real(fd, op)

    monkeypatch.setattr(rundir_mod.fcntl, "flock", flock)
    with rundir_mod.RunDir(cfg) as held:
        assert len([op for op in calls if op & fcntl.LOCK_EX]) == 2  # locked again, the file at the name
        assert os.fstat(held._lock_fh.fileno()).st_ino == lock.stat().st_ino
        with pytest.raises(ConfigError, match="another run is writing"):
            rundir_mod.RunDir(cfg).open()


def test_records_a_writer_added_just_before_the_lock_was_taken_are_kept(tmp_path, monkeypatch):
    """The records are read again under the lock: a run that finished between this run's first read
    and its lock has its records kept, not recomputed over a stale copy."""
    from tfnas.run.rundir import RunDir

    cfg = load_config("cfg/rand.cfg", [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5",
                                       "budget.repeats=2"])
    run_sweep(cfg, progress=False)
    path = tmp_path / "runs.jsonl"
    full = path.read_text()
    path.write_text(full.splitlines(keepends=True)[0])  # what the first read sees: one record
    opened = RunDir.open

    def other_writer_finishes_first(self):
        path.write_text(full)  # the other writer appends its record and releases the lock
        return opened(self)

    monkeypatch.setattr(RunDir, "open", other_writer_finishes_first)
    again = run_sweep(cfg, progress=False)
    assert again.new_records == 0 and path.read_text() == full


def test_a_file_as_run_directory_is_refused_before_any_work(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run_sweep(load_config("cfg/rand.cfg", [f"run.out_dir={target}"]), progress=False)


def test_a_sweep_of_a_config_changed_in_python_is_checked_before_its_run_directory(tmp_path):
    """A Config made invalid in Python (``Config.replace``) ran a sweep of no budget: no record, no word, and a
    run directory with config.cfg and summary.csv."""
    import dataclasses

    out = tmp_path / "run"
    cfg = load_config("cfg/rand.cfg", [f"run.out_dir={out}", "run.tensorboard=false"])
    bad = cfg.replace(budget=dataclasses.replace(cfg.budget, start=50, stop=10))
    with pytest.raises(ConfigError, match=r"\[budget\] stop: expected stop >= start \(50\), got 10"):
        run_sweep(bad)
    assert not out.exists()


@pytest.mark.parametrize("cfg_file, call, right", [("cfg/rand.cfg", "search", "tfnas.run.sweep.run_sweep"),
                                                   ("cfg/zen_cifar10_1M.cfg", "sweep", "tfnas.run.search.run_search"),
                                                   ("cfg/proxy_corr_nb201.cfg", "sweep",
                                                    "tfnas.run.analysis.run_analysis")])
def test_a_flow_given_a_method_of_another_flow_names_the_right_one(tmp_path, cfg_file, call, right):
    """``run_search`` of a budgeted search failed with ``AttributeError: 'RandomSearch' object has no attribute
    'search'``, ``run_sweep`` of the Zen evolution asked for a GraphSpace."""
    from tfnas.run.analysis import run_analysis
    from tfnas.run.search import run_search

    out = tmp_path / "run"
    cfg = load_config(cfg_file, [f"run.out_dir={out}"])
    flow = {"search": run_search, "sweep": run_sweep, "analysis": run_analysis}[call]
    with pytest.raises(ConfigError, match=f"run it with {right} "):
        flow(cfg)
    assert not out.exists()


def test_a_record_that_failed_in_a_worker_is_raised_as_itself():
    """With the process or Ray executor a diverged training became a bare RuntimeError: a traceback and exit 1,
    where the local executor printed one error line and exited 2."""
    from types import SimpleNamespace

    from tfnas.evaluation.executors import Failed
    from tfnas.run.sweep import _records
    from tfnas.train.errors import TrainingDivergedError

    class Pool:
        name = "process"

        def imap(self, job, tasks, chunk=0):
            yield Failed("TrainingDivergedError: the loss became NaN", TrainingDivergedError("the loss became NaN"))

    records = _records(load_config("cfg/rand.cfg"), SimpleNamespace(config_id="x"), [(50, 0)], Pool())
    with pytest.raises(TrainingDivergedError, match="the loss became NaN") as err:
        next(records)
    assert "a sweep record failed in a worker" in str(err.value.__cause__)


def test_keys_the_run_never_reads_do_not_block_its_resume(tmp_path, caplog):
    """The warning called `--set train.epochs=5` in a rand sweep without effect, and the run directory then
    refused it as another configuration; its records are kept, carrying the new configuration's id."""
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    with caplog.at_level("WARNING"):
        more = run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=2", "train.epochs=5", "nag.pool=10",
                                                                  "proxy.name=zen"]), progress=False)
    assert more.new_records == 1 and len(more.records) == 2 and "without effect" in caplog.text
    again = run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=2"]), progress=False)
    assert again.new_records == 0 and len(again.records) == 2
    with pytest.raises(ConfigError, match="different configuration"):  # a key it reads still counts
        run_sweep(load_config("cfg/rand.cfg", sets + ["run.seed=3"]), progress=False)


def test_without_its_config_cfg_a_run_directory_still_tolerates_keys_the_run_never_reads(tmp_path):
    """With config.cfg deleted, `--set nag.pool=10` was refused by the records' config id; and another dataset
    was called "no tfnas run record" instead of another configuration."""
    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets), progress=False)
    (tmp_path / "config.cfg").unlink()
    again = run_sweep(load_config("cfg/rand.cfg", sets + ["nag.pool=10", "search.population=9"]), progress=False)
    assert again.new_records == 0 and len(again.records) == 1
    (tmp_path / "config.cfg").unlink()
    with pytest.raises(ConfigError, match="made by another configuration"):
        run_sweep(load_config("cfg/rand.cfg", sets + ["dataset.name=cifar10"]), progress=False)


def test_records_of_an_earlier_version_keep_their_place_after_a_tolerated_change(tmp_path):
    """Record ids now leave out the keys a run never reads; records written before, with them in the id, are
    the same configuration's, with or without config.cfg."""
    from tfnas.config import config_to_ini
    from tfnas.run.rundir import config_id, config_identity
    from tfnas.run.sweep import SWEEP_FREE_KEYS

    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    cfg = load_config("cfg/rand.cfg", sets + ["nag.pool=7"])
    run_sweep(cfg, progress=False)
    runs = tmp_path / "runs.jsonl"
    old_id = config_id(config_identity(config_to_ini(cfg), SWEEP_FREE_KEYS))  # (the keys not read kept in)
    records = [json.loads(line) for line in runs.read_text().splitlines()]
    assert records[0]["config_id"] != old_id
    runs.write_text("".join(json.dumps({**r, "config_id": old_id}) + "\n" for r in records))
    more = run_sweep(load_config("cfg/rand.cfg", sets[:-1] + ["budget.repeats=2", "nag.pool=10"]), progress=False)
    assert more.new_records == 1 and len(more.records) == 2
    (tmp_path / "config.cfg").unlink()
    runs.write_text("".join(json.dumps({**r, "config_id": old_id}) + "\n" for r in records))
    assert run_sweep(cfg, progress=False).new_records == 0


def test_keys_the_plain_predictor_and_a_table_code_never_read_are_named_and_tolerated(tmp_path, caplog):
    """`predictor.nsam`, `ec_source`, `search.rank_k` changed none of the plain predictor's records, drew no warning,
    and then blocked its resume; so did `pool_size` in an NB201 sweep and `ec_epochs` with the table's codes."""
    from tfnas.run.unused import unused_keys

    sets = [f"run.out_dir={tmp_path}", "budget.start=12", "budget.stop=12", "budget.repeats=1", "predictor.epochs=4",
            "predictor.units=16"]
    first = run_sweep(load_config("cfg/predictor.cfg", sets), progress=False)
    changed = ["predictor.nsam=false", "predictor.ec_source=synflow", "search.rank_k=3", "search.final_rank_k=4",
               "search.pool_size=100"]
    cfg = load_config("cfg/predictor.cfg", sets + changed)
    assert {f"{s}.{k}" for s, k, _ in unused_keys(cfg, "sweep")} == {c.split("=")[0] for c in changed}
    again = run_sweep(cfg, progress=False)
    assert again.new_records == 0 and again.records[0].top1_acc == first.records[0].top1_acc
    siamese = load_config("cfg/siams_nsam.cfg", ["predictor.ec_epochs=5", "predictor.ec_subset=64", "search.rank_k=3"])
    assert [(s, k) for s, k, _ in unused_keys(siamese, "sweep")] == [("predictor", "ec_epochs"),
                                                                      ("predictor", "ec_subset")]


@pytest.mark.parametrize("changed", ["space.channels=32", "space.cells_per_stage=1"])
def test_a_table_sweep_refuses_networks_of_another_size_than_the_tables(tmp_path, changed):
    """`--set space.channels=32` in rand_pixel3 reported 1.656 M params (and filtered max_params on them) beside the
    accuracies and latencies of the table's 0.42 M networks."""
    cfg = load_config("cfg/rand_pixel3.cfg", [f"run.out_dir={tmp_path / 'run'}", changed])
    with pytest.raises(ConfigError, match=rf"--set {changed.split('=')[0]}: the nb201 table's .* channels = 16 and "
                                          r"cells_per_stage = 5"):
        run_sweep(cfg, progress=False)
    assert not (tmp_path / "run").exists()
    from tfnas.run.unused import unused_keys  # a table sweep that reports no params: the size is without effect

    plain = load_config("cfg/rand.cfg", [changed])
    assert [(s, k) for s, k, _ in unused_keys(plain, "sweep")] == [tuple(changed.split("=")[0].split("."))]
    assert not unused_keys(load_config("cfg/tinynano_siams.cfg", [changed]), "sweep")


def test_a_predictor_whose_loss_became_nan_stops_the_sweep_without_a_record(tmp_path, monkeypatch):
    """`predictor.lr=1e9` diverged: the NaN scores' argmax picked an arbitrary cell, saved as a record (exit 0)."""
    import numpy as np

    from tfnas.predictors import fit
    from tfnas.train.errors import TrainingDivergedError

    monkeypatch.setattr(fit.PredictorTrainer, "train_epochs", lambda self, data, n=1, rng=None: np.array([np.nan]))
    sets = [f"run.out_dir={tmp_path}", "budget.start=12", "budget.stop=12", "budget.repeats=1", "predictor.epochs=4",
            "predictor.units=16", "predictor.lr=0.5"]
    with pytest.raises(TrainingDivergedError, match=r"predictor's training loss is nan in epoch 1; lower \[predictor\] "
                                                    r"lr \(now 0.5\)"):
        run_sweep(load_config("cfg/siams_nsam.cfg", sets), progress=False)
    assert not (tmp_path / "runs.jsonl").exists()


def test_a_run_that_fails_before_it_writes_anything_leaves_config_cfg_as_it_found_it(tmp_path):
    """A resume on a Ray head that was not there rewrote config.cfg with its [run] executor and worker_threads, so the
    next resume no longer said that the saved results were computed with another thread count."""
    from tfnas.run.rundir import RunDir

    sets = [f"run.out_dir={tmp_path}", "budget.start=5", "budget.stop=5", "budget.repeats=1"]
    run_sweep(load_config("cfg/rand.cfg", sets + ["run.executor=process", "run.worker_threads=1"]), progress=False)
    before = (tmp_path / "config.cfg").read_text()
    other = load_config("cfg/rand.cfg", sets + ["run.executor=ray", "run.worker_threads=0"])
    with pytest.raises(RuntimeError, match="no Ray head"):
        with RunDir(other, ignore=(("run", "worker_threads"),)):
            raise RuntimeError("no Ray head answers there")
    assert (tmp_path / "config.cfg").read_text() == before
    with pytest.raises(RuntimeError, match="later"):  # one that wrote something keeps the config it wrote it with
        with RunDir(other, ignore=(("run", "worker_threads"),)) as run_dir:
            run_dir.store.write_text("summary.csv", "x")
            raise RuntimeError("later")
    assert "executor = ray" in (tmp_path / "config.cfg").read_text()
