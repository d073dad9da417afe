#!/usr/bin/env python
"""Speed and memory benchmarks; figures go to docs/PERFORMANCE.md with the machine they came from.

    python tools/bench.py table                       # load time of the shipped NAS-Bench-201 table
    python tools/bench.py siamese [--budget 100] [--repeats 3] [--method siamese|predictor|brp_nas] [--units U]
    python tools/bench.py train-step [--batch 64] [--steps 30]
    python tools/bench.py proxies --space nb201|zen [--proxies synflow,zen,...] [--cells 50]
    python tools/bench.py evolution [--proxy zen] [--population 512] [--iterations 300] [--dump-candidates F]
        [--executor local|process|ray] [--workers N] [--batch K] [--threads T] [--ray-address auto|HOST:PORT]
    python tools/bench.py supernet [--batch 64,256] [--steps 20] [--graph-optimizer auto|on|off]
    python tools/bench.py supernet --space lite [--channels 16] [--blocks 1,1] [--stem-stride 4|1] [--archs 3]
    python tools/bench.py memory [--proxy zen] [--candidates 2000] [--warmup 200] [--every 100]
                                [--release [--release-every N]]
    python tools/bench.py zen-fidelity [--cells 40] [--out F]   # then: perf/torch_reference.py F --zen-values
    python tools/bench.py nag [--node-units 250] [--batch 64] [--steps 20] [--cells 1000] [--jit true|false]
                          [--edges independent|sequential]
    python tools/bench.py nag-supernet [--batch 64] [--steps 5] [--archs 3] [--channels 20] [--layers 11]
    python tools/bench.py executor-overhead [--executor process|ray|local] [--workers 2] [--items 200]
        [--ray-address auto|HOST:PORT]
    python tools/bench.py batch-schedule F [--workers 2,8,64] [--batch 16,64] [--overhead-ms 1.15]
    python tools/bench.py tflite --space nb201|darts [--arch A] [--quantize none,float16,int8] [--threads 1]
                                 [--via frozen,saved_model]
    python tools/bench.py latency-corr [--cells 300] [--seed 0] [--threads 1] [--runs 50] [--cache-dir D]

Each prints one JSON object per measurement (plus a readable line), so results can be pasted
or collected by scripts. The timing code lives in the top-level ``perf`` package.
"""

from tfnas.runtime import stop_quietly_while_starting

if __name__ == "__main__":  # (not when a test imports it)
    stop_quietly_while_starting()  # Ctrl-C before the error boundary (TensorFlow's import): one line, not a traceback

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # `import perf` when run as `python tools/bench.py`

from perf.train_step import DEFAULT_ARCH  # noqa: E402  (after the path fix)
from tfnas.formats import MAX_IMAGE_SIZE  # noqa: E402

SWITCH = {"true": True, "false": False, "auto": None}


def table(args) -> None:
    from perf import table as bench

    bench.run()


def siamese(args) -> None:
    from perf import siamese as bench

    bench.run(method=args.method, budget=args.budget, repeats=args.repeats, jit=args.jit, units=args.units)


def train_step(args) -> None:
    from perf import train_step as bench

    bench.run(arch=args.arch, batch=args.batch, steps=args.steps)


def proxies(args) -> None:
    from perf import proxies as bench

    bench.run(space=args.space, proxies=args.proxies.split(",") if args.proxies else (), cells=args.cells,
              batch=args.batch)


def evolution(args) -> None:
    from perf import evolution as bench

    bench.run(proxy=args.proxy, population=args.population, iterations=args.iterations,
              dump_candidates=args.dump_candidates, executor=args.executor, workers=args.workers,
              batch=args.batch, threads=args.threads, address=args.ray_address)


def executor_overhead(args) -> None:
    from perf import scaling as bench

    bench.run(executor=args.executor, workers=args.workers, items=args.items, address=args.ray_address)


def batch_schedule(args) -> None:
    from perf import schedule as bench

    bench.run(args.dump, workers=[int(w) for w in args.workers.split(",")],
              batches=[int(b) for b in args.batch.split(",")], overhead_ms=args.overhead_ms)


def memory(args) -> None:
    from perf import memory as bench

    bench.run(proxy=args.proxy, population=args.population, candidates=args.candidates, warmup=args.warmup,
              every=args.every, release=args.release, release_every=args.release_every)


