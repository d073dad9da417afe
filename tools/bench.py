#!/usr/bin/env python
"""Speed and memory benchmarks; figures go to docs/PERFORMANCE.md with the machine they came from.

    python tools/bench.py table                       # load time of the shipped NAS-Bench-201 table
    python tools/bench.py siamese [--budget 100] [--repeats 3] [--method siamese|predictor]
    python tools/bench.py train-step [--batch 64] [--steps 30]
    python tools/bench.py proxies --space nb201|zen [--proxies synflow,zen,...] [--cells 100]
    python tools/bench.py evolution [--proxy zen] [--population 512] [--iterations 300] [--dump-candidates F]
    python tools/bench.py supernet [--batch 64,256] [--steps 20] [--graph-optimizer auto|on|off]

Each prints one JSON object per measurement (plus a readable line), so results can be pasted
or collected by scripts.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time


def machine() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {len(gpus)} GPU(s), TF {tf.__version__}"


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(name: str, **figures) -> None:
    print(json.dumps({"bench": name, **figures}))


def bench_table(args) -> None:
    start = time.perf_counter()
    from tfnas.benchmarks.nb201_data import load_arrays

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    arrays = load_arrays()
    load_s = time.perf_counter() - start
    emit("table", load_s=round(load_s, 4), import_s=round(import_s, 4), cells=int(arrays["ops"].shape[0]))


def bench_siamese(args) -> None:
    import numpy as np

    from tfnas.config import load_config
    from tfnas.driver import build_space
    from tfnas.registry import BENCHMARKS, METHODS

    name = args.method
    cfg = load_config(os.path.join("cfg", "siams_nsam.cfg" if name == "siamese" else "predictor.cfg"),
                      [f"predictor.jit_compile={args.jit}"])
    space = build_space(cfg)
    benchmark = BENCHMARKS.get("nb201")()
    method = METHODS.get(name).from_config(cfg, space)
    steps = cfg.predictor.epochs * max(args.budget // cfg.predictor.batch_size, 1)
    rss = []
    for repeat in range(args.repeats):
        session = benchmark.session("cifar100", args.budget)
        start = time.perf_counter()
        result = method.run(session, args.budget, np.random.default_rng(repeat))
        wall = time.perf_counter() - start
        rss.append(peak_rss_mb())
        truth = benchmark.ground_truth("cifar100")
        emit(f"{name}-run", budget=args.budget, repeat=repeat, wall_s=round(wall, 2),
             train_s=result.extra["train_s"], rank_s=result.extra["rank_s"],
             train_steps_per_s=round(steps / result.extra["train_s"], 1),
             cells_ranked_per_s=round(len(truth) / max(result.extra["rank_s"], 1e-9), 0),
             queries=session.queries, found_acc=round(float(truth[result.best_index]), 2),
             peak_rss_mb=round(rss[-1], 1))
    emit(f"{name}-memory", peak_rss_first_mb=round(rss[0], 1), peak_rss_last_mb=round(rss[-1], 1),
         growth_mb=round(rss[-1] - rss[0], 1), machine=machine())


def bench_train_step(args) -> None:
    from tfnas.spaces.nb201 import Nb201Space
    from tfnas.train.bench import benchmark_train_step

    space = Nb201Space()
    arch = space.decode(args.arch)
    for jit in (False, True):
        figures = benchmark_train_step(lambda: space.build(arch, 10, (32, 32, 3)), batch_size=args.batch,
                                       jit_compile=jit, steps=args.steps)
        figures = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()}
        emit("train-step", **{"network": "nb201", "arch": args.arch, "batch": args.batch, "jit_compile": jit,
                              **figures, "machine": machine()})


def bench_proxies(args) -> None:
    """Seconds per candidate of each proxy: NB201 cells (arch-as-tensor path) or 1M Zen candidates."""
    import numpy as np

    from tfnas.proxies.base import get_proxy
    from tfnas.registry import SPACES

    if args.space == "nb201":
        space = SPACES.get("nb201")()
        shape, classes = (32, 32, 3), 100
        rng = np.random.default_rng(0)
        archs = [space.from_index(int(i)) for i in rng.choice(space.size, args.cells, replace=False)]
    else:
        from tfnas.methods.evolution import EvolutionSearch, Limits

        space = SPACES.get("zen")()
        shape, classes = (32, 32, 3), 10
        evo = EvolutionSearch(space, get_proxy("params"), proxy_name="params", population=64, iterations=1,
                              limits=Limits(max_params=1e6, max_layers=18))
        rng, archs, parent = np.random.default_rng(0), [], space.start_arch
        while len(archs) < args.cells:  # a random walk of in-budget candidates, as evolution sees them
            child = space.split_long_blocks(space.mutate(space.mutate(parent, rng), rng))
            if not evo.reject_reason(child):
                archs.append(child)
                parent = child
    names = args.proxies.split(",") if args.proxies else (
        ["synflow", "grad_norm", "snip", "naswot", "jacob_cov", "te_nas", "zen", "flops", "params", "random"]
        if args.space == "nb201" else ["zen", "incorporated_s", "incorporated_l", "synflow", "naswot",
                                       "grad_norm", "params", "random"])
    for name in names:
        proxy = get_proxy(name)
        srng = np.random.default_rng(1)
        try:
            start = time.perf_counter()
            proxy.score_arch(space, archs[0], num_classes=classes, input_shape=shape, batch_size=args.batch, rng=srng)
            first = time.perf_counter() - start
            times = []
            for arch in archs[1:]:
                start = time.perf_counter()
                proxy.score_arch(space, arch, num_classes=classes, input_shape=shape, batch_size=args.batch, rng=srng)
                times.append(time.perf_counter() - start)
        except (TypeError, ValueError) as exc:
            emit("proxy", space=args.space, proxy=name, error=str(exc))
            continue
        emit("proxy", space=args.space, proxy=name, batch=args.batch, candidates=len(times), first_s=round(first, 3),
             median_s=round(float(np.median(times)), 4), mean_s=round(float(np.mean(times)), 4),
             per_s=round(len(times) / sum(times), 2), machine=machine())


def bench_evolution(args) -> None:
    import tempfile

    import numpy as np

    from tfnas.methods.base import SearchContext
    from tfnas.methods.evolution import EvolutionSearch, Limits, ProxyEvaluator
    from tfnas.proxies.base import get_proxy
    from tfnas.registry import SPACES
    from tfnas.spaces.zen_fast import conv_plan

    space = SPACES.get("zen")()
    filt = args.proxy.startswith("incorporated")
    scored = []  # (arch string, seconds) of every scored candidate, for --dump-candidates

    class TimedEvaluator(ProxyEvaluator):
        def evaluate(self, archs):
            start = time.perf_counter()
            scores = super().evaluate(archs)
            scored.extend((space.encode(a), (time.perf_counter() - start) / len(archs)) for a in archs)
            return scores

    method = EvolutionSearch(space, get_proxy(args.proxy), proxy_name=args.proxy, population=args.population,
                             iterations=args.iterations, limits=Limits(max_params=1e6, max_layers=18,
                                                                       effectiveness_filter=filt),
                             record_every=max(args.iterations // 5, 1), batch_size=64)
    method.evaluator_cls = TimedEvaluator
    with tempfile.TemporaryDirectory() as tmp:
        ctx = SearchContext(run_dir=tmp, state_dir=tmp, seed=0, rng=np.random.default_rng(0), progress=False,
                            log=lambda row: None)
        start = time.perf_counter()
        outcome = method.search(ctx)
        wall = time.perf_counter() - start
    if args.dump_candidates:
        # The scored candidates as convolution plans of their residual-free networks
        # (cin, cout, kernel, stride, depthwise), for timing the same networks elsewhere
        # (benchmarks/torch_reference.py).
        plans = [[[c.cin, c.cout, c.kernel, c.stride, int(c.depthwise)] for c in conv_plan(space.decode(a))]
                 for a, _ in scored]
        with open(args.dump_candidates, "w", encoding="utf-8") as fh:
            json.dump({"proxy": args.proxy, "resolution": space.resolution, "archs": [a for a, _ in scored],
                       "seconds": [t for _, t in scored], "plans": plans}, fh)
    times = [t for _, t in scored]
    emit("evolution", proxy=args.proxy, population=args.population, iterations=args.iterations,
         wall_s=round(wall, 2), iterations_per_s=round(args.iterations / wall, 2),
         scored=outcome.extra["scored"], scored_per_s=round(outcome.extra["scored"] / wall, 2),
         median_score_s=round(float(np.median(times)), 4) if times else None,
         best_params=outcome.extra["params"], peak_rss_mb=round(peak_rss_mb(), 1), machine=machine())


def bench_supernet(args) -> None:
    from tfnas.spaces.darts_supernet import benchmark_supernet

    jit = {"true": True, "false": False, "auto": None}[args.jit]
    for figures in benchmark_supernet(batch_sizes=tuple(int(b) for b in args.batch.split(",")), steps=args.steps,
                                      jit_compile=jit, graph_optimizer={"on": True, "off": False,
                                                                        "auto": None}[args.graph_optimizer]):
        emit("supernet", **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()},
             machine=machine())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("table")
    p = sub.add_parser("siamese")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--method", choices=("siamese", "predictor"), default="siamese")
    p.add_argument("--jit", choices=("auto", "true", "false"), default="auto")
    p = sub.add_parser("train-step")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--arch", default="|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                                     "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    p = sub.add_parser("proxies")
    p.add_argument("--space", choices=("nb201", "zen"), default="nb201")
    p.add_argument("--proxies", default="", help="comma-separated proxy names (default: all for the space)")
    p.add_argument("--cells", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p = sub.add_parser("evolution")
    p.add_argument("--proxy", default="zen")
    p.add_argument("--population", type=int, default=512)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--dump-candidates", default="", metavar="FILE",
                   help="write the scored candidates (arch strings, seconds, conv plans) to this JSON file")
    p = sub.add_parser("supernet")
    p.add_argument("--batch", default="64,256")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--jit", choices=("auto", "true", "false"), default="false")
    p.add_argument("--graph-optimizer", choices=("auto", "on", "off"), default="auto",
                   help="Grappler for the supernet steps (auto: on with a GPU, off on CPU)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfnas.cli import set_runtime_defaults

    set_runtime_defaults()  # measure what tools/train_eval.py runs with
    {"table": bench_table, "siamese": bench_siamese, "train-step": bench_train_step, "proxies": bench_proxies,
     "evolution": bench_evolution, "supernet": bench_supernet}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
