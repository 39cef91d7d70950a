"""The one exception hierarchy users see.

Every error a user can fix (a bad value in an experiment file, a missing file, an unknown model
name, ...) is a :class:`LabkitError`. The CLI prints its message on one line of stderr and exits
with code 2, never with a traceback. Any other exception is a bug in labkit (or in user code
called by it): the CLI prints the traceback, marks the run FAILED and exits 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "DataError",
    "ExperimentFileError",
    "LabkitError",
    "RegistryError",
    "TrackingError",
    "did_you_mean",
]


class LabkitError(Exception):
    """Base of every error that means "your input needs fixing", not "labkit has a bug"."""

    exit_code = 2


class ExperimentFileError(LabkitError):
    """The experiment file is missing, unreadable or not valid YAML."""


class ConfigError(LabkitError):
    """The experiment (file plus overrides) does not validate against the schema."""


class RegistryError(ConfigError):
    """A model, data or task name (or a ``class_path``) does not resolve to a component."""


class DataError(LabkitError):
    """A data file or dataset is missing, malformed or unusable for the task."""


class TrackingError(LabkitError):
    """The tracking store cannot be used as configured."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
