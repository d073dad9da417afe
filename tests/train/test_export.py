"""Tests of tfnas.train.export and tools/export.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.spaces.nb201 import Nb201Space
from tfnas.train.export import export_arch, export_keras, export_saved_model, load_weights

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
OTHER = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
SHAPE = (8, 8, 3)


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    return Nb201Space(channels=4, cells_per_stage=1)


def _model(space: Nb201Space, text: str = ARCH, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = space.build(space.decode(text), 5, input_shape=SHAPE)
    # Non-trivial BN statistics so that inference mode is actually exercised.
    for layer in model.layers:
        for w in layer.non_trainable_weights:
            if "moving_mean" in w.path:
                w.assign(np.full(w.shape, 0.1, np.float32))
            elif "moving_variance" in w.path:
                w.assign(np.full(w.shape, 2.0, np.float32))
    return model


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n,) + SHAPE).astype(np.float32)


def _siblings(path) -> list:
    parent, base = os.path.split(str(path))
    return sorted(name for name in os.listdir(parent) if name.startswith(f".{base}"))


def test_saved_model_loads_in_fresh_process_without_tfnas(space, tmp_path):
    model = _model(space)
    target = tmp_path / "sm"
    assert export_saved_model(model, str(target)) == str(target)
    x = _images(3)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load(sys.argv[1])
        x = np.load(sys.argv[2])
        y = loaded.serve(tf.constant(x)).numpy()
        sig = loaded.signatures["serving_default"]
        y_sig = list(sig(images=tf.constant(x)).values())[0].numpy()
        y_one = loaded.serve(tf.constant(x[:1])).numpy()
        assert "tfnas" not in sys.modules, "tfnas was imported"
        np.save(sys.argv[3], np.stack([y, y_sig]))
        np.save(sys.argv[4], y_one)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(target)] + [str(tmp_path / f) for f in ("x.npy", "y.npy", "y1.npy")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = model(x, training=False).numpy()
    y, y_sig = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(y, expected, atol=1e-5)
    np.testing.assert_allclose(y_sig, expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "y1.npy"), expected[:1], atol=1e-5)
    assert _siblings(target) == []


def test_keras_file_reloads_equal(space, tmp_path):
    model = _model(space)
    target = tmp_path / "m.keras"
    export_keras(model, str(target))
    reloaded = keras.saving.load_model(str(target))
    x = _images(2)
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-6)
    for a, b in zip(reloaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=".keras"):
        export_keras(model, str(tmp_path / "m.h5"))


def test_refuses_to_overwrite_unless_asked(space, tmp_path):
    first, second = _model(space, ARCH, 0), _model(space, OTHER, 1)
    x = _images(2)
    target = tmp_path / "m.keras"
    export_keras(first, str(target))
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        export_keras(second, str(target))
    assert target.read_bytes() == before
    export_keras(second, str(target), overwrite=True)
    np.testing.assert_allclose(
        keras.saving.load_model(str(target))(x, training=False).numpy(), second(x, training=False).numpy(), atol=1e-6
    )

    sm = tmp_path / "sm"
    sm.mkdir()  # an existing empty folder is not "non-empty": it is replaced without overwrite
    export_saved_model(first, str(sm))
    assert (sm / "saved_model.pb").is_file()
    with pytest.raises(FileExistsError):
        export_saved_model(second, str(sm))
    loaded = tf.saved_model.load(str(sm))  # keep a reference: its functions need the variables
    np.testing.assert_allclose(loaded.serve(x).numpy(), first(x, training=False).numpy(), atol=1e-5)
    export_saved_model(second, str(sm), overwrite=True)
    loaded = tf.saved_model.load(str(sm))
    np.testing.assert_allclose(loaded.serve(x).numpy(), second(x, training=False).numpy(), atol=1e-5)
    assert _siblings(target) == [] and _siblings(sm) == []


def test_missing_parent_fails(space, tmp_path):
    with pytest.raises(FileNotFoundError, match="parent folder"):
        export_keras(_model(space), str(tmp_path / "missing" / "m.keras"))


def _archive_class() -> type:
    """The class of what ``keras.export.ExportArchive()`` builds (a backend subclass): patching its
    ``write_out`` reaches the export whatever TensorFlow's lazy API modules resolve to (patching
    ``tf.saved_model.save`` took effect only when an earlier test had loaded it another way)."""
    return type(keras.export.ExportArchive())


def test_crash_leaves_nothing_half_written(space, tmp_path, monkeypatch):
    model = _model(space)

    def broken_write_out(self, export_dir, *args, **kwargs):
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(_archive_class(), "write_out", broken_write_out)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, str(tmp_path / "sm"))
    assert os.listdir(tmp_path) == []

    def broken_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_keras(model, str(tmp_path / "m.keras"))
    assert os.listdir(tmp_path) == []


def test_load_weights_from_keras_checkpoint_and_mismatch(space, tmp_path):
    trained = _model(space, ARCH, 0)
    x = _images(2)
    keras_file = str(tmp_path / "t.keras")
    export_keras(trained, keras_file)
    fresh = _model(space, ARCH, 5)
    load_weights(fresh, keras_file)
    np.testing.assert_allclose(fresh(x, training=False).numpy(), trained(x, training=False).numpy(), atol=1e-6)

    prefix = tf.train.Checkpoint(model=trained).write(str(tmp_path / "ckpt" / "model"))
    fresh = _model(space, ARCH, 6)
    load_weights(fresh, prefix)
    np.testing.assert_allclose(fresh(x, training=False).numpy(), trained(x, training=False).numpy(), atol=1e-6)

    ckpt_dir = tmp_path / "trainer_ckpt"  # a folder with extra objects, as the Trainer writes it
    tf.train.Checkpoint(model=trained, epoch=tf.Variable(3, dtype=tf.int64)).save(str(ckpt_dir / "ckpt"))
    fresh = _model(space, ARCH, 7)
    load_weights(fresh, str(ckpt_dir))
    np.testing.assert_allclose(fresh(x, training=False).numpy(), trained(x, training=False).numpy(), atol=1e-6)

    with pytest.raises(ValueError, match="does not match"):
        load_weights(_model(space, OTHER, 0), keras_file)
    other_classes = space.build(space.decode(ARCH), 7, input_shape=SHAPE)  # only the classifier differs
    with pytest.raises(ValueError, match=r"weight array \d+ is \(\d+, 5\) in the file but \(\d+, 7\) in the network"):
        load_weights(other_classes, keras_file)
    with pytest.raises(FileNotFoundError):
        load_weights(fresh, str(tmp_path / "nothing"))
    (tmp_path / "folder.keras").mkdir()
    with pytest.raises(IsADirectoryError, match="folder.keras is a folder; expected a .keras or .weights.h5 file"):
        load_weights(fresh, str(tmp_path / "folder.keras"))


def test_export_arch_reports_and_validates(space, tmp_path):
    result = export_arch(space, ARCH, 5, str(tmp_path / "a.keras"), fmt="keras", input_size=8)
    assert result.format == "keras" and result.arch == ARCH and result.input_shape == SHAPE
    assert result.num_params == space.num_params(space.decode(ARCH), num_classes=5)
    with pytest.raises(ValueError, match="unknown op"):
        export_arch(space, ARCH.replace("skip_connect", "skip"), 5, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="format"):
        export_arch(space, ARCH, 5, str(tmp_path / "c"), fmt="onnx")
    with pytest.raises(ValueError, match="end in '.keras'"):
        export_arch(space, ARCH, 5, str(tmp_path / "d"), fmt="keras")
    assert sorted(os.listdir(tmp_path)) == ["a.keras"]


def test_an_export_without_weights_has_the_same_weights_each_time(space, tmp_path):
    """Untrained exports (for latency measurements, int8 calibration trials) drew new initial weights every time,
    so two exports of one cell computed different logits; the weights now follow a fixed seed, and the caller's
    `random` stream is left as it was."""
    import random

    random.seed(5)
    expected = random.random()
    random.seed(5)
    first = export_arch(space, ARCH, 5, str(tmp_path / "a.keras"), fmt="keras", input_size=8)
    assert random.random() == expected
    export_arch(space, ARCH, 5, str(tmp_path / "b.keras"), fmt="keras", input_size=8)
    a, b = (keras.saving.load_model(str(tmp_path / n)) for n in ("a.keras", "b.keras"))
    assert first.path and len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)


def _load_tool():
    spec = importlib.util.spec_from_file_location("tfnas_tool_export", os.path.join(REPO, "tools", "export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    import tfnas.train.export as export_module

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,99999999999] "
                                               "and type float on /job:localhost [Op:StatelessRandomUniformV2]")

    monkeypatch.setattr(export_module, "export_arch", exhausted)
    code = _load_tool().main(["--space", "nb201", "--arch", ARCH, "--num-classes", "100000",
                              "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == ("error: out of memory (OOM when allocating tensor with shape[64,99999999999] "
                                       "and type float): a setting asks for more memory than this machine has (batch "
                                       "size, image size, number of classes, network size); make it smaller\n")


_TERMINATED_EXPORT = """
import importlib.util, os, signal, sys
sys.path.insert(0, {repo!r})
import tfnas.train.export as export_module

