#!/usr/bin/env python
"""Times the Zen-NAS reference's own evolution loop on this machine's CPU.

``perf/torch_reference.py`` compares per-candidate scoring on identical networks. This script
times the reference's whole search instead (mutation, splitting, budget checks, building each
``MasterNet`` and scoring it) so that its iterations per second compare with
``tools/bench.py evolution`` on the same settings. It runs ``evolution_search.main`` from a
checkout of the reference code (https://github.com/idstcv/ZenNAS, not shipped with tfnas) with
the arguments of its ``scripts/Zen_NAS_cifar_params1M.sh`` (1M parameters, 18 layers, batch 64,
resolution 32, 100 classes, population 512, its start structure), changing only two things:

* the iteration count (``--iterations``), and
* the device: the reference calls ``model.cuda(gpu)`` unconditionally, so ``torch.nn.Module.cuda``
  is made the identity; with ``--gpu`` unset every other line of the reference already runs on
  the CPU (its proxies build their tensors on ``torch.device('cpu')``).

Its modules also import ``torch._six`` (removed in PyTorch 2.0) in code the search never calls;
a stand-in module lets them load.

``torch.set_num_threads(--threads)`` sets PyTorch's intra-op threads (2 = the whole of a 2-core
machine). The reference seeds nothing; ``--seed`` seeds Python's ``random``, NumPy and PyTorch, and
the script runs itself again with ``PYTHONHASHSEED = --seed`` (the reference's search space
deduplicates candidate blocks through a ``set`` of strings, whose order follows string hashing),
so a run can be repeated::

    git clone https://github.com/idstcv/ZenNAS
    python perf/torch_reference_loop.py ZenNAS --iterations 200 --threads 2

It needs PyTorch (``pip install torch``), which tfnas does not use; nothing in the package or the
tests imports this file. It prints one JSON line: wall seconds, iterations per second, the number
of candidates the loop scored (those within the budgets), how many of them failed (the reference
catches any error while scoring and records -9999) and the best score.
"""

import argparse
import collections.abc
import json
import os
import platform
import random
import sys
import tempfile
import time
import types

# the start structure of the reference's scripts/Zen_NAS_cifar_params1M.sh
START = ("SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)SuperResK3K3(16,32,2,16,1)"
         "SuperResK3K3(32,64,2,32,1)SuperResK3K3(64,64,2,32,1)SuperConvK1BNRELU(64,128,1,1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", help="a checkout of https://github.com/idstcv/ZenNAS")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--population", type=int, default=512)
    parser.add_argument("--score", default="Zen", help="the reference's --zero_shot_score (Zen, NASWOT, ...)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    script = os.path.join(os.path.abspath(args.reference), "evolution_search.py")
    if not os.path.isfile(script):
        parser.error(f"{args.reference}: no evolution_search.py (expected a checkout of idstcv/ZenNAS)")
    if os.environ.get("PYTHONHASHSEED") != str(args.seed):  # string hashing orders the reference's sets
        os.environ["PYTHONHASHSEED"] = str(args.seed)
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.nn.Module.cuda = lambda self, *a, **k: self  # the reference's only unconditional GPU call
    # the torch._six stand-in (module docstring)
    sys.modules.setdefault("torch._six", types.SimpleNamespace(container_abcs=collections.abc, string_classes=(str,)))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    sys.path.insert(0, os.path.dirname(script))
    import evolution_search  # the reference's module, from the checkout

    scored = []  # every score the loop computed (-9999: the reference caught an error)
    score_one = evolution_search.compute_nas_score

    def counted(*a, **k):
        scored.append(score_one(*a, **k))
        return scored[-1]

    evolution_search.compute_nas_score = counted
    with tempfile.TemporaryDirectory() as tmp:
        start_txt = os.path.join(tmp, "init_plainnet.txt")
        with open(start_txt, "w", encoding="utf-8") as fh:
            fh.write(START)
        argv = [script, "--zero_shot_score", args.score,
                "--search_space", os.path.join(os.path.dirname(script), "SearchSpace", "search_space_XXBL.py"),
                "--budget_model_size", "1e6", "--max_layers", "18", "--batch_size", "64",
                "--input_image_size", "32", "--plainnet_struct_txt", start_txt, "--num_classes", "100",
                "--evolution_max_iter", str(args.iterations), "--population_size", str(args.population),
                "--save_dir", tmp]
        options = evolution_search.parse_cmd_options(argv)
        begin = time.perf_counter()
        evolution_search.main(options, argv)
        wall = time.perf_counter() - begin
    failed = sum(1 for v in scored if v == -9999)
    if failed:
        print(f"warning: {failed} of {len(scored)} candidates failed to score in the reference", file=sys.stderr)
    good = [float(v) for v in scored if v != -9999]
    print(json.dumps({"bench": "torch_reference_loop", "score": args.score, "population": args.population,
                      "iterations": args.iterations, "threads": args.threads, "wall_s": round(wall, 2),
                      "iterations_per_s": round(args.iterations / wall, 2), "scored": len(scored),
                      "failed": failed, "best_score": round(max(good), 4) if good else None, "torch": torch.__version__,
                      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
