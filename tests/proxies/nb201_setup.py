"""Sizes and helpers of the proxy tests on tiny NB201 networks."""

from __future__ import annotations

import numpy as np

from tfnas.proxies.base import random_batch
from tfnas.proxies.fastpaths.nb201 import nb201_fast_path

SHAPE = (8, 8, 3)
CLASSES = 10
BATCH = 6


def snapshot(model):
    """Copies of every variable of ``model``."""
    return [v.numpy().copy() for v in model.variables]


def fast_and_generic(proxy, space, arch, seed=5):
    """(generic score on the built model, fast-path score with the model's weights), same batch."""
    model = space.build(arch, num_classes=CLASSES, input_shape=SHAPE)
    generic = proxy.score(model, random_batch(np.random.default_rng(seed), BATCH, SHAPE, CLASSES),
                          np.random.default_rng(1))
    network, _ = nb201_fast_path(proxy).network(space, CLASSES, SHAPE, np.random.default_rng(0))
    network.load_keras_weights(model, arch)
    fast = proxy.score_arch(space, arch, num_classes=CLASSES, input_shape=SHAPE, batch_size=BATCH,
                            rng=np.random.default_rng(seed))
    return generic, fast


def squared_dense(seed: int):
    """``(model, W, x)``: a dense layer without bias whose logits are ``(x W)^2`` (W 5x3), and 4 inputs of 5
    features, for known-answer tests of the gradient proxies (Jacobians and NTKs by hand)."""
    import keras

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False),
                              keras.layers.Activation(keras.ops.square)])
    model.set_weights([w])
    return model, w, rng.standard_normal((4, 5)).astype(np.float32)
