"""Tests of tfnas.train.trainer (and optim/drop_path/checkpoint) on tiny models and generated data."""

import dataclasses
import os
import math
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.config import TrainConfig
from tfnas.train import (
    CheckpointMismatchError,
    Trainer,
    TrainingDivergedError,
    is_decayed,
    smoothed_cross_entropy,
    train_and_evaluate,
)

BASE = TrainConfig(epochs=1, lr=0.1, weight_decay=0.0, grad_clip=0.0, schedule="constant")


def cfg(**kw):
    return dataclasses.replace(BASE, **kw)


def arrays(n=96, size=8, classes=2, seed=0):
    """Images whose class is the sign of the mean of channel 0 (learnable), one-hot labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, 3)).astype(np.float32)
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype(np.int64) % classes
    return x, np.eye(classes, dtype=np.float32)[y]


def dataset(n=96, batch=32, seed=0):
    x, y = arrays(n, seed=seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def tiny_model(bn=True, filters=4):
    def build():
        inp = keras.Input((8, 8, 3))
        h = keras.layers.Conv2D(filters, 3, padding="same")(inp)
        if bn:
            h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inp, keras.layers.Dense(2)(h))

    return build


def weights(model):
    return [v.numpy() for v in model.weights]


def test_loss_decreases_and_steps_trace_once():
    t = Trainer(tiny_model(), cfg(epochs=4, lr=0.2, schedule="cosine", weight_decay=5e-4, grad_clip=5.0),
                jit_compile=False, progress=True, seed=0)
    h = t.fit(dataset(256), dataset(50, batch=16, seed=1))  # eval has a partial last batch
    assert h.epoch == [1, 2, 3, 4]
    assert h.loss[-1] < 0.85 * h.loss[0]
    assert h.eval_loss[-1] < h.eval_loss[0]
    assert all(0.0 <= a <= 1.0 for a in h.train_acc + h.eval_acc)
    assert h.lr[0] == pytest.approx(0.2) and h.lr == sorted(h.lr, reverse=True)
    assert t.trace_counts == {"train": 1, "eval": 1}
    t.evaluate(dataset(40, batch=16, seed=2))  # same element spec: no retrace
    assert t.trace_counts["eval"] == 1
    d = h.to_dict()
    assert set(d) == {"epoch", "loss", "train_acc", "eval_loss", "eval_acc", "lr", "seconds"}
    assert all(len(v) == 4 for v in d.values())


@pytest.mark.parametrize("jit", [True, False])
def test_jit_on_and_off_train_on_cpu(jit):
    t = Trainer(tiny_model(), cfg(epochs=2), jit_compile=jit, progress=False, seed=3)
    assert t.jit_compile is jit
    h = t.fit(dataset(64))
    assert all(math.isfinite(v) for v in h.loss) and h.loss[1] < h.loss[0]
    assert t.trace_counts["train"] == 1


def test_same_seed_same_run_and_jit_matches():
    runs = [Trainer(tiny_model(), cfg(epochs=2), jit_compile=j, progress=False, seed=5).fit(dataset(64)).loss
            for j in (False, False, True)]
    assert runs[0] == runs[1]
    np.testing.assert_allclose(runs[0], runs[2], rtol=1e-4)


def _side_branch_model():
    """Main path conv->GAP->dense plus a side conv->BN->GAP->dense branch multiplied by 0."""
    inp = keras.Input((8, 8, 3))
    main = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)))
    side = keras.layers.Conv2D(4, 3, padding="same", name="side_conv")(inp)
    side = keras.layers.BatchNormalization(name="side_bn")(side)
    side = keras.layers.Dense(2, name="side_dense")(keras.layers.GlobalAveragePooling2D()(side))
    side = keras.layers.Rescaling(0.0)(side)
    return keras.Model(inp, keras.layers.Add()([main, side]))


def test_sgd_nesterov_coupled_decay_touches_only_kernels():
    lr, wd, m = 0.5, 0.1, 0.9
    t = Trainer(_side_branch_model, cfg(lr=lr, weight_decay=wd, momentum=m, nesterov=True),
                jit_compile=False, progress=False)
    before = {v.path: v.numpy() for v in t.model.trainable_variables}
    t.fit(dataset(32, batch=32))  # exactly one step
    after = {v.path: v.numpy() for v in t.model.trainable_variables}
    # zero data gradient: first Nesterov step moves w by -lr * (1 + m) * wd * w
    shrink = 1.0 - lr * (1.0 + m) * wd
    for name in ("side_conv/kernel", "side_dense/kernel"):
        np.testing.assert_allclose(after[name], before[name] * shrink, rtol=1e-5)
    for name in ("side_bn/gamma", "side_bn/beta", "side_conv/bias", "side_dense/bias"):
        np.testing.assert_array_equal(after[name], before[name])
    assert not np.allclose(after["conv/kernel"], before["conv/kernel"])


def test_decay_scope_all_decays_every_trainable_variable_after_the_clipping():
    # A clip far below the gradient's norm: the decay is added after it (PyTorch adds it in the optimizer's
    # step(), after clip_grad_norm_), so the side branch, which has no data gradient, still shrinks in full.
    lr, wd, m = 0.5, 0.1, 0.9
    t = Trainer(_side_branch_model, cfg(lr=lr, weight_decay=wd, momentum=m, nesterov=True, weight_decay_scope="all",
                                        grad_clip=1e-3), jit_compile=False, progress=False)
    rng = np.random.default_rng(0)
    for v in t.model.trainable_variables:  # biases and beta start at 0, where decay cannot show
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    before = {v.path: v.numpy() for v in t.model.trainable_variables}
    t.fit(dataset(32, batch=32))  # exactly one step; the side branch has no data gradient
    after = {v.path: v.numpy() for v in t.model.trainable_variables}
    shrink = 1.0 - lr * (1.0 + m) * wd
    side = [name for name in before if name.startswith("side_")]
    assert len(side) == 6
    for name in side:
        np.testing.assert_allclose(after[name], before[name] * shrink, rtol=1e-5)


def test_decayed_variable_selection():
    inp = keras.Input((8, 8, 3))
    h = keras.layers.DepthwiseConv2D(3, name="dw")(inp)
    h = keras.layers.SeparableConv2D(4, 3, name="sep")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(2, name="fc")(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    decayed = sorted(v.path for v in model.weights if is_decayed(v))
    assert decayed == ["dw/kernel", "fc/kernel", "sep/depthwise_kernel", "sep/pointwise_kernel"]


def test_label_smoothing_matches_closed_form():
    logits = tf.constant([[2.0, 0.0, 0.0]])
    labels = tf.constant([[1.0, 0.0, 0.0]])
    log_z = math.log(math.exp(2.0) + 2.0)
    assert float(smoothed_cross_entropy(labels, logits)[0]) == pytest.approx(log_z - 2.0, rel=1e-6)
    # targets (0.8, 0.1, 0.1): loss = log Z - 0.8 * 2
    assert float(smoothed_cross_entropy(labels, logits, 0.3)[0]) == pytest.approx(log_z - 1.6, rel=1e-6)


def _aux_model(heads=1):
    def build():
        inp = keras.Input((8, 8, 3))
        h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(inp))
        return keras.Model(inp, [keras.layers.Dense(2)(h) for _ in range(1 + heads)])

    return build


def _ce(y, z, ls=0.0):
    t = y * (1 - ls) + ls / y.shape[1]
    z = z - z.max(axis=1, keepdims=True)
    return -(t * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))).sum(axis=1)


@pytest.mark.parametrize("heads", [1, 2])
def test_aux_weight_and_smoothing_combine_in_the_training_loss(heads):
    """CE + aux_weight * (sum of the auxiliary heads' CE): one head (DARTS) or several (a lite network
    with more than two stages)."""
    w, ls = 0.4, 0.1
    t = Trainer(_aux_model(heads), cfg(lr=0.0, aux_weight=w, label_smoothing=ls), jit_compile=False, progress=False)
    x, y = arrays(32)
    main, *aux = (o.numpy() for o in t.model(x, training=True))
    h = t.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(32))
    expected = _ce(y, main, ls).mean() + w * sum(_ce(y, a, ls).mean() for a in aux)
    assert len(aux) == heads and h.loss[0] == pytest.approx(expected, rel=1e-5)
    assert t.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(32))["loss"] == pytest.approx(
        _ce(y, main).mean(), rel=1e-5)  # evaluation: main head, no smoothing


def _update_norm(clip):
    t = Trainer(tiny_model(bn=False), cfg(lr=1.0, momentum=0.0, nesterov=False, grad_clip=clip),
                jit_compile=False, progress=False)
    before = weights(t.model)
    t.fit(dataset(32, batch=32))
    return math.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(weights(t.model), before)))


def test_grad_clip_caps_the_update():
    assert _update_norm(0.0) > 0.01
    assert _update_norm(1e-3) == pytest.approx(1e-3, rel=1e-3)  # plain SGD: |dw| = lr * clip


def test_checkpoint_resume_runs_only_remaining_epochs(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    recipe = cfg(epochs=2, lr=0.05, momentum=0.9, weight_decay=1e-3, grad_clip=5.0)
    first = Trainer(tiny_model(), recipe, jit_compile=False, progress=False, checkpoint_dir=ckpt, seed=0)
    assert first.fit(dataset()).epoch == [1, 2]
    saved = weights(first.model)

    longer = dataclasses.replace(recipe, epochs=4)
    second = Trainer(tiny_model(), longer, jit_compile=False, progress=False, checkpoint_dir=ckpt,
                     steps_per_epoch=3, seed=7)
    assert not all(np.allclose(a, b) for a, b in zip(weights(second.model), saved))
    assert second.restore() == 2
    for a, b in zip(weights(second.model), saved):
        np.testing.assert_array_equal(a, b)
    assert int(second.optimizer.iterations.numpy()) == 6
    h = second.fit(dataset())
    assert h.epoch == [3, 4]

    # the constant schedule makes 2 + 2 resumed epochs equal 4 uninterrupted ones
    straight = Trainer(tiny_model(), longer, jit_compile=False, progress=False, seed=0)
    full = straight.fit(dataset())
    np.testing.assert_allclose(h.loss, full.loss[2:], rtol=1e-4)
    for a, b in zip(weights(second.model), weights(straight.model)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

    done = Trainer(tiny_model(), longer, jit_compile=False, progress=False, checkpoint_dir=ckpt)
    assert done.fit(dataset()).epoch == []
    other = Trainer(tiny_model(filters=6), longer, jit_compile=False, progress=False, checkpoint_dir=ckpt)
    with pytest.raises(CheckpointMismatchError, match="does not match the model/optimizer being trained") as err:
        other.fit(dataset())
    assert "\n" not in str(err.value)  # one line, not the variable dumps of the restore status

    # damaged files: the newest checkpoint's index truncated, then the folder replaced by a file
    import glob
    import shutil

    (index,) = [p for p in glob.glob(os.path.join(ckpt, "ckpt-*.index")) if p.endswith("ckpt-4.index")]
    with open(index, "r+b") as fh:
        fh.truncate(20)
    damaged = Trainer(tiny_model(), longer, jit_compile=False, progress=False, checkpoint_dir=ckpt)
    with pytest.raises(CheckpointMismatchError, match=r"ckpt-4 cannot be read \(.*\); delete .*ckpt to train"):
        damaged.fit(dataset())
    shutil.rmtree(ckpt)
    with open(ckpt, "w") as fh:
        fh.write("not a folder")
    with pytest.raises(CheckpointMismatchError, match=r"checkpoint folder .*ckpt cannot be read"):
        Trainer(tiny_model(), longer, jit_compile=False, progress=False, checkpoint_dir=ckpt).fit(dataset())


def _shuffled_augmented(repeat: bool) -> tf.data.Dataset:
    """tfnas' training pipeline (shuffle, per-example flip and pad-crop draws) over generated images."""
    from tfnas.data import make_pipeline

    x, y = arrays(n=48)
    images = tf.data.Dataset.from_tensor_slices((np.clip(x * 0.2 + 0.5, 0.0, 1.0), np.argmax(y, axis=1)))
    ds = make_pipeline(images, batch_size=8, training=True, num_classes=2, mean=(0.5,) * 3, std=(0.2,) * 3,
                       seed=3, flip=True, pad_crop=2)
    return ds.repeat() if repeat else ds


