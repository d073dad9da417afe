"""Short training as an evaluator: one recipe, an in-memory data subset, results cached on disk.

:class:`ShortTraining` loads its data subset once, holds it in memory and trains every cell from
the same initial seed on the same batches, so a cell's value depends on the recipe and the cell
only (never on which cells were trained before it). :class:`TrainingEvaluator` hands it batches
of architectures and keeps what it learns in a :class:`TrainCache`: one JSON file per recipe,
``<dir>/<hash>.json``, where ``<hash>`` digests the recipe (space, dataset, subsets, batch size,
seed, training config)::

    {"format": "tfnas.train_cache/1", "kind": "ec", "recipe": {...},
     "entries": {"|nor_conv_3x3~0|+...|": [2.21, 1.98, 1.87], ...}}

The file is rewritten atomically after each trained cell and read back at start, so an
interrupted search resumes without retraining; another recipe lands in another file.

Users: the ``train`` estimation code (:mod:`tfnas.predictors.estimation`, ``kind="ec"``: per-epoch
training losses) and the training oracle (:mod:`tfnas.benchmarks.training`, ``kind="oracle"``:
top-1 evaluation accuracy in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tfnas.checks import is_number
from tfnas.config import TrainConfig
from tfnas.data import load_dataset, make_pipeline
from tfnas.evaluation.base import Evaluator
from tfnas.evaluation.executors import Executor, ExecutorError, Failed, Job, prepare_job
from tfnas.io import atomic_write_text
from tfnas.train.distribute import make_strategy, resolve_jit_compile
from tfnas.train.errors import TrainingDivergedError
from tfnas.train.trainer import Trainer

logger = logging.getLogger(__name__)

#: How a worker's failure of a diverged training begins (``Failed.error``: ``"<type>: <message>"``).
_DIVERGED = tuple(f"{kind.__name__}:" for kind in (FloatingPointError, TrainingDivergedError))

CACHE_FORMAT = "tfnas.train_cache/1"
MAX_IN_MEMORY_BYTES = 4 << 30
# [train] keys that do not change what a cell trains to (kept out of the recipe): the short
# training's pipeline applies no low-resolution copies, and a key added later at its default must
# not orphan existing caches.
_NOT_RECIPE = ("enabled", "checkpoint_every", "low_resolution")
# [train] keys added after caches existed: in the recipe only away from their default (the value the
# older caches were trained with), so those caches keep their names.
_ADDED_LATER = {"weight_decay_scope": "kernels"}


class CellTrainingError(RuntimeError):
    """A cell's short training failed (in a worker, or an estimation code's training diverged);
    names the cell."""


class TrainCacheError(ValueError):
    """A training cache file is unreadable or belongs to another recipe; the message names the file."""


def _normalise(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for exact comparison."""
    return json.loads(json.dumps(obj))


