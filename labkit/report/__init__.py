"""What the group looks at in its meetings: comparison tables of runs across users and
experiments (``labkit compare``), the notebook API (:func:`labkit.runs`), the HTML report, and
the cross-run physics curves drawn from the runs' stored test outputs (``labkit plot``).

Reads MLflow only through :mod:`labkit.tracking`; imports neither torch nor Lightning, so
``labkit compare`` starts in well under a second on a login node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.report._api": ("default_uri", "history", "runs"),
        "labkit.report._figures": ("CurveGroup", "physics_figures"),
        "labkit.report._format": ("format_table",),
        "labkit.report._html": ("ReportSources", "build_report"),
        "labkit.report._outputs": ("RunOutputs", "load_outputs", "read_outputs"),
        "labkit.report._physics": ("group_by_seed", "plot_runs", "save_figures"),
        "labkit.report._table": (
            "HEADLINE",
            "compare_frame",
            "higher_is_better",
            "parse_filter",
            "parse_since",
            "runs_frame",
            "select",
        ),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.report._api import default_uri as default_uri
    from labkit.report._api import history as history
    from labkit.report._api import runs as runs
    from labkit.report._figures import CurveGroup as CurveGroup
    from labkit.report._figures import physics_figures as physics_figures
    from labkit.report._format import format_table as format_table
    from labkit.report._html import ReportSources as ReportSources
    from labkit.report._html import build_report as build_report
    from labkit.report._outputs import RunOutputs as RunOutputs
    from labkit.report._outputs import load_outputs as load_outputs
    from labkit.report._outputs import read_outputs as read_outputs
    from labkit.report._physics import group_by_seed as group_by_seed
    from labkit.report._physics import plot_runs as plot_runs
    from labkit.report._physics import save_figures as save_figures
    from labkit.report._table import HEADLINE as HEADLINE
    from labkit.report._table import compare_frame as compare_frame
    from labkit.report._table import higher_is_better as higher_is_better
    from labkit.report._table import parse_filter as parse_filter
    from labkit.report._table import parse_since as parse_since
    from labkit.report._table import runs_frame as runs_frame
    from labkit.report._table import select as select
else:
    __getattr__ = _lazy_getattr
