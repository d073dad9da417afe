#!/usr/bin/env python
"""Times the Zen-NAS proxies in PyTorch on the same residual-free networks as tfnas.

The spec's reference figures for the Zen-space proxies come from the PyTorch Zen-NAS code on
its own evolution's candidates; comparing them with tfnas' figures on other candidates mixes
kernel speed with network size. This script removes that: it reads the candidates that
``tools/bench.py evolution --dump-candidates FILE`` scored (as convolution plans of their
residual-free networks) and scores the same networks the way the reference does, on one
thread, so the two per-candidate times compare like for like:

    taskset -c 0 python tools/bench.py evolution --proxy zen --iterations 150 --dump-candidates cands.json
    taskset -c 0 python perf/torch_reference.py cands.json [--proxies zen,naswot,grad_norm,synflow] [--limit 60]

It needs PyTorch (``pip install torch``), which tfnas itself does not use; nothing in the
package or the tests imports this file. The networks are built as the reference builds a
``no_reslink`` MasterNet for scoring: ``conv (no bias) -> BN (training mode, eps 1e-3) -> ReLU``
per convolution, weights N(0, 1); each proxy follows the reference's recipe:

* zen: two forward passes of 64 Gaussian images (clean and ``+ 0.01 * noise``) without
  gradients, ``log`` of the mean absolute feature difference plus the BN log-std terms;
* naswot: ReLU-input codes collected by forward hooks over one batch of 64, the batch
  Jacobian's backward pass as in the reference, ``slogdet`` of the agreement kernel;
* grad_norm: 64 Gaussian images, random labels, N(0, 1) classifier, cross-entropy backward,
  the global norm of the conv and classifier weight gradients;
* synflow: float64 copy with ``|w|`` and no BN, one all-ones image, backward of the summed
  output, ``sum |w * grad|``.

With ``--zen-values`` it reads the file ``tools/bench.py zen-fidelity`` writes instead and
compares values, not times: each network gets the kernels, images and noise that tfnas drew
from the same seed (NumPy, then transposed to PyTorch's layout), BN as the reference's MasterNet
builds it (``eps`` 1e-3, momentum 0.1, fresh ``running_var`` 1), and the reference's Zen formula (the BN
term from ``running_var`` after the clean and the perturbed pass); it prints the rank
correlations of tfnas' ``batch`` and ``running`` forms with these values (perf.zen_fidelity).
"""

import argparse
import json
import time

import numpy as np


def build(torch, plan, resolution):
    layers = []
    for cin, cout, kernel, stride, depthwise in plan:
        conv = torch.nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=cin if depthwise else 1,
                               bias=False)
        torch.nn.init.normal_(conv.weight)
        layers += [conv, torch.nn.BatchNorm2d(cout, eps=1e-3), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).train()


def zen(torch, plan, resolution, batch=64):
    net = build(torch, plan, resolution)
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        x = torch.randn(batch, plan[0][0], resolution, resolution)
        noise = torch.randn_like(x)
        clean = net(x)
        perturbed = net(x + 0.01 * noise)
        delta = torch.sum(torch.abs(clean - perturbed), dim=[1, 2, 3]).mean()
        log_bn = sum(float(torch.log(torch.sqrt(torch.mean(bn.running_var)))) for bn in bns)
    return float(torch.log(delta)) + log_bn


def zen_same_draws(torch, plan, resolution, seed, batch=64, gamma=0.01):
    """The reference Zen of ``plan`` with the kernels, images and noise tfnas draws from ``seed``
    (:func:`tfnas.proxies.fastpaths.zen.zen_score_arch`: kernels in Keras layout, then images,
    then noise, all float32 N(0, 1) from ``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    net = build(torch, plan, resolution)
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for conv, (cin, cout, kernel, stride, depthwise) in zip(convs, plan):
            if depthwise:  # Keras (k, k, C, 1) -> PyTorch (C, 1, k, k)
                w = rng.standard_normal((kernel, kernel, cin, 1), dtype=np.float32).transpose(2, 3, 0, 1)
            else:  # Keras (k, k, cin, cout) -> PyTorch (cout, cin, k, k)
                w = rng.standard_normal((kernel, kernel, cin, cout), dtype=np.float32).transpose(3, 2, 0, 1)
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        shape = (batch, resolution, resolution, plan[0][0])
        x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32).transpose(0, 3, 1, 2).copy())
        noise = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32).transpose(0, 3, 1, 2).copy())
        clean = net(x)
        perturbed = net(x + gamma * noise)
        delta = torch.sum(torch.abs(clean - perturbed), dim=[1, 2, 3]).mean()
        log_bn = sum(float(torch.log(torch.sqrt(torch.mean(bn.running_var)))) for bn in bns)
    return float(torch.log(delta)) + log_bn


def ranks(x):
    """Average ranks (ties share their mean rank)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    for value in np.unique(x):
        tied = x == value
        r[tied] = r[tied].mean()
    return r