class TrainCache:
    """Per-recipe results keyed by arch string, persisted as one JSON file (module docstring).

    Args:
        directory: cache folder (created on the first write).
        kind: ``"ec"`` or ``"oracle"`` (stored in the header, checked on load).
        recipe: JSON-ready description of everything that changes a result.
        check: validates one loaded entry; raises ``ValueError`` when it is malformed.

    Raises:
        TrainCacheError: the file exists but is not a cache of this kind and recipe.

    Subclasses caching other results set ``FORMAT`` (the header's format tag) and ``WHAT`` (the
    cache in words, for error messages).
    """

    FORMAT = CACHE_FORMAT
    WHAT = "tfnas training cache"

    def __init__(self, directory: str, kind: str, recipe: Dict[str, Any],
                 check: Optional[Callable[[Any], None]] = None):
        self.kind, self.recipe = kind, _normalise(recipe)
        digest = hashlib.sha256(json.dumps(self.recipe, sort_keys=True).encode("utf-8")).hexdigest()[:16]
        self.path = os.path.join(directory, f"{digest}.json")
        self._entries: Dict[str, Any] = {}
        self._check = check
        if os.path.lexists(directory) and not os.path.isdir(directory):  # refused now, not at the first write
            raise TrainCacheError(f"{directory}: the {self.WHAT} folder is a file; delete or move it")
        if os.path.exists(self.path):
            self._entries = self._read()
            logger.info("loaded %d cached %s result(s) from %s", len(self._entries), self.kind, self.path)

    def _read(self) -> Dict[str, Any]:
        """The entries of the file (checked)."""
        check, advice = self._check, "delete it to start afresh"
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise TrainCacheError(f"{self.path}: not a readable {self.WHAT} ({exc}); {advice}") from None
        if not isinstance(data, dict) or data.get("format") != self.FORMAT or data.get("kind") != self.kind:
            raise TrainCacheError(f"{self.path}: not a {self.FORMAT} file of kind {self.kind!r}; {advice}")
        if data.get("recipe") != self.recipe:
            raise TrainCacheError(f"{self.path}: written for another recipe ({data.get('recipe')}), expected "
                                  f"{self.recipe}; {advice}")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise TrainCacheError(f"{self.path}: 'entries' must map arch strings to results; {advice}")
        for key, value in entries.items() if check is not None else ():
            try:
                check(value)
            except (ValueError, TypeError) as exc:
                raise TrainCacheError(f"{self.path}: bad entry for {key!r}: {exc}; {advice}") from None
        return dict(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Any:
        """The cached result of arch string ``key`` (``KeyError`` when absent)."""
        return self._entries[key]

    def put(self, key: str, value: Any) -> None:
        """Stores a JSON-ready ``value`` for ``key`` and rewrites the file atomically, with the entries other
        processes (the workers of a parallel sweep, each with a cache of its own) wrote there meanwhile."""
        import fcntl

        self._entries[key] = _normalise(value)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        folder = os.open(os.path.dirname(self.path), os.O_RDONLY)  # locked itself: no lock file beside the cache
        try:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX)  # (released when it closes)
            except OSError:  # a file system that locks no folder (NFS): the merge alone keeps what others wrote
                logger.debug("%s: the cache folder cannot be locked; merging without the lock", self.path)
            if os.path.exists(self.path):
                for other, result in self._read().items():
                    self._entries.setdefault(other, result)
            payload = {"format": self.FORMAT, "kind": self.kind, "recipe": self.recipe, "entries": self._entries}
            atomic_write_text(self.path, json.dumps(payload, indent=1) + "\n")
        finally:
            os.close(folder)


@dataclasses.dataclass(frozen=True)
class CellTraining:
    """What one short training produced: ``losses`` (per-epoch mean training loss),
    ``accuracy`` (top-1 on the evaluation subset in [0, 1], or None) and wall ``seconds``."""

    losses: Tuple[float, ...]
    accuracy: Optional[float]
    seconds: float


def _to_arrays(ds: tf.data.Dataset, what: str, max_bytes: int) -> Tuple[np.ndarray, np.ndarray]:
    """The whole unbatched ``(image, label)`` dataset as numpy arrays, refusing more than ``max_bytes``."""
    images: List[np.ndarray] = []
    labels: List[np.ndarray] = []
    total = 0  # bytes of images so far
    for x, y in ds.batch(1024).as_numpy_iterator():
        total += x.nbytes
        if total > max_bytes:
            raise ValueError(f"{what} exceeds {max_bytes / 2**30:.1f} GiB in memory; set [dataset] "
                             f"train_subset / eval_subset to train on a subset")
        images.append(x)
        labels.append(y)
    if not images:
        raise ValueError(f"{what} is empty")
    return np.concatenate(images), np.concatenate(labels)


