"""Everything that talks to MLflow lives here (and only here), in three subpackages:

- :mod:`labkit.tracking.write`: a run logs to its spool (:class:`Spool`, SQLite in the run
  directory) through :class:`RunClient`; a background shipper uploads the spool to MLflow in
  batches; :func:`sync` uploads what offline or killed runs left. :class:`Tracker` is the
  Lightning logger on top of :class:`RunClient`.
- :mod:`labkit.tracking.query`: what everyone ran, read into plain records through a local
  cache (``labkit compare``, ``labkit report``).
- :mod:`labkit.tracking.server`: the group's MLflow server (``labkit server``).

Provenance (git state, versions, the user, redaction) is ``labkit.tracking._provenance``;
``labkit.tracking._mlflow`` is the one module that imports mlflow. Every name below is also
importable from here; modules that import mlflow or Lightning load on first use.
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
    from labkit.tracking.query import (
        fetch_artifact_text,
        fetch_figures,
        fetch_history,
        fetch_run,
        fetch_runs,
    )
    from labkit.tracking.server import ServerError, ServerOptions, add_user, check_admin, grant, run_server
    from labkit.tracking.write import (
        SPOOL_FILE,
        DrainReport,
        RunClient,
        Spool,
        SpoolRefused,
        SyncResult,
        Tracker,
        check_spool,
        configured_uri,
        end_abandoned_run,
        find_spools,
        sync,
        sync_spool,
    )

_SUBPACKAGE = {
    **dict.fromkeys(
        ("fetch_artifact_text", "fetch_figures", "fetch_history", "fetch_run", "fetch_runs"),
        "labkit.tracking.query",
    ),
    **dict.fromkeys(
        ("ServerError", "ServerOptions", "add_user", "check_admin", "grant", "run_server"),
        "labkit.tracking.server",
    ),
}
__getattr__ = lazy_getattr(
    __name__,
    {
        name: _SUBPACKAGE.get(name, "labkit.tracking.write")
        for name in __all__
        if name not in ("GitState", "git_state", "redact_command", "redact_uri", "software_versions", "user")
    },
)
