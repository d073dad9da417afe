"""TensorBoard event files of a run directory (``[run] tensorboard``), written with ``tf.summary``.

``<run dir>/tensorboard/`` holds one folder per stream, each a TensorBoard run:

- ``search/``, ``prepare/``: every row a method logs to ``history.csv`` as scalars
  ``history/<column>`` at step = the row's first column (epoch, iteration, step), and the values
  of each candidate a weight-sharing search evaluates (``SearchContext.candidate``) as
  ``candidate/<name>`` at step = its running candidate (or step) index;
- ``sweep/repeat_<r>/``: per sweep record, ``sweep/<metric>`` (top-1, top-10/100, regret,
  Spearman, Kendall, counted queries, wall time) at step = the budget, and numeric ``extra`` fields as
  ``sweep_extra/<key>``; ``sweep/mean/``: the mean over repeats once a budget has all of them;
- ``train/``: per epoch ``train/loss``, ``train/accuracy``, ``train/lr``, ``train/epoch_s``,
  ``eval/loss``, ``eval/accuracy`` (evaluated epochs only);
- ``hparams/``: one hparams-plugin session per run (:func:`hparams_of` keys) with its final
  metrics as ``final/<name>`` scalars, so ``tensorboard --logdir runs/`` compares runs; a resumed
  run that adds results replaces this folder's event file (:func:`write_hparams`).

Writers are created on the first write and flushed per written row or record, never per
step. A failure to write (full disk, a file where the folder should be) logs one warning per
stream and turns that stream off: TensorBoard never stops a search.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from tfnas.config import Config

logger = logging.getLogger(__name__)

#: Folder of the event files inside a run directory.
EVENTS_DIR = "tensorboard"

#: ``(section, key)`` pairs of the config that every hparams session carries (flow extras are added).
HPARAM_KEYS = (("method", "name"), ("space", "name"), ("dataset", "name"), ("benchmark", "name"), ("run", "seed"),
               ("predictor", "nsam"), ("predictor", "ec_source"), ("predictor", "epochs"), ("proxy", "name"),
               ("search", "bts"), ("search", "population"), ("search", "iterations"), ("search", "epochs"),
               ("search", "objective"), ("search", "max_latency_ms"), ("budget", "max_params"))
TRAIN_HPARAM_KEYS = (("space", "name"), ("space", "arch"), ("dataset", "name"), ("run", "seed"), ("train", "epochs"),
                     ("train", "optimizer"), ("train", "lr"), ("train", "schedule"), ("train", "weight_decay"))


def events_root(cfg: Config) -> Optional[str]:
    """``<run dir>/tensorboard``, or None when ``[run] tensorboard = false``."""
    return os.path.join(cfg.out_dir, EVENTS_DIR) if cfg.run.tensorboard else None


def hparams_of(cfg: Config, keys=HPARAM_KEYS, unread=()) -> Dict[str, Any]:
    """``{"section.key": value}`` of ``keys`` (bool, int, float or str, as the hparams plugin takes) but those the
    run never reads (``unread``, its :func:`~tfnas.run.unused.tolerated` keys: a Zen evolution's row named
    ``predictor.nsam``)."""
    return {f"{section}.{key}": getattr(getattr(cfg, section), key) for section, key in keys
            if (section, key) not in unread}


def _number(value: Any) -> Optional[float]:
    """A finite float of a logged value; None for text, None, NaN and inf (not drawn)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) or type(value).__module__ == "numpy":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    return None


