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
                                                    "dump_candidates": "f.json", "executor": "local", "batch": 1,
                                                    "workers": 0, "threads": 0, "ray_address": "local"}),
    (["executor-overhead"], {"executor": "process", "workers": 2, "items": 200, "ray_address": "local"}),
    (["executor-overhead", "--executor", "ray", "--ray-address", "auto"], {"executor": "ray", "ray_address": "auto"}),
    (["batch-schedule", "f.json"], {"dump": "f.json", "workers": "2,8,64", "batch": "16,64", "overhead_ms": 1.15}),
    (["memory"], {"proxy": "zen", "population": 512, "candidates": 2000, "warmup": 200, "every": 100,
                  "release": False, "release_every": 1}),
    (["memory", "--release", "--release-every", "10"], {"release": True, "release_every": 10}),
    (["zen-fidelity", "--cells", "8"], {"cells": 8, "batch": 64, "out": "zen_fidelity.json"}),
    (["supernet", "--graph-optimizer", "off"], {"batch": "64,256", "steps": 20, "jit": "false",
                                                "graph_optimizer": "off"}),
    (["nag"], {"node_units": 250, "batch": 64, "steps": 20, "cells": 1000, "jit": "false", "edges": "independent"}),
    (["nag", "--edges", "sequential"], {"edges": "sequential"}),
    (["tflite", "--space", "darts"], {"space": "darts", "arch": None, "quantize": "none,float16,int8", "input_size": 32,
                                      "runs": 100, "threads": 1}),
])
def test_subcommands_and_their_defaults(argv, expected):
    args = load_bench().parser().parse_args(argv)
    assert args.what == argv[0] and callable(args.run)
    assert {k: getattr(args, k) for k in expected} == expected


@pytest.mark.parametrize("address", ["nonsense", "localhost:99999", ":6379", "http://x:1"])
def test_a_ray_address_is_checked_as_the_configs_is(address, capsys):
    """`--ray-address nonsense` started Ray and failed 9 s later with "start one with `ray start --head
    --port=nonsense` on ," and exit 5; [run] ray_address = nonsense is refused at once."""
    from tfnas.config import ConfigError

    bench = load_bench()
    for command in ("evolution", "executor-overhead"):
        args = bench.parser().parse_args([command, "--executor", "ray", "--ray-address", address])
        with pytest.raises(ConfigError, match=r"^--ray-address: expected local, auto, HOST:PORT or ray://HOST:PORT "
                                              r"\(a port 1-65535\), got " + repr(address)):
            bench._check_ray_address(args)
        bench._check_ray_address(bench.parser().parse_args([command, "--executor", "process", "--ray-address",
                                                            address]))  # not read there, as in a config


def test_no_ray_head_at_the_ray_address_is_a_bad_flag_named_as_given(tmp_path):
    """It exited 5 with "[run] ray_address = ...", a key the user never wrote; train_eval.py exits 2."""
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, BENCH, "executor-overhead", "--executor", "ray", "--ray-address",
                           f"127.0.0.1:{port}"], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: --ray-address 127.0.0.1:{port}: no Ray head answers there") and "[run]" not in line
    assert line.endswith("or use --ray-address local")


def test_every_benchmark_and_flag_says_what_it_is():
    """Most flags of tools/bench.py had no help text, and most benchmarks no line in --help."""
    import argparse

    parser = load_bench().parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    described = {c.dest for c in sub._choices_actions if c.help}
    assert described == set(sub.choices), set(sub.choices) - described
    for name, command in sub.choices.items():
        silent = [a.dest for a in command._actions if not a.help]
        assert not silent, (name, silent)
        if name == "evolution":
            text = command.format_help()
            assert "(default: 512)" in text and "(default: )" not in text and "(default: False)" not in text
        if name == "supernet":
            assert "(default: 0)" in command.format_help()  # --seed


def test_table_runs_as_a_script_from_another_folder(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, BENCH, "table"], cwd=str(tmp_path), env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["bench"] == "table" and figures["cells"] == 15625 and figures["load_s"] >= 0


