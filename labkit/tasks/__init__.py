"""One LightningModule per task family. Each takes a plain ``nn.Module`` from
:mod:`labkit.models` and owns the loss, the metrics (torchmetrics) and the diagnostic figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = ["ClassificationTask", "RegressionTask", "Task", "build_optimizer"]

if TYPE_CHECKING:
    from labkit.tasks._base import Task, build_optimizer
    from labkit.tasks._classification import ClassificationTask
    from labkit.tasks._regression import RegressionTask

_LAZY = {
    "ClassificationTask": "labkit.tasks._classification",
    "RegressionTask": "labkit.tasks._regression",
    "Task": "labkit.tasks._base",
    "build_optimizer": "labkit.tasks._base",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