class EventStream:
    """One TensorBoard run (folder of event files); a ``root`` of None writes nothing.

    Args:
        root: the run directory's ``tensorboard/`` folder (:func:`events_root`), or None.
        stream: subfolder, e.g. ``search`` or ``sweep/repeat_0``.
    """

    def __init__(self, root: Optional[str], stream: str):
        self.path = os.path.join(root, stream) if root else None
        self._writer: Any = None
        self._failed = self.path is None
        self._points: Optional[Dict[Tuple[str, int], float]] = None  # (tag, step) -> value, in the stream's files
        self._earlier_files: List[str] = []  # the names of those there before this process wrote

    @property
    def enabled(self) -> bool:
        return not self._failed

    def _write(self, fn) -> None:
        if self._failed:
            return
        import tensorflow as tf

        try:
            if self._writer is None:
                self._read()
                self._writer = tf.summary.create_file_writer(self.path)
            with self._writer.as_default():
                fn(tf)
            self._writer.flush()
        except (OSError, ValueError, TypeError, tf.errors.OpError) as exc:
            # TensorBoard is a view of the run, never a reason to stop it: warn once, then stay off.
            logger.warning("TensorBoard events in %s are off for this run: %s", self.path, exc)
            self._failed, self._writer = True, None

    def scalars(self, values: Mapping[str, Any], step: int, prefix: str = "", replace: str = "") -> None:
        """``prefix + name`` scalars at ``step``, one flush; text, None and non-finite values are skipped.

        A point already in the stream at ``step`` is not drawn again (a resumed run redoes steps a killed one
        drew). Where its value differs, the earlier run was another one from ``step`` on: with ``replace =
        "after"`` every point of the stream's tags under ``prefix`` from ``step`` on is stale (a training or search
        that started afresh, its tags counting the same steps), with ``"tag"`` those of the differing tags (tags
        counting steps of their own, as a search's ``candidate/`` values do). Stale points are removed from the
        event files that were there before this process (rewritten in place, in their order): TensorBoard draws
        every point a file holds, and purges none of a TF2 file's points by their step."""
        numbers = {f"{prefix}{name}": _number(v) for name, v in values.items()}
        numbers = {tag: float(np.float32(v)) for tag, v in numbers.items() if v is not None}
        if not numbers or self._failed:
            return
        step = int(step)
        self._read()
        stale = {tag for tag, value in numbers.items() if self._points.get((tag, step), value) != value}
        if replace and stale:
            tags = (lambda tag: tag.startswith(prefix)) if replace == "after" else (lambda tag: tag in stale)
            self._drop(lambda tag, at: at >= step and tags(tag))
        drawn = {tag: value for tag, value in numbers.items() if (tag, step) not in self._points}
        if drawn:  # (nothing new: no event file is opened)

            def write(tf):
                for tag, value in drawn.items():
                    tf.summary.scalar(tag, value, step=step)

            self._write(write)
            self._points.update(((tag, step), value) for tag, value in drawn.items())

    def _read(self) -> None:
        """The stream's points and files as they are before this process draws anything (read once)."""
        if self._points is None:
            self._earlier_files = _event_files(self.path)
            self._points = _points_in(self.path)

    def _drop(self, stale: Callable[[str, int], bool]) -> None:
        """Rewrites the event files that were there before this process (:meth:`_read`) without the points
        ``stale(tag, step)`` names, each atomically under its own name, so their order is kept."""
        import tensorflow as tf
        from tensorflow.core.util.event_pb2 import Event

        for name in self._earlier_files:
            path = os.path.join(self.path, name)
            kept, changed = [], False
            try:
                for record in tf.data.TFRecordDataset(path):
                    event = Event.FromString(record.numpy())
                    values = [v for v in event.summary.value if not stale(v.tag, int(event.step))]
                    if len(values) < len(event.summary.value):
                        changed = True
                        if not values:
                            continue
                        del event.summary.value[:]
                        event.summary.value.extend(values)
                    kept.append(event.SerializeToString())
            except (tf.errors.DataLossError, tf.errors.OpError, OSError):  # (a torn record: the rest is dropped)
                changed = True
            if changed:
                try:
                    temp = os.path.join(self.path, f".{name}.tmp")  # (TensorBoard reads events.out.tfevents.* only)
                    with tf.io.TFRecordWriter(temp) as writer:
                        for record in kept:
                            writer.write(record)
                    os.replace(temp, path)
                except (OSError, tf.errors.OpError) as exc:
                    logger.warning("TensorBoard events in %s: stale points left in place: %s", path, exc)
        self._points = {key: value for key, value in (self._points or {}).items() if not stale(*key)}

    def rewrite_where_changed(self, points: Mapping[Tuple[str, int], float]) -> None:
        """Where ``points`` (``(tag, step) -> value``) differ from the stream's, replaces its event files by one
        holding its points overlaid with ``points``, in step order."""
        if self._failed or self._points is None or all(self._points.get(k) == v for k, v in points.items()):
            return
        self.rewrite({**self._points, **points})

    def rewrite(self, points: Mapping[Tuple[str, int], float]) -> None:
        """Replaces the stream's event files by one holding ``points`` (``(tag, step) -> value``) in step order."""
        if self._failed:
            return
        self.close()
        for name in _event_files(self.path):
            try:
                os.remove(os.path.join(self.path, name))
            except OSError as exc:
                logger.warning("TensorBoard events in %s: %s left in place: %s", self.path, name, exc)
        self._points, self._earlier_files = {}, []
        ordered = sorted(points.items(), key=lambda item: (item[0][1], item[0][0]))

        def write(tf):
            for (tag, step), value in ordered:
                tf.summary.scalar(tag, value, step=step)

        self._write(write)
        self._points = dict(points)

    def hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, Any], step: int = 0) -> None:
        """One hparams-plugin session (``hparams``) and its ``final/<name>`` metric scalars at ``step``."""
        numbers = {f"final/{k}": _number(v) for k, v in metrics.items()}

        def write(tf):
            from tensorboard.plugins.hparams import api as hp

            hp.hparams(dict(hparams), trial_id=os.path.basename(os.path.dirname(os.path.dirname(self.path))))
            for tag, value in numbers.items():
                if value is not None:
                    tf.summary.scalar(tag, value, step=int(step))

        self._write(write)

    def close(self) -> None:
        if self._writer is not None:
            import tensorflow as tf

            try:
                self._writer.close()
            except (OSError, tf.errors.OpError) as exc:
                logger.warning("closing TensorBoard events in %s failed: %s", self.path, exc)
            self._writer = None


