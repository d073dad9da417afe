"""Tests for tfnas.benchmarks.nats on a small generated NATS-Bench topology directory.

The helper below writes files with the structure of the official
``NATS-tss-v1_0-3ffb9-simple`` release (see the module docstring of tfnas.benchmarks.nats):
``meta.pickle.pbz2`` = {"meta_archs": [...], ...} and ``{index:06d}.pickle.pbz2`` =
{hp: ArchResults state}, each ArchResults state holding ResultsCount states per (dataset, seed).
"""

from __future__ import annotations

import bz2
import os
import pickle
import resource
import struct
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
import pytest

from tfnas.benchmarks import safe_pickle
from tfnas.benchmarks.nats import (
    BenchmarkFormatError,
    UnsafePickleError,
    _to_nb201_order,
    load_nats_topology,
    parse_arch_str,
    safe_pickle_load,
)
from tfnas.benchmarks.nb201_data import load_arrays

ARCHS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|",
]
EXPECTED_OPS = [[4, 2, 1, 2, 1, 1], [3, 3, 3, 1, 3, 3], [0, 0, 0, 0, 0, 0], [1, 4, 2, 3, 0, 4]]
SEEDS_200 = (777, 888, 999)
SEEDS_12 = (111,)
# (dataset, eval sets) of the official topology files.
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
SET_OFFSET = {"x-valid": 1.0, "x-test": 2.0, "ori-test": 3.0}
DATA_OFFSET = {"cifar10-valid": 0.0, "cifar10": 10.0, "cifar100": 20.0, "ImageNet16-120": 30.0}


def final_acc(index: int, hp: str, dataset: str, set_name: str, seed: int) -> float:
    """The (distinct, recognisable) last-epoch accuracy the generator writes."""
    hp_offset = 5.0 if hp == "200" else 0.0
    # seeds 777 / 888 / 999 -> 0.0 / 0.3 / 0.9: uneven, so their mean is neither the median nor one seed's
    seed_offset = {777: 0.0, 888: 0.3, 999: 0.9}.get(seed, (seed % 100) / 100)
    return 40.0 + index + DATA_OFFSET[dataset] + SET_OFFSET[set_name] + seed_offset + hp_offset


def _dump(obj: object, path: str) -> None:
    with bz2.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def _results_count(index: int, hp: str, dataset: str, seed: int, epochs: int) -> Dict[str, object]:
    """A ResultsCount state dict as ``ResultsCount.state_dict()`` writes it (weights cleared)."""
    accs: Dict[str, float] = OrderedDict()
    for set_name in EVAL_SETS[dataset]:
        for e in range(epochs):  # earlier epochs are lower; only the last one must be read
            accs[f"{set_name}@{e}"] = final_acc(index, hp, dataset, set_name, seed) - (epochs - 1 - e) * 0.1
    return {
        "name": dataset,
        "net_state_dict": None,
        "train_acc1es": OrderedDict((e, 50.0) for e in range(epochs)),
        "train_acc5es": OrderedDict((e, 90.0) for e in range(epochs)),
        "train_losses": OrderedDict((e, 1.0) for e in range(epochs)),
        "train_times": OrderedDict((e, 10.0) for e in range(epochs)),
        "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": ARCHS[index], "class_num": 10},
        "params": 0.5,
        "flop": np.float64(80.0),  # numpy scalars do occur in pickles and must load
        "seed": seed,
        "epochs": epochs,
        "latency": [0.01, 0.012],
        "eval_names": list(EVAL_SETS[dataset]),
        "eval_acc1es": accs,
        "eval_times": {k: 1.0 for k in accs},
        "eval_losses": {k: 1.0 for k in accs},
    }


def _arch_results(index: int, hp: str, seeds, epochs: int) -> Dict[str, object]:
    """An ArchResults state dict as ``ArchResults.state_dict()`` writes it."""
    return {
        "arch_index": index,
        "arch_str": ARCHS[index],
        "all_results": {(d, s): _results_count(index, hp, d, s, epochs) for d in EVAL_SETS for s in seeds},
        "dataset_seed": {d: list(seeds) for d in EVAL_SETS},
        "clear_net_done": True,
    }


