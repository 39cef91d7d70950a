"""The write path: a run's records go to its spool, and from there to MLflow.

A run logs to its spool (:class:`Spool`, SQLite in the run directory) through
:class:`RunClient`; a background shipper uploads the spool to MLflow in batches; :func:`sync`
uploads what offline or killed runs left (:func:`check_spool` refuses a planted or foreign
spool first); :class:`Follower` (``labkit sync --follow``) does so round after round while
network-less jobs run. :class:`Tracker` is the Lightning logger on top of :class:`RunClient`. Modules
that import mlflow or Lightning load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.tracking.write._client": ("DrainReport", "RunClient", "end_abandoned_run"),
        "labkit.tracking.write._follow": ("FollowedRun", "Follower"),
        "labkit.tracking.write._spool": ("SPOOL_FILE", "Spool", "find_spools"),
        "labkit.tracking.write._sync": (
            "SpoolRefused",
            "SyncResult",
            "check_spool",
            "configured_uri",
            "sync",
            "sync_spool",
        ),
        "labkit.tracking.write._tracker": ("Tracker",),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.tracking.write._client import DrainReport as DrainReport
    from labkit.tracking.write._client import RunClient as RunClient
    from labkit.tracking.write._client import end_abandoned_run as end_abandoned_run
    from labkit.tracking.write._follow import FollowedRun as FollowedRun
    from labkit.tracking.write._follow import Follower as Follower
    from labkit.tracking.write._spool import SPOOL_FILE as SPOOL_FILE
    from labkit.tracking.write._spool import Spool as Spool
    from labkit.tracking.write._spool import find_spools as find_spools
    from labkit.tracking.write._sync import SpoolRefused as SpoolRefused
    from labkit.tracking.write._sync import SyncResult as SyncResult
    from labkit.tracking.write._sync import check_spool as check_spool
    from labkit.tracking.write._sync import configured_uri as configured_uri
    from labkit.tracking.write._sync import sync as sync
    from labkit.tracking.write._sync import sync_spool as sync_spool
    from labkit.tracking.write._tracker import Tracker as Tracker
else:
    __getattr__ = _lazy_getattr