def zen_fidelity(args) -> None:
    from perf import zen_fidelity as bench

    bench.run(cells=args.cells, out=args.out, batch=args.batch)


class _Default(str):
    """A string default argparse hands back as it is, so a handler can tell it from a typed value."""


def supernet(args) -> None:
    from perf.report import emit, machine, rounded
    from perf.supernet import benchmark_controller, benchmark_lite_supernet, benchmark_supernet

    graph_optimizer = {"on": True, "off": False, "auto": None}[args.graph_optimizer]
    if args.space == "lite":
        batch = "64" if isinstance(args.batch, _Default) else args.batch
        for figures in benchmark_lite_supernet(
                batch_sizes=tuple(int(b) for b in batch.split(",")), steps=args.steps, archs=args.archs,
                channels=args.channels, blocks=tuple(int(b) for b in args.blocks.split(",")),
                stem_stride=args.stem_stride, rounds=args.rounds, jit_compile=SWITCH[args.jit],
                graph_optimizer=graph_optimizer, seed=args.seed):
            emit("supernet_lite", **rounded(figures, 4), machine=machine())
        if args.controller_steps:
            emit("slnas_controller", **rounded(benchmark_controller(steps=args.controller_steps, seed=args.seed), 4),
                 machine=machine())
        return
    for figures in benchmark_supernet(batch_sizes=tuple(int(b) for b in args.batch.split(",")), steps=args.steps,
                                      jit_compile=SWITCH[args.jit], graph_optimizer=graph_optimizer):
        emit("supernet", **rounded(figures, 4), machine=machine())


