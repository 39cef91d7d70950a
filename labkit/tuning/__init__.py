"""Hyperparameter search with Optuna (the only package that imports optuna).

``labkit tune`` creates a study in an RDB storage (SQLite on one machine, PostgreSQL across
machines), queues exactly N trials, and runs worker processes that claim them; each trial is an
ordinary labkit run logged as a child of the study's MLflow parent run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "Heartbeat",
    "StudyHandle",
    "StudyReport",
    "best_experiment",
    "default_storage",
    "study_report",
    "submit_study",
    "summarize_study",
    "tune",
    "worker_loop",
]

if TYPE_CHECKING:
    from labkit.tuning._cluster import submit_study, summarize_study
    from labkit.tuning._optuna import Heartbeat
    from labkit.tuning._study import StudyHandle
    from labkit.tuning._tune import (
        StudyReport,
        best_experiment,
        default_storage,
        study_report,
        tune,
        worker_loop,
    )

_ELSEWHERE = {
    "Heartbeat": "labkit.tuning._optuna",
    "StudyHandle": "labkit.tuning._study",
    "submit_study": "labkit.tuning._cluster",
    "summarize_study": "labkit.tuning._cluster",
}
__getattr__ = lazy_getattr(__name__, {name: _ELSEWHERE.get(name, "labkit.tuning._tune") for name in __all__})
