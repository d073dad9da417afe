"""The evaluator seam: methods hand batches of architectures to an evaluator.

``evaluate(archs) -> results``, one result per architecture, in submission order. Methods never
loop over a proxy or the Trainer themselves, so an executor (in-process, a process pool, a
cluster) can change how fast a batch is evaluated and never what comes back. Evaluators hold no
method state: what they remember (caches) depends on the architecture only.
"""

from __future__ import annotations

import abc
from typing import Any, List, Sequence


class Evaluator(abc.ABC):
    """``evaluate(archs) -> list`` of one result per architecture, in order."""

    @abc.abstractmethod
    def evaluate(self, archs: Sequence[Any]) -> List[Any]:
        """Results of ``archs`` (same length and order)."""
