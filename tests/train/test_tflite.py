"""TFLite export (float32, float16, int8) and the LiteRT runner (tfnas.train.tflite / litert / calibration).

Bounds, measured on small networks of every space at input 32 (16 standard-normal images, int8
calibrated on 100 synthetic images of the same distribution), as ``max|tflite - keras| / max|keras|``:
float32 <= 5e-7 (tested: 1e-5), float16 <= 8e-4 (tested: 5e-3), int8 <= 4.4 % (lite; NB201 1.6 %,
DARTS 1.8 %, Zen 1.4 %, TinyNano 1.5 %; tested: 10 %) with top-1 agreement 15/16 or better (tested: 12/16).

Every case takes the default route (``via="auto"``: frozen for these networks), the exports' and the
measured-latency searches'. The SavedModel route, auto's fallback for weights above 1 GiB, must give the
same model: checked for float32 on NB201 and DARTS (the auxiliary head left out) and int8 on NB201.
"""

from __future__ import annotations

import os
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.images import write_image_folder
from tests.spaces.archs import NB201_MIXED
from tfnas.data.base import IMAGENET_MEAN, IMAGENET_STD
from tfnas.spaces.darts import DartsSpace
from tfnas.spaces.lite import LiteSpace
from tfnas.spaces.nasnet_dag import NasnetDagSpace
from tfnas.spaces.nb201 import Nb201Space
from tfnas.spaces.tinynano import TinyNanoSpace
from tfnas.spaces.zen import ZenSpace
from tfnas.train import tflite as tflite_module
from tfnas.train.calibration import SyntheticCalibrationWarning, calibration_images
from tfnas.train.export import count_params, export_arch, inference_model
from tfnas.train.litert import (
    LiteRTFallbackWarning,
    count_tflite_params,
    load_interpreter,
    measure_latency,
    run_tflite,
)
from tfnas.train.tflite import convert_tflite, export_tflite

NUM_CLASSES = 10
SHAPE = (32, 32, 3)
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ZEN_ARCH = "SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,16,2,8,1)SuperConvK1BNRELU(16,16,1,1)"
TINYNANO_ARCH = "input>1;conv1x1>2;dwconv3x3>3;maxpool3x3>4;maxpool3x3>5;conv1x1-bn-relu>6;output"
# NAG's space; the reduction cell has a stride-2 node, two mixed-stride nodes and an input wired to the output
NASNET_ARCH = "12370:0>2,1>3,2>3,3>4 / 123570:0>2,0>3,1>4,2>3,2>4,3>5,4>5,1>5"
_CACHE: dict = {}


def _space(name: str):
    """``(space, arch, analytic trainable parameters)`` of a small network with input 32."""
    if name == "nb201":
        space, text = Nb201Space(channels=8, cells_per_stage=1), NB201_ARCH
    elif name == "darts":
        space, text = DartsSpace(channels=4, layers=3), "relativenas"  # with its auxiliary head
    elif name == "zen":
        space, text = ZenSpace(resolution=32, num_classes=NUM_CLASSES), ZEN_ARCH
    elif name == "lite":
        space, text = LiteSpace(channels=8, blocks=(0, 0)), "slnas_paper"  # with its auxiliary heads
    elif name == "nasnet_dag":
        space, text = NasnetDagSpace(channels=4, layers=3), NASNET_ARCH  # with its auxiliary head
    else:
        space, text = TinyNanoSpace(widths=(16, 32), cells_per_block=1, flops_limit=None), TINYNANO_ARCH
    arch = space.decode(text)
    count = "trainable" if name == "zen" else None
    analytic = space.num_params(arch, NUM_CLASSES, **({"count": count} if count else {}))
    return space, arch, analytic


