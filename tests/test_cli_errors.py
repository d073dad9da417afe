"""Bad inputs through the real command line: one ``error:`` line naming the culprit, a non-zero
exit, no traceback, nothing half-written (issue: hardening).

The table runs in-process through the same entry points ``tools/*.py`` call (TensorFlow loads
once); one subprocess case checks what a user sees on a terminal, TensorFlow's start-up included.
"""

import os
import shutil
import subprocess
import sys

import pytest

from tfnas.cli import compare_main, train_eval_main
from tfnas.config import load_config
from tfnas.proxies.base import Proxy
from tfnas.registry import register_proxy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(main, argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def _one_error_line(err):
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith(("WARNING", "I0000", "W0000"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("cfg, sets, fragments", [
    ("cfg/siams_nsam.cfg", ["space.name=zen"], ["--set space.name", "needs a space with GraphSpace"]),
    ("cfg/zen_cifar10_1M.cfg", ["space.name=nb201"], ["--set space.name", "evolution"]),
    ("cfg/rand.cfg", ["space.name=zen"], ["--set space.name", "needs a space with GraphSpace"]),
    ("cfg/nag_nb201.cfg", ["space.name=darts"], ["[benchmark] name", "the nb201 table answers only for"]),
    ("cfg/nag_nb201.cfg", ["nag.beta_1=1"], ["nag.beta_1"]),
    ("cfg/predictor.cfg", ["budget.start=20000", "budget.stop=20000"], ["--set budget.stop", "15,625"]),
    ("cfg/siams_nsam_nobts.cfg", ["budget.stop=16000"], ["--set budget.stop", "expected a budget <= 15,625"]),
    ("cfg/zen_cifar10_1M.cfg", ["proxy.name=zenn"], ["proxy.name", "unknown proxy 'zenn'"]),
    ("cfg/siams_nsam.cfg", ["nosection.seed=1"], ["unknown section [nosection]", "nosection.seed"]),
    ("cfg/siams_nsam.cfg", ["predictor.lr=inf"], ["predictor.lr", "'inf'"]),
    ("cfg/rand.cfg", ["benchmark.source=cfg/rand.cfg"], ["--set benchmark.source: ", "cfg/rand.cfg"]),
    ("cfg/rand.cfg", ["benchmark.source=cfg"], ["--set benchmark.source: ", "meta"]),  # a folder without its files
    ("cfg/proxy_corr_nb201.cfg", ["benchmark.source=cfg"], ["--set benchmark.source: ", "meta"]),  # (its own build)
    ("cfg/zen_cifar10_1M.cfg", ["run.seed=99999999999999"], ["run.seed", "[0, 4294967295]"]),
    ("cfg/zen_cifar10_1M.cfg", ["train.epochs=1"], ["[train] warmup_epochs", "at most [train] epochs = 1, got 5"]),
    ("cfg/siams_nsam.cfg", ["dataset.name=imagenet2012"], ["--set dataset.name=imagenet2012", "cifar100"]),
    ("cfg/zen_cifar10_1M.cfg", ["run.executor=ray", "run.ray_address=foo"], ["run.ray_address", "HOST:PORT"]),
    ("cfg/slnas_tiny.cfg", ["export.format=tflite", "export.quantize=int8", "export.calibration=cfg"],
     ["export.calibration", "no train/ folder"]),
    ("cfg/slnas_tiny.cfg", ["dataset.train_subset=8", "dataset.batch_size=16"],
     ["--set dataset.train_subset=8 is smaller than [dataset] batch_size = 16"]),
    # every Incorporated score 0 (both weights 0), or a negative weight: accepted, and the pick arbitrary
    ("cfg/incorporated_l_cifar10_1M.cfg", ["proxy.zen_weight=0", "proxy.entropy_weight=0"],
     ["--set proxy.zen_weight=0, --set proxy.entropy_weight=0: every incorporated_l score would be 0"]),
    ("cfg/incorporated_l_cifar10_1M.cfg", ["proxy.entropy_weight=-5"], ["proxy.entropy_weight", ">= 0"]),
    ("cfg/incorporated_l_cifar10_1M.cfg", ["search.max_rho=0"],  # (said "loosen [budget]" and named the file)
     ["--set search.max_rho: the start architecture already breaks this limit (the effectiveness filter's max rho "]),
])
def test_bad_configs_are_one_line_and_write_nothing(tmp_path, capsys, cfg, sets, fragments):
    out = tmp_path / "run"
    argv = [cfg, "--out-dir", str(out), "--no-progress"] + [a for s in sets for a in ("--set", s)]
    rc, err = _run(train_eval_main, argv, capsys)
    line = _one_error_line(err)
    assert rc == 2, err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not out.exists(), "a failed run left a directory behind"


def test_a_cfg_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "bad.cfg"
    bad.write_bytes(b"[run]\nseed = 0\n# caf\xe9\n")
    rc, err = _run(train_eval_main, [str(bad), "--out-dir", str(tmp_path / "run")], capsys)
    assert rc == 2 and "not UTF-8 text" in _one_error_line(err)


def test_a_default_section_is_named(tmp_path, capsys):
    bad = tmp_path / "default.cfg"
    bad.write_text("[DEFAULT]\nseed = 3\n[run]\nprogress = false\n", encoding="utf-8")
    rc, err = _run(train_eval_main, [str(bad), "--out-dir", str(tmp_path / "run")], capsys)
    assert rc == 2 and "[DEFAULT] sets seed; tfnas configs have no [DEFAULT] section" in _one_error_line(err)


def test_a_training_config_is_not_run_as_a_search(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _run(train_eval_main, ["cfg/train_nb201_cifar10.cfg", "--out-dir", str(out)], capsys)
    line = _one_error_line(err)
    assert rc == 2 and "cfg/train_nb201_cifar10.cfg: [space] arch: names one architecture to train" in line
    assert "python tools/train.py cfg/train_nb201_cifar10.cfg" in line and not out.exists()


def test_a_folder_of_the_users_with_a_runs_jsonl_of_its_own_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    (out / "runs.jsonl").write_text('{"x": 1}\n')
    argv = ["cfg/rand.cfg", "--out-dir", str(out), "--set", "budget.start=10", "--set", "budget.stop=10",
            "--set", "budget.repeats=1"]
    rc, err = _run(train_eval_main, argv, capsys)
    assert rc == 2 and "holds no tfnas run record (1 line(s) that are not) and the folder has no config.cfg" in (
        _one_error_line(err))
    assert (out / "runs.jsonl").read_text() == '{"x": 1}\n' and sorted(os.listdir(out)) == ["runs.jsonl", "thesis.tex"]


def test_an_empty_out_dir_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _run(train_eval_main, [os.path.join(ROOT, "cfg/rand.cfg"), "--out-dir", ""], capsys)
    assert rc == 2 and "--out-dir is empty" in _one_error_line(err)
    assert os.listdir(tmp_path) == []


def test_a_folder_given_as_the_config_is_named_as_one(tmp_path, capsys):
    rc, err = _run(train_eval_main, [str(tmp_path), "--out-dir", str(tmp_path / "run")], capsys)
    assert rc == 2 and _one_error_line(err) == f"error: {tmp_path}: is a folder; expected a .cfg file (see cfg/)"


def test_out_dir_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--out-dir", str(target)], capsys)
    assert rc == 2 and "is a file, not a folder" in _one_error_line(err)
    assert target.read_text() == "x"


def test_a_run_directory_that_cannot_be_created_exits_4(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    out = target / "run"  # a folder under a file
    rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--out-dir", str(out), "--no-progress"], capsys)
    line = _one_error_line(err)
    assert rc == 4, err
    assert line == f"error: {out}: cannot create the run directory (Not a directory)", line


def test_a_corrected_run_after_a_config_error_is_accepted(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["cfg/rand.cfg", "--out-dir", str(out), "--no-progress", "--set", "budget.start=5", "--set",
            "budget.stop=5", "--set", "budget.repeats=1"]
    rc, _ = _run(train_eval_main, base + ["--set", "budget.stop=99999"], capsys)
    assert rc == 2 and not out.exists()
    rc, err = _run(train_eval_main, base, capsys)
    assert rc == 0, err
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1


def test_an_error_quoting_a_huge_value_is_clipped_to_a_readable_line(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--out-dir", str(out), "--set", "method.name=" + "x" * 1_000_000],
                   capsys)
    line = _one_error_line(err)
    assert rc == 2 and len(line) < 2100 and "characters left out" in line and not out.exists()


def test_compare_refuses_the_same_directory_twice_and_keeps_equal_labels_apart(tmp_path, capsys, monkeypatch):
    runs = []
    for name, seed in (("a", 0), ("b", 1)):
        out = tmp_path / name
        rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--out-dir", str(out), "--no-progress", "--set",
                                         "budget.start=5", "--set", "budget.stop=5", "--set", "budget.repeats=1",
                                         "--set", f"run.seed={seed}"], capsys)
        assert rc == 0, err
        runs.append(str(out))
    rc, err = _run(compare_main, [runs[0], runs[0] + "/", "--out", str(tmp_path / "cmp")], capsys)
    assert rc == 2 and "given twice" in _one_error_line(err)
    rc, err = _run(compare_main, runs + ["--out", " "], capsys)
    assert rc == 2 and "--out: expected the folder for the merged table, got an empty name" in _one_error_line(err)
    (tmp_path / "file").write_text("x")
    rc, err = _run(compare_main, runs + ["--out", str(tmp_path / "file")], capsys)
    assert rc == 2 and "is a file" in _one_error_line(err)
    rc, err = _run(compare_main, [runs[0], str(tmp_path / "file"), "--out", str(tmp_path / "cmp")], capsys)
    assert rc == 2 and f"{tmp_path / 'file'}: a file, not a run directory" in _one_error_line(err)  # as --out
    before = (tmp_path / "a" / "summary.csv").read_text()
    rc, err = _run(compare_main, runs + ["--out", runs[0]], capsys)
    assert rc == 2 and "is one of the run directories compared" in _one_error_line(err)
    assert (tmp_path / "a" / "summary.csv").read_text() == before
    rc, err = _run(compare_main, runs[1:] + ["--out", runs[0]], capsys)  # a run not compared is still a run
    assert rc == 2 and "is a run directory (it holds config.cfg)" in _one_error_line(err)
    assert (tmp_path / "a" / "summary.csv").read_text() == before
    rc, err = _run(compare_main, runs[1:] + ["--out", os.path.join(runs[0], "new", "folder")], capsys)
    assert rc == 2 and f"is inside the run directory {os.path.realpath(runs[0])}" in _one_error_line(err)
    assert not (tmp_path / "a" / "new").exists()
    rc, err = _run(compare_main, runs + ["--out", str(tmp_path / "cmp")], capsys)
    assert rc == 0, err
    summary = (tmp_path / "cmp" / "summary.csv").read_text()
    assert "rand (a)" in summary and "rand (b)" in summary
    # folders of the same name (another configuration's copy in x/a): apart, by as much path as tells them apart
    shutil.copytree(runs[1], tmp_path / "x" / "a")
    rc, err = _run(compare_main, [runs[0], str(tmp_path / "x" / "a"), "--out", str(tmp_path / "cmp4")], capsys)
    assert rc == 0, err
    summary = (tmp_path / "cmp4" / "summary.csv").read_text()
    assert f"rand ({tmp_path.name}/a)" in summary and "rand (x/a)" in summary, summary
    # A run directory that would add nothing to the table is refused, not silently left out.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for text, why in (("", "it is empty"), ("\n\n", "it is empty"),
                      ("\x00\x01junk\n{\"budget\": \"20\"}\n", "all 2 of its lines are damaged; line 1: dropped, not")):
        (damaged / "runs.jsonl").write_text(text)
        rc, err = _run(compare_main, [runs[0], str(damaged), "--out", str(tmp_path / "cmp2")], capsys)
        assert rc == 2 and f"{damaged / 'runs.jsonl'}: holds no run record ({why}" in _one_error_line(err), err
    assert not (tmp_path / "cmp2").exists()

    def stopped(*args, **kwargs):  # Ctrl-C while the merged files are written: some may be there already
        raise KeyboardInterrupt

    monkeypatch.setattr("tfnas.results.write_outputs", stopped)
    rc, err = _run(compare_main, runs + ["--out", str(tmp_path / "cmp3")], capsys)
    assert rc == 130 and err.strip().splitlines() == [
        "interrupted: the merged table may be incomplete; rerun the command to write it"]


def test_compare_refuses_an_out_folder_it_cannot_create_or_write(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    rc, err = _run(compare_main, [str(tmp_path), "--out", str(tmp_path / "file" / "cmp")], capsys)
    assert rc == 4 and f"cannot be created ({tmp_path / 'file'} is a file)" in _one_error_line(err)
    # Permission bits do not stop root, so the unwritable case is simulated.
    monkeypatch.setattr("tfnas.cli.os.access", lambda path, mode: False)
    rc, err = _run(compare_main, [str(tmp_path), "--out", str(tmp_path / "ro")], capsys)
    line = _one_error_line(err)
    assert rc == 4 and f"--out {tmp_path / 'ro'}: cannot be created ({tmp_path} is not writable)" in line
    (tmp_path / "ro").mkdir()
    rc, err = _run(compare_main, [str(tmp_path), "--out", str(tmp_path / "ro")], capsys)
    assert rc == 4 and "the folder is not writable" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ro"]  # nothing created


def test_an_unwritable_results_file_is_named_not_its_temporary_file(tmp_path, capsys, monkeypatch):
    from tfnas.cli import run_guarded
    from tfnas.io import atomic_write_text

    def refuse(path, *args):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("tfnas.io.os.open", refuse)
    target = tmp_path / "summary.csv"
    rc = run_guarded(lambda: atomic_write_text(str(target), "x"), verbose=False)
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 4 and line == f"error: cannot write {target} (Permission denied)", line
    assert list(tmp_path.iterdir()) == []


def test_a_config_error_is_reported_before_tensorflow_loads():
    """The command line checks the config without TensorFlow first; a user's own TensorFlow log
    level is not silenced."""
    code = ("import sys; from tfnas.cli import train_eval_main; "
            "rc = train_eval_main(['cfg/rand.cfg', '--set', 'budget.repeats=two']); "
            "from tfnas.runtime import quiet_import_wanted; "
            "print(rc, 'tensorflow' in sys.modules, quiet_import_wanted(False), quiet_import_wanted(True))")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    for level, quiet in ((None, "True"), ("2", "True"), ("0", "False")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env=env if level is None else {**env, "TF_CPP_MIN_LOG_LEVEL": level})
        assert proc.stdout.split() == ["2", "False", quiet, "False"], proc.stderr
        assert "budget.repeats" in _one_error_line(proc.stderr)


def test_compare_of_a_folder_without_records(tmp_path, capsys):
    rc, err = _run(compare_main, [str(tmp_path), "--out", str(tmp_path / "cmp")], capsys)
    assert rc == 2 and "no runs.jsonl" in _one_error_line(err)
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "result.json").write_text("{}")
    rc, err = _run(compare_main, [str(tmp_path / "search"), "--out", str(tmp_path / "cmp")], capsys)
    assert rc == 2 and "search: the run directory of a search, which has no sweep records" in _one_error_line(err)
    rc, err = _run(compare_main, [str(tmp_path / "nowhere"), "--out", str(tmp_path / "cmp")], capsys)
    assert rc == 4 and _one_error_line(err) == f"error: {tmp_path / 'nowhere'}: no such folder"


def test_what_a_terminal_shows_for_a_bad_config_is_one_line():
    """TensorFlow's start-up lines stay off the console; the user's own log level is respected."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    proc = subprocess.run([sys.executable, "tools/train_eval.py", "cfg/siams_nsam.cfg", "--set", "space.name=zen"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("error: --set space.name: method 'siamese' needs"), proc.stderr
    assert proc.stdout == ""


def test_missing_training_data_is_reported_before_the_search(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["cfg/zen_cifar10_1M.cfg", "--out-dir", str(out), "--no-progress", "--set",
            f"dataset.data_dir={tmp_path / 'empty'}", "--set", "dataset.download=false"]
    rc, err = _run(train_eval_main, argv, capsys)
    line = _one_error_line(err)
    assert rc == 3 and "cifar10" in line, err
    assert not (out / "result.json").exists() and not (out / "history.csv").exists()


def test_a_training_oracle_sweep_without_data_writes_nothing_and_accepts_the_fix(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["cfg/tinynano_siams.cfg", "--out-dir", str(out), "--no-progress", "--set", "dataset.download=false",
            "--set", f"dataset.data_dir={tmp_path / 'empty'}"]
    rc, err = _run(train_eval_main, argv, capsys)
    assert rc == 3 and "is not prepared" in _one_error_line(err), err
    assert not out.exists()  # no config.cfg, lock or pool.txt that would refuse the corrected run


ZEN_RUN = ["cfg/zen_cifar10_1M.cfg", "--no-progress", "--set", "train.enabled=false", "--set", "search.iterations=12",
           "--set", "search.population=6", "--set", "search.record_every=6"]


def _copy_of_a_finished_zen_run(tmp_path, capsys):
    """``tmp_path / "run"``: a copy of a tiny finished Zen search (one search per test process)."""
    import shutil

    pristine = tmp_path.parent / "pristine_zen_run"
    if not (pristine / "result.json").exists():
        assert _run(train_eval_main, ZEN_RUN + ["--out-dir", str(pristine)], capsys)[0] == 0
    out = tmp_path / "run"
    shutil.copytree(pristine, out)
    return out


def _damage(path, how):
    if callable(how):  # edits the parsed JSON: a file of the right format whose fields are damaged
        import json

        value = json.loads(path.read_text())
        how(value)
        path.write_text(json.dumps(value))
    elif how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(how)


@pytest.mark.parametrize("name, remove, how, fragments", [
    ("result.json", None, "truncate", ["result.json: cannot be read back", "delete it to redo the search"]),
    ("result.json", None, b"{}", ["result.json: its 'best_arch' field is missing"]),
    ("result.json", None, b'{"best_arch": "SuperConvK9(3,8,2,1)"}', ["result.json: cannot be read back"]),
    ("result.json", None, lambda r: r.update(score="x"), ["result.json: 'score' must be a number; got 'x'"]),
    ("search_state/evolution.json", "result.json", b"garbage", ["evolution.json: cannot be read back"]),
    ("search_state/evolution.json", "result.json", b'{"format": 1}', ["holds the state of another evolution"]),
    ("search_state/evolution.json", "result.json", lambda state: state.pop("members"),
     ["evolution.json: its 'members' field is missing", "delete the run directory to restart"]),
    ("history.csv", "result.json", b"\xff\xfe\x00junk", ["history.csv: cannot be read back"]),
])
def test_a_damaged_run_directory_is_named_in_one_line(tmp_path, capsys, name, remove, how, fragments):
    out = _copy_of_a_finished_zen_run(tmp_path, capsys)
    argv = ZEN_RUN
    if remove:
        (out / remove).unlink()
    _damage(out / name, how)
    damaged = (out / name).read_bytes()
    rc, err = _run(train_eval_main, argv + ["--out-dir", str(out)], capsys)
    line = _one_error_line(err)
    assert rc == 2, err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert str(out) in line  # the file is named with its folder
    assert (out / name).read_bytes() == damaged  # left for the user to look at


def test_a_damaged_image_of_an_image_folder_is_named_in_one_line(tmp_path, capsys):
    from tests.images import write_image_folder
    from tfnas.cli import train_main

    root = write_image_folder(tmp_path / "images", per_class=4, size=(8, 8), classes=("a", "b"))
    later, first = sorted((root / "train" / "b").iterdir())[2], sorted((root / "train" / "a").iterdir())[0]
    _damage(later, "truncate")  # the PNG signature is kept: only the decoder inside tf.data fails
    cfg = tmp_path / "train.cfg"
    cfg.write_text("[space]\narch = |nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|"
                   "nor_conv_3x3~2|\nchannels = 4\ncells_per_stage = 1\n", encoding="utf-8")
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", "dataset.batch_size=4",
            "dataset.eval_batch_size=4", "train.epochs=1", "export.enabled=false"]
    argv = [str(cfg), "--no-progress"] + [a for s in sets for a in ("--set", s)]
    want = "error: image_folder: damaged image file (delete or replace it):"
    rc, err = _run(train_main, argv + ["--out-dir", str(tmp_path / "run"), "--set", "dataset.image_size=8"], capsys)
    assert rc == 2 and _one_error_line(err) == f"{want} {later}"  # read in the first epoch
    _damage(first, "truncate")  # with dataset.image_size = 0 it is decoded up front: it sets the size
    rc, err = _run(train_main, argv + ["--out-dir", str(tmp_path / "run2")], capsys)
    assert rc == 2 and _one_error_line(err) == f"{want} {first} (and 1 more)"


def test_a_training_whose_loss_diverges_is_one_line_naming_what_to_change(tmp_path, capsys):
    from tests.images import write_image_folder
    from tfnas.cli import train_main

    root = write_image_folder(tmp_path / "images", per_class=4, size=(8, 8), classes=("a", "b"))
    cfg = tmp_path / "train.cfg"
    cfg.write_text("[space]\narch = |nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|"
                   "nor_conv_3x3~2|\nchannels = 4\ncells_per_stage = 1\n", encoding="utf-8")
    sets = ["dataset.name=image_folder", f"dataset.data_dir={root}", "dataset.batch_size=4", "dataset.image_size=8",
            "dataset.eval_batch_size=4", "train.epochs=1", "export.enabled=false", "train.lr=1e300",
            "train.grad_clip=0"]
    out = tmp_path / "run"
    argv = [str(cfg), "--no-progress", "--out-dir", str(out)] + [a for s in sets for a in ("--set", s)]
    rc, err = _run(train_main, argv, capsys)
    line = _one_error_line(err)
    assert rc == 2 and "training loss is" in line and "lower train.lr, set train.grad_clip" in line
    assert not out.exists()


class _WidthSum(Proxy):
    """Toy proxy: the widths' sum, or NaN for every child (``nan``): a search that ends without an answer."""

    nan = False

    def score(self, model, batch, rng):
        raise NotImplementedError

    def score_arch(self, space, arch, **kwargs):
        return float("nan") if self.nan else float(sum(arch))


register_proxy("cli_toy_width_sum")(_WidthSum)
register_proxy("cli_toy_width_nan")(type("_WidthNan", (_WidthSum,), {"nan": True}))


def test_a_search_without_an_answer_leaves_no_run_directory_and_the_corrected_config_runs(tmp_path):
    """The search's history, checkpoint and events stayed: the folder then refused the corrected config as
    "a different configuration", though it held no result."""
    import tests.toy_space  # noqa: F401  (registers the toy_widths space)
    from tfnas.methods.base import SearchFailedError
    from tfnas.run.search import run_search

    out = tmp_path / "runs" / "evo"
    sets = ["method.name=evolution", "space.name=toy_widths", "budget.max_params=300", "search.population=4",
            "search.iterations=12", "search.record_every=4", "search.effectiveness_filter=false",
            f"run.out_dir={out}", "run.progress=false"]
    with pytest.raises(SearchFailedError, match="non-finite"):
        run_search(load_config(None, sets + ["proxy.name=cli_toy_width_nan"]))
    assert not (tmp_path / "runs").exists()
    run = run_search(load_config(None, sets + ["proxy.name=cli_toy_width_sum"]))
    assert run.outcome.best_arch and (out / "result.json").exists() and not run.resumed


def test_a_search_that_ends_without_an_answer_is_one_line(capsys):
    from tfnas.cli import run_guarded
    from tfnas.methods.base import SearchFailedError

    def search():
        raise SearchFailedError("evolution found no architecture within the limits in 4 iterations; loosen [budget]")

    assert run_guarded(search, verbose=False) == 2
    assert _one_error_line(capsys.readouterr().err) == ("error: evolution found no architecture within the limits "
                                                        "in 4 iterations; loosen [budget]")


def test_a_search_result_without_its_config_is_refused(tmp_path, capsys):
    out = _copy_of_a_finished_zen_run(tmp_path, capsys)
    (out / "config.cfg").unlink()
    longer = [a if a != "search.iterations=12" else "search.iterations=30" for a in ZEN_RUN]
    rc, err = _run(train_eval_main, longer + ["--out-dir", str(out)], capsys)
    line = _one_error_line(err)
    assert rc == 2 and line == (f"error: {out / 'result.json'}: a search result without the config.cfg of the "
                                f"search that found it; restore config.cfg, or delete result.json (or the "
                                f"directory) to search again"), line
    assert not (out / "config.cfg").exists()


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    from tfnas.cli import run_guarded

    def interrupted():
        raise KeyboardInterrupt

    assert run_guarded(interrupted, verbose=False) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(KeyboardInterrupt):  # -v keeps the traceback
        run_guarded(interrupted, verbose=True)


def test_multi_worker_without_a_cluster_is_refused_before_the_training(tmp_path, capsys, monkeypatch):
    from tfnas.cli import train_main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "run"
    rc, err = _run(train_main, ["cfg/train_nb201_cifar10.cfg", "--out-dir", str(out), "--no-progress", "--set",
                                "run.strategy=multi_worker"], capsys)
    assert rc == 2 and "strategy 'multi_worker' needs a cluster description" in _one_error_line(err)
    assert not out.exists()
    monkeypatch.setenv("TF_CONFIG", "{bad json")
    rc, err = _run(train_main, ["cfg/train_nb201_cifar10.cfg", "--out-dir", str(out), "--no-progress", "--set",
                                "run.strategy=multi_worker"], capsys)
    assert rc == 2 and "TF_CONFIG is not valid JSON" in _one_error_line(err)
    assert not out.exists()


@pytest.mark.parametrize("cfg, flow", [("cfg/zen_cifar10_1M.cfg", "a one-shot search"),
                                       ("cfg/tinynano_siams.cfg", "a sweep")])
def test_multi_worker_is_refused_for_searches_and_sweeps_before_any_work(tmp_path, capsys, monkeypatch, cfg, flow):
    # Its collective ops must be set up before TensorFlow runs an op: the training after a search
    # crashed with "Collective ops must be configured at program startup", after the whole search.
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:23456"]}, "task": {"type": "worker", '
                                    '"index": 0}}')
    out = tmp_path / "run"
    rc, err = _run(train_eval_main, [cfg, "--out-dir", str(out), "--no-progress", "--set",
                                     "run.strategy=multi_worker"], capsys)
    line = _one_error_line(err)
    assert rc == 2 and "--set run.strategy: multi_worker training is for tools/train.py only" in line
    assert f"{flow} runs TensorFlow before it trains" in line
    assert not out.exists()


@pytest.mark.parametrize("extra", [[], ["--set", "predictor.ec_source=train"]])  # (random search uses no code)
def test_multi_worker_is_said_to_be_unused_where_nothing_trains(tmp_path, capsys, caplog, extra):
    # a sweep on the benchmark table trains no network: nothing to refuse (it was, "as it trains")
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--out-dir", str(out), "--no-progress", "--set",
                                         "run.strategy=multi_worker", "--set", "budget.start=5", "--set",
                                         "budget.stop=5", "--set", "budget.repeats=1", *extra], capsys)
    assert rc == 0, err
    assert "--set run.strategy: multi_worker: not used, a sweep trains no network here" in caplog.text
    assert (out / "runs.jsonl").exists()


