"""Reads the official NATS-Bench topology-search-space (TSS) files into the NB201 table layout.

NATS-Bench's TSS *is* NAS-Bench-201 (same 15,625 cells, same index order), re-released as
bz2-compressed pickles. :func:`load_nats_topology` turns them into the same arrays as
:func:`tfnas.benchmarks.nb201_data.load_arrays`, so users who have the official files can use
them instead of the table shipped with tfnas.

On-disk format (``nats_bench/api_utils.py`` and ``nats_bench/api_topology.py`` in
D-X-Y/NATS-Bench): every file is a ``pickle`` stream inside ``bz2``, holding only plain
containers.

- ``NATS-tss-v1_0-3ffb9-simple/meta.pickle.pbz2``: a dict whose ``"meta_archs"`` is the list of
  the 15,625 arch strings in index order, e.g.
  ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``
  (node 1 | node 2 | node 3, each input written ``op~source``).
- ``NATS-tss-v1_0-3ffb9-simple/{index:06d}.pickle.pbz2``: a dict ``{hp: ArchResults state}``
  where ``hp`` is ``"12"`` or ``"200"`` (training epochs). An ArchResults state is a dict with
  ``arch_index``, ``arch_str``, ``dataset_seed`` (``{dataset: [seeds]}``) and ``all_results``
  (``{(dataset, seed): ResultsCount state}``). A ResultsCount state is a dict whose
  ``epochs`` is the number of epochs and whose ``eval_acc1es`` maps ``"{set}@{epoch}"``
  (e.g. ``"ori-test@199"``) to a top-1 accuracy in %.
- The single-file archive ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` holds ``meta_archs`` plus
  ``arch2infos`` (``{index: {hp: ArchResults state}}``); it is accepted too.

Test-set convention (the one NB201/NATS-Bench report as "test accuracy", i.e. what
``api.get_more_info(..., hp=200)["test-accuracy"]`` returns): CIFAR-10 uses the ``"cifar10"``
runs (trained on train+valid) on ``"ori-test"`` (the 10k official test set); CIFAR-100 and
ImageNet16-120 use ``"x-test"`` (the held-out half of the official test/val set; ``"ori-test"``
would be the union of ``"x-valid"`` and ``"x-test"``). Validation accuracies (``acc12_val``) are
``"x-valid"`` of ``"cifar10-valid"`` (trained on train only), ``"cifar100"`` and
``"ImageNet16-120"``. Every value is the last epoch's accuracy, averaged over the seeds present.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from tfnas.benchmarks.nb201_data import load_arrays
from tfnas.benchmarks.safe_pickle import BenchmarkFormatError, UnsafePickleError, safe_pickle_load

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkFormatError", "UnsafePickleError", "load_nats_topology", "parse_arch_str", "safe_pickle_load"]

OP_NAMES: Tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DATASETS: Tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120")
NB201_SIZE = 15625
PICKLE_EXT = ".pickle.pbz2"
META_NAME = "meta" + PICKLE_EXT
EXPECTED_DIR = "the NATS-tss-v1_0-3ffb9-simple directory"

# (NATS dataset name, eval set) per output column, for test and validation accuracies.
_TEST_SOURCES: Tuple[Tuple[str, str], ...] = (
    ("cifar10", "ori-test"),
    ("cifar100", "x-test"),
    ("ImageNet16-120", "x-test"),
)
_VAL_SOURCES: Tuple[Tuple[str, str], ...] = (
    ("cifar10-valid", "x-valid"),
    ("cifar100", "x-valid"),
    ("ImageNet16-120", "x-valid"),
)

def parse_arch_str(arch_str: str) -> List[int]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> the six op ids in edge order
    (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), ids into :data:`OP_NAMES`.

    Inputs are placed by their ``~source`` index, not their position in the string.
    """
    if not isinstance(arch_str, str):
        raise ValueError(f"expected an arch string, got {type(arch_str).__name__}")
    if ":" in arch_str and "~" not in arch_str:
        raise ValueError(f"{arch_str!r} is a size-search-space (NATS-sss) arch; expected a topology (tss) one")
    nodes = arch_str.split("+")
    if len(nodes) != 3:
        raise ValueError(f"bad NAS-Bench-201 arch string {arch_str!r}: expected 3 nodes separated by '+'")
    ops: List[int] = []
    for node, group in enumerate(nodes, start=1):
        slots: List[Optional[int]] = [None] * node
        items = [t for t in group.split("|") if t]
        for item in items:
            op, sep, src = item.partition("~")
            bad = not sep or op not in OP_NAMES or not src.isdigit() or int(src) >= node
            if bad or slots[int(src)] is not None:
                raise ValueError(f"bad NAS-Bench-201 arch string {arch_str!r}: bad input {item!r} of node {node}")
            slots[int(src)] = OP_NAMES.index(op)
        if any(s is None for s in slots):
            raise ValueError(
                f"bad NAS-Bench-201 arch string {arch_str!r}: node {node} needs inputs from nodes 0..{node - 1}"
            )
        ops.extend(int(s) for s in slots)  # type: ignore[arg-type]
    return ops


