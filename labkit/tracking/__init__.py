"""Everything that talks to MLflow lives here (and only here).

A run logs to its spool (:class:`Spool`, SQLite in the run directory) through
:class:`RunClient`; a background shipper uploads the spool to MLflow in batches; :func:`sync`
uploads what offline or killed runs left. :class:`Tracker` is the Lightning logger on top of
:class:`RunClient`. Modules that import mlflow or Lightning load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr
from labkit.tracking._provenance import GitState, git_state, redact_command, redact_uri, software_versions

__all__ = [
    "DrainReport",
    "GitState",
    "RunClient",
    "Spool",
    "SpoolRefused",
    "SyncResult",
    "Tracker",
    "check_spool",
    "configured_uri",
    "end_abandoned_run",
    "find_spools",
    "git_state",
    "redact_command",
    "redact_uri",
    "software_versions",
    "sync",
    "sync_spool",
]

if TYPE_CHECKING:
    from labkit.tracking._client import DrainReport, RunClient, end_abandoned_run
    from labkit.tracking._spool import Spool, find_spools
    from labkit.tracking._sync import SpoolRefused, SyncResult, check_spool, configured_uri, sync, sync_spool
    from labkit.tracking._tracker import Tracker

__getattr__ = lazy_getattr(
    __name__,
    {
        "DrainReport": "labkit.tracking._client",
        "RunClient": "labkit.tracking._client",
        "Spool": "labkit.tracking._spool",
        "SpoolRefused": "labkit.tracking._sync",
        "SyncResult": "labkit.tracking._sync",
        "check_spool": "labkit.tracking._sync",
        "configured_uri": "labkit.tracking._sync",
        "Tracker": "labkit.tracking._tracker",
        "end_abandoned_run": "labkit.tracking._client",
        "find_spools": "labkit.tracking._spool",
        "sync": "labkit.tracking._sync",
        "sync_spool": "labkit.tracking._sync",
    },
)
