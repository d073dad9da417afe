"""``tools/export.py --format tflite``: success with and without calibration data, and the bad-input errors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfnas.spaces.nb201 import Nb201Space
from tfnas.train.litert import load_interpreter, run_tflite

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
BASE = ["--space", "nb201", "--arch", ARCH, "--num-classes", "10", "--input-size", "8"]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("tfnas_tool_export_tflite", os.path.join(REPO, "tools", "export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error_lines(text: str) -> list:
    return [line for line in text.splitlines() if "error:" in line]


def _folder(root):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        folder = root / "train" / cls
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"{i}.png").write_bytes(tf.io.encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).numpy())
    (root / "val").mkdir()
    return root


@pytest.mark.slow  # ~2 min on 2 cores
def test_float_and_int8_exports(tool, tmp_path, capsys):
    out = tmp_path / "nb201.tflite"
    assert tool.main(BASE + ["--out", str(out), "--format", "tflite"]) == 0
    printed = capsys.readouterr()
    params = Nb201Space().num_params(Nb201Space().decode(ARCH))
    assert f"wrote tflite (none) {out}" in printed.out and f"{params:,} trainable params" in printed.out
    assert "warning" not in printed.err
    assert load_interpreter(str(out)).get_input_details()[0]["dtype"] == np.float32

    assert tool.main(BASE + ["--out", str(out), "--format", "tflite", "--quantize", "int8"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err

    root = _folder(tmp_path / "images")
    argv = BASE + ["--out", str(out), "--format", "tflite", "--quantize", "int8", "--overwrite"]
    assert tool.main(argv + ["--calibration", str(root)]) == 0
    printed = capsys.readouterr()
    assert "wrote tflite (int8)" in printed.out and f"int8 calibration: image folder {root}" in printed.out
    assert "6 images" in printed.out and "warning" not in printed.err
    assert load_interpreter(str(out)).get_input_details()[0]["dtype"] == np.int8
    assert run_tflite(str(out), np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 10)

    assert tool.main(argv) == 0  # no calibration data: synthetic images, one warning line
    printed = capsys.readouterr()
    warned = [line for line in printed.err.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "SYNTHETIC" in warned[0] and "accuracy will suffer" in warned[0]
    assert "int8 calibration: SYNTHETIC" in printed.out
    assert sorted(os.listdir(tmp_path)) == ["images", "nb201.tflite"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "keras", "--quantize", "int8"], "--quantize applies to --format tflite only"),
        (["--format", "tflite", "--calibration", "cifar10"], "--calibration is used by --quantize int8 only"),
        (["--format", "tflite", "--quantize", "int8", "--calibration", "no/such/folder"],
         "calibration source 'no/such/folder' is neither a registered dataset"),
        (["--format", "tflite", "--quantize", "int8", "--calibration", "cfg"],  # a folder without train/
         "calibration folder cfg has no train/ folder"),
        (["--format", "tflite", "--out-suffix"], "must end in '.tflite'"),
    ],
)
def test_bad_inputs_exit_2_with_one_error_line(tool, tmp_path, capsys, extra, message):
    out = tmp_path / ("m" if "--out-suffix" in extra else "m.tflite")
    extra = [e for e in extra if e != "--out-suffix"]
    assert tool.main(BASE + ["--out", str(out)] + extra) == 2
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and message in errors[0] and errors[0].startswith("error: "), errors
    assert os.listdir(tmp_path) == []


def test_unknown_quantization_exits_2_in_a_fresh_process(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "export.py")] + BASE
        + ["--out", str(tmp_path / "m.tflite"), "--format", "tflite", "--quantize", "int4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and "invalid choice: 'int4'" in errors[0] and "float16" in errors[0]
    assert os.listdir(tmp_path) == []


def test_a_damaged_calibration_image_is_named_in_one_line(tool, tmp_path, capsys):
    images = _folder(tmp_path / "images")
    damaged = images / "train" / "b" / "1.png"
    damaged.write_bytes(damaged.read_bytes()[:40])  # a valid PNG signature, the body cut off
    out = tmp_path / "m.tflite"
    argv = BASE + ["--out", str(out), "--format", "tflite", "--quantize", "int8", "--calibration", str(images)]
    assert tool.main(argv) == 2
    errors = _error_lines(capsys.readouterr().err)
    assert errors == [f"error: image_folder: damaged image file (delete or replace it): {damaged}"], errors
    assert not out.exists()