def _last_epoch_acc(result: Any, set_name: str, where: str) -> float:
    """The last-epoch accuracy of one ResultsCount state on ``set_name``; NaN if not recorded."""
    if not isinstance(result, dict):
        raise BenchmarkFormatError(f"{where}: expected a ResultsCount state dict, got {type(result).__name__}")
    accs = result.get("eval_acc1es") or {}
    epochs = result.get("epochs")
    if isinstance(epochs, (int, np.integer)) and epochs > 0:
        value = accs.get(f"{set_name}@{int(epochs) - 1}")
    else:  # no epoch count: take the latest epoch recorded for this set
        prefix = set_name + "@"
        tails = [k[len(prefix):] for k in accs if isinstance(k, str) and k.startswith(prefix)]
        found = [int(t) for t in tails if t.isdigit()]
        value = accs.get(f"{set_name}@{max(found)}") if found else None
    return float("nan") if value is None else float(value)


def _mean_over_seeds(arch_results: Any, dataset: str, set_name: str, where: str) -> float:
    """Mean last-epoch accuracy over the seeds of ``dataset`` in one ArchResults state."""
    if not isinstance(arch_results, dict) or "all_results" not in arch_results:
        raise BenchmarkFormatError(f"{where}: expected an ArchResults state dict with 'all_results'")
    all_results = arch_results["all_results"]
    seeds = (arch_results.get("dataset_seed") or {}).get(dataset)
    if seeds is None:
        seeds = [key[1] for key in all_results if isinstance(key, tuple) and len(key) == 2 and key[0] == dataset]
    values = [_last_epoch_acc(all_results[(dataset, s)], set_name, where) for s in seeds if (dataset, s) in all_results]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _hp_entry(hp2results: Dict[Any, Any], hp: str) -> Optional[Any]:
    """The ArchResults state stored under hyper-parameter key ``hp`` ('12'/'200', or the int)."""
    if hp in hp2results:
        return hp2results[hp]
    return hp2results.get(int(hp))


def _fill_row(hp2results: Any, row: int, arch_str: str, out: Dict[str, np.ndarray], where: str) -> None:
    """Writes one architecture's accuracies into row ``row`` of the output arrays."""
    if not isinstance(hp2results, dict):
        raise BenchmarkFormatError(f"{where}: expected a dict {{hp: results}}, got {type(hp2results).__name__}")
    res200, res12 = _hp_entry(hp2results, "200"), _hp_entry(hp2results, "12")
    if res200 is None and res12 is None:
        found = sorted(map(str, hp2results))
        raise BenchmarkFormatError(f"{where}: expected hyper-parameter keys '12'/'200' (topology space), found {found}")
    for res in (res200, res12):
        stored = res.get("arch_str") if isinstance(res, dict) else None
        if stored is not None and stored != arch_str:
            raise BenchmarkFormatError(f"{where}: holds arch {stored!r} but meta file lists {arch_str!r} at index {row}")
    for col, (dataset, set_name) in enumerate(_TEST_SOURCES):
        if res200 is not None:
            out["acc200_test"][row, col] = _mean_over_seeds(res200, dataset, set_name, where)
        if res12 is not None:
            out["acc12_test"][row, col] = _mean_over_seeds(res12, dataset, set_name, where)
    if res12 is not None:
        for col, (dataset, set_name) in enumerate(_VAL_SOURCES):
            out["acc12_val"][row, col] = _mean_over_seeds(res12, dataset, set_name, where)


def _arch_file(directory: str, index: int) -> str:
    """Path of the ``index``-th per-architecture file (``000123`` or ``123`` naming)."""
    padded = os.path.join(directory, f"{index:06d}{PICKLE_EXT}")
    if os.path.isfile(padded):
        return padded
    plain = os.path.join(directory, f"{index}{PICKLE_EXT}")
    if os.path.isfile(plain):
        return plain
    raise BenchmarkFormatError(
        f"{padded} not found (nor {os.path.basename(plain)}): {EXPECTED_DIR} must hold one file per architecture"
    )


def _to_nb201_order(ops: np.ndarray) -> Optional[np.ndarray]:
    """Row permutation that puts the cells in the shipped NB201 order (None if already so)."""
    ref = load_arrays()["ops"]
    if ops.shape != ref.shape or np.array_equal(ops, ref):
        return None
    position = {r.tobytes(): i for i, r in enumerate(ops)}
    try:
        perm = np.array([position[r.tobytes()] for r in ref])
    except KeyError:
        raise BenchmarkFormatError("the arch strings in the NATS-Bench files are not the 15,625 NAS-Bench-201 cells") from None
    logger.warning("NATS-Bench files list the cells in a different order; reordering to the NB201 index order")
    return perm


