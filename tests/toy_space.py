"""The toy evolvable space (``toy_widths``) and proxy (``toy_sum``) shared by the evolution tests.

A helper module, not a test module: test modules are imported under their own base names, so a
test module imported from another test module would be imported twice and register twice."""

import numpy as np

from tfnas.proxies.base import Proxy
from tfnas.registry import register_proxy, register_space
from tfnas.spaces.base import EvolvableSpace


@register_space("toy_widths")
class ToySpace:
    """Architectures are tuples of 3 widths in [1, 64]; params = sum w^2, flops = 10 * sum w."""

    name = "toy_widths"
    num_classes, resolution = 10, 8
    start_arch = (4, 4, 4)

    @classmethod
    def from_config(cls, cfg):
        return cls()

    def mutate(self, arch, rng):
        out = list(arch)
        i = int(rng.integers(len(out)))
        out[i] = int(np.clip(out[i] + rng.choice([-3, -2, -1, 1, 2, 3]), 1, 64))
        return tuple(out)

    def encode(self, arch):
        return "-".join(str(w) for w in arch)

    def decode(self, text):
        return tuple(int(t) for t in text.split("-"))

    def num_params(self, arch):
        return sum(w * w for w in arch)

    def flops(self, arch):
        return 10 * sum(arch)

    def num_layers(self, arch):
        return len(arch)

    def effectiveness(self, arch):
        return max(arch) / (sum(arch) + 1)


EvolvableSpace.register(ToySpace)  # a duck-typed space that declares the capability


@register_proxy("toy_sum")
class ToyProxy(Proxy):
    """Score = sum of widths + a little noise from the scoring generator (exercises its state)."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def score(self, model, batch, rng):
        raise NotImplementedError

    def score_arch(self, space, arch, *, num_classes, input_shape, batch_size, rng):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt  # a killed search
        return float(sum(arch)) + 0.01 * float(rng.standard_normal())