def test_supernet_space_lite_wiring(monkeypatch, capsys):
    """`supernet --space lite` hands its flags to perf.supernet and prints one JSON line per figure
    (the benchmarks are stubbed: tracing a supernet takes minutes on a CPU)."""
    bench = load_bench()  # puts the repository root on sys.path for `perf`
    import perf.report
    import perf.supernet

    calls = {}

    def lite(**kwargs):
        calls["lite"] = kwargs
        return [{"batch_size": b, "ratio": 1.23456} for b in kwargs["batch_sizes"]]

    def controller(**kwargs):
        calls["controller"] = kwargs
        return {"sample_per_s": 10.0, "update_per_s": 5.0}

    def darts(**kwargs):
        calls["darts"] = kwargs
        return [{"batch_size": b} for b in kwargs["batch_sizes"]]

    monkeypatch.setattr(perf.supernet, "benchmark_lite_supernet", lite)
    monkeypatch.setattr(perf.supernet, "benchmark_controller", controller)
    monkeypatch.setattr(perf.supernet, "benchmark_supernet", darts)
    monkeypatch.setattr(perf.report, "machine", lambda: "test machine")

    args = bench.parser().parse_args(["supernet", "--space", "lite", "--channels", "8", "--blocks", "0,0",
                                      "--steps", "1", "--archs", "1", "--rounds", "1", "--stem-stride", "1",
                                      "--controller-steps", "2"])
    args.run(args)
    assert calls["lite"] == {"batch_sizes": (64,), "steps": 1, "archs": 1, "channels": 8, "blocks": (0, 0),
                             "stem_stride": 1, "rounds": 1, "jit_compile": False, "graph_optimizer": None,
                             "seed": 0}
    assert calls["controller"] == {"steps": 2, "seed": 0} and "darts" not in calls
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["bench"] for line in lines] == ["supernet_lite", "slnas_controller"]
    assert lines[0]["ratio"] == 1.2346 and lines[0]["machine"] == "test machine"

    calls.clear()
    args = bench.parser().parse_args(["supernet", "--space", "lite", "--batch", "8,16", "--controller-steps", "0"])
    args.run(args)
    assert calls["lite"]["batch_sizes"] == (8, 16) and calls["lite"]["blocks"] == (1, 1)
    assert calls["lite"]["stem_stride"] == 4 and "controller" not in calls

    calls.clear()
    args = bench.parser().parse_args(["supernet"])  # darts stays the default, with its batch sizes
    assert args.space == "darts"
    args.run(args)
    assert set(calls) == {"darts"} and calls["darts"]["batch_sizes"] == (64, 256)