def _dropout_model():
    inp = keras.Input((8, 8, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(inp))
    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.Dropout(0.5)(h)))


@pytest.mark.parametrize("repeat", [False, True], ids=["one-pass-per-epoch", "repeated"])
def test_a_resumed_fit_sees_the_data_order_and_draws_of_a_run_never_stopped(tmp_path, repeat):
    """The shuffle, the augmentation draws and the Dropout masks of the resumed epochs are those of
    an uninterrupted run."""
    recipe = cfg(epochs=2, lr=0.05, momentum=0.9)
    steps = 6 if repeat else None
    ckpt = str(tmp_path / "ckpt")
    Trainer(_dropout_model, recipe, jit_compile=False, progress=False, checkpoint_dir=ckpt, steps_per_epoch=steps,
            seed=0).fit(_shuffled_augmented(repeat))
    longer = dataclasses.replace(recipe, epochs=4)
    resumed = Trainer(_dropout_model, longer, jit_compile=False, progress=False, checkpoint_dir=ckpt,
                      steps_per_epoch=steps, seed=0).fit(_shuffled_augmented(repeat))
    straight = Trainer(_dropout_model, longer, jit_compile=False, progress=False, steps_per_epoch=steps,
                       seed=0).fit(_shuffled_augmented(repeat))
    assert resumed.epoch == [3, 4]
    np.testing.assert_allclose(resumed.loss, straight.loss[2:], rtol=1e-6)
    np.testing.assert_allclose(resumed.train_acc, straight.train_acc[2:], rtol=1e-6)


