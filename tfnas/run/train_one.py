"""Train one architecture from a resolved config: data, Trainer, evaluation, export.

Used by ``tools/train.py`` and by the search flow for the found architecture. The run directory
(``[run] out_dir``, default ``runs/<cfg stem>``) gets ``config.cfg``, ``checkpoints/`` (a killed
run resumes from the newest), ``history.csv``, ``metrics.json``, one export per ``[export] format``
(``saved_model/``, ``model.keras``, ``model.tflite``; names and the rule for a resumed run in
:mod:`tfnas.run.exports`) and, with ``[run] tensorboard``, ``tensorboard/train/`` (per-epoch loss,
accuracy, learning rate) and ``tensorboard/hparams/`` (:mod:`tfnas.run.events`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from tfnas.config import Config, ConfigError, validate_config
from tfnas.io import first_line
from tfnas.run.events import TRAIN_HPARAM_KEYS, EventStream, events_root, hparams_of, write_hparams
from tfnas.run.exports import check_calibration_data, export_lines, export_trained, remove_stale_exports
from tfnas.run.factory import build_datasets, build_space, where
from tfnas.run.rundir import RunDir
from tfnas.run.unused import tolerated
from tfnas.train.history import History

logger = logging.getLogger(__name__)

#: A training resumes with more epochs, and exports (or not) in any formats.
TRAIN_FREE_KEYS = (("train", "epochs"), ("train", "enabled"), ("export", "enabled"), ("export", "format"),
                   ("export", "quantize"), ("export", "calibration"))


def warn_executor_keys_unused(cfg: Config) -> None:
    """``tools/train.py`` trains one network: ``[run] executor / workers / ...`` are said to be unused
    (not silently ignored); a search that trains its result used them for the search."""
    r = cfg.run
    unused = [f"{key} = {getattr(r, key)}" for key in ("executor", "workers", "worker_threads", "ray_address")
              if getattr(r, key) != getattr(type(r)(), key)]
    if unused:
        logger.warning("%s: [run] %s: not used by tools/train.py, which trains one network (on several machines: "
                       "[run] strategy = multi_worker)", where(cfg), ", ".join(unused))


@dataclass
class TrainOutcome:
    run_dir: str
    arch: str
    params: int
    history: Any
    metrics: Dict[str, float] = field(default_factory=dict)
    exports: Dict[str, str] = field(default_factory=dict)
    calibration: str = ""

    @property
    def export_path(self) -> Optional[str]:
        """The first export (``[export] format`` order), or None."""
        return next(iter(self.exports.values()), None)

    def table(self) -> str:
        h = self.history
        lines = [f"{'epoch':>5}  {'lr':>9}  {'loss':>8}  {'train acc':>9}  {'eval loss':>9}  {'eval acc':>8}  {'s':>6}"]
        for i, epoch in enumerate(h.epoch):
            def fmt(values, spec):
                v = values[i] if i < len(values) else None
                return format(v, spec) if v is not None else "-"

            lines.append(f"{epoch:>5}  {fmt(h.lr, '9.5f')}  {fmt(h.loss, '8.4f')}  {fmt(h.train_acc, '9.4f')}  "
                         f"{fmt(h.eval_loss, '9.4f')}  {fmt(h.eval_acc, '8.4f')}  {fmt(h.seconds, '6.1f')}")
        lines.append("")
        lines.append(f"arch: {self.arch}")
        lines.append(f"trainable parameters: {self.params:,}")
        if self.metrics:
            m = self.metrics
            lines.append(f"final evaluation: loss {m['loss']:.4f}, accuracy {100 * m['accuracy']:.2f}%")
        lines.extend(export_lines(self.exports, self.calibration))
        return "\n".join(lines)


def epoch_scalars(row: Dict[str, Any]) -> Dict[str, Any]:
    """TensorBoard tags of one :class:`~tfnas.train.history.History` row (None values are skipped)."""
    return {"train/loss": row["loss"], "train/accuracy": row["train_acc"], "train/lr": row["lr"],
            "train/epoch_s": row["seconds"], "eval/loss": row["eval_loss"], "eval/accuracy": row["eval_acc"]}


#: The largest epoch number a ``history.csv`` row may carry (``[train] epochs`` is far below it).
MAX_EPOCH = 2**31 - 1


class EpochLog:
    """``history.csv`` of a training, rewritten (atomically) after every epoch.

    A resumed training's rows replace those of the epochs it trains again and the rows of the
    epochs before them are kept, so a training stopped by Ctrl-C or a kill keeps the row of every
    epoch it finished and its resume continues them. A file damaged outside tfnas is warned about
    and then holds the epochs trained from now on; one edited by hand is put back in order (rows
    sorted by epoch, the last row of a repeated epoch kept) with a warning, and epochs without a
    row (deleted, or the whole file lost) are named when the training resumes.
    """

    NAME = "history.csv"

    def __init__(self, run_dir: RunDir):
        import pandas as pd

        self._pd, self._store = pd, run_dir.store
        path = run_dir.file(self.NAME)
        self._rows: List[Dict[str, Any]] = []
        self._old = pd.DataFrame(History().to_dict())
        self._written = os.path.exists(path)
        if self._written:
            try:
                self._old = self._ordered(pd.read_csv(path), path)
            except (ValueError, KeyError, TypeError) as exc:  # pandas' ParserError is a ValueError
                logger.warning("%s: unreadable (%s); it now holds the epochs trained in this run only", path,
                               first_line(exc))

    def _ordered(self, old: Any, path: str) -> Any:
        """``old``'s rows by epoch, one per epoch (the last written); ValueError for epochs that are
        not whole numbers from 1 to :data:`MAX_EPOCH`."""
        epochs = old["epoch"]
        api = self._pd.api.types
        if not api.is_numeric_dtype(epochs) or api.is_bool_dtype(epochs) or epochs.isna().any() or (
                (epochs < 1) | (epochs > MAX_EPOCH) | (epochs != epochs.round())).any():
            raise ValueError(f"column 'epoch' holds values that are not epoch numbers 1, 2, ... {MAX_EPOCH}")
        old = old.assign(epoch=epochs.astype(int))
        repeated = sorted(set(old["epoch"][old["epoch"].duplicated()]))
        if repeated:
            logger.warning("%s holds more than one row for epoch(s) %s; the last row of each is kept", path,
                           _spans(repeated))
        elif old["epoch"].is_monotonic_increasing:
            return old
        else:
            logger.warning("%s: rows not in epoch order; they are put back in order", path)
        return old.drop_duplicates("epoch", keep="last").sort_values("epoch", kind="stable").reset_index(drop=True)

    def append(self, row: Dict[str, Any]) -> None:
        if not self._rows and row["epoch"] > 1:  # the first epoch of a resumed training
            kept = set(self._old["epoch"][self._old["epoch"] < row["epoch"]])
            missing = [e for e in range(1, row["epoch"]) if e not in kept]
            if missing:  # rows deleted or the file lost, or the file of a training before rows preceded checkpoints
                logger.warning("%s has no row for epoch(s) %s of the checkpoint this training resumes from; "
                               "they stay missing", self.NAME, _spans(missing))
        self._rows.append(dict(row))
        self._write()

    def close(self) -> Any:
        """Writes the table when no epoch was (a training of none still leaves one); returns its rows."""
        if not self._written:
            self._write()
        return self.frame()

    def frame(self) -> Any:
        """The rows of the earlier epochs kept and of this run's epochs (the file's content)."""
        if not self._rows:
            return self._old
        kept = self._old[self._old["epoch"] < self._rows[0]["epoch"]]
        new = self._pd.DataFrame(self._rows)
        return new if kept.empty else self._pd.concat([kept, new], ignore_index=True)

    def _write(self) -> None:
        self._store.write_text(self.NAME, self.frame().to_csv(index=False))
        self._written = True


def _spans(numbers: List[int]) -> str:
    """``[2, 4, 5, 6]`` as ``"2, 4-6"``."""
    spans: List[List[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


#: The most elements one tensor may hold for TensorFlow's CPU kernels, many of which index with 32-bit integers
#: (a larger activation crashed the process rather than raising an error).
MAX_TENSOR_ELEMENTS = 2**31 - 1


def check_activation_size(model: Any, batch_size: int, cfg: Config) -> None:
    """Refuses a batch whose largest activation would outgrow :data:`MAX_TENSOR_ELEMENTS`.

    Reads the output shapes of a functional model's layers (nb201, zen, tinynano); nested layers'
    inner tensors and subclassed models (darts, lite, nasnet_dag) are not seen, so this catches the
    gross cases (an ``image_size`` of thousands), not every one."""
    largest = 0
    if getattr(model, "inputs", None) and getattr(model, "outputs", None):
        for layer in model.layers:
            try:
                outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
            except (AttributeError, ValueError):  # a layer used more than once, or not called symbolically
                continue
            for tensor in outputs:
                size = 1
                for dim in tuple(getattr(tensor, "shape", ()))[1:]:
                    size *= int(dim or 1)
                largest = max(largest, size)
    if largest * batch_size > MAX_TENSOR_ELEMENTS:
        raise ConfigError(f"{where(cfg, 'dataset', 'batch_size')}: with [dataset] image_size "
                          f"{cfg.dataset.image_size} the network's largest activation would hold {batch_size} x "
                          f"{largest:,} = {batch_size * largest:,} elements, more than TensorFlow's CPU kernels can "
                          f"index ({MAX_TENSOR_ELEMENTS:,}); lower [dataset] batch_size or image_size")


def train_architecture(cfg: Config, hparams: bool = True) -> TrainOutcome:
    """Trains ``[space] arch`` on ``[dataset]`` with ``[train]``, evaluates, exports per ``[export]``.

    ``hparams``: write this training's TensorBoard hparams row (off for the training after a
    search, whose own row carries the trained accuracy).
    """
    from tfnas.train.export import count_params, inference_model
    from tfnas.train.trainer import train_and_evaluate

    validate_config(cfg)  # (a Config built or changed in Python)

    if not cfg.space.arch:
        raise ConfigError(f"{where(cfg, 'space', 'arch')}: expected an architecture string of "
                          f"space {cfg.space.name!r}, got nothing")
    strategy: Any = cfg.run.strategy
    if strategy == "multi_worker":  # collective ops must be configured before TensorFlow runs any op
        from tfnas.train.distribute import make_strategy

        strategy = make_strategy(strategy)
    run_dir = RunDir(cfg, ignore=TRAIN_FREE_KEYS, tolerate=tolerated(cfg, "train"))
    run_dir.check()
    space = build_space(cfg)
    try:
        arch = space.decode(cfg.space.arch)
    except ValueError as exc:
        raise ConfigError(f"{where(cfg, 'space', 'arch')}: {exc}") from None
    train_ds, eval_ds, info = build_datasets(cfg)
    check_calibration_data(cfg)

    def model_fn():
        # DropPath layers exist only when a drop-path schedule is asked for; the Trainer ramps their rate.
        kwargs = {"drop_path_rate": 0.0} if cfg.train.drop_path > 0 else {}
        return space.build(arch, info.num_classes, info.image_shape, **kwargs)

    try:  # a network the images do not fit (sizes, stages) is a config error, found before the directory is written
        probe = model_fn()
    except ValueError as exc:
        raise ConfigError(f"{where(cfg, 'space', 'arch')}: the network cannot be built for the images of [dataset] "
                          f"({info.name}, {'x'.join(map(str, info.image_shape))}; [dataset] image_size and the "
                          f"[space] keys set them): {exc}") from exc
    check_activation_size(probe, cfg.dataset.batch_size, cfg)
    del probe

    events = EventStream(events_root(cfg), "train")
    with run_dir:
        epochs_log = EpochLog(run_dir)

        def on_epoch(row: Dict[str, Any]) -> None:
            epochs_log.append(row)
            # (replace: the points of another training, one whose checkpoints were deleted, are removed)
            events.scalars(epoch_scalars(row), step=row["epoch"], replace="after")

        try:
            model, history, metrics = train_and_evaluate(
                model_fn, cfg.train, train_ds, eval_ds, jit_compile=cfg.run.jit_compile, strategy=strategy,
                checkpoint_dir=run_dir.file("checkpoints"), progress=cfg.run.progress, seed=cfg.run.seed,
                on_epoch=on_epoch,
            )
        except Exception as exc:  # a peer of a multi-worker cluster gone: one line, not TensorFlow's traceback
            from tfnas.train.distribute import peer_lost

            lost = peer_lost(exc) if cfg.run.strategy == "multi_worker" else None
            if lost is not None:
                raise lost from exc
            raise
        events.close()
        frame = epochs_log.close()
        # the served network's (what the exports hold): auxiliary heads are training-only
        params = count_params(inference_model(model))
        # (the exports take images normalised as the training's: (pixel / 255 - input_mean) / input_std, per channel)
        summary = {"arch": space.encode(arch), "dataset": info.name, "params": params, **metrics,
                   "input_mean": [float(m) for m in info.mean], "input_std": [float(s) for s in info.std]}
        run_dir.store.write_text("metrics.json", json.dumps(summary, indent=2) + "\n")
        if hparams and history.epoch:  # one row per run, rewritten only when epochs were added
            write_hparams(events_root(cfg), hparams_of(cfg, TRAIN_HPARAM_KEYS),
                          {**metrics, "params": params, "wall_s": float(frame["seconds"].sum())})

        exports, calibration = {}, ""
        if history.epoch:  # the network changed: exports no longer asked for would hold older weights
            remove_stale_exports(cfg)
        if cfg.export.enabled:  # everything after new epochs; only what is missing after none
            exports, calibration = export_trained(model, cfg, info.image_shape, rewrite=bool(history.epoch))
    return TrainOutcome(run_dir.path, space.encode(arch), params, history, metrics, exports, calibration)