def terminated(*args, **kwargs):
    import time
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:  # what TensorFlow's context managers may turn it into
        if {mode!r} == "replaced":
            raise RuntimeError("Exiting device scope without proper scope nesting") from None
        raise

export_module.export_arch = terminated
spec = importlib.util.spec_from_file_location("tool", os.path.join({repo!r}, "tools", "export.py"))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
print(tool.main(["--space", "nb201", "--arch", {arch!r}, "--num-classes", "10", "--out", {out!r}]))
"""


@pytest.mark.parametrize("mode", ["raised", "replaced"])
def test_tool_sigterm_is_one_line_and_exit_143(tmp_path, mode):
    """SIGTERM (kill, a scheduler's limit) ended the export on the spot, without a word; one that an error
    replaced on its way out was reported as that error (exit 1)."""
    script = _TERMINATED_EXPORT.format(repo=REPO, arch=ARCH, out=str(tmp_path / "out"), mode=mode)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "143"
    assert proc.stderr.strip().splitlines()[-1] == "terminated: nothing was written"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--input-size", "2147483648"), ("--input-size", "0"),
                                         ("--num-classes", "99999999999999999999"), ("--num-classes", "ten")])
def test_tool_sizes_out_of_range_are_refused_naming_their_flag(tmp_path, capsys, flag, value):
    """A huge --input-size overflowed inside the network's padding (a traceback), a huge --num-classes
    was refused without naming the flag."""
    argv = ["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", str(tmp_path / "out"), flag, value]
    with pytest.raises(SystemExit) as stop:
        _load_tool().main(argv)
    assert stop.value.code == 2 and f"argument {flag}: expected an integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"in \[1, 4096\]; got 4097"):
        export_arch(Nb201Space(), ARCH, 10, str(tmp_path / "out"), input_size=4097)
    with pytest.raises(ValueError, match=r"number of classes must be an integer in \[1, 100000\]; got 100001"):
        export_arch(Nb201Space(), ARCH, 100_001, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_tool_an_input_size_the_network_refuses_names_the_flag(tmp_path, capsys):
    """The network's own message named its ``image_shape`` argument, not the flag."""
    argv = ["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", str(tmp_path / "out"),
            "--input-size", "6"]
    assert _load_tool().main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --input-size 6: NAS-Bench-201 networks halve the resolution twice") and \
        err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_tool_an_empty_out_is_refused_naming_the_flag(capsys):
    code = _load_tool().main(["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", ""])
    assert code == 2 and capsys.readouterr().err == ("error: --out: expected the file or folder to write, got an "
                                                     "empty name\n")


def test_tool_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path, capsys, monkeypatch):
    tool = _load_tool()

    def interrupted(verbose):
        raise KeyboardInterrupt

    monkeypatch.setattr(tool, "import_tensorflow", interrupted)
    code = tool.main(["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", str(tmp_path / "out")])
    assert code == 130 and capsys.readouterr().err == "interrupted: nothing was written\n"


