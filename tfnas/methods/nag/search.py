"""NAG on a tabular space (``nag``): train the conditional GAN once per run, then RS-NAG per budget.

NAG spec, "NAS dataset", "Training and generation": the labelled set is ``pool`` distinct cells
(the paper's 4,000) with accuracy and parameter tertile labels; the generators and the
discriminator train as LSGAN (:mod:`tfnas.methods.nag.gan`) in :meth:`NagSearch.prepare`, once
per run directory, checkpointed after every epoch (a killed run resumes there). Then, for every
(budget ``K``, repeat), RS-NAG draws cells of the requested class with the record's own seed, in
batches of ``gen_batch``, until ``K`` distinct valid cells are found or ``max(64, K)`` batches are
spent, queries them in generation order (``K`` counted queries) and keeps the best. When the
generator gives fewer than ``K`` valid cells, the rest of the budget goes to random cells, with a
warning; the record's ``extra.generated`` says how many cells were generated.

Where the labels come from is the ``labels`` argument: ``table`` (the benchmark's final
accuracies, the issue's NB201 setting) or ``short`` (12-epoch accuracies, a cheap estimate like
the paper's supernet scores). Either way they are prior knowledge *outside* the query budget, and
every record says how many cells were labelled (``label_cells``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from tfnas.methods.base import BudgetedSearch, RunResult, SearchContext
from tfnas.methods.nag import quality
from tfnas.methods.nag.gan import CellData, GanTrainer, noise
from tfnas.methods.nag.models import build_models
from tfnas.methods.random_search import queried_first
from tfnas.registry import register_method
from tfnas.spaces.base import TabularSpace

__all__ = ["NagSearch", "fit_checkpointed"]

logger = logging.getLogger(__name__)

STATE_FILE = "search_state/nag.json"
WEIGHTS_FILE = "search_state/nag_gan.npz"
QUALITY_FILE = "nag_quality.csv"


def fit_checkpointed(trainer: GanTrainer, data: CellData, context: SearchContext, pretrain_epochs: int, epochs: int,
                     sample_stats: Callable[[int], Dict[str, float]]) -> None:
    """Runs ``trainer.fit`` with a checkpoint after every epoch (``search_state/nag_gan.npz``: the
    weights, optimiser slots and the epoch in one atomic file) and resumes from it; each epoch not yet
    in ``history.csv`` logs its losses and ``sample_stats(epoch)`` (validity etc. of fresh samples)."""
    from tfnas.methods.weight_sharing import load_arrays, npz_bytes, saved_epoch

    store, start = context.store, 0
    if store.exists(WEIGHTS_FILE):
        like = trainer.get_state() + [np.zeros(())]  # the arrays, then the epoch
        again = "delete it to train the GAN again (or the run directory to restart)"
        *arrays, epoch = load_arrays(store.path(WEIGHTS_FILE), like=like, remedy=again)
        start = saved_epoch(store.path(WEIGHTS_FILE), epoch, again, most=pretrain_epochs + epochs)
        trainer.set_state(arrays)

    def on_epoch(epoch: int, row: Dict[str, float]) -> None:
        if epoch >= context.logged_rows:
            stats = sample_stats(epoch)
            context.log({"epoch": epoch + 1, **{k: round(v, 6) for k, v in row.items()},
                         **{k: round(v, 4) for k, v in stats.items() if k != "samples"}})
        store.write_bytes(WEIGHTS_FILE, npz_bytes(trainer.get_state() + [np.array(epoch + 1)]))
        store.write_text(STATE_FILE, json.dumps({"epoch": epoch + 1}) + "\n")  # for people; resume reads the .npz

    trainer.fit(data, pretrain_epochs + epochs, start_epoch=start, on_epoch=on_epoch, progress=context.progress,
                pretrain_epochs=pretrain_epochs)


@register_method("nag")
class NagSearch(BudgetedSearch):
    """RS-NAG over a tabular space whose cells are DAGs (NAS-Bench-201).

    Args:
      spec: the space's :class:`~tfnas.spaces.dag.DagSpec`.
      dags: padded DAGs of every cell ``(adj [S, M, M], types [S, M])``, ``-1`` = missing node.
      lookup: DAG key -> cell index.
      label_acc: accuracy (%) the labels come from, every cell ``[S]``.
      params: parameter count of every cell ``[S]``.
      truth: accuracy (%) of every cell for the quality report only (never for the search); None = no report.
      pool: labelled cells (0 = every distinct cell). epochs, batch_size, lr, beta_1, beta_2, d_lr: GAN
        training (``d_lr`` = the discriminator's lr; None = ``lr``).
      pretrain_epochs: teacher-forced maximum-likelihood epochs of the generator before the GAN
        epochs (DeepGMG's own training; 0 = the paper's GAN-only training).
      model: widths of the models (``node_units``, ``graph_units``, ``noise_dim``, ``embed_dim``,
        ``prop_layers``, ``dropout``).
      target: requested ``(acc class, params class)``; params class -1 = drawn from the labelled
        cells of the requested accuracy class.
      samples: cells generated per class for the quality report. gen_batch: cells per generation call.
      seed: root seed of the GAN (the run seed); records draw with their own seeds.
    """

    name = "nag"
    requires = (TabularSpace,)

    def __init__(self, spec: Any, dags: Tuple[np.ndarray, np.ndarray], lookup: Dict[str, int],
                 label_acc: np.ndarray, params: np.ndarray, truth: Optional[np.ndarray] = None, pool: int = 4000,
                 epochs: int = 200, batch_size: int = 64, lr: float = 2e-4, beta_1: float = 0.5,
                 beta_2: float = 0.999, model: Optional[Dict[str, Any]] = None, target: Tuple[int, int] = (2, -1),
                 samples: int = 100, gen_batch: int = 256, labels: str = "table", seed: int = 0,
                 jit_compile: bool = False, d_lr: Optional[float] = None, pretrain_epochs: int = 0,
                 pretrain_schedule: str = "constant"):
        self.spec, self.lookup = spec, lookup
        self.adj, self.types = dags
        self.label_acc, self.params = np.asarray(label_acc, np.float64), np.asarray(params, np.float64)
        self.truth = None if truth is None else np.asarray(truth, np.float64)
        self.pretrain_epochs = int(pretrain_epochs)
        self.pool, self.epochs, self.samples, self.gen_batch = int(pool), int(epochs), int(samples), int(gen_batch)
        self.target, self.labels, self.seed = (int(target[0]), int(target[1])), labels, int(seed)
        self.model = dict(model or {})
        self._opts = dict(lr=lr, d_lr=d_lr, beta_1=beta_1, beta_2=beta_2, batch_size=batch_size,
                          jit_compile=jit_compile, pretrain_schedule=pretrain_schedule)
        self.trainer: Optional[GanTrainer] = None
        self._select_pool()

    # ---- labelled cells -------------------------------------------------------------------

    def _select_pool(self) -> None:
        """The labelled cells: ``pool`` distinct DAGs drawn with the run seed (first index per DAG)."""
        self.distinct = firsts = np.array(sorted(set(self.lookup.values())), np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 4000]))
        if 0 < self.pool < len(firsts):
            firsts = np.sort(rng.choice(firsts, self.pool, replace=False))
        self.pool_idx = firsts
        self.acc_cuts = quality.tertiles(self.label_acc[firsts])
        self.params_cuts = quality.tertiles(self.params[firsts])
        self.pool_labels = np.stack([quality.class_of(self.label_acc[firsts], self.acc_cuts),
                                     quality.class_of(self.params[firsts], self.params_cuts)], 1)
        self.pool_set = set(int(i) for i in firsts)

    def cell_data(self) -> CellData:
        idx = self.pool_idx
        return CellData.from_dags(self.adj[idx], self.types[idx], self.pool_labels, self.spec.num_types)

    # ---- the GAN --------------------------------------------------------------------------

    def _build(self) -> GanTrainer:
        gens, disc = build_models(self.spec, self.model, 1, [self.seed], self.seed + 1)
        return GanTrainer(gens, disc, seed=self.seed, **self._opts)

    def prepare(self, context: SearchContext) -> None:
        """Trains (or resumes, or reloads) the GAN and writes the quality report."""
        self.trainer = self._build()
        fit_checkpointed(self.trainer, self.cell_data(), context, self.pretrain_epochs, self.epochs,
                         lambda epoch: quality.sample_stats(
                             self._sample(np.random.default_rng([self.seed, epoch, 7]), self.samples, self.target),
                             self.pool_set))
        if self.truth is not None and not context.store.exists(QUALITY_FILE):  # written last: present = complete
            self._write_report(context.store)

    def _labels_for(self, n: int, target: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        acc, par = target
        if par >= 0:
            return np.tile(np.array([[acc, par]], np.int32), (n, 1))
        choices = self.pool_labels[self.pool_labels[:, 0] == acc, 1]
        drawn = rng.choice(choices, n) if len(choices) else rng.integers(0, 3, n)
        return np.stack([np.full(n, acc), drawn], 1).astype(np.int32)

    def _sample(self, rng: np.random.Generator, n: int, target: Tuple[int, int]) -> List[Optional[int]]:
        """``n`` generated cells of ``target`` as space indices (None = invalid)."""
        z = noise(rng, n, 1, self.trainer.noise_dim)
        labels = self._labels_for(n, target, rng)
        seed = rng.integers(0, 2**31 - 1, 2)
        (x, a), = self.trainer.generate(z, labels, seed)
        return quality.decode(x, a, self.spec, self.lookup)

    # ---- report ---------------------------------------------------------------------------

    def _write_report(self, store: Any) -> None:
        import pandas as pd

        truth = self.truth
        top5 = float(np.quantile(truth[self.distinct], 0.95))
        acc_cuts = quality.tertiles(truth[self.pool_idx])
        rows, requested, obtained_acc, obtained_par = [], [], [], []
        for acc in range(3):
            for par in range(3):
                decoded = self._sample(np.random.default_rng([self.seed, 99, acc, par]), self.samples, (acc, par))
                stats = quality.sample_stats(decoded, self.pool_set)
                cells = sorted(set(d for d in decoded if d is not None))
                real = self.pool_idx[(self.pool_labels[:, 0] == acc) & (self.pool_labels[:, 1] == par)]
                row = quality.class_report((acc, par), cells, truth, self.params, real, top5)
                row = {"acc_class": acc, "params_class": par, **stats,
                       **{k: v for k, v in row.items() if not k.startswith("class_")}}
                rows.append(row)
                requested += [(acc, par)] * len(cells)
                obtained_acc += list(quality.class_of(truth[cells], acc_cuts))
                obtained_par += list(quality.class_of(self.params[cells], self.params_cuts))
        for acc in range(3):  # the accuracy class as RS-NAG asks for it: parameter class drawn as labelled
            decoded = self._sample(np.random.default_rng([self.seed, 98, acc]), 3 * self.samples, (acc, -1))
            cells = sorted(set(d for d in decoded if d is not None))
            real = self.pool_idx[self.pool_labels[:, 0] == acc]
            row = quality.class_report((acc,), cells, truth, self.params, real, top5)
            rows.append({"acc_class": acc, "params_class": "drawn", **quality.sample_stats(decoded, self.pool_set),
                         **{k: v for k, v in row.items() if not k.startswith("class_")}})
        everything = self.distinct
        rows.append({"acc_class": "uniform", "params_class": "uniform", "cells": float(len(everything)),
                     "gen_acc_mean": float(truth[everything].mean()),
                     "gen_top5_frac": float((truth[everything] >= top5).mean())})
        table = pd.DataFrame(rows)
        store.write_text("nag_quality.txt", table.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
        conf = [quality.confusion([r[0] for r in requested], obtained_acc),
                quality.confusion([r[1] for r in requested], obtained_par)]
        kinds = (("accuracy", "tertiles of the accuracies the labels came from",  # [nag] labels: short or table
                  "tertiles of the pool's final (benchmark) accuracies"),
                 ("parameters", "tertiles of the pool's parameter counts", "the same tertiles"))
        text = "".join(f"{name}: requested class (rows; {rows}) vs obtained class (columns; {cols})\n"
                       f"{pd.DataFrame(c).to_string()}\n\n" for (name, rows, cols), c in zip(kinds, conf))
        store.write_text("nag_confusion.txt", text)
        store.write_text(QUALITY_FILE, table.to_csv(index=False))

    # ---- RS-NAG ---------------------------------------------------------------------------

    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        if self.trainer is None:
            raise RuntimeError("NagSearch.run before prepare(): the GAN is not trained")
        chosen: List[int] = []
        seen, drawn, rounds = set(), 0, 0
        while len(chosen) < budget and rounds < max(64, budget):
            decoded = self._sample(rng, self.gen_batch, self.target)
            drawn, rounds = drawn + len(decoded), rounds + 1
            for index in decoded:
                if index is not None and index not in seen and len(chosen) < budget:
                    seen.add(index)
                    chosen.append(int(index))
        generated = len(chosen)
        if generated < budget:  # the generator collapsed: spend the rest like random search
            logger.warning("RS-NAG: %d draws gave %d of %d distinct valid cells; the other %d are drawn at random "
                           "(the record's extra.generated says how many were generated)", drawn, generated, budget,
                           budget - generated)
            rest = np.setdiff1d(self.distinct, chosen)
            chosen += [int(i) for i in rng.choice(rest, budget - generated, replace=False)]
        acc = session.query_many(chosen)
        return RunResult(best_index=chosen[int(np.argmax(acc))], scores=queried_first(session.size, chosen, acc, rng),
                         extra={"generated": generated, "drawn": drawn, "label_cells": len(self.pool_idx),
                                "labels": self.labels})