def _case(name: str):
    """Cached ``(training model, inference outputs on 16 images, images, analytic count, synthetic calibration)``."""
    if name not in _CACHE:
        space, arch, analytic = _space(name)
        keras.utils.set_random_seed(0)
        model = space.build(arch, NUM_CLASSES, SHAPE)
        rng = np.random.default_rng(0)
        for w in model.non_trainable_weights:  # non-trivial BN statistics: inference mode must use them
            if "moving_mean" in w.path:
                w.assign(rng.normal(0.0, 0.1, w.shape).astype(np.float32))
            elif "moving_variance" in w.path:
                w.assign(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
        x = np.random.default_rng(1).standard_normal((16,) + SHAPE).astype(np.float32)
        with pytest.warns(SyntheticCalibrationWarning, match="accuracy will suffer"):
            calib = calibration_images(None, SHAPE)
        assert calib.synthetic and "SYNTHETIC" in calib.source and calib.images.shape == (100,) + SHAPE
        _CACHE[name] = (model, model(x, training=False).numpy(), x, analytic, calib.images)
    return _CACHE[name]


def _converted(name: str, quantize: str) -> bytes:
    """Cached flatbuffer of a case, converted on the default route."""
    key = (name, quantize)
    if key not in _CACHE:
        model, _, _, _, calib = _case(name)
        _CACHE[key] = convert_tflite(model, quantize, calib if quantize == "int8" else None)
    return _CACHE[key]


def _ops(flatbuffer: bytes) -> list:
    return sorted(op["op_name"] for op in load_interpreter(flatbuffer)._get_ops_details())


CASES = [(s, "none") for s in ("nb201", "darts", "zen", "lite", "tinynano", "nasnet_dag")]
CASES += [(s, "float16") for s in ("nb201", "darts", "zen")]
CASES += [(s, "int8") for s in ("nb201", "darts", "zen", "lite", "tinynano", "nasnet_dag")]


@pytest.mark.parametrize("name, quantize", CASES)
def test_tflite_outputs_match_the_keras_inference_network(name, quantize):
    model, want, x, analytic, calib = _case(name)
    flatbuffer = _converted(name, quantize)
    interpreter = load_interpreter(flatbuffer)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert tuple(inp["shape"]) == (1,) + SHAPE and tuple(out["shape"]) == (1, NUM_CLASSES)  # one output: no aux head
    assert inp["dtype"] == out["dtype"] == (np.int8 if quantize == "int8" else np.float32)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["images"], "outputs": ["output_0"]}}
    got = run_tflite(flatbuffer, x)
    assert got.dtype == np.float32 and got.shape == want.shape
    rel = np.abs(got - want).max() / np.abs(want).max()
    bound = {"none": 1e-5, "float16": 5e-3, "int8": 0.10}[quantize]
    assert rel <= bound, f"{name} {quantize}: relative max error {rel:.3g} > {bound}"
    if quantize == "int8":
        assert (got.argmax(1) == want.argmax(1)).sum() >= 12
    # The inference network is exported: its weights, not the training network's (DARTS: + 410k
    # auxiliary-head parameters). The stored count is not exact: BN folding drops one vector per
    # BatchNorm, folded constants (avg-pool window counts, BlurPool kernels) add some, identical
    # buffers are stored once, int8 biases are int32. Measured (float32): NB201 +2.5 %, DARTS +1.0 %,
    # Zen -8.4 %, lite +6.3 %, TinyNano -4.8 % of the analytic count.
    assert count_params(inference_model(model)) == analytic
    if quantize == "none":
        stored = count_tflite_params(flatbuffer)
        assert abs(stored - analytic) <= 0.12 * analytic, (stored, analytic)
    if quantize == "none" and name in ("nb201", "darts"):
        saved = convert_tflite(model, via="saved_model")  # auto's route for weights above FROZEN_MAX_BYTES
        assert np.abs(run_tflite(saved, x) - want).max() <= bound * np.abs(want).max()
        assert _ops(saved) == _ops(flatbuffer) and count_tflite_params(saved) == stored
        assert load_interpreter(saved).get_signature_list() == load_interpreter(flatbuffer).get_signature_list()
        if name == "darts":
            assert count_params(model) > 20 * analytic