@pytest.mark.slow  # ~75 s on 2 cores
def test_nag_bench_measures_training_and_generation(capsys):
    load_bench().main(["nag", "--node-units", "8", "--batch", "8", "--steps", "2", "--cells", "20"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    train, pre, gen = [next(x for x in lines if x["bench"] == b) for b in ("nag_train", "nag_pretrain", "nag_generate")]
    assert pre["steps"] == 2 and pre["steps_per_s"] > 0
    assert train["steps"] == 2 and train["steps_per_s"] > 0 and train["node_units"] == 8
    assert gen["cells"] == 20 and gen["generate_s"] > 0 and 0.0 <= gen["valid_untrained"] <= 1.0


def test_executor_overhead_bench_runs_on_a_process_pool(capsys):
    load_bench().main(["executor-overhead", "--executor", "process", "--workers", "2", "--items", "6"])
    line = next(json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{"))
    assert line["bench"] == "executor-overhead" and line["workers"] == 2 and line["items"] == 6
    assert line["startup_s"] > 0 and line["ms_per_task"] > 0


@pytest.mark.parametrize("argv, fragment", [
    (["supernet", "--batch", "64,x"], "argument --batch: expected an integer, got 'x'"),
    (["supernet", "--space", "lite", "--blocks", "1,-1"],
     "argument --blocks: expected an integer from 0 to 2,147,483,647, got -1"),
    (["tflite", "--quantize", "int4"], "argument --quantize: expected a comma-separated list of none, float16, int8"),
    (["tflite", "--quantize", "int8,none,int8"], "argument --quantize: expected each of none, float16, int8 at most "
                                                 "once; got 'int8' twice"),
    (["tflite", "--via", "saved_model,onnx"], "argument --via: expected a comma-separated list of saved_model, frozen"),
    (["proxies", "--cells", "1"], "argument --cells: expected an integer from 2 to 2,147,483,647, got 1"),
    (["zen-fidelity", "--cells", "1"], "argument --cells: expected an integer from 2 to 2,147,483,647, got 1"),
    (["train-step", "--batch", "1" + "0" * 30], "argument --batch: expected an integer from 1 to 2,147,483,647, got 1"),
    (["tflite", "--input-size", "5000"], "argument --input-size: expected an integer from 1 to 4,096, got 5000"),
    (["siamese", "--units", "2147483648"], "argument --units: expected an integer from 0 to 2,147,483,647"),
])
def test_list_flags_are_checked_by_the_parser(argv, fragment, capsys):
    with pytest.raises(SystemExit) as info:
        load_bench().parser().parse_args(argv)
    assert info.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["evolution", "--proxy", "zenn"], "error: --proxy: unknown proxy 'zenn'; registered proxies: "),
    (["proxies", "--proxies", "synflow,bogus"], "error: --proxies: unknown proxy 'bogus'"),
    (["tflite", "--space", "nope"], "error: --space: unknown space 'nope'; registered spaces: "),
    (["tflite", "--space", "darts", "--arch", "junk"], "error: --arch: not an architecture of space 'darts': "),
    (["tflite", "--arch", " "], "error: --arch: empty; give an architecture, or leave the flag out"),  # (the default)
    (["train-step", "--arch", ""], "error: --arch: empty; give an architecture"),
    (["train-step", "--arch", "junk"], "error: --arch: not an architecture of space 'nb201': "),
    (["proxies", "--cells", "20000"], "error: --cells 20000: NAS-Bench-201 has 15,625 cells"),
    (["siamese", "--budget", "20000", "--repeats", "1"], "error: --budget 20000: NAS-Bench-201 has 15,625 cells"),
    (["memory", "--candidates", "10", "--warmup", "5000"], "error: --warmup 5000: expected fewer than --candidates 10"),
    (["memory", "--candidates", "10", "--warmup", "5", "--release-every", "3"],
     "error: --release-every 3: applies with --release only"),
    (["zen-fidelity", "--out", ""], "error: --out: expected a file name"),
    (["evolution", "--batch", "2", "--dump-candidates", "d.json"],
     "error: --dump-candidates: records the candidates of a --batch 1 search only; got --batch 2"),
    (["evolution", "--dump-candidates", "/"], "error: --dump-candidates /: is a folder"),
    (["tflite", "--input-size", "30", "--quantize", "none"], "error: --input-size 30: the nb201 network cannot take"),
    (["proxies", "--proxies", "synflow, ,zen"], "error: --proxies 'synflow, ,zen': an empty name"),
    (["proxies", "--proxies", ","], "error: --proxies ',': an empty name"),
    (["evolution", "--workers", "2147483647"], "error: --workers 2147483647: expected at most 65,536"),
])
def test_names_and_architectures_are_one_error_line_before_any_measurement(argv, fragment, capsys):
    assert load_bench().main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(fragment) and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("argv, fragment", [
    (["zen-fidelity", "--out", "/nonexistent-folder/z.json"], "error: --out /nonexistent-folder/z.json: cannot write"),
    (["evolution", "--dump-candidates", "/nonexistent-folder/d.json"],
     "error: --dump-candidates /nonexistent-folder/d.json: cannot write"),
    (["latency-corr", "--cache-dir", "{tmp}/file/cache"], "error: --cache-dir {tmp}/file/cache: cannot be created"),
    (["latency-corr", "--cache-dir", "/proc/tfnas-cache/x"], "error: --cache-dir /proc/tfnas-cache/x: cannot be "
                                                             "created"),  # (where access() says writable)
])
def test_an_output_that_cannot_be_written_is_exit_4_before_any_measurement(argv, fragment, capsys, tmp_path):
    """Exit 4, as for every path that cannot be written (it was 2; --cache-dir failed after the measurement,
    with a line that did not name it)."""
    (tmp_path / "file").write_text("x")
    assert load_bench().main([a.format(tmp=tmp_path) for a in argv]) == 4
    err = capsys.readouterr().err
    assert err.startswith(fragment.format(tmp=tmp_path)) and err.count("\n") == 1 and "Traceback" not in err, err


def write_dump(path, seconds):
    """A --dump-candidates file of Zen architectures whose FLOPs grow with their index."""
    from tfnas.spaces.zen.space import ZenSpace

    space = ZenSpace()
    archs = [f"SuperConvK3BNRELU(3,{8 * (k + 1)},1,1)" for k in range(len(seconds))]
    flops = [space.flops(space.decode(a)) for a in archs]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    path.write_text(json.dumps({"proxy": "zen", "resolution": 32, "archs": archs, "seconds": seconds}))
    return str(path)


def test_batch_schedule_replays_the_dumped_seconds(tmp_path, capsys):
    """One batch of four on two workers: the chunks (one candidate each here, in batch order) end with
    the 6 s candidate started at 1 s, at 7 s; the costliest first end at 6 s (the three others on the
    second worker meanwhile)."""
    dump = write_dump(tmp_path / "d.json", [1.0, 1.0, 1.0, 6.0])
    assert load_bench().main(["batch-schedule", dump, "--workers", "2,4", "--batch", "4", "--overhead-ms", "0"]) == 0
    lines = {(x["workers"], x["policy"]): x for x in map(json.loads, capsys.readouterr().out.splitlines())
             if x["bench"] == "batch-schedule"}
    assert lines[2, "chunks"]["wall_s"] == 7.0 and lines[2, "costliest_first"]["wall_s"] == 6.0
    assert lines[2, "chunks"]["ideal_s"] == 4.5 and lines[2, "costliest_first"]["efficiency"] == 0.75
    assert lines[4, "chunks"]["wall_s"] == lines[4, "costliest_first"]["wall_s"] == 6.0  # a worker each


@pytest.mark.parametrize("content, fragment", [
    ("not json", "not a JSON file"),
    ('{"archs": []}', "with resolution, archs and seconds"),
    ('{"resolution": 32, "archs": ["x"], "seconds": [1, 2]}', "lists of the same, non-zero length"),
    ('{"resolution": 32, "archs": ["SuperConvK3BNRELU(3,8,1,1)"], "seconds": [-1]}', "finite number >= 0"),
    ('{"resolution": 32, "archs": ["junk"], "seconds": [1]}', "expected the JSON object"),
    ('{"resolution": 1e999, "archs": ["SuperConvK3BNRELU(3,8,1,1)"], "seconds": [1]}', "expected the JSON object"),
    ('{"resolution": 32, "archs": ["SuperConvK3BNRELU(3,8,1,1)"], "seconds": [0]}', "add up to 0"),
])
def test_a_file_that_is_not_a_candidate_dump_is_one_error_line(tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert load_bench().main(["batch-schedule", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and fragment in err and err.count("\n") == 1, err