def load_nats_topology(path: str, *, progress: bool = True) -> Dict[str, np.ndarray]:
    """Reads the official NATS-Bench topology-space files into the shipped NB201 table layout.

    Args:
      path: the ``NATS-tss-v1_0-3ffb9-simple`` directory (``meta.pickle.pbz2`` plus one
        ``{index:06d}.pickle.pbz2`` per architecture), or the single-file archive
        ``NATS-tss-v1_0-3ffb9.pickle.pbz2``.
      progress: show a tqdm progress bar while reading the per-architecture files.

    Returns:
      The keys of :func:`tfnas.benchmarks.nb201_data.load_arrays`, index-aligned with NB201:
      ``ops`` uint8 [N, 6], ``acc200_test`` / ``acc12_test`` / ``acc12_val`` float32 [N, 3] (%,
      columns ``datasets``; NaN where the files hold no such result), ``latency_ms`` float32
      [N, len(latency_devices)] all NaN (NATS-Bench does not measure those devices), and
      ``op_names``, ``datasets``, ``latency_devices``. N is 15,625 for the official files.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      BenchmarkFormatError: (a ``ValueError``) the folder lacks the meta file or an architecture
        file, or a file is not in the NATS-Bench topology format; the message names the file
        and what was expected.
      UnsafePickleError: (a ``BenchmarkFormatError``) a file holds anything but plain data
        (e.g. torch tensors) or would build more data than the limits of
        :func:`safe_pickle_load` allow.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: expected {EXPECTED_DIR}")
    if os.path.isdir(path):
        meta_path = os.path.join(path, META_NAME)
        if not os.path.isfile(meta_path):
            raise BenchmarkFormatError(
                f"{META_NAME} not found in {path}: expected {EXPECTED_DIR} (a folder holding {META_NAME} and "
                f"one {{index:06d}}{PICKLE_EXT} file per architecture) or the single NATS-tss-*{PICKLE_EXT} archive"
            )
    elif path.endswith(PICKLE_EXT):
        meta_path = path
    else:
        raise BenchmarkFormatError(f"{path} is a file: expected {EXPECTED_DIR} (or the single NATS-tss-*{PICKLE_EXT} archive)")

    meta = safe_pickle_load(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("meta_archs"), (list, tuple)):
        raise BenchmarkFormatError(f"{meta_path}: expected a dict with a 'meta_archs' list of arch strings")
    archs: Sequence[str] = meta["meta_archs"]
    n = len(archs)
    if n == 0:
        raise BenchmarkFormatError(f"{meta_path}: 'meta_archs' is empty")
    if n != NB201_SIZE:
        logger.warning("%s lists %d architectures, not the %d of NAS-Bench-201", meta_path, n, NB201_SIZE)
    try:
        ops = np.array([parse_arch_str(a) for a in archs], dtype=np.uint8)
    except ValueError as e:
        raise BenchmarkFormatError(f"{meta_path}: {e}") from None

    single_file = not os.path.isdir(path)
    arch2infos = meta.get("arch2infos") if single_file else None
    if single_file and not isinstance(arch2infos, dict):
        raise BenchmarkFormatError(f"{path}: expected the single-file archive to hold an 'arch2infos' dict")

    shipped = load_arrays()
    acc_keys = ("acc200_test", "acc12_test", "acc12_val")
    out = {k: np.full((n, len(DATASETS)), np.nan, dtype=np.float32) for k in acc_keys}
    for i in tqdm(range(n), desc="NATS-Bench tss", unit="arch", disable=not progress):
        if single_file:
            where = f"{path}[arch2infos][{i}]"
            hp2results = arch2infos.get(i)  # type: ignore[union-attr]
            if hp2results is None:
                raise BenchmarkFormatError(f"{path}: no results for architecture {i} in 'arch2infos'")
        else:
            where = _arch_file(path, i)
            hp2results = safe_pickle_load(where)
        try:
            _fill_row(hp2results, i, archs[i], out, where)
        except BenchmarkFormatError:
            raise
        except (TypeError, AttributeError, KeyError, ValueError, OverflowError) as e:
            raise BenchmarkFormatError(
                f"{where}: not a NATS-Bench topology result (expected {{hp: ArchResults state}} with "
                f"'all_results' of ResultsCount states; {type(e).__name__}: {e})"
            ) from None

    if np.isnan(out["acc200_test"]).all():
        raise BenchmarkFormatError(f"{path}: no 200-epoch results found (expected hp '200' with {_TEST_SOURCES} accuracies)")
    for key, arr in out.items():
        missing = int(np.isnan(arr).any(axis=1).sum())
        if missing:
            logger.warning("%s: %d of %d architectures lack some %s values (left NaN)", path, missing, n, key)

    arrays: Dict[str, np.ndarray] = {
        "ops": ops,
        **out,
        "latency_ms": np.full((n, len(shipped["latency_devices"])), np.nan, dtype=np.float32),
        "op_names": np.array(OP_NAMES),
        "datasets": np.array(DATASETS),
        "latency_devices": shipped["latency_devices"].copy(),
    }
    try:
        perm = _to_nb201_order(ops)
    except BenchmarkFormatError as e:
        raise BenchmarkFormatError(f"{meta_path}: {e}") from None
    if perm is not None:
        for key in ("ops", "acc200_test", "acc12_test", "acc12_val", "latency_ms"):
            arrays[key] = arrays[key][perm]
    for a in arrays.values():
        a.setflags(write=False)
    return arrays
