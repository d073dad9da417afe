"""Tests of tools/build_nb201_table.py: the shipped table is rebuilt from CSV files, and bad input
files are one error line naming the file (and row), with nothing written."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "tfnas", "benchmarks", "data", "nb201.npz")


def _tool():
    spec = importlib.util.spec_from_file_location("build_nb201_table", os.path.join(ROOT, "tools", "build_nb201_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The three CSV files, written from the shipped table (float32 values written exactly)."""
    table = np.load(SHIPPED)
    ops = [str(name) for name in table["op_names"]]
    cells = ["|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*(ops[i] for i in row)) for row in table["ops"]]
    arch = np.arange(len(cells))

    def exact(values):
        return [repr(float(v)) for v in values]  # a float32 as float64 text reads back to the same float32

    folder = tmp_path_factory.mktemp("csv")
    acc = {"ArchitectureString": cells}
    for j, name in enumerate(("CIFAR10", "CIFAR100", "ImageNet")):
        acc[f"{name}TestAccuracy200Epochs"] = exact(table["acc200_test"][:, j])
    pd.DataFrame(acc).to_csv(folder / "nats_bench_200epoch_test.csv", index=False)
    low = {"arch": arch, "cellstr": cells}
    for j, name in enumerate(("cifar10", "cifar100", "imagenet")):
        low[f"{name}-test"] = exact(table["acc12_test"][:, j])
        low[f"{name}-val"] = exact(table["acc12_val"][:, j])
    pd.DataFrame(low).to_csv(folder / "nb201_12epoch.csv", index=False)
    lat = {"arch": arch}
    for j, device in enumerate(table["latency_devices"]):
        lat[f"{device}_ms"] = exact(table["latency_ms"][:, j])
    pd.DataFrame(lat).to_csv(folder / "nb201_latency_ms.csv", index=False)
    return folder


def test_the_shipped_table_is_rebuilt_from_its_csv_files(sources, tmp_path):
    out = tmp_path / "nb201.npz"
    assert _tool().main(["--src", str(sources), "--out", str(out)]) == 0
    built, shipped = np.load(out), np.load(SHIPPED)
    assert sorted(built.files) == sorted(shipped.files)
    for name in shipped.files:
        np.testing.assert_array_equal(built[name], shipped[name], err_msg=name)


def _damaged(sources, tmp_path, name, change):
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    for other in os.listdir(sources):
        (folder / other).write_bytes((sources / other).read_bytes())
    if isinstance(change, bytes):
        (folder / name).write_bytes(change)
    else:
        frame = pd.read_csv(folder / name)
        change(frame)
        frame.to_csv(folder / name, index=False)
    return folder


def _set(column, row, value):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return change


@pytest.mark.parametrize("name, change, said", [
    ("nb201_latency_ms.csv", _set("pixel3_ms", 7, float("nan")), "row 9 column pixel3_ms is nan; expected a number"),
    ("nats_bench_200epoch_test.csv", _set("CIFAR10TestAccuracy200Epochs", 0, -500.0),
     "row 2 column CIFAR10TestAccuracy200Epochs is -500.0; expected a number in [0.0, 100.0]"),
    ("nb201_12epoch.csv", _set("cifar10-test", 3, "n/a%"), "columns cifar10-test, cifar100-test, imagenet-test must"),
    ("nb201_12epoch.csv", lambda frame: frame.drop(columns=["cifar100-val"], inplace=True),
     "missing column(s) cifar100-val"),
    ("nats_bench_200epoch_test.csv", _set("ArchitectureString", 4, "|conv~0|+|x~0|y~1|+|a~0|b~1|c~2|"),
     "row 6: '|conv~0|+|x~0|y~1|+|a~0|b~1|c~2|': unknown op 'conv'"),
    ("nats_bench_200epoch_test.csv", _set("ArchitectureString", 4, "|none~x|"), "row 6: '|none~x|': not a cell"),
    ("nb201_latency_ms.csv", lambda frame: setattr(frame, "columns", ["_ms" if c == "pixel3_ms" else c
                                                                       for c in frame.columns]),
     "expected latency columns named <device>_ms"),  # (a device without a name was stored)
    ("nb201_latency_ms.csv", b"", "not a readable CSV file"),
    ("nb201_latency_ms.csv", b"arch,pixel3_ms\n\xff\xfe\n", "not a readable CSV file"),
])
def test_a_bad_input_file_is_one_line_naming_it(sources, tmp_path, capsys, name, change, said):
    folder = _damaged(sources, tmp_path, name, change)
    out = tmp_path / "out" / "nb201.npz"
    out.parent.mkdir()
    assert _tool().main(["--src", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {folder / name}") and said in err, err
    assert os.listdir(out.parent) == []


def test_an_out_that_is_a_folder_or_cannot_be_written_leaves_nothing(sources, tmp_path, capsys):
    tool = _tool()
    assert tool.main(["--src", str(sources), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "t.npz"
    assert tool.main(["--src", str(sources), "--out", str(missing)]) == 4
    assert capsys.readouterr().err == f"error: --out {missing}: its folder {missing.parent} does not exist\n"
    assert tool.main(["--src", str(sources), "--out", ""]) == 2  # (it named the temporary file ".tmp")
    assert capsys.readouterr().err == "error: --out: expected the .npz file to write, got an empty name\n"
    assert tool.main(["--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "t.npz")]) == 4
    assert "nats_bench_200epoch_test.csv" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_write_that_fails_leaves_no_temporary_file(sources, tmp_path, capsys, monkeypatch):
    tool = _tool()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", dst)

    monkeypatch.setattr(tool.os, "replace", full_disk)
    out = tmp_path / "nb201.npz"
    assert tool.main(["--src", str(sources), "--out", str(out)]) == 4
    assert capsys.readouterr().err == f"error: --out {out}: No space left on device\n"  # (not its .tmp file)
    assert os.listdir(tmp_path) == []


def test_help_names_the_files_and_columns_it_reads(capsys):
    """`--help` named neither the three CSV files --src must hold nor what --out is."""
    with pytest.raises(SystemExit):
        _tool().main(["--help"])
    text = capsys.readouterr().out
    for name in ("nats_bench_200epoch_test.csv", "nb201_12epoch.csv", "nb201_latency_ms.csv", "ArchitectureString",
                 "cifar100-val", "<device>_ms", "--out FILE"):
        assert name in text, name


def test_ctrl_c_is_one_line_and_leaves_nothing(sources, tmp_path, capsys, monkeypatch):
    """Ctrl-C printed a traceback out of the table's checks."""
    tool = _tool()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tool, "parse_arch", interrupted)
    assert tool.main(["--src", str(sources), "--out", str(tmp_path / "t.npz")]) == 130
    assert capsys.readouterr().err == "interrupted: nothing was written\n"
    assert os.listdir(tmp_path) == []