def test_a_checkpoint_saved_without_seed_states_still_resumes(tmp_path, monkeypatch, caplog):
    from tfnas.train import checkpoint

    ckpt = str(tmp_path / "ckpt")
    recipe = cfg(epochs=1, lr=0.05)
    with monkeypatch.context() as patch:  # a checkpoint as tfnas wrote it before it saved seed states
        patch.setattr(checkpoint, "seed_states", lambda model: [])
        Trainer(_dropout_model, recipe, jit_compile=False, progress=False, checkpoint_dir=ckpt, seed=0).fit(dataset())
    with caplog.at_level("INFO", logger="tfnas.train.checkpoint"):
        resumed = Trainer(_dropout_model, dataclasses.replace(recipe, epochs=2), jit_compile=False, progress=False,
                          checkpoint_dir=ckpt, seed=0).fit(dataset())
    assert resumed.epoch == [2]
    assert "holds 0 seed states, the model has 1" in caplog.text


def test_each_epoch_is_reported_before_its_checkpoint_is_written(tmp_path):
    # A kill between the two then leaves a row of an epoch the resume trains again, not a
    # checkpoint whose epoch has no row.
    ckpt = tmp_path / "ckpt"
    seen = []

    def on_epoch(row):
        seen.append((row["epoch"], sorted(p.name for p in ckpt.glob("ckpt-*.index")) if ckpt.exists() else []))

    Trainer(tiny_model(), cfg(epochs=2), jit_compile=False, progress=False, checkpoint_dir=str(ckpt),
            seed=0).fit(dataset(), on_epoch=on_epoch)
    assert seen == [(1, []), (2, ["ckpt-1.index"])]
    assert sorted(p.name for p in ckpt.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]


