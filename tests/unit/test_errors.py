"""labkit's one error hierarchy: every error is a LabkitError (exit 2) and also the builtin it
refines, so code that knows nothing of labkit can catch it; none is an OSError."""

from __future__ import annotations

import inspect

import pytest

from labkit import errors
from labkit.errors import (
    ConfigError,
    DataError,
    Denied,
    ExperimentFileError,
    LabkitError,
    Preempted,
    RegistryError,
    ReproduceError,
    ServerError,
    SlurmError,
    SpoolBusy,
    SpoolRefused,
    TrackingError,
    TrainingDiverged,
    Unreachable,
)

BUILTIN = {
    ConfigError: ValueError,
    DataError: ValueError,
    ExperimentFileError: ValueError,
    ReproduceError: ValueError,
    RegistryError: LookupError,
    TrackingError: RuntimeError,
    Unreachable: RuntimeError,
    Denied: RuntimeError,
    SpoolBusy: RuntimeError,
    SpoolRefused: RuntimeError,
    ServerError: RuntimeError,
    SlurmError: RuntimeError,
    TrainingDiverged: FloatingPointError,
}


def test_every_error_class_is_listed_here() -> None:
    classes = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, LabkitError) and obj is not LabkitError
    }
    assert classes == set(BUILTIN)


@pytest.mark.parametrize("cls", sorted(BUILTIN, key=lambda c: c.__name__))
def test_each_error_is_its_builtin_and_exits_2(cls: type[LabkitError]) -> None:
    error = cls("data.path: 'x.h5' does not exist")
    assert isinstance(error, LabkitError) and isinstance(error, BUILTIN[cls])
    assert not isinstance(error, OSError)  # labkit's own messages for errno codes stay separate
    assert error.exit_code == 2
    assert str(error) == "data.path: 'x.h5' does not exist"
    with pytest.raises(BUILTIN[cls], match="does not exist"):
        raise error


def test_registry_error_is_a_config_error_and_keeps_its_message() -> None:
    error = RegistryError("model.name: unknown model 'mpl'; did you mean 'mlp'?")
    assert isinstance(error, ConfigError)
    assert str(error) == "model.name: unknown model 'mpl'; did you mean 'mlp'?"  # not KeyError's repr


def test_preempted_is_not_an_error() -> None:
    assert issubclass(Preempted, BaseException) and not issubclass(Preempted, Exception)
