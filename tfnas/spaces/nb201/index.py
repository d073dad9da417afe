"""The NAS-Bench-201 index order: which cell is index ``k`` (the space's own data).

The official index order of the 15,625 cells (the row order of the published NAS-Bench-201 /
NATS-Bench files) is not an enumeration of the cells: no nesting order of the 6 edges over any
order of the 5 ops yields it. So the space ships the order itself, as
``data/index_order.npy``: ``uint16 [15625]``, entry ``k`` is the base-5 code
``sum_e id_e * 5**e`` (``id_e`` the op id on edge ``e``, edge order of
:data:`tfnas.spaces.nb201.arch.EDGES`) of the cell at index ``k``. A test checks that it equals
the order of the benchmark table shipped in :mod:`tfnas.benchmarks`.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from tfnas.spaces.nb201.arch import NUM_CELLS, NUM_EDGES, OPS

__all__ = ["INDEX_ORDER_PATH", "code_of_ids", "index_of_code", "ops_by_index"]

INDEX_ORDER_PATH = os.path.join(os.path.dirname(__file__), "data", "index_order.npy")

#: ``5**e`` per edge ``e``: op ids ``[..., 6] @ BASE5`` is the base-5 code of a cell.
BASE5 = len(OPS) ** np.arange(NUM_EDGES, dtype=np.int64)


def code_of_ids(ids: np.ndarray) -> np.ndarray:
    """Base-5 codes ``sum_e id_e * 5**e`` of op-id rows ``[..., 6]`` (int64)."""
    return np.asarray(ids).astype(np.int64) @ BASE5


@functools.lru_cache(maxsize=1)
def _codes_by_index() -> np.ndarray:
    """``[15625]`` int64 base-5 code of the cell at each index, checked to list every cell once."""
    if not os.path.exists(INDEX_ORDER_PATH):
        raise FileNotFoundError(
            f"the NAS-Bench-201 index order is missing from the installed package ({INDEX_ORDER_PATH}); reinstall tfnas"
        )
    codes = np.load(INDEX_ORDER_PATH, allow_pickle=False).astype(np.int64)
    if codes.shape != (NUM_CELLS,) or not np.array_equal(np.sort(codes), np.arange(NUM_CELLS)):
        raise RuntimeError(f"{INDEX_ORDER_PATH} must list each of the {NUM_CELLS} cell codes exactly once")
    codes.setflags(write=False)
    return codes


@functools.lru_cache(maxsize=1)
def ops_by_index() -> np.ndarray:
    """``[15625, 6]`` int64 op ids per edge of the cell at each index (read-only)."""
    digits = (_codes_by_index()[:, None] // BASE5[None, :]) % len(OPS)
    digits.setflags(write=False)
    return digits


@functools.lru_cache(maxsize=1)
def index_of_code() -> np.ndarray:
    """``[15625]`` int64: the index of the cell with each base-5 code."""
    lookup = np.empty(NUM_CELLS, dtype=np.int64)
    lookup[_codes_by_index()] = np.arange(NUM_CELLS)
    lookup.setflags(write=False)
    return lookup
