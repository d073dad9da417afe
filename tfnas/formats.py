"""What tfnas exports, as plain names: the command line and the config check them without
importing TensorFlow (:mod:`tfnas.train.export` and :mod:`tfnas.train.tflite` use them too)."""

#: ``[export] format`` / ``tools/export.py --format``: a SavedModel folder, a ``.keras`` file, a ``.tflite`` file.
FORMATS = ("saved_model", "keras", "tflite")

#: TFLite quantizations: float32 weights, float16 weights, full-integer int8 (calibrated).
QUANTIZATIONS = ("none", "float16", "int8")

#: The largest square image side tfnas builds networks for (``[dataset] image_size``, ``tools/export.py
#: --input-size``): beyond it activations outgrow TensorFlow's 32-bit indexing and memory.
MAX_IMAGE_SIZE = 4096

#: The most classes an exported classifier may have (ImageNet-21k has 21,841).
MAX_CLASSES = 100_000
