"""Search-space capability interfaces.

Capabilities are separate ABCs (as in Archai): every space samples, mutates, encodes and
builds; ``GraphSpace`` adds the op-on-node graph view used by predictors; ``TabularSpace``
adds a dense index for spaces that a benchmark table enumerates; ``EvolvableSpace`` adds
analytic costs and a start architecture for budgeted evolution. A method declares the
capabilities it needs (``requires``); the run layer checks them before any work.
"""

from __future__ import annotations

import abc
from typing import Any, Generic, Tuple, TypeVar

import numpy as np

ArchT = TypeVar("ArchT")


class SearchSpace(abc.ABC, Generic[ArchT]):
    """A set of architectures with sampling, mutation, a canonical string form and a builder."""

    name: str = ""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> ArchT:
        """Draws one architecture uniformly (or by the space's documented prior)."""

    @abc.abstractmethod
    def mutate(self, arch: ArchT, rng: np.random.Generator) -> ArchT:
        """Returns a neighbour of ``arch`` (never ``arch`` itself)."""

    @abc.abstractmethod
    def encode(self, arch: ArchT) -> str:
        """Canonical string of ``arch``; ``decode(encode(a)) == a``."""

    @abc.abstractmethod
    def decode(self, text: str) -> ArchT:
        """Parses a string produced by ``encode``; raises ``ValueError`` on bad input."""

    @abc.abstractmethod
    def build(self, arch: ArchT, num_classes: int, input_shape: Tuple[int, int, int], **kwargs: Any):
        """Returns a ``keras.Model`` mapping images ``(B, H, W, 3)`` to logits ``(B, num_classes)``."""


class GraphSpace(SearchSpace[ArchT]):
    """A space with an op-on-node DAG view for graph predictors."""

    @abc.abstractmethod
    def to_graph(self, arch: ArchT) -> Tuple[np.ndarray, np.ndarray]:
        """Returns ``(adj[N, N] float32, ops[N, K] float32 one-hot)``; ``adj[i, j] = 1`` for an edge i->j."""


class TabularSpace(SearchSpace[ArchT]):
    """A finite space enumerated by a dense index ``0 .. size-1`` (benchmark row order)."""

    size: int = 0

    @abc.abstractmethod
    def index(self, arch: ArchT) -> int:
        """Row of ``arch`` in the benchmark table."""

    @abc.abstractmethod
    def from_index(self, i: int) -> ArchT:
        """Inverse of ``index``."""


class EvolvableSpace(SearchSpace[ArchT]):
    """A space an evolutionary search walks under budgets: analytic costs and a start point.

    Attributes (set by the space): ``start_arch`` (where a search starts), ``num_classes`` and
    ``resolution`` (the head and square input side of the networks it scores).
    """

    start_arch: Any = None
    num_classes: int = 0
    resolution: int = 0

    @abc.abstractmethod
    def num_params(self, arch: ArchT) -> int:
        """Parameters of the network of ``arch`` (analytic, no model built)."""

    @abc.abstractmethod
    def flops(self, arch: ArchT) -> int:
        """Multiply-adds of one forward pass of the network of ``arch`` (analytic)."""


def require(obj: Any, capability: type, who: str) -> None:
    """Raises ``TypeError`` when ``obj`` lacks ``capability`` (a method's construction-time check)."""
    if not isinstance(obj, capability):
        needed = sorted(getattr(capability, "__abstractmethods__", ()))
        missing = [name for name in needed if not callable(getattr(obj, name, None))]
        why = (f"missing methods: {', '.join(missing)}" if missing else
               f"it has the methods ({', '.join(needed)}) but does not derive from {capability.__name__}")
        raise TypeError(f"{who} needs a {capability.__name__} ({why}); got {type(obj).__name__}")