def _int_at_least(low: int, high: int = 2**31 - 1):
    """An integer flag from ``low`` to ``high`` (by default 2**31 - 1, as the config's integers: TensorFlow's shapes
    and NumPy's arrays take no more)."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):  # int() also takes "1_0" and full-width digits
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        value = int(text)
        if value < low or value > high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high:,}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


_count, _nonneg, _pairs = _int_at_least(1), _int_at_least(0), _int_at_least(2)  # rank correlations need 2 values


def _int_list(item):
    def parse(text: str) -> str:
        """A comma-separated list of ``item`` integers (kept as text: handlers split it)."""
        for value in text.split(","):
            item(value.strip())
        return text

    parse.__name__ = "list"
    return parse


_counts, _nonnegs = _int_list(_count), _int_list(_nonneg)


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _one_of(*allowed: str):
    def parse(text: str) -> str:
        items = [item.strip() for item in text.split(",")]
        for i, item in enumerate(items):
            if item not in allowed:
                raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(allowed)}; "
                                                 f"got {item!r}")
            if item in items[:i]:  # (it was measured twice)
                raise argparse.ArgumentTypeError(f"expected each of {', '.join(allowed)} at most once; got {item!r} "
                                                 f"twice")
        return text

    parse.__name__ = "list"
    return parse


def _check_names(args) -> None:
    """The registered names and architectures the flags give: an unknown name or an architecture
    the space cannot decode is one ``error:`` line naming the flag, before any measurement."""
    from tfnas.config import ConfigError
    from tfnas.registry import PROXIES, SPACES, UnknownNameError

    flag = "--proxy" if hasattr(args, "proxy") else "--proxies"
    proxies = [args.proxy] if hasattr(args, "proxy") else [n.strip() for n in getattr(args, "proxies", "").split(",")]
    if proxies == [""]:  # --proxies '' (the default): all of the space's
        proxies = []
    elif "" in proxies:
        raise ConfigError(f"{flag} {args.proxies!r}: an empty name; expected comma-separated proxy names")
    for name in proxies:
        try:
            PROXIES.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"{flag}: {exc}") from None
    if hasattr(args, "proxies"):
        args.proxies = ",".join(proxies)  # (as checked: 'flops, params' is flops and params)
    if args.what in ("tflite", "train-step"):
        from perf.tflite import ARCHS

        space_name = getattr(args, "space", "nb201")
        try:
            space = SPACES.get(space_name)()
        except UnknownNameError as exc:
            raise ConfigError(f"--space: {exc}") from None
        if args.arch is not None and not args.arch.strip():  # (it measured the default architecture)
            raise ConfigError("--arch: empty; give an architecture, or leave the flag out for the default one")
        text = args.arch or ARCHS.get(space_name, "")
        if not text:
            raise ConfigError(f"--arch: space {space_name!r} has no default architecture; give one")
        try:
            arch = space.decode(text)
        except ValueError as exc:
            raise ConfigError(f"--arch: not an architecture of space {space_name!r}: {exc}") from None
        if args.what == "tflite":
            try:  # (the network is built for the images of --input-size)
                space.build(arch, 10, (args.input_size, args.input_size, 3))
            except ValueError as exc:
                raise ConfigError(f"--input-size {args.input_size}: the {space_name} network cannot take "
                                  f"{args.input_size}x{args.input_size} images: {exc}") from None


def _check_ranges(args) -> None:
    """Flags whose bounds depend on each other or on the space: one ``error:`` line naming the flag,
    before any measurement."""
    from tfnas.config import ConfigError

    nb201_cells = 15625
    from tfnas.config.sections import MAX_WORKER_THREADS, MAX_WORKERS

    for flag, key, most in (("--workers", "workers", MAX_WORKERS), ("--threads", "worker_threads", MAX_WORKER_THREADS)):
        value = getattr(args, flag[2:], 0)
        if args.what in ("evolution", "executor-overhead") and isinstance(value, int) and value > most:
            raise ConfigError(f"{flag} {value}: expected at most {most:,} (as [run] {key})")
    if args.what == "proxies" and args.space == "nb201" and args.cells > nb201_cells:
        raise ConfigError(f"--cells {args.cells}: NAS-Bench-201 has {nb201_cells:,} cells")
    if args.what in ("siamese", "latency-corr"):
        count, flag = (args.budget, "--budget") if args.what == "siamese" else (args.cells, "--cells")
        if count > nb201_cells:
            raise ConfigError(f"{flag} {count}: NAS-Bench-201 has {nb201_cells:,} cells")
    if args.what == "memory":
        if args.warmup >= args.candidates:
            raise ConfigError(f"--warmup {args.warmup}: expected fewer than --candidates {args.candidates}")
        if args.release_every != 1 and not args.release:
            raise ConfigError(f"--release-every {args.release_every}: applies with --release only")
    if args.what == "zen-fidelity":
        if not args.out:
            raise ConfigError("--out: expected a file name for the JSON results, got nothing")
        _check_writable("--out", args.out)
    if args.what == "latency-corr" and args.cache_dir:
        from tfnas.compare import check_writable_folder

        check_writable_folder("--cache-dir", args.cache_dir)  # before the measurement, not after it
    if args.what == "evolution" and args.dump_candidates:
        if args.batch != 1:  # a batched search scores children on the evaluator that times nothing
            raise ConfigError(f"--dump-candidates: records the candidates of a --batch 1 search only; got --batch "
                              f"{args.batch}")
        _check_writable("--dump-candidates", args.dump_candidates)


def _check_writable(flag: str, path: str) -> None:
    """A results file can be written: before the measurement, not after it (exit 4 where it cannot)."""
    from tfnas.compare import UnwritablePathError
    from tfnas.config import ConfigError

    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: is a folder; expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UnwritablePathError(f"{flag} {path}: cannot write into {folder} (missing, or not writable)")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """A subcommand's help: every flag with its default, unless that is empty or off."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == "":  # (0 is a default)
            return action.help or ""
        return super()._get_help_string(action) or ""


def _sub(sub: Any, name: str, help: str, run: Any) -> argparse.ArgumentParser:
    s = sub.add_parser(name, help=help, description=help, formatter_class=_Help)
    s.set_defaults(run=run)
    return s


_RAY_ADDRESS = "with --executor ray: the Ray cluster ([run] ray_address; local: a private instance)"