@pytest.mark.parametrize("failure, replayed", [(KeyboardInterrupt, False), (ImportError, True)])
def test_tensorflows_start_up_lines_are_shown_when_its_import_fails_not_after_ctrl_c(
        monkeypatch, capfd, failure, replayed):
    import importlib.abc
    import importlib.util
    import sys

    from tfnas.runtime import import_tensorflow_quietly

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, module):  # what TensorFlow's C++ start-up writes to fd 2, then the failure
            os.write(2, b"I0000 oneDNN custom operations are on\n")
            raise failure("stopped")

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            return importlib.util.spec_from_loader(name, Loader()) if name == "tensorflow" else None

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder()] + sys.meta_path)
    with pytest.raises(failure):
        import_tensorflow_quietly()
    assert ("oneDNN custom operations" in capfd.readouterr().err) is replayed


def test_out_of_memory_is_one_line_naming_what_ran_out(capsys):
    import tensorflow as tf

    from tfnas.cli import run_guarded

    def oom():
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,100000000] and "
                                               "type float on /job:localhost/replica:0/task:0/device:CPU:0 by "
                                               "allocator cpu [Op:MatMul] name: dense")

    def python_oom():
        raise MemoryError()

    assert run_guarded(oom, verbose=False) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: out of memory (OOM when allocating tensor with shape[64,100000000] and type "
                           "float): a setting asks for more memory"), line
    assert run_guarded(python_oom, verbose=False) == 2
    assert _one_error_line(capsys.readouterr().err).startswith("error: out of memory (MemoryError)")