@pytest.mark.parametrize("damage, message", [
    (b'model_checkpoint_path: "ckpt-99"\n', r"index .*checkpoint names ckpt-99, which is not in the folder "
                                             r"\(checkpoints there: ckpt-1, ckpt-2\)"),
    (b"model_checkpoint_path: {{{\n", r"index .*checkpoint cannot be read \(checkpoints there: ckpt-1, ckpt-2\)"),
    (b'all_model_checkpoint_paths: "ckpt-1"\n', r"index .*checkpoint cannot be read \(Invalid checkpoint state.*\)"),
])
def test_a_damaged_checkpoint_index_is_refused_not_trained_over(tmp_path, damage, message):
    ckpt = tmp_path / "ckpt"
    recipe = cfg(epochs=2)
    Trainer(tiny_model(), recipe, jit_compile=False, progress=False, checkpoint_dir=str(ckpt), seed=0).fit(dataset())
    (ckpt / "checkpoint").write_bytes(damage)
    again = Trainer(tiny_model(), dataclasses.replace(recipe, epochs=4), jit_compile=False, progress=False,
                    checkpoint_dir=str(ckpt), seed=0)
    with pytest.raises(CheckpointMismatchError, match=message + r"; delete .*ckpt to train from scratch"):
        again.fit(dataset())
    assert sorted(p.name for p in ckpt.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]


