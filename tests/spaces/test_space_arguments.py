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


def test_require_names_the_methods_a_space_lacks_not_all_of_them():
    """A ZenSpace given where a GraphSpace is needed was said to miss build, decode, encode, mutate, sample and
    to_graph; it has all but to_graph."""
    from tfnas.spaces.base import GraphSpace, require

    with pytest.raises(TypeError, match=r"needs a GraphSpace \(missing methods: to_graph\); got ZenSpace"):
        require(ZenSpace(), GraphSpace, "a candidate pool")

    class Lookalike:
        def __getattr__(self, name):
            return lambda *args: None

    with pytest.raises(TypeError, match="has the methods .* but does not derive from GraphSpace"):
        require(Lookalike(), GraphSpace, "a candidate pool")


@pytest.mark.parametrize("space_cls", [DartsSpace, NasnetDagSpace], ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("kwargs, fragment", [({"num_classes": -1}, "num_classes"), ({"channels": -4}, "channels"),
                                              ({"layers": 2}, "layers"), ({"channels": 1.5}, "channels")])
def test_parameter_counts_refuse_sizes_the_network_cannot_have(space_cls, kwargs, fragment):
    """``DartsSpace(channels=4, layers=3).num_params(g, channels=-4)`` was -1,470; ``num_classes=-1`` and
    ``layers=2`` (which ``build`` refuses) gave counts too."""
    space = space_cls()
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match=fragment):
        space.num_params(arch, **kwargs)


def test_smaller_values_a_space_took_without_a_word():
    """NB201 op ids 0.5 and 4.9 were truncated to cells; ``auxiliary='no'`` meant True; a NaN FLOPs limit was
    taken; ``max_tries=-1`` tried -1 times."""
    with pytest.raises(ValueError, match="op ids must be integers"):
        Nb201Space().indices(np.full((1, 6), 0.5))
    assert Nb201Space().indices(np.zeros((1, 6), np.int64)).shape == (1,)
    for cls in (DartsSpace, LiteSpace):
        with pytest.raises(TypeError, match="auxiliary must be True or False"):
            cls(auxiliary="no")
    with pytest.raises(ValueError, match="flops_limit"):
        TinyNanoSpace(flops_limit=float("nan"))
    space = TinyNanoSpace()
    with pytest.raises(ValueError, match="max_tries"):
        space.sample(np.random.default_rng(0), max_tries=-1)
    with pytest.raises(ValueError, match="max_tries"):
        space.mutate(space.sample(np.random.default_rng(0)), np.random.default_rng(0), max_tries=0)


def test_views_and_the_nasnet_space_check_what_the_other_spaces_check():
    """A table view's ``sample(3)`` failed with "'int' object has no attribute 'integers'"; the NASNet space took
    ``auxiliary='no'`` as True, a dropout of 2 and counted parameters for odd channels it cannot build."""
    from tfnas.spaces.subset import SubsetSpace

    view = SubsetSpace(Nb201Space(), np.arange(10))
    with pytest.raises(TypeError, match="SubsetSpace.sample: rng must be a numpy.random.Generator"):
        view.sample(3)
    with pytest.raises(TypeError, match="auxiliary must be True or False"):
        NasnetDagSpace(auxiliary="no")
    with pytest.raises(ValueError, match="dropout"):
        NasnetDagSpace(dropout=2.0)
    space = NasnetDagSpace()
    with pytest.raises(ValueError, match="channels` must be even"):
        space.num_params(space.sample(np.random.default_rng(0)), channels=5)


@pytest.mark.parametrize("space_cls", [DartsSpace, NasnetDagSpace], ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("kwargs, fragment", [({"seed": "x"}, "seed"), ({"seed": -1}, "seed"),
                                              ({"channels": -4}, "channels")])
def test_cell_stack_networks_name_a_seed_or_width_that_cannot_be(space_cls, kwargs, fragment):
    """``DartsSpace().build(g, 10, (8, 8, 3), seed="x")`` failed with "can only concatenate str (not "int") to
    str"; ``channels=-4`` with Keras' "Invalid value for argument `filters`"."""
    space = space_cls()
    with pytest.raises(ValueError, match=fragment):
        space.build(space.sample(np.random.default_rng(0)), 10, (8, 8, 3), auxiliary=False, **kwargs)