class ShortTraining:
    """Trains architectures of ``space`` with one fixed recipe on an in-memory data subset.

    The splits are read once, on the first training, and kept as uint8 arrays; each cell gets a
    fresh pipeline with the same seed (same batch order and augmentation draws), a model
    initialised from ``seed`` and a :class:`~tfnas.train.trainer.Trainer` without checkpoints
    or progress bars.

    Args:
        space: the search space (``build(arch, num_classes, input_shape)``).
        train_cfg: the recipe (optimizer, lr, schedule, epochs, augmentation, ...).
        dataset: registered dataset name (``cifar10``, ...).
        batch_size: training batch size (the last partial batch is dropped).
        train_subset: first N training images (0 = all; the split must fit in memory).
        eval_subset: first N evaluation images (0 = all), scored by ``train(arch, evaluate=True)``.
        eval_batch_size: evaluation batch size.
        data_dir, manual_dir, download, image_size: as in :func:`tfnas.data.load_dataset`.
        seed: model initialisation and data-order seed, the same for every cell.
        jit_compile: XLA for the steps (``"auto"`` = off: each cell would be compiled anew for a
            short training, :func:`tfnas.train.distribute.resolve_jit_compile`).
        strategy: ``tf.distribute`` strategy name or object.

    Attributes:
        trained: cells trained by this object.
    """

    def __init__(self, space: Any, train_cfg: TrainConfig, *, dataset: str, batch_size: int,
                 train_subset: int = 0, eval_subset: int = 0, eval_batch_size: int = 256, data_dir: str = "",
                 manual_dir: str = "", download: str = "auto", image_size: int = 0, seed: int = 0,
                 jit_compile: Union[str, bool] = "auto", strategy: Any = "auto"):
        if 0 < train_subset < batch_size:
            raise ValueError(f"train_subset={train_subset} is smaller than batch_size={batch_size}, so no full "
                             f"batch would be trained; raise [dataset] train_subset")
        self.space, self.train_cfg = space, train_cfg
        self.dataset, self.batch_size, self.eval_batch_size = dataset, batch_size, eval_batch_size
        self.train_subset, self.eval_subset = train_subset, eval_subset
        self.data_dir, self.manual_dir, self.download, self.image_size = data_dir, manual_dir, download, image_size
        self.seed, self.jit_compile, self._strategy = seed, jit_compile, strategy
        self.trained = 0
        self._splits: Dict[str, Tuple[tf.Tensor, tf.Tensor]] = {}
        self._info: Any = None

    def __getstate__(self) -> Dict[str, Any]:
        """What a worker process gets: the recipe, without the loaded splits (it reads its own)."""
        state = dict(self.__dict__)
        state.update(_splits={}, _info=None, trained=0)
        if not isinstance(self._strategy, str):
            state["_strategy"] = "auto"
        return state

    def recipe(self, evaluate: bool) -> Dict[str, Any]:
        """Everything that changes a result, JSON-ready (the cache key); ``evaluate`` adds the eval subset."""
        space = repr(self.space)
        if " object at 0x" in space:
            space = f"{type(self.space).__module__}.{type(self.space).__qualname__}"
        train = {k: v for k, v in dataclasses.asdict(self.train_cfg).items()
                 if k not in _NOT_RECIPE and _ADDED_LATER.get(k, object()) != v}
        recipe = {"space": space, "dataset": self.dataset, "image_size": self.image_size,
                  "train_subset": self.train_subset, "batch_size": self.batch_size, "seed": self.seed,
                  "train": train}
        if self.dataset == "image_folder":  # served class by class before: a subset of it is other images
            from tfnas.data.folder import FILE_ORDER

            recipe["file_order"] = FILE_ORDER
        if evaluate:
            recipe["eval_subset"] = self.eval_subset
        return _normalise(recipe)

    def _split(self, split: str) -> Tuple[tf.Tensor, tf.Tensor]:
        if split not in self._splits:
            subset = self.train_subset if split == "train" else self.eval_subset
            ds, info = load_dataset(self.dataset, split=split, data_dir=self.data_dir, manual_dir=self.manual_dir,
                                    download=self.download, subset=subset, image_size=self.image_size)
            images, labels = _to_arrays(ds, f"{self.dataset} {split} split", MAX_IN_MEMORY_BYTES)
            if split == "train" and len(labels) < self.batch_size:
                raise ValueError(f"{self.dataset} train split has {len(labels)} images, fewer than one batch "
                                 f"of {self.batch_size}")
            with tf.device("/CPU:0"):
                self._splits[split] = (tf.constant(images), tf.constant(labels))
            self._info = info
            logger.info("%s %s: %d images held in memory for short trainings", self.dataset, split, len(labels))
        return self._splits[split]

    def _pipeline(self, split: str) -> tf.data.Dataset:
        images, labels = self._split(split)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        info, cfg, training = self._info, self.train_cfg, split == "train"
        return make_pipeline(
            ds, batch_size=self.batch_size if training else self.eval_batch_size, training=training,
            num_classes=info.num_classes, mean=info.mean, std=info.std, seed=self.seed, flip=cfg.flip,
            pad_crop=cfg.pad_crop, cutout=cfg.cutout, mixup_alpha=cfg.mixup_alpha,
            random_erasing=cfg.random_erasing, drop_remainder=training)

    def train(self, arch: Any, evaluate: bool = False) -> CellTraining:
        """Trains ``arch`` for ``train_cfg.epochs`` epochs; with ``evaluate``, also scores the eval subset.

        Raises:
            DatasetNotFoundError: the data is missing and may not be downloaded.
            TrainingDivergedError: the training loss of the cell became NaN or infinite.
        """
        t0 = time.perf_counter()
        self._split("train")
        info, space = self._info, self.space
        if isinstance(self._strategy, str):
            self._strategy = make_strategy(self._strategy)
        kwargs = {"drop_path_rate": 0.0} if self.train_cfg.drop_path > 0 else {}
        trainer = Trainer(lambda: space.build(arch, info.num_classes, info.image_shape, **kwargs), self.train_cfg,
                          jit_compile=resolve_jit_compile(self.jit_compile, auto=False), strategy=self._strategy,
                          checkpoint_dir=None, progress=False, seed=self.seed)
        # tf.data resolves its op seeds against TF's global seed, which the Trainer has just set to
        # `seed`: building the pipelines now makes a cell's batches independent of earlier trainings.
        train_ds = self._pipeline("train")
        eval_ds = self._pipeline("eval") if evaluate else None
        try:
            history = trainer.fit(train_ds)
        except FloatingPointError as exc:
            raise TrainingDivergedError(f"short training of {space.encode(arch)}: {exc}") from None
        accuracy = float(trainer.evaluate(eval_ds)["accuracy"]) if eval_ds is not None else None
        del trainer
        gc.collect()  # free the cell's model and traced steps before the next one
        self.trained, seconds = self.trained + 1, time.perf_counter() - t0
        logger.info("short training of %s: losses %s, accuracy %s, %.1f s", space.encode(arch),
                    [round(x, 4) for x in history.loss], accuracy, seconds)
        return CellTraining(tuple(float(x) for x in history.loss), accuracy, seconds)


