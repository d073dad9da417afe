"""Config loading: defaults, overrides, strict validation with one-line errors."""

import argparse
import dataclasses
import json
import os
import textwrap
import typing

import pytest

from tfnas import registry
from tfnas.config import Config, ConfigError, config_to_ini, load_config


def write(tmp_path, text, name="exp.cfg"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_and_types(tmp_path):
    path = write(tmp_path, """
        [budget]
        start = 10
        stop = 30
        step = 10
        repeats = 2
        [train]
        epochs = 90
        step_epochs = 30, 60
        nesterov = false
    """)
    cfg = load_config(path)
    assert cfg.budget.budgets() == [10, 20, 30]
    assert cfg.train.step_epochs == (30, 60)
    assert cfg.train.nesterov is False
    assert cfg.method.name == "rand"
    assert cfg.name == "exp"


def test_overrides_win_over_file(tmp_path):
    path = write(tmp_path, "[budget]\nrepeats = 3\n")
    cfg = load_config(path, ["budget.repeats=5", "run.seed=7"])
    assert cfg.budget.repeats == 5 and cfg.run.seed == 7


def test_frozen(tmp_path):
    cfg = load_config(None)
    with pytest.raises(Exception):
        cfg.run.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, overrides, fragments",
    [
        ("[bogus]\nx = 1\n", [], ["[bogus]", "unknown section", "valid sections", "budget"]),
        ("[budget]\nstart = 1\nsize = 3\n", [], ["[budget] size", "unknown key", "repeats"]),
        ("[budget]\nstop = ten\n", [], ["[budget] stop", "expected an integer", "'ten'"]),
        ("[budget]\nrepeats = 0\n", [], ["[budget] repeats", ">= 1", "'0'"]),
        ("[proxy]\nbatch_size = 1\n", [], ["[proxy] batch_size", ">= 2", "'1'"]),
        ("[search]\ninit_fraction = 1.5\n", [], ["[search] init_fraction", "in [0.0, 1.0]"]),
        ("[run]\njit_compile = maybe\n", [], ["[run] jit_compile", "auto, true, false"]),
        ("[run]\nprogress = perhaps\n", [], ["[run] progress", "boolean"]),
        ("[run]\ntensorboard = perhaps\n", [], ["[run] tensorboard", "boolean"]),
        ("[method]\nname = nosuch\n", [], ["[method] name", "unknown method 'nosuch'", "rand"]),
        ("[space]\nname = nosuch\n", [], ["[space] name", "unknown space", "nb201"]),
        ("[dataset]\nname = mnist3d\n", [], ["[dataset] name", "unknown dataset", "cifar10"]),
        ("[benchmark]\nsource = no/such/file\n", [], ["[benchmark] source", "not found"]),
        ("[budget]\nstart = 50\nstop = 10\n", [], ["[budget] stop", "stop >= start"]),
        ("[predictor]\nec_source = nosuchproxy\n", [], ["[predictor] ec_source", "table, train"]),
        ("", ["budget.repeats=x"], ["--set budget.repeats", "integer"]),
        ("", ["budget"], ["--set", "section.key=value"]),
        ("", ["nosection.key=1"], ["unknown section [nosection]", "--set nosection.key"]),
        ("", ["predictor.lr=inf"], ["--set predictor.lr", "'inf'"]),
        # a process pool's semaphore overflowed (a traceback); Ray hung counting the CPUs
        ("", ["run.workers=2147483647"], ["--set run.workers", "[0, 65536]"]),
        ("", ["run.worker_threads=5000"], ["--set run.worker_threads", "[0, 4096]"]),
        # a learning rate of 0 learns nothing (a controller that never changed, accepted silently)
        *[("", [f"{key}=0"], [f"--set {key}", "expected a number > 0.0, got '0'"])
          for key in ("predictor.lr", "brp.lr", "controller.lr", "nag.lr", "nag.d_lr", "search.lr", "train.lr")],
        ("[train]\nlr = -0.5\n", [], ["[train] lr", "a number > 0.0"]),
        ("[search]\nmax_rho = -inf\n", [], ["[search] max_rho", "'-inf'"]),
        ("[proxy]\nname = zenn\n", [], ["[proxy] name", "unknown proxy 'zenn'", "registered proxies", "zen"]),
        ("[proxy]\nnames = zen, snipp\n", [], ["[proxy] names", "unknown proxy 'snipp'"]),
        ("not an ini file\n", [], ["not a valid INI file"]),
        ("[export]\nformat = tflite, onnx\n", [], ["[export] format", "saved_model, keras, tflite", "unknown 'onnx'"]),
        ("[export]\nformat = tflite,saved_model,tflite\n", [], ["[export] format", "each at most once",
                                                                "repeated 'tflite'"]),
        ("[export]\nformat =\n", [], ["[export] format", "one or more of", "nothing given"]),
        ("[export]\nformat = keras\nquantize = int8\n", [], ["[export] quantize", "tflite format only",
                                                              "format = keras"]),
        ("[export]\nquantize = int4\n", [], ["[export] quantize", "none, float16, int8", "'int4'"]),
        ("[export]\nformat = tflite\nquantize = float16\ncalibration = cifar10\n", [],
         ["[export] calibration", "int8 quantization only"]),
        ("[export]\nformat = tflite\nquantize = int8\ncalibration = no/such/folder\n", [],
         ["[export] calibration", "'no/such/folder' is neither a registered dataset", "cifar10"]),
        ("", ["export.format=saved_model,saved_model"], ["--set export.format", "repeated 'saved_model'"]),
        ("", ["budget.start=１０"], ["--set budget.start", "expected an integer"]),  # full-width digits
        ("", ["budget.start=1_0"], ["--set budget.start", "expected an integer"]),
        ("", ["proxy.subset=1", "method.name=proxy_corr"], ["--set proxy.subset", "at least 2 cells to correlate"]),
        ("", ["predictor.lr=1_0.5"], ["--set predictor.lr", "expected a number"]),
        ("[train]\nepochs = 10\nstep_epochs = -5, 4\n", [], ["[train] step_epochs", "'-5, 4'"]),
        ("[train]\nepochs = 10\nschedule = step\nstep_epochs = 1, 4, 1\n", [],
         ["[train] step_epochs", "expected distinct epochs below [train] epochs = 10", "got 1"]),  # (gamma**2)
        ("[train]\nepochs = 10\nschedule = step\nstep_epochs = 4, 10, 1000\n", [],
         ["[train] step_epochs", "below [train] epochs = 10 (a step there never happens", "got 10, 1000"]),
        ("", ["space.blocks=1,,1"], ["--set space.blocks", "'1,,1' (an empty item)"]),
        ("[space]\nblocks = 2, 2,\n", [], ["[space] blocks", "'2, 2,' (an empty item)"]),
        ("", ["dataset.batch_size=3000000000"], ["--set dataset.batch_size", "at most 2147483647 (32 bits)"]),
        ("", ["dataset.image_size=3000000000"], ["--set dataset.image_size", "in [0, 4096]"]),
        ("[run]\nout_dir = runs/a\n  b\n", [], ["[run] out_dir", "holds a line break", "[space] arch and start"]),
        ("", ["train.lr_min=0.5"], ["--set train.lr_min", "must not exceed [train] lr (0.1); got 0.5"]),
    ],
)
def test_errors_name_file_section_key(tmp_path, text, overrides, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    if not overrides:
        assert path in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.cfg"))


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="no /dev/fd")
def test_a_config_from_a_pipe_is_refused_not_read_as_the_defaults(tmp_path):
    """``tools/train_eval.py <(sed ... cfg/rand.cfg)``: the shell passes /dev/fd/N. The command line reads a
    config twice (without TensorFlow, then with it), and the second read of a drained pipe is an empty file:
    the defaults, into ``runs/<N>``. Nor was it 'not found', as it once said."""
    read, write_end = os.pipe()
    os.write(write_end, b"[budget]\nstop = 70\n")
    os.close(write_end)
    try:
        with pytest.raises(ConfigError, match=rf"^/dev/fd/{read}: not a regular file \(a pipe such as"):
            load_config(f"/dev/fd/{read}")
    finally:
        os.close(read)


