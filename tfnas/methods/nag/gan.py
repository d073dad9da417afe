"""LSGAN training of the NAG generators and discriminator, with per-epoch checkpoints.

NAG spec, "Training and generation": Adam (lr 2e-4, betas 0.5 / 0.999), batch 64, 200 epochs,
least-squares losses. tfnas labels real 1 and fake 0 (the reference uses 0 / 1, an equivalent
convention): ``L_D = ((D(real) - 1)^2 + D(fake)^2) / 2``, ``L_G = (D(fake) - 1)^2 / 2``, both
from one generator pass per step (the discriminator's update uses the fake cells as inputs only).

One traced step per batch shape. Epoch ``e`` draws its data order, noise and dropout seeds from
``SeedSequence([seed, e])``, and :meth:`GanTrainer.get_state` / :meth:`~GanTrainer.set_state`
cover the weights and both optimisers' slots, so a caller that checkpoints after every epoch (as
:class:`~tfnas.methods.nag.search.NagSearch` does) resumes a killed training at the next epoch
with the same final weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfnas.methods.nag.models import DagDiscriminator, DagGenerator

__all__ = ["CellData", "GanTrainer"]


@dataclasses.dataclass(frozen=True)
class CellData:
    """The labelled cells: ``x [N, C, M, T]`` one-hot codes, ``a [N, C, M, M]`` adjacency (C cell
    types per architecture), ``labels [N, K]`` int class of each condition."""

    x: np.ndarray
    a: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def from_dags(cls, adj: np.ndarray, types: np.ndarray, labels: np.ndarray, num_types: int) -> "CellData":
        """From padded single-cell DAGs (``adj [N, M, M]``, ``types [N, M]``, ``-1`` = no node)."""
        n, m = types.shape
        x = np.zeros((n, 1, m, num_types), np.float32)
        rows, cols = np.nonzero(types >= 0)
        x[rows, 0, cols, types[rows, cols]] = 1.0
        return cls(x, np.asarray(adj, np.float32)[:, None], np.asarray(labels, np.int32))


class GanTrainer:
    """Trains ``generators`` (one per cell type) against ``discriminator`` on :class:`CellData`.

    Args:
      generators / discriminator: the models (built here).
      lr, beta_1, beta_2: Adam settings of both optimisers; ``d_lr`` the discriminator's lr (None = ``lr``).
      batch_size: real cells per step; an epoch is ``len(data) // batch_size`` steps (at least 1).
      seed: root of every random draw of the training.
      jit_compile: XLA for the step.
      pretrain_lr: Adam lr of the optional maximum-likelihood warm-up of the generators
        (:meth:`pretrain_epoch`; not in the NAG paper, which trains the GAN from scratch).
      pretrain_schedule: ``constant`` (``pretrain_lr`` throughout) or ``cosine`` (from ``pretrain_lr``
        down to 0 over the warm-up's epochs, set at the start of each; :meth:`fit`).
    """

    def __init__(self, generators: Sequence[DagGenerator], discriminator: DagDiscriminator, lr: float = 2e-4,
                 beta_1: float = 0.5, beta_2: float = 0.999, batch_size: int = 64, seed: int = 0,
                 jit_compile: bool = False, d_lr: Optional[float] = None, pretrain_lr: float = 1e-3,
                 pretrain_schedule: str = "constant"):
        if pretrain_schedule not in ("constant", "cosine"):
            raise ValueError(f"pretrain_schedule must be 'constant' or 'cosine'; got {pretrain_schedule!r}")
        self.pretrain_lr, self.pretrain_schedule = float(pretrain_lr), pretrain_schedule
        self.generators, self.discriminator = list(generators), discriminator
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.noise_dim = self.generators[0].noise_dim
        self.g_opt = keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2)
        self.d_opt = keras.optimizers.Adam(lr if d_lr is None else d_lr, beta_1=beta_1, beta_2=beta_2)
        self.p_opt = keras.optimizers.Adam(pretrain_lr)
        gen = self.generators[0]
        x = np.zeros((1, len(self.generators), gen.max_nodes, gen.num_types), np.float32)
        a = np.zeros((1, len(self.generators), gen.max_nodes, gen.max_nodes), np.float32)
        labels = np.zeros((1, len(gen.classes)), np.int32)
        for g in self.generators:
            g.build_weights(tf.zeros((1, self.noise_dim)), tf.constant(labels))
        self.discriminator([(x[:, c], a[:, c]) for c in range(len(self.generators))], labels)
        self.g_vars = [v for g in self.generators for v in g.trainable_variables]
        self.d_vars = list(self.discriminator.trainable_variables)
        self.g_opt.build(self.g_vars)
        self.d_opt.build(self.d_vars)
        self.p_opt.build(self.g_vars)
        self._optimizers = (self.g_opt, self.d_opt, self.p_opt)
        self.traces = 0
        self._step = tf.function(self._train_step, jit_compile=jit_compile, reduce_retracing=True)
        self._mle_step = tf.function(self._pretrain_step, jit_compile=jit_compile, reduce_retracing=True)
        self._sample = tf.function(self._hard_sample, reduce_retracing=True)

    # ---- steps ----------------------------------------------------------------------------

    def _fakes(self, z, labels, training: bool, hard: bool, seed):
        return [g(z[:, c], labels, training=training, hard=hard,
                  seed=None if seed is None else tf.random.experimental.stateless_fold_in(seed, c))
                for c, g in enumerate(self.generators)]

    def _train_step(self, x, a, labels, z, seed):
        self.traces += 1
        fold = tf.random.experimental.stateless_fold_in
        real = [(x[:, c], a[:, c]) for c in range(len(self.generators))]
        with tf.GradientTape(persistent=True) as tape:
            fake = self._fakes(z, labels, True, False, fold(seed, 0))
            d_real = self.discriminator(real, labels, training=True, seed=fold(seed, 1))
            d_fake = self.discriminator(fake, labels, training=True, seed=fold(seed, 2))
            d_loss = 0.5 * tf.reduce_mean(tf.square(d_real - 1.0)) + 0.5 * tf.reduce_mean(tf.square(d_fake))
            g_loss = 0.5 * tf.reduce_mean(tf.square(d_fake - 1.0))
        self.d_opt.apply_gradients(zip(tape.gradient(d_loss, self.d_vars), self.d_vars))
        self.g_opt.apply_gradients(zip(tape.gradient(g_loss, self.g_vars), self.g_vars))
        del tape
        return d_loss, g_loss, tf.reduce_mean(d_real), tf.reduce_mean(d_fake)

    def _pretrain_step(self, x, a, labels, z, seed):
        with tf.GradientTape() as tape:
            nll = tf.add_n([g.log_likelihood(z[:, c], labels, x[:, c], a[:, c], training=True,
                                             seed=tf.random.experimental.stateless_fold_in(seed, c))
                            for c, g in enumerate(self.generators)])
            loss = tf.reduce_mean(nll)
        self.p_opt.apply_gradients(zip(tape.gradient(loss, self.g_vars), self.g_vars))
        return (loss,)

    def _hard_sample(self, z, labels, seed):
        return [tuple(cell) for cell in self._fakes(z, labels, False, True, seed)]

    def generate(self, z: np.ndarray, labels: np.ndarray, seed: Optional[np.ndarray] = None):
        """Sampled cells ``[(x [B, M, T], a [B, M, M]) per cell type]`` (numpy) for noise ``z [B, C,
        noise_dim]`` and ``labels [B, K]``; ``seed`` (2 ints) drives the sampling (one traced call)."""
        seed = np.zeros(2, np.int32) if seed is None else np.asarray(seed, np.int32)
        cells = self._sample(tf.constant(z, tf.float32), tf.constant(labels, tf.int32), tf.constant(seed))
        return [(x.numpy(), a.numpy()) for x, a in cells]

    # ---- epochs ---------------------------------------------------------------------------

    def train_epoch(self, data: CellData, epoch: int) -> Dict[str, float]:
        """One GAN pass over ``data`` (order, noise and dropout from ``SeedSequence([seed, epoch])``)."""
        return self._epoch(data, epoch, self._step, ("d_loss", "g_loss", "d_real", "d_fake"))

    def pretrain_epoch(self, data: CellData, epoch: int) -> Dict[str, float]:
        """One teacher-forced maximum-likelihood pass of the generators over ``data`` (DeepGMG's
        training; a warm-up before the GAN). Returns the mean negative log-likelihood ``nll``."""
        return self._epoch(data, epoch, self._mle_step, ("nll",))

    def _epoch(self, data: CellData, epoch: int, step: Callable, names: Sequence[str]) -> Dict[str, float]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        n, bs = len(data), min(self.batch_size, len(data))
        steps = max(1, n // bs)
        order = rng.permutation(n)
        z = rng.standard_normal((steps, bs, len(self.generators), self.noise_dim)).astype(np.float32)
        seeds = rng.integers(0, 2**31 - 1, size=(steps, 2), dtype=np.int64).astype(np.int32)
        outs = []
        for s in range(steps):
            idx = order[s * bs:(s + 1) * bs]
            outs.append(step(tf.constant(data.x[idx], tf.float32), tf.constant(data.a[idx], tf.float32),
                             tf.constant(data.labels[idx], tf.int32), tf.constant(z[s]), tf.constant(seeds[s])))
        sums = np.zeros(len(names))
        for out in outs:  # read after the epoch's steps, in step order (on a GPU, a read waits for its step)
            sums += [float(v) for v in out]
        return {**dict(zip(names, (float(v) for v in sums / steps))), "steps": steps}

    def pretrain_rate(self, epoch: int, pretrain_epochs: int) -> float:
        """The likelihood warm-up's learning rate in ``epoch`` (of ``pretrain_epochs``)."""
        if self.pretrain_schedule == "constant":
            return self.pretrain_lr
        return self.pretrain_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, pretrain_epochs)))

    def fit(self, data: CellData, epochs: int, start_epoch: int = 0,
            on_epoch: Optional[Callable[[int, Dict[str, float]], None]] = None, progress: bool = False,
            pretrain_epochs: int = 0) -> None:
        """Epochs ``start_epoch .. epochs-1`` (the first ``pretrain_epochs`` of them maximum-likelihood
        warm-up, the rest GAN); ``on_epoch(epoch, row)`` after each (checkpoint, log)."""
        bar = None
        if progress and epochs > start_epoch:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, initial=start_epoch, desc="NAG GAN", unit="epoch")
        try:
            for epoch in range(start_epoch, epochs):
                if epoch < pretrain_epochs:
                    self.p_opt.learning_rate = self.pretrain_rate(epoch, pretrain_epochs)
                    row = self.pretrain_epoch(data, epoch)
                else:
                    row = self.train_epoch(data, epoch)
                if on_epoch is not None:
                    on_epoch(epoch, row)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "steps"})
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    # ---- state ----------------------------------------------------------------------------

    def get_state(self) -> List[np.ndarray]:
        """Weights of every model and the slots of every optimiser, in a fixed order."""
        arrays = [w for g in self.generators for w in g.get_weights()] + self.discriminator.get_weights()
        return arrays + [np.asarray(v) for opt in self._optimizers for v in opt.variables]

    def set_state(self, arrays: Sequence[np.ndarray]) -> None:
        arrays = list(arrays)
        expected = len(self.get_state())
        if len(arrays) != expected:
            raise ValueError(f"NAG checkpoint holds {len(arrays)} arrays; this GAN has {expected} "
                             f"(was it written with other [nag] settings?)")
        for model in [*self.generators, self.discriminator]:
            k = len(model.get_weights())
            model.set_weights(arrays[:k])
            arrays = arrays[k:]
        for var, value in zip([v for opt in self._optimizers for v in opt.variables], arrays):
            var.assign(value)


def noise(rng: np.random.Generator, n: int, cells: int, dim: int) -> np.ndarray:
    """Generator noise ``[n, cells, dim]`` (standard normal, float32)."""
    return rng.standard_normal((n, cells, dim)).astype(np.float32)

