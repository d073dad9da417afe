import os
import random
import signal
import sys
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: data must come from mocks or generated folders.
os.environ.setdefault("TFNAS_OFFLINE", "1")

from tfnas.evaluation.executors import cpu_count  # noqa: E402  (imports no TensorFlow)


# Under pytest-xdist every worker is a TensorFlow process that would size its intra-op thread pool
# to all the cores: two workers on two cores run four spinning pool threads. Each worker gets its
# share of the cores instead (set before TensorFlow loads; a value set by the user wins).
# Subprocesses the tests start inherit it, and the executors' workers set their own.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = cpu_count() // max(1, int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, _share)))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The test files that keep one worker busy for half a minute or more (measured with
# `--durations`, docs/PERFORMANCE.md "Test suite"), longest first. `--dist loadfile` hands whole
# files to the workers in collection order, so these go first and the many short files fill in
# behind them; left in place, one of them could start last and keep a single worker running while
# the others have finished (pyproject.toml turns off xdist's own reordering, which sorts by test count).
HEAVY_FIRST = (
    "tests/methods/test_nag_paper.py",
    "tests/methods/test_nag.py",
    "tests/methods/test_slnas_search.py",
    "tests/methods/test_relativenas.py",
    "tests/run/test_oracle_parallel.py",
    "tests/methods/test_tinynano_search.py",
    "tests/evaluation/test_executors.py",
    "tests/train/test_tflite.py",
    "tests/train/test_export_inference.py",
    "tests/run/test_sweep_parallel.py",
    "tests/spaces/test_nasnet_dag.py",
    "tests/methods/test_evolution_zen.py",
)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the cores (then capped by ``--maxprocesses``).

    Many tests leave their worker idle part of the time (waiting on a subprocess, a process pool
    or Ray), which a third worker fills on two cores: 11:48-12:26 for the suite against 13:28-14:13
    with two workers (docs/PERFORMANCE.md "Test suite"). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still wins.
    """
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    if env:
        warnings.warn(f"PYTEST_XDIST_AUTO_NUM_WORKERS is not a positive integer: {env!r}; ignored")
    return cpu_count() + 1


def pytest_collection_modifyitems(config, items):
    """Heavy files first (:data:`HEAVY_FIRST`), every other test in collection order (a stable sort)."""
    rank = {name: k for k, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(autouse=True)
def _tf_global_seed_zero():
    """Every test starts with TensorFlow's global seed at 0, the seed of almost every run in the tests.

    A search holds TensorFlow's global seed at its run seed and restores the previous one at the
    end, and setting it clears TensorFlow's function caches (tfnas.train.seeding). A user's process
    runs one search; a test process runs dozens, and with the global seed unset each of them would
    instantiate the traced steps of a cached supernet again (5-25 s per step function on this CPU).
    Starting at 0 makes a seed-0 search set nothing. Only set when it differs (a test may change it)."""
    if "tensorflow" in sys.modules:
        from tfnas.train.seeding import set_tf_global_seed

        set_tf_global_seed(0)
    yield


@pytest.fixture(autouse=True)
def _python_and_numpy_seeds_zero():
    """Python's and NumPy's global generators start at 0 in every test: Keras draws the seed of an
    initializer without one from Python's ``random``, so a network built without a seed gets the
    same weights in every run, whichever tests ran before it in the worker (a layer check once failed
    about once in 16 runs on an unlucky draw). Not ``keras.utils.set_random_seed``: it also sets
    TensorFlow's seed, which clears TensorFlow's function caches (see the fixture above)."""
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    """Tests run from the repository root so relative paths such as cfg/ resolve."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(autouse=True)
def _sigint_left_as_found(request):
    """A test that leaves this process' SIGINT handler changed gets it restored and a warning naming
    it: child processes inherit an ignored SIGINT (a full-suite run once made the Ctrl-C test's
    child deaf to Ctrl-C that way, docs/PERFORMANCE.md "Test suite")."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        warnings.warn(f"{request.node.nodeid} left SIGINT set to {after!r}; restored")