def _points_in(folder: str) -> Dict[Tuple[str, int], float]:
    """``(tag, step) -> value`` (the last one drawn) of the event files of ``folder`` (none when it has no files).

    A search resumed after a kill redoes the steps after its last saved state, and the killed process
    may already have drawn some of them: their scalars are not written twice. A file whose writer was
    killed mid-record is read up to the torn record."""
    import tensorflow as tf
    from tensorflow.core.util.event_pb2 import Event

    points: Dict[Tuple[str, int], float] = {}
    for name in _event_files(folder):
        try:  # (tf.compat.v1.train.summary_iterator reads the same, with a deprecation warning on the console)
            for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
                event = Event.FromString(record.numpy())
                points.update(((value.tag, int(event.step)), _value_of(value)) for value in event.summary.value)
        except (tf.errors.DataLossError, tf.errors.OpError, OSError) as exc:
            logger.info("TensorBoard events in %s: read up to a damaged record (%s)", name, exc)
    return points


def _event_files(folder: str) -> List[str]:
    """The names of the event files of ``folder`` in the order TensorBoard reads them (none without a folder)."""
    try:
        return sorted(n for n in os.listdir(folder) if n.startswith("events.out.tfevents."))
    except OSError:
        return []


def _has_events(folder: str) -> bool:
    try:
        return any(n.startswith("events.out.tfevents.") for n in os.listdir(folder))
    except OSError:
        return False


def _value_of(value: Any) -> float:
    """A summary value's scalar (a tensor in TF2's files), NaN for anything else (text, hparams)."""
    import tensorflow as tf

    if value.HasField("tensor"):
        array = tf.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind == "f":
            return float(array.reshape(()))
    return float(value.simple_value) if value.HasField("simple_value") else float("nan")


