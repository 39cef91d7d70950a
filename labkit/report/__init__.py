"""What the group looks at in its meetings: comparison tables of runs across users and
experiments (``labkit compare``), and the notebook API (:func:`labkit.runs`).

Reads MLflow only through :mod:`labkit.tracking`; imports neither torch nor Lightning, so
``labkit compare`` starts in well under a second on a login node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "HEADLINE",
    "ReportSources",
    "build_report",
    "compare_frame",
    "default_uri",
    "format_table",
    "higher_is_better",
    "parse_filter",
    "parse_since",
    "runs_frame",
    "select",
]

if TYPE_CHECKING:
    from labkit.report._api import default_uri
    from labkit.report._format import format_table
    from labkit.report._html import ReportSources, build_report
    from labkit.report._table import (
        HEADLINE,
        compare_frame,
        higher_is_better,
        parse_filter,
        parse_since,
        runs_frame,
        select,
    )

_LAZY = {
    "format_table": "labkit.report._format",
    **dict.fromkeys(
        (
            "HEADLINE",
            "compare_frame",
            "higher_is_better",
            "parse_filter",
            "parse_since",
            "runs_frame",
            "select",
        ),
        "labkit.report._table",
    ),
}
__getattr__ = lazy_getattr(
    __name__,
    {
        **_LAZY,
        "default_uri": "labkit.report._api",
        "ReportSources": "labkit.report._html",
        "build_report": "labkit.report._html",
    },
)
