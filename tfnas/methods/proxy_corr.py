"""``proxy_corr``: how well zero-shot proxies rank NAS-Bench-201 cells (an analysis, not a search).

Scores every NB201 cell, or ``[proxy] subset`` cells drawn with the run seed, with each proxy
of ``[proxy] names`` (empty: ``[proxy] name``) and compares the scores with the shipped table's
200-epoch test accuracy on ``[dataset] name`` (Spearman's rho and Kendall's tau-b, as in
Abdelfattah et al., ICLR 2021, Table 2; the tfnas spec lists the published figures). Ground
truth is read directly from :meth:`Nb201Benchmark.ground_truth`: nothing is searched, so no
query budget applies.

Outputs in the run directory, each written atomically:

- ``scores_<proxy>.csv``: ``index, arch, score, seconds`` per cell (``seconds``: wall time of
  that cell's scoring). Written when a proxy finishes; while it runs, every ``chunk`` cells
  go to ``scores_<proxy>.partial.csv``, so a rerun skips finished proxies and resumes a
  partial one where it stopped, with the same scores as an uninterrupted run.
- ``correlation.csv``: ``proxy, dataset, cells, spearman, kendall, seconds_per_cell``.
- ``scatter_<proxy>.png``: score against accuracy.

Randomness: the subset comes from ``[run] seed``; cell ``i`` of proxy ``p`` is scored with a
generator seeded by ``(seed, crc32(p), i)``, and before its first cell each proxy is called once
with a generator seeded by ``(seed, crc32(p))`` (which fixes any lazily drawn state such as the
shared weights of the NB201 fast path), so scores do not depend on where a run was resumed.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from tfnas.checks import check_int
from tfnas.metrics import kendall, spearman
from tfnas.registry import register_method
from tfnas.evaluation.executors import Executor, LocalExecutor
from tfnas.evaluation.proxy import ParallelProxyEvaluator
from tfnas.methods.base import Analysis, SearchContext
from tfnas.spaces.base import TabularSpace, require

logger = logging.getLogger(__name__)

__all__ = ["ProxyCorrelation", "CellScorer"]

#: Datasets of the shipped NAS-Bench-201 table.
NB201_DATASETS = ("cifar10", "cifar100", "imagenet16-120")
SCORE_COLUMNS = ("index", "arch", "score", "seconds")
CORRELATION_COLUMNS = ("proxy", "dataset", "cells", "spearman", "kendall", "seconds_per_cell")
_SUBSET_STREAM = 0x5B5E7  # seed-sequence word of the subset draw (distinct from crc32 words of names)


def _name_word(name: str) -> int:
    """A stable 32-bit word for ``name`` (Python's ``hash`` of strings changes per process)."""
    return zlib.crc32(name.encode("utf-8"))


class CellScorer:
    """``evaluate(indices) -> (scores, seconds)``: one proxy applied to cells of a tabular space.

    Cell ``i`` gets its own generator seeded by ``(seed, crc32(proxy name), i)``, so its score does
    not depend on which cells were scored before it, nor on which worker scored it: the scoring is a
    :class:`~tfnas.evaluation.proxy.ParallelProxyEvaluator` on ``executor`` (in this process when
    None). Before its first cell, every worker scores ``prime_index`` once with the proxy's own
    stream (traces, fixes state a proxy draws lazily), so all workers hold the same state.
    """

    def __init__(self, space: Any, proxy: Any, proxy_name: str, *, num_classes: int,
                 input_shape: Tuple[int, int, int], batch_size: int, seed: int, prime_index: int = 0,
                 executor: Optional[Executor] = None):
        self.space = space
        self.seed = int(seed)
        self.word = _name_word(proxy_name)
        prime = (space.encode(space.from_index(int(prime_index))),
                 np.random.default_rng(np.random.SeedSequence([self.seed, self.word])))
        self.evaluator = ParallelProxyEvaluator(executor if executor is not None else LocalExecutor(), space, proxy,
                                                num_classes=num_classes, input_shape=input_shape,
                                                batch_size=batch_size, prime=prime)

    def evaluate(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        """Scores of ``indices`` (float64 ``[n]``; NaN where scoring raised) and the seconds each took."""
        archs = [self.space.from_index(int(i)) for i in indices]
        rngs = [np.random.default_rng(np.random.SeedSequence([self.seed, self.word, 0, int(i)])) for i in indices]
        scores = self.evaluator.evaluate(archs, rngs=rngs)
        return np.asarray(scores, np.float64), np.asarray(self.evaluator.seconds, np.float64)


@register_method("proxy_corr")
class ProxyCorrelation(Analysis):
    """Rank correlation of zero-shot proxies with NB201 accuracy (module docstring).

    Args:
        space: the NB201 space (a :class:`~tfnas.spaces.base.TabularSpace` in table order).
        benchmark: the table; ``ground_truth(dataset)`` gives 200-epoch test accuracy (%).
        proxies: ``name -> Proxy``, scored in this order.
        dataset: benchmark column and dataset (``cifar10``, ``cifar100``, ``imagenet16-120``).
        num_classes, input_shape: the networks' head and input (from the dataset).
        batch_size: images per proxy batch.
        subset: number of random cells (0 or >= the space size: all cells).
        seed: run seed (subset and scoring streams).
        chunk: cells between partial saves.
    """

    name = "proxy_corr"
    requires = (TabularSpace,)

    def __init__(self, space: Any, benchmark: Any, proxies: Dict[str, Any], *, dataset: str, num_classes: int,
                 input_shape: Tuple[int, int, int], batch_size: int, subset: int = 0, seed: int = 0,
                 chunk: int = 250):
        require(space, TabularSpace, "method 'proxy_corr'")
        if not proxies:
            raise ValueError("proxy_corr needs at least one proxy")
        if dataset not in NB201_DATASETS:
            raise ValueError(f"proxy_corr: dataset {dataset!r} is not in the NAS-Bench-201 table {NB201_DATASETS}")
        for key, value, low in (("batch_size", batch_size, 1), ("subset", subset, 0), ("seed", seed, 0),
                                ("chunk", chunk, 1)):
            check_int(value, key, "proxy_corr", low=low,
                      message="{owner}: {name} must be an integer >= {low}. Received: {name}={value!r}")
        self.space, self.benchmark, self.proxies = space, benchmark, dict(proxies)
        self.dataset, self.num_classes, self.input_shape = dataset, int(num_classes), tuple(input_shape)
        self.batch_size, self.subset, self.seed, self.chunk = int(batch_size), int(subset), int(seed), int(chunk)


    # ---- cells --------------------------------------------------------------------------

    def cells(self) -> np.ndarray:
        """Sorted table indices to score: all cells, or ``subset`` drawn without replacement from the seed."""
        size = int(self.space.size)
        if self.subset == 0 or self.subset >= size:
            return np.arange(size, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SUBSET_STREAM]))
        return np.sort(rng.choice(size, size=self.subset, replace=False)).astype(np.int64)

    # ---- the analysis -------------------------------------------------------------------

    def analyse(self, context: SearchContext) -> pd.DataFrame:
        """Scores (or resumes) every proxy, writes the outputs, returns the ``correlation.csv`` frame."""
        store = context.store
        cells = self.cells()
        truth = np.asarray(self.benchmark.ground_truth(self.dataset), np.float64)
        rows = []
        for name, proxy in self.proxies.items():
            frame = self._scores(store, name, proxy, cells, context.progress, context.executor)
            rows.append(self._correlate(name, frame, truth))
            store.write_figure(f"scatter_{name}.png", self._scatter(name, frame, truth, rows[-1]), dpi=110)
        table = pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))
        store.write_text("correlation.csv", table.to_csv(index=False))
        return table

    def _scores(self, store: Any, name: str, proxy: Any, cells: np.ndarray, progress: bool,
                executor: Optional[Executor] = None) -> pd.DataFrame:
        final_name, partial_name = f"scores_{name}.csv", f"scores_{name}.partial.csv"
        final, partial = store.path(final_name), store.path(partial_name)
        if os.path.exists(final):
            frame = _read_scores(final)
            _check_cells(final, frame, cells, complete=True)
            logger.info("proxy_corr: %s already scored (%d cells), skipping", name, len(frame))
            return frame
        frame = _read_scores(partial) if os.path.exists(partial) else _empty_scores()
        _check_cells(partial, frame, cells, complete=False)
        scorer = CellScorer(self.space, proxy, name, num_classes=self.num_classes, input_shape=self.input_shape,
                            batch_size=self.batch_size, seed=self.seed, prime_index=int(cells[0]),
                            executor=executor)
        done = len(frame)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(cells), initial=done, desc=f"proxy_corr {name}", unit="cell")
        try:
            while done < len(cells):
                todo = cells[done:done + self.chunk]
                scores, seconds = scorer.evaluate(todo)
                part = pd.DataFrame({
                    "index": todo,
                    "arch": [self.space.encode(self.space.from_index(int(i))) for i in todo],
                    "score": scores,
                    "seconds": seconds,
                })
                frame = part if done == 0 else pd.concat([frame, part], ignore_index=True)
                done = len(frame)
                if done < len(cells):
                    store.write_text(partial_name, frame.to_csv(index=False))
                if bar is not None:
                    bar.update(len(todo))
        finally:
            if bar is not None:
                bar.close()
        store.write_text(final_name, frame.to_csv(index=False))
        store.remove(partial_name)
        return frame

    def _correlate(self, name: str, frame: pd.DataFrame, truth: np.ndarray) -> Dict[str, Any]:
        scores = frame["score"].to_numpy(np.float64)
        acc = truth[frame["index"].to_numpy(np.int64)]
        keep = ~np.isnan(scores)  # -inf (degenerate networks) ranks lowest and stays
        n = int(keep.sum())
        rho = spearman(scores[keep], acc[keep]) if n >= 2 else float("nan")
        tau = kendall(scores[keep], acc[keep]) if n >= 2 else float("nan")
        return {"proxy": name, "dataset": self.dataset, "cells": n, "spearman": rho, "kendall": tau,
                "seconds_per_cell": float(frame["seconds"].mean()) if len(frame) else float("nan")}

    def _scatter(self, name: str, frame: pd.DataFrame, truth: np.ndarray, row: Dict[str, Any]) -> Any:
        """The score-vs-accuracy scatter of proxy ``name`` (a matplotlib ``Figure``)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        scores = frame["score"].to_numpy(np.float64)
        acc = truth[frame["index"].to_numpy(np.int64)]
        finite = np.isfinite(scores)
        fig = Figure(figsize=(5, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.scatter(scores[finite], acc[finite], s=4, alpha=0.4, linewidths=0)
        ax.set_xlabel(f"{name} score (higher is better)")
        ax.set_ylabel(f"{self.dataset} 200-epoch test accuracy (%)")
        excluded = int((~finite).sum())
        note = f", {excluded} non-finite not shown" if excluded else ""
        ax.set_title(f"{name}: Spearman {row['spearman']:.3f}, Kendall {row['kendall']:.3f}\n"
                     f"{row['cells']} cells{note}", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(SCORE_COLUMNS, ("int64", "object", "float64",
                                                                              "float64"))})


def _read_scores(path: str) -> pd.DataFrame:
    from tfnas.io import DamagedFileError, reading

    with reading(path, "delete it to rescore"):
        frame = pd.read_csv(path)
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DamagedFileError(path, f"not a proxy_corr score file (missing columns {missing})", "delete it to rescore")
    return frame


def _check_cells(path: str, frame: pd.DataFrame, cells: np.ndarray, complete: bool) -> None:
    have = frame["index"].to_numpy(np.int64)
    expected = cells if complete else cells[:len(have)]
    if len(have) > len(cells) or not np.array_equal(have, expected):
        raise ValueError(
            f"{path}: holds scores of other cells than this run's {len(cells)} (was [proxy] subset or [run] seed "
            "changed?); delete it or use another [run] out_dir"
        )

