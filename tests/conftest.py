import os
import signal
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: data must come from mocks or generated folders.
os.environ.setdefault("TFNAS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