def check_losses(dim: int) -> Callable[[Any], None]:
    """Validator of an ``ec`` cache entry: ``dim`` finite losses."""
    def check(value: Any) -> None:
        if not (isinstance(value, list) and len(value) == dim
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)):
            raise ValueError(f"expected a list of {dim} finite losses, got {value!r}")

    return check


def check_accuracy(value: Any) -> None:
    """Validator of an ``oracle`` cache entry: an accuracy in [0, 1], or None (its training failed)."""
    if value is not None and (not is_number(value) or not 0.0 <= value <= 1.0):
        raise ValueError(f"expected an accuracy in [0, 1] or null (training failed), got {value!r}")


class TrainCellsJob(Job):
    """Worker side of :class:`TrainingEvaluator`: items are arch strings, results what the cache
    stores (per-epoch losses for ``"ec"``, accuracy in [0, 1] for ``"oracle"``)."""

    def __init__(self, training: "ShortTraining", kind: str):
        self.training, self.kind = training, kind

    def build(self) -> Callable[[Sequence[Any]], List[Any]]:
        training, evaluate = self.training, self.kind == "oracle"

        def run(items: Sequence[str]) -> List[Any]:
            out = []
            for key in items:
                result = training.train(training.space.decode(key), evaluate=evaluate)
                out.append(list(result.losses) if not evaluate else result.accuracy)
            return out

        return run