def _check_ray_address(args: Any) -> None:
    """``--ray-address`` with ``--executor ray``, checked as ``[run] ray_address`` is (and, like it, not read by
    another executor)."""
    from tfnas.config import ConfigError
    from tfnas.config.fields import ray_address_problem

    problem = ray_address_problem(args.ray_address) if getattr(args, "executor", "") == "ray" else ""
    if problem:
        raise ConfigError(f"--ray-address: {problem}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True, metavar="BENCHMARK")
    _sub(sub, "table", "load time of the NAS-Bench-201 table shipped with tfnas", table)
    s = _sub(sub, "siamese", "predictor-based sweeps on the NB201 table (CIFAR-100): training and ranking "
                             "throughput and peak memory after each repeat", siamese)
    s.add_argument("--budget", type=_count, default=100, help="queries of each search")
    s.add_argument("--repeats", type=_count, default=3, help="searches, one after another (memory growth shows)")
    s.add_argument("--method", choices=("siamese", "predictor", "brp_nas"), default="siamese",
                   help="the method of cfg/siams_nsam.cfg, cfg/predictor.cfg or cfg/brp_nas.cfg")
    s.add_argument("--units", type=_nonneg, default=0, help="predictor width (0 = the cfg file's)")
    s.add_argument("--jit", choices=("auto", "true", "false"), default="auto", help="XLA for the predictor steps")
    s = _sub(sub, "train-step", "steady-state steps/s of the Trainer's train step on an NB201 network (10 classes, "
                                "32x32), XLA off then on", train_step)
    s.add_argument("--batch", type=_count, default=64, help="images per step")
    s.add_argument("--steps", type=_count, default=30, help="timed steps")
    s.add_argument("--arch", default=DEFAULT_ARCH, help="the NB201 cell")
    s = _sub(sub, "proxies", "seconds per candidate of each zero-shot proxy", proxies)
    s.add_argument("--space", choices=("nb201", "zen"), default="nb201",
                   help="nb201: cells drawn from the table; zen: 1M-parameter, 18-layer Zen networks")
    s.add_argument("--proxies", default="", help="comma-separated proxy names ('': all for the space)")
    s.add_argument("--cells", type=_pairs, default=50, help="candidates scored by each proxy")
    s.add_argument("--batch", type=_count, default=64, help="random inputs per candidate ([proxy] batch_size)")
    s = _sub(sub, "evolution", "iterations/s of a zero-shot evolution in the Zen space (1M parameters, 18 layers)",
             evolution)
    s.add_argument("--proxy", default="zen", help="the proxy that scores children ([proxy] name)")
    s.add_argument("--population", type=_count, default=512, help="[search] population")
    s.add_argument("--iterations", type=_count, default=300, help="[search] iterations")
    s.add_argument("--dump-candidates", default="", metavar="FILE", type=os.path.expanduser,
                   help="write the scored candidates (arch strings, seconds, conv plans) to this JSON file")
    s.add_argument("--executor", choices=("local", "process", "ray"), default="local", help="[run] executor")
    s.add_argument("--workers", type=_nonneg, default=0, help="[run] workers (0 = one per core)")
    s.add_argument("--batch", type=_count, default=1, help="children scored together ([search] batch)")
    s.add_argument("--threads", type=_nonneg, default=0,
                   help="TensorFlow threads per worker (0 = as in this process: results identical to local)")
    s.add_argument("--ray-address", default="local", metavar="local|auto|HOST:PORT", help=_RAY_ADDRESS)
    s = _sub(sub, "executor-overhead", "start-up and per-task overhead of an executor (a job that returns its "
                                       "items, one item per task)", executor_overhead)
    s.add_argument("--executor", choices=("local", "process", "ray"), default="process", help="[run] executor")
    s.add_argument("--workers", type=_nonneg, default=2, help="[run] workers (0 = one per core)")
    s.add_argument("--items", type=_count, default=200, help="timed tasks, after a warm-up batch")
    s.add_argument("--ray-address", default="local", metavar="local|auto|HOST:PORT", help=_RAY_ADDRESS)
    s = _sub(sub, "batch-schedule", "a batched evolution's worker idle time at other worker counts, replayed from "
                                    "the candidate seconds of --dump-candidates", batch_schedule)
    s.add_argument("dump", type=os.path.expanduser, help="a file written by: bench.py evolution --dump-candidates FILE")
    s.add_argument("--workers", type=_counts, default="2,8,64", help="worker counts, comma-separated")
    s.add_argument("--batch", type=_counts, default="16,64", help="[search] batch sizes, comma-separated")
    s.add_argument("--overhead-ms", type=_nonneg_float, default=1.15,
                   help="scheduling cost per task, ms (bench.py executor-overhead; Ray on machine A: 1.15)")
    s = _sub(sub, "memory", "resident memory of cfg/zen_cifar10_1M.cfg's evolution as it scores candidates", memory)
    s.add_argument("--proxy", default="zen", help="the proxy that scores children ([proxy] name)")
    s.add_argument("--population", type=_count, default=512, help="[search] population")
    s.add_argument("--candidates", type=_count, default=2000, help="stop after this many scored candidates")
    s.add_argument("--warmup", type=_count, default=200, help="growth is measured from this candidate on")
    s.add_argument("--every", type=_count, default=100, help="sample the resident memory every this many candidates")
    s.add_argument("--release", action="store_true",
                   help="system malloc and malloc_trim after every candidate instead of TensorFlow's oneDNN allocator")
    s.add_argument("--release-every", type=_count, default=1,
                   help="with --release: malloc_trim after every this many candidates")
    s = _sub(sub, "zen-fidelity", "Zen in both BN-variance forms on Zen candidates, written for "
                                  "perf/torch_reference.py FILE --zen-values", zen_fidelity)
    s.add_argument("--cells", type=_pairs, default=40, help="Zen-space candidates (in-budget 1M-parameter networks)")
    s.add_argument("--batch", type=_count, default=64, help="random inputs per candidate ([proxy] batch_size)")
    s.add_argument("--out", default="zen_fidelity.json", metavar="FILE", type=os.path.expanduser,
                   help="the JSON file written")
    s = _sub(sub, "supernet", "supernet train step vs the standalone network of the same architecture", supernet)
    s.add_argument("--space", choices=("darts", "lite"), default="darts",
                   help="darts: RelativeNAS's supernet; lite: SLNAS's supernet and its StageController")
    s.add_argument("--batch", type=_counts, default=_Default("64,256"),
                   help="comma-separated batch sizes (lite: 64 unless given)")
    s.add_argument("--steps", type=_count, default=20, help="timed steps per side")
    s.add_argument("--archs", type=_count, default=3, help="lite: sampled architectures")
    s.add_argument("--rounds", type=_count, default=2, help="lite: alternating timed blocks of --steps per side")
    s.add_argument("--channels", type=_count, default=16, help="lite: stem channels C (paper's search: 16)")
    s.add_argument("--blocks", type=_nonnegs, default="1,1",
                   help="lite: normal cells per stage (paper's search: 4,4)")
    s.add_argument("--stem-stride", type=int, choices=(1, 4), default=4,
                   help="lite: 4 = search stems, standalone fed H/4 images; 1 = stride-1 stems on both")
    s.add_argument("--controller-steps", type=_nonneg, default=20,
                   help="lite: timed StageController samples and updates (0: skip)")
    s.add_argument("--seed", type=_nonneg, default=0, help="seed of the sampled architectures and weights")
    s.add_argument("--jit", choices=("auto", "true", "false"), default="false", help="XLA for the steps")
    s.add_argument("--graph-optimizer", choices=("auto", "on", "off"), default="auto",
                   help="Grappler for the supernet steps (auto: on with a GPU, off on CPU)")
    s = _sub(sub, "nag", "NAG GAN and likelihood training steps/s, and the generation of --cells NB201 cells", nag)
    s.add_argument("--node-units", type=_count, default=250, help="generator/discriminator node width (NAG: 250)")
    s.add_argument("--batch", type=_count, default=64, help="cells per training step")
    s.add_argument("--steps", type=_count, default=20, help="timed training steps")
    s.add_argument("--cells", type=_count, default=1000, help="cells generated (timed)")
    s.add_argument("--jit", choices=("true", "false"), default="false", help="XLA for the GAN steps")
    s.add_argument("--edges", choices=("independent", "sequential"), default="independent",
                   help="how a new node decides its edges (NAG: independent; cfg/nag_nb201.cfg: sequential)")
    s = _sub(sub, "nag-supernet", "NAG's single-path supernet train step vs the standalone network", nag_supernet)
    s.add_argument("--batch", type=_count, default=64, help="images per step")
    s.add_argument("--steps", type=_count, default=5, help="timed steps per side")
    s.add_argument("--archs", type=_count, default=3, help="sampled cell pairs")
    s.add_argument("--channels", type=_count, default=20, help="C (NAG's supernet: 20)")
    s.add_argument("--layers", type=_count, default=11, help="cells (NAG's supernet: 11)")
    s.add_argument("--jit", choices=("true", "false"), default="false", help="XLA for the steps")
    s = _sub(sub, "tflite", "TFLite conversion time, file size and LiteRT batch-1 latency per quantization", tflite)
    s.add_argument("--space", default="nb201", help="a registered space")
    s.add_argument("--arch", default=None,
                   help="the architecture (none: NB201's best CIFAR-100 cell; darts: the RelativeNAS cell)")
    s.add_argument("--quantize", type=_one_of("none", "float16", "int8"), default="none,float16,int8",
                   help="TFLite models, comma-separated: none (float32), float16, int8")
    s.add_argument("--input-size", type=_int_at_least(1, MAX_IMAGE_SIZE), default=32, help="image height and width")
    s.add_argument("--runs", type=_count, default=100, help="timed batch-1 runs (median)")
    s.add_argument("--threads", type=_count, default=1, help="LiteRT interpreter threads")
    s.add_argument("--via", type=_one_of("saved_model", "frozen"), default="frozen",
                   help="conversion routes, comma-separated: frozen (the exports' route up to 1 GiB of weights), "
                        "saved_model")
    s = _sub(sub, "latency-corr", "measured LiteRT latency of NB201 cells vs the table's device latencies "
                                  "(Spearman)", latency_corr)
    s.add_argument("--cells", type=_pairs, default=300, help="seeded sample of NB201 cells")
    s.add_argument("--seed", type=_nonneg, default=0, help="seed of the sample")
    s.add_argument("--threads", type=_count, default=1, help="LiteRT interpreter threads")
    s.add_argument("--runs", type=_count, default=50, help="timed runs per cell (median)")
    s.add_argument("--warmup", type=_nonneg, default=5, help="untimed runs per cell")
    s.add_argument("--cache-dir", default="latency_cache", type=os.path.expanduser,
                   help="measured cells are kept here ('' = no cache)")
    s.add_argument("--every", type=_count, default=10, help="progress line every this many cells")
    return p


def nag(args) -> None:
    from perf import nag as bench

    bench.run(node_units=args.node_units, batch=args.batch, steps=args.steps, cells=args.cells,
              jit=args.jit == "true", edges=args.edges)


def nag_supernet(args) -> None:
    from perf import nag as bench

    bench.supernet(batch=args.batch, steps=args.steps, archs=args.archs, channels=args.channels, layers=args.layers,
                   jit=args.jit == "true")


def tflite(args) -> None:
    from perf import tflite as bench

    bench.run(space=args.space, arch=args.arch or "", quantize=args.quantize.split(","), input_size=args.input_size,
              runs=args.runs, threads=args.threads, via=args.via.split(","))


def latency_corr(args) -> None:
    from perf import latency_corr as bench

    bench.run(cells=args.cells, seed=args.seed, threads=args.threads, runs=args.runs, warmup=args.warmup,
              cache_dir=args.cache_dir, every=args.every)


def main(argv=None) -> int:
    """Runs one benchmark; bad flags are one ``error:`` line (the command line's error boundary,
    :func:`tfnas.cli.run_guarded`), as are unwritable output files."""
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfnas.evaluation.gpus import share_gpus_with_workers
    from tfnas.runtime import configure_runtime

    share_gpus_with_workers(getattr(args, "executor", "local"))  # as the command line does

    configure_runtime([])  # measure what tools/train_eval.py runs with; TensorFlow's start-up lines kept quiet
    from tfnas.cli import run_guarded

    def measure() -> int:
        from tfnas.config import ConfigError
        from tfnas.evaluation.executors import RayAddressError

        _check_ranges(args)
        _check_names(args)
        _check_ray_address(args)
        try:
            args.run(args)
        except RayAddressError as exc:  # no Ray head at --ray-address is a bad flag, said as the flag
            if exc.address == "local":  # a private instance that failed to start
                raise
            said = exc.said_as(f"--ray-address {args.ray_address}")
            raise ConfigError(said.replace("ray_address = local", "--ray-address local")) from None
        return 0

    return run_guarded(measure, verbose=False, interrupted="interrupted: the figures printed so far are complete")


if __name__ == "__main__":
    from tfnas.cli import exit_with

    exit_with(main())