@pytest.mark.parametrize("make", [
    lambda: __import__("numpy").zeros((2**31 - 1, 2**31 - 1, 2**31 - 1)),  # NumPy: "array is too big; ..."
    lambda: __import__("tensorflow").pad(__import__("tensorflow").zeros((1, 2, 2, 3)),
                                         [[0, 0], [10**9, 10**9], [10**9, 10**9], [0, 0]]),  # overflow of a shape
])
def test_a_size_beyond_what_can_be_addressed_is_said_as_out_of_memory(make, capsys):
    """`bench.py tflite --input-size 10**12` ended in NumPy's "array is too big" traceback, `train.pad_crop=10**9`
    in TensorFlow's "Encountered overflow when multiplying" one."""
    from tfnas.cli import run_guarded

    assert run_guarded(make, verbose=False) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: out of memory (") and "make it smaller" in line and "[[" not in line, line


def test_the_error_boundary_knows_every_expected_error_once_its_module_is_loaded():
    """The exception classes are looked up by module and name among the loaded modules: a moved or
    renamed class would silently lose its exit code, so every entry must resolve (in this order)."""
    import importlib

    from tfnas.benchmarks.safe_pickle import BenchmarkFormatError
    from tfnas.cli import _Expected
    from tfnas.config import ConfigError
    from tfnas.data import DatasetNotFoundError
    from tfnas.data.base import DatasetFormatError
    from tfnas.evaluation.executors import ExecutorError
    from tfnas.evaluation.training import CellTrainingError, TrainCacheError
    from tfnas.io import DamagedFileError
    from tfnas.methods.base import SearchFailedError
    from tfnas.registry import UnknownNameError
    from tfnas.train.checkpoint import CheckpointMismatchError
    from tfnas.train.distribute import ClusterError, StrategyError
    from tfnas.train.errors import TrainingDivergedError

    for module, _, _ in _Expected.KINDS:
        importlib.import_module(module)
    assert list(_Expected.types().items()) == [
        (ConfigError, 2), (UnknownNameError, 2), (CheckpointMismatchError, 2), (TrainCacheError, 2),
        (DamagedFileError, 2), (StrategyError, 2), (SearchFailedError, 2), (DatasetFormatError, 2),
        (BenchmarkFormatError, 2), (CellTrainingError, 2), (DatasetNotFoundError, 3), (TrainingDivergedError, 2),
        (ExecutorError, 5),
        (ClusterError, 5), (OSError, 4)]


def test_tensorflows_retracing_warning_is_shown_with_v_only(caplog):
    import logging

    from tfnas.cli import _setup_logging

    tf_logger = logging.getLogger("tensorflow")
    message = ("5 out of the last 5 calls to <function f> triggered tf.function retracing. Tracing is expensive ...")
    try:
        for verbose, shown in ((False, False), (True, True), (False, False)):
            _setup_logging(verbose)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="tensorflow"):
                tf_logger.warning(message)
                tf_logger.warning("another TensorFlow warning")
            assert ("triggered tf.function retracing" in caplog.text) == shown
            assert "another TensorFlow warning" in caplog.text
    finally:
        _setup_logging(True)  # leaves the logger without the filter, as other tests expect


def test_a_sweep_without_a_known_optimum_prints_no_nan_optimum(tmp_path, capsys, monkeypatch):
    """The training oracle (Tiny-NanoBench on an image folder) knows no optimum: no "nan%" line."""
    import math

    import tfnas.run.sweep
    from tfnas.run.sweep import run_sweep

    real = {}

    def oracle_like(cfg, *args, **kwargs):
        outcome = run_sweep(cfg, *args, **kwargs)
        real["optimum"] = outcome.optimum
        outcome.optimum = math.nan
        return outcome

    monkeypatch.setattr(tfnas.run.sweep, "run_sweep", oracle_like)
    argv = ["cfg/rand.cfg", "--out-dir", str(tmp_path / "r"), "--no-progress", "--set", "budget.start=5", "--set",
            "budget.stop=5", "--set", "budget.repeats=1"]
    assert train_eval_main(argv) == 0
    out = capsys.readouterr().out
    assert "1 new record(s)" in out and "optimum" not in out and "nan" not in out
    monkeypatch.undo()
    assert train_eval_main(argv) == 0
    assert f"benchmark optimum (cifar100): {real['optimum']:.2f}%" in capsys.readouterr().out


def test_a_bad_out_dir_is_named_as_the_flag_given(tmp_path, capsys):
    """It was named "--set run.out_dir", a flag the user had not written."""
    out = str(tmp_path / "a\tb")
    rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--out-dir", out], capsys)
    assert rc == 2 and _one_error_line(err).startswith("error: --out-dir: holds the control character '\\t'")
    rc, err = _run(train_eval_main, ["cfg/rand.cfg", "--set", f"run.out_dir={out}"], capsys)
    assert rc == 2 and _one_error_line(err).startswith("error: --set run.out_dir: holds the control character")
    assert os.listdir(tmp_path) == []


def test_a_narrower_rerun_says_that_the_table_holds_the_earlier_records(tmp_path, capsys):
    """After a run of budgets 20 and 40 x 2 repeats, a rerun of budget 20 x 1 printed the whole directory's table
    while config.cfg said budget 20 x 1, without a word."""
    base = ["cfg/rand.cfg", "--out-dir", str(tmp_path), "--no-progress", "--set", "budget.start=20"]
    assert train_eval_main(base + ["--set", "budget.stop=40", "--set", "budget.step=20", "--set",
                                   "budget.repeats=2"]) == 0
    assert "earlier runs" not in capsys.readouterr().out
    assert train_eval_main(base + ["--set", "budget.stop=20", "--set", "budget.repeats=1"]) == 0
    out = capsys.readouterr().out
    assert "hold 3 record(s) of earlier runs beyond this run's [budget], at budget(s) 20, 40" in out


@pytest.mark.parametrize("error, code, torn_down", [
    ("tf.errors.ResourceExhaustedError(None, None, 'Out of memory while trying to allocate 25.94GiB.')", 2, False),
    ("ValueError('no such value')", 1, True),  # (a real bug: Python's own exit, teardown and all)
])
def test_out_of_memory_exits_2_after_the_exit_handlers_without_the_interpreters_teardown(tmp_path, error, code,
                                                                                         torn_down):
    """After TensorFlow failed to allocate 25.94 GiB (`predictor.batch_size=100000`), the error line was followed by
    "double free or corruption" from the interpreter's teardown, and exit 134. An object's finaliser at teardown
    shows whether the teardown ran."""
    script = tmp_path / "oom.py"
    script.write_text(
        "import atexit, os\n"
        "import tensorflow as tf\n"
        "from tfnas.cli import _SKIP_TEARDOWN, exit_with, run_guarded\n"
        "class Sentinel:\n"
        "    def __del__(self, write=os.write):  # (the module's globals are gone by then)\n"
        "        write(1, b'torn down\\n')\n"
        "sentinel = Sentinel()\n"
        "atexit.register(lambda: print('exit handlers ran', flush=True))\n"
        "def fails():\n"
        f"    raise {error}\n"
        "assert run_guarded(lambda: 0, verbose=False) == 0 and not _SKIP_TEARDOWN\n"
        "try:\n"
        "    status = run_guarded(fails, verbose=False)\n"
        "except ValueError:\n"
        "    status = 1\n"
        "exit_with(status)\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stderr[-2000:]
    assert ("error: out of memory (Out of memory while trying to allocate 25.94GiB.)" in done.stderr) == (code == 2)
    assert done.stdout.splitlines()[0] == "exit handlers ran"
    assert ("torn down" in done.stdout) == torn_down
