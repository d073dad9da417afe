#!/usr/bin/env python
"""Run a tfnas experiment from a .cfg file: python tools/train_eval.py cfg/<name>.cfg [--set section.key=value]"""

import sys

from tfnas.runtime import configure_runtime

configure_runtime(defer_import=True)  # TensorFlow loads after the config is checked (tfnas.cli)

from tfnas.cli import train_eval_main

if __name__ == "__main__":
    sys.exit(train_eval_main())
