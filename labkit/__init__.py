"""labkit: experiment files in, tracked Lightning runs out.

The package imports nothing heavy at import time; :func:`run` and friends import torch and
Lightning when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports
from labkit.errors import LabkitError as LabkitError

__version__ = "0.1.0"

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.config": ("Experiment", "load_experiment"),
        "labkit.report": ("history", "runs"),
        "labkit.runner": ("RunResult", "run"),
    },
    eager=("LabkitError", "__version__"),
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.config import Experiment as Experiment
    from labkit.config import load_experiment as load_experiment
    from labkit.report import history as history
    from labkit.report import runs as runs
    from labkit.runner import RunResult as RunResult
    from labkit.runner import run as run
else:
    __getattr__ = _lazy_getattr
