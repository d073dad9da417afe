"""GraphCall: Grappler's meta-optimizer off for one function's calls only, restored afterwards."""

import pytest
import tensorflow as tf

from tfnas.graph_options import GraphCall, default_graph_optimizer


def _meta_off() -> bool:
    return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))


def _seen_inside():
    """A function that reports, while it runs, whether the meta-optimizer was off for its call."""
    seen = []

    def probe(x):
        seen.append(_meta_off())
        return x

    fn = tf.function(lambda x: tf.py_function(probe, [x], tf.float32) * 2.0, autograph=False)
    return fn, seen


@pytest.mark.parametrize("optimize", [False, True])
def test_setting_holds_during_the_call_only(optimize):
    fn, seen = _seen_inside()
    assert not _meta_off()
    call = GraphCall(fn, optimize)
    out = call(tf.constant(3.0))
    assert float(out) == 6.0
    assert seen == [not optimize]
    assert not _meta_off()  # the rest of the process keeps its options


def test_restores_after_an_error_and_keeps_a_global_setting():
    def boom(x):
        raise ValueError("inside")

    failing = GraphCall(tf.function(lambda x: tf.py_function(boom, [x], tf.float32), autograph=False), False)
    with pytest.raises(Exception, match="inside"):
        failing(tf.constant(1.0))
    assert not _meta_off()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        fn, seen = _seen_inside()
        GraphCall(fn, False)(tf.constant(1.0))
        assert seen == [True] and _meta_off()  # a user's own global setting survives
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})


def test_default_follows_the_visible_devices():
    assert default_graph_optimizer() == bool(tf.config.list_physical_devices("GPU"))
    fn, _ = _seen_inside()
    assert GraphCall(fn).optimize == default_graph_optimizer()