REGISTRIES = {"method": registry.METHODS, "space": registry.SPACES, "dataset": registry.DATASETS,
              "benchmark": registry.BENCHMARKS, "proxy": registry.PROXIES}


def _another_value(f: dataclasses.Field, tp) -> object:
    """A valid value of field ``f`` (type ``tp``) other than its default; None for a key of one choice."""
    meta, default = f.metadata, f.default
    if tp is bool:
        return not default
    if tp is int:
        return default + 1 if default + 1 <= meta.get("max", default + 1) else default - 1
    if tp is float:
        value = default * 1.5 + 0.0625  # not a round number: the text must carry every digit
        return value if value <= meta.get("max", value) else (default + meta.get("min", 0.0)) / 2
    if typing.get_origin(tp) is tuple:
        if "choices" in meta:
            return tuple(c for c in meta["choices"] if c not in default)[:1]
        return tuple(x + 1 for x in default) or (3,) if typing.get_args(tp)[0] is int else tuple(default) + (0.5,)
    if "choices" in meta:
        return next((c for c in meta["choices"] if c != default), None)  # None: the only value there is
    if "registry" in meta:
        return next(name for name in REGISTRIES[meta["registry"]].names() if name != default)
    return default + "x" if default else "some value #1"


def test_every_key_round_trips_through_the_resolved_ini(tmp_path):
    """config.cfg of a run directory: a config with every key away from its default loads back equal."""
    from tfnas.config.loader import SECTIONS, _section_types

    source = tmp_path / "table.pickle.pbz2"
    source.write_bytes(b"")
    fixed = {("benchmark", "source"): str(source), ("export", "format"): ("keras", "tflite"),
             ("export", "quantize"): "int8", ("export", "calibration"): "cifar100"}
    sets, single = [], []
    for section, cls in SECTIONS.items():
        types = _section_types(cls)
        for f in dataclasses.fields(cls):
            value = fixed.get((section, f.name), _another_value(f, types[f.name]))
            if value is None:
                single.append(f"{section}.{f.name}")
                continue
            assert value != f.default, (section, f.name)
            text = ("true" if value else "false") if isinstance(value, bool) else (
                ", ".join(map(str, value)) if isinstance(value, tuple) else str(value))
            sets.append(f"{section}.{f.name}={text}")
    cfg = load_config(None, sets, check_names=False)
    ini = config_to_ini(cfg)
    again = load_config(write(tmp_path, ini, "resolved.cfg"), check_names=False)
    assert isinstance(again, Config)
    for section, cls in SECTIONS.items():
        assert getattr(again, section) == getattr(cfg, section) != cls(), section
        for f in dataclasses.fields(cls):
            if f"{section}.{f.name}" not in single:
                assert getattr(getattr(again, section), f.name) != f.default, (section, f.name)
    assert single == ["benchmark.metric"] and len(sets) > 150


