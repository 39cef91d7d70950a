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
    "SyncResult",
    "Tracker",
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
    from labkit.tracking._sync import SyncResult, sync, sync_spool
    from labkit.tracking._tracker import Tracker

__getattr__ = lazy_getattr(
    __name__,
    {
        "DrainReport": "labkit.tracking._client",
        "RunClient": "labkit.tracking._client",
        "Spool": "labkit.tracking._spool",
        "SyncResult": "labkit.tracking._sync",
        "Tracker": "labkit.tracking._tracker",
        "end_abandoned_run": "labkit.tracking._client",
        "find_spools": "labkit.tracking._spool",
        "sync": "labkit.tracking._sync",
        "sync_spool": "labkit.tracking._sync",
    },
)