def test_quantized_files_are_smaller_and_int8_takes_int8(capfd):
    sizes = {q: len(_converted("nb201", q)) for q in ("none", "float16", "int8")}
    assert sizes["int8"] < sizes["float16"] < sizes["none"], sizes
    # int8 on the SavedModel route too (auto's fallback): the same model as the frozen route's
    model, want, x, _, calib = _case("nb201")
    capfd.readouterr()
    saved = convert_tflite(model, "int8", calib, via="saved_model")
    assert "fully_quantize" not in capfd.readouterr().err  # the quantizer's settings line is kept off the console
    got = run_tflite(saved, x)
    assert np.abs(got - want).max() <= 0.10 * np.abs(want).max() and (got.argmax(1) == want.argmax(1)).sum() >= 12
    assert _ops(saved) == _ops(_converted("nb201", "int8"))
    np.testing.assert_array_equal(got, run_tflite(_converted("nb201", "int8"), x))


def test_auto_freezes_unless_the_weights_exceed_the_graph_limit(monkeypatch):
    net = inference_model(_case("darts")[0])
    size = tflite_module._weight_bytes(net)
    assert size == 4 * sum(int(np.prod(w.shape)) for w in net.weights)  # float32: trainable and BN statistics
    assert tflite_module.FROZEN_MAX_BYTES == 2 ** 30 and tflite_module._route(net, "auto") == "frozen"
    monkeypatch.setattr(tflite_module, "FROZEN_MAX_BYTES", size)
    assert tflite_module._route(net, "auto") == "frozen"
    monkeypatch.setattr(tflite_module, "FROZEN_MAX_BYTES", size - 1)
    assert tflite_module._route(net, "auto") == "saved_model"
    assert [tflite_module._route(net, via) for via in ("frozen", "saved_model")] == ["frozen", "saved_model"]


def test_bad_arguments():
    model, _, _, _, calib = _case("nb201")
    with pytest.raises(ValueError, match="unknown TFLite quantization 'int4'"):
        convert_tflite(model, "int4")
    with pytest.raises(ValueError, match="calibration images"):
        convert_tflite(model, "int8")
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        convert_tflite(model, "int8", calib[:, :16, :16])
    with pytest.raises(ValueError, match="via='disk'.*auto, frozen, saved_model"):
        convert_tflite(model, via="disk")
    with pytest.raises(ValueError, match="calibration source 'nowhere/at/all'"):
        calibration_images("nowhere/at/all", SHAPE)


def _siblings(path) -> list:
    parent, base = os.path.split(str(path))
    return sorted(name for name in os.listdir(parent) if name.startswith(f".{base}"))


def test_export_is_atomic_and_refuses_to_overwrite(tmp_path, monkeypatch):
    model, want, x, _, _ = _case("tinynano")
    target = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match="end in '.tflite'"):
        export_tflite(model, str(tmp_path / "m.lite"))
    assert export_tflite(model, str(target)) == str(target)
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        export_tflite(model, str(target), quantize="float16")
    assert target.read_bytes() == before

    def broken(*args, **kwargs):
        raise RuntimeError("TFLite conversion (float16) failed: no kernel")

    monkeypatch.setattr(tflite_module, "convert_tflite", broken)
    with pytest.raises(RuntimeError, match="no kernel"):
        export_tflite(model, str(target), quantize="float16", overwrite=True)
    assert target.read_bytes() == before and _siblings(target) == []
    monkeypatch.undo()

    real_open = open

    def half_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "w" in mode and str(path).endswith(".tflite"):
            handle.write(b"half")
            handle.close()
            raise OSError("disk full")
        return handle

    monkeypatch.setattr("builtins.open", half_open)
    with pytest.raises(OSError, match="disk full"):
        export_tflite(model, str(target), quantize="float16", overwrite=True)
    monkeypatch.undo()
    assert target.read_bytes() == before and _siblings(target) == []
    export_tflite(model, str(target), quantize="float16", overwrite=True)
    assert target.read_bytes() != before
    np.testing.assert_allclose(run_tflite(str(target), x), want, atol=5e-3 * np.abs(want).max())


def _image_folder(root, size=(40, 36), per_class=3):
    return write_image_folder(root, per_class=per_class, size=size, classes=("cat", "dog"))


