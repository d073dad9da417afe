"""Fixtures shared by the proxy tests."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tfnas.spaces.nb201 import Nb201Space


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    """A tiny NB201 space (4 channels, one cell per stage)."""
    return Nb201Space(channels=4, cells_per_stage=1)


@pytest.fixture(scope="module")
def lighter_graph_optimisation():
    """Grappler's first-run optimisation of the traced switch_case graphs costs more than the
    tiny test networks' runs; switch its meta-optimizer off for the module that uses this."""
    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": previous.get("disable_meta_optimizer",
                                                                                         False)})
