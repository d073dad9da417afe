"""Graph-optimisation settings for the calls of large ``switch_case`` graphs.

A ``tf.function`` is optimised by Grappler when it is first called (per call options). For
the one-graph-for-every-candidate functions of tfnas (the DARTS supernet's train and eval
steps, the NB201 arch-as-tensor proxy functions) that pass costs far more than it gives: on
a 2-core CPU it took 70-130 s at the first call of the supernet step while the steady-state
step time stayed the same (figures in docs/PERFORMANCE.md). :class:`GraphCall` runs such a
function with Grappler's meta-optimizer switched off for its own calls only; every other
function of the process keeps the default options.

TensorFlow keys an instantiated function by its call options, so a function must always be
called with the same options, or it is optimised and instantiated a second time:
:class:`GraphCall` makes every call of the wrapped function go through the same setting.
"""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

__all__ = ["GraphCall", "default_graph_optimizer"]

_KEY = "disable_meta_optimizer"


def default_graph_optimizer() -> bool:
    """``True`` (run Grappler) when a GPU is visible, else ``False``.

    On GPU Grappler's layout and remapping passes pay off for non-XLA graphs and XLA replaces
    most of them anyway; on CPU the first-call optimisation dominates the cost of a short run.
    """
    return bool(tf.config.list_physical_devices("GPU"))


class GraphCall:
    """Calls ``fn`` (a ``tf.function``) with Grappler on or off for that call only.

    Args:
        fn: the ``tf.function``.
        optimize: ``True``: the process's options as they are; ``False``: the meta-optimizer
            off during the call and the previous setting restored after it; ``None``:
            :func:`default_graph_optimizer`.
    """

    def __init__(self, fn: Any, optimize: Optional[bool] = None):
        self.fn = fn
        self.optimize = default_graph_optimizer() if optimize is None else bool(optimize)

    def __call__(self, *args: Any) -> Any:
        if self.optimize:
            return self.fn(*args)
        previous = tf.config.optimizer.get_experimental_options().get(_KEY, False)
        tf.config.optimizer.set_experimental_options({_KEY: True})
        try:
            return self.fn(*args)
        finally:
            tf.config.optimizer.set_experimental_options({_KEY: previous})

    def get_concrete_function(self, *args: Any) -> Any:
        """The wrapped function's concrete function (tracing needs no call options)."""
        return self.fn.get_concrete_function(*args)
