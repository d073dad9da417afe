"""What the weight-sharing searches (RelativeNAS, SLNAS) share besides the supernet engine.

- :func:`load_split`: a dataset's training split in memory, cut in two parts (weights / score);
- :class:`ArrayPipelines`: seeded ``tf.data`` pipelines over those arrays, built so that a
  batch sequence depends only on its seed (resume-safe);
- :func:`cosine_lr`: the per-epoch cosine schedule both papers use;
- :func:`npz_bytes` / :func:`load_arrays` / :func:`saved_epoch`: weight sets as ``.npz`` for checkpoints;
- :func:`save_tagged` / :func:`load_tagged`: arrays that belong to the step a JSON state names, kept
  exact across a stop between the two writes;
- :func:`append_round`: the per-epoch / per-generation record file of a resumable search.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["ArrayPipelines", "append_round", "cached_supernet", "cosine_lr", "data_identity", "load_arrays",
           "load_split", "load_tagged", "npz_bytes", "run_key", "save_tagged", "saved_epoch"]

#: Traced supernets kept per process, newest last; bounded (a supernet holds its traced graphs).
_SUPERNETS: "OrderedDict[Any, Tuple[Any, List[np.ndarray]]]" = OrderedDict()
MAX_CACHED_SUPERNETS = 2


def cached_supernet(key: Any, build: Callable[[], Any]) -> Any:
    """The supernet of configuration ``key`` (``build()`` on a miss) with its initial weights restored.

    Tracing a supernet's steps takes minutes on a CPU; a second search of the same configuration
    in the process (another seed of a sweep, a resumed run, a test) reuses the traced functions.
    ``key`` must name everything the supernet is built from, its seed included.
    """
    if key not in _SUPERNETS:
        net = build()
        _SUPERNETS[key] = (net, net.get_weights())
        while len(_SUPERNETS) > MAX_CACHED_SUPERNETS:
            _SUPERNETS.popitem(last=False)
    _SUPERNETS.move_to_end(key)
    net, initial = _SUPERNETS[key]
    net.set_weights(initial)
    net.reset_momentum()
    return net


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """The lr of epoch ``epoch`` (0-based): cosine from ``lr`` down to ``lr_min`` (PyTorch
    ``CosineAnnealingLR`` stepped once per epoch / generation)."""
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * epoch / epochs))


def npz_bytes(arrays: List[np.ndarray]) -> bytes:
    """``arrays`` as the bytes of an ``.npz`` file (``arr_0``, ``arr_1``, ...)."""
    buf = io.BytesIO()
    np.savez(buf, *arrays)
    return buf.getvalue()


RESTART = "delete the run directory to restart"


def load_arrays(path: str, like: Optional[Sequence[Any]] = None, remedy: str = RESTART) -> List[np.ndarray]:
    """The arrays of an ``.npz`` file written from :func:`npz_bytes`, in order; with ``like``, they
    must have the shapes of those arrays (the weights they will be loaded into).

    Raises:
        tfnas.io.DamagedFileError: the file is not such an archive (truncated, edited, pickled data),
            or its arrays do not fit ``like``; the message ends with ``remedy``.
    """
    from tfnas.io import reading

    with reading(path, remedy), np.load(path, allow_pickle=False) as data:
        arrays = [data[f"arr_{k}"] for k in range(len(data.files))]
    if like is not None:
        _check_shapes(path, arrays, like, remedy)
    return arrays


def _check_shapes(path: str, arrays: Sequence[np.ndarray], like: Sequence[Any], remedy: str) -> None:
    from tfnas.io import DamagedFileError

    want = [tuple(np.shape(a)) for a in like]
    got = [tuple(a.shape) for a in arrays]
    if got != want:
        at = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        raise DamagedFileError(path, f"holds {len(got)} arrays that do not fit the {len(want)} expected "
                                     f"(first difference at array {at})", remedy)


def saved_epoch(path: str, value: Any, remedy: str = RESTART, most: Optional[int] = None) -> int:
    """The epoch a checkpoint stores as its last array (written as ``np.array(epoch)``), as an ``int``.

    Raises:
        tfnas.io.DamagedFileError: it is not a non-negative integer (a float, NaN, negative) or is
            above ``most`` (the epochs of the run); the message names ``path`` and ends with ``remedy``.
    """
    from tfnas.io import DamagedFileError

    value = np.asarray(value)
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 0:
        raise DamagedFileError(path, f"its last array (the epoch) must be a non-negative integer; got "
                                     f"{value.tolist()!r}", remedy)
    if most is not None and int(value) > most:
        raise DamagedFileError(path, f"its last array (the epoch) must be at most {most}, the epochs of this run; "
                                     f"got {int(value)}", remedy)
    return int(value)


def _previous(path: str) -> str:
    return path[:-len(".npz")] + ".prev.npz" if path.endswith(".npz") else path + ".prev"


def data_identity(info: Any) -> Dict[str, Any]:
    """What a search's state records of its images besides their counts: an image folder's file order
    (:data:`tfnas.data.folder.FILE_ORDER`), so a state written on the old class-by-class order is
    refused, not resumed on other splits. Nothing for the tfds datasets."""
    if getattr(info, "name", "") != "image_folder":
        return {}
    from tfnas.data.folder import FILE_ORDER

    return {"file_order": FILE_ORDER}


def run_key(identity: Any, seed: int) -> str:
    """A short digest of a search's identity (JSON-able) and seed: what :func:`save_tagged` stamps
    on its files, so that arrays copied in from another run are not taken for this run's."""
    import hashlib

    text = json.dumps([identity, int(seed)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def save_tagged(store: Any, name: str, arrays: Sequence[Any], tag: int, run: str) -> None:
    """Writes ``arrays``, ``tag`` (the step of the JSON state written next) and ``run`` (the
    :func:`run_key` of the search) as ``name`` of ``store``, keeping the file it replaces as
    ``<name>.prev.npz``.

    A search writes its arrays first and its JSON state last. A stop between the two leaves a JSON
    of step ``t`` beside arrays of step ``t + 1``; the previous file still holds step ``t``, and
    :func:`load_tagged` takes whichever file carries the step the JSON names.
    """
    path = store.path(name)
    if os.path.exists(path):
        os.replace(path, _previous(path))
    store.write_bytes(name, npz_bytes(list(arrays) + [np.array(int(tag)), np.array(str(run))]))


def load_tagged(store: Any, name: str, like: Sequence[Any], tag: int, run: str, state_name: str,
                remedy: str = RESTART) -> List[np.ndarray]:
    """The arrays :func:`save_tagged` wrote for step ``tag`` of run ``run`` (``name``, else
    ``<name>.prev.npz``), shaped like ``like``. Taken from the previous file, they are moved back to
    ``name``: the next save keeps them as the previous file again, however often a run stops at the
    same step. A damaged file is passed over when the other one holds the step.

    A file without a tag (written before tags existed, and possibly moved to the previous file by a
    save since) is taken when no file carries ``tag``.

    Raises:
        tfnas.io.DamagedFileError: neither file holds step ``tag`` of this run, or the file that
            would is damaged.
    """
    from tfnas.io import DamagedFileError

    path = store.path(name)
    found, untagged, damaged = [], None, None
    for candidate in (path, _previous(path)):
        if not os.path.exists(candidate):
            continue
        try:
            arrays = load_arrays(candidate, remedy=remedy)
            if len(arrays) == len(like):  # untagged: from a version before the tags
                _check_shapes(candidate, arrays, like, remedy)
                untagged = untagged or (candidate, arrays)
                continue
            _check_shapes(candidate, arrays, list(like) + [np.zeros(()), np.zeros(())], remedy)
            step = saved_epoch(candidate, arrays[-2], remedy)
            if arrays[-1].dtype.kind != "U":
                raise DamagedFileError(candidate, "its last array (the run it belongs to) must be text", remedy)
        except DamagedFileError as exc:
            damaged = damaged or exc
            continue
        if str(arrays[-1]) != run:
            found.append(f"{step} of another run")
        elif step == int(tag):
            if candidate != path:
                os.replace(candidate, path)
            return arrays[:-2]
        else:
            found.append(str(step))
    if untagged is not None:
        if untagged[0] != path:
            os.replace(untagged[0], path)
        return untagged[1]
    if damaged is not None:
        raise damaged
    raise DamagedFileError(path, f"holds no arrays of step {int(tag)} of this run, the step {state_name} names "
                                 f"(found {', '.join(found) or 'no file'})", remedy)


def append_round(store: Any, name: str, key: str, upto: int, record: Dict[str, Any]) -> None:
    """Rewrites the JSON-lines file ``name`` of ``store`` with its records whose ``key`` is ``<= upto``,
    then ``record``: a resumed search replaces the rounds it redoes. Lines that do not parse or lack
    ``key`` (a file damaged outside tfnas) are dropped with a warning."""
    lines = []
    if store.exists(name):
        dropped = 0
        with open(store.path(name), "rb") as fh:
            raw_lines = fh.read().splitlines()
        for raw in raw_lines:
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
                keep = int(json.loads(line)[key]) <= upto
            except (ValueError, KeyError, TypeError, IndexError):  # UnicodeDecodeError is a ValueError
                dropped += 1
                continue
            if keep:
                lines.append(line)
        if dropped:
            logger.warning("%s: dropped %d unreadable line(s)", store.path(name), dropped)
    lines.append(json.dumps(record))
    store.write_text(name, "\n".join(lines) + "\n")


def load_split(name: str, data_dir: str = "", manual_dir: str = "", download: str = "auto", subset: int = 0,
               where: str = "", first_fraction: float = 0.5, divisor: int = 4,
               who: str = "the supernet", image_size: int = 0
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """The training split of ``name`` in memory (resized to ``image_size`` unless 0, as the
    training after the search does), cut in two parts in the split's fixed order (an image
    folder's is a fixed shuffle of its files, :mod:`tfnas.data.folder`).

    The first ``first_fraction`` of the images train the shared weights, the rest score the
    candidates (RelativeNAS: 25k / 25k of CIFAR-10; SLNAS: 40k / 10k).
    Returns ``(first_images, first_labels, second_images, second_labels, info)`` (uint8 images).

    Raises:
        tfnas.config.ConfigError: either part would be empty, or the image sides are not divisible
            by ``divisor`` (the reductions of the supernet).
    """
    from tfnas.config import ConfigError
    from tfnas.data import load_dataset

    ds, info = load_dataset(name, split="train", data_dir=data_dir, manual_dir=manual_dir, download=download,
                            subset=subset, image_size=image_size)
    images, labels = [], []
    for x, y in ds.batch(4096).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    total = sum(len(y) for y in labels)
    first = int(round(total * first_fraction))
    if not labels or first < 1 or first >= total:
        raise ConfigError(f"{where}: [dataset] {name}: the training split has {total} images, too few to cut "
                          f"{first_fraction:.0%} / {1 - first_fraction:.0%} with both parts non-empty")
    images, labels = np.concatenate(images), np.concatenate(labels)
    h, w = images.shape[1:3]
    if h % divisor or w % divisor:
        raise ConfigError(f"{where}: [dataset] {name}: images are {h}x{w}; {who} needs sides divisible by {divisor}")
    logger.info("%s: %d images train the shared weights, %d score the candidates", name, first, total - first)
    return images[:first], labels[:first], images[first:], labels[first:], info


class ArrayPipelines:
    """Seeded ``tf.data`` pipelines over the two in-memory parts of :func:`load_split`.

    Args:
        data: ``(train_images, train_labels, score_images, score_labels, info)``.
        batch_size: batch of both pipelines.
        global_seed: TF's global seed while a pipeline is built (tf.data resolves shuffle seeds
            against it): a batch sequence then depends on its own seed only, not on what ran
            before in the process.
        flip, pad_crop, cutout: augmentation of the training part.
    """

    def __init__(self, data: Tuple[Any, ...], batch_size: int, global_seed: int, flip: bool = True,
                 pad_crop: int = 4, cutout: int = 0):
        self.data, self.batch_size, self.global_seed = data, int(batch_size), int(global_seed)
        self.flip, self.pad_crop, self.cutout = bool(flip), int(pad_crop), int(cutout)
        self._tensors: Dict[str, Any] = {}
        self._score = None

    @property
    def info(self) -> Any:
        return self.data[4]

    def train_steps(self, cap: int = 0) -> int:
        """Batches of one :meth:`train` pass, at most ``cap`` (0 = no cap)."""
        n = int(self.data[1].shape[0])
        steps = n // self.batch_size if n >= self.batch_size else 1
        return min(steps, cap) if cap else steps

    def train(self, seed: int):
        """An augmented, shuffled pass over the training part (drops a last partial batch)."""
        return self._build("train", seed)

    def score(self):
        """The scoring part in order, without augmentation (built once)."""
        if self._score is None:
            self._score = self._build("score", 0)
        return self._score

    def score_stream(self, seed: int):
        """The scoring part, shuffled with ``seed`` and repeated forever (one batch per reward)."""
        return self._build("score", seed, shuffle=True).repeat()

    def _build(self, part: str, seed: int, shuffle: bool = False):
        import tensorflow as tf

        from tfnas.data import make_pipeline
        from tfnas.train.seeding import tf_global_seed

        if not self._tensors:  # copy the parts into tensors once, not per pipeline
            train_x, train_y, score_x, score_y, _ = self.data
            with tf.device("/CPU:0"):
                self._tensors = {"train": (tf.constant(train_x), tf.constant(train_y)),
                                 "score": (tf.constant(score_x), tf.constant(score_y))}
        training = part == "train"
        x, y = self._tensors[part]
        with tf_global_seed(self.global_seed):
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if shuffle:
                ds = ds.shuffle(int(y.shape[0]), seed=seed, reshuffle_each_iteration=True)
            ds = make_pipeline(ds, batch_size=self.batch_size, training=training, num_classes=self.info.num_classes,
                               mean=self.info.mean, std=self.info.std, seed=seed, flip=self.flip and training,
                               pad_crop=self.pad_crop if training else 0, cutout=self.cutout if training else 0,
                               drop_remainder=(training or shuffle) and int(y.shape[0]) >= self.batch_size)
        return ds
