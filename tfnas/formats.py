"""What tfnas exports, as plain names: the command line and the config check them without
importing TensorFlow (:mod:`tfnas.train.export` and :mod:`tfnas.train.tflite` use them too)."""

#: ``[export] format`` / ``tools/export.py --format``: a SavedModel folder, a ``.keras`` file, a ``.tflite`` file.
FORMATS = ("saved_model", "keras", "tflite")

#: TFLite quantizations: float32 weights, float16 weights, full-integer int8 (calibrated).
QUANTIZATIONS = ("none", "float16", "int8")
