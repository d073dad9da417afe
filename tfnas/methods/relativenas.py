"""RelativeNAS: slow-fast learning over the continuous DARTS encoding with one shared weight set.

Tan et al., "RelativeNAS: Relative Neural Architecture Search via Slow-Fast Learning", IEEE
TNNLS 2021 (https://arxiv.org/abs/2009.06193), Sec. III. Per generation ``g`` of ``G``:

1. the population (real vectors ``x [P, 32]``, velocities ``v``) is paired at random;
2. for each pair, in sequence, each member loads the weight set ``W``, trains one epoch on
   the first half of the training split (SGD momentum, weight decay on the parameters it uses,
   gradient clipping, drop-path ``drop_path * g / G``, lr cosine from ``lr`` to ``lr_min`` over
   generations) and is scored by its mean cross-entropy on the second half; the lower loss
   is the fast learner ``f``, the other the slow learner ``s``;
3. ``W`` takes the ops used only by ``s`` from ``s``'s trained copy and everything else from
   ``f``'s (:meth:`DartsSupernet.merge_weights`);
4. after all pairs every slow learner moves (Eq. 4-5 of the paper):
   ``v_s <- r1 * v_s + r2 * (x_f - x_s)``, ``x_s <- clip(x_s + v_s, bounds)``, ``r1, r2 ~ U(0, 1)^32``.

The answer is the genotype with the lowest loss measured in the last generation. State is
checkpointed after every pair (population, velocities, losses, generator state, ``W`` as
``.npz``) into ``search_state/``, so a killed search resumes at the next pair and follows the
same path as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfnas.io import (PCG64_STATE, DamagedFileError, check_fields, dict_of, integer, items, list_of, nullable, number,
                      read_json, reading, record, text)
from tfnas.methods.base import OneShotSearch, SearchContext, SearchOutcome
from tfnas.methods.weight_sharing import (RESTART, ArrayPipelines, append_round, cached_supernet, cosine_lr,
                                          data_identity, load_split, load_tagged, run_key, save_tagged)
from tfnas.registry import register_method
from tfnas.spaces.darts import DartsSpace

logger = logging.getLogger(__name__)

__all__ = ["RelativeNasSearch", "cosine_lr", "get_supernet", "load_halves", "slow_learner_update"]

STATE_FORMAT = 1
STATE_FILE = "search_state/relativenas.json"
WEIGHTS_FILE = "search_state/weights.npz"


def slow_learner_update(x_slow: np.ndarray, v_slow: np.ndarray, x_fast: np.ndarray, rng: np.random.Generator,
                        lower: np.ndarray, upper: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(x_s', v_s')``: ``v' = r1 * v + r2 * (x_f - x_s)``, ``x' = clip(x_s + v', lower, upper)`` (Eq. 4-5).

    ``r1`` and ``r2`` are drawn fresh, uniform in ``[0, 1)^d``, from ``rng`` (in that order).
    """
    r1 = rng.random(x_slow.shape)
    r2 = rng.random(x_slow.shape)
    v = r1 * v_slow + r2 * (x_fast - x_slow)
    return np.clip(x_slow + v, lower, upper), v


def get_supernet(num_classes: int, input_shape: Tuple[int, int, int], channels: int, layers: int, momentum: float,
                 weight_decay: float, grad_clip: float, jit_compile: bool, seed: int):
    """A :class:`~tfnas.spaces.darts.supernet.DartsSupernet` with its initial weights restored.

    Supernets are kept per process by configuration: tracing the shared steps takes a while
    (about a minute on a CPU), and a second search of the same configuration (another seed in
    a sweep, a test) reuses the traced functions instead of tracing them again.
    """
    from tfnas.spaces.darts import DartsSupernet

    key = ("darts", num_classes, tuple(input_shape), channels, layers, momentum, weight_decay, grad_clip,
           jit_compile, seed)
    return cached_supernet(key, lambda: DartsSupernet(num_classes, input_shape, channels=channels, layers=layers,
                                                      momentum=momentum, weight_decay=weight_decay,
                                                      grad_clip=grad_clip, jit_compile=jit_compile, seed=seed))


