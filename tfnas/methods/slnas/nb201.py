"""``slnas_controller``: the SLNAS controllers searching NAS-Bench-201 offline, on counted queries.

The offline proof that the controller learns (issue 14): the stage-2 op head
(:class:`~tfnas.methods.slnas.controller.OpController`) runs on NAS-Bench-201's cell graph, whose
6 edges have the fixed sources ``(0, 0, 1, 0, 1, 2)``, and is trained with REINFORCE on the
table's accuracy of the cells it samples; ``kind = ga`` runs the GA baseline
(:class:`~tfnas.methods.slnas.ga.GeneticController`) through the same loop.

Loop, per (budget, seed): sample a cell, read its accuracy (%) through the counting session,
update the controller with it; repeat until ``budget`` distinct cells are queried. A cell sampled
again costs no query (the session answers known cells for free) but still trains the controller,
so the loop keeps sampling. Should the controller collapse onto known cells, sampling stops after
``MAX_SAMPLES_PER_QUERY * budget`` samples and the rest of the budget goes to distinct random
unqueried cells (``extra["fallback_queries"]``), so ``queries == budget`` always. The answer is
the queried cell with the best accuracy averaged over its samples (the spec's "best mean reward";
the entropy bonus belongs to the policy, not to the cell, and is left out). Every record's ranking
of the whole space puts the queried cells first by accuracy, then the rest by the controller's
``log pi`` (``lstm``) or at random (``ga``).

The answer read from the session is the shipped table's 200-epoch test accuracy, the same counted
ground truth every budgeted method here queries (the table ships no 200-epoch validation
accuracy); the NAS-Bench-201 paper's REINFORCE rewards the 12-epoch validation accuracy instead.

Learning rate: the paper's 3.5e-5 (Ranger) trains the controller over 150 epochs x 150 steps on
noisy shared-weight rewards; over the 100-500 samples of this benchmark it leaves the policy
where it started (the found cells equal random search's). ``cfg/slnas_controller_nb201.cfg``
keeps the paper's Ranger and logit bounds and sets ``lr = 0.01``, which learns here (Adam at
1e-3 does as well); ``docs/RESULTS.md`` has the figures. The op bound ``1.1 / 2.5`` caps the most
likely op of an edge at probability 0.376, which limits how far the policy can concentrate.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np

from tfnas.methods.base import BudgetedSearch, RunResult
from tfnas.methods.slnas.controller import OPTIMIZERS, OpController
from tfnas.methods.slnas.ga import GeneticController
from tfnas.registry import register_method
from tfnas.spaces.base import TabularSpace

logger = logging.getLogger(__name__)

#: NAS-Bench-201 edge sources in the space's edge order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2).
NB201_SOURCES = (0, 0, 1, 0, 1, 2)
NB201_OPS = 5
#: Samples allowed per unit of budget before the rest of the budget is spent on random cells.
MAX_SAMPLES_PER_QUERY = 10
KINDS = ("lstm", "ga")


@register_method("slnas_controller")
class ControllerSearch(BudgetedSearch):
    """SLNAS' LSTM op controller (``kind = lstm``) or GA baseline (``kind = ga``) on NAS-Bench-201.

    Needs a tabular space with NAS-Bench-201's cell encoding (``indices(op_ids)`` and
    ``ops_matrix()``, as :class:`~tfnas.spaces.nb201.space.Nb201Space` has).

    Args:
      space: the NAS-Bench-201 space.
      kind: ``lstm`` or ``ga``.
      hidden, lr, optimizer, entropy_weight, baseline_decay, temperature, op_tanh_constant: the
        op controller's (:class:`~tfnas.methods.slnas.controller.OpController`).
      ga_population, ga_crossover, ga_mutation: the GA's
        (:class:`~tfnas.methods.slnas.ga.GeneticController`).
    """

    name = "slnas_controller"
    requires = (TabularSpace,)

    def __init__(self, space: Any, kind: str = "lstm", hidden: int = 256, lr: float = 3.5e-5,
                 optimizer: str = "ranger", entropy_weight: float = 1e-4, baseline_decay: float = 0.05,
                 temperature: float = 5.0, op_tanh_constant: float = 1.1 / 2.5, ga_population: int = 200,
                 ga_crossover: float = 0.7, ga_mutation: float = 0.001):
        missing = [m for m in ("indices", "ops_matrix") if not callable(getattr(space, m, None))]
        if missing or getattr(space, "size", None) != NB201_OPS ** len(NB201_SOURCES):
            raise TypeError(f"slnas_controller searches NAS-Bench-201 cells: it needs the nb201 space "
                            f"(indices(), ops_matrix(), 15,625 cells); got {type(space).__name__}")
        if kind not in KINDS:
            raise ValueError(f"controller kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"controller optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
        self.space, self.kind = space, kind
        self.lstm_args = dict(hidden=int(hidden), lr=float(lr), optimizer=optimizer,
                              entropy_weight=float(entropy_weight), baseline_decay=float(baseline_decay),
                              temperature=float(temperature), op_tanh_constant=float(op_tanh_constant))
        self.ga_args = dict(population=int(ga_population), crossover=float(ga_crossover),
                            mutation=float(ga_mutation))
        if kind == "ga":  # fail on bad GA values at construction, before any run
            GeneticController([NB201_OPS] * len(NB201_SOURCES), **self.ga_args)
        self._lstm: Optional[OpController] = None

    @property
    def label(self) -> str:
        return self.name if self.kind == "lstm" else f"{self.name}+ga"

    def controller(self, seed: int) -> Any:
        """A fresh controller for one run. The LSTM controller is built (and traced) once per
        method and :meth:`~OpController.reset` for every run, which equals building a new one."""
        if self.kind == "ga":
            return GeneticController([NB201_OPS] * len(NB201_SOURCES), cell_types=1, seed=seed, **self.ga_args)
        if self._lstm is None:
            self._lstm = OpController(NB201_SOURCES, num_cell_types=1, num_ops=NB201_OPS, seed=seed,
                                      jit_compile=True, **self.lstm_args)
        else:
            self._lstm.reset(seed)
        return self._lstm

    def run(self, session: Any, budget: int, rng: np.random.Generator) -> RunResult:
        controller = self.controller(int(rng.integers(2**31 - 1)))
        total: Dict[int, float] = {}
        count: Dict[int, int] = {}
        samples, cap = 0, MAX_SAMPLES_PER_QUERY * int(budget)
        last: Dict[str, float] = {}
        while session.queries < budget and samples < cap:
            arch, _ = controller.sample()
            index = int(self.space.indices(arch.reshape(1, -1).astype(np.int64))[0])
            accuracy = 100.0 * session.query(index)
            last = controller.update(arch, accuracy)
            total[index] = total.get(index, 0.0) + accuracy
            count[index] = count.get(index, 0) + 1
            samples += 1
        fallback = self._fill(session, budget, rng)
        for index, value in fallback.items():
            total[index], count[index] = 100.0 * value, 1
        mean = {i: total[i] / count[i] for i in total}
        best = max(mean, key=lambda i: (mean[i], -i)) if mean else int(rng.integers(self.space.size))
        extra = {"kind": self.kind, "samples": samples, "repeated_samples": samples - (len(count) - len(fallback)),
                 "fallback_queries": len(fallback)}
        extra.update(self._summary(controller, last))
        return RunResult(best_index=int(best), scores=self._scores(controller, mean, rng), extra=extra)

    def _fill(self, session: Any, budget: int, rng: np.random.Generator) -> Dict[int, float]:
        """Spends what is left of the budget on distinct random unqueried cells (the fallback)."""
        left = budget - session.queries
        if left <= 0:
            return {}
        logger.warning("slnas_controller: %d samples gave only %d distinct cells; querying %d random cells",
                       MAX_SAMPLES_PER_QUERY * budget, session.queries, left)
        seen = set(session.queried())
        order = [int(i) for i in rng.permutation(self.space.size) if int(i) not in seen][:left]
        return dict(zip(order, (float(a) for a in session.query_many(order))))

    def _scores(self, controller: Any, mean: Dict[int, float], rng: np.random.Generator) -> np.ndarray:
        """Queried cells first (by accuracy), the rest by the policy's log-probability (GA: random)."""
        if isinstance(controller, OpController):
            log_p = controller.op_log_probs()[0]  # [6 edges, 5 ops]
            ops = np.asarray(self.space.ops_matrix())
            rest = log_p[np.arange(ops.shape[1])[None, :], ops].sum(axis=1)
            rest = rest - rest.max() - 1.0  # below 0
        else:
            rest = rng.random(self.space.size) - 1.0
        scores = np.asarray(rest, np.float64)
        for index, accuracy in mean.items():
            scores[index] = 1.0 + accuracy / 100.0
        return scores

    def _summary(self, controller: Any, last: Dict[str, float]) -> Dict[str, Any]:
        """Figures for the record: the GA's generation, or the policy's last entropy, baseline and
        its most likely cell (the argmax op of every edge)."""
        if isinstance(controller, GeneticController):
            return {"generations": controller.generation}
        out: Dict[str, Any] = {"final_" + k: float(last[k]) for k in ("entropy", "baseline") if k in last}
        argmax = controller.op_log_probs()[0].argmax(axis=1)
        out["argmax_cell"] = int(self.space.indices(argmax[None].astype(np.int64))[0])
        return out