def _arch_payload(index: int, with_12: bool = True) -> Dict[str, object]:
    payload = {"200": _arch_results(index, "200", SEEDS_200, 200)}
    if with_12:
        payload["12"] = _arch_results(index, "12", SEEDS_12, 12)
    return payload


def make_nats_dir(root: str, padded: bool = True, no_12: Optional[List[int]] = None) -> str:
    """Writes a tiny NATS-tss-v1_0-3ffb9-simple directory with :data:`ARCHS`."""
    d = os.path.join(root, "NATS-tss-v1_0-3ffb9-simple")
    os.makedirs(d)
    meta = {"meta_archs": list(ARCHS), "arch2infos": {}, "evaluated_indexes": set()}
    _dump(meta, os.path.join(d, "meta.pickle.pbz2"))
    for i in range(len(ARCHS)):
        name = f"{i:06d}" if padded else str(i)
        _dump(_arch_payload(i, with_12=i not in (no_12 or [])), os.path.join(d, f"{name}.pickle.pbz2"))
    return d


@pytest.fixture(scope="module")
def nats_dir(tmp_path_factory) -> str:
    return make_nats_dir(str(tmp_path_factory.mktemp("nats")))


def test_same_layout_as_shipped_table(nats_dir):
    arrays = load_nats_topology(nats_dir, progress=False)
    shipped = load_arrays()
    assert set(arrays) == set(shipped)
    n = len(ARCHS)
    for key, ref in shipped.items():
        assert arrays[key].dtype == ref.dtype, key
        assert arrays[key].shape[1:] == ref.shape[1:], key
        assert not arrays[key].flags.writeable
        if key in ("ops", "acc200_test", "acc12_test", "acc12_val", "latency_ms"):
            assert arrays[key].shape[0] == n
    np.testing.assert_array_equal(arrays["op_names"], shipped["op_names"])
    np.testing.assert_array_equal(arrays["datasets"], shipped["datasets"])
    np.testing.assert_array_equal(arrays["latency_devices"], shipped["latency_devices"])
    assert np.isnan(arrays["latency_ms"]).all()


def test_ops_in_index_order(nats_dir):
    arrays = load_nats_topology(nats_dir, progress=False)
    np.testing.assert_array_equal(arrays["ops"], np.array(EXPECTED_OPS, dtype=np.uint8))


def test_accuracies_follow_the_nb201_convention(nats_dir):
    arrays = load_nats_topology(nats_dir, progress=False)
    test_sets = (("cifar10", "ori-test"), ("cifar100", "x-test"), ("ImageNet16-120", "x-test"))
    for i in range(len(ARCHS)):
        exp200 = [np.mean([final_acc(i, "200", d, s, seed) for seed in SEEDS_200]) for d, s in test_sets]
        np.testing.assert_allclose(arrays["acc200_test"][i], exp200, rtol=0, atol=1e-4)
        exp12 = [final_acc(i, "12", d, s, 111) for d, s in test_sets]
        np.testing.assert_allclose(arrays["acc12_test"][i], exp12, rtol=0, atol=1e-4)
        exp12v = [final_acc(i, "12", d, "x-valid", 111) for d in ("cifar10-valid", "cifar100", "ImageNet16-120")]
        np.testing.assert_allclose(arrays["acc12_val"][i], exp12v, rtol=0, atol=1e-4)


def test_seed_average_is_over_seeds_listed(tmp_path):
    d = make_nats_dir(str(tmp_path))
    payload = _arch_payload(1)
    res = payload["200"]
    res["dataset_seed"]["cifar100"] = [888]  # only one seed left for cifar100
    del res["all_results"][("cifar100", 777)], res["all_results"][("cifar100", 999)]
    _dump(payload, os.path.join(d, "000001.pickle.pbz2"))
    arrays = load_nats_topology(d, progress=False)
    assert arrays["acc200_test"][1, 1] == pytest.approx(final_acc(1, "200", "cifar100", "x-test", 888), abs=1e-4)


