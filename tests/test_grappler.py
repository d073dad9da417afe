"""GraphCall: Grappler's meta-optimizer off for one function's calls only, on the calling thread."""

import threading

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context

from tfnas.grappler import GraphCall, default_graph_optimizer

KEY = "disable_meta_optimizer"


def _global_meta_off() -> bool:
    return bool(tf.config.optimizer.get_experimental_options().get(KEY, False))


def _thread_call_config() -> config_pb2.ConfigProto:
    """The ConfigProto a function called now, on this thread, would run under."""
    config = config_pb2.ConfigProto()
    config.ParseFromString(context.context().function_call_options.config_proto_serialized)
    return config


def _seen_inside():
    """A callable that records, while it runs, the meta-optimizer flag of the thread's call options.

    GraphCall calls it on the caller's thread, exactly where it calls a ``tf.function``.
    """
    seen = []

    def probe(x):
        seen.append(_thread_call_config().graph_options.rewrite_options.disable_meta_optimizer)
        return x * 2.0

    return probe, seen


@pytest.mark.parametrize("optimize", [False, True])
def test_setting_holds_during_the_call_only(optimize):
    fn, seen = _seen_inside()
    before = context.context().function_call_options.config_proto_serialized
    assert not _global_meta_off()
    call = GraphCall(fn, optimize)
    assert float(call(tf.constant(3.0))) == 6.0
    assert seen == [not optimize]
    assert not _global_meta_off()  # the process-wide options never change
    assert context.context().function_call_options.config_proto_serialized == before


def test_a_tf_function_runs_and_keeps_one_instantiation():
    fn = tf.function(lambda x: x * 2.0 + 1.0, autograph=False)
    call = GraphCall(fn, False)
    assert [float(call(tf.constant(v))) for v in (1.0, 2.0, 3.0)] == [3.0, 5.0, 7.0]
    assert len(call._options) == 1  # one set of call options for every call
    assert call.get_concrete_function(tf.TensorSpec([], tf.float32)) is not None


def test_call_options_are_those_of_the_process_wide_switch():
    fn, _ = _seen_inside()
    inside = []
    GraphCall(lambda x: inside.append(context.context().function_call_options.config_proto_serialized), False)(1)
    tf.config.optimizer.set_experimental_options({KEY: True})
    try:
        switched = context.context().function_call_options.config_proto_serialized
    finally:
        tf.config.optimizer.set_experimental_options({KEY: False})
    assert inside == [switched]


def test_restores_after_an_error_and_keeps_a_global_setting():
    def boom(x):
        raise ValueError("inside")

    before = context.context().function_call_options.config_proto_serialized
    failing = GraphCall(tf.function(lambda x: tf.py_function(boom, [x], tf.float32), autograph=False), False)
    with pytest.raises(Exception, match="inside"):
        failing(tf.constant(1.0))
    assert not _global_meta_off()
    assert context.context().function_call_options.config_proto_serialized == before
    tf.config.optimizer.set_experimental_options({KEY: True})
    try:
        fn, seen = _seen_inside()
        GraphCall(fn, False)(tf.constant(1.0))
        assert seen == [True] and _global_meta_off()  # a user's own global setting survives
        fn, seen = _seen_inside()
        GraphCall(fn, True)(tf.constant(1.0))
        assert seen == [True]  # optimize=True leaves the thread's options as they are
    finally:
        tf.config.optimizer.set_experimental_options({KEY: False})


def test_other_threads_keep_their_options_during_a_call():
    entered, checked = threading.Event(), threading.Event()
    other = []

    def slow(x):
        entered.set()
        assert checked.wait(30)
        return x

    def observer():
        assert entered.wait(30)
        other.append(_thread_call_config().graph_options.rewrite_options.disable_meta_optimizer)
        checked.set()

    thread = threading.Thread(target=observer)
    thread.start()
    GraphCall(slow, False)(1.0)
    thread.join(30)
    assert other == [False]


def test_default_follows_the_visible_devices():
    assert default_graph_optimizer() == bool(tf.config.list_physical_devices("GPU"))
    fn, _ = _seen_inside()
    assert GraphCall(fn).optimize == default_graph_optimizer()