def test_calibration_from_an_image_folder_is_the_evaluation_preprocessing(tmp_path):
    root = _image_folder(tmp_path / "images", size=(32, 32))
    calib = calibration_images(str(root), SHAPE, num_images=4, seed=0)
    assert not calib.synthetic and calib.images.shape == (4,) + SHAPE and "train/" in calib.source
    raw = {}
    for cls in ("cat", "dog"):
        for f in sorted((root / "train" / cls).iterdir()):
            raw[f] = (tf.io.decode_png(f.read_bytes()).numpy() / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    for image in calib.images:  # each is one of the training images, normalised with the folder's statistics
        assert min(np.abs(image - r).max() for r in raw.values()) < 1e-5
    assert len({image.tobytes() for image in calib.images}) == 4
    everything = calibration_images(str(root), SHAPE, num_images=100)
    assert everything.images.shape == (6,) + SHAPE  # a small folder gives what it has


def test_export_arch_int8_with_a_calibration_folder(tmp_path):
    root = _image_folder(tmp_path / "images")  # 40x36 images: resized to the input like evaluation does
    space, _, analytic = _space("tinynano")
    text = TINYNANO_ARCH
    out = tmp_path / "tn.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntheticCalibrationWarning)
        result = export_arch(space, text, NUM_CLASSES, str(out), fmt="tflite", quantize="int8",
                             calibration=str(root))
    assert result.format == "tflite" and result.quantize == "int8" and result.num_params == analytic
    assert "images" in result.calibration and "6 images" in result.calibration
    assert load_interpreter(str(out)).get_input_details()[0]["dtype"] == np.int8
    with pytest.raises(ValueError, match="tflite format only"):
        export_arch(space, text, NUM_CLASSES, str(tmp_path / "a.keras"), fmt="keras", quantize="int8")
    with pytest.raises(ValueError, match="int8 quantization only"):
        export_arch(space, text, NUM_CLASSES, str(tmp_path / "b.tflite"), fmt="tflite", calibration=str(root))
    with pytest.raises(ValueError, match="neither a registered dataset"):
        export_arch(space, text, NUM_CLASSES, str(tmp_path / "c.tflite"), fmt="tflite", quantize="int8",
                    calibration=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="end in '.tflite'"):
        export_arch(space, text, NUM_CLASSES, str(tmp_path / "d"), fmt="tflite")
    assert sorted(os.listdir(tmp_path)) == ["images", "tn.tflite"]


def test_run_tflite_batches_and_latency(tmp_path):
    _, want, x, _, _ = _case("zen")
    flatbuffer = _converted("zen", "int8")
    path = tmp_path / "zen.tflite"
    path.write_bytes(flatbuffer)
    batch = run_tflite(str(path), x[:5], num_threads=1)
    single = np.concatenate([run_tflite(flatbuffer, x[i:i + 1]) for i in range(5)])
    np.testing.assert_array_equal(batch, single)
    with pytest.raises(ValueError, match="inputs of shape"):
        run_tflite(flatbuffer, x[:, :16])
    stats = measure_latency(str(path), num_runs=7, warmup=2, num_threads=1)
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms and stats.runs == 7 and stats.num_threads == 1
    with pytest.raises(ValueError, match="num_runs"):
        measure_latency(flatbuffer, num_runs=0)
    with pytest.raises(FileNotFoundError):
        run_tflite(str(tmp_path / "nothing.tflite"), x)


def test_falls_back_to_tf_lite_interpreter_with_a_warning(monkeypatch):
    _, want, x, _, _ = _case("zen")
    flatbuffer = _converted("zen", "none")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    with pytest.warns(LiteRTFallbackWarning, match="ai_edge_litert is not installed"):
        got = run_tflite(flatbuffer, x[:2])
    np.testing.assert_allclose(got, want[:2], atol=1e-5 * np.abs(want).max())


def test_calibration_from_a_tfds_dataset_uses_its_statistics():
    import tensorflow_datasets as tfds

    from tfnas.data.base import CIFAR10_MEAN, CIFAR10_STD

    with tfds.testing.mock_data(num_examples=20):  # never downloads
        calib = calibration_images("cifar10", SHAPE, num_images=8, download="false")
    assert not calib.synthetic and calib.images.shape == (8,) + SHAPE and calib.source.startswith("cifar10 train")
    pixels = calib.images * np.array(CIFAR10_STD, np.float32) + np.array(CIFAR10_MEAN, np.float32)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # (x / 255 - mean) / std of uint8 images
    np.testing.assert_allclose(pixels * 255, np.round(pixels * 255), atol=1e-3)


@pytest.fixture
def interrupts_raise():
    """SIGINT raises KeyboardInterrupt in this process (an xdist worker may ignore it)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_swallowed_during_the_conversion_still_stops_it(interrupts_raise, monkeypatch):
    """TensorFlow can drop a KeyboardInterrupt raised in a callback ('Exception ignored in ...');
    the conversion must not then finish as if nothing happened."""
    import signal
    import time

    class SwallowingConverter:
        def __init__(self):
            self.target_spec, self.optimizations = type("Spec", (), {})(), []

        def convert(self):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the handler runs before this ends
            except KeyboardInterrupt:
                pass  # what TensorFlow's destructor does with it
            return b"flatbuffer"

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", lambda *a, **k: SwallowingConverter())
    space = Nb201Space(channels=4, cells_per_stage=1)
    model = space.build(space.decode(NB201_ARCH), 10, input_shape=(8, 8, 3))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        tflite_module.convert_tflite(model, "none")
    assert signal.getsignal(signal.SIGINT) is handler
    swallow = SwallowingConverter.convert

    def interrupted_then_failed(self):
        swallow(self)
        raise RuntimeError("the representative dataset ended early")  # what the stopped callback leads to

    monkeypatch.setattr(SwallowingConverter, "convert", interrupted_then_failed)
    with pytest.raises(KeyboardInterrupt):  # not 'TFLite conversion failed'
        tflite_module.convert_tflite(model, "none")
    monkeypatch.setattr(SwallowingConverter, "convert", lambda self: b"flatbuffer")
    assert tflite_module.convert_tflite(model, "none") == b"flatbuffer"


def test_calibration_images_without_int8_are_refused_not_left_unused(tmp_path):
    """``export_tflite(m, path, quantize="none", calibration=x)`` wrote the file and ignored ``x``; ``export_arch``
    refused the same combination."""
    space = Nb201Space(channels=4, cells_per_stage=1)
    model = space.build(space.decode(NB201_MIXED), 10, input_shape=(8, 8, 3))
    images = np.zeros((2, 8, 8, 3), np.float32)
    for quantize in ("none", "float16"):
        with pytest.raises(ValueError, match="calibration images are used by int8 quantization only"):
            tflite_module.export_tflite(model, str(tmp_path / "m.tflite"), quantize, images)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("space", ["nb201", Nb201Space])
def test_export_arch_names_a_space_that_is_not_a_space_instance(space, tmp_path):
    """``export_arch("nb201", ...)`` failed with "'str' object has no attribute 'decode'"."""
    with pytest.raises(TypeError, match="space must be a search-space instance"):
        export_arch(space, NB201_MIXED, 10, str(tmp_path / "m.keras"), fmt="keras")


def test_export_arch_refuses_a_calibration_source_for_formats_that_do_not_quantize(tmp_path):
    """``fmt="keras", quantize="none", calibration="cifar10"`` was accepted and the calibration ignored."""
    with pytest.raises(ValueError, match="a calibration source is used by int8 tflite exports only"):
        export_arch(Nb201Space(), NB201_MIXED, 10, str(tmp_path / "m.keras"), fmt="keras", quantize="none",
                    calibration="cifar10")


_LOAD_QUIETLY = """
import sys
sys.path.insert(0, {root!r})
from tfnas.train.litert import load_interpreter
load_interpreter(open({model!r}, "rb").read(), 1)
print("loaded", file=sys.stderr)
"""


@pytest.mark.parametrize("level, shown", [("2", False), ("0", True)])
def test_the_runtimes_info_line_follows_tensorflows_log_level(tmp_path, level, shown):
    """LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU" (once per process) showed in every latency
    search and benchmark, where TensorFlow's own info lines are off (TF_CPP_MIN_LOG_LEVEL=2 unless -v)."""
    import subprocess

    model = tmp_path / "m.tflite"
    model.write_bytes(_converted("nb201", "none"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", _LOAD_QUIETLY.format(root=root, model=str(model))],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL=level))
    assert done.returncode == 0 and "loaded" in done.stderr, done.stderr[-2000:]
    assert ("XNNPACK delegate" in done.stderr) == shown, done.stderr[-2000:]
