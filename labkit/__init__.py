"""labkit: experiment files in, tracked Lightning runs out.

The package imports nothing heavy at import time; :func:`run` and friends import torch and
Lightning when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr
from labkit.errors import LabkitError

__version__ = "0.1.0"
__all__ = [
    "Experiment",
    "LabkitError",
    "RunResult",
    "__version__",
    "history",
    "load_experiment",
    "run",
    "runs",
]

if TYPE_CHECKING:
    from labkit.config import Experiment, load_experiment
    from labkit.report._api import history, runs
    from labkit.runner import RunResult, run

_LAZY = {
    "Experiment": "labkit.config",
    "load_experiment": "labkit.config",
    "RunResult": "labkit.runner",
    "run": "labkit.runner",
    "runs": "labkit.report._api",
    "history": "labkit.report._api",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