def test_a_config_path_with_a_line_break_keeps_the_resolved_config_readable(tmp_path):
    """The header comment quoted the path as it was: its second line broke the resolved config.cfg."""
    path = tmp_path / "new\nline.cfg"
    path.write_text(open("cfg/rand.cfg").read())
    cfg = load_config(str(path))
    ini = config_to_ini(cfg)
    assert ini.splitlines()[0] == f"# resolved from {json.dumps(str(path))}"
    assert load_config(write(tmp_path, ini, "resolved.cfg")).budget == cfg.budget


@pytest.mark.parametrize("value", ["/data/my set #1", "a ;b", "#start", ' "quoted" ', 'a"b', "C:\\data #1", "café"])
def test_values_with_comment_marks_or_quotes_round_trip(tmp_path, value):
    cfg = load_config(None, [f"dataset.data_dir={value}"])
    assert cfg.dataset.data_dir == value.strip()
    again = load_config(write(tmp_path, config_to_ini(cfg), "resolved.cfg"))
    assert again.dataset.data_dir == cfg.dataset.data_dir


@pytest.mark.parametrize("value, folder", [("data/", "data"), ("/data/sets//", "/data/sets"), ("/", "/"),
                                           ("gs://bucket/tfds/", "gs://bucket/tfds"), ("", "")])
