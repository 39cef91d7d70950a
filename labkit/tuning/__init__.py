"""Hyperparameter search with Optuna (the only package that imports optuna).

``labkit tune`` creates a study in an RDB storage (SQLite on one machine, PostgreSQL across
machines), queues exactly N trials, and runs worker processes that claim them; each trial is an
ordinary labkit run logged as a child of the study's MLflow parent run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.config": ("default_storage",),
        "labkit.tuning._cluster": ("submit_study", "summarize_study"),
        "labkit.tuning._dashboard": ("dashboard_ui",),
        "labkit.tuning._optuna": ("Heartbeat",),
        "labkit.tuning._pareto": (
            "format_front",
            "is_multi_objective",
            "pareto_front",
            "point_experiment",
            "write_front",
        ),
        "labkit.tuning._study": ("StudyHandle",),
        "labkit.tuning._tune": ("StudyReport", "best_experiment", "study_report", "tune", "worker_loop"),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.config import default_storage as default_storage
    from labkit.tuning._cluster import submit_study as submit_study
    from labkit.tuning._cluster import summarize_study as summarize_study
    from labkit.tuning._dashboard import dashboard_ui as dashboard_ui
    from labkit.tuning._optuna import Heartbeat as Heartbeat
    from labkit.tuning._pareto import format_front as format_front
    from labkit.tuning._pareto import is_multi_objective as is_multi_objective
    from labkit.tuning._pareto import pareto_front as pareto_front
    from labkit.tuning._pareto import point_experiment as point_experiment
    from labkit.tuning._pareto import write_front as write_front
    from labkit.tuning._study import StudyHandle as StudyHandle
    from labkit.tuning._tune import StudyReport as StudyReport
    from labkit.tuning._tune import best_experiment as best_experiment
    from labkit.tuning._tune import study_report as study_report
    from labkit.tuning._tune import tune as tune
    from labkit.tuning._tune import worker_loop as worker_loop
else:
    __getattr__ = _lazy_getattr