def test_tool_a_calibration_dataset_not_on_disk_is_exit_3_with_this_tools_remedies(tmp_path, capsys, monkeypatch):
    """The data layer's remedies name [dataset] keys, which tools/export.py does not have."""
    import tfnas.data
    from tfnas.data import DatasetNotFoundError

    def offline(name, **kwargs):
        missing = f"{name}: tfds dataset {name!r} is not prepared in /nowhere (tfds default)"
        raise DatasetNotFoundError(f"{missing}. To get it, run ... or set [dataset] data_dir to a folder that "
                                   f"already holds it.", reason=missing)

    monkeypatch.setattr(tfnas.data, "load_dataset", offline)
    out = tmp_path / "m.tflite"
    code = _load_tool().main(["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", str(out),
                              "--format", "tflite", "--quantize", "int8", "--calibration", "cifar10"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1, err
    assert err.startswith("error: --calibration: cifar10: tfds dataset 'cifar10' is not prepared in /nowhere")
    assert "TFDS_DATA_DIR" in err and "--calibration ROOT" in err and "[dataset]" not in err
    assert not out.exists()


def test_tool_bad_arch_exits_2_with_one_line_message(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "export.py"), "--space", "nb201",
         "--arch", "|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|",
         "--num-classes", "10", "--out", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "unknown op 'bogus'" in errors[0]
    assert not (tmp_path / "out").exists()


def test_tool_help_and_conflicting_options_answer_without_loading_tensorflow(tmp_path):
    """``--help`` and the checks of option combinations come before TensorFlow loads."""
    from tests.tool_imports import run_tool

    args = ["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", str(tmp_path / "m")]
    for argv, code, said in ((["--help"], 0, "--quantize"), (args + ["--quantize", "int8"], 2, "--format tflite only"),
                             (args + ["--format", "zip"], 2, "invalid choice: 'zip'")):
        proc, loaded = run_tool("export.py", *argv)
        assert proc.returncode == code and said in proc.stdout + proc.stderr, proc.stderr[-2000:]
        assert not loaded & {"tensorflow", "keras"}, loaded
    assert not (tmp_path / "m").exists()
    proc, loaded = run_tool("export.py", *args[:-1], str(tmp_path / "m.keras"), "--format", "keras")
    assert proc.returncode == 0 and "tensorflow" in loaded  # the wrapper does see an export's import


def test_tool_bad_space_and_success(tmp_path, capsys):
    tool = _load_tool()
    assert tool.main(["--space", "nope", "--arch", ARCH, "--num-classes", "10", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown space 'nope'" in err and "nb201" in err
    out = str(tmp_path / "m.keras")
    argv = ["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", out]
    argv += ["--format", "keras", "--input-size", "16"]
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    params = Nb201Space().num_params(Nb201Space().decode(ARCH))
    assert f"{params:,} trainable params" in printed and out in printed
    assert keras.saving.load_model(out).input_shape == (None, 16, 16, 3)
    assert tool.main(argv) == 2  # exists, no --overwrite: choose another --out or --overwrite
    assert "already exists" in capsys.readouterr().err
    missing = str(tmp_path / "no_such.weights.h5")
    assert tool.main(argv[:-4] + ["--out", str(tmp_path / "w.keras"), "--format", "keras", "--weights", missing]) == 4
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and missing in err, err


def test_a_full_disk_during_an_export_names_the_target_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from tfnas.train.targets import ExportWriteError
    from tfnas.train.tflite import export_tflite

    space = Nb201Space(channels=4, cells_per_stage=1)
    model = space.build(space.decode(ARCH), 10, input_shape=(8, 8, 3))

    def full(self, export_dir, *args, **kwargs):
        message = "{{function_node __wrapped__SaveV2_dtypes_8}} variables_temp/part-0; No space left on device"
        raise tf.errors.ResourceExhaustedError(None, None, message + " [Op:SaveV2]")

    monkeypatch.setattr(_archive_class(), "write_out", full)
    target = tmp_path / "saved_model"
    with pytest.raises(ExportWriteError, match=rf"^cannot write {target} \(No space left on device\)$"):
        export_saved_model(model, str(target))
    monkeypatch.undo()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    target = tmp_path / "m.tflite"
    with pytest.raises(OSError, match=rf"^cannot write {target} \(No space left on device\)$"):
        export_tflite(model, str(target), input_shape=(8, 8, 3))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_an_unwritable_target_is_refused_before_the_build(tmp_path, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("the network was built before the target was checked")

    space = Nb201Space(channels=4, cells_per_stage=1)
    monkeypatch.setattr(space, "build", no_build)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        export_arch(space, ARCH, 10, str(afile / "sub" / "m.tflite"), fmt="tflite")
    with pytest.raises(FileNotFoundError, match="does not exist; create"):
        export_arch(space, ARCH, 10, str(tmp_path / "missing" / "m.keras"), fmt="keras")
    real_open = open

    def refuse_probe(path, mode="r", *args, **kwargs):
        if "x" in mode:
            raise PermissionError(13, "Permission denied")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse_probe)
    with pytest.raises(PermissionError, match=r"cannot write into .* \(Permission denied\)"):
        export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # no probe file left behind


@pytest.mark.parametrize("fmt", ["tflite", "keras"])
def test_a_one_file_export_never_replaces_a_folder(tmp_path, fmt):
    space = Nb201Space(channels=4, cells_per_stage=1)
    folder = tmp_path / f"m.{fmt}"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "keep.txt").write_text("mine")
    with pytest.raises(IsADirectoryError, match=rf"m\.{fmt} is a folder; a \.{fmt} export is one file"):
        export_arch(space, ARCH, 10, str(folder), fmt=fmt, overwrite=True)
    assert (folder / "deep" / "keep.txt").read_text() == "mine"


def test_weights_that_cannot_be_read_are_named(tmp_path):
    space = Nb201Space(channels=4, cells_per_stage=1)
    device = tmp_path / "null.keras"
    device.symlink_to(os.devnull)  # exists, but is no file to read weights from
    with pytest.raises(ValueError, match=r"null\.keras is not a regular file"):
        export_arch(space, ARCH, 10, str(tmp_path / "m0.keras"), fmt="keras", weights=str(device))
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"junk\.keras: not a readable \.keras model file \(not a zip archive\)"):
        export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=str(junk))
    h5 = tmp_path / "junk.weights.h5"
    h5.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"junk\.weights\.h5: not an HDF5 file"):
        export_arch(space, ARCH, 10, str(tmp_path / "m2.keras"), fmt="keras", weights=str(h5))
    prefix = tmp_path / "ckpt-1"
    (tmp_path / "ckpt-1.index").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"ckpt-1 cannot be read"):
        export_arch(space, ARCH, 10, str(tmp_path / "m3.keras"), fmt="keras", weights=str(prefix))


