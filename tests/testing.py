"""A TensorFlow-only version of Keras' layer-contract test (``keras/src/testing/test_case.py``).

``run_layer_test`` checks, for one layer class and constructor kwargs:

1. the config round trip: ``get_config`` holds exactly the constructor args (plus the base
   layer keys), ``from_config(get_config())`` gives the same config, and the registered name
   deserialises without ``custom_objects``;
2. ``build`` creates the expected numbers of trainable / non-trainable weights;
3. an eager call and a symbolic (``keras.Input``) call give the expected output shape, which
   also matches ``compute_output_shape``;
4. a layer rebuilt from its config with copied weights gives the same inference output;
5. one SGD training step runs: every trainable weight gets a finite gradient and changes,
   and the output stays finite.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Optional, Sequence, Tuple, Type

import keras
import numpy as np
import tensorflow as tf

_BASE_CONFIG_KEYS = {"name", "trainable", "dtype"}


def _shape(t: Any) -> Tuple[Optional[int], ...]:
    return tuple(None if d is None else int(d) for d in t.shape)


def run_layer_test(
    layer_cls: Type[keras.layers.Layer],
    init_kwargs: Dict[str, Any],
    input_shape: Sequence[int],
    expected_output_shape: Optional[Sequence[int]] = None,
    expected_num_trainable_weights: Optional[int] = None,
    expected_num_non_trainable_weights: Optional[int] = None,
    run_training_check: bool = True,
    seed: int = 0,
) -> keras.layers.Layer:
    """Runs the layer contract checks and returns the built (eager) layer.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor kwargs.
        input_shape: full input shape including the batch dimension.
        expected_output_shape: full output shape; checked for eager and symbolic calls.
        expected_num_trainable_weights / expected_num_non_trainable_weights: weight counts after build.
        run_training_check: run the training-step check (needs trainable weights or a pure op).
        seed: seed of the random input and of the layers' initial weights (so a check cannot pass or fail by
            the draw of the weights, e.g. every ReLU of a small layer dead on a two-example batch).
    """
    input_shape = tuple(input_shape)
    keras.utils.set_random_seed(seed)
    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)

    # 1. config round trip and registration
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    params = set(inspect.signature(layer_cls.__init__).parameters) - {"self", "kwargs"}
    extra = set(config) - params - _BASE_CONFIG_KEYS
    assert not extra, f"{layer_cls.__name__}.get_config has keys that are not constructor args: {sorted(extra)}"
    for key, value in init_kwargs.items():
        assert key in config, f"{layer_cls.__name__}.get_config misses constructor arg {key!r}"
        if not isinstance(value, (dict, keras.initializers.Initializer)):
            assert config[key] == value, f"{layer_cls.__name__} config[{key!r}] = {config[key]!r}, passed {value!r}"
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, f"{layer_cls.__name__}: from_config(get_config()) changed the config"
    serialized = keras.saving.serialize_keras_object(layer)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls, (
        f"{layer_cls.__name__} does not deserialise without custom_objects (is it registered?)"
    )

    # 2. build and weight counts
    layer.build(input_shape)
    assert layer.built, f"{layer_cls.__name__}.build did not mark the layer built"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{layer_cls.__name__}: {len(layer.trainable_weights)} trainable weights, "
            f"expected {expected_num_trainable_weights}"
        )
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, (
            f"{layer_cls.__name__}: {len(layer.non_trainable_weights)} non-trainable weights, "
            f"expected {expected_num_non_trainable_weights}"
        )

    # 3. eager and symbolic calls
    y = layer(x, training=False)
    if expected_output_shape is not None:
        assert _shape(y) == tuple(expected_output_shape), (
            f"{layer_cls.__name__} eager output {_shape(y)}, expected {tuple(expected_output_shape)}"
        )
    computed = tuple(layer.compute_output_shape(input_shape))
    assert computed == _shape(y), f"{layer_cls.__name__}.compute_output_shape {computed} != eager {_shape(y)}"
    inputs = keras.Input(batch_shape=input_shape)
    symbolic = layer_cls(**init_kwargs)(inputs)
    assert _shape(symbolic) == _shape(y), (
        f"{layer_cls.__name__} symbolic output {_shape(symbolic)} != eager {_shape(y)}"
    )
    model = keras.Model(inputs, symbolic)
    assert _shape(model(x)) == _shape(y)

    # 4. rebuilt from config with copied weights -> same function
    rebuilt = layer_cls.from_config(layer.get_config())
    rebuilt.build(input_shape)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        np.asarray(rebuilt(x, training=False)), np.asarray(y), rtol=1e-5, atol=1e-5,
        err_msg=f"{layer_cls.__name__}: layer rebuilt from its config computes something else",
    )

    # 5. one training step
    if run_training_check:
        trained = layer_cls(**init_kwargs)
        trained.build(input_shape)
        before = [w.numpy() for w in trained.trainable_weights]
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = trained(xt, training=True)
            loss = tf.reduce_mean(tf.square(out - 1.0))
        assert np.isfinite(float(loss)), f"{layer_cls.__name__}: non-finite training loss"
        grads = tape.gradient(loss, trained.trainable_weights)
        for w, g in zip(trained.trainable_weights, grads):
            assert g is not None, f"{layer_cls.__name__}: no gradient for {w.path}"
            assert np.all(np.isfinite(np.asarray(g))), f"{layer_cls.__name__}: non-finite gradient for {w.path}"
        if trained.trainable_weights:
            keras.optimizers.SGD(learning_rate=0.1).apply_gradients(zip(grads, trained.trainable_weights))
            changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, trained.trainable_weights)]
            assert any(changed), f"{layer_cls.__name__}: a training step changed no weight"
    return layer