def test_folders_are_read_without_trailing_separators(value, folder):
    cfg = load_config(None, [f"dataset.data_dir={value}", f"dataset.manual_dir={value}"])
    assert (cfg.dataset.data_dir, cfg.dataset.manual_dir) == (folder, folder)
    # the calibration source is left as given: a trailing separator is how a folder named like a dataset
    # ("cifar10/") is told from the dataset (whether it exists is checked with the names)
    calibration = load_config(None, [f"export.calibration={value}", "export.format=tflite", "export.quantize=int8"],
                              check_names=False).export.calibration
    assert calibration == value
    assert load_config(None, [f"run.out_dir={value}"]).run.out_dir == value  # not an identity key: as given


def test_inline_comments_and_quoted_values(tmp_path):
    cfg = load_config(write(tmp_path, """\
        [run]  # a comment after a section
        seed = 3   # the paper's
        out_dir = "runs/set #1" ; quoted: the # is kept
        [dataset]
        data_dir = #nothing
        """))
    assert (cfg.run.seed, cfg.run.out_dir, cfg.dataset.data_dir) == (3, "runs/set #1", "")
    with pytest.raises(ConfigError, match=r"\[run\] out_dir: expected nothing but a # comment \(after a space\) "
                                          r"after the quoted value; got 'x'"):
        load_config(write(tmp_path, '[run]\nout_dir = "a #b" x\n'))
    with pytest.raises(ConfigError, match=r"\[run\] out_dir: a value in double quotes must be a JSON string"):
        load_config(write(tmp_path, '[run]\nout_dir = "a #b\n'))
    with pytest.raises(ConfigError, match=r"comment \(after a space\) after the quoted value; got '#c'"):
        load_config(write(tmp_path, '[run]\nout_dir = "a"#c\n'))
    with pytest.raises(ConfigError, match=r"\[dataset\] data_dir: holds the control character '\\t'; in a value "
                                          r"in double quotes a backslash starts an escape"):
        load_config(write(tmp_path, '[dataset]\ndata_dir = "C:\\temp #1"\n'))
    with pytest.raises(ConfigError, match=r"--set dataset\.data_dir: holds the control character '\\r'"):
        load_config(None, ["dataset.data_dir=a\rb"])


def test_what_the_stricter_checks_still_take(tmp_path):
    arch = "|nor_conv_3x3~0|+\n  |none~0|none~1|+|none~0|none~1|none~2|"
    cfg = load_config(write(tmp_path, f"[space]\nname = nb201\narch = {arch}\n"))
    assert cfg.space.arch == arch.replace("  ", "")  # an architecture may span lines
    assert load_config(None, ["train.lr_min=0.5", "train.schedule=constant"]).train.lr_min == 0.5  # no cosine: unused
    assert load_config(None, ["space.blocks=", "dataset.image_size=4096"]).space.blocks == ()
    assert load_config(None, ["run.seed=4294967295"]).run.seed == 2 ** 32 - 1  # a key's own maximum wins


def test_export_formats_are_a_list(tmp_path):
    cfg = load_config(write(tmp_path, "[export]\nformat = saved_model, tflite\nquantize = int8\n"))
    assert cfg.export.format == ("saved_model", "tflite") and cfg.export.quantize == "int8"
    assert cfg.export.calibration == ""
    assert load_config(None).export.format == ("saved_model",)  # the default, as before
    again = load_config(write(tmp_path, config_to_ini(cfg), "resolved.cfg"))
    assert again.export == cfg.export
    folder = tmp_path / "images"
    (folder / "train").mkdir(parents=True)
    sets = ["export.format=tflite", "export.quantize=int8"]
    assert load_config(None, sets + [f"export.calibration={folder}"]).export.calibration == str(folder)
    assert load_config(None, sets + ["export.calibration=cifar100"]).export.calibration == "cifar100"


