"""Training checkpoints: model, optimizer, epoch counter and RNG states, for resuming after a kill.

A ``tf.train.Checkpoint`` with a ``tf.train.CheckpointManager`` in one directory. The epoch
counter holds the number of *completed* epochs, so a run restored from a checkpoint written
after epoch 2 continues with epoch 3. In a multi-worker run every worker must take part in a
save (it is a collective operation); non-chief workers write into a scratch folder inside the
directory that is deleted right after, as in the TF multi-worker guide.

The states of the model's Keras ``SeedGenerator``s (Dropout, DropPath: :func:`seed_states`) are
saved beside the weights, so a resumed training continues their random streams. Keras' own
checkpoint of a model leaves them out; a checkpoint written before tfnas saved them restores
without them (their streams then start again, as they did then).
"""

from __future__ import annotations

import contextlib
import gc
import glob
import logging
import os
import shutil
import uuid
from typing import Any, Iterator, Optional, Set

import tensorflow as tf

from tfnas.io import first_line

logger = logging.getLogger(__name__)


class CheckpointMismatchError(RuntimeError):
    """The checkpoint in the directory does not fit the model/optimizer being restored."""


#: What writing files raises: the operating system's errors and TensorFlow's for them.
WRITE_ERRORS = (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.UnknownError,
                tf.errors.NotFoundError, tf.errors.FailedPreconditionError, tf.errors.DataLossError)


@contextlib.contextmanager
def tf_warnings_off() -> Iterator[None]:
    """TensorFlow's Python logger silenced for the block."""
    log = tf.get_logger()
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


#: Object names of training-only parts whose weights an inference network leaves unused.
TRAINING_ONLY = ("auxiliary_head", "aux_heads")


def weight_paths(prefix: str, root: str = "model") -> Set[str]:
    """Object paths (``model/cells_4/ops_3/kernel``) of the weight arrays under ``root`` in the
    TensorFlow checkpoint ``prefix``: every variable of rank >= 1 reachable from the root's
    child ``root`` (not the optimizer's slots, counters or scalar rates such as DropPath's, nor
    the training-only parts named in :data:`TRAINING_ONLY`). Empty for a checkpoint without an
    object graph (a name-based TF1 checkpoint).

    Two checkpoints of one architecture hold the same paths whatever else was trained with them.
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    if not reader.has_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"):
        return set()
    shapes = reader.get_variable_to_shape_map()
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    start = [(child.node_id, child.local_name) for child in graph.nodes[0].children if child.local_name == root]
    seen, paths = set(), set()
    while start:
        node_id, path = start.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        if path.rsplit("/", 1)[-1] in TRAINING_ONLY:
            continue
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE" and len(shapes.get(attribute.checkpoint_key, ())) >= 1:
                paths.add(path)
        start.extend((child.node_id, f"{path}/{child.local_name}") for child in node.children)
    return paths


def unused_weights(model: Any, prefix: str) -> Set[str]:
    """The weight arrays of the checkpoint ``prefix`` (its ``model``) that ``model`` has no place
    for: those of another architecture whose common part restored into ``model``.

    ``model``'s own paths come from a probe checkpoint written to TensorFlow's in-memory file
    system (nothing on disk; removed after reading)."""
    theirs = weight_paths(prefix)
    if not theirs:
        return set()
    folder = f"ram://tfnas-probe-{uuid.uuid4().hex}"
    try:
        own = weight_paths(tf.train.Checkpoint(model=model).write(f"{folder}/probe"))
    finally:
        if tf.io.gfile.exists(folder):
            tf.io.gfile.rmtree(folder)
    return theirs - own


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a folder that became read-only); what the
    failed save had begun is removed, and the checkpoints before it stay."""