def spearman(a, b):
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def kendall(a, b):
    """Kendall's tau-b over all pairs (O(n^2); n is small here)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    da, db = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), 1)
    da, db = da[iu], db[iu]
    return float(np.sum(da * db) / np.sqrt(np.sum(da != 0) * np.sum(db != 0)))


def zen_values(torch, data, limit=0):
    """One ``zen_fidelity_reference`` line: tfnas' two forms against the reference's values."""
    n = limit or len(data["plans"])
    reference = [zen_same_draws(torch, plan, int(data["resolution"]), seed, int(data["batch"]))
                 for plan, seed in zip(data["plans"][:n], data["seeds"][:n])]
    figures = {"bench": "zen_fidelity_reference", "cells": n, "torch": torch.__version__}
    for form in ("batch", "running"):
        ours = data[f"{form}_form"][:n]
        figures[f"spearman_{form}"] = round(spearman(ours, reference), 4)
        figures[f"kendall_{form}"] = round(kendall(ours, reference), 4)
        figures[f"{form}_minus_reference_mean"] = round(float(np.mean(np.subtract(ours, reference))), 3)
        figures[f"{form}_minus_reference_max_abs"] = round(float(np.max(np.abs(np.subtract(ours, reference)))), 3)
    figures["reference"] = [round(v, 4) for v in reference]
    print(json.dumps(figures))


def naswot(torch, plan, resolution, batch=64):
    net = build(torch, plan, resolution)
    kernel = np.zeros((batch, batch))

    def hook(module, inputs, output):
        nonlocal kernel
        codes = (inputs[0].reshape(batch, -1) > 0).float()
        kernel = kernel + (codes @ codes.t()).numpy() + ((1.0 - codes) @ (1.0 - codes.t())).numpy()

    for module in net:
        if isinstance(module, torch.nn.ReLU):
            module.register_forward_hook(hook)
    x = torch.randn(batch, plan[0][0], resolution, resolution, requires_grad=True)
    y = net(x)
    y.backward(torch.ones_like(y))
    return float(np.linalg.slogdet(kernel)[1])


def grad_norm(torch, plan, resolution, batch=64, num_classes=10):
    net = build(torch, plan, resolution)
    head = torch.nn.Linear(plan[-1][1], num_classes)
    torch.nn.init.normal_(head.weight)
    torch.nn.init.zeros_(head.bias)
    x = torch.randn(batch, plan[0][0], resolution, resolution)
    labels = torch.randint(0, num_classes, (batch,))
    logits = head(net(x).mean(dim=[2, 3]))
    torch.nn.functional.cross_entropy(logits, labels).backward()
    weights = [m.weight for m in net if isinstance(m, torch.nn.Conv2d)] + [head.weight]
    with torch.no_grad():
        return float(torch.sqrt(sum(torch.sum(w.grad ** 2) for w in weights)))


def synflow(torch, plan, resolution):
    net = build(torch, plan, resolution).double()
    chain = torch.nn.Sequential(*[m for m in net if not isinstance(m, torch.nn.BatchNorm2d)])
    convs = [m for m in chain if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            conv.weight.abs_()
    out = chain(torch.ones(1, plan[0][0], resolution, resolution, dtype=torch.float64)).mean(dim=[2, 3])
    torch.sum(out).backward()
    with torch.no_grad():
        return float(sum(torch.sum(torch.abs(c.weight * c.weight.grad)) for c in convs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", help="JSON written by tools/bench.py evolution --dump-candidates")
    parser.add_argument("--proxies", default="zen,naswot,synflow")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N candidates (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--zen-values", action="store_true",
                        help="CANDIDATES is a tools/bench.py zen-fidelity file: compare Zen values, not times")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with open(args.candidates, encoding="utf-8") as fh:
        data = json.load(fh)
    if args.zen_values:
        zen_values(torch, data, args.limit)
        return
    plans = data["plans"][: args.limit or None]
    resolution = int(data["resolution"])
    scorers = {"zen": zen, "naswot": naswot, "grad_norm": grad_norm, "synflow": synflow}
    for name in args.proxies.split(","):
        score = scorers[name]
        score(torch, plans[0], resolution)  # warm-up
        times = []
        for plan in plans:
            start = time.perf_counter()
            score(torch, plan, resolution)
            times.append(time.perf_counter() - start)
        print(json.dumps({"bench": "torch_reference", "proxy": name, "candidates": len(plans),
                          "median_s": round(float(np.median(times)), 4), "mean_s": round(float(np.mean(times)), 4),
                          "torch": torch.__version__, "threads": args.threads}))


if __name__ == "__main__":
    main()