def test_shipped_configs_load():
    import glob

    paths = sorted(glob.glob("cfg/*.cfg"))
    assert paths, "no shipped configs found"
    for path in paths:
        load_config(path)


@pytest.mark.parametrize("data", [b"[run]\nseed = 1\n# caf\xe9\n", bytes(range(256))])
def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path, data):
    path = tmp_path / "latin1.cfg"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="not UTF-8 text") as info:
        load_config(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n; and another\n", "[method]\n[run]\n# seed = 1\n"])
def test_a_file_that_sets_nothing_is_refused_not_run_as_the_default_experiment(tmp_path, text):
    path = tmp_path / "empty.cfg"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"empty.cfg: sets no key \(empty, or only comments and empty sections\)"):
        load_config(str(path))
    assert load_config(str(path), ["method.name=rand"]).method.name == "rand"  # --set alone names the method


def test_a_config_link_that_leads_nowhere_is_said_to_be_one(tmp_path):
    loop_a, loop_b, broken = tmp_path / "a.cfg", tmp_path / "b.cfg", tmp_path / "broken.cfg"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    broken.symlink_to(tmp_path / "gone.cfg")
    for link in (loop_a, broken):
        with pytest.raises(ConfigError, match="a symbolic link that leads to no file"):
            load_config(str(link))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "gone.cfg"))


