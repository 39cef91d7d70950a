"""One LightningModule per task family. Each takes a plain ``nn.Module`` from
:mod:`labkit.models` and owns the loss, the metrics (torchmetrics) and the diagnostic figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "AnomalyTask",
    "ClassificationTask",
    "RegressionTask",
    "SegmentationTask",
    "Task",
    "build_optimizer",
]

if TYPE_CHECKING:
    from labkit.tasks._anomaly import AnomalyTask
    from labkit.tasks._base import Task, build_optimizer
    from labkit.tasks._classification import ClassificationTask
    from labkit.tasks._regression import RegressionTask
    from labkit.tasks._segmentation import SegmentationTask

_LAZY = {
    "AnomalyTask": "labkit.tasks._anomaly",
    "ClassificationTask": "labkit.tasks._classification",
    "RegressionTask": "labkit.tasks._regression",
    "SegmentationTask": "labkit.tasks._segmentation",
    "Task": "labkit.tasks._base",
    "build_optimizer": "labkit.tasks._base",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
