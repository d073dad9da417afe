#!/usr/bin/env python
"""Speed and memory benchmarks; figures go to docs/PERFORMANCE.md with the machine they came from.

    python tools/bench.py table                       # load time of the shipped NAS-Bench-201 table
    python tools/bench.py siamese [--budget 100] [--repeats 3] [--method siamese|predictor]
    python tools/bench.py train-step [--batch 64] [--steps 30]
    python tools/bench.py proxies --space nb201|zen [--proxies synflow,zen,...] [--cells 100]
    python tools/bench.py evolution [--proxy zen] [--population 512] [--iterations 300] [--dump-candidates F]
    python tools/bench.py supernet [--batch 64,256] [--steps 20] [--graph-optimizer auto|on|off]

Each prints one JSON object per measurement (plus a readable line), so results can be pasted
or collected by scripts. The timing code lives in the top-level ``perf`` package.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # `import perf` when run as `python tools/bench.py`

from perf.train_step import DEFAULT_ARCH  # noqa: E402  (after the path fix)

SWITCH = {"true": True, "false": False, "auto": None}


def table(args) -> None:
    from perf import table as bench

    bench.run()


def siamese(args) -> None:
    from perf import siamese as bench

    bench.run(method=args.method, budget=args.budget, repeats=args.repeats, jit=args.jit)


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
              dump_candidates=args.dump_candidates)


def supernet(args) -> None:
    from perf.report import emit, machine, rounded
    from perf.supernet import benchmark_supernet

    graph_optimizer = {"on": True, "off": False, "auto": None}[args.graph_optimizer]
    for figures in benchmark_supernet(batch_sizes=tuple(int(b) for b in args.batch.split(",")), steps=args.steps,
                                      jit_compile=SWITCH[args.jit], graph_optimizer=graph_optimizer):
        emit("supernet", **rounded(figures, 4), machine=machine())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("table").set_defaults(run=table)
    s = sub.add_parser("siamese")
    s.add_argument("--budget", type=int, default=100)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--method", choices=("siamese", "predictor"), default="siamese")
    s.add_argument("--jit", choices=("auto", "true", "false"), default="auto")
    s.set_defaults(run=siamese)
    s = sub.add_parser("train-step")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--steps", type=int, default=30)
    s.add_argument("--arch", default=DEFAULT_ARCH)
    s.set_defaults(run=train_step)
    s = sub.add_parser("proxies")
    s.add_argument("--space", choices=("nb201", "zen"), default="nb201")
    s.add_argument("--proxies", default="", help="comma-separated proxy names (default: all for the space)")
    s.add_argument("--cells", type=int, default=50)
    s.add_argument("--batch", type=int, default=64)
    s.set_defaults(run=proxies)
    s = sub.add_parser("evolution")
    s.add_argument("--proxy", default="zen")
    s.add_argument("--population", type=int, default=512)
    s.add_argument("--iterations", type=int, default=300)
    s.add_argument("--dump-candidates", default="", metavar="FILE",
                   help="write the scored candidates (arch strings, seconds, conv plans) to this JSON file")
    s.set_defaults(run=evolution)
    s = sub.add_parser("supernet")
    s.add_argument("--batch", default="64,256")
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--jit", choices=("auto", "true", "false"), default="false")
    s.add_argument("--graph-optimizer", choices=("auto", "on", "off"), default="auto",
                   help="Grappler for the supernet steps (auto: on with a GPU, off on CPU)")
    s.set_defaults(run=supernet)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfnas.runtime import set_runtime_defaults

    set_runtime_defaults()  # measure what tools/train_eval.py runs with
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