@pytest.mark.parametrize("change, fragments", [
    (lambda c: c.replace(budget=dataclasses.replace(c.budget, start=50, stop=10)), ["[budget] stop", ">= start"]),
    (lambda c: c.replace(budget=dataclasses.replace(c.budget, repeats=0)), ["[budget] repeats", "got '0'"]),
    (lambda c: c.replace(run=dataclasses.replace(c.run, seed=-1)), ["[run] seed", "got '-1'"]),
    (lambda c: c.replace(run=dataclasses.replace(c.run, seed="5")), ["[run] seed", "an integer", "'5' (str)"]),
    (lambda c: c.replace(budget=dataclasses.replace(c.budget, step=True)), ["[budget] step", "True (bool)"]),
    (lambda c: c.replace(method=dataclasses.replace(c.method, name="rnd")), ["[method] name", "unknown method"]),
    (lambda c: c.replace(predictor=dataclasses.replace(c.predictor, lr=float("inf"))), ["[predictor] lr"]),
    (lambda c: c.replace(budget=c.run), ["[budget]", "expected a BudgetConfig, got RunConfig"]),
])
def test_a_config_changed_in_python_is_checked_as_a_file_is(change, fragments):
    """``Config.replace`` and the section classes take any value: a sweep with stop < start or no repeats did
    nothing and said nothing (and wrote its run directory), a negative seed failed deep in NumPy."""
    from tfnas.config import validate_config

    cfg = load_config("cfg/rand.cfg")
    validate_config(cfg)  # as loaded: valid
    with pytest.raises(ConfigError) as err:
        validate_config(change(cfg))
    message = str(err.value)
    assert message.startswith("cfg/rand.cfg (as given in Python): ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("overrides", ["budget.stop=60", {"budget.stop": "60"}, ["budget.stop=60", 3], 5])
def test_overrides_that_are_not_a_list_of_strings_are_named(overrides):
    with pytest.raises(ConfigError, match="overrides: expected a list of 'section.key=value' strings"):
        load_config(None, overrides)


def test_overrides_may_be_none_or_any_iterable():
    assert load_config(None, None) == load_config(None)
    assert load_config(None, (item for item in ["budget.stop=60"])).budget.stop == 60


def test_numpy_numbers_in_a_config_changed_in_python_are_numbers():
    """A NumPy integer (a seed from ``np.arange``) was refused while a NumPy float was taken."""
    import numpy as np

    from tfnas.config import validate_config

    cfg = load_config("cfg/rand.cfg")
    validate_config(cfg.replace(run=dataclasses.replace(cfg.run, seed=np.int64(3))))
    validate_config(cfg.replace(predictor=dataclasses.replace(cfg.predictor, lr=np.float64(0.01))))


def test_an_empty_config_file_name_is_named_as_such():
    for name in ("", "  "):  # it said "error: : config file not found"
        with pytest.raises(ConfigError, match=r"^the config file name is empty \('\s*'\); expected a \.cfg file"):
            load_config(name)


def test_a_leading_tilde_in_a_path_is_the_home_folder(tmp_path, monkeypatch):
    """`out_dir = ~/runs/x` (in a file, where no shell expands it) made a folder named `~` in the current one."""
    monkeypatch.setenv("HOME", str(tmp_path))
    home = str(tmp_path)
    sets = ["run.out_dir=~/runs/x", "dataset.data_dir=~/data/", "dataset.manual_dir=~", "export.format=tflite",
            "export.quantize=int8", "export.calibration=~/calib/"]
    cfg = load_config(write(tmp_path, "[run]\nout_dir = ~/runs/x\n", "home.cfg"), sets[1:], check_names=False)
    assert cfg.out_dir == os.path.join(home, "runs", "x")
    assert (cfg.dataset.data_dir, cfg.dataset.manual_dir) == (os.path.join(home, "data"), home)
    assert cfg.export.calibration == os.path.join(home, "calib") + "/"  # (its separator says "a folder")
    assert load_config(None, sets, check_names=False).run.out_dir == os.path.join(home, "runs", "x")
    assert load_config(None, ["dataset.data_dir=data/~x"]).dataset.data_dir == "data/~x"  # only a leading one


def test_the_tools_path_arguments_expand_a_leading_tilde(tmp_path, monkeypatch):
    """`--out=~/x` (no shell expands a tilde after '='): compare.py wrote ./~/x and printed ~/x."""
    from tfnas import cli

    monkeypatch.setenv("HOME", str(tmp_path))
    parsed = {}
    monkeypatch.setattr(cli, "_setup_logging", lambda verbose: (_ for _ in ()).throw(SystemExit(0)))
    real = argparse.ArgumentParser.parse_args

    def keep(self, *args, **kwargs):
        parsed["args"] = real(self, *args, **kwargs)
        return parsed["args"]

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", keep)
    with pytest.raises(SystemExit):
        cli.compare_main(["~/a", "--out=~/cmp"])
    assert parsed["args"].run_dirs == [str(tmp_path / "a")] and parsed["args"].out == str(tmp_path / "cmp")


def test_a_method_gets_its_papers_value_of_a_shared_key_the_config_leaves_unset(tmp_path):
    """A RelativeNAS config that set only its method searched with [search] population = 256 (the paper: 20)
    and batches of 64 (256): the shared sections' defaults, the values of no method's paper."""
    from tfnas.config.method_defaults import METHOD_DEFAULTS

    path = tmp_path / "minimal.cfg"
    path.write_text("[method]\nname = relativenas\n[search]\nlr = 0.05\n")
    cfg = load_config(str(path))
    assert (cfg.search.population, cfg.search.batch_size, cfg.search.lr) == (20, 256, 0.05)  # the file's lr wins
    assert load_config(str(path), ["search.population=6"]).search.population == 6  # and --set
    again = tmp_path / "again.cfg"
    again.write_text(config_to_ini(cfg))  # a run's config.cfg reads back as it was resolved
    assert load_config(str(again)) == dataclasses.replace(cfg, source=str(again))
    path.write_text("[method]\nname = rand\n")
    assert load_config(str(path)).search.population == Config().search.population  # other methods: the section's
    for method, sections in METHOD_DEFAULTS.items():
        assert method in registry.METHODS.names(), method
        path.write_text(f"[method]\nname = {method}\n")
        cfg = load_config(str(path))
        for section, values in sections.items():
            for key, value in values.items():  # each differs from the section's default, or it needs no entry
                assert getattr(getattr(cfg, section), key) == value != getattr(getattr(Config(), section), key)
