"""Tests of the NAS-Bench-201 residual reduction block (tfnas.spaces.ops.nb201)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.testing import run_layer_test
from tfnas.spaces.ops import ResidualReduction


def test_residual_reduction_contract_and_params():
    layer = run_layer_test(ResidualReduction, {"filters": 8}, (2, 8, 8, 4), (2, 4, 4, 8), 7, 4)
    # conv_a 3x3 4->8 + BN, conv_b 3x3 8->8 + BN, 1x1 shortcut 4->8 without BN or bias
    assert layer.count_params() - sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights) == (
        9 * 4 * 8 + 16 + 9 * 8 * 8 + 16 + 4 * 8
    )


def test_residual_reduction_published_block_size():
    # NB201 16 -> 32 reduction block: 14,464 trainable parameters.
    layer = ResidualReduction(32)
    layer.build((None, 32, 32, 16))
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 14464


def test_residual_reduction_rejects_odd_size():
    with pytest.raises(ValueError, match="even height"):
        ResidualReduction(8).build((None, 7, 8, 4))
