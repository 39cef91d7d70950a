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

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.tracking._provenance": (
            "GitState",
            "git_state",
            "redact_command",
            "redact_uri",
            "software_versions",
            "user",
        ),
        "labkit.tracking.query": (
            "fetch_artifact_text",
            "fetch_figures",
            "fetch_history",
            "fetch_run",
            "fetch_runs",
        ),
        "labkit.tracking.server": (
            "ServerError",
            "ServerOptions",
            "add_user",
            "check_admin",
            "grant",
            "run_server",
        ),
        "labkit.tracking.write": (
            "DrainReport",
            "RunClient",
            "SPOOL_FILE",
            "Spool",
            "SpoolRefused",
            "SyncResult",
            "Tracker",
            "check_spool",
            "configured_uri",
            "end_abandoned_run",
            "find_spools",
            "sync",
            "sync_spool",
        ),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.tracking._provenance import GitState as GitState
    from labkit.tracking._provenance import git_state as git_state
    from labkit.tracking._provenance import redact_command as redact_command
    from labkit.tracking._provenance import redact_uri as redact_uri
    from labkit.tracking._provenance import software_versions as software_versions
    from labkit.tracking._provenance import user as user
    from labkit.tracking.query import fetch_artifact_text as fetch_artifact_text
    from labkit.tracking.query import fetch_figures as fetch_figures
    from labkit.tracking.query import fetch_history as fetch_history
    from labkit.tracking.query import fetch_run as fetch_run
    from labkit.tracking.query import fetch_runs as fetch_runs
    from labkit.tracking.server import ServerError as ServerError
    from labkit.tracking.server import ServerOptions as ServerOptions
    from labkit.tracking.server import add_user as add_user
    from labkit.tracking.server import check_admin as check_admin
    from labkit.tracking.server import grant as grant
    from labkit.tracking.server import run_server as run_server
    from labkit.tracking.write import SPOOL_FILE as SPOOL_FILE
    from labkit.tracking.write import DrainReport as DrainReport
    from labkit.tracking.write import RunClient as RunClient
    from labkit.tracking.write import Spool as Spool
    from labkit.tracking.write import SpoolRefused as SpoolRefused
    from labkit.tracking.write import SyncResult as SyncResult
    from labkit.tracking.write import Tracker as Tracker
    from labkit.tracking.write import check_spool as check_spool
    from labkit.tracking.write import configured_uri as configured_uri
    from labkit.tracking.write import end_abandoned_run as end_abandoned_run
    from labkit.tracking.write import find_spools as find_spools
    from labkit.tracking.write import sync as sync
    from labkit.tracking.write import sync_spool as sync_spool
else:
    __getattr__ = _lazy_getattr
