"""SLNAS: a controller over the lite cell space with one shared weight set (ENAS-style REINFORCE).

Chen, "Stage and Lite Search Technology in Convolutional Neural Network Architecture Search"
(the SLNAS paper and its public PyTorch code, built on ENAS). The training split is cut
40k / 10k (:func:`~tfnas.methods.weight_sharing.load_split`, ``first_fraction = 0.8``). Each
epoch ``e`` of ``E`` (paper: 150):

1. **shared weights**: for every batch of the 40k part (paper: 96) the controller samples one
   architecture (the GA baseline: a random member of its population) and the supernet takes one
   SGD step on it (lr cosine from ``lr`` to ``lr_min``
   over epochs, momentum 0.9, weight decay 3e-4, clip 5, loss = CE + 0.4 * auxiliary CE,
   drop-path ``drop_path * e / E``), only the sampled paths' parameters moving
   (:class:`~tfnas.train.supernet.SupernetEngine`);
2. **controller**: ``controller_steps`` (paper: 150) times the controller samples an
   architecture, its reward is the top-1 accuracy (%) of the supernet on one batch of the 10k
   part (inference mode), and the controller takes one update (REINFORCE with a moving
   baseline and an entropy bonus, or the GA baseline: the controller object decides). The weight
   set does not change during these steps, so with a ``process`` or ``ray`` executor the GA's
   members up to the end of its generation (``next_batch``) are rewarded side by side on the
   workers, which receive the epoch's weights with the batch
   (:class:`~tfnas.methods.slnas.rewards.SupernetRewardJob`); the scoring batches are drawn in the
   same order, so the search is the same as in one process (tested). The LSTM controllers update
   after every reward and keep their rewards in this process.

Every sampled architecture of step 2 and its reward is recorded (``epochs.jsonl``); the answer
is the architecture with the best reward averaged over its samples in the last
``pick_epochs`` epochs (the supernet's rewards of early epochs measure an untrained weight
set). State (epoch, supernet weights and momentum, controller state, generator state) is
checkpointed after every epoch into ``search_state/``; the data order of epoch ``e`` depends
only on ``(seed, e)``, so a killed search resumes at the next epoch and ends where an
uninterrupted one ends.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from tfnas.evaluation.executors import Failed, prepare_job
from tfnas.io import DamagedFileError, check_fields, integer, list_of, number, read_json, reading, record, text
from tfnas.methods.base import OneShotSearch, SearchContext, SearchOutcome
from tfnas.methods.slnas.rewards import SupernetRewardJob, supernet_reward
from tfnas.methods.weight_sharing import (RESTART, ArrayPipelines, append_round, cosine_lr, data_identity, load_tagged,
                                          run_key, save_tagged)
from tfnas.registry import register_method
from tfnas.spaces.lite import LiteSpace
from tfnas.train.errors import TrainingDivergedError

logger = logging.getLogger(__name__)

__all__ = ["SlnasSearch", "pick_best"]

STATE_FORMAT = 1
STATE_FILE = "search_state/slnas.json"
WEIGHTS_FILE = "search_state/supernet.npz"
CONTROLLER_FILE = "search_state/controller.npz"
EPOCHS_FILE = "epochs.jsonl"


def pick_best(samples: List[Tuple[str, float]]) -> Tuple[str, float, int]:
    """``(arch, mean reward, count)`` of the architecture with the best mean reward over ``samples``.

    Ties go to the architecture sampled first, so the pick does not depend on dict order.
    """
    if not samples:
        raise ValueError("no sampled architectures to pick from")
    sums: Dict[str, List[float]] = {}
    for arch, reward in samples:
        sums.setdefault(arch, []).append(float(reward))
    best = max(sums, key=lambda a: np.mean(sums[a]))
    return best, float(np.mean(sums[best])), len(sums[best])


def _training_arch(controller: Any, rng: np.random.Generator) -> np.ndarray:
    """The architecture of one shared-weight step: a fresh controller sample, or for a population
    controller (the GA, whose ``sample`` repeats its next unevaluated member) a uniformly drawn member."""
    population = getattr(controller, "population", None)
    if isinstance(population, np.ndarray):
        return population[int(rng.integers(len(population)))]
    return controller.sample()[0]


@register_method("slnas")
class SlnasSearch(OneShotSearch):
    """The SLNAS search (module docstring) over the lite space.

    Args:
        space: the lite space (``decode`` / ``encode`` of ``[[20 ints], [20 ints]]`` text).
        data: ``(train_images, train_labels, reward_images, reward_labels, info)`` of the two parts.
        supernet_factory: ``seed -> supernet`` (a :class:`~tfnas.train.supernet.SupernetEngine`
            over the lite space whose train step includes the auxiliary loss).
        controller_factory: ``seed -> controller`` with ``sample() -> (arch int [2, 20], info)``,
            ``update(arch, reward) -> dict`` and ``get_state() / set_state(state)`` (arrays).
        epochs: ``E`` (paper: 150).
        batch_size: shared-weight and reward batch (paper: 96).
        steps_per_epoch: cap on the shared-weight steps of an epoch (0 = the whole 40k part).
        controller_steps: controller updates per epoch (paper: 150).
        lr, lr_min, drop_path: the shared-weight schedule (paper: 0.025, 0, 0.35).
        pick_epochs: epochs whose samples the final pick averages (0 = all).
        cutout, flip, pad_crop: augmentation of the shared-weight batches.
    """

    name = "slnas"
    requires = (LiteSpace,)

    def __init__(self, space: Any, data: Tuple[Any, ...], supernet_factory: Callable[[int], Any],
                 controller_factory: Callable[[int], Any], epochs: int = 150, batch_size: int = 96,
                 steps_per_epoch: int = 0, controller_steps: int = 150, lr: float = 0.025, lr_min: float = 0.0,
                 drop_path: float = 0.35, pick_epochs: int = 10, cutout: int = 0, flip: bool = True,
                 pad_crop: int = 4, identity: Optional[Dict[str, Any]] = None):
        if epochs < 1 or batch_size < 1 or controller_steps < 1:
            raise ValueError(f"SLNAS needs epochs, batch_size and controller_steps >= 1; got {epochs}, "
                             f"{batch_size}, {controller_steps}")
        self.space, self.data = space, data
        self.supernet_factory, self.controller_factory = supernet_factory, controller_factory
        self.epochs, self.batch_size, self.steps_per_epoch = int(epochs), int(batch_size), int(steps_per_epoch)
        self.controller_steps, self.pick_epochs = int(controller_steps), int(pick_epochs)
        self.lr, self.lr_min, self.drop_path = float(lr), float(lr_min), float(drop_path)
        self.cutout, self.flip, self.pad_crop = int(cutout), bool(flip), int(pad_crop)
        self.extra_identity = dict(identity or {})

    # ---- state ----------------------------------------------------------------------------

    def _identity(self) -> Dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch,
                "controller_steps": self.controller_steps, "lr": self.lr, "lr_min": self.lr_min,
                "drop_path": self.drop_path, "pick_epochs": self.pick_epochs, "cutout": self.cutout,
                "flip": self.flip, "pad_crop": self.pad_crop, "train_images": int(len(self.data[1])),
                "reward_images": int(len(self.data[3])), **data_identity(self.data[4]), **self.extra_identity}

    def _save(self, context: SearchContext, state: Dict[str, Any], net: Any, controller: Any) -> None:
        # Arrays first, the json last: each array file carries the epoch of the json written after it.
        epoch, run = int(state["epoch"]), run_key(self._identity(), context.seed)
        save_tagged(context.store, WEIGHTS_FILE, net.get_weights() + net.get_buffers(), epoch, run)
        ctrl = controller.get_state()
        keys = sorted(ctrl)
        save_tagged(context.store, CONTROLLER_FILE, [np.asarray(ctrl[k]) for k in keys], epoch, run)
        state["controller_keys"] = keys
        context.store.write_text(STATE_FILE, json.dumps(state) + "\n")

    def _load(self, context: SearchContext, net: Any, controller: Any) -> Optional[Dict[str, Any]]:
        """The checkpoint of this search (net and controller restored), or None; every field of the
        JSON state is checked before the arrays load (:class:`DamagedFileError` names the file and field)."""
        path = context.store.path(STATE_FILE)
        if not os.path.exists(path):
            return None
        state = read_json(path, RESTART)
        if not isinstance(state, dict) or (state.get("format"), state.get("identity")) != (STATE_FORMAT,
                                                                                         self._identity()):
            raise DamagedFileError(path, "holds the state of another SLNAS search", RESTART)
        sample = record({"arch": text, "reward": number(finite=True)})
        check_fields(path, state, record({
            "epoch": integer(0, self.epochs), "seconds": number(low=0, finite=True),
            "samples": list_of(list_of(sample, length=self.controller_steps)),
            "controller_keys": list_of(text)}), RESTART)
        if len(state["samples"]) != state["epoch"]:  # one list of samples per epoch done
            raise DamagedFileError(path, f"'samples' must hold one list per epoch done ({state['epoch']}); got "
                                         f"{len(state['samples'])}", RESTART)
        expected = controller.get_state()
        keys = state["controller_keys"]
        if sorted(keys) != sorted(expected):
            raise DamagedFileError(path, f"its controller_keys do not name this controller's state "
                                         f"({', '.join(sorted(expected))})", RESTART)
        with reading(path, RESTART):  # an architecture the space cannot decode is named with the file
            for arch in sorted({s["arch"] for epoch in state["samples"] for s in epoch}):
                self.space.decode(arch)
        weights, epoch, named = net.get_weights(), state["epoch"], os.path.basename(path)
        run = run_key(self._identity(), context.seed)
        arrays = load_tagged(context.store, WEIGHTS_FILE, weights + net.get_buffers(), epoch, run, named)
        net.set_weights(arrays[:len(weights)])
        net.set_buffers(arrays[len(weights):])
        ctrl = load_tagged(context.store, CONTROLLER_FILE, [expected[k] for k in keys], epoch, run, named)
        controller.set_state(dict(zip(keys, ctrl)))
        return state

    # ---- the search -----------------------------------------------------------------------

    def search(self, context: SearchContext) -> SearchOutcome:
        seed = int(context.seed)
        net = self.supernet_factory(seed)
        controller = self.controller_factory(seed)
        pipes = ArrayPipelines(self.data, self.batch_size, seed, flip=self.flip, pad_crop=self.pad_crop,
                               cutout=self.cutout)
        state = self._load(context, net, controller)
        if state is None:
            state = {"format": STATE_FORMAT, "identity": self._identity(), "epoch": 0, "seconds": 0.0,
                     "samples": []}
        else:
            logger.info("resuming SLNAS at epoch %d", state["epoch"])
        t0 = time.perf_counter() - float(state["seconds"])
        bar = None
        if context.progress and state["epoch"] < self.epochs:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, initial=state["epoch"], desc="slnas", unit="epoch")
        logged = context.logged_rows
        executor = self._parallel_executor(context, controller)
        try:
            while state["epoch"] < self.epochs:
                e = int(state["epoch"])
                row, samples = self._epoch(e, seed, net, controller, pipes, context.candidate, executor)
                row["wall_s"] = round(time.perf_counter() - t0, 3)
                state["samples"].append(samples)
                self._append_epoch(context, e, row, samples)
                if e + 1 > logged:
                    context.log(row)
                    logged += 1
                state.update(epoch=e + 1, seconds=time.perf_counter() - t0)
                self._save(context, state, net, controller)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['train_loss']:.3f}", reward=f"{row['mean_reward']:.1f}")
        finally:
            if bar is not None:
                bar.close()
        recent = state["samples"][-self.pick_epochs:] if self.pick_epochs else state["samples"]
        best_text, best_reward, count = pick_best([(s["arch"], s["reward"]) for epoch in recent for s in epoch])
        best = self.space.decode(best_text)
        extra = {"params": int(self.space.num_params(best, self.data[4].num_classes)), "epochs": int(state["epoch"]),
                 "samples_of_best": count, "wall_s": round(time.perf_counter() - t0, 2),
                 "supernet_traces": dict(net.trace_counts)}
        return SearchOutcome(best_arch=self.space.encode(best), score=best_reward, score_name="mean_reward",
                             extra=extra)

    def _arch_text(self, arch: np.ndarray) -> str:
        return self.space.encode(self.space.decode(json.dumps(np.asarray(arch).astype(int).tolist())))

    def _epoch(self, e: int, seed: int, net: Any, controller: Any, pipes: ArrayPipelines,
               candidate: Callable[[int, Dict[str, Any]], None] = lambda step, values: None,
               executor: Any = None):
        """One epoch: shared-weight steps, then controller steps. Returns ``(row, samples)``.

        ``candidate`` gets each step's loss on its sampled architecture (``supernet_loss``, step =
        shared-weight steps so far) and each controller sample's reward (``reward``, step = samples
        so far). ``executor``: where batches of rewards run (:meth:`_parallel_executor`), or None."""
        import tensorflow as tf

        lr = cosine_lr(e, self.epochs, self.lr, self.lr_min)
        rate = self.drop_path * e / self.epochs
        net.set_drop_path_rate(rate)
        epoch_seed = seed * 1_000_003 + e
        net.set_noise_seed(epoch_seed)
        lr_t = tf.constant(lr, tf.float32)
        loss_sum = correct = count = 0.0
        rng = np.random.default_rng([seed, e])
        first_step = e * pipes.train_steps(self.steps_per_epoch)
        for k, (images, labels) in enumerate(pipes.train(epoch_seed)):
            if self.steps_per_epoch and k >= self.steps_per_epoch:
                break
            arch = _training_arch(controller, rng)
            out = net.train_step(images, labels, arch, lr_t)
            loss_sum, correct, count = loss_sum + float(out[0]), correct + float(out[1]), count + float(out[2])
            candidate(first_step + k, {"supernet_loss": float(out[0]) / max(float(out[2]), 1.0)})
        if count == 0:
            raise ValueError("the shared-weight part yielded no batch (fewer images than [search] batch_size?)")
        if not np.isfinite(loss_sum):
            raise TrainingDivergedError(f"SLNAS shared-weight loss is {loss_sum / count} in epoch {e + 1}; lower "
                                        f"[search] lr or set grad_clip")
        samples, stats = [], []
        stream = iter(pipes.score_stream(epoch_seed))
        rewards_of = self._rewarder(net, seed, executor)
        while len(samples) < self.controller_steps:
            left = self.controller_steps - len(samples)
            archs = controller.next_batch(left) if executor is not None else [controller.sample()[0]]
            batches = [next(stream) for _ in archs]  # one scoring batch per reward, in the same order
            for arch, reward in zip(archs, rewards_of(archs, batches)):
                stats.append(controller.update(arch, reward))
                samples.append({"arch": self._arch_text(arch), "reward": reward})
                candidate(e * self.controller_steps + len(samples) - 1, {"reward": reward})
        rewards = [s["reward"] for s in samples]
        row = {"epoch": e + 1, "lr": lr, "drop_path": rate, "train_loss": loss_sum / count,
               "train_acc": correct / count, "mean_reward": float(np.mean(rewards)),
               "max_reward": float(np.max(rewards))}
        for key in ("entropy", "baseline", "loss"):
            values = [float(s[key]) for s in stats if isinstance(s, dict) and key in s]
            if values:
                row[f"controller_{key}"] = float(np.mean(values))
        return row, samples

    def _parallel_executor(self, context: SearchContext, controller: Any) -> Any:
        """``context.executor`` when the rewards of an epoch can run side by side on it: a ``process``
        or ``ray`` executor and a controller that hands out independent members (the GA's
        ``next_batch``). The LSTM controllers update after every reward, so theirs run here."""
        executor = context.executor
        if executor is None or executor.name == "local":
            return None
        if not hasattr(controller, "next_batch"):
            logger.info("SLNAS: the %s controller updates after every reward, so its rewards run in this "
                        "process, not on the %s executor", type(controller).__name__, executor.name)
            return None
        return executor

    def _rewarder(self, net: Any, seed: int, executor: Any) -> Callable[[List[Any], List[Any]], List[float]]:
        """``rewards(archs, batches)``: in this process, or (``executor``) on its workers with this
        epoch's weights (:class:`~tfnas.methods.slnas.rewards.SupernetRewardJob`, pickled once per epoch)."""
        if executor is None:
            return lambda archs, batches: [supernet_reward(net, a, x, y) for a, (x, y) in zip(archs, batches)]
        job = prepare_job(SupernetRewardJob(self.supernet_factory, seed, net.get_weights()))

        def on_workers(archs: List[Any], batches: List[Any]) -> List[float]:
            items = [(np.asarray(a), np.asarray(x), np.asarray(y)) for a, (x, y) in zip(archs, batches)]
            out = executor.map(job, items)
            for arch, reward in zip(archs, out):
                if isinstance(reward, Failed):  # raised again, as in this process, where the error would propagate
                    reward.reraise(f"SLNAS reward of {self._arch_text(arch)} failed on a worker")
            return [float(r) for r in out]

        return on_workers

    def _append_epoch(self, context: SearchContext, e: int, row: Dict[str, Any], samples: List[Dict[str, Any]]):
        """Rewrites ``epochs.jsonl`` with epochs ``<= e`` and this one (a resumed run drops a torn tail)."""
        append_round(context.store, EPOCHS_FILE, "epoch", e, {**row, "samples": samples})
