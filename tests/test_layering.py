"""The package layering of DESIGN.md, checked with import-linter (contracts in pyproject.toml)."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lint_imports():
    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    return subprocess.run([exe], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_layering_contracts_hold():
    proc = _lint_imports()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout, proc.stdout[-4000:]


def test_nothing_in_the_package_imports_tools_or_perf():
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tfnas")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        stripped = line.strip()
                        if stripped.startswith(("import perf", "from perf", "import tools", "from tools")):
                            offenders.append(f"{os.path.relpath(path, ROOT)}: {stripped}")
    assert not offenders, offenders


def test_modules_stay_small():
    big = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tfnas")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as fh:
                    n = sum(1 for _ in fh)
                if n > 450:
                    big.append(f"{os.path.relpath(path, ROOT)} ({n} lines)")
    assert not big, big
