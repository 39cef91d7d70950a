"""Experiment files: the schema, loading with overrides, validation and its error messages.

Nothing here imports torch or Lightning: validating an experiment is fast enough for a login
node. The option specs of the registered components live here too (``MLPSpec``, ``DigitsSpec``,
``ClassificationSpec``... and the tuples ``MODEL_SPECS``, ``DATA_SPECS``, ``TASK_SPECS``); each
names the class it builds by a ``target`` string, so that config imports no other labkit
package. Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.config._base": ("ClassPathSpec", "ComponentSpec", "MAX_CLASSES", "SEED_LIMIT", "Section"),
        "labkit.config._data_specs": (
            "ArraysSpec",
            "DATA_SPECS",
            "DataSpec",
            "DigitsSpec",
            "FileSpec",
            "SimulatedSpec",
        ),
        "labkit.config._load": (
            "dump_experiment",
            "flatten",
            "format_validation_error",
            "load_experiment",
            "parse_value",
            "validate_experiment",
        ),
        "labkit.config._model_specs": (
            "AutoencoderSpec",
            "CNNSpec",
            "CVAESpec",
            "TwoStageSpec",
            "MLPSpec",
            "MODEL_SPECS",
            "ModelSpec",
            "UNetSpec",
        ),
        "labkit.config._schema": (
            "CheckpointConfig",
            "EarlyStoppingConfig",
            "Experiment",
            "NOTIFY_EVENTS",
            "NotifyConfig",
            "OptimizerConfig",
            "SchedulerConfig",
            "TrackingConfig",
            "TrainerConfig",
        ),
        "labkit.config._search": (
            "BudgetConfig",
            "CategoricalParam",
            "FloatParam",
            "IntParam",
            "MAX_GRID",
            "ObjectiveConfig",
            "SearchConfig",
        ),
        "labkit.config._task_specs": (
            "AnomalySpec",
            "ClassificationSpec",
            "RegressionSpec",
            "SegmentationSpec",
            "SurrogateSpec",
            "TASK_SPECS",
            "TaskSpec",
        ),
        "labkit.config._uri": (
            "DEFAULT_STORE",
            "default_storage",
            "default_tracking_uri",
            "redact_uri",
            "tracking_uri_problem",
        ),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.config._base import MAX_CLASSES as MAX_CLASSES
    from labkit.config._base import SEED_LIMIT as SEED_LIMIT
    from labkit.config._base import ClassPathSpec as ClassPathSpec
    from labkit.config._base import ComponentSpec as ComponentSpec
    from labkit.config._base import Section as Section
    from labkit.config._data_specs import DATA_SPECS as DATA_SPECS
    from labkit.config._data_specs import ArraysSpec as ArraysSpec
    from labkit.config._data_specs import DataSpec as DataSpec
    from labkit.config._data_specs import DigitsSpec as DigitsSpec
    from labkit.config._data_specs import FileSpec as FileSpec
    from labkit.config._data_specs import SimulatedSpec as SimulatedSpec
    from labkit.config._load import dump_experiment as dump_experiment
    from labkit.config._load import flatten as flatten
    from labkit.config._load import format_validation_error as format_validation_error
    from labkit.config._load import load_experiment as load_experiment
    from labkit.config._load import parse_value as parse_value
    from labkit.config._load import validate_experiment as validate_experiment
    from labkit.config._model_specs import MODEL_SPECS as MODEL_SPECS
    from labkit.config._model_specs import AutoencoderSpec as AutoencoderSpec
    from labkit.config._model_specs import CNNSpec as CNNSpec
    from labkit.config._model_specs import CVAESpec as CVAESpec
    from labkit.config._model_specs import MLPSpec as MLPSpec
    from labkit.config._model_specs import ModelSpec as ModelSpec
    from labkit.config._model_specs import TwoStageSpec as TwoStageSpec
    from labkit.config._model_specs import UNetSpec as UNetSpec
    from labkit.config._schema import NOTIFY_EVENTS as NOTIFY_EVENTS
    from labkit.config._schema import CheckpointConfig as CheckpointConfig
    from labkit.config._schema import EarlyStoppingConfig as EarlyStoppingConfig
    from labkit.config._schema import Experiment as Experiment
    from labkit.config._schema import NotifyConfig as NotifyConfig
    from labkit.config._schema import OptimizerConfig as OptimizerConfig
    from labkit.config._schema import SchedulerConfig as SchedulerConfig
    from labkit.config._schema import TrackingConfig as TrackingConfig
    from labkit.config._schema import TrainerConfig as TrainerConfig
    from labkit.config._search import MAX_GRID as MAX_GRID
    from labkit.config._search import BudgetConfig as BudgetConfig
    from labkit.config._search import CategoricalParam as CategoricalParam
    from labkit.config._search import FloatParam as FloatParam
    from labkit.config._search import IntParam as IntParam
    from labkit.config._search import ObjectiveConfig as ObjectiveConfig
    from labkit.config._search import SearchConfig as SearchConfig
    from labkit.config._task_specs import TASK_SPECS as TASK_SPECS
    from labkit.config._task_specs import AnomalySpec as AnomalySpec
    from labkit.config._task_specs import ClassificationSpec as ClassificationSpec
    from labkit.config._task_specs import RegressionSpec as RegressionSpec
    from labkit.config._task_specs import SegmentationSpec as SegmentationSpec
    from labkit.config._task_specs import SurrogateSpec as SurrogateSpec
    from labkit.config._task_specs import TaskSpec as TaskSpec
    from labkit.config._uri import DEFAULT_STORE as DEFAULT_STORE
    from labkit.config._uri import default_storage as default_storage
    from labkit.config._uri import default_tracking_uri as default_tracking_uri
    from labkit.config._uri import redact_uri as redact_uri
    from labkit.config._uri import tracking_uri_problem as tracking_uri_problem
else:
    __getattr__ = _lazy_getattr
