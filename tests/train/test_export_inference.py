"""Exports are the serving networks (issue 13, item 17).

For every space, a *training* network (DropPath layers; the DARTS one also with its auxiliary
head) goes through the export functions as ``tools/train.py`` hands it over. The SavedModel and
the ``.keras`` file must hold the inference network only: its trainable-parameter count equals
the space's analytic ``num_params``, no DropPath / auxiliary-head variable is in it, and the
SavedModel, loaded in a fresh process without tfnas, gives the outputs of the Keras model in
inference mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.spaces.darts import DartsSpace
from tfnas.spaces.nb201 import Nb201Space
from tfnas.spaces.ops import DropPath
from tfnas.spaces.tinynano import TinyNanoSpace
from tfnas.spaces.zen import ZenSpace
from tfnas.train.export import count_params, export_arch, export_keras, export_saved_model, inference_model

NUM_CLASSES = 7
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ZEN_ARCH = "SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,16,2,8,1)SuperConvK1BNRELU(16,16,1,1)"
TINYNANO_ARCH = "input>1;conv1x1>2;dwconv3x3>3;maxpool3x3>4;maxpool3x3>5;conv1x1-bn-relu>6;output"


def _case(name: str):
    """``(space, arch, input_shape, analytic trainable-parameter count)`` of a small network."""
    if name == "nb201":
        space = Nb201Space(channels=4, cells_per_stage=1)
        arch = space.decode(NB201_ARCH)
        return space, arch, (8, 8, 3), space.num_params(arch, NUM_CLASSES)
    if name == "darts":
        space = DartsSpace(channels=4, layers=5)  # auxiliary head by default
        arch = space.decode("relativenas")
        return space, arch, (32, 32, 3), space.num_params(arch, NUM_CLASSES)
    if name == "zen":
        space = ZenSpace(resolution=16, num_classes=NUM_CLASSES)
        arch = space.decode(ZEN_ARCH)
        # "trainable" counts the Keras builder's weights; the default "reference" is the papers' budget
        return space, arch, (16, 16, 3), space.num_params(arch, NUM_CLASSES, count="trainable")
    space = TinyNanoSpace(widths=(16, 32), cells_per_block=1, flops_limit=None)
    arch = space.decode(TINYNANO_ARCH)
    return space, arch, (8, 8, 3), space.num_params(arch, NUM_CLASSES)


SPACES = ("nb201", "darts", "zen", "tinynano")


def _training_network(name: str, seed: int = 0):
    space, arch, shape, analytic = _case(name)
    keras.utils.set_random_seed(seed)
    model = space.build(arch, NUM_CLASSES, shape, drop_path_rate=0.1)
    rng = np.random.default_rng(seed)
    for w in model.non_trainable_weights:  # non-trivial BN statistics: inference mode must use them
        if "moving_mean" in w.path:
            w.assign(rng.normal(0.0, 0.1, w.shape).astype(np.float32))
        elif "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
    return space, arch, shape, analytic, model


def _images(shape, n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


def _training_only(model) -> list:
    return [layer.name for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, DropPath) or "auxiliary" in layer.name]


@pytest.mark.parametrize("name", SPACES)
def test_inference_model_drops_training_parts_and_shares_weights(name):
    space, arch, shape, analytic, model = _training_network(name)
    assert _training_only(model)  # the training network has them
    if name == "darts":
        assert count_params(model) > analytic  # the auxiliary head
    net = inference_model(model)
    assert _training_only(net) == []
    assert count_params(net) == analytic
    x = _images(shape)
    np.testing.assert_allclose(net(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-6)
    # the weights are shared, not copied: training the model moves the served network too
    shared = {id(w) for w in model.trainable_weights}
    assert all(id(w) in shared for w in net.trainable_weights)
    assert inference_model(net) is net


@pytest.mark.slow  # ~90 s on 2 cores
def test_export_of_training_networks_are_inference_networks_in_a_fresh_process(tmp_path):
    expected, counts = {}, {}
    for name in SPACES:
        _, _, shape, analytic, model = _training_network(name)
        x = _images(shape)
        np.save(tmp_path / f"{name}_x.npy", x)
        export_saved_model(model, str(tmp_path / f"{name}_sm"))
        expected[name] = model(x, training=False).numpy()
        counts[name] = analytic

        keras_file = str(tmp_path / f"{name}.keras")
        export_keras(model, keras_file)
        reloaded = keras.saving.load_model(keras_file)
        assert _training_only(reloaded) == []
        assert count_params(reloaded) == analytic
        np.testing.assert_allclose(reloaded(x, training=False).numpy(), expected[name], atol=1e-5)

    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf
        out = {}
        for name in sys.argv[2].split(","):
            loaded = tf.saved_model.load(f"{sys.argv[1]}/{name}_sm")
            x = np.load(f"{sys.argv[1]}/{name}_x.npy")
            np.save(f"{sys.argv[1]}/{name}_y.npy", loaded.serve(tf.constant(x)).numpy())
            trainable = {id(v): v for v in loaded.trainable_variables}
            names = [v.name for v in loaded.variables]
            out[name] = {
                "trainable": int(sum(int(np.prod(v.shape)) for v in trainable.values())),
                "training_only": [n for n in names if "drop_path" in n or "auxiliary" in n or "seed" in n],
            }
        assert "tfnas" not in sys.modules, "tfnas was imported"
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), ",".join(SPACES)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in SPACES:
        assert found[name] == {"trainable": counts[name], "training_only": []}, name
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_y.npy"), expected[name], atol=1e-5, err_msg=name)


def test_darts_export_arch_counts_the_published_parameters(tmp_path):
    """``tools/export.py --space darts --arch relativenas --num-classes 10``: 3,928,222 (3.93 M), not
    the 4,404,648 of the training network with its auxiliary head."""
    space = DartsSpace()
    result = export_arch(space, "relativenas", 10, str(tmp_path / "relativenas.keras"), fmt="keras")
    assert result.num_params == space.num_params(space.decode("relativenas"), 10) == 3_928_222
    reloaded = keras.saving.load_model(result.path)
    assert reloaded.auxiliary is False and reloaded.auxiliary_head is None
    assert count_params(reloaded) == 3_928_222


def test_export_arch_loads_training_and_exported_weights(tmp_path):
    """Weights of the training network (checkpoint, .keras with the auxiliary head) and of an
    exported inference network (.keras) both load into ``export_arch``."""
    space, arch, shape, analytic, model = _training_network("darts", seed=3)
    x = _images(shape)
    want = model(x, training=False).numpy()
    text = space.encode(arch)

    ckpt = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt" / "model"))
    training_file = str(tmp_path / "training.keras")
    model.save(training_file)  # a training network saved directly (auxiliary head included)
    served_file = str(tmp_path / "served.keras")
    export_keras(model, served_file)  # the exported inference network

    for i, weights in enumerate((ckpt, training_file, served_file)):
        out = str(tmp_path / f"out{i}.keras")
        result = export_arch(space, text, NUM_CLASSES, out, fmt="keras", weights=weights)
        assert result.num_params == analytic
        got = keras.saving.load_model(out)(x, training=False).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=weights)
