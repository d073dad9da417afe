"""The two BN-variance forms of the Zen score against the Zen-NAS reference formula, same draws.

The Zen-NAS paper sums the log-std of each BN's batch variance (``[proxy] zen_bn_variance =
batch``); its code reads each BN's PyTorch ``running_var`` after the clean and the perturbed
training-mode pass (``running``, :mod:`tfnas.proxies.zen`). This writes ``cells`` Zen-space
candidates (the random walk of ``tools/bench.py proxies --space zen``: in-budget 1M-parameter,
<= 18-layer CIFAR networks) with both tfnas scores, candidate ``k`` scored from
``numpy.random.default_rng(k)`` (kernels, then images, then noise, as
:func:`tfnas.proxies.fastpaths.zen.zen_score_arch` draws them):

    python tools/bench.py zen-fidelity --cells 40 --out zen40.json
    python perf/torch_reference.py zen40.json --zen-values      # needs PyTorch

:mod:`perf.torch_reference` then redraws the same kernels, images and noise from the same
seeds, runs each residual-free network the way the reference does (PyTorch BN, momentum 0.1,
training mode, ``running_var`` read after both passes) and prints the rank correlations of
both tfnas forms with the reference's values, so only the formula differs.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from perf.report import emit, machine


def run(cells: int = 40, out: str = "zen_fidelity.json", batch: int = 64) -> Dict[str, Any]:
    """Scores ``cells`` candidates in both forms, writes ``out`` and emits one ``zen_fidelity`` line.

    ``out`` holds ``{"resolution", "batch", "seeds", "archs", "plans", "batch_form",
    "running_form"}`` (plans: ``[cin, cout, kernel, stride, depthwise]`` per convolution, the
    input of :mod:`perf.torch_reference`).
    """
    import numpy as np

    from perf.proxies import candidates
    from tfnas.metrics import kendall, spearman
    from tfnas.proxies.fastpaths.zen import zen_score_arch
    from tfnas.spaces.zen.residual_free import conv_plan

    space, archs, shape, _ = candidates("zen", cells)
    forms = {form: [zen_score_arch(arch, np.random.default_rng(k), batch, shape, bn_variance=form)
                    for k, arch in enumerate(archs)] for form in ("batch", "running")}
    data = {"resolution": int(shape[0]), "batch": int(batch), "seeds": list(range(len(archs))),
            "archs": [space.encode(a) for a in archs],
            "plans": [[[c.cin, c.cout, c.kernel, c.stride, int(c.depthwise)] for c in conv_plan(a)] for a in archs],
            "batch_form": forms["batch"], "running_form": forms["running"]}
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    b, r = np.asarray(forms["batch"]), np.asarray(forms["running"])
    figures = {"cells": len(archs), "batch": batch, "out": out,
               "batch_minus_running_mean": round(float(np.mean(b - r)), 3),
               "spearman_batch_running": round(spearman(b, r), 4), "kendall_batch_running": round(kendall(b, r), 4)}
    emit("zen_fidelity", **figures, machine=machine())
    return figures
