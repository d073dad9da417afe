"""tools/bench.py: the argparse front end of perf (flags stay as docs/PERFORMANCE.md quotes them)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "tools", "bench.py")


def load_bench():
    spec = importlib.util.spec_from_file_location("tools_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, expected", [
    (["table"], {}),
    (["siamese"], {"budget": 100, "repeats": 3, "method": "siamese", "jit": "auto"}),
    (["train-step", "--batch", "8"], {"batch": 8, "steps": 30}),
    (["proxies", "--space", "zen", "--proxies", "zen,naswot"], {"space": "zen", "proxies": "zen,naswot", "cells": 50}),
    (["evolution", "--dump-candidates", "f.json"], {"proxy": "zen", "population": 512, "iterations": 300,
                                                    "dump_candidates": "f.json"}),
    (["supernet", "--graph-optimizer", "off"], {"batch": "64,256", "steps": 20, "jit": "false",
                                                "graph_optimizer": "off"}),
])
def test_subcommands_and_their_defaults(argv, expected):
    args = load_bench().parser().parse_args(argv)
    assert args.what == argv[0] and callable(args.run)
    assert {k: getattr(args, k) for k in expected} == expected


def test_table_runs_as_a_script_from_another_folder(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, BENCH, "table"], cwd=str(tmp_path), env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["bench"] == "table" and figures["cells"] == 15625 and figures["load_s"] >= 0
