"""Runs a ``tools/*.py`` command in a fresh Python and reports which heavy frameworks it loaded.

``-X importtime`` cannot tell: the tools import TensorFlow with stderr captured (its start-up
lines stay off the console), and the import lines go there too. So the tool runs under
``runpy`` and the wrapper prints what ``sys.modules`` holds when the tool exits.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WRAPPER = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code
print("LOADED:", ",".join(sorted(m for m in ("tensorflow", "keras", "matplotlib", "pandas") if m in sys.modules)))
sys.exit(code)
"""


def run_tool(tool: str, *args: str, timeout: int = 300):
    """``(completed process, set of the frameworks loaded)`` of ``python tools/<tool> args``."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, os.path.join(REPO, "tools", tool), *args], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("LOADED:")]
    assert lines, proc.stderr[-2000:]
    return proc, set(filter(None, lines[-1][len("LOADED:"):].strip().split(",")))