def write_hparams(root: Optional[str], hparams: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    """Writes the run's one hparams row to ``<root>/hparams``, replacing an earlier one.

    TensorBoard keeps the first session of a folder, so a resumed run that adds results (records,
    epochs) removes the old event file before writing the new row; nothing else lives there.
    """
    if root is None:
        return
    stream = EventStream(root, "hparams")
    try:
        for name in os.listdir(stream.path):
            if name.startswith("events.out.tfevents."):
                os.unlink(os.path.join(stream.path, name))
    except OSError:  # no folder yet, or not a folder: the write below reports a real problem once
        pass
    stream.hparams(hparams, metrics)
    stream.close()


def hparams_missing(root: Optional[str]) -> bool:
    """Whether a run writing events to ``root`` has no hparams row yet: one stopped between saving its
    last result and writing the row (Ctrl-C, SIGTERM, ``kill -9``) leaves none, and the next run, which
    adds no result, writes it then."""
    return root is not None and not _points_in(os.path.join(root, "hparams"))


def history_step(row: Mapping[str, Any], index: int) -> int:
    """The step of a ``history.csv`` row: its first column when integral, else its 1-based row number."""
    first = next(iter(row.values()), None)
    number = _number(first)
    if number is not None and number == int(number):
        return int(number)
    return index + 1


#: RunRecord fields drawn per sweep record (NaN ones, e.g. Spearman of the training oracle, are skipped).
SWEEP_METRICS = ("top1_acc", "top10_acc", "top100_acc", "regret", "spearman", "kendall", "queries", "wall_s",
                 "latency_ms", "params", "hypervolume")  # (the last three: a hardware-aware sweep's)


class SweepEvents:
    """Sweep records as scalars: ``sweep/repeat_<r>/`` per record, ``sweep/mean/`` per finished budget.

    Both streams use the same tags (``sweep/top1_acc``, ``sweep/regret``, ...), so TensorBoard
    draws every repeat and their mean in one chart per metric, against the budget (the allowed
    ground-truth queries; ``sweep/queries`` shows how many were spent).
    """

    def __init__(self, root: Optional[str], repeats: int):
        self.root, self.repeats = root, repeats
        self.streams: Dict[str, EventStream] = {}
        self.means: Dict[Tuple[str, int], float] = {}  # (tag, budget) -> the mean this process drew or would draw

    def stream(self, name: str) -> EventStream:
        if name not in self.streams:
            self.streams[name] = EventStream(self.root, name)
        return self.streams[name]

    def record(self, record: Any, records: Any) -> None:
        """Writes ``record`` (a :class:`tfnas.results.RunRecord`); ``records`` are all records so far."""
        if self.root is None:
            return
        self._draw(record, {f"sweep/repeat_{record.repeat}", f"search/repeat_{record.repeat}"})
        same = [r for r in records if r.budget == record.budget]
        if len(same) == self.repeats:
            self._draw_mean(record.budget, same)

    def _draw(self, record: Any, streams: Any) -> None:
        """The record's values into ``sweep/repeat_<r>`` and its rankings into ``search/repeat_<r>``, where in
        ``streams``."""
        if f"sweep/repeat_{record.repeat}" in streams:
            values = {f"sweep/{m}": getattr(record, m) for m in SWEEP_METRICS}
            values.update({f"sweep_extra/{k}": v for k, v in record.extra.items()})
            self.stream(f"sweep/repeat_{record.repeat}").scalars(values, step=record.budget)
        if f"search/repeat_{record.repeat}" in streams:
            # the method's rankings during the search (Siamese-NAS BTS points, BRP-NAS rounds), a chart per budget
            for step, rho in zip(record.extra.get("ranking_steps", ()), record.extra.get("ranking_spearman", ())):
                self.stream(f"search/repeat_{record.repeat}").scalars(
                    {f"ranking_spearman/budget_{record.budget}": rho}, step=step)

    def _draw_mean(self, budget: int, same: Any) -> None:
        """The mean over ``same`` at ``budget``; a mean that changed (more repeats) replaces the earlier one when the
        sweep's events close (:meth:`close`: one rewrite of the stream, in step order)."""
        mean = {f"sweep/{m}": _mean(getattr(r, m) for r in same) for m in SWEEP_METRICS}
        self.stream("sweep/mean").scalars(mean, step=budget)
        self.means.update(((tag, budget), float(np.float32(v))) for tag, v in mean.items() if _number(v) is not None)

    def restore(self, records: Any) -> bool:
        """Draws ``records`` (those already in ``runs.jsonl``) again into their streams that hold no event file:
        ``tensorboard/`` deleted, or the run made with ``[run] tensorboard = false``. Streams still there are left
        as they are; a missing mean is drawn, per budget, over the budget's records when they are at least
        ``[budget] repeats``. Returns whether anything was missing."""
        if self.root is None or not records:
            return False
        budgets = sorted({r.budget for r in records})
        by_budget = {b: [r for r in records if r.budget == b] for b in budgets}
        names = {f"sweep/repeat_{r.repeat}" for r in records} | {
            f"search/repeat_{r.repeat}" for r in records if r.extra.get("ranking_steps")}
        if any(len(same) >= self.repeats for same in by_budget.values()):
            names.add("sweep/mean")
        missing = {name for name in names if not _has_events(os.path.join(self.root, name))}
        for record in sorted(records, key=lambda r: (r.budget, r.repeat)):
            self._draw(record, missing)
        if "sweep/mean" in missing:
            for budget, same in by_budget.items():
                if len(same) >= self.repeats:
                    self._draw_mean(budget, same)
        return bool(missing)

    def close(self) -> None:
        if "sweep/mean" in self.streams:
            self.streams["sweep/mean"].rewrite_where_changed(self.means)
        for stream in self.streams.values():
            stream.close()


def sweep_final_metrics(records: Any) -> Dict[str, Any]:
    """Final metrics of a sweep for its hparams row: means at the largest budget, total wall time."""
    if not records:
        return {}
    top = max(r.budget for r in records)
    last = [r for r in records if r.budget == top]
    metrics = {name: _mean(getattr(r, name) for r in last)
               for name in ("top1_acc", "regret", "spearman", "kendall", "hypervolume")}
    metrics.update(budget=top, records=len(records), wall_s=sum(r.wall_s for r in records))
    return metrics


def _mean(values: Any) -> Optional[float]:
    numbers = [v for v in (_number(x) for x in values) if v is not None]
    return sum(numbers) / len(numbers) if numbers else None
