"""tfnas.benchmarks."""
from tfnas.benchmarks import nb201  # noqa: F401  (registers "nb201")
from tfnas.benchmarks import oracle  # noqa: F401  (registers "train")
