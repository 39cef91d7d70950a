"""Experiment files: the schema, loading with overrides, validation and its error messages.

Nothing here imports torch or Lightning: validating an experiment is fast enough for a login
node. The option specs of the registered components live here too (``MLPSpec``, ``DigitsSpec``,
``ClassificationSpec``... and the tuples ``MODEL_SPECS``, ``DATA_SPECS``, ``TASK_SPECS``); each
names the class it builds by a ``target`` string, so that config imports no other labkit
package. Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "DATA_SPECS",
    "MODEL_SPECS",
    "TASK_SPECS",
    "AnomalySpec",
    "ArraysSpec",
    "AutoencoderSpec",
    "CNNSpec",
    "CVAESpec",
    "ClassificationSpec",
    "DataSpec",
    "DigitsSpec",
    "FileSpec",
    "MLPSpec",
    "ModelSpec",
    "RegressionSpec",
    "SegmentationSpec",
    "SimulatedSpec",
    "SurrogateSpec",
    "TaskSpec",
    "UNetSpec",
    "MAX_GRID",
    "CategoricalParam",
    "ClassPathSpec",
    "ComponentSpec",
    "FloatParam",
    "IntParam",
    "SearchConfig",
    "Section",
    "DEFAULT_STORE",
    "MAX_CLASSES",
    "SEED_LIMIT",
    "CheckpointConfig",
    "EarlyStoppingConfig",
    "Experiment",
    "OptimizerConfig",
    "SchedulerConfig",
    "TrackingConfig",
    "TrainerConfig",
    "default_tracking_uri",
    "dump_experiment",
    "flatten",
    "format_validation_error",
    "load_experiment",
    "parse_value",
    "redact_uri",
    "tracking_uri_problem",
    "validate_experiment",
]

if TYPE_CHECKING:
    from labkit.config._base import MAX_CLASSES, SEED_LIMIT, ClassPathSpec, ComponentSpec, Section
    from labkit.config._data_specs import (
        DATA_SPECS,
        ArraysSpec,
        DataSpec,
        DigitsSpec,
        FileSpec,
        SimulatedSpec,
    )
    from labkit.config._load import (
        DEFAULT_STORE,
        default_tracking_uri,
        dump_experiment,
        flatten,
        format_validation_error,
        load_experiment,
        parse_value,
        validate_experiment,
    )
    from labkit.config._model_specs import (
        MODEL_SPECS,
        AutoencoderSpec,
        CNNSpec,
        CVAESpec,
        MLPSpec,
        ModelSpec,
        UNetSpec,
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
    from labkit.config._search import MAX_GRID, CategoricalParam, FloatParam, IntParam, SearchConfig
    from labkit.config._task_specs import (
        TASK_SPECS,
        AnomalySpec,
        ClassificationSpec,
        RegressionSpec,
        SegmentationSpec,
        SurrogateSpec,
        TaskSpec,
    )
    from labkit.config._uri import redact_uri, tracking_uri_problem

_LOAD = (
    "DEFAULT_STORE",
    "default_tracking_uri",
    "dump_experiment",
    "flatten",
    "format_validation_error",
    "load_experiment",
    "parse_value",
)
__getattr__ = lazy_getattr(
    __name__,
    {
        **{
            name: "labkit.config._load"
            if name in (*_LOAD, "validate_experiment")
            else "labkit.config._schema"
            for name in __all__
        },
        "MAX_CLASSES": "labkit.config._base",
        "SEED_LIMIT": "labkit.config._base",
        **dict.fromkeys(("ClassPathSpec", "ComponentSpec", "Section"), "labkit.config._base"),
        **dict.fromkeys(
            ("MAX_GRID", "CategoricalParam", "FloatParam", "IntParam", "SearchConfig"),
            "labkit.config._search",
        ),
        **dict.fromkeys(
            ("DATA_SPECS", "ArraysSpec", "DataSpec", "DigitsSpec", "FileSpec", "SimulatedSpec"),
            "labkit.config._data_specs",
        ),
        **dict.fromkeys(
            ("MODEL_SPECS", "AutoencoderSpec", "CNNSpec", "CVAESpec", "MLPSpec", "ModelSpec", "UNetSpec"),
            "labkit.config._model_specs",
        ),
        **dict.fromkeys(
            (
                "TASK_SPECS",
                "AnomalySpec",
                "ClassificationSpec",
                "RegressionSpec",
                "SegmentationSpec",
                "SurrogateSpec",
                "TaskSpec",
            ),
            "labkit.config._task_specs",
        ),
        "redact_uri": "labkit.config._uri",
        "tracking_uri_problem": "labkit.config._uri",
    },
)
