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
