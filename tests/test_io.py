import json
import os
import stat

import pytest

from tfnas.io import (append_jsonl, atomic_write_bytes, atomic_write_figure, atomic_write_text, iter_jsonl,
                      read_jsonl, write_jsonl)


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def small_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    fig.subplots().plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(str(tmp_path / "a.txt"), "x\n")
    atomic_write_bytes(str(tmp_path / "b.bin"), b"\0")
    atomic_write_figure(small_figure(), str(tmp_path / "c.png"))
    write_jsonl(str(tmp_path / "d.jsonl"), [{"a": 1}])
    append_jsonl(str(tmp_path / "e.jsonl"), {"a": 1})
    for name in ("a.txt", "b.bin", "c.png", "d.jsonl", "e.jsonl"):
        assert mode(str(tmp_path / name)) == expected, name


def test_a_replaced_file_gets_the_umask_mode_too(tmp_path, umask):
    umask(0o022)
    path = str(tmp_path / "a.txt")
    atomic_write_text(path, "old")
    os.chmod(path, 0o600)
    atomic_write_text(path, "new")
    assert open(path).read() == "new" and mode(path) == 0o644


def test_text_bytes_round_trip_and_folders_are_made(tmp_path):
    path = str(tmp_path / "deep" / "er" / "t.txt")
    atomic_write_text(path, "ä\r\nb")
    assert open(path, "rb").read() == "ä\r\nb".encode("utf-8")
    atomic_write_bytes(path, b"\x00\x01")
    assert open(path, "rb").read() == b"\x00\x01"
    assert os.listdir(os.path.dirname(path)) == ["t.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "fig.png")
    atomic_write_text(path, "old")

    class Broken:
        def savefig(self, fh, **kwargs):
            fh.write(b"half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write_figure(Broken(), path)
    assert open(path).read() == "old"
    assert os.listdir(str(tmp_path)) == ["fig.png"]


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    import errno

    path = str(tmp_path / "fig.png")

    def disk_full(fd):  # the data is buffered; syncing it to the disk fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match=r"^\[Errno 28\] cannot write .*fig\.png \(No space left on device\)") as info:
        atomic_write_figure(small_figure(), path)
    assert info.value.filename == path and info.value.errno == errno.ENOSPC
    assert os.listdir(str(tmp_path)) == []


def test_figure_format_follows_the_extension_unless_given(tmp_path):
    png, svg, forced = (str(tmp_path / n) for n in ("f.png", "f.svg", "f.dat"))
    fig = small_figure()
    atomic_write_figure(fig, png, dpi=50)
    atomic_write_figure(fig, svg)
    atomic_write_figure(fig, forced, format="png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in open(svg, "rb").read()
    assert open(forced, "rb").read(4) == b"\x89PNG"
    assert sorted(os.listdir(str(tmp_path))) == ["f.dat", "f.png", "f.svg"]


def test_jsonl_write_append_read(tmp_path):
    path = str(tmp_path / "r.jsonl")
    write_jsonl(path, [{"a": 1}, {"b": None}])
    append_jsonl(path, [1, 2])
    assert read_jsonl(path) == [{"a": 1}, {"b": None}, [1, 2]]
    with open(path, "a") as fh:  # a file ending without a newline, and a blank line
        fh.write("\n" + json.dumps("x"))
    append_jsonl(path, 3)
    assert [n for n, _ in iter_jsonl(path)] == [1, 2, 3, 5, 6]
    assert read_jsonl(path)[-2:] == ["x", 3]
    fresh = str(tmp_path / "new.jsonl")
    append_jsonl(fresh, {"k": "v"})
    assert open(fresh).read() == '{"k": "v"}\n'


def test_a_bad_jsonl_line_is_named(tmp_path):
    path = str(tmp_path / "r.jsonl")
    with open(path, "w") as fh:
        fh.write('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"r\.jsonl:2: not JSON"):
        read_jsonl(path)
    with open(path, "w") as fh:  # nested deeper than Python recurses: named the same way
        fh.write("[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:1: not JSON"):
        read_jsonl(path)


def test_a_file_name_near_the_length_limit_is_written_atomically(tmp_path):
    """The temporary name is longer than the file's own: at 238-255 bytes it was refused as too long."""
    path = str(tmp_path / ("a" * 245 + ".cfg"))
    atomic_write_text(path, "x")
    assert open(path).read() == "x" and os.listdir(str(tmp_path)) == [os.path.basename(path)]


def test_a_file_that_already_holds_the_data_is_not_rewritten(tmp_path, monkeypatch):
    """A finished run reprinted from a read-only directory rewrites nothing."""
    from tfnas import io as tio

    path = tmp_path / "summary.csv"
    atomic_write_text(str(path), "a,b\n1,2\n")
    before = path.stat().st_mtime_ns

    def no_writes(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tio, "_atomic_file", no_writes)
    atomic_write_text(str(path), "a,b\n1,2\n")  # same content: nothing to write, no error
    assert path.stat().st_mtime_ns == before
    with pytest.raises(PermissionError):
        atomic_write_text(str(path), "a,b\n1,3\n")


def test_a_file_that_cannot_be_read_back_is_named_with_the_remedy(tmp_path):
    import numpy as np

    from tfnas.io import DamagedFileError, read_json, reading
    from tfnas.methods.weight_sharing import load_arrays, npz_bytes
    from tfnas.run.store import ArtifactStore

    bad = tmp_path / "state.json"
    bad.write_text('{"epoch": 3', encoding="utf-8")
    with pytest.raises(DamagedFileError, match=r"state\.json: cannot be read back \(JSONDecodeError: .*\); delete it"):
        read_json(str(bad))
    with pytest.raises(DamagedFileError, match=r"KeyError: 'rows'.*; start over"):
        with reading(str(bad), "start over"):
            {}["rows"]
    with pytest.raises(ZeroDivisionError):  # not a reading error: a bug keeps its own traceback
        with reading(str(bad)):
            1 / 0
    weights = tmp_path / "w.npz"
    weights.write_bytes(npz_bytes([np.arange(3.0), np.ones((2, 2))]))
    assert [a.shape for a in load_arrays(str(weights))] == [(3,), (2, 2)]
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(DamagedFileError, match=r"w\.npz: cannot be read back .*delete the run directory"):
        load_arrays(str(weights))
    (tmp_path / "log.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DamagedFileError, match=r"log\.txt: cannot be read back \(UnicodeDecodeError"):
        ArtifactStore(str(tmp_path)).read_text("log.txt")


def test_a_resumed_round_file_drops_later_and_unreadable_lines(tmp_path, caplog):
    from tfnas.methods.weight_sharing import append_round
    from tfnas.run.store import ArtifactStore

    store = ArtifactStore(str(tmp_path))
    for e in range(3):
        append_round(store, "epochs.jsonl", "epoch", e, {"epoch": e + 1})
    assert [json.loads(l)["epoch"] for l in store.read_text("epochs.jsonl").splitlines()] == [1, 2, 3]
    store.write_text("epochs.jsonl", store.read_text("epochs.jsonl") + '{"epoch": 4, "sam')  # torn tail
    with open(store.path("epochs.jsonl"), "ab") as fh:
        fh.write(b"\n\xff\xfe\n")  # and bytes that are not text
    append_round(store, "epochs.jsonl", "epoch", 1, {"epoch": 2, "again": True})  # epoch 2 redone
    rows = [json.loads(l) for l in store.read_text("epochs.jsonl").splitlines()]
    assert rows == [{"epoch": 1}, {"epoch": 2, "again": True}]
    assert "dropped 2 unreadable line" in caplog.text


def test_tagged_arrays_survive_stops_between_the_array_and_the_state_write(tmp_path):
    import numpy as np

    from tfnas.io import DamagedFileError
    from tfnas.methods.weight_sharing import load_tagged, npz_bytes, save_tagged
    from tfnas.run.store import ArtifactStore

    store, like = ArtifactStore(str(tmp_path)), [np.zeros(2)]

    def save(value, step, run="me"):
        save_tagged(store, "s/w.npz", [np.full(2, float(value))], step, run)

    def load(tag):
        return load_tagged(store, "s/w.npz", like, tag, "me", "s.json")[0].tolist()

    for step in (1, 2):
        save(step, step)
    assert load(2) == [2.0, 2.0]
    for _ in range(3):  # the state names step 1 (the run stopped before its json); stopped there again and again
        assert load(1) == [1.0, 1.0]
        save(2.5, 2)
    with pytest.raises(DamagedFileError, match=r"w\.npz: holds no arrays of step 7 of this run, the step s\.json "
                                               r"names \(found 2, 1\); delete the run directory"):
        load(7)
    # A damaged newer file does not block the step the previous file holds.
    store.write_bytes("s/w.npz", b"PK\x03\x04 not a zip")
    assert load(1) == [1.0, 1.0]
    # Arrays of another run (same step) are not taken for this run's.
    save(8, 1, run="other")
    assert load(1) == [1.0, 1.0]  # from the previous file, which is this run's
    save(8, 1, run="other")
    save(8, 1, run="other")
    with pytest.raises(DamagedFileError, match=r"\(found 1 of another run, 1 of another run\)"):
        load(1)
    # A file written before the tags: taken as it is, also once a save has moved it to the previous file.
    store.write_bytes("s/w.npz", npz_bytes([np.full(2, 9.0)]))
    assert load(4) == [9.0, 9.0]
    save(5, 5)
    assert load(4) == [9.0, 9.0] and load(4) == [9.0, 9.0]
    with pytest.raises(DamagedFileError, match=r"holds 1 arrays that do not fit the 4 expected"):
        load_tagged(store, "s/w.npz", [np.zeros(2), np.zeros(3)], 4, "me", "s.json")


def test_a_huge_message_is_clipped_in_its_middle_keeping_what_was_expected():
    from tfnas.io import clipped

    assert clipped("short") == "short"
    message = "unknown op " + "x" * 100_000 + "; expected one of none, skip_connect"
    shown = clipped(message)
    assert len(shown) < 2100 and shown.startswith("unknown op xxx") and shown.endswith("none, skip_connect")
    assert f" [... {len(message) - 1333 - 666:,} characters left out ...] " in shown  # 2/3 of 2,000 kept before
