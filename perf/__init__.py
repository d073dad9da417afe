"""Timing code behind ``tools/bench.py``: one module per benchmark family.

Every figure goes to ``docs/PERFORMANCE.md`` with the command and the machine it came from.
Nothing in ``tfnas`` imports this package; it imports ``tfnas`` (and, for
:mod:`perf.torch_reference` only, PyTorch).
"""
