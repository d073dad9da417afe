#!/usr/bin/env python
"""Merge tfnas run directories into one table and one plot.

    python tools/compare.py runs/siams_nsam runs/predictor runs/rand [--out runs/compare]

Prints mean ± std per (method, budget) and writes summary.csv and accuracy_vs_budget.png
(mean true accuracy of the found cell ± std vs. budget per method, benchmark optimum dashed).
"""

from tfnas.runtime import configure_runtime

# records, tables and plots: compare never loads TensorFlow; Ctrl-C while it starts: one line
configure_runtime(defer_import=True, script=__name__ == "__main__")

from tfnas.cli import exit_with, compare_main

if __name__ == "__main__":
    exit_with(compare_main())
