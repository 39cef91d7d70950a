"""The one exception hierarchy users see.

Every error a user can fix (a bad value in an experiment file, a missing file, an unknown model
name, ...) is a :class:`LabkitError`. The CLI prints its message on one line of stderr and exits
with code 2, never with a traceback. Any other exception is a bug in labkit (or in user code
called by it): the CLI prints the traceback, marks the run FAILED and exits 1.

Each error also inherits the builtin it refines, so code that does not know labkit can still
catch it: a bad value (:class:`ConfigError`, :class:`DataError`, :class:`ExperimentFileError`,
:class:`ReproduceError`) is a ``ValueError``, an unknown name (:class:`RegistryError`) also a
``LookupError``, a service that fails (:class:`TrackingError`, :class:`SlurmError`) a
``RuntimeError``. None is an ``OSError``: labkit maps ``OSError`` numbers (a full disk, a
read-only file system) to messages of its own.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ConfigError",
    "DataError",
    "Denied",
    "ExperimentFileError",
    "LabkitError",
    "Preempted",
    "RegistryError",
    "ReproduceError",
    "ServerError",
    "SlurmError",
    "SpoolBusy",
    "SpoolRefused",
    "TrackingError",
    "TrainingDiverged",
    "Unreachable",
    "did_you_mean",
]


class LabkitError(Exception):
    """Base of every error that means "your input needs fixing", not "labkit has a bug"."""

    exit_code = 2


class ExperimentFileError(LabkitError, ValueError):
    """The experiment file is missing, unreadable or not valid YAML."""


class ConfigError(LabkitError, ValueError):
    """The experiment (file plus overrides) does not validate against the schema."""


class RegistryError(ConfigError, LookupError):
    """A model, data or task name (or a ``class_path``) does not resolve to a component."""


class DataError(LabkitError, ValueError):
    """A data file or dataset is missing, malformed or unusable for the task."""


class TrackingError(LabkitError, RuntimeError):
    """The tracking store cannot be used as configured."""


class Unreachable(TrackingError):
    """The server did not answer, or answered that it cannot serve now: retry later.

    ``refused``: nothing answers at that address at all (connection refused, no route, unknown
    host), as opposed to a server that is busy or restarting its database connections."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class Denied(TrackingError):
    """The server refused the credentials (401) or the permission (403): retrying cannot help."""


class SpoolBusy(TrackingError):
    """Another process is shipping this spool right now (the run itself, or another sync)."""


class SpoolRefused(TrackingError):
    """A spool that sync will not ship (nothing of it is sent): someone else's, writable by
    others, not a labkit spool, meant for a URI the user did not name, or listing a file outside
    its run directory."""


class ServerError(TrackingError):
    """The tracking server cannot be started or administered as asked."""


class TrainingDiverged(LabkitError, FloatingPointError):
    """The training loss became NaN or infinite: training stopped (the run ends FAILED, tagged
    ``labkit.failure=nan``); a lower learning rate, gradient clipping or cleaner inputs fix it."""


class SlurmError(LabkitError, RuntimeError):
    """A SLURM command failed or is not installed here."""


class ReproduceError(LabkitError, ValueError):
    """The checkout differs from the code the run used (and ``--force`` was not given)."""


class Preempted(BaseException):
    """Training stopped on a signal after saving ``checkpoint`` (not an error: the job resumes).

    A ``BaseException`` like ``KeyboardInterrupt``, so that code catching ``Exception`` (a
    tuning worker recording a failed trial) lets it through. Not a :class:`LabkitError`: the CLI
    reports it as a stop, not as something to fix. Here (torch-free) so that the CLI can catch it
    by class without importing Lightning; raised by ``labkit.runner``'s preemption callback.
    """

    def __init__(self, signame: str, checkpoint: Path, requeue: bool) -> None:
        super().__init__(f"{signame} received; checkpoint saved at {checkpoint}")
        self.signame, self.checkpoint, self.requeue = signame, checkpoint, requeue


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
