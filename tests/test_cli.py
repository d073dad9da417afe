"""tfnas.runtime: TensorFlow runtime defaults, set by an explicit call before TensorFlow loads (the user's values win)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ("import os, sys; {pre}from tfnas.runtime import set_runtime_defaults; set_runtime_defaults(); "
         "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)")


def _probe(pre: str = "", **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(pre=pre)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**clean, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split("\n")[-2].strip()


def test_onednn_on_by_default_without_importing_tensorflow():
    assert _probe() == "1 False"


def test_user_setting_wins():
    assert _probe(TF_ENABLE_ONEDNN_OPTS="0") == "0 False"


def test_nothing_set_once_tensorflow_is_loaded():
    assert _probe("import tensorflow; ") == "None True"


def test_importing_the_cli_sets_nothing():
    code = "import os, tfnas.cli; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=clean)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2].strip() == "None"


def test_rays_colour_codes_are_off_where_standard_output_is_no_terminal():
    """Ray's "(raylet) A worker died ..." line reached log files as "^[[33m(raylet)^[[0m ..."."""
    code = "from tfnas.runtime import set_runtime_defaults; set_runtime_defaults(); import os; " \
           "print(os.environ.get('RAY_COLOR_PREFIX'))"
    clean = {k: v for k, v in os.environ.items() if k != "RAY_COLOR_PREFIX"}
    for env, expected in (({}, "0"), ({"RAY_COLOR_PREFIX": "1"}, "1")):  # (captured: no terminal) the user's wins
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**clean, **env})
        assert proc.returncode == 0 and proc.stdout.strip() == expected, proc.stderr[-2000:]
