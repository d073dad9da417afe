"""Grappler on or off for the calls of one ``tf.function``, without touching process-wide options.

A ``tf.function`` is optimised by Grappler when it is first called, under the *call options*
of the calling thread (a ``ConfigProto`` whose rewrite options say which passes run). For the
one-graph-for-every-candidate functions of tfnas (the train and eval steps of the weight-sharing
supernets, DARTS, lite and NASNet-DAG, in ``tfnas/train/supernet.py``; the NB201 arch-as-tensor proxy
functions) that first-call pass costs far more than it gives on CPU while the steady-state step time
stays the same (figures and commands in docs/PERFORMANCE.md). :class:`GraphCall` runs such a function
with Grappler's meta-optimizer switched off for that function's calls only. The SLNAS controller's
update runs with it off on every device (its determinism is measured on CPUs only), for another
reason: Grappler's arithmetic optimiser would fold its pairwise gradient sums back into one ``AddN``,
whose summation order depends on timing (``tfnas/methods/slnas/controller.py``).

How: TensorFlow keeps the call options per thread; :class:`GraphCall` derives, once per
distinct set of thread options, a copy with ``disable_meta_optimizer`` set, installs it on the
calling thread for the duration of the call and puts the thread's own options back afterwards
(also on error). Nothing process-wide changes, so other threads and every other function keep
the defaults; the ConfigProto the runtime receives is the one
``tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})`` would give.

TensorFlow keys an instantiated function by its call options, so a function must always be
called with the same options, or it is optimised and instantiated a second time:
:class:`GraphCall` makes every call of the wrapped function go through the same setting.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

__all__ = ["GraphCall", "default_graph_optimizer"]


def default_graph_optimizer() -> bool:
    """``True`` (run Grappler) when a GPU is visible, else ``False``.

    On GPU Grappler's layout and remapping passes pay off for non-XLA graphs and XLA replaces
    most of them anyway; on CPU the first-call optimisation dominates the cost of a short run.
    """
    return bool(tf.config.list_physical_devices("GPU"))


def _eager_context() -> Any:
    # The per-thread call options live on TensorFlow's eager context (no public accessor; TF's
    # own `function_executor_type` scope swaps them the same way).
    from tensorflow.python.eager import context

    return context.context()


def _without_meta_optimizer(options: Any) -> Any:
    """A copy of the thread's ``FunctionCallOptions`` with Grappler's meta-optimizer disabled."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager.context import FunctionCallOptions

    config = config_pb2.ConfigProto()
    if options.config_proto_serialized:
        config.ParseFromString(options.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return FunctionCallOptions(executor_type=options.executor_type, config_proto=config)


class GraphCall:
    """Calls ``fn`` (a ``tf.function``) with Grappler on or off for its own calls only.

    Args:
        fn: the ``tf.function``.
        optimize: ``True``: the calling thread's options as they are; ``False``: the same
            options with the meta-optimizer off, on the calling thread, during the call only;
            ``None``: :func:`default_graph_optimizer`.
    """

    def __init__(self, fn: Any, optimize: Optional[bool] = None):
        self.fn = fn
        self.optimize = default_graph_optimizer() if optimize is None else bool(optimize)
        # the thread's (executor type, config) -> this function's call options, built once each
        self._options: Dict[Tuple[Any, Any], Any] = {}

    def _call_options(self, thread_options: Any) -> Any:
        key = (thread_options.executor_type, thread_options.config_proto_serialized)
        options = self._options.get(key)
        if options is None:
            options = self._options[key] = _without_meta_optimizer(thread_options)
        return options

    def __call__(self, *args: Any) -> Any:
        if self.optimize:
            return self.fn(*args)
        ctx = _eager_context()
        thread_options = ctx.function_call_options
        ctx.function_call_options = self._call_options(thread_options)
        try:
            return self.fn(*args)
        finally:
            ctx.function_call_options = thread_options

    def get_concrete_function(self, *args: Any) -> Any:
        """The wrapped function's concrete function (tracing needs no call options)."""
        return self.fn.get_concrete_function(*args)
