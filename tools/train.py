#!/usr/bin/env python
"""Train one architecture from a config: python tools/train.py CFG [--set section.key=value ...]

The config names the space and architecture string ([space] name, arch), the tfds dataset
([dataset]), the recipe ([train]) and the export formats ([export] format = saved_model, keras,
tflite, one or several; quantize and calibration for tflite). Checkpoints go to
<run dir>/checkpoints, so a killed run resumes where it stopped.
"""

from tfnas.runtime import configure_runtime

# TensorFlow loads after the config is checked (tfnas.cli); Ctrl-C while it starts: one line
configure_runtime(defer_import=True, script=__name__ == "__main__")

from tfnas.cli import exit_with, train_main

if __name__ == "__main__":
    exit_with(train_main())
