"""tfnas.benchmarks: ground truth behind one counting session (``base``), the shipped NAS-Bench-201
table (``nb201``), the NATS-Bench loader (``nats``) and the training oracle (``training``)."""
from tfnas.benchmarks import nb201  # noqa: F401  (registers "nb201")
from tfnas.benchmarks import training  # noqa: F401  (registers "train")
