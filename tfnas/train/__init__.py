"""tfnas.train: the Trainer, learning-rate schedules, optimizers, strategies and checkpoints.

``tfnas.train.export`` (SavedModel export) is imported on its own, not from here; the timing of
the train step lives in ``perf.train_step`` (outside the package).
"""

from tfnas.train.checkpoint import CheckpointMismatchError, TrainCheckpoint
from tfnas.train.distribute import StrategyError, make_strategy, resolve_jit_compile
from tfnas.train.drop_path import drop_path_layers, set_drop_path_rate
from tfnas.train.optim import (
    add_coupled_decay,
    decayed_variables,
    is_decayed,
    make_optimizer,
    per_example_loss,
    smoothed_cross_entropy,
)
from tfnas.train.schedules import WarmupSchedule, schedule_from_config
from tfnas.train.errors import TrainingDivergedError
from tfnas.train.trainer import History, Trainer, train_and_evaluate

__all__ = [
    "CheckpointMismatchError",
    "History",
    "StrategyError",
    "TrainCheckpoint",
    "Trainer",
    "TrainingDivergedError",
    "WarmupSchedule",
    "add_coupled_decay",
    "decayed_variables",
    "drop_path_layers",
    "is_decayed",
    "make_optimizer",
    "make_strategy",
    "per_example_loss",
    "resolve_jit_compile",
    "schedule_from_config",
    "set_drop_path_rate",
    "smoothed_cross_entropy",
    "train_and_evaluate",
]
