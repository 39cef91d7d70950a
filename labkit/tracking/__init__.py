"""Everything that talks to MLflow lives here (and only here).

A run logs to its spool (:class:`Spool`, SQLite in the run directory) through
:class:`RunClient`; a background shipper uploads the spool to MLflow in batches; :func:`sync`
uploads what offline or killed runs left. :class:`Tracker` is the Lightning logger on top of
:class:`RunClient`. Modules that import mlflow or Lightning load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr
from labkit.tracking._provenance import (
    GitState,
    git_state,
    redact_command,
    redact_uri,
    software_versions,
    user,
)

__all__ = [
    "user",
    "fetch_artifact_text",
    "fetch_run",
    "SPOOL_FILE",
    "DrainReport",
    "GitState",
    "RunClient",
    "ServerError",
    "ServerOptions",
    "Spool",
    "SpoolRefused",
    "SyncResult",
    "Tracker",
    "add_user",
    "check_admin",
    "check_spool",
    "configured_uri",
    "end_abandoned_run",
    "fetch_figures",
    "fetch_history",
    "fetch_runs",
    "find_spools",
    "git_state",
    "grant",
    "redact_command",
    "redact_uri",
    "run_server",
    "software_versions",
    "sync",
    "sync_spool",
]

if TYPE_CHECKING:
    from labkit.tracking._client import DrainReport, RunClient, end_abandoned_run
    from labkit.tracking._query import (
        fetch_artifact_text,
        fetch_figures,
        fetch_history,
        fetch_run,
        fetch_runs,
    )
    from labkit.tracking._server import ServerError, ServerOptions, add_user, check_admin, grant, run_server
    from labkit.tracking._spool import SPOOL_FILE, Spool, find_spools
    from labkit.tracking._sync import SpoolRefused, SyncResult, check_spool, configured_uri, sync, sync_spool
    from labkit.tracking._tracker import Tracker

__getattr__ = lazy_getattr(
    __name__,
    {
        "fetch_artifact_text": "labkit.tracking._query",
        "fetch_run": "labkit.tracking._query",
        "SPOOL_FILE": "labkit.tracking._spool",
        **{
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
        "fetch_figures": "labkit.tracking._query",
        "fetch_history": "labkit.tracking._query",
        "fetch_runs": "labkit.tracking._query",
        "ServerError": "labkit.tracking._server",
        "ServerOptions": "labkit.tracking._server",
        "add_user": "labkit.tracking._server",
        "check_admin": "labkit.tracking._server",
        "grant": "labkit.tracking._server",
        "run_server": "labkit.tracking._server",
    },
)
