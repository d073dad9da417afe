#!/usr/bin/env python
"""Run a tfnas experiment from a .cfg file: python tools/train_eval.py cfg/<name>.cfg [--set section.key=value]"""

from tfnas.runtime import configure_runtime

# TensorFlow loads after the config is checked (tfnas.cli); Ctrl-C while it starts: one line
configure_runtime(defer_import=True, script=__name__ == "__main__")

from tfnas.cli import exit_with, train_eval_main

if __name__ == "__main__":
    exit_with(train_eval_main())