def test_unpadded_names_and_missing_12_epoch(tmp_path, caplog):
    d = make_nats_dir(str(tmp_path), padded=False, no_12=[2])
    arrays = load_nats_topology(d, progress=False)
    assert np.isnan(arrays["acc12_test"][2]).all() and np.isnan(arrays["acc12_val"][2]).all()
    assert not np.isnan(arrays["acc12_test"][[0, 1, 3]]).any()
    assert not np.isnan(arrays["acc200_test"]).any()
    assert "lack some acc12_test" in caplog.text


def test_single_file_archive(tmp_path):
    f = str(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2")
    _dump({"meta_archs": list(ARCHS), "arch2infos": {i: _arch_payload(i) for i in range(len(ARCHS))},
           "evaluated_indexes": set(range(len(ARCHS)))}, f)
    from_file = load_nats_topology(f, progress=False)
    from_dir = load_nats_topology(make_nats_dir(str(tmp_path)), progress=False)
    for key in ("ops", "acc200_test", "acc12_test", "acc12_val"):
        np.testing.assert_array_equal(from_file[key], from_dir[key])


def test_parse_arch_str_places_inputs_by_source():
    assert parse_arch_str(ARCHS[3]) == EXPECTED_OPS[3]
    shuffled = "|skip_connect~0|+|nor_conv_1x1~1|avg_pool_3x3~0|+|avg_pool_3x3~2|nor_conv_3x3~0|none~1|"
    assert parse_arch_str(shuffled) == EXPECTED_OPS[3]
    for bad in ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|+|none~0|none~1|none~2|",
                "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "|none~0|+|none~0|none~1|"):
        with pytest.raises(ValueError, match="bad NAS-Bench-201 arch string"):
            parse_arch_str(bad)
    with pytest.raises(ValueError, match="size-search-space"):
        parse_arch_str("64:32:16:8:64")


def test_reorders_to_nb201_index_order():
    ref = load_arrays()["ops"]
    assert _to_nb201_order(ref.copy()) is None
    perm = np.random.default_rng(0).permutation(len(ref))
    back = _to_nb201_order(ref[perm])
    np.testing.assert_array_equal(ref[perm][back], ref)
    broken = ref.copy()
    broken[5] = broken[6]
    with pytest.raises(ValueError, match="not the 15,625 NAS-Bench-201 cells"):
        _to_nb201_order(broken)


def test_missing_path_and_meta(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="NATS-tss-v1_0-3ffb9-simple") as e:
        load_nats_topology(missing)
    assert missing in str(e.value)
    with pytest.raises(BenchmarkFormatError, match="meta.pickle.pbz2 not found in") as e:
        load_nats_topology(str(tmp_path))
    assert str(tmp_path) in str(e.value) and "NATS-tss-v1_0-3ffb9-simple directory" in str(e.value)
    pth = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    pth.write_bytes(b"x")
    with pytest.raises(ValueError, match="expected the NATS-tss-v1_0-3ffb9-simple directory"):
        load_nats_topology(str(pth))


def test_missing_arch_file(tmp_path):
    d = make_nats_dir(str(tmp_path))
    os.remove(os.path.join(d, "000002.pickle.pbz2"))
    with pytest.raises(BenchmarkFormatError, match="000002.pickle.pbz2 not found"):
        load_nats_topology(d, progress=False)


def test_bad_meta_and_arch_files(tmp_path):
    d = make_nats_dir(str(tmp_path))
    meta = os.path.join(d, "meta.pickle.pbz2")
    _dump({"meta_archs": ["64:64:64:64:64"]}, meta)
    with pytest.raises(ValueError, match="size-search-space"):
        load_nats_topology(d, progress=False)
    _dump({"archs": []}, meta)
    with pytest.raises(ValueError, match="'meta_archs'"):
        load_nats_topology(d, progress=False)
    with open(meta, "wb") as f:
        f.write(b"not bz2")
    with pytest.raises(ValueError, match="not a bz2-compressed pickle"):
        load_nats_topology(d, progress=False)

    d = make_nats_dir(str(tmp_path / "b"))
    _dump({"90": _arch_results(1, "200", SEEDS_200, 2)}, os.path.join(d, "000001.pickle.pbz2"))
    with pytest.raises(ValueError, match="'12'/'200'"):
        load_nats_topology(d, progress=False)
    _dump(_arch_payload(2), os.path.join(d, "000001.pickle.pbz2"))
    with pytest.raises(ValueError, match="meta file lists"):
        load_nats_topology(d, progress=False)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


class _Custom:
    pass


def test_refuses_non_plain_pickles(tmp_path):
    bad = str(tmp_path / "bad.pickle.pbz2")
    _dump({"x": _Evil()}, bad)
    with pytest.raises(UnsafePickleError, match=r"posix\.getcwd|os\.getcwd|nt\.getcwd"):
        safe_pickle_load(bad)
    _dump([_Custom()], bad)
    with pytest.raises(UnsafePickleError, match="_Custom") as e:
        safe_pickle_load(bad)
    assert bad in str(e.value)
    ok = {"a": OrderedDict(b=[1, 2.0, (3, "x")]), "s": {1}, "f": frozenset([2]), "n": np.float64(1.5)}
    _dump(ok, bad)
    assert safe_pickle_load(bad) == ok

    d = make_nats_dir(str(tmp_path / "d"))
    _dump({"200": _Custom()}, os.path.join(d, "000003.pickle.pbz2"))
    with pytest.raises(UnsafePickleError, match="000003.pickle.pbz2"):
        load_nats_topology(d, progress=False)


# ---- bad sources: one clear BenchmarkFormatError (a ValueError) naming the file --------------


def test_bad_sources_raise_benchmark_format_errors(tmp_path):
    assert issubclass(BenchmarkFormatError, ValueError) and issubclass(UnsafePickleError, BenchmarkFormatError)
    # a folder without the meta file
    with pytest.raises(BenchmarkFormatError, match="meta.pickle.pbz2 not found in") as e:
        load_nats_topology(str(tmp_path))
    assert "NATS-tss-v1_0-3ffb9-simple" in str(e.value)
    # a file that is not bz2, given directly and as the meta file of a folder
    plain = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    with open(plain, "wb") as f:
        pickle.dump({"meta_archs": ARCHS}, f)
    with pytest.raises(BenchmarkFormatError, match="not a bz2-compressed pickle") as e:
        load_nats_topology(str(plain))
    assert str(plain) in str(e.value)
    # bz2, but not a pickle
    with bz2.open(plain, "wb") as f:
        f.write(b"hello, not a pickle")
    with pytest.raises(BenchmarkFormatError, match="not a bz2-compressed pickle"):
        load_nats_topology(str(plain))
    # a truncated pickle
    data = pickle.dumps({"meta_archs": ARCHS}, protocol=4)
    with bz2.open(plain, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(BenchmarkFormatError, match=r"not a bz2-compressed pickle .*(EOFError|UnpicklingError)"):
        load_nats_topology(str(plain))
    # a refused pickle
    d = make_nats_dir(str(tmp_path / "d"))
    _dump({"x": _Evil()}, os.path.join(d, "meta.pickle.pbz2"))
    with pytest.raises(BenchmarkFormatError, match="refusing to unpickle global") as e:
        load_nats_topology(d, progress=False)
    assert os.path.join(d, "meta.pickle.pbz2") in str(e.value)


def test_wrongly_typed_contents_are_format_errors(tmp_path):
    d = make_nats_dir(str(tmp_path))
    arch = os.path.join(d, "000001.pickle.pbz2")
    bad = _arch_payload(1)
    bad["200"]["dataset_seed"] = ["not", "a", "dict"]  # .get on a list
    _dump(bad, arch)
    with pytest.raises(BenchmarkFormatError, match="000001.pickle.pbz2: not a NATS-Bench topology result"):
        load_nats_topology(d, progress=False)
    bad = _arch_payload(1)
    key = ("cifar10", SEEDS_200[0])
    bad["200"]["all_results"][key]["eval_acc1es"]["ori-test@199"] = "high"
    _dump(bad, arch)
    with pytest.raises(BenchmarkFormatError, match="000001.pickle.pbz2"):
        load_nats_topology(d, progress=False)
    # a pickle that calls an allowed constructor with bad arguments
    _dump_raw(b"\x80\x04cbuiltins\nint\nX\x03\x00\x00\x00abc\x85R.", arch)  # int("abc")
    with pytest.raises(BenchmarkFormatError, match="not a bz2-compressed pickle .*ValueError"):
        load_nats_topology(d, progress=False)
    _dump_raw(b"\x80\x04cbuiltins\ndict\nK\x05\x85R.", arch)  # dict(5)
    with pytest.raises(UnsafePickleError, match="dict"):
        load_nats_topology(d, progress=False)


# ---- bounded allocation -----------------------------------------------------------------------


def _dump_raw(data: bytes, path: str) -> None:
    with bz2.open(path, "wb") as f:
        f.write(data)


def _call(module: str, name: str, arg_ops: bytes) -> bytes:
    """A protocol-2 pickle of ``module.name(*args)``; ``arg_ops`` pushes the argument tuple."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + arg_ops + b"R."


def _binint(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_allowed_constructors_cannot_build_huge_objects(tmp_path):
    path = str(tmp_path / "bomb.pickle.pbz2")
    # bytes(2**30): 1 GiB of zeros from a file of about 70 bytes
    _dump_raw(_call("builtins", "bytes", _binint(2**30) + b"\x85"), path)
    assert os.path.getsize(path) < 100
    before = _max_rss_mb()
    with pytest.raises(UnsafePickleError, match=r"bytes\(1073741824\).*limit") as e:
        safe_pickle_load(path)
    assert path in str(e.value)
    assert _max_rss_mb() - before < 256  # nothing near 1 GiB was allocated

    # the same through a huge length given as a long integer (LONG4 opcode)
    _dump_raw(_call("builtins", "bytes", b"\x8a\x05" + (2**36).to_bytes(5, "little") + b"\x85"), path)
    with pytest.raises(UnsafePickleError, match="limit"):
        safe_pickle_load(path)

    # str() of a list of N references to one long string would render N copies of it
    long_str = b"X" + struct.pack("<I", 10**5) + b"a" * 10**5  # BINUNICODE of 100 kB
    many = b"(" + long_str + b"q\x00" + b"h\x00" * 20000 + b"l"  # MARK, str, memo, 20000 x GET, LIST
    _dump_raw(_call("builtins", "str", many + b"\x85"), path)
    with pytest.raises(UnsafePickleError, match="str\\(\\) of a list"):
        safe_pickle_load(path)

    # tuple() of a long string, built again and again from one memoised copy
    again = b"(" + long_str + b"q\x00" + b"cbuiltins\ntuple\nh\x00\x85R" * 20 + b"l."
    _dump_raw(b"\x80\x02" + again, path)
    with pytest.raises(UnsafePickleError, match="tuple"):
        safe_pickle_load(path)

    # a numpy void scalar without data allocates its whole itemsize
    dtype_v = b"cnumpy\ndtype\nX\x0b\x00\x00\x00V1073741824\x85R"
    _dump_raw(_call("numpy._core.multiarray", "scalar", dtype_v + b"\x85"), path)
    with pytest.raises(UnsafePickleError, match="dtype"):
        safe_pickle_load(path)


def test_decompressed_size_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_pickle, "MIN_STREAM_BYTES", 1 << 16)
    path = str(tmp_path / "inflated.pickle.pbz2")
    _dump({"meta_archs": ["x" * 1000] * 1, "pad": "a" * (1 << 20)}, path)  # compresses far beyond 200:1
    with pytest.raises(UnsafePickleError, match="decompresses to more than") as e:
        safe_pickle_load(path)
    assert path in str(e.value)
    # real-looking files stay far below the ratio
    d = make_nats_dir(str(tmp_path / "d"))
    assert load_nats_topology(d, progress=False)["ops"].shape == (len(ARCHS), 6)


def test_legitimate_pickles_of_every_protocol_still_load(tmp_path):
    path = str(tmp_path / "ok.pickle.pbz2")
    ok = {"a": OrderedDict(b=[1, 2.0, (3, "x")]), "s": {1, 2}, "f": frozenset([2]), "n": np.float64(1.5),
          "i": np.int64(7), "b": b"raw", "c": 1 + 2j, "t": True, "big": 10**30}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        with bz2.open(path, "wb") as f:
            pickle.dump(ok, f, protocol=protocol)
        assert safe_pickle_load(path) == ok, protocol
