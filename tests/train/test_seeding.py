import random

import pytest
import tensorflow as tf

from tfnas.train.seeding import LayerSeedStream, tf_global_seed


def test_layer_seed_stream_continues_across_blocks_and_restores_the_caller():
    random.seed(1)
    caller = random.getstate()
    stream = LayerSeedStream(7)
    with stream.active():
        first = [random.random() for _ in range(3)]
    assert random.getstate() == caller
    with stream.active():
        second = [random.random() for _ in range(2)]
    assert random.getstate() == caller
    reference = random.Random(7)
    assert first + second == [reference.random() for _ in range(5)]


def test_layer_seed_stream_restores_the_caller_after_an_error():
    random.seed(2)
    caller = random.getstate()
    with pytest.raises(RuntimeError):
        with LayerSeedStream(0).active():
            random.random()
            raise RuntimeError("boom")
    assert random.getstate() == caller


def test_tf_global_seed_is_set_for_the_block_and_restored():
    from tensorflow.python.eager import context

    tf.random.set_seed(123)
    with tf_global_seed(5):
        assert context.global_seed() == 5
        inside = tf.data.Dataset.range(20).shuffle(20, seed=1)
    assert context.global_seed() == 123
    with tf_global_seed(5):
        again = tf.data.Dataset.range(20).shuffle(20, seed=1)
    assert list(inside.as_numpy_iterator()) == list(again.as_numpy_iterator())
    tf.random.set_seed(None)
    with tf_global_seed(5):
        pass
    assert context.global_seed() is None


def test_an_unchanged_global_seed_is_not_set_again(monkeypatch):
    """tf.random.set_seed clears TensorFlow's function caches (every traced step would instantiate its
    graph again), so a block whose seed is already the global one sets nothing; nested blocks inside an
    outer one with the same seed cost no reseeding."""
    from tensorflow.python.eager import context

    tf.random.set_seed(None)
    calls = []
    real = tf.random.set_seed
    monkeypatch.setattr(tf.random, "set_seed", lambda seed: (calls.append(seed), real(seed)))
    with tf_global_seed(7):
        for _ in range(3):
            with tf_global_seed(7):
                assert context.global_seed() == 7
    assert calls == [7, None] and context.global_seed() is None


def test_set_tf_global_seed_sets_only_a_new_value(monkeypatch):
    """The Trainer seeds TensorFlow this way: a Trainer built inside a search that already holds its
    seed (RS-NAG's short trainings) no longer clears the function caches of the search's traced steps."""
    from tensorflow.python.eager import context

    from tfnas.train.seeding import set_tf_global_seed

    tf.random.set_seed(None)
    calls = []
    real = tf.random.set_seed
    monkeypatch.setattr(tf.random, "set_seed", lambda seed: (calls.append(seed), real(seed)))
    set_tf_global_seed(3)
    set_tf_global_seed(3)
    assert context.global_seed() == 3
    set_tf_global_seed(None)
    assert calls == [3, None] and context.global_seed() is None
