"""What every space's ``sample`` and ``mutate`` take as their random stream."""

import numpy as np
import pytest

from tfnas.spaces.darts import DartsSpace
from tfnas.spaces.lite import LiteSpace
from tfnas.spaces.nasnet_dag import NasnetDagSpace
from tfnas.spaces.nb201 import Nb201Space
from tfnas.spaces.tinynano import TinyNanoSpace
from tfnas.spaces.zen import ZenSpace

SPACES = [Nb201Space, DartsSpace, ZenSpace, LiteSpace, NasnetDagSpace, TinyNanoSpace]


@pytest.mark.parametrize("space_cls", SPACES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("rng", [3, None, np.random.RandomState(0)], ids=["seed", "none", "randomstate"])
def test_sample_and_mutate_name_a_stream_that_is_no_generator(space_cls, rng):
    """``Nb201Space().sample(3)`` failed with "'int' object has no attribute 'integers'"; the DARTS and NASNet
    spaces took a legacy ``RandomState`` and drew another stream."""
    space = space_cls()
    with pytest.raises(TypeError, match=rf"{space_cls.__name__}.sample: rng must be a numpy.random.Generator"):
        space.sample(rng)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(TypeError, match=rf"{space_cls.__name__}.mutate: rng must be a numpy.random.Generator"):
        space.mutate(arch, rng)
    assert space.mutate(arch, np.random.default_rng(1)) != arch
