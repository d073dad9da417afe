"""The Trainer: custom ``tf.function`` train/eval steps under a ``tf.distribute`` strategy.

Data contract: datasets yield ``(images, labels)`` with float32 images ``[B, H, W, 3]`` and
float32 one-hot (or mixup-soft) labels ``[B, C]``; ``B`` is the *global* batch, which the
strategy splits across replicas. The model maps images to logits ``[B, C]``, or to
``(logits, aux_1, ..., aux_k)`` when it has auxiliary heads (the auxiliary outputs are used only
for the training loss).

One training step (per replica, inside ``strategy.run``):

1. ``loss = sum_i CE_ls(y_i, z_i) + aux_weight * sum_k CE_ls(y_i, a_ki)`` divided by the global
   number of examples in the step (all-reduced, so an uneven last batch is averaged
   exactly, as ``tf.nn.compute_average_loss`` does for even ones), plus ``model.losses``
   divided by the replica count (regularisation added once);
2. gradients; with ``grad_clip > 0``: clip the *global* data gradient (summed over replicas)
   to that norm;
3. coupled L2 ``weight_decay * w`` on kernels (``optim.is_decayed``) or, with
   ``weight_decay_scope = all``, on every trainable variable, added once over all replicas
   after the clipping (PyTorch's order: ``clip_grad_norm_``, then the optimizer's decay);
4. the optimizer update (SGD/Nesterov, Adam or AdaBelief) with the per-step ``WarmupSchedule``.

With several replicas and clipping on, gradients are all-reduced in step 2 and handed to the
optimizer divided by the replica count (the Keras optimizer sums them again), which costs a
second all-reduce; without clipping only the optimizer's all-reduce runs.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import keras
import tensorflow as tf
from tqdm import tqdm

from tfnas.checks import check_int
from tfnas.config import TrainConfig
from tfnas.train.checkpoint import CheckpointMismatchError, TrainCheckpoint
from tfnas.train.distribute import StrategyLike, is_chief, make_strategy, resolve_jit_compile
from tfnas.train.drop_path import drop_path_layers, drop_path_rate_for_epoch, set_drop_path_rate
from tfnas.train.errors import TrainingDivergedError
from tfnas.train.history import History
from tfnas.train.inputs import check_dataset, check_element_spec, check_label_width, resolve_steps
from tfnas.train.optim import add_coupled_decay, correct_count, make_optimizer, per_example_loss
from tfnas.train.optim import smoothed_cross_entropy, split_outputs
from tfnas.train.schedules import WarmupSchedule, schedule_from_config
from tfnas.train.seeding import LayerSeedStream, set_tf_global_seed

logger = logging.getLogger(__name__)

SUM = tf.distribute.ReduceOp.SUM


class Trainer:
    """Trains a ``keras.Model`` from a ``TrainConfig`` with custom ``tf.function`` steps.

    Example::

        trainer = Trainer(lambda: space.build(arch, 10, (32, 32, 3)), cfg.train, checkpoint_dir="ckpt")
        history = trainer.fit(train_ds, eval_ds)
        trainer.evaluate(eval_ds)   # {"loss": ..., "accuracy": ...}

    Args:
        model_fn: zero-argument callable building the model (called inside ``strategy.scope()``
            with Keras' layer seeds drawn from a stream seeded by ``seed``, so the initial
            weights follow ``seed``; see ``tfnas.train.seeding``).
        train_cfg: the ``[train]`` recipe.
        jit_compile: XLA for the steps: ``"auto"`` (only when a GPU is visible), ``"true"``,
            ``"false"`` or a bool.
        strategy: ``"auto"``, ``"one_device"``, ``"mirrored"``, ``"multi_worker"`` or a Strategy
            (see ``distribute.make_strategy``).
        steps_per_epoch: optimizer steps per epoch; None = the training set's cardinality.
        checkpoint_dir: where checkpoints go; ``fit`` resumes from the newest. None = no checkpoints.
        progress: show a tqdm bar (epoch, step, running loss).
        seed: seeds model initialisation, ``self.rng`` and TensorFlow's global seed.

    Global state: NumPy's and Python's global generators are left as they were (Keras draws
    layer seeds from a private ``random`` stream swapped in while the model is created and
    built). TensorFlow's global seed is set to ``seed`` and left set: tf.data pipelines built
    after the Trainer (the short trainings of ``ShortTraining``) resolve their shuffle seeds
    against it. Build pipelines under ``seeding.tf_global_seed`` to be independent of it. When
    the global seed already is ``seed`` it is not set again (``seeding.set_tf_global_seed``:
    setting it clears TensorFlow's function caches), so TensorFlow's counter of *implicit* op
    seeds is not restarted either: give random ops and ``shuffle`` explicit seeds, as tfnas does.

    Attributes:
        rng: a ``tf.random.Generator`` for training-time randomness outside the model; it is
            checkpointed, so a resumed run continues its stream.
        trace_counts: Python traces of the train and eval step functions (``{"train", "eval"}``).
    """

    def __init__(
        self,
        model_fn: Callable[[], keras.Model],
        train_cfg: TrainConfig,
        *,
        jit_compile: Union[str, bool] = "auto",
        strategy: StrategyLike = "auto",
        steps_per_epoch: Optional[int] = None,
        checkpoint_dir: Optional[str] = None,
        progress: bool = True,
        seed: int = 0,
    ):
        if isinstance(model_fn, keras.Model) or not callable(model_fn):
            raise TypeError(f"model_fn must be a function of no arguments that builds the model (it is called in "
                            f"the strategy's scope, with seeded layers), e.g. lambda: space.build(arch, ...); got "
                            f"{type(model_fn).__name__}")
        if not isinstance(train_cfg, TrainConfig):
            raise TypeError(f"train_cfg must be the [train] section, a TrainConfig (cfg.train of a loaded config); "
                            f"got {type(train_cfg).__name__}")
        if steps_per_epoch is not None:
            steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", "Trainer", low=1)
        seed = check_int(seed, "seed", "Trainer", low=0, high=2 ** 32 - 1)
        self.cfg = train_cfg
        self.jit_compile = resolve_jit_compile(jit_compile)
        self.strategy = make_strategy(strategy)
        self.steps_per_epoch = steps_per_epoch
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.seed = seed
        self._layer_seeds = LayerSeedStream(seed)
        set_tf_global_seed(seed)  # unless it already is: setting it re-instantiates every traced function
        with self._layer_seeds.active(), self.strategy.scope():
            model = model_fn()
        if not isinstance(model, keras.Model):
            raise TypeError(f"model_fn must return a keras.Model; got {type(model).__name__}")
        self.model = model
        self.rng = tf.random.Generator.from_seed(seed)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self._train_totals = tf.Variable(tf.zeros([3]), trainable=False, name="train_totals")
        self._eval_totals = tf.Variable(tf.zeros([3]), trainable=False, name="eval_totals")
        self.optimizer: Optional[keras.optimizers.Optimizer] = None
        self.schedule: Optional[WarmupSchedule] = None
        self._checkpoint: Optional[TrainCheckpoint] = None
        self._functions: Dict[Tuple[str, str], Callable] = {}
        self._replica_jit: Dict[str, Callable] = {}
        self.trace_counts: Dict[str, int] = {"train": 0, "eval": 0}
        self._drop_layers = drop_path_layers(model)
        if train_cfg.drop_path > 0 and not self._drop_layers:
            logger.warning(
                "train.drop_path=%g but no layer of the model exposes set_drop_path_rate() or a "
                "drop_path_rate variable; the drop-path schedule does nothing", train_cfg.drop_path,
            )

    # ------------------------------------------------------------------ setup
    @property
    def num_replicas(self) -> int:
        """Replicas in sync (devices x workers) of the strategy."""
        return int(self.strategy.num_replicas_in_sync)

    def _ensure_built(self, spec: Any) -> None:
        if self.model.built and self.model.weights:
            return
        images = spec[0]
        dummy = tf.zeros([1] + images.shape.as_list()[1:], images.dtype)
        with self._layer_seeds.active(), self.strategy.scope():
            self.model(dummy, training=False)

    def _prepare(self, spec: Any = None, steps_per_epoch: Optional[int] = None) -> None:
        """Builds the model, the schedule/optimizer and the checkpoint, once."""
        if spec is not None:
            check_element_spec(spec)
            self._ensure_built(spec)
            check_label_width(spec, self.model)
        if not self.model.built:
            raise ValueError("the model is not built: call fit() first, or build it inside model_fn")
        if self.optimizer is None:
            steps = steps_per_epoch or self.steps_per_epoch
            if steps is None:
                raise ValueError("steps per epoch unknown: pass steps_per_epoch to Trainer or call fit() first")
            self.steps_per_epoch = steps
            self.schedule = schedule_from_config(self.cfg, steps)
            with self.strategy.scope():
                self.optimizer = make_optimizer(self.cfg, self.schedule)
                self.optimizer.build(self.model.trainable_variables)
        if self.checkpoint_dir and self._checkpoint is None:
            resolver = getattr(self.strategy, "cluster_resolver", None)
            self._checkpoint = TrainCheckpoint(
                self.checkpoint_dir,
                model=self.model,
                optimizer=self.optimizer,
                epoch=self.epoch,
                rng=self.rng,
                chief=is_chief(self.strategy),
                worker_id=int(getattr(resolver, "task_id", 0) or 0),
            )

    def restore(self) -> Optional[int]:
        """Restores the newest checkpoint of ``checkpoint_dir``; returns its completed epochs or None.

        Needs a built model and a known ``steps_per_epoch`` (``fit`` calls it itself).
        """
        self._prepare()
        if self._checkpoint is None:
            return None
        return self._checkpoint.restore_latest()

    # ------------------------------------------------------------------ steps
    def _forward_backward(self, images: tf.Tensor, labels: tf.Tensor, global_n: tf.Tensor) -> Tuple[Any, ...]:
        """Loss sum, data gradients and correct count of one replica's share of the batch."""
        cfg, n_rep = self.cfg, self.num_replicas
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            per_example = per_example_loss(labels, outputs, cfg.label_smoothing, cfg.aux_weight)
            loss_sum = tf.reduce_sum(per_example)
            loss = tf.math.divide_no_nan(loss_sum, global_n)
            if self.model.losses:
                loss += tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses]) / n_rep
        grads = tape.gradient(loss, self.model.trainable_variables)
        logits, _ = split_outputs(outputs)
        return loss_sum, grads, correct_count(labels, logits)

    def _replica_train_step(self, images: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, ...]:
        ctx = tf.distribute.get_replica_context()
        local_n = tf.cast(tf.shape(labels)[0], tf.float32)
        global_n = ctx.all_reduce(SUM, local_n) if self.num_replicas > 1 else local_n
        loss_sum, grads, correct = self._replica_fn("forward_backward", self._forward_backward)(images, labels, global_n)
        variables = self.model.trainable_variables
        grads = self._finish_gradients(grads, variables, ctx)
        self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss_sum, correct, local_n

    def _replica_fn(self, name: str, fn: Callable) -> Callable:
        """``fn``, XLA-compiled on its own when jit is on and there are several replicas.

        With one replica the whole step (update included) is compiled by ``_step_function``;
        with several, XLA cannot span replicas' devices, so only the per-replica math is
        compiled and the all-reduce and optimizer update stay outside XLA.
        """
        if not (self.jit_compile and self.num_replicas > 1):
            return fn
        if name not in self._replica_jit:
            self._replica_jit[name] = tf.function(fn, jit_compile=True, reduce_retracing=True)
        return self._replica_jit[name]

    def _finish_gradients(self, grads: List[Any], variables: List[Any], ctx: Any) -> List[Any]:
        """Coupled decay and global-norm clipping, each counted once over replicas (module doc)."""
        n_rep, clip, wd = self.num_replicas, self.cfg.grad_clip, self.cfg.weight_decay
        reduce_here = clip > 0 and n_rep > 1
        if reduce_here:
            idx = [i for i, g in enumerate(grads) if g is not None]
            reduced = ctx.all_reduce(SUM, [grads[i] for i in idx])
            grads = list(grads)
            for i, g in zip(idx, reduced):
                grads[i] = g
        if clip > 0:  # the data gradient, as torch.nn.utils.clip_grad_norm_ before optimizer.step()
            grads, _ = tf.clip_by_global_norm(grads, clip)
        # then the decay, which a PyTorch optimizer adds inside step(), after the clipping
        grads = add_coupled_decay(grads, variables, wd if reduce_here else wd / n_rep, self.cfg.weight_decay_scope)
        if reduce_here:
            grads = [None if g is None else g / n_rep for g in grads]
        return grads

    def _replica_eval_step(self, images: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, ...]:
        return self._replica_fn("eval", self._eval_math)(images, labels)

    def _eval_math(self, images: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, ...]:
        logits, _ = split_outputs(self.model(images, training=False))
        loss_sum = tf.reduce_sum(smoothed_cross_entropy(labels, logits, 0.0))
        return loss_sum, correct_count(labels, logits), tf.cast(tf.shape(labels)[0], tf.float32)

    def _step_function(self, kind: str, spec: Any) -> Callable:
        """The traced step for ``kind`` (``train``/``eval``) and a distributed element spec (cached)."""
        key = (kind, repr(spec))
        if key in self._functions:
            return self._functions[key]
        replica_fn = self._replica_train_step if kind == "train" else self._replica_eval_step
        totals = self._train_totals if kind == "train" else self._eval_totals

        def step(batch):
            self.trace_counts[kind] += 1  # Python side effect: runs once per trace
            images, labels = batch
            per_replica = self.strategy.run(replica_fn, args=(images, labels))
            sums = [self.strategy.reduce(SUM, t, axis=None) for t in per_replica]
            totals.assign_add(tf.stack(sums))

        whole_jit = self.jit_compile and self.num_replicas == 1
        fn = tf.function(step, input_signature=[spec], jit_compile=whole_jit)
        self._functions[key] = fn
        return fn

    # ------------------------------------------------------------------ loops
    def fit(self, train_ds: tf.data.Dataset, eval_ds: Optional[tf.data.Dataset] = None, eval_every: int = 1,
            on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None) -> History:
        """Trains up to ``train_cfg.epochs``, resuming from the newest checkpoint in ``checkpoint_dir``.

        Args:
            train_ds: ``(images [B, H, W, C], float one-hot labels [B, classes])`` batches; finite (one
                pass per epoch, at most ``steps_per_epoch`` batches) or repeated (``steps_per_epoch`` required).
            eval_ds: optional evaluation batches, evaluated every ``eval_every`` epochs and after
                the last one.
            eval_every: evaluation period in epochs.
            on_epoch: called after each epoch with its ``History`` row (``{"epoch", "loss", ...}``),
                before the epoch's checkpoint is written, e.g. to write TensorBoard scalars.

        Returns:
            A ``History`` of the epochs run by this call (empty when the checkpoint is complete).

        A resumed fit continues the data as a run that was never stopped would: a repeated
        ``train_ds`` skips the batches of the completed epochs (reading and preparing them again,
        so a long training resumes slowly: tfnas' own trainings pass finite datasets), and a finite
        one makes (and drops) one iterator per completed epoch, so that a pass-dependent shuffle or
        random stream is at the resumed epoch's pass.
        """
        eval_every = check_int(eval_every, "eval_every", "Trainer.fit", low=1)
        check_dataset(train_ds, "train_ds", "Trainer.fit")
        if eval_ds is not None:
            check_dataset(eval_ds, "eval_ds", "Trainer.fit")
        steps, infinite = resolve_steps(train_ds, self.steps_per_epoch)
        self._prepare(train_ds.element_spec, steps)
        start = 0
        if self._checkpoint is not None:
            start = self._checkpoint.restore_latest() or 0
        epochs, history = self.cfg.epochs, History()
        if start > epochs:  # its model was trained on a longer schedule: not this training's result
            raise CheckpointMismatchError(
                f"the checkpoint in {self._checkpoint.directory} holds {start} completed epochs, more than the "
                f"{epochs} of this training ([train] epochs); raise [train] epochs to at least {start}, or delete "
                f"{self._checkpoint.directory} to train {epochs} epochs from scratch")
        if start == epochs:
            logger.info("checkpoint already holds %d/%d epochs; nothing to train", start, epochs)
            return history
        if start and infinite:  # one stream for every epoch: continue it where the completed epochs left it
            train_ds = train_ds.skip(start * steps)
        dist_ds = self.strategy.experimental_distribute_dataset(train_ds)
        step_fn = self._step_function("train", dist_ds.element_spec)
        persistent = iter(dist_ds) if infinite else None
        for _ in range(start if not infinite else 0):
            # A shuffle or random stream that changes with each pass (reshuffle_each_iteration, as in
            # tfnas' pipelines) draws the seeds of a pass when its iterator is made: making and dropping
            # one per completed epoch gives the resumed epochs the order and draws they have in a run
            # that was never stopped.
            iter(dist_ds)
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            if self._drop_layers:
                rate = drop_path_rate_for_epoch(self.cfg.drop_path, epoch, epochs, self.cfg.drop_path_until)
                set_drop_path_rate(self._drop_layers, rate)
            lr = float(self.schedule(int(self.optimizer.iterations.numpy())))
            loss, acc = self._train_epoch(step_fn, persistent if persistent is not None else iter(dist_ds), steps, epoch)
            ev_loss = ev_acc = None
            if eval_ds is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                metrics = self.evaluate(eval_ds)
                ev_loss, ev_acc = metrics["loss"], metrics["accuracy"]
            self.epoch.assign(epoch + 1)
            seconds = time.perf_counter() - t0
            for name, value in zip(
                ("epoch", "loss", "train_acc", "eval_loss", "eval_acc", "lr", "seconds"),
                (epoch + 1, loss, acc, ev_loss, ev_acc, lr, seconds),
            ):
                getattr(history, name).append(value)
            # The epoch's row goes out before its checkpoint: a kill between them leaves a row whose
            # epoch the resume trains again (and whose row it replaces), never a checkpoint without a row.
            save = self._checkpoint is not None and (
                (epoch + 1) % self.cfg.checkpoint_every == 0 or epoch + 1 == epochs)
            if on_epoch is not None:
                try:
                    on_epoch({name: values[-1] for name, values in history.to_dict().items()})
                except Exception:  # e.g. its row could not be written: the trained epoch is still kept
                    if save:
                        self._checkpoint.save()
                    raise
            if save:
                self._checkpoint.save()
            evaluated = "" if ev_loss is None else f" eval_loss={ev_loss:.4f} eval_acc={ev_acc:.4f}"
            logger.info("epoch %d/%d loss=%.4f acc=%.4f%s lr=%.5g %.1fs", epoch + 1, epochs, loss, acc, evaluated, lr, seconds)
        return history

    def _train_epoch(self, step_fn: Callable, iterator: Any, steps: int, epoch: int) -> Tuple[float, float]:
        self._train_totals.assign(tf.zeros([3]))
        refresh = max(1, steps // 20)
        done = 0
        with tqdm(total=steps, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", unit="step",
                  disable=not self.progress, leave=False) as bar:
            for _ in range(steps):
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                step_fn(batch)
                done += 1
                bar.update(1)
                if done % refresh == 0:
                    loss_sum, _, count = self._train_totals.numpy()
                    bar.set_postfix(loss=f"{loss_sum / max(count, 1.0):.4f}")
        if done == 0:
            raise ValueError(f"train_ds yielded no batch in epoch {epoch + 1}")
        loss_sum, correct, count = (float(x) for x in self._train_totals.numpy())
        if not math.isfinite(loss_sum):
            raise TrainingDivergedError(
                f"training loss is {loss_sum} in epoch {epoch + 1}: lower train.lr, set train.grad_clip, "
                "or check the data for NaN/inf (no checkpoint was written for this epoch)"
            )
        return loss_sum / count, correct / count

    def evaluate(self, ds: tf.data.Dataset) -> Dict[str, float]:
        """Mean cross-entropy (no smoothing) and top-1 accuracy of the main head over ``ds``.

        Returns:
            ``{"loss": float, "accuracy": float}``.
        """
        check_dataset(ds, "ds", "Trainer.evaluate")
        self._ensure_built(ds.element_spec)
        check_label_width(ds.element_spec, self.model)
        dist_ds = self.strategy.experimental_distribute_dataset(ds)
        step_fn = self._step_function("eval", dist_ds.element_spec)
        self._eval_totals.assign(tf.zeros([3]))
        for batch in dist_ds:
            step_fn(batch)
        loss_sum, correct, count = (float(x) for x in self._eval_totals.numpy())
        if count == 0:
            raise ValueError("eval dataset yielded no examples")
        return {"loss": loss_sum / count, "accuracy": correct / count}


def train_and_evaluate(
    model_fn: Callable[[], keras.Model],
    train_cfg: TrainConfig,
    train_ds: tf.data.Dataset,
    eval_ds: Optional[tf.data.Dataset] = None,
    *,
    jit_compile: Union[str, bool] = "auto",
    strategy: StrategyLike = "auto",
    checkpoint_dir: Optional[str] = None,
    progress: bool = True,
    seed: int = 0,
    steps_per_epoch: Optional[int] = None,
    eval_every: int = 1,
    on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Tuple[keras.Model, History, Dict[str, float]]:
    """Builds a Trainer, fits (resuming from ``checkpoint_dir``) and evaluates at the end.

    Returns:
        ``(model, history, eval_metrics)``; ``eval_metrics`` is ``{"loss", "accuracy"}`` on
        ``eval_ds`` after the last epoch, or ``{}`` without an evaluation set.
    """
    trainer = Trainer(
        model_fn, train_cfg, jit_compile=jit_compile, strategy=strategy, steps_per_epoch=steps_per_epoch,
        checkpoint_dir=checkpoint_dir, progress=progress, seed=seed,
    )
    history = trainer.fit(train_ds, eval_ds, eval_every=eval_every, on_epoch=on_epoch)
    metrics: Dict[str, float] = {}
    if eval_ds is not None:
        if history.epoch and history.epoch[-1] == train_cfg.epochs and history.eval_loss[-1] is not None:
            metrics = {"loss": history.eval_loss[-1], "accuracy": history.eval_acc[-1]}
        else:
            metrics = trainer.evaluate(eval_ds)
    return trainer.model, history, metrics
