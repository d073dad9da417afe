"""The docstring examples of tfnas run as written (those not marked ``# doctest: +SKIP``).

An example that no test runs goes stale: the NASNet-DAG space's compared its analytic count of
trainable parameters with ``count_params()``, which also counts BatchNorm's moving statistics.
"""

import doctest
import importlib
import os

import pytest

from tests.conftest import ROOT


def modules_with_examples():
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tfnas")):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".py") and ">>> " in open(path, encoding="utf-8").read():
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found.append(module.removesuffix(".__init__"))
    return sorted(found)


MODULES = modules_with_examples()


def test_examples_are_found():
    assert "tfnas.spaces.nasnet_dag.space" in MODULES and len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"
    assert result.attempted > 0, f"{name}: doctest found none of its examples"
