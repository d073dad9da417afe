"""Tests of the NAS-Bench-201 Keras network (tfnas.spaces.nb201.network) through Nb201Space.build."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.spaces.archs import NB201_MIXED
from tfnas.spaces.nb201 import Nb201Arch, Nb201Space

ALL_CONV3 = Nb201Arch(("nor_conv_3x3",) * 6)
ALL_NONE = Nb201Arch(("none",) * 6)


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    return Nb201Space()


def _trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("text", [None, NB201_MIXED])
def test_keras_model_matches_published_params(space, text):
    archs = [ALL_CONV3, ALL_NONE] if text is None else [space.decode(text)]
    for arch in archs:
        model = space.build(arch, 10)
        assert _trainable(model) == space.num_params(arch)
    if text is None:
        assert _trainable(model) == 73_306 and model.output_shape == (None, 10)


def test_small_model_params_and_forward(space):
    small = Nb201Space(channels=4, cells_per_stage=1)
    rng = np.random.default_rng(5)
    for _ in range(4):
        arch = small.sample(rng)
        model = small.build(arch, 7, input_shape=(8, 8, 3))
        assert _trainable(model) == small.num_params(arch, num_classes=7)
        y = model(rng.standard_normal((2, 8, 8, 3)).astype(np.float32), training=False)
        assert y.shape == (2, 7) and np.all(np.isfinite(y.numpy()))


def test_cell_semantics_all_skip_and_all_none():
    small = Nb201Space(channels=4, cells_per_stage=1)
    x = np.random.default_rng(1).standard_normal((3, 8, 8, 3)).astype(np.float32)
    # all skip: node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x
    model = small.build(Nb201Arch(("skip_connect",) * 6), 5, input_shape=(8, 8, 3))
    probe = keras.Model(model.input, [model.get_layer("stem_bn").output, model.get_layer("stage0_cell0_node3").output])
    stem, cell = probe(x, training=False)
    np.testing.assert_allclose(cell.numpy(), 4 * stem.numpy(), rtol=1e-5, atol=1e-6)
    # all none: every cell outputs zeros, so logits do not depend on the image
    model = small.build(ALL_NONE, 5, input_shape=(8, 8, 3))
    y = model(x, training=False).numpy()
    np.testing.assert_allclose(y, np.broadcast_to(y[:1], y.shape), atol=1e-6)


def test_build_drop_path_and_errors(space):
    small = Nb201Space(channels=4, cells_per_stage=1)
    arch = small.decode(NB201_MIXED)
    model = small.build(arch, 3, input_shape=(8, 8, 3), drop_path_rate=0.2, seed=1)
    drops = [layer for layer in model.layers if layer.__class__.__name__ == "DropPath"]
    assert len(drops) == 3 * 4  # 3 conv + 1 pool edge per cell, 3 cells
    assert len({d.seed for d in drops}) == len(drops)
    assert _trainable(model) == small.num_params(arch, num_classes=3)
    with pytest.raises(ValueError, match="divisible by 4"):
        space.build(ALL_NONE, 10, input_shape=(30, 30, 3))
    with pytest.raises(TypeError, match="unexpected keyword"):
        space.build(ALL_NONE, 10, widen=2)
    with pytest.raises(ValueError, match="num_classes"):
        space.build(ALL_NONE, 0)
    with pytest.raises(ValueError, match="drop_path_rate"):
        space.build(ALL_NONE, 10, drop_path_rate=1.0)
    plain = small.build(arch, 3, input_shape=(8, 8, 3))
    assert not [layer for layer in plain.layers if layer.__class__.__name__ == "DropPath"]
