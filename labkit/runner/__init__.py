"""Running experiments: run directories, building the Trainer, the run lifecycle.

``RunDir`` is plain Python; :func:`run` imports torch and Lightning when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr
from labkit._rundir import RunDir

__all__ = [
    "RunDir",
    "RunHooks",
    "RunResult",
    "compare_metrics",
    "find_run_dir",
    "generate_showers",
    "load_surrogate",
    "plan_reproduction",
    "run",
]

if TYPE_CHECKING:
    from labkit.runner._generate import find_run_dir, generate_showers, load_surrogate
    from labkit.runner._reproduce import compare_metrics, plan_reproduction
    from labkit.runner._run import RunHooks, RunResult, run

__getattr__ = lazy_getattr(
    __name__,
    {
        **{"RunHooks": "labkit.runner._run", "RunResult": "labkit.runner._run", "run": "labkit.runner._run"},
        "find_run_dir": "labkit.runner._generate",
        "generate_showers": "labkit.runner._generate",
        "load_surrogate": "labkit.runner._generate",
        "compare_metrics": "labkit.runner._reproduce",
        "plan_reproduction": "labkit.runner._reproduce",
    },
)
