"""Accuracy-vs-latency Pareto fronts and their 2-D hypervolume.

Conventions (stated once, used everywhere):

- accuracy is maximised, latency minimised; a cell *dominates* another when it is at least as
  accurate and at least as fast, and strictly better in one of the two;
- of several cells with equal (accuracy, latency) the front keeps one (the lowest index);
- the hypervolume is computed on normalised objectives: accuracy and latency are rescaled to
  [0, 1] by the ranges ``acc_range = (acc_min, acc_max)`` and ``lat_range = (lat_min, lat_max)``
  of the *space searched* (all feasible cells), and the reference point is that space's worst
  corner (``acc_min``, ``lat_max``), i.e. (0, 1) after normalisation. The hypervolume is then
  the area, within the unit square, of the region dominated by the front: 1.0 would need one
  cell as accurate as the best and as fast as the fastest; the true front of the space scores
  below 1 and a found front at most the true front's value.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


def pareto_front(acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Positions of the non-dominated points, ordered by latency ascending (accuracy ascending).

    Args:
      acc: accuracies ``[n]`` (higher is better).
      lat: latencies ``[n]`` (lower is better).
    """
    acc, lat = np.asarray(acc, np.float64), np.asarray(lat, np.float64)
    if acc.shape != lat.shape or acc.ndim != 1:
        raise ValueError(f"acc and lat must be 1-D of one length; got {acc.shape} and {lat.shape}")
    order = np.lexsort((np.arange(acc.size), -acc, lat))  # latency asc, then accuracy desc, then index
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:  # strictly more accurate than every faster-or-equal point
            front.append(int(i))
            best = acc[i]
    return np.asarray(front, np.int64)


def hypervolume(acc: np.ndarray, lat: np.ndarray, acc_range: Tuple[float, float],
                lat_range: Tuple[float, float]) -> float:
    """Normalised 2-D hypervolume of the points ``(acc, lat)`` (of their front), in [0, 1].

    Each point maps to ``a = (acc - acc_min) / (acc_max - acc_min)`` and
    ``l = (lat - lat_min) / (lat_max - lat_min)``, clipped to [0, 1]; the reference point is
    ``(a, l) = (0, 1)``. With the front sorted by ``l`` ascending (``a`` ascending),
    ``HV = sum_i (l_{i+1} - l_i) * a_i`` with ``l_{n} = 1`` (the staircase area).
    """
    (a0, a1), (l0, l1) = acc_range, lat_range
    if not (a1 > a0 and l1 > l0):
        raise ValueError(f"ranges must be increasing; got acc {acc_range}, lat {lat_range}")
    acc, lat = np.asarray(acc, np.float64), np.asarray(lat, np.float64)
    if acc.size == 0:
        return 0.0
    a = np.clip((acc - a0) / (a1 - a0), 0.0, 1.0)
    lt = np.clip((lat - l0) / (l1 - l0), 0.0, 1.0)
    front = pareto_front(a, lt)
    a, lt = a[front], lt[front]
    right = np.append(lt[1:], 1.0)
    return float(np.sum((right - lt) * a))


