"""Experiment files: the schema, loading with overrides, validation and its error messages.

Nothing here imports torch or Lightning: validating an experiment is fast enough for a login
node.
"""

from labkit.config._load import (
    DEFAULT_STORE,
    dump_experiment,
    flatten,
    format_validation_error,
    load_experiment,
    validate_experiment,
)
from labkit.config._schema import (
    CheckpointConfig,
    EarlyStoppingConfig,
    Experiment,
    OptimizerConfig,
    SchedulerConfig,
    TrackingConfig,
    TrainerConfig,
)

__all__ = [
    "DEFAULT_STORE",
    "CheckpointConfig",
    "EarlyStoppingConfig",
    "Experiment",
    "OptimizerConfig",
    "SchedulerConfig",
    "TrackingConfig",
    "TrainerConfig",
    "dump_experiment",
    "flatten",
    "format_validation_error",
    "load_experiment",
    "validate_experiment",
]
