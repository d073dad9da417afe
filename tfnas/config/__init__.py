"""Configuration: ``.cfg`` (INI) files -> frozen, typed :class:`Config`.

:mod:`~tfnas.config.sections` holds one dataclass per INI section; :mod:`~tfnas.config.loader`
reads, overrides, validates and writes them back.
"""

from tfnas.config.loader import config_to_ini, ini_value, load_config, validate_config
from tfnas.config.sections import (
    SECTIONS,
    BenchmarkConfig,
    BudgetConfig,
    Config,
    ConfigError,
    DatasetConfig,
    ExportConfig,
    MethodConfig,
    PredictorConfig,
    ProxyConfig,
    RunConfig,
    SearchConfig,
    SpaceConfig,
    TrainConfig,
)

__all__ = ["SECTIONS", "BenchmarkConfig", "BudgetConfig", "Config", "ConfigError", "DatasetConfig", "ExportConfig",
           "MethodConfig", "PredictorConfig", "ProxyConfig", "RunConfig", "SearchConfig", "SpaceConfig",
           "TrainConfig", "config_to_ini", "ini_value", "load_config", "validate_config"]