def test_checkpoint_files_without_an_index_are_replaced_with_a_warning(tmp_path, caplog):
    ckpt = tmp_path / "ckpt"  # what a run killed inside its first save leaves: files, no index yet
    Trainer(tiny_model(), cfg(epochs=1), jit_compile=False, progress=False, checkpoint_dir=str(ckpt),
            seed=0).fit(dataset())
    (ckpt / "checkpoint").unlink()
    with caplog.at_level("WARNING", logger="tfnas.train.checkpoint"):
        history = Trainer(tiny_model(), cfg(epochs=2), jit_compile=False, progress=False, checkpoint_dir=str(ckpt),
                          seed=0).fit(dataset())
    assert history.epoch == [1, 2]
    assert any("has no index file 'checkpoint' (checkpoints there: ckpt-1): training from scratch" in r.getMessage()
               for r in caplog.records)


def test_a_checkpoint_with_more_epochs_than_the_training_is_refused(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    Trainer(tiny_model(), cfg(epochs=3), jit_compile=False, progress=False, checkpoint_dir=ckpt, seed=0).fit(dataset())
    shorter = Trainer(tiny_model(), cfg(epochs=2), jit_compile=False, progress=False, checkpoint_dir=ckpt, seed=0)
    with pytest.raises(CheckpointMismatchError, match=r"holds 3 completed epochs, more than the 2 of this training "
                                                      r"\(\[train\] epochs\); raise \[train\] epochs to at least 3"):
        shorter.fit(dataset())


def test_a_checkpoint_of_another_network_leaves_no_warnings_behind(tmp_path, caplog):
    import gc

    ckpt = str(tmp_path / "ckpt")
    Trainer(tiny_model(), cfg(epochs=1), jit_compile=False, progress=False, checkpoint_dir=ckpt, seed=0).fit(dataset())
    with caplog.at_level("WARNING"):
        with pytest.raises(CheckpointMismatchError, match="does not match") as info:
            Trainer(tiny_model(filters=6), cfg(epochs=2), jit_compile=False, progress=False,
                    checkpoint_dir=ckpt).fit(dataset())
        del info  # the error is gone, as after the command line printed it
        gc.collect()
    assert not [r for r in caplog.records if r.name == "tensorflow"], caplog.records[:3]


def _saver(ckpt):
    """A TrainCheckpoint of a tiny built model and optimizer in ``ckpt``, its epoch counter at 1."""
    from tfnas.train.checkpoint import TrainCheckpoint

    model = tiny_model()()
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(1, dtype=tf.int64)
    return TrainCheckpoint(str(ckpt), model=model, optimizer=optimizer, epoch=epoch,
                           rng=tf.random.Generator.from_seed(0)), epoch


def test_a_save_that_fails_after_the_index_names_it_keeps_the_checkpoint(tmp_path, monkeypatch):
    from tfnas.train.checkpoint import CheckpointWriteError

    ckpt = tmp_path / "ckpt"
    saver, epoch = _saver(ckpt)
    real_save = saver.manager.save

    def fails_late(checkpoint_number):  # written and indexed; removing an older checkpoint then fails
        real_save(checkpoint_number=checkpoint_number)
        raise tf.errors.PermissionDeniedError(None, None, "ckpt-0.index: Permission denied")

    monkeypatch.setattr(saver.manager, "save", fails_late)
    with pytest.raises(CheckpointWriteError, match="Permission denied"):
        saver.save()
    assert saver.restore_latest() == 1  # the indexed checkpoint is whole and kept


def test_a_checkpoint_that_cannot_be_written_is_one_error_and_leaves_no_partial_files(tmp_path, monkeypatch):
    from tfnas.train.checkpoint import CheckpointWriteError

    ckpt = tmp_path / "ckpt"
    saver, epoch = _saver(ckpt)
    saver.save()
    kept = sorted(os.listdir(ckpt))

    def disk_full(checkpoint_number):  # TensorFlow's save fails half-way through its data files
        (ckpt / f"ckpt-{checkpoint_number}.index").write_bytes(b"")
        (ckpt / f"ckpt-{checkpoint_number}_temp").mkdir()
        (ckpt / f"ckpt-{checkpoint_number}_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt: No space left on device")

    monkeypatch.setattr(saver.manager, "save", disk_full)
    epoch.assign(2)
    with pytest.raises(OSError, match=r"cannot write the checkpoint of epoch 2 into .*ckpt \(ckpt: No space left "
                                      r"on device\); free space") as info:
        saver.save()
    assert isinstance(info.value, CheckpointWriteError)
    assert sorted(os.listdir(ckpt)) == kept  # what the failed save began is gone, epoch 1's checkpoint stays
    assert saver.restore_latest() == 1


class RateVariable(keras.layers.Layer):
    """Drop-path protocol via a variable attribute; scales its input by (1 - rate)."""

    def build(self, shape):
        self.drop_path_rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")

    def call(self, x):
        return x * (1.0 - self.drop_path_rate)


class RateSetter(keras.layers.Layer):
    """Drop-path protocol via set_drop_path_rate; records the rates it receives."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.received = []

    def set_drop_path_rate(self, rate):
        self.received.append(rate)

    def call(self, x):
        return x


def test_drop_path_ramps_per_epoch_without_retracing():
    layers = {}

    def build():
        inp = keras.Input((8, 8, 3))
        layers["var"], layers["set"] = RateVariable(), RateSetter()
        h = layers["set"](layers["var"](keras.layers.Conv2D(4, 3)(inp)))
        return keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h)))

    t = Trainer(build, cfg(epochs=4, drop_path=0.4), jit_compile=False, progress=False)
    t.fit(dataset(64))
    assert layers["set"].received == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert float(layers["var"].drop_path_rate.numpy()) == pytest.approx(0.3)
    assert t.trace_counts["train"] == 1


def test_drop_path_until_holds_the_rate_after_the_ramp():
    layers = {}

    def build():
        inp = keras.Input((8, 8, 3))
        layers["set"] = RateSetter()
        h = layers["set"](keras.layers.Conv2D(4, 3)(inp))
        return keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h)))

    t = Trainer(build, cfg(epochs=4, drop_path=0.4, drop_path_until=0.5), jit_compile=False, progress=False)
    t.fit(dataset(64))
    assert layers["set"].received == pytest.approx([0.0, 0.1, 0.1, 0.1])


def test_drop_path_without_protocol_layers_warns(caplog):
    with caplog.at_level("WARNING", logger="tfnas.train.trainer"):
        Trainer(tiny_model(), cfg(drop_path=0.2), jit_compile=False, progress=False)
    assert "drop_path_rate" in caplog.text


def test_repeated_dataset_needs_steps_per_epoch_and_labels_must_be_one_hot():
    repeated = dataset(64).repeat()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        Trainer(tiny_model(), cfg(), jit_compile=False, progress=False).fit(repeated)
    t = Trainer(tiny_model(), cfg(epochs=2), jit_compile=False, progress=False, steps_per_epoch=5)
    assert t.fit(repeated).epoch == [1, 2]
    assert int(t.optimizer.iterations.numpy()) == 10
    x, y = arrays(16)
    int_labels = tf.data.Dataset.from_tensor_slices((x, y.argmax(1))).batch(8)
    with pytest.raises(ValueError, match="one-hot"):
        Trainer(tiny_model(), cfg(), jit_compile=False, progress=False).fit(int_labels)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(TrainingDivergedError, match="lower train.lr"):
        Trainer(tiny_model(), cfg(), jit_compile=False, progress=False).fit(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    with pytest.raises(TypeError, match="keras.Model"):
        Trainer(lambda: "not a model", cfg(), jit_compile=False)


def test_train_and_evaluate_helper_and_adam(tmp_path):
    model, h, metrics = train_and_evaluate(
        tiny_model(), cfg(epochs=2, optimizer="adam", lr=1e-2), dataset(64), dataset(32, seed=1),
        jit_compile="false", strategy="one_device", checkpoint_dir=str(tmp_path), progress=False, seed=0)
    assert isinstance(model, keras.Model) and h.epoch == [1, 2]
    assert set(metrics) == {"loss", "accuracy"} and metrics["loss"] == h.eval_loss[-1]
    assert tf.train.latest_checkpoint(str(tmp_path)) is not None
    # the optimizer the [train] key names (the run above would pass with SGD too)
    trainer = Trainer(tiny_model(), cfg(epochs=1, optimizer="adam", lr=1e-2), jit_compile=False, progress=False)
    trainer.fit(dataset(16))
    assert type(trainer.optimizer) is keras.optimizers.Adam


def test_training_leaves_numpy_and_python_global_generators_alone():
    np.random.seed(11)
    random.seed(11)
    np_state, py_state = np.random.get_state(), random.getstate()
    t = Trainer(tiny_model(), cfg(epochs=1), jit_compile=False, progress=False, seed=5)
    t.fit(dataset(64))
    t.evaluate(dataset(32))
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state


def test_initial_weights_follow_the_seed_whatever_the_callers_global_state():
    def initial(seed, caller_seed):
        np.random.seed(caller_seed)
        random.seed(caller_seed)
        return weights(Trainer(tiny_model(), BASE, jit_compile=False, progress=False, seed=seed).model)

    a, b, c = initial(3, 0), initial(3, 99), initial(4, 0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


class _LazyModel(keras.Model):
    """Creates its layers in build(): their seeds are drawn at the first call, not in model_fn."""

    def build(self, input_shape):
        self.conv = keras.layers.Conv2D(3, 3, padding="same")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(2)

    def call(self, x, training=False):
        return self.head(self.pool(self.conv(x)))


def test_layers_built_lazily_get_seeded_weights_too():
    def initial(caller_seed):
        random.seed(caller_seed)
        t = Trainer(_LazyModel, BASE, jit_compile=False, steps_per_epoch=1, progress=False, seed=2)
        random.random()  # the caller draws between construction and the first fit
        t._prepare(dataset(8).element_spec)
        return weights(t.model)

    a, b = initial(0), initial(1)
    assert len(a) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_trainer_built_under_its_own_seed_does_not_reseed(monkeypatch):
    """Reseeding clears TensorFlow's function caches (``seeding.set_tf_global_seed``): a Trainer built
    inside a search that holds the same seed (RS-NAG's short trainings) must not set it again."""
    from tfnas.train.seeding import tf_global_seed

    calls = []
    real = tf.random.set_seed
    with tf_global_seed(11):
        monkeypatch.setattr(tf.random, "set_seed", lambda seed: (calls.append(seed), real(seed)))
        Trainer(tiny_model(), cfg(), jit_compile=False, progress=False, seed=11)
        assert calls == []
        Trainer(tiny_model(), cfg(), jit_compile=False, progress=False, seed=12)  # another seed is set
        assert calls == [12]
        monkeypatch.setattr(tf.random, "set_seed", real)


def test_a_supernet_epoch_whose_loss_is_not_finite_is_a_diverged_training():
    """The weight-sharing supernets (RelativeNAS' DARTS, SLNAS' lite) raise what the command line prints as
    one line, as the Trainer does."""
    from types import SimpleNamespace

    from tfnas.train.supernet import SupernetEngine

    engine = SimpleNamespace(reset_momentum=lambda: None, _ids=lambda arch: arch,
                             _train_fn=lambda images, labels, ids, lr: (float("nan"), 0.0, 8.0))
    batches = [(np.zeros((8, 2, 2, 3), np.float32), np.zeros((8, 2), np.float32))] * 2
    with pytest.raises(TrainingDivergedError, match="search training loss is nan; lower"):
        SupernetEngine.train_epoch(engine, batches, arch=0, lr=0.1)


@pytest.mark.parametrize("make, error, fragment", [
    (lambda: Trainer(tiny_model()(), BASE), TypeError, "model_fn must be a function of no arguments"),
    (lambda: Trainer(tiny_model(), None), TypeError, "train_cfg must be the [train] section"),
    (lambda: Trainer(tiny_model(), {"epochs": 1}), TypeError, "got dict"),
    (lambda: Trainer(tiny_model(), BASE, seed=-1), ValueError, "seed"),
    (lambda: Trainer(tiny_model(), BASE, seed=1.5), ValueError, "seed"),
    (lambda: Trainer(tiny_model(), BASE, steps_per_epoch=2.5), ValueError, "steps_per_epoch"),
])
def test_trainer_arguments_of_the_wrong_kind_are_named(make, error, fragment):
    """A model instead of its builder failed inside ``inspect`` ("missing a required argument: 'inputs'"), a whole
    Config with "'Config' object has no attribute 'drop_path'", a seed of "x" with TensorFlow's cast error."""
    with pytest.raises(error) as err:
        make()
    assert fragment in str(err.value)


def test_fit_names_a_dataset_that_is_no_dataset_and_labels_of_another_width():
    trainer = Trainer(tiny_model(), BASE, jit_compile=False, progress=False)
    with pytest.raises(TypeError, match="train_ds must be a tf.data.Dataset"):
        trainer.fit(arrays())
    with pytest.raises(TypeError, match="eval_ds must be a tf.data.Dataset"):
        trainer.fit(dataset(), arrays())
    x, y = arrays()
    five = tf.data.Dataset.from_tensor_slices((x, np.eye(5, dtype=np.float32)[np.argmax(y, 1)])).batch(32)
    with pytest.raises(ValueError, match="one-hot over 5 classes but the model outputs 2"):
        trainer.fit(five)
    with pytest.raises(TypeError, match="Trainer.evaluate: ds must be a tf.data.Dataset"):
        trainer.evaluate(arrays())
    with pytest.raises(ValueError, match="one-hot over 5 classes but the model outputs 2"):
        trainer.evaluate(five)