class TrainingEvaluator(Evaluator):
    """``evaluate(archs)``: the cached short-training result of each architecture, in order.

    With an ``executor`` (set by the run layer; ``[run] executor = process | ray``), the cells of
    one call that are not cached yet are trained in parallel, one per task (each worker reads
    the data subset once); results are cached here, in submission order, so the cache and the
    returned values are those of an in-process evaluation.

    Args:
        space: encodes architectures to their cache keys.
        training: the recipe.
        cache: the disk cache of this recipe.
        kind: ``"ec"`` (per-epoch training losses, a list) or ``"oracle"`` (top-1 evaluation
            accuracy in [0, 1] after training with evaluation).

    A cell whose training diverges (its loss became NaN: ``FloatingPointError``, in this process
    or on a worker) is recorded as failed for ``"oracle"``: the cache stores None
    for it (so a rerun does not train it again), a warning names it and ``evaluate`` returns None
    in its place. An ``"ec"`` failure raises :class:`CellTrainingError`, because an estimation
    code has no stand-in. Any other error of a worker is raised again here (its own type where it
    survives pickling, e.g. a missing dataset) and is not cached, as in this process, where it
    propagates. Each cell a worker finishes is cached as soon as the cells before it are: an
    interrupted or failed batch keeps them.

    Attributes:
        computed: cells this evaluator actually trained (the rest came from the cache).
        failed: cells whose training failed in this evaluator (``"oracle"``).
        executor: the executor of uncached cells, or None (in this process).
    """

    def __init__(self, space: Any, training: "ShortTraining", cache: TrainCache, kind: str,
                 executor: Optional[Executor] = None):
        if kind not in ("ec", "oracle"):
            raise ValueError(f"kind must be 'ec' or 'oracle'; received kind={kind!r}")
        self.space, self.training, self.cache, self.kind = space, training, cache, kind
        self.computed = self.failed = 0
        self.executor = executor
        try:  # pickled now, before this process trains anything (a worker reads its own data)
            self._job: Any = prepare_job(TrainCellsJob(training, kind))
        except ExecutorError as exc:
            self._job = exc  # raised only if a parallel evaluation is asked for

    def evaluate(self, archs: Sequence[Any]) -> List[Any]:
        keys = [self.space.encode(arch) for arch in archs]
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if todo and self.executor is not None and self.executor.name != "local" and len(todo) > 1:
            if isinstance(self._job, ExecutorError):
                raise self._job
            # one cell per task, each cached as soon as it and the cells before it are done: an interrupted
            # batch keeps what its workers finished
            for key, result in zip(todo, self.executor.imap(self._job, todo, chunk=1)):
                if isinstance(result, Failed):
                    diverged = (isinstance(result.exception, FloatingPointError) if result.exception is not None
                                else result.error.startswith(_DIVERGED))
                    if not diverged and result.exception is None:  # its type did not survive pickling
                        raise CellTrainingError(f"training cell {key} failed in a worker: {result.error}")
                    if not diverged:  # raised as in this process (a missing dataset is the same one line)
                        result.reraise(f"training cell {key} failed in a worker")
                    result = self._failed(key, f"in a worker: {result.error}")
                self.cache.put(key, result)
                self.computed += 1
        for arch, key in zip(archs, keys):
            if key not in self.cache:
                try:
                    result = self.training.train(arch, evaluate=self.kind == "oracle")
                    value = list(result.losses) if self.kind == "ec" else result.accuracy
                except FloatingPointError as exc:
                    value = self._failed(key, str(exc))
                self.cache.put(key, value)
                self.computed += 1
        return [self.cache.get(key) for key in keys]

    def _failed(self, key: str, why: str) -> None:
        """Records the diverged training of ``key`` (``"oracle"``: None, with a warning) or raises (``"ec"``)."""
        if self.kind != "oracle":
            raise CellTrainingError(f"training cell {key} for its estimation code diverged ({why}); an estimation "
                                    f"code has no stand-in (the recipe is fixed: Adam, [predictor] ec_epochs)")
        logger.warning("training cell %s failed (%s): recorded as failed (accuracy 0 for the search)", key, why)
        self.failed += 1