def test_a_checkpoint_of_a_narrower_network_is_one_line_without_tensorflows_warnings(tmp_path, caplog):
    narrow = Nb201Space(channels=4, cells_per_stage=1)
    model = narrow.build(narrow.decode(ARCH), 10, input_shape=SHAPE)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)  # a Trainer's checkpoint: model, optimizer, epoch
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=tf.Variable(1)).write(
        str(tmp_path / "narrow" / "ckpt-1"))
    wide = Nb201Space(channels=8, cells_per_stage=1)
    import gc

    with caplog.at_level("WARNING"):
        with pytest.raises(ValueError, match=r"the checkpoint .*ckpt-1 cannot be read \(.*incompatible") as info:
            export_arch(wide, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix, input_size=8)
        del info  # the error and what it refers to are gone, as after the command line printed it
        gc.collect()
    assert not [r for r in caplog.records if r.name == "tensorflow"], caplog.records[:3]


def test_a_checkpoint_of_another_cell_of_the_same_width_is_refused(tmp_path):
    """Its common part restores into every variable of the requested network; what is left over
    (the checkpoint's extra convolution) says it is of another architecture."""
    space = Nb201Space(channels=4, cells_per_stage=1)
    trained = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    requested = trained.replace("nor_conv_3x3~2", "none~2")
    model = space.build(space.decode(trained), 10, input_shape=SHAPE)
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt" / "ckpt-1"))
    with pytest.raises(ValueError, match=r"ckpt-1 does not fit the requested architecture: it holds \d+ weight arr"):
        export_arch(space, requested, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix, input_size=8)
    assert not (tmp_path / "m.keras").exists()
    result = export_arch(space, trained, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix, input_size=8)
    assert result.num_params == space.num_params(space.decode(trained), 10)


