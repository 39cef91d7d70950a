"""Running experiments: run directories, building the Trainer, the run lifecycle.

``RunDir`` and ``JobOptions`` are plain Python; :func:`run` and :class:`RunSession` import torch
and Lightning when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit._rundir": ("JobOptions", "RunDir"),
        "labkit.runner._export": ("ExportResult", "export_run"),
        "labkit.runner._generate": ("find_run_dir", "generate_showers", "load_surrogate"),
        "labkit.runner._predict": ("PredictSummary", "predict"),
        "labkit.runner._reproduce": ("RerunPlan", "compare_metrics", "plan_reproduction", "plan_rerun"),
        "labkit.runner._run": ("RunHooks", "run"),
        "labkit.runner._runlog": ("record_prediction",),
        "labkit.runner._outcome": ("RunOptions", "RunResult"),
        "labkit.runner._session": ("RunSession",),
        "labkit.runner._simulate": ("write_simulation",),
        "labkit.runner._trained": ("TrainedRun", "load_trained"),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit._rundir import JobOptions as JobOptions
    from labkit._rundir import RunDir as RunDir
    from labkit.runner._export import ExportResult as ExportResult
    from labkit.runner._export import export_run as export_run
    from labkit.runner._generate import find_run_dir as find_run_dir
    from labkit.runner._generate import generate_showers as generate_showers
    from labkit.runner._generate import load_surrogate as load_surrogate
    from labkit.runner._outcome import RunOptions as RunOptions
    from labkit.runner._outcome import RunResult as RunResult
    from labkit.runner._predict import PredictSummary as PredictSummary
    from labkit.runner._predict import predict as predict
    from labkit.runner._reproduce import RerunPlan as RerunPlan
    from labkit.runner._reproduce import compare_metrics as compare_metrics
    from labkit.runner._reproduce import plan_reproduction as plan_reproduction
    from labkit.runner._reproduce import plan_rerun as plan_rerun
    from labkit.runner._run import RunHooks as RunHooks
    from labkit.runner._run import run as run
    from labkit.runner._runlog import record_prediction as record_prediction
    from labkit.runner._session import RunSession as RunSession
    from labkit.runner._simulate import write_simulation as write_simulation
    from labkit.runner._trained import TrainedRun as TrainedRun
    from labkit.runner._trained import load_trained as load_trained
else:
    __getattr__ = _lazy_getattr
