"""Tests of te_nas (tfnas.proxies.te_nas)."""

from __future__ import annotations

import numpy as np
import pytest

from tfnas.proxies.te_nas import ntk_score


def test_ntk_score_formula():
    assert ntk_score(np.diag([2.0, 8.0, 4.0])) == pytest.approx(-4.0)
    assert ntk_score(np.ones((3, 3))) == float("-inf")
    with pytest.raises(ValueError, match="square"):
        ntk_score(np.ones((2, 3)))
