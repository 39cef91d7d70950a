"""Everything that talks to MLflow lives here (and only here).

:class:`RunClient` (one MLflow run, batched) imports mlflow; :class:`Tracker`, the Lightning
logger built on it, also imports Lightning. Both load on first use; the provenance helpers are
plain Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr
from labkit.tracking._provenance import GitState, git_state, redact_command, redact_uri, software_versions

__all__ = [
    "GitState",
    "RunClient",
    "Tracker",
    "end_abandoned_run",
    "git_state",
    "redact_command",
    "redact_uri",
    "software_versions",
]

if TYPE_CHECKING:
    from labkit.tracking._client import RunClient, end_abandoned_run
    from labkit.tracking._tracker import Tracker

__getattr__ = lazy_getattr(
    __name__,
    {
        "RunClient": "labkit.tracking._client",
        "Tracker": "labkit.tracking._tracker",
        "end_abandoned_run": "labkit.tracking._client",
    },
)
