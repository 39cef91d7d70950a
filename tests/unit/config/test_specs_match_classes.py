"""Every registered spec agrees with the class its ``target`` names (no training, nothing built).

A spec repeats its class's options with their defaults, for validation without torch. For each
spec of ``DATA_SPECS``, ``MODEL_SPECS`` and ``TASK_SPECS``: every field the spec passes to the
class (``spec.options()``) is a parameter of the class's constructor (or of a base class's, where
the constructor hands on ``**kwargs``) with the same default, and every parameter without a
default is either passed by the spec or filled in by labkit (``SUPPLIED``).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

import pytest
from pydantic_core import PydanticUndefined

from labkit.config import DATA_SPECS, MODEL_SPECS, TASK_SPECS, ComponentSpec

#: constructor parameters labkit fills in itself, not from the spec's fields
SUPPLIED: dict[str, frozenset[str]] = {
    # the experiment's seed; what the task needs from the data (TaskSpec.target_kind, Task.extras)
    "data": frozenset({"seed", "target_kind", "extras"}),
    # the shape of one sample and the output size (Task.model_args, Task.model_outputs)
    "model": frozenset({"in_shape", "out_features"}),
    # the model, the optimizer section, and what Task.model_outputs takes from the data
    "task": frozenset(
        {
            "model",
            "optimizer",
            "num_classes",
            "class_names",
            "signal_class",
            "targets",
            "scaling",
            "mass_index",
            "feature_names",
            "reference_scores",
            "simulator",
            "simulator_options",
        }
    ),
}

#: defaults that disagree today, each with its reason. The spec's default is what YAML users get;
#: the class's is what Python users get when they build the class themselves, so neither can
#: change without changing behaviour for someone. The list only shrinks (a fixed one fails).
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("FileSpec", "standardize"): "YAML: true (event files); FileDataModule inherits "
    "ArraySplitDataModule's false",
    ("SimulatedSpec", "standardize"): "YAML: true (simulated events); SimulatedDataModule inherits "
    "ArraySplitDataModule's false",
}

_SPECS = [
    *(("data", spec) for spec in DATA_SPECS),
    *(("model", spec) for spec in MODEL_SPECS),
    *(("task", spec) for spec in TASK_SPECS),
]
_IDS = [spec.__name__ for _, spec in _SPECS]


def _target(spec: type[ComponentSpec]) -> Any:
    module, _, name = spec.target.partition(":")
    return getattr(importlib.import_module(module), name)


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The named parameters ``cls(...)`` accepts: its constructor's, then, while a constructor
    hands ``**kwargs`` on, its base classes' (the nearest declaration of a name wins)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        for p in params:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                found.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return found


def _passed(spec: type[ComponentSpec]) -> set[str]:
    """The fields ``spec.options()`` hands to the class (an instance with placeholder values)."""
    values: dict[str, Any] = {}
    for name, field in spec.model_fields.items():
        if field.is_required():
            (tag,) = typing.get_args(field.annotation) if name in ("name", "kind") else ("x",)
            values[name] = tag
    return set(spec.model_construct(**values).options())


def _same(a: Any, b: Any) -> bool:
    """Equal defaults: a list and a tuple of the same items are; so are None and an empty
    container (the classes write ``labels: Mapping | None = None`` and use ``labels or {}``)."""
    if a is None or b is None:
        return all(v is None or (isinstance(v, (dict, list, tuple)) and not v) for v in (a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


@pytest.mark.parametrize(("family", "spec"), _SPECS, ids=_IDS)
def test_every_field_passed_is_a_parameter_with_the_same_default(
    family: str, spec: type[ComponentSpec]
) -> None:
    cls = _target(spec)
    params = _parameters(cls)
    for name in sorted(_passed(spec)):
        assert name in params, f"{spec.__name__}.{name}: {cls.__name__} has no parameter {name!r}"
        ours = spec.model_fields[name].get_default(call_default_factory=True)
        theirs = params[name].default
        if ours is PydanticUndefined or theirs is inspect.Parameter.empty:
            assert ours is PydanticUndefined and theirs is inspect.Parameter.empty, (
                f"{spec.__name__}.{name}: required in one of spec ({ours!r}) and {cls.__name__} "
                f"({theirs!r}) only"
            )
            continue
        if (spec.__name__, name) in KNOWN_DIFFERENCES:
            assert not _same(ours, theirs), (
                f"{spec.__name__}.{name} agrees now: drop it from KNOWN_DIFFERENCES"
            )
            continue
        assert _same(ours, theirs), (
            f"{spec.__name__}.{name}: the spec's default is {ours!r}, {cls.__name__}'s is {theirs!r}"
        )


@pytest.mark.parametrize(("family", "spec"), _SPECS, ids=_IDS)
def test_every_required_parameter_is_given(family: str, spec: type[ComponentSpec]) -> None:
    cls = _target(spec)
    passed = _passed(spec)
    for name, p in list(inspect.signature(cls).parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not inspect.Parameter.empty:
            continue
        assert name in passed or name in SUPPLIED[family], (
            f"{cls.__name__}({name}=...) has no default and neither {spec.__name__} nor labkit gives it"
        )


def test_the_known_differences_are_specs_and_fields() -> None:
    fields = {(spec.__name__, name) for _, spec in _SPECS for name in spec.model_fields}
    assert set(KNOWN_DIFFERENCES) <= fields
