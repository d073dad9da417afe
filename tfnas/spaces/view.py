"""What every row view of a space shares: a :class:`~tfnas.spaces.base.TabularSpace` whose rows are
architectures of an underlying space ``base``, which encodes, decodes, builds and costs them.

Subclasses (:class:`~tfnas.spaces.pool.CandidatePool`, :class:`~tfnas.spaces.subset.SubsetSpace`)
set ``base``, ``size`` and ``name`` and define the row mapping (``index``, ``from_index``,
``all_graphs``); ``OWN`` names their own attributes, which are never looked up on ``base``.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from tfnas.checks import check_rng
from tfnas.spaces.base import GraphSpace, TabularSpace


class RowView(TabularSpace, GraphSpace):
    """Rows of ``base`` as a tabular graph space; everything but the rows is ``base``'s."""

    OWN: Tuple[str, ...] = ()

    def to_graph(self, arch: Any) -> Tuple[np.ndarray, np.ndarray]:
        return self.base.to_graph(arch)

    def sample(self, rng: np.random.Generator) -> Any:
        check_rng(rng, f"{type(self).__name__}.sample")
        return self.from_index(int(rng.integers(self.size)))

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        return self.base.mutate(arch, rng)  # may leave the view: mutation-based methods are not offered one

    def encode(self, arch: Any) -> str:
        return self.base.encode(arch)

    def decode(self, text: str) -> Any:
        return self.base.decode(text)

    def build(self, arch: Any, num_classes: int, input_shape: Tuple[int, int, int], **kwargs: Any):
        return self.base.build(arch, num_classes, input_shape, **kwargs)

    def __getattr__(self, item: str) -> Any:
        # num_params, flops, ... of the underlying space; never the view's own (e.g. while unpickling)
        if item == "base" or item in self.OWN:
            raise AttributeError(item)
        return getattr(self.base, item)
