"""Tests of the lite-space cell and network (tfnas.spaces.lite.cell, tfnas.spaces.lite.network)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.spaces.lite import PRESETS, LiteCell, LiteNetwork, LiteSpace, count_network_params


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_slnas_paper_parameter_count_is_pinned():
    """``slnas_paper`` at C=40, blocks (2, 2), 10 classes, no auxiliary head: 624,800 (the paper
    reports 1.31 M; the reference PyTorch model counts 638,400 = 624,800 + 800 for its auxiliary
    head + 12,800 for a 1x1 conv whose output it never reads; docs/RESULTS.md)."""
    arch = PRESETS["slnas_paper"]
    space = LiteSpace(channels=40, blocks=(2, 2))
    assert space.num_params(arch, 10) == 624_800
    assert space.num_params(arch, 10, auxiliary=True) == 624_800 + 80 * 10
    model = space.build(arch, 10, (32, 32, 3), auxiliary=False)
    assert _trainable(model) == 624_800


@pytest.fixture(scope="module")
def small():
    """One small network with DropPath (rate 0), shared by the tests that only read it."""
    space = LiteSpace(channels=4, blocks=(1, 1))
    keras.utils.set_random_seed(0)
    return space, space.build(PRESETS["slnas_paper"], 5, (16, 16, 3), drop_path_rate=0.0, seed=0)


@pytest.mark.parametrize("blocks, seed", [((2, 2), 0), ((1, 0, 1), 1)])
def test_analytic_params_equal_keras_for_random_archs(blocks, seed):
    space = LiteSpace(channels=4, blocks=blocks)
    arch = space.sample(np.random.default_rng(seed))
    model = space.build(arch, 7, (16, 16, 3))
    assert _trainable(model) == space.num_params(arch, 7, auxiliary=True)
    assert len(model.aux_heads) == len(blocks) - 1
    assert _trainable(model.inference_model()) == space.num_params(arch, 7)
    assert count_network_params(arch, 7, 4, blocks, False) == space.num_params(arch, 7)


@pytest.mark.parametrize("side, blocks", [(32, (2, 2)), (224, (0, 1))])
def test_output_shapes_and_aux_heads(side, blocks):
    space = LiteSpace(channels=4, blocks=blocks)
    arch = space.sample(np.random.default_rng(side))
    model = space.build(arch, 5, (side, side, 3))
    x = tf.random.normal((1, side, side, 3), seed=0)
    logits, aux = model(x, training=True)
    assert logits.shape == aux.shape == (1, 5)
    assert model.pre_pool_features(x).shape == (1, side // 4, side // 4, 16)


def test_more_stages_give_one_output_per_aux_head():
    model = LiteNetwork("slnas_paper", 3, (16, 16, 3), channels=4, blocks=(0, 0, 1))
    model.build((None, 16, 16, 3))
    outputs = model(tf.zeros((1, 16, 16, 3)), training=True)
    assert len(outputs) == 3 and all(o.shape == (1, 3) for o in outputs)


@pytest.mark.slow  # ~50 s on 2 cores
def test_the_trainer_trains_a_network_with_several_aux_heads():
    """Three stages: two auxiliary heads, both in the training loss (CE + aux_weight * their sum)."""
    import dataclasses

    from tfnas.config import TrainConfig
    from tfnas.train import Trainer

    cfg = dataclasses.replace(TrainConfig(), epochs=1, lr=0.0, aux_weight=0.4, weight_decay=0.0, drop_path=0.0,
                              label_smoothing=0.0)
    t = Trainer(lambda: LiteNetwork("slnas_paper", 3, (16, 16, 3), channels=4, blocks=(0, 0, 1)), cfg,
                jit_compile=False, progress=False)
    x = tf.random.stateless_normal((8, 16, 16, 3), seed=(1, 2))
    y = tf.one_hot([0, 1, 2, 0, 1, 2, 0, 1], 3)
    main, *aux = t.model(x, training=True)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    expected = float(ce(y, main)) + 0.4 * sum(float(ce(y, a)) for a in aux)
    assert len(aux) == 2
    assert t.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8)).loss[0] == pytest.approx(expected, rel=1e-4)


def test_inference_model_shares_weights_without_aux_heads_and_drop_path(small):
    space, model = small
    arch = space.decode("slnas_paper")
    net = model.inference_model()
    assert net is not model and not net.aux_heads and net.drop_path_rate is None
    assert all(d is None for cell in net.cells for d in cell.drops)
    assert {id(w) for w in net.weights} <= {id(w) for w in model.weights}
    assert _trainable(net) == space.num_params(arch, 5)
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, 5)
    np.testing.assert_allclose(net(x).numpy(), y, atol=1e-6)
    model.classifier.kernel.assign(model.classifier.kernel * 2.0)  # shared, not copied
    np.testing.assert_allclose(net(x).numpy(), 2.0 * y, atol=1e-5)
    plain = LiteNetwork("slnas_paper", 5, (16, 16, 3), channels=4, blocks=(0, 1), auxiliary=False)
    assert plain.inference_model() is plain
    assert not isinstance(plain(x, training=True), (tuple, list))


def test_drop_path_layers_follow_the_trainer_protocol(small):
    from tfnas.train.drop_path import drop_path_layers, set_drop_path_rate

    _, model = small
    layers = drop_path_layers(model)
    assert len(layers) == 10 * len(model.cells)
    x = tf.random.normal((8, 16, 16, 3), seed=1)
    set_drop_path_rate(layers, 0.5)
    a, _ = model(x, training=True)
    b, _ = model(x, training=True)
    set_drop_path_rate(layers, 0.0)
    assert not np.allclose(a.numpy(), b.numpy())


def test_tf_checkpoints_hold_every_cell_weight(small, tmp_path):
    space, trained = small
    prefix = tf.train.Checkpoint(model=trained).write(str(tmp_path / "model"))
    stored = {name for name, _ in tf.train.list_variables(prefix)}
    assert len([n for n in stored if n.startswith("model/cells_")]) > 100
    keras.utils.set_random_seed(1)
    fresh = space.build(space.decode("slnas_paper"), 5, (16, 16, 3))  # no DropPath: extra entries are fine
    tf.train.Checkpoint(model=fresh).read(prefix).assert_existing_objects_matched().expect_partial()
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(fresh(x, training=False).numpy(), trained(x, training=False).numpy(), atol=1e-6)


def test_keras_file_round_trip_and_config(small, tmp_path):
    _, model = small
    config = model.get_config()
    assert config["blocks"] == [1, 1] and config["arch"] == str(PRESETS["slnas_paper"])
    assert LiteNetwork.from_config(config).get_config() == config
    x = np.random.default_rng(2).standard_normal((2, 16, 16, 3)).astype(np.float32)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_cell_config_shapes_and_reduction_fixups():
    # reduction node 0 = conv_1x1 (stride 1, full size) + shuffle on h_{k-1}; node 1 reads node 0
    # (already reduced) twice, so its branches run at H/4 and are resized back to H/2.
    cell = [0, 4, 1, 0, 2, 2, 2, 3, 0, 1, 3, 4, 4, 0, 1, 2, 5, 3, 0, 4]
    layer = LiteCell(cell, 4, reduction=True, name="r")
    config = layer.get_config()
    assert config["cell"] == cell and config["reduction"] is True
    assert LiteCell.from_config(config).get_config() == config
    s0, s1 = tf.random.normal((2, 16, 16, 4)), tf.random.normal((2, 8, 8, 4))
    y = layer([s0, s1], training=False)
    assert y.shape == (2, 4, 4, 8) == layer.compute_output_shape([s0.shape, s1.shape])
    normal = LiteCell(cell, 4)
    assert normal([s1, s1]).shape == (2, 8, 8, 4)
    with pytest.raises(ValueError, match="reduction cell, entry 16"):
        LiteCell([0] * 16 + [6, 0, 0, 0], 4, reduction=True)
    with pytest.raises(ValueError, match="both inputs need `filters` channels"):
        LiteCell(cell, 4).build([(None, 8, 8, 4), (None, 8, 8, 6)])


def test_network_argument_errors():
    with pytest.raises(ValueError, match="multiples of 4"):
        LiteNetwork("slnas_paper", 10, (30, 30, 3), channels=4)
    with pytest.raises(ValueError, match="at least 16"):
        LiteNetwork("slnas_paper", 10, (8, 8, 3), channels=4, blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="even"):
        LiteNetwork("slnas_paper", 10, channels=6 + 1)
    with pytest.raises(ValueError, match="channels"):
        LiteNetwork("slnas_paper", 10, channels=2)
    with pytest.raises(ValueError, match="non-empty"):
        LiteNetwork("slnas_paper", 10, channels=4, blocks=())
    with pytest.raises(ValueError, match="integers >= 0"):
        LiteNetwork("slnas_paper", 10, channels=4, blocks=(2, -1))
    with pytest.raises(ValueError, match="drop_path_rate"):
        LiteNetwork("slnas_paper", 10, channels=4, drop_path_rate=1.0)
    with pytest.raises(ValueError, match="is not a list"):
        LiteNetwork("darts_v2", 10, channels=4)