def nondominated_ranks(acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Front number of every point (0 = the Pareto front, 1 = the front once front 0 is removed,
    ...), NSGA-II's non-dominated sorting under this module's conventions (equal points share a
    front)."""
    acc, lat = np.asarray(acc, np.float64), np.asarray(lat, np.float64)
    ranks = np.full(acc.size, -1, np.int64)
    rank = 0
    while np.any(ranks < 0):
        left = np.flatnonzero(ranks < 0)
        a, lt = acc[left], lat[left]
        dominated = np.array([np.any((a >= a[i]) & (lt <= lt[i]) & ((a > a[i]) | (lt < lt[i])))
                              for i in range(left.size)])
        ranks[left[~dominated]] = rank
        rank += 1
    return ranks


def crowding_distance(acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of points of one front: for each objective, the gap between a
    point's two neighbours divided by the objective's range, summed; the extremes get ``inf``."""
    acc, lat = np.asarray(acc, np.float64), np.asarray(lat, np.float64)
    dist = np.zeros(acc.size)
    if acc.size <= 2:
        return np.full(acc.size, np.inf)
    for values in (acc, lat):
        order = np.argsort(values, kind="stable")
        span = values[order[-1]] - values[order[0]]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (values[order[2:]] - values[order[:-2]]) / span
    return dist


def nsga_keep(acc: np.ndarray, lat: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` points NSGA-II keeps, in ascending order: whole fronts in rank order,
    then the least crowded points of the front that does not fit (ties: the earlier position)."""
    acc, lat = np.asarray(acc, np.float64), np.asarray(lat, np.float64)
    if n >= acc.size:
        return np.arange(acc.size)
    ranks = nondominated_ranks(acc, lat)
    keep: list = []
    for rank in range(int(ranks.max()) + 1):
        front = np.flatnonzero(ranks == rank)
        if len(keep) + front.size <= n:
            keep.extend(front.tolist())
            continue
        dist = crowding_distance(acc[front], lat[front])
        order = np.lexsort((front, -dist))  # most isolated first, then position
        keep.extend(front[order[:n - len(keep)]].tolist())
        break
    return np.sort(np.asarray(keep, np.int64))


def front_insert(points: Sequence[Tuple[Any, float, float]], point: Tuple[Any, float, float]) -> list:
    """The front ``points`` (``(key, score, latency)``, latency ascending) with ``point`` added: unchanged
    when a point at least as good in both objectives is there, else without the points it dominates."""
    _, score, lat = point
    if any(s >= score and t <= lat for _, s, t in points):
        return list(points)
    kept = [p for p in points if not (score >= p[1] and lat <= p[2])]
    return sorted(kept + [point], key=lambda p: (p[2], -p[1]))


class SearchFront:
    """Pareto bookkeeping of an evolution search: latency of each member, the non-dominated set of every scored
    child as ``(arch, score, latency_ms)`` (latency ascending) and the score / latency ranges seen."""

    def __init__(self) -> None:
        self.latency: Dict[str, float] = {}
        self.points: List[Tuple[str, float, float]] = []
        self.bounds = [math.inf, -math.inf, math.inf, -math.inf]  # score min, max, latency min, max

    def add(self, arch: str, score: float, latency_ms: float) -> None:
        self.latency[arch] = latency_ms
        self.points = front_insert(self.points, (arch, score, latency_ms))
        b = self.bounds
        self.bounds = [min(b[0], score), max(b[1], score), min(b[2], latency_ms), max(b[3], latency_ms)]

    def keep(self, members: List[Tuple[str, float]], n: int) -> List[Tuple[str, float]]:
        keep = nsga_keep(np.array([s for _, s in members]), np.array([self.latency[a] for a, _ in members]), n)
        kept = [members[i] for i in keep]
        self.forget_all_but(kept)
        return kept

    def forget_all_but(self, members: List[Tuple[str, float]]) -> None:
        """Drops the latencies of architectures no longer in ``members`` (the dict stays population-sized)."""
        self.latency = {a: self.latency[a] for a, _ in members}

    def ranges(self) -> List[List[float]]:
        return [self.bounds[:2], self.bounds[2:]]

    def hypervolume(self) -> float:
        """Of the found front, normalised to the ranges seen (NaN while a range is a single value)."""
        (s0, s1), (l0, l1) = self.ranges()
        if not (s1 > s0 and l1 > l0):
            return float("nan")
        return hypervolume(np.array([p[1] for p in self.points]), np.array([p[2] for p in self.points]),
                           (s0, s1), (l0, l1))

    def state(self) -> Dict[str, Any]:
        return {"latency": self.latency, "front": self.points, "bounds": self.bounds}

    @classmethod
    def from_state(cls, state: Optional[Dict[str, Any]]) -> "SearchFront":
        front = cls()
        if state:
            front.latency = {a: float(v) for a, v in state["latency"].items()}
            front.points = [(a, float(sc), float(ms)) for a, sc, ms in state["front"]]
            front.bounds = [float(v) for v in state["bounds"]]
        return front


def write_found_front(store: Any, rows: Sequence[dict], score_name: str, ranges: Sequence[Sequence[float]],
                      title: str) -> str:
    """Writes a search's own front (no true front to compare with) through ``store``: ``pareto.csv``
    (``rows``: ``arch, score, latency_ms, params``), ``pareto.txt`` and ``pareto.png``. ``ranges``:
    ``[[score min, max], [latency min, max]]`` of everything the search scored, the hypervolume's
    normalisation. Returns the text."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=["arch", "score", "latency_ms", "params"])
    (s0, s1), (l0, l1) = ranges
    if s1 > s0 and l1 > l0:
        hv = f"hypervolume {hypervolume(frame['score'], frame['latency_ms'], (s0, s1), (l0, l1)):.4f}, normalised to"
    else:
        hv = "hypervolume undefined: every scored child had one score or one latency, in"
    lines = [f"Pareto front, {score_name} score vs measured latency (ms): {title}",
             f"{hv} the ranges of every scored child: {score_name} "
             f"{s0:.4g}..{s1:.4g}, latency {l0:.3f}..{l1:.3f} ms; reference point (min score, max latency)",
             f"{len(frame)} cells on the front", "",
             f"{'latency ms':>10}  {score_name:>10}  {'params':>9}  arch"]
    lines += [f"{r.latency_ms:>10.3f}  {r.score:>10.4g}  {int(r.params):>9,}  {r.arch}" for r in frame.itertuples()]
    text = "\n".join(lines) + "\n"
    store.write_text("pareto.csv", frame.to_csv(index=False))
    store.write_text("pareto.txt", text)
    store.write_figure("pareto.png", _front_figure(frame, score_name, title), dpi=120)
    return text


def _front_figure(frame: Any, score_name: str, title: str) -> Any:
    fig, ax = _axes()
    ax.step(frame["latency_ms"], frame["score"], where="post", color="C1", marker="o", markersize=3,
            label=f"found front ({len(frame)} cells)")
    return _finish(fig, ax, "measured latency (ms)", f"{score_name} score", title)


def _axes() -> Tuple[Any, Any]:
    """A 6 x 4.5 in. matplotlib ``Figure`` (object API, Agg canvas) and its one ``Axes``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str) -> Any:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_pareto(run_dir: str, true: Any, found: Any, records: Sequence[Any], title: str,
                 acc_range: Tuple[float, float], lat_range: Tuple[float, float]) -> str:
    """Writes ``pareto.csv`` (true and found fronts), ``pareto.txt`` (the table below) and ``pareto.png``.

    ``true``/``found``: DataFrames with ``kind, budget, repeat, arch, index, accuracy, latency_ms,
    params``; ``records``: the sweep's records (their ``hypervolume``). The plot draws the true
    front (black) and the found fronts of the largest budget (one line per repeat). Returns the text.
    """
    import os

    import pandas as pd

    from tfnas.io import atomic_write_figure, atomic_write_text

    hv_true = hypervolume(true["accuracy"].to_numpy(), true["latency_ms"].to_numpy(), acc_range, lat_range)
    lines = [f"Pareto fronts, accuracy (%) vs latency (ms): {title}",
             f"hypervolume: normalised to the searched cells' ranges, accuracy "
             f"{acc_range[0]:.2f}..{acc_range[1]:.2f} %, latency {lat_range[0]:.3f}..{lat_range[1]:.3f} ms; "
             f"reference point (min accuracy, max latency) "
             f"= ({acc_range[0]:.2f} %, {lat_range[1]:.3f} ms)",
             f"true front: {len(true)} cells, hypervolume {hv_true:.4f}", "",
             f"{'budget':>6}  {'n':>3}  {'found HV mean ± std':>20}  {'HV / true':>9}  {'front size':>10}"]
    hv = pd.DataFrame([{"budget": r.budget, "hv": r.hypervolume, "size": len(r.extra.get("pareto_front", []))}
                       for r in records])
    if len(hv):
        for budget, g in hv.groupby("budget", sort=True):
            std = 0.0 if len(g) < 2 else float(g["hv"].std())
            lines.append(f"{int(budget):>6}  {len(g):>3}  {g['hv'].mean():>11.4f} ± {std:<6.4f}  "
                         f"{g['hv'].mean() / hv_true:>9.3f}  {g['size'].mean():>10.1f}")
    lines += ["", "true front (latency ascending):", f"{'latency ms':>10}  {'accuracy':>8}  {'params':>9}  arch"]
    lines += [f"{r.latency_ms:>10.3f}  {r.accuracy:>8.2f}  {int(r.params):>9,}  {r.arch}" for r in true.itertuples()]
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(run_dir, "pareto.csv"), pd.concat([true, found], ignore_index=True).to_csv(
        index=False))
    atomic_write_text(os.path.join(run_dir, "pareto.txt"), text)
    atomic_write_figure(_pareto_figure(true, found, title), os.path.join(run_dir, "pareto.png"), dpi=120)
    return text


def _pareto_figure(true: Any, found: Any, title: str) -> Any:
    fig, ax = _axes()
    ax.step(true["latency_ms"], true["accuracy"], where="post", color="k", marker="o", markersize=3,
            label=f"true front ({len(true)} cells)")
    if len(found):
        last = found[found["budget"] == found["budget"].max()]
        for n, (_, g) in enumerate(last.groupby("repeat", sort=True)):
            g = g.sort_values("latency_ms")
            ax.step(g["latency_ms"], g["accuracy"], where="post", color="C1", alpha=0.5, marker=".",
                    label=f"found, budget {int(g['budget'].iloc[0])} (one line per repeat)" if n == 0 else None)
    return _finish(fig, ax, "latency (ms)", "true accuracy (%)", title)
