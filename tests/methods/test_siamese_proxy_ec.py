"""``[predictor] ec_source = <proxy>``: a zero-cost score as the estimation code."""

import numpy as np

from tfnas.config import load_config
from tfnas.run.factory import build_ec_factory, build_space
from tfnas.run.sweep import run_sweep


def test_proxy_ec_is_deterministic_per_cell_and_counted_per_run(tmp_path):
    cfg = load_config("cfg/siams_nsam.cfg", ["predictor.ec_source=params"])
    space = build_space(cfg)
    make = build_ec_factory(cfg, space)
    ec_a, ec_b = make(), make()
    first = ec_a([5, 7, 5])
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(ec_b([7]), first[1:2])
    assert ec_a.evals == 2 and ec_b.evals == 1 and ec_a.dim == 1
    from tfnas.proxies.base import get_proxy

    direct = get_proxy("params").score_arch(space, space.from_index(5), num_classes=100, input_shape=(32, 32, 3),
                                            batch_size=64, rng=np.random.default_rng(0))
    assert first[0, 0] == np.float32(direct)


def test_siamese_with_a_proxy_ec_runs_within_budget(tmp_path):
    sets = [f"run.out_dir={tmp_path}", "budget.start=12", "budget.stop=12", "budget.repeats=1",
            "predictor.epochs=8", "predictor.ec_source=params", "search.rank_k=4", "search.final_rank_k=4"]
    (record,) = run_sweep(load_config("cfg/siams_nsam.cfg", sets), progress=False).records
    assert record.queries == 12 and record.ec_evals >= 12
    # the best-weights checks are the accuracies of the cells they queried, in % as the record's own
    checks = record.extra["best_weights_checks"]
    assert checks and all(0.0 <= c <= 100.0 for c in checks)
    from tfnas.registry import BENCHMARKS

    truth = BENCHMARKS.get("nb201")().ground_truth("cifar100")  # in %
    assert all(np.abs(truth - c).min() < 0.01 for c in checks) and max(checks) > 1.0