def seed_states(model: Any) -> list:
    """The state variables of every Keras ``SeedGenerator`` of ``model``'s layers, in layer order."""
    flatten = getattr(model, "_flatten_layers", None)
    layers = list(flatten(include_self=True, recursive=True)) if flatten is not None else [model]
    states, seen = [], set()
    for layer in layers:
        for generator in getattr(layer, "_seed_generators", None) or []:
            state = getattr(generator, "state", None)
            if state is not None and id(state) not in seen:
                seen.add(id(state))
                states.append(state)
    return states


class TrainCheckpoint:
    """Saves and restores ``model``, ``optimizer``, ``epoch``, ``rng`` and the model's seed states
    (:func:`seed_states`) in ``directory``.

    Args:
        directory: checkpoint folder (created on first save).
        model: the ``keras.Model`` (built, so that its variables exist).
        optimizer: the optimizer (built, so that its slot variables exist).
        epoch: an int64 ``tf.Variable`` counting completed epochs.
        rng: a ``tf.random.Generator`` whose state is saved with the rest.
        max_to_keep: how many recent checkpoints to keep.
        chief: whether this process writes the real checkpoint (see module docstring).
        worker_id: suffix of the scratch folder of a non-chief worker.
    """

    def __init__(
        self,
        directory: str,
        *,
        model: Any,
        optimizer: Any,
        epoch: tf.Variable,
        rng: tf.random.Generator,
        max_to_keep: int = 2,
        chief: bool = True,
        worker_id: int = 0,
    ):
        self.directory = directory
        self.chief = chief
        self.epoch = epoch
        self._objects = dict(model=model, optimizer=optimizer, epoch=epoch, rng=rng)
        self._seeds = seed_states(model)
        self.checkpoint = tf.train.Checkpoint(**self._objects, **({"seeds": self._seeds} if self._seeds else {}))
        write_dir = directory if chief else os.path.join(directory, f".worker_{worker_id}_tmp")
        self._write_dir = write_dir
        with tf_warnings_off():  # a damaged index: reported by restore_latest, not as TensorFlow's warnings
            try:
                self.manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=max_to_keep)
            except ValueError as exc:  # an index without a checkpoint path
                raise CheckpointMismatchError(f"checkpoint index {os.path.join(write_dir, 'checkpoint')} cannot be "
                                              f"read ({first_line(exc)}); delete {write_dir} to train from "
                                              f"scratch") from None

    def restore_latest(self) -> Optional[int]:
        """Restores the newest checkpoint; returns the completed epochs it holds, or None if none.

        Raises:
            CheckpointMismatchError: when saved and current variables do not match (another
                architecture or optimizer was trained in this directory), or the checkpoint cannot
                be read (truncated or damaged files, a file where the folder should be).
        """
        if tf.io.gfile.exists(self.directory) and not tf.io.gfile.isdir(self.directory):
            raise CheckpointMismatchError(f"checkpoint folder {self.directory} cannot be read (it is a file); delete "
                                          f"or move it to train from scratch")
        path = self._indexed_checkpoint()
        if path is None:
            return None
        # A restore that fails leaves TensorFlow's pending restoration on the checkpoint object, which
        # warns once per value it did not restore when collected (hundreds of lines after the error): the
        # restore goes through a probe of the same objects, dropped while the warnings are off.
        probe, failure = tf.train.Checkpoint(**self._objects), None
        with tf_warnings_off():
            try:
                status = probe.restore(path)
                status.assert_existing_objects_matched()
                status.expect_partial()  # the probe's own save counter: not this run's
            except (AssertionError, ValueError) as exc:
                failure = (f"checkpoint {path} does not match the model/optimizer being trained (another "
                           f"architecture or optimizer?); delete {self.directory} or choose another run directory. "
                           f"Detail: {first_line(exc)}")
            except (tf.errors.OpError, IndexError) as exc:  # truncated index or data files
                failure = f"checkpoint {path} cannot be read ({first_line(exc)}); delete {self.directory} to train " \
                          f"from scratch"
            if failure:
                del probe
                gc.collect()
        if failure:
            raise CheckpointMismatchError(failure)
        self._restore_seeds(path)
        done = int(self.epoch.numpy())
        logger.info("restored checkpoint %s (%d completed epochs)", path, done)
        return done

    def _restore_seeds(self, path: str) -> None:
        """The seed states saved with checkpoint ``path``; one saved without them leaves them as they are."""
        if not self._seeds:
            return
        saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("seeds/")]
        if len(saved) != len(self._seeds):
            logger.info("checkpoint %s holds %d seed states, the model has %d: its Dropout/DropPath streams start "
                        "again", path, len(saved), len(self._seeds))
            return
        with tf_warnings_off():
            tf.train.Checkpoint(seeds=self._seeds).restore(path).expect_partial()

    def _indexed_checkpoint(self) -> Optional[str]:
        """The newest checkpoint that the folder's index file (``checkpoint``) names, or None for a
        folder without checkpoints. An index that is missing, unreadable or names a checkpoint that
        is not there raises :class:`CheckpointMismatchError` (TensorFlow would ignore it with a
        warning, and the training would silently start again from scratch)."""
        index = os.path.join(self.directory, "checkpoint")
        present = sorted(os.path.basename(p)[:-len(".index")]
                         for p in glob.glob(os.path.join(glob.escape(self.directory), "ckpt-*.index")))
        there = f"checkpoints there: {', '.join(present) if present else 'none'}"
        remedy = f"delete {self.directory} to train from scratch"
        if not tf.io.gfile.exists(index):
            if present:  # a run killed inside its first save leaves files the index never named
                logger.warning("checkpoint folder %s has no index file 'checkpoint' (%s): training from scratch; "
                               "the files are replaced as the new checkpoints are written", self.directory, there)
            return None
        with tf_warnings_off():  # TensorFlow's warnings about an index it ignores: said below instead
            try:
                state = tf.train.get_checkpoint_state(self.directory)
            except (ValueError, tf.errors.OpError):
                state = None
        path = state.model_checkpoint_path if state is not None else ""
        if not path:
            raise CheckpointMismatchError(f"checkpoint index {index} cannot be read ({there}); {remedy}")
        if not tf.io.gfile.exists(path + ".index"):
            raise CheckpointMismatchError(f"checkpoint index {index} names {os.path.basename(path)}, which is not "
                                          f"in the folder ({there}); {remedy}")
        return path

    def _indexed(self, number: int) -> bool:
        """Whether the index file of the write folder already names checkpoint ``number``."""
        with tf_warnings_off():
            try:
                state = tf.train.get_checkpoint_state(self._write_dir)
            except (ValueError, tf.errors.OpError):
                return False
        return state is not None and os.path.basename(state.model_checkpoint_path) == f"ckpt-{number}"

    def save(self) -> str:
        """Writes a checkpoint numbered by the epoch counter; returns its path prefix.

        Raises:
            CheckpointWriteError: the checkpoint could not be written; the partial files of this
                save (TensorFlow's ``<prefix>_temp`` folder, its index and data files) are removed.
        """
        number = int(self.epoch.numpy())
        pattern = glob.escape(os.path.join(self._write_dir, f"ckpt-{number}")) + "[._]*"
        before = set(glob.glob(pattern))
        try:
            path = self.manager.save(checkpoint_number=number)
        except BaseException as exc:  # a full disk, a read-only folder, Ctrl-C part-way through
            if not self._indexed(number):  # the index names the new checkpoint only once it is whole
                for leftover in set(glob.glob(pattern)) - before:
                    if os.path.isdir(leftover):
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(leftover)
            if not isinstance(exc, WRITE_ERRORS):
                raise
            raise CheckpointWriteError(f"cannot write the checkpoint of epoch {number} into {self._write_dir} "
                                       f"({first_line(exc)}); free space or fix the folder, then rerun the same "
                                       f"command to resume from the last checkpoint") from None
        if not self.chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
        else:
            logger.debug("saved checkpoint %s", path)
        return path