def _run_dir(tmp_path, space, arch, space_name="nb201"):
    """A run directory as tools/train.py leaves it: config.cfg, checkpoints/ckpt-1, model.keras."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.cfg").write_text(f"[space]\nname = {space_name}\narch = {arch}\nchannels = 4\n")
    model = space.build(space.decode(arch), 10, input_shape=SHAPE)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run / "checkpoints"), max_to_keep=1)
    prefix = manager.save(checkpoint_number=1)
    model.save(str(run / "model.keras"))
    return run, prefix


def test_weights_of_a_run_directory_must_be_exported_as_the_architecture_it_trained(tmp_path):
    space = Nb201Space(channels=4, cells_per_stage=1)
    pooled = ARCH.replace("none~1", "avg_pool_3x3~1")  # no weight changes: the weights alone fit both
    run, prefix = _run_dir(tmp_path, space, ARCH)
    (tmp_path / "linked").symlink_to(run / "checkpoints")  # links are followed to the run directory
    linked = [str(tmp_path / "linked"), str(tmp_path / "linked" / "ckpt-1")]
    for weights in (prefix, str(run / "checkpoints"), str(run / "model.keras"), *linked):
        with pytest.raises(ValueError, match=r"were trained for another architecture \(.*config\.cfg: \[space\] arch"):
            export_arch(space, pooled, 10, str(tmp_path / "m.keras"), fmt="keras", weights=weights, input_size=8,
                        overwrite=True)
        result = export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=weights, input_size=8,
                             overwrite=True)
        assert result.arch == ARCH
    load_weights(space.build(space.decode(pooled), 10, input_shape=SHAPE), prefix)  # as documented: weights fit


@pytest.mark.parametrize("config", ["[space]\nname = nb201\n", "[space]\nname = nb201\narch = not-an-arch\n",
                                    "\x00\xff binary", "[space\n"])
def test_a_run_config_without_a_readable_architecture_leaves_the_weights_to_decide(tmp_path, config):
    space = Nb201Space(channels=4, cells_per_stage=1)
    run, prefix = _run_dir(tmp_path, space, ARCH)
    (run / "config.cfg").write_bytes(config.encode("latin-1"))
    result = export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix, input_size=8)
    assert result.arch == ARCH


def test_a_space_registered_as_a_subclass_of_another_fits_its_own_run(tmp_path):
    from tfnas.registry import SPACES

    class WideNb201(Nb201Space):  # inherits name = "nb201"
        pass

    SPACES.register("nb201_test_subclass")(WideNb201)
    try:
        space = WideNb201(channels=4, cells_per_stage=1)
        run, prefix = _run_dir(tmp_path, space, ARCH, space_name="nb201_test_subclass")
        result = export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix, input_size=8)
        assert result.arch == ARCH
    finally:
        SPACES._entries.pop("nb201_test_subclass")


def test_weights_trained_in_another_space_are_named_as_such(tmp_path):
    space = Nb201Space(channels=4, cells_per_stage=1)
    run, prefix = _run_dir(tmp_path, space, ARCH, space_name="tinynano")
    with pytest.raises(ValueError, match=r"were trained in space 'tinynano' \(.*config\.cfg\), not in 'nb201'"):
        export_arch(space, ARCH, 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix, input_size=8)


def test_a_trainers_checkpoint_with_drop_path_and_optimizer_loads_into_the_served_network(tmp_path):
    """DropPath rates, optimizer slots and the epoch are in the checkpoint but not weights of the network."""
    from tfnas.spaces.darts import DartsSpace

    space = DartsSpace(channels=8, layers=5)
    arch = space.decode("relativenas")
    model = space.build(arch, 10, (32, 32, 3), drop_path_rate=0.0)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=tf.Variable(1)).write(
        str(tmp_path / "ckpt" / "ckpt-1"))
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    result = export_arch(space, "relativenas", 10, str(tmp_path / "m.keras"), fmt="keras", weights=prefix)
    np.testing.assert_allclose(keras.saving.load_model(result.path)(x, training=False),
                               model(x, training=False), atol=1e-5)
    served = space.build(arch, 10, (32, 32, 3), auxiliary=False)  # the auxiliary head's weights stay unused
    load_weights(served, prefix)
    np.testing.assert_allclose(served(x, training=False), model(x, training=False), atol=1e-5)
    assert not tf.io.gfile.glob("ram://tfnas-probe-*")  # the in-memory probe is gone


def test_tool_a_checkpoint_that_does_not_fit_is_one_line_without_tensorflows_warnings_at_exit(tmp_path):
    """A restore that failed halfway leaves values pending on the network; when it is collected at
    exit TensorFlow used to print hundreds of warnings about them after the error line."""
    space = Nb201Space()  # the tool's default width
    trained = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    model = space.build(space.decode(trained), 4, input_shape=(16, 16, 3))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=tf.Variable(1)).write(str(tmp_path / "ck" / "ckpt-1"))
    other = trained.replace("skip_connect~0", "avg_pool_3x3~0")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "export.py"), "--space", "nb201", "--arch", other,
         "--num-classes", "4", "--input-size", "16", "--weights", str(tmp_path / "ck" / "ckpt-1"),
         "--out", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if not line.startswith(("I0000", "W0000"))]
    assert len(lines) == 1 and lines[0].startswith("error: the checkpoint "), lines[:5]
    assert not (tmp_path / "out").exists()


def test_overwrite_replaces_only_an_earlier_export_of_the_same_kind(tmp_path, monkeypatch):
    from tfnas.train.targets import check_target

    mine = tmp_path / "project"
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "main.py").write_text("code")
    (mine / "README").write_text("notes")
    space = Nb201Space(channels=4, cells_per_stage=1)
    with pytest.raises(FileExistsError, match="is a folder but not an earlier SavedModel .it holds .README."):
        export_arch(space, ARCH, 10, str(mine), fmt="saved_model", overwrite=True)
    monkeypatch.chdir(mine / "src")  # the current folder, and a folder above it
    for target in (".", "..", str(mine)):
        with pytest.raises(IsADirectoryError, match="holds the current folder"):
            check_target(target, overwrite=True)
    assert (mine / "src" / "main.py").read_text() == "code" and (mine / "README").read_text() == "notes"

    afile = tmp_path / "empty"
    afile.write_bytes(b"")  # a file where a SavedModel folder goes, even an empty one
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="is a file; a SavedModel is a folder"):
            check_target(str(afile), overwrite=overwrite)
    earlier = tmp_path / "sm"
    (earlier / "variables").mkdir(parents=True)
    (earlier / "saved_model.pb").write_bytes(b"x")
    assert check_target(str(earlier), overwrite=True) == str(earlier)
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_target(str(earlier), overwrite=False)
    (earlier / "best.weights.h5").write_bytes(b"mine")  # a SavedModel folder the user put a file into
    with pytest.raises(FileExistsError, match="it holds 'best.weights.h5', which is not part of a SavedModel"):
        check_target(str(earlier), overwrite=True)
    (earlier / "best.weights.h5").unlink()
    (earlier / "variables" / "best.weights.h5").write_bytes(b"mine")
    with pytest.raises(ValueError, match="lie inside the export target"):  # they would be deleted with it
        export_arch(space, ARCH, 10, str(earlier), fmt="saved_model", overwrite=True,
                    weights=str(earlier / "variables" / "best.weights.h5"))
    keras_file = tmp_path / "m.keras"
    keras_file.write_bytes(b"zip")  # a SavedModel never replaces a one-file export that happens to be there
    with pytest.raises(FileExistsError, match="is a file; a SavedModel is a folder"):
        check_target(str(keras_file), overwrite=True, one_file=False)


@pytest.mark.parametrize("model", [None, "model.keras", object()])
def test_exporting_what_is_no_keras_model_is_named(model, tmp_path):
    """``export_saved_model(None, path)`` said it could not infer the image input shape and asked for one."""
    from tfnas.train.export import export_keras, export_saved_model
    from tfnas.train.tflite import export_tflite

    for export, name in ((export_saved_model, "sm"), (export_keras, "m.keras"), (export_tflite, "m.tflite")):
        with pytest.raises(TypeError, match="expected a keras.Model to serve or export"):
            export(model, str(tmp_path / name))
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name", ["m.tflite", "m.keras", "m.keras/"])
def test_a_saved_model_folder_named_like_a_file_is_refused(tmp_path, capsys, name):
    """`export.py --out m.tflite` without --format wrote a SavedModel folder named m.tflite, exit 0."""
    out = str(tmp_path / name)
    code = _load_tool().main(["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and "error: " in err and "is named like a ." in err and "format" in err, err
    assert not (tmp_path / name.rstrip("/")).exists()


def test_the_tool_builds_the_space_as_the_run_that_trained_the_weights(tmp_path, capsys):
    """`export.py --weights RUN/model.keras` of a network trained at another width than the space's default was
    refused as "another architecture": the tool always built the default space."""
    space = Nb201Space(channels=4, cells_per_stage=1)
    run, _ = _run_dir(tmp_path, space, ARCH)
    (run / "config.cfg").write_text(f"[space]\nname = nb201\narch = {ARCH}\nchannels = 4\ncells_per_stage = 1\n")
    out = tmp_path / "m.keras"
    argv = ["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--input-size", str(SHAPE[0]), "--format",
            "keras", "--out", str(out), "--weights", str(run / "model.keras")]
    assert _load_tool().main(argv) == 0, capsys.readouterr().err
    assert f"{space.num_params(space.decode(ARCH), 10):,}" in capsys.readouterr().out


def test_the_tool_leaves_the_auxiliary_head_out_below_32_pixels(tmp_path, capsys):
    """`export.py --space darts --input-size 28` was refused: the auxiliary head, never exported, needs 32x32."""
    out = tmp_path / "d.keras"
    argv = ["--space", "darts", "--arch", "relativenas", "--num-classes", "10", "--input-size", "16", "--format",
            "keras", "--out", str(out)]
    assert _load_tool().main(argv) == 0, capsys.readouterr().err
    assert out.is_file()
