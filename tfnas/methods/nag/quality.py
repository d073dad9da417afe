"""What generated cells are worth: decoding, validity / uniqueness / novelty, conditional quality.

- *valid*: the sampled DAG prunes to a cell of the space (:func:`tfnas.spaces.dag.prune`) and, on
  a tabular space, that cell exists there (its DAG key is in the space's lookup);
- *unique*: distinct DAG keys among the valid ones (isomorphic cells count once);
- *novel*: unique cells that are not in the GAN's training set.

On NAS-Bench-201 the true accuracy of every generated cell is known, so for each requested class
:func:`class_report` sets the generated cells' accuracy and parameters beside the real cells of
that class and beside uniform sampling (mean, fraction in the space's top 5 %), and
:func:`confusion` counts requested vs. obtained classes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfnas.spaces.dag import DagSpec, dag_key, prune

__all__ = ["class_of", "class_report", "confusion", "decode", "sample_stats", "tertiles"]


def decode(x: np.ndarray, a: np.ndarray, spec: DagSpec, lookup: Optional[Mapping[str, int]] = None) -> List[Any]:
    """Per sampled cell (``x [B, M, T]``, ``a [B, M, M]``): its space index when ``lookup`` (DAG key
    -> index) is given, else its DAG key; ``None`` when invalid."""
    out: List[Any] = []
    present = x.sum(-1) > 0.5
    codes = x.argmax(-1)
    for b in range(len(x)):
        idx = np.flatnonzero(present[b])
        cell = prune(a[b][np.ix_(idx, idx)] > 0.5, codes[b][idx], spec) if len(idx) else None
        if cell is None:
            out.append(None)
            continue
        key = dag_key(*cell)
        out.append(key if lookup is None else lookup.get(key))
    return out


def sample_stats(decoded: Sequence[Any], training: Optional[set] = None) -> Dict[str, float]:
    """``valid`` (fraction of samples), ``unique`` (fraction of valid), ``novel`` (fraction of unique
    not in ``training``); NaN where the denominator is empty."""
    valid = [d for d in decoded if d is not None]
    unique = set(valid)
    stats = {"samples": float(len(decoded)), "valid": len(valid) / len(decoded) if decoded else float("nan"),
             "unique": len(unique) / len(valid) if valid else float("nan")}
    if training is not None:
        stats["novel"] = len(unique - training) / len(unique) if unique else float("nan")
    return stats


def tertiles(values: np.ndarray) -> np.ndarray:
    """The two cut points splitting ``values`` into three equal-count classes."""
    return np.quantile(np.asarray(values, np.float64), [1 / 3, 2 / 3])


def class_of(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Class 0 / 1 / 2 of each value for the cut points of :func:`tertiles`."""
    return np.searchsorted(np.asarray(cuts), np.asarray(values, np.float64), side="right").astype(np.int32)


def class_report(requested: Sequence[int], generated: Sequence[int], truth: np.ndarray, params: np.ndarray,
                 real: Sequence[int], top5_cut: float) -> Dict[str, float]:
    """One row of the quality table for a requested class.

    Args:
      requested: the class labels asked for (for the row's name).
      generated: space indices of the unique valid generated cells.
      truth / params: accuracy (%) and parameter count of every cell of the space.
      real: indices of the training cells of that class.
      top5_cut: the accuracy above which a cell is in the space's top 5 %.
    """
    gen = np.asarray(list(generated), np.int64)
    real = np.asarray(list(real), np.int64)
    row: Dict[str, float] = {f"class_{k}": float(c) for k, c in enumerate(requested)}
    row["cells"] = float(len(gen))
    row["gen_acc_mean"] = float(truth[gen].mean()) if len(gen) else float("nan")
    row["gen_acc_max"] = float(truth[gen].max()) if len(gen) else float("nan")
    row["real_acc_mean"] = float(truth[real].mean()) if len(real) else float("nan")
    row["gen_top5_frac"] = float((truth[gen] >= top5_cut).mean()) if len(gen) else float("nan")
    row["real_top5_frac"] = float((truth[real] >= top5_cut).mean()) if len(real) else float("nan")
    row["gen_params_mean_M"] = float(params[gen].mean() / 1e6) if len(gen) else float("nan")
    row["real_params_mean_M"] = float(params[real].mean() / 1e6) if len(real) else float("nan")
    return row


def confusion(requested: Sequence[int], obtained: Sequence[int], classes: int = 3) -> np.ndarray:
    """``counts[r, o]``: cells requested in class ``r`` that landed in class ``o``."""
    counts = np.zeros((classes, classes), np.int64)
    for r, o in zip(requested, obtained):
        counts[int(r), int(o)] += 1
    return counts
