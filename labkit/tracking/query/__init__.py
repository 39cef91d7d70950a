"""The read path for the group meeting: runs read from MLflow into plain :class:`RunRecord`
objects, through a local cache, and the curves, figures and files of one run.

``fetch_runs`` against an ``http(s)://`` server uses plain ``requests`` (no mlflow import, so
``labkit compare`` stays fast on a login node); other stores and the per-run reads go through
MLflow's client, imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.tracking.query._cache": ("RunRecord",),
        "labkit.tracking.query._fetch": (
            "fetch_artifact_file",
            "fetch_artifact_text",
            "fetch_figures",
            "fetch_history",
            "fetch_run",
            "fetch_runs",
        ),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.tracking.query._cache import RunRecord as RunRecord
    from labkit.tracking.query._fetch import fetch_artifact_file as fetch_artifact_file
    from labkit.tracking.query._fetch import fetch_artifact_text as fetch_artifact_text
    from labkit.tracking.query._fetch import fetch_figures as fetch_figures
    from labkit.tracking.query._fetch import fetch_history as fetch_history
    from labkit.tracking.query._fetch import fetch_run as fetch_run
    from labkit.tracking.query._fetch import fetch_runs as fetch_runs
else:
    __getattr__ = _lazy_getattr