@register_method("relativenas")
class RelativeNasSearch(OneShotSearch):
    """The RelativeNAS search (module docstring) over :class:`~tfnas.spaces.darts.DartsSpace`.

    Args:
        space: the DARTS space (its ``search_channels`` / ``search_layers`` size the supernet).
        data: ``(train_images, train_labels, valid_images, valid_labels, info)``: uint8 images
            ``[N, H, W, 3]`` and int labels ``[N]`` of the two halves, and the dataset info.
        population: members ``P`` (even; paper: 20).
        generations: ``G`` (paper: 50).
        batch_size: search batch (paper: 256).
        steps_per_epoch: cap on the steps of one member's epoch (0 = the whole train half).
        lr, lr_min, momentum, weight_decay, grad_clip, drop_path: the search SGD (paper: 0.1,
            0.001, 0.9, 3e-4, 5, 0.3).
        cutout, flip, pad_crop: augmentation of the train half (paper: cutout 16, flip, crop 4).
        jit_compile: XLA for the supernet steps.
    """

    name = "relativenas"
    requires = (DartsSpace,)

    def __init__(self, space: Any, data: Tuple[Any, ...], population: int = 20, generations: int = 50,
                 batch_size: int = 256, steps_per_epoch: int = 0, lr: float = 0.1, lr_min: float = 0.001,
                 momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0, drop_path: float = 0.3,
                 cutout: int = 16, flip: bool = True, pad_crop: int = 4, jit_compile: bool = False):
        if population < 2 or population % 2:
            raise ValueError(f"RelativeNAS pairs its population: population must be even and >= 2; got {population}")
        self.space, self.data = space, data
        self.population, self.generations = int(population), int(generations)
        self.batch_size, self.steps_per_epoch = int(batch_size), int(steps_per_epoch)
        self.lr, self.lr_min, self.momentum = float(lr), float(lr_min), float(momentum)
        self.weight_decay, self.grad_clip, self.drop_path = float(weight_decay), float(grad_clip), float(drop_path)
        self.cutout, self.flip, self.pad_crop = int(cutout), bool(flip), int(pad_crop)
        self.jit_compile = bool(jit_compile)


    # ---- data -----------------------------------------------------------------------------

    def _pipeline(self, half: str, seed: int):
        if getattr(self, "_pipes", None) is None or self._pipes.global_seed != self._global_seed:
            self._pipes = ArrayPipelines(self.data, self.batch_size, self._global_seed, flip=self.flip,
                                         pad_crop=self.pad_crop, cutout=self.cutout)
        return self._pipes.train(seed) if half == "train" else self._pipes.score()

    # ---- state ----------------------------------------------------------------------------

    def _identity(self) -> Dict[str, Any]:
        return {"population": self.population, "generations": self.generations, "batch_size": self.batch_size,
                "steps_per_epoch": self.steps_per_epoch, "lr": self.lr, "lr_min": self.lr_min,
                "momentum": self.momentum, "weight_decay": self.weight_decay, "grad_clip": self.grad_clip,
                "drop_path": self.drop_path, "channels": self.space.search_channels,
                "layers": self.space.search_layers, "train_images": int(len(self.data[1])),
                **data_identity(self.data[4])}

    def _step(self, state: Dict[str, Any]) -> int:
        """The pairs done before ``state``: what its weight file is tagged with."""
        return int(state["generation"]) * (self.population // 2) + int(state["pair"])

    def _save(self, context: SearchContext, state: Dict[str, Any], weights: List[np.ndarray]) -> None:
        # weights first, tagged with the step of the json written after them: a stop between the two
        # writes leaves the json's weights as the previous file, which the load takes (save_tagged).
        save_tagged(context.store, WEIGHTS_FILE, weights, self._step(state), run_key(self._identity(), context.seed))
        context.store.write_text(STATE_FILE, json.dumps(state) + "\n")

    def _load(self, context: SearchContext,
              like: List[np.ndarray]) -> Optional[Tuple[Dict[str, Any], List[np.ndarray]]]:
        state_path = context.store.path(STATE_FILE)
        if not os.path.exists(state_path):
            return None
        state = read_json(state_path, RESTART)
        if not isinstance(state, dict) or (state.get("format"), state.get("identity")) != (STATE_FORMAT,
                                                                                         self._identity()):
            raise DamagedFileError(state_path, "holds the state of another RelativeNAS search", RESTART)
        self._check_state(state_path, state)
        return state, load_tagged(context.store, WEIGHTS_FILE, like, self._step(state),
                                  run_key(self._identity(), context.seed), os.path.basename(state_path))

    def _check_state(self, path: str, state: Dict[str, Any]) -> None:
        """Every field of a checkpoint that the search reads (types, lengths, ranges, how they agree, the
        genotypes decoded); a damaged one raises :class:`DamagedFileError` before any work."""
        size, half = self.population, self.population // 2
        lower, upper = self.space.bounds()
        member = integer(0, size - 1)
        vectors = list_of(list_of(number(finite=True), length=len(lower)), length=size)
        result = record({"fast": member, "slow": member, "fast_arch": text, "slow_arch": text, "fast_loss": number(),
                         "slow_loss": number(), "fast_train_loss": number(), "slow_train_loss": number()})
        fields = {"generation": integer(0, self.generations), "pair": integer(0, half),
                  "pairs": nullable(list_of(items(member, member), length=half)),
                  "results": list_of(result, max_length=half), "last_losses": dict_of(number()),
                  "final_losses": dict_of(number()), "x": vectors, "v": vectors, "rng": PCG64_STATE,
                  "seconds": number(low=0, finite=True), "epochs": integer()}
        check_fields(path, state, record(fields, optional=("final_losses",)), RESTART)

        def damaged(problem: str) -> DamagedFileError:
            return DamagedFileError(path, problem, RESTART)

        pairs, pair, results = state["pairs"], state["pair"], state["results"]
        if pairs is None and pair != 0:
            raise damaged(f"'pair' must be 0 while 'pairs' is null (between generations); got {pair}")
        if pairs is not None:
            if sorted(m for p in pairs for m in p) != list(range(size)):
                raise damaged(f"'pairs' must pair each of the {size} members once; got {pairs}")
            if pair >= half:
                raise damaged(f"'pair' must be below {half} while 'pairs' is a list (within a generation); got {pair}")
            if len(results) != pair:
                raise damaged(f"'results' must hold one entry per pair done ({pair}); got {len(results)}")
            for k, res in enumerate(results):
                if sorted((res["fast"], res["slow"])) != sorted(pairs[k]):
                    raise damaged(f"'results'[{k}] must be of the members of 'pairs'[{k}] {pairs[k]}; got "
                                  f"{[res['fast'], res['slow']]}")
        if not (state.get("final_losses") or state["last_losses"]):
            raise damaged("'last_losses' must hold the loss of at least one genotype; got an empty object")
        x = np.asarray(state["x"], np.float64)
        if not np.all((x >= lower) & (x <= upper)):
            raise damaged("'x' must lie within the bounds of the encoding (space.bounds())")
        genotypes = {r[f"{who}_arch"] for r in results for who in ("fast", "slow")}
        genotypes |= set(state["last_losses"]) | set(state.get("final_losses") or {})
        with reading(path, RESTART):  # a genotype the space cannot decode is named with the file
            for genotype in sorted(genotypes):
                self.space.decode(genotype)

    # ---- the search -----------------------------------------------------------------------

    def search(self, context: SearchContext) -> SearchOutcome:
        from tfnas.spaces.darts import describe_genotype

        info = self.data[4]
        space, lower_upper = self.space, self.space.bounds()
        lower, upper = lower_upper
        net = get_supernet(info.num_classes, info.image_shape, space.search_channels, space.search_layers,
                           self.momentum, self.weight_decay, self.grad_clip, self.jit_compile, context.seed)
        rng = np.random.default_rng(np.random.SeedSequence(context.seed).spawn(1)[0])
        self._global_seed = int(context.seed)
        resumed = self._load(context, net.get_weights())
        if resumed is None:
            x = np.stack([space.sample_vector(rng) for _ in range(self.population)])
            v = np.zeros_like(x)
            state: Dict[str, Any] = {"format": STATE_FORMAT, "identity": self._identity(), "generation": 0,
                                     "pair": 0, "pairs": None, "results": [], "last_losses": {},
                                     "x": x.tolist(), "v": v.tolist(), "seconds": 0.0, "epochs": 0}
            weights = net.get_weights()
        else:
            state, weights = resumed
            rng.bit_generator.state = state["rng"]
            logger.info("resuming RelativeNAS at generation %d, pair %d", state["generation"], state["pair"])
        x, v = np.asarray(state["x"]), np.asarray(state["v"])
        t0 = time.perf_counter() - float(state["seconds"])
        bar = None
        total = self.generations * (self.population // 2)
        done = state["generation"] * (self.population // 2) + state["pair"]
        if context.progress and done < total:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=done, desc="relativenas", unit="pair")
        logged = context.logged_rows
        try:
            while state["generation"] < self.generations:
                g = int(state["generation"])
                lr = cosine_lr(g, self.generations, self.lr, self.lr_min)
                rate = self.drop_path * g / self.generations
                if state["pairs"] is None:
                    state["pairs"] = rng.permutation(self.population).reshape(-1, 2).tolist()
                    state["results"] = []
                while state["pair"] < len(state["pairs"]):
                    k = int(state["pair"])
                    members = state["pairs"][k]
                    trained, losses, train_losses = [], [], []
                    for slot, m in enumerate(members):
                        arch = space.from_vector(x[m])
                        net.set_weights(weights)
                        net.set_drop_path_rate(rate)
                        member_seed = int(context.seed) * 1_000_003 + (g * self.population + k * 2 + slot)
                        net.set_noise_seed(member_seed)
                        train_losses.append(net.train_epoch(self._pipeline("train", member_seed), arch, lr,
                                                            self.steps_per_epoch))
                        losses.append(net.evaluate(self._pipeline("valid", 0), arch))
                        trained.append(net.get_weights())
                    fast = 0 if losses[0] <= losses[1] else 1
                    slow = 1 - fast
                    arch_f, arch_s = space.from_vector(x[members[fast]]), space.from_vector(x[members[slow]])
                    weights = net.merge_weights(trained[fast], trained[slow], arch_f, arch_s)
                    state["results"].append({"fast": members[fast], "slow": members[slow],
                                             "fast_arch": space.encode(arch_f), "slow_arch": space.encode(arch_s),
                                             "fast_loss": losses[fast], "slow_loss": losses[slow],
                                             "fast_train_loss": train_losses[fast],
                                             "slow_train_loss": train_losses[slow]})
                    for slot, (m, loss) in enumerate(zip(members, losses)):
                        state["last_losses"][space.encode(space.from_vector(x[m]))] = loss
                        context.candidate(g * self.population + k * 2 + slot,  # the member epoch's index
                                          {"valid_loss": loss, "train_loss": train_losses[slot]})
                    state["pair"] = k + 1
                    state["epochs"] += 2
                    if state["pair"] == len(state["pairs"]):  # generation done: move the slow learners
                        gen_losses: Dict[str, float] = {}
                        for res in state["results"]:
                            x[res["slow"]], v[res["slow"]] = slow_learner_update(
                                x[res["slow"]], v[res["slow"]], x[res["fast"]], rng, lower, upper)
                            for who in ("slow", "fast"):  # a genotype met twice: its loss in the later pair
                                # (within one pair, the fast learner's; the spec's "latest measured loss")
                                gen_losses[res[f"{who}_arch"]] = res[f"{who}_loss"]
                        row = self._row(g, lr, rate, state["results"], time.perf_counter() - t0)
                        if g + 1 > logged:
                            context.log(row)
                            logged += 1
                        self._write_generation(context, g, lr, rate, state["results"], row)
                        state.update(generation=g + 1, pair=0, pairs=None, final_losses=gen_losses)
                    state.update(x=x.tolist(), v=v.tolist(), rng=rng.bit_generator.state,
                                 seconds=time.perf_counter() - t0)
                    self._save(context, state, weights)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(gen=state["generation"], loss=f"{min(losses):.3f}")
                    if state["generation"] > g:
                        break
        finally:
            if bar is not None:
                bar.close()
        final = state.get("final_losses") or state["last_losses"]
        best_text, best_loss = min(final.items(), key=lambda kv: kv[1])
        best = space.decode(best_text)
        elapsed = time.perf_counter() - t0
        context.store.write_text("best_cell.txt", describe_genotype(best) + "\n")
        extra = {"params": int(space.num_params(best, info.num_classes)), "search_params": int(net.num_params(best)),
                 "generations": int(state["generation"]), "member_epochs": int(state["epochs"]),
                 "wall_s": round(elapsed, 2), "supernet_traces": dict(net.trace_counts)}
        return SearchOutcome(best_arch=best_text, score=float(best_loss), score_name="valid_loss", extra=extra)

    def _row(self, g: int, lr: float, rate: float, results: List[Dict[str, Any]], elapsed: float) -> Dict[str, Any]:
        fast = [r["fast_loss"] for r in results]
        slow = [r["slow_loss"] for r in results]
        return {"generation": g + 1, "lr": lr, "drop_path": rate, "best_loss": float(min(fast)),
                "mean_fast_loss": float(np.mean(fast)), "mean_slow_loss": float(np.mean(slow)),
                "wall_s": elapsed}

    def _write_generation(self, context: SearchContext, g: int, lr: float, rate: float,
                          results: List[Dict[str, Any]], row: Dict[str, Any]) -> None:
        """Appends generation ``g`` to ``generations.jsonl`` (pairs, losses, best genotype and its drawing)."""
        from tfnas.spaces.darts import describe_genotype

        best = min(results, key=lambda r: r["fast_loss"])
        best_arch = self.space.decode(best["fast_arch"])
        record = {"generation": g + 1, "lr": lr, "drop_path": rate, "pairs": results,
                  "best_genotype": best["fast_arch"], "best_loss": best["fast_loss"],
                  "best_cell": describe_genotype(best_arch)}
        append_round(context.store, "generations.jsonl", "generation", g, record)
        logger.info("generation %d: best loss %.4f %s", g + 1, best["fast_loss"], record["best_genotype"])


def load_halves(name: str, data_dir: str = "", manual_dir: str = "", download: str = "auto", subset: int = 0,
                where: str = "", image_size: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """The training split of ``name`` in memory, cut in two halves (first: train, second: loss).

    RelativeNAS splits CIFAR-10's 50k training images 25k / 25k (in the split's fixed order);
    :func:`~tfnas.methods.weight_sharing.load_split` with ``first_fraction = 0.5``.
    """
    return load_split(name, data_dir=data_dir, manual_dir=manual_dir, download=download, subset=subset,
                      where=where, first_fraction=0.5, divisor=4, who="the DARTS supernet (two stride-2 reductions)",
                      image_size=image_size)
