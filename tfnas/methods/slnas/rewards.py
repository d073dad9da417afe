"""SLNAS rewards: the lite supernet as a picklable recipe, and rewards of a batch on worker processes.

A reward is the top-1 accuracy (%) of the supernet, in inference mode, on one batch of the
scoring part (:func:`supernet_reward`). The controller steps of an epoch see one fixed weight set
(the shared weights train only in the first half of the epoch), so the rewards of members of the
GA baseline's population that :meth:`~tfnas.methods.slnas.ga.GeneticController.next_batch` hands
out together do not depend on each other. :class:`SupernetRewardJob` carries that epoch's weights
to the workers of a ``process`` or ``ray`` executor (with every chunk of a batch on the process
pool, once per batch on Ray; each item carries its scoring batch): each worker builds the
supernet from its :class:`LiteSupernetRecipe` once (its eval step is traced once per worker),
loads the weights of the epoch and evaluates its items. The worker runs the same recipe, seed,
weights, images and eval step as this process; the searches were identical in the test (one
worker) and in the benchmark of docs/SCALING.md (two workers, 450 rewards). A worker with another
number of threads than this process could round differently and break a tie another way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from tfnas.evaluation.executors import Job

__all__ = ["LiteSupernetRecipe", "SupernetRewardJob", "supernet_reward"]


@dataclasses.dataclass(frozen=True)
class LiteSupernetRecipe:
    """``recipe(seed)``: the :class:`~tfnas.spaces.lite.supernet.LiteSupernet` of these arguments,
    traced once per configuration and process (:func:`~tfnas.methods.weight_sharing.cached_supernet`,
    which hands it back with its initial weights). Picklable, so worker processes build their own.

    Args:
        num_classes, image_shape: of the data.
        args: the remaining ``LiteSupernet`` keyword arguments as sorted ``(name, value)`` pairs.
    """

    num_classes: int
    image_shape: Tuple[int, ...]
    args: Tuple[Tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, num_classes: int, image_shape: Sequence[int], **args: Any) -> "LiteSupernetRecipe":
        return cls(int(num_classes), tuple(int(d) for d in image_shape), tuple(sorted(args.items())))

    def __call__(self, seed: int) -> Any:
        from tfnas.methods.weight_sharing import cached_supernet
        from tfnas.spaces.lite.supernet import LiteSupernet

        key = ("lite", self.num_classes, self.image_shape, self.args, int(seed))
        return cached_supernet(key, lambda: LiteSupernet(self.num_classes, self.image_shape, seed=int(seed),
                                                         **dict(self.args)))


def supernet_reward(net: Any, arch: Any, images: Any, labels: Any) -> float:
    """Top-1 accuracy (%) of ``arch`` on ``(images, labels)`` with the supernet's weights, inference mode."""
    _, hits, n = net.eval_step(images, labels, arch)
    return 100.0 * float(hits) / float(n)


#: id(supernet) -> the weights it holds (the last job's), in this worker
_LOADED: Dict[int, List[np.ndarray]] = {}


class SupernetRewardJob(Job):
    """Rewards of items ``(arch, images, labels)`` on one weight set, on an executor's workers.

    Args:
        factory: ``seed -> supernet``, picklable (a :class:`LiteSupernetRecipe`).
        seed: the search's seed (the supernet's key in the worker's cache).
        weights: the supernet's ``get_weights()`` of this epoch.
    """

    def __init__(self, factory: Callable[[int], Any], seed: int, weights: Sequence[np.ndarray]):
        self.factory, self.seed = factory, int(seed)
        self.weights: List[np.ndarray] = [np.asarray(w) for w in weights]

    def build(self) -> Callable[[Sequence[Any]], List[float]]:
        # Worker side only: in the search's own process the factory would hand back the search's
        # live supernet (reset to its initial weights and momentum), so the search never builds
        # this job with a local executor (SlnasSearch._parallel_executor).
        net = self.factory(self.seed)  # the worker's own supernet (traced once per worker), initial weights
        _LOADED.pop(id(net), None)
        weights = self.weights

        def run(items: Sequence[Any]) -> List[float]:
            # one supernet serves every epoch's job in a worker: load this job's weights unless they
            # are the ones it holds
            if _LOADED.get(id(net)) is not weights:
                net.set_weights(weights)
                _LOADED[id(net)] = weights
            return [supernet_reward(net, arch, images, labels) for arch, images, labels in items]

        return run

