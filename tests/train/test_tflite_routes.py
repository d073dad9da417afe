"""The two TFLite conversion routes (tfnas.train.tflite ``via``) give the same model.

The frozen route (variables folded into constants in memory) must convert the same batch-1
inference function as the SavedModel route: same outputs as the Keras network (float32 within
1e-5 of the largest logit, the bound of tests/train/test_tflite.py), same tensors and ops.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfnas.spaces.nb201 import Nb201Space
from tfnas.spaces.zen import ZenSpace
from tfnas.train.litert import count_tflite_params, load_interpreter, run_tflite
from tfnas.train.tflite import convert_tflite

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ZEN_ARCH = "SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,16,2,8,1)SuperConvK1BNRELU(16,16,1,1)"


def _model(name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name == "nb201":
        space = Nb201Space(channels=8, cells_per_stage=1)
        return space.build(space.decode(NB201_ARCH), 10, input_shape=(16, 16, 3))
    space = ZenSpace(resolution=16, num_classes=10)
    return space.build(space.decode(ZEN_ARCH), 10, input_shape=(16, 16, 3))


def _ops(flatbuffer: bytes) -> list:
    return sorted(op["op_name"] for op in load_interpreter(flatbuffer)._get_ops_details())


@pytest.mark.parametrize("name", ["nb201", "zen"])
def test_frozen_route_equals_the_saved_model_route(name):
    model = _model(name)
    images = np.random.default_rng(0).standard_normal((4, 16, 16, 3)).astype(np.float32)
    reference = np.asarray(model(images, training=False))
    frozen = convert_tflite(model, via="frozen")
    saved = convert_tflite(model, via="saved_model")
    scale = np.abs(reference).max()
    assert np.abs(run_tflite(frozen, images) - reference).max() <= 1e-5 * scale
    assert _ops(frozen) == _ops(saved)
    assert count_tflite_params(frozen) == count_tflite_params(saved)


def test_frozen_route_quantizes_to_int8():
    model = _model("nb201")
    calibration = np.random.default_rng(1).standard_normal((8, 16, 16, 3)).astype(np.float32)
    flatbuffer = convert_tflite(model, "int8", calibration, via="frozen")
    assert load_interpreter(flatbuffer).get_input_details()[0]["dtype"] == np.int8


def test_unknown_route_is_refused():
    with pytest.raises(ValueError, match="via='disk'.*saved_model, frozen"):
        convert_tflite(_model("nb201"), via="disk")
