"""NAG in the paper's setting (``nag_supernet``): supernet-scored cell pairs, the conditional GAN, RS-NAG.

NAG spec, "NAS dataset" -> "Training and generation", on the NASNet-DAG space
(:mod:`tfnas.spaces.nasnet_dag`):

1. **Pool.** ``pool`` distinct (normal, reduction) pairs drawn with the run seed (the paper's 4,000).
2. **Supernet.** :class:`~tfnas.spaces.nasnet_dag.supernet.NasnetDagSupernet` trains ``epochs``
   epochs on the first part of the training split, each step on one random pair of the pool (SGD,
   cosine lr, drop-path ramp); a checkpoint after every epoch (weights, momentum, epoch).
3. **Scores.** Each pair's accuracy on the same ``score_batches`` batches of the held-out part of
   the training split (batch statistics), once after the last epoch (the paper averages over
   its last epochs); its parameter count is the evaluation network's. Labels: score and
   parameter tertiles.
4. **GAN.** One generator per cell type and a discriminator over both cells
   (:mod:`tfnas.methods.nag.gan`), trained and checkpointed as on NAS-Bench-201.
5. **Report.** Per requested class: validity, uniqueness, novelty, mean supernet score and
   parameters of the generated pairs (``nag_quality.txt`` / ``.csv``).
6. **RS-NAG.** The first ``rs_candidates`` distinct valid pairs generated for the target class are
   trained with ``rs_train`` (a short training scored on held-out training images, never the
   test split) and the best is returned; each result is kept in ``search_state/rs_nag.json``.
   With ``[run] executor = process | ray`` the trainings run side by side, one per worker (``rs_job``);
   a training that raises is recorded as failed (NaN) and the best of the others is returned.

Every stage resumes where a killed run stopped; the run layer then trains and exports the found
architecture (``[train]``, ``[export]``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from tfnas.evaluation.executors import Failed
from tfnas.io import DamagedFileError, check_fields, dict_of, number, reading
from tfnas.methods.base import OneShotSearch, SearchContext, SearchFailedError, SearchOutcome
from tfnas.methods.nag import quality
from tfnas.methods.nag.gan import CellData, GanTrainer, noise
from tfnas.methods.nag.models import build_models
from tfnas.methods.nag.search import fit_checkpointed
from tfnas.methods.weight_sharing import ArrayPipelines, cosine_lr, load_arrays, npz_bytes, saved_epoch
from tfnas.registry import register_method
from tfnas.spaces.dag import padded, unpad
from tfnas.spaces.nasnet_dag.arch import NASNET_DAG, NasnetDagArch, make_cell
from tfnas.spaces.nasnet_dag.space import NasnetDagSpace
from tfnas.train.errors import TrainingDivergedError

__all__ = ["NagSupernetSearch", "decode_pairs"]

logger = logging.getLogger(__name__)

SUPERNET_FILE = "search_state/nag_supernet.npz"
POOL_FILE = "search_state/nag_pool.npz"
RS_FILE = "search_state/rs_nag.json"
QUALITY_FILE = "nag_quality.csv"


def decode_pairs(cells: List[Tuple[np.ndarray, np.ndarray]]) -> List[Optional[NasnetDagArch]]:
    """Generated ``[(x [B, M, T], a [B, M, M]) normal, (...) reduction]`` -> pairs (None = invalid)."""
    out: List[Optional[NasnetDagArch]] = []
    (xn, an), (xr, ar) = cells
    for b in range(len(xn)):
        pair = []
        for x, a in ((xn[b], an[b]), (xr[b], ar[b])):
            types = np.where(x.sum(-1) > 0.5, x.argmax(-1), -1)
            adj, t = unpad(a > 0.5, types)
            pair.append(make_cell(adj, t) if len(t) else None)
        out.append(NasnetDagArch(*pair) if None not in pair else None)
    return out


@register_method("nag_supernet")
class NagSupernetSearch(OneShotSearch):
    """NAG's pipeline on the NASNet-DAG space (module docstring).

    Args:
      space: a :class:`~tfnas.spaces.nasnet_dag.space.NasnetDagSpace`.
      data: :func:`~tfnas.methods.weight_sharing.load_split` parts (train part, held-out part, info).
      supernet_factory: ``seed -> NasnetDagSupernet``.
      rs_train: ``arch -> accuracy (%)`` of a short training on held-out images (RS-NAG).
      pool: labelled pairs. epochs, batch_size, steps_per_epoch, lr, lr_min, drop_path: supernet training.
      score_batches: held-out batches each pool pair is scored on.
      gan: :class:`~tfnas.methods.nag.gan.GanTrainer` options (``lr``, ``d_lr``, ``beta_1``,
        ``beta_2``, ``batch_size``, ``jit_compile``). gan_epochs, pretrain_epochs: as ``[nag]``.
      model: generator / discriminator widths. target: ``(score class, params class)``, -1 = drawn.
      samples, gen_batch: per-class report samples; cells per generation call.
      rs_candidates: pairs RS-NAG trains (the paper's 50).
      flip, pad_crop, cutout: augmentation of the supernet's training part.
    """

    name = "nag_supernet"
    requires = (NasnetDagSpace,)

    def __init__(self, space: Any, data: Tuple[Any, ...], supernet_factory: Callable[[int], Any],
                 rs_train: Callable[[NasnetDagArch], float], pool: int = 4000, epochs: int = 150,
                 batch_size: int = 128, steps_per_epoch: int = 0, lr: float = 0.025, lr_min: float = 0.001,
                 drop_path: float = 0.0, score_batches: int = 4, gan: Optional[Dict[str, Any]] = None,
                 gan_epochs: int = 200, pretrain_epochs: int = 0, model: Optional[Dict[str, Any]] = None,
                 target: Tuple[int, int] = (2, -1), samples: int = 100, gen_batch: int = 256,
                 rs_candidates: int = 50, flip: bool = True, pad_crop: int = 4, cutout: int = 0,
                 rs_job: Optional[Any] = None):
        self.space, self.data, self.supernet_factory, self.rs_train = space, data, supernet_factory, rs_train
        self.pool, self.epochs, self.batch_size = int(pool), int(epochs), int(batch_size)
        self.steps_per_epoch, self.lr, self.lr_min, self.drop_path = int(steps_per_epoch), lr, lr_min, drop_path
        self.score_batches, self.gan, self.model = int(score_batches), dict(gan or {}), dict(model or {})
        self.gan_epochs, self.pretrain_epochs = int(gan_epochs), int(pretrain_epochs)
        self.target, self.samples, self.gen_batch = (int(target[0]), int(target[1])), int(samples), int(gen_batch)
        self.rs_candidates, self.augment = int(rs_candidates), dict(flip=flip, pad_crop=pad_crop, cutout=cutout)
        self.rs_job = rs_job  # a Job training arch strings like rs_train, for [run] executor = process | ray

    # ---- stages ---------------------------------------------------------------------------

    def _pool(self, seed: int) -> List[NasnetDagArch]:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 4000]))
        archs, keys = [], set()
        while len(archs) < self.pool:
            arch = self.space.sample(rng)
            if arch.key not in keys:
                keys.add(arch.key)
                archs.append(arch)
        return archs

    def _train_supernet(self, context: SearchContext, net: Any, pipes: ArrayPipelines, pool: List[Any]) -> None:
        import tensorflow as tf

        store, start, seed = context.store, 0, int(context.seed)
        if store.exists(SUPERNET_FILE):
            weights = net.get_weights()
            arrays = load_arrays(store.path(SUPERNET_FILE), like=weights + net.get_buffers() + [np.zeros(())])
            start = saved_epoch(store.path(SUPERNET_FILE), arrays[-1], most=self.epochs)
            net.set_weights(arrays[:len(weights)])
            net.set_buffers(arrays[len(weights):-1])
        bar = None
        if context.progress and start < self.epochs:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, initial=start, desc="NAG supernet", unit="epoch")
        try:
            for e in range(start, self.epochs):
                lr = cosine_lr(e, self.epochs, self.lr, self.lr_min)
                net.set_drop_path_rate(self.drop_path * e / self.epochs)
                net.set_noise_seed(seed * 1_000_003 + e)
                rng = np.random.default_rng([seed, e, 11])
                lr_t, loss, hits, count = tf.constant(lr, tf.float32), 0.0, 0.0, 0.0
                first_step = e * pipes.train_steps(self.steps_per_epoch)
                for k, (images, labels) in enumerate(pipes.train(seed * 1_000_003 + e)):
                    if self.steps_per_epoch and k >= self.steps_per_epoch:
                        break
                    out = net.train_step(images, labels, pool[int(rng.integers(len(pool)))], lr_t)
                    loss, hits, count = loss + float(out[0]), hits + float(out[1]), count + float(out[2])
                    context.candidate(first_step + k, {"supernet_loss": float(out[0]) / max(float(out[2]), 1.0)})
                if count == 0:
                    raise ValueError("the supernet's training part yielded no batch (fewer images than the batch?)")
                if not np.isfinite(loss):
                    raise TrainingDivergedError(f"NAG supernet loss is {loss / count} in epoch {e + 1}; lower "
                                                f"[search] lr or set grad_clip")
                if e >= context.logged_rows:
                    context.log({"step": e + 1, "phase": "supernet", "lr": lr, "train_loss": loss / count,
                                 "train_acc": hits / count})
                store.write_bytes(SUPERNET_FILE, npz_bytes(net.get_weights() + net.get_buffers() + [np.array(e + 1)]))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    def _score(self, context: SearchContext, net: Any, pipes: ArrayPipelines, pool: List[Any]):
        if context.store.exists(POOL_FILE):
            path, again = context.store.path(POOL_FILE), "delete it to score the pool again"
            scores, params = load_arrays(path, like=[np.zeros(len(pool))] * 2, remedy=again)
            if not (np.all((scores >= 0) & (scores <= 100)) and np.all(np.isfinite(params) & (params > 0))):
                raise DamagedFileError(path, "must hold accuracies in [0, 100] and positive finite parameter "
                                             "counts", again)
            return scores, params
        batches = list(pipes.score().take(self.score_batches))
        if not batches:
            raise ValueError("the held-out part yielded no batch to score the pool on")
        scores = np.zeros(len(pool))
        items = range(len(pool))
        if context.progress:
            from tqdm.auto import tqdm

            items = tqdm(items, desc="NAG scoring", unit="pair")
        for i in items:
            hits = count = 0.0
            for images, labels in batches:
                _, c, n = net.eval_step(images, labels, pool[i])
                hits, count = hits + float(c), count + float(n)
            scores[i] = 100.0 * hits / count
            context.candidate(i, {"pool_score": scores[i]})
        params = np.array([self.space.num_params(a, pipes.info.num_classes) for a in pool], np.float64)
        context.store.write_bytes(POOL_FILE, npz_bytes([scores, params]))
        return scores, params

    def _gan(self, seed: int) -> GanTrainer:
        gens, disc = build_models(NASNET_DAG, self.model, 2, [seed, seed + 10], seed + 1)
        return GanTrainer(gens, disc, seed=seed, **self.gan)

    def _generate(self, trainer: GanTrainer, rng: np.random.Generator, n: int, target: Tuple[int, int],
                  labels: np.ndarray) -> List[Optional[NasnetDagArch]]:
        acc, par = target
        if par >= 0:
            cond = np.tile(np.array([[acc, par]], np.int32), (n, 1))
        else:
            choices = labels[labels[:, 0] == acc, 1]
            drawn = rng.choice(choices, n) if len(choices) else rng.integers(0, 3, n)
            cond = np.stack([np.full(n, acc), drawn], 1).astype(np.int32)
        z = noise(rng, n, 2, trainer.noise_dim)
        return decode_pairs(trainer.generate(z, cond, rng.integers(0, 2**31 - 1, 2)))

    # ---- the search -----------------------------------------------------------------------

    def search(self, context: SearchContext) -> SearchOutcome:
        t0, seed = time.perf_counter(), int(context.seed)
        rs_done = self._rs_results(context)
        pool = self._pool(seed)
        pipes = ArrayPipelines(self.data, self.batch_size, seed, **self.augment)
        done = context.store.exists(POOL_FILE)
        net = None if done else self.supernet_factory(seed)
        if not done:
            self._train_supernet(context, net, pipes, pool)
        scores, params = self._score(context, net, pipes, pool)
        score_cuts, params_cuts = quality.tertiles(scores), quality.tertiles(params)
        labels = np.stack([quality.class_of(scores, score_cuts), quality.class_of(params, params_cuts)], 1)
        x = np.zeros((len(pool), 2, NASNET_DAG.max_nodes, NASNET_DAG.num_types), np.float32)
        a = np.zeros((len(pool), 2, NASNET_DAG.max_nodes, NASNET_DAG.max_nodes), np.float32)
        for i, arch in enumerate(pool):
            for c, cell in enumerate((arch.normal, arch.reduction)):
                a[i, c], types = padded(cell.adjacency(), np.array(cell.types), NASNET_DAG.max_nodes)
                x[i, c, np.flatnonzero(types >= 0), types[types >= 0]] = 1.0
        trainer = self._gan(seed)
        keys = {arch.key for arch in pool}
        offset = self.epochs  # history rows of the supernet stage come first
        gan_context = dataclasses.replace(context, logged_rows=max(0, context.logged_rows - offset),
                                          log=lambda row: context.log({"step": offset + row["epoch"], "phase": "gan",
                                                                       **row}))

        def stats(epoch: int) -> Dict[str, float]:
            made = self._generate(trainer, np.random.default_rng([seed, epoch, 7]), self.samples, self.target, labels)
            return quality.sample_stats([None if m is None else m.key for m in made], keys)

        fit_checkpointed(trainer, CellData(x, a, labels), gan_context, self.pretrain_epochs, self.gan_epochs, stats)
        if not context.store.exists(QUALITY_FILE):
            self._report(context, trainer, labels, keys, scores, params, score_cuts, params_cuts, pipes.info)
        best, best_acc, evaluated, generated = self._rs_nag(context, trainer, labels, seed, rs_done)
        extra = {"pool": len(pool), "generated": generated, "rs_trained": evaluated,
                 "params": int(self.space.num_params(best, pipes.info.num_classes)),
                 "wall_s": round(time.perf_counter() - t0, 2)}
        return SearchOutcome(best_arch=self.space.encode(best), score=best_acc, score_name="rs_val_acc", extra=extra)

    def _report(self, context, trainer, labels, keys, scores, params, score_cuts, params_cuts, info) -> None:
        import pandas as pd

        rows, conf = [], np.zeros((3, 3), np.int64)
        for acc in range(3):
            for par in range(3):
                made = self._generate(trainer, np.random.default_rng([int(context.seed), 99, acc, par]),
                                      self.samples, (acc, par), labels)
                st = quality.sample_stats([None if m is None else m.key for m in made], keys)
                unique = list({m.key: m for m in made if m is not None}.values())
                p = np.array([self.space.num_params(m, info.num_classes) for m in unique], np.float64)
                for o in quality.class_of(p, params_cuts):
                    conf[par, o] += 1
                real = (labels[:, 0] == acc) & (labels[:, 1] == par)
                rows.append({"score_class": acc, "params_class": par, **st, "cells": len(unique),
                             "gen_params_mean_M": float(p.mean() / 1e6) if len(p) else float("nan"),
                             "real_params_mean_M": float(params[real].mean() / 1e6) if real.any() else float("nan"),
                             "real_score_mean": float(scores[real].mean()) if real.any() else float("nan")})
        table = pd.DataFrame(rows)
        store = context.store
        store.write_text("nag_quality.txt", table.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
        store.write_text("nag_confusion.txt", "parameters: requested class (rows) vs obtained class (columns)\n"
                                              f"{pd.DataFrame(conf).to_string()}\n")
        store.write_text(QUALITY_FILE, table.to_csv(index=False))

    @staticmethod
    def _rs_results(context: SearchContext) -> Dict[str, float]:
        """RS-NAG's trainings done so far (``rs_nag.json``: arch string -> accuracy, NaN = failed); read and
        checked when the search starts, so a damaged file stops it before any work."""
        store, again = context.store, "delete it to train RS-NAG's candidates again"
        if not store.exists(RS_FILE):
            return {}
        with reading(store.path(RS_FILE), again):
            done = json.loads(store.read_text(RS_FILE))
        check_fields(store.path(RS_FILE), done, dict_of(number()), again)
        return {k: float(v) for k, v in done.items()}

    def _rs_nag(self, context: SearchContext, trainer: GanTrainer, labels: np.ndarray, seed: int,
                done: Dict[str, float]):
        rng = np.random.default_rng([seed, 31])
        chosen: List[NasnetDagArch] = []
        seen, rounds = set(), 0
        while len(chosen) < self.rs_candidates and rounds < max(64, self.rs_candidates):
            rounds += 1
            for arch in self._generate(trainer, rng, self.gen_batch, self.target, labels):
                if arch is not None and arch.key not in seen and len(chosen) < self.rs_candidates:
                    seen.add(arch.key)
                    chosen.append(arch)
        generated = len(chosen)
        if generated < self.rs_candidates:
            logger.warning("RS-NAG: the generator gave %d of %d distinct valid pairs; the rest are drawn at random",
                           generated, self.rs_candidates)
            while len(chosen) < self.rs_candidates:
                arch = self.space.sample(rng)
                if arch.key not in seen:
                    seen.add(arch.key)
                    chosen.append(arch)
        store = context.store
        texts = [self.space.encode(a) for a in chosen]
        pending = [t for t in texts if t not in done]
        executor = context.executor
        parallel = executor is not None and executor.name != "local" and self.rs_job is not None
        step = executor.workers if parallel else 1  # one short training per worker, saved after each batch
        bar = None
        if context.progress and pending:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="RS-NAG", unit="cell", initial=len(texts) - len(pending))
        for start in range(0, len(pending), step):
            batch = pending[start:start + step]
            if parallel:
                results = executor.map(self.rs_job, batch)
            else:
                results = [_train_or_fail(self.rs_train, self.space.decode(t)) for t in batch]
            for text, acc in zip(batch, results):
                if isinstance(acc, Failed):
                    logger.warning("RS-NAG: training %s failed (%s); recorded as failed (NaN)", text, acc.error)
                done[text] = float(acc)
            store.write_text(RS_FILE, json.dumps(done, indent=1) + "\n")
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        accs = np.array([done[t] for t in texts], np.float64)
        if not np.isfinite(accs).any():
            raise SearchFailedError(f"RS-NAG: every one of the {len(texts)} short trainings failed (see the "
                                    f"warnings; their results are in {RS_FILE})")
        best = int(np.nanargmax(accs))
        return chosen[best], float(accs[best]), len(chosen), generated


def _train_or_fail(train: Callable[[Any], float], arch: Any) -> Any:
    """``train(arch)``, or :class:`Failed` when it raises an ``Exception`` (a NaN loss, a bad cell)."""
    try:
        return float(train(arch))
    except Exception as exc:  # noqa: BLE001 - recorded as a failed candidate, as on the executors
        return Failed(f"{type(exc).__name__}: {exc}")
