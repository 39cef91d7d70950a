"""Running experiments: run directories, building the Trainer, the run lifecycle.

``RunDir`` and ``JobOptions`` are plain Python; :func:`run` and :class:`RunSession` import torch
and Lightning when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr
from labkit._rundir import JobOptions, RunDir

__all__ = [
    "JobOptions",
    "RerunPlan",
    "RunDir",
    "RunHooks",
    "RunOptions",
    "RunResult",
    "RunSession",
    "compare_metrics",
    "find_run_dir",
    "generate_showers",
    "load_surrogate",
    "plan_rerun",
    "plan_reproduction",
    "run",
    "write_simulation",
]

if TYPE_CHECKING:
    from labkit.runner._generate import find_run_dir, generate_showers, load_surrogate
    from labkit.runner._reproduce import RerunPlan, compare_metrics, plan_reproduction, plan_rerun
    from labkit.runner._run import RunHooks, run
    from labkit.runner._session import RunOptions, RunResult, RunSession
    from labkit.runner._simulate import write_simulation

__getattr__ = lazy_getattr(
    __name__,
    {
        **{"RunHooks": "labkit.runner._run", "run": "labkit.runner._run"},
        **{name: "labkit.runner._session" for name in ("RunOptions", "RunResult", "RunSession")},
        "find_run_dir": "labkit.runner._generate",
        "generate_showers": "labkit.runner._generate",
        "load_surrogate": "labkit.runner._generate",
        "compare_metrics": "labkit.runner._reproduce",
        "plan_reproduction": "labkit.runner._reproduce",
        "plan_rerun": "labkit.runner._reproduce",
        "RerunPlan": "labkit.runner._reproduce",
        "write_simulation": "labkit.runner._simulate",
    },
)
