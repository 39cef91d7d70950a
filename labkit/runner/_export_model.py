"""What ``labkit export`` writes and how it is judged: :class:`ExportModule` (raw physical
inputs in, physical outputs out, each task's own output convention), labkit's test-step path it
is compared with, and :func:`relative_difference`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.errors import LabkitError

__all__ = [
    "FLOOR_FRACTION",
    "ExportCheck",
    "ExportModule",
    "relative_difference",
    "task_kind",
    "tensors",
    "reference_outputs",
]

#: an element below this fraction of its column's largest |value| is judged against that fraction
FLOOR_FRACTION = 0.1


# -- the model that is exported ------------------------------------------------------------------
class ExportModule(nn.Module):
    """Raw physical inputs in, physical outputs out: ``(x − mean) / std`` (the run's fitted input
    standardisation, when it has one) and then the task's own output convention (``kind``)."""

    def __init__(
        self,
        task: nn.Module,
        *,
        kind: str,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.task, self.kind = task, kind
        self.folded = mean is not None and std is not None
        if mean is not None and std is not None:
            self.register_buffer("input_mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
            self.register_buffer("input_std", torch.as_tensor(np.asarray(std, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> Any:
        if self.folded:
            mean, std = self.input_mean, self.input_std
            assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
            x = (x - mean) / std
        return self.outputs(x)

    def outputs(self, z: torch.Tensor) -> Any:
        """The physical outputs of standardised inputs ``z`` (no Python ``len``: batch-free)."""
        task: Any = self.task
        if self.kind in ("classification", "segmentation"):
            return torch.softmax(task.model(z), dim=1)
        if self.kind == "regression":
            out = task.model(z)
            return task.physical(out.reshape(out.shape[0], -1)[:, : len(task.targets)])
        if self.kind == "anomaly":
            return _anomaly_score(task, z)
        return task(z)  # a user's own LightningModule: its forward


def _anomaly_score(task: Any, x: torch.Tensor) -> torch.Tensor:
    """:meth:`AnomalyTask.forward` written without ``len(x)`` (TorchScript traces ``len`` as a
    constant batch size); the check compares it with the task's own forward."""
    i = task.mass_index
    features = torch.cat([x[:, :i], x[:, i + 1 :]], dim=1)
    z = (features - task.feature_mean) / task.feature_std
    out = task.model(z)
    if not isinstance(out, torch.Tensor):
        score: torch.Tensor = task(x)  # a variational model's output object: the task's own path
        return score
    if task.method == "cwola":
        return torch.sigmoid(out.reshape(out.shape[0], -1)[:, 0])
    error: torch.Tensor = 0.5 * (out - z).square().sum(dim=1)
    return error


def reference_outputs(task: Any, kind: str, z: torch.Tensor) -> list[torch.Tensor]:
    """What labkit's own test step makes of standardised inputs ``z``, in physical units."""
    with torch.no_grad():
        if kind in ("classification", "segmentation"):
            return [torch.softmax(task.model(z), dim=1)]
        if kind == "regression":
            mean, _ = task._split(task.model(z))  # the test step's own split of the outputs
            return [task.physical(mean)]
        return tensors(task(z), type(task).__name__)  # anomaly: AnomalyTask.forward is the score


def task_kind(task: nn.Module, task_name: str) -> str:
    """``classification``, ``regression``, ``anomaly``, ``segmentation`` or ``custom`` (a user's
    own LightningModule); LabkitError for what cannot be exported."""
    from labkit.tasks import AnomalyTask, ClassificationTask, RegressionTask, SegmentationTask, Task

    kinds = (
        (SegmentationTask, "segmentation"),
        (ClassificationTask, "classification"),
        (RegressionTask, "regression"),
        (AnomalyTask, "anomaly"),
    )
    for cls, kind in kinds:
        if isinstance(task, cls):
            return kind
    if isinstance(task, Task):
        raise LabkitError(
            f"task.kind {task_name!r}: labkit export handles classification, regression, anomaly, "
            "segmentation and a user's own LightningModule (model.class_path), not this task"
        )
    import lightning.pytorch as pl

    if type(task).forward in (pl.LightningModule.forward, nn.Module.forward):
        raise LabkitError(
            f"model.class_path: {type(task).__name__} defines no forward(x); labkit export writes a "
            "user's own LightningModule's forward(x) (the input batch in, a tensor or a tuple of "
            "tensors out): define it"
        )
    return "custom"


def tensors(out: Any, who: str) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
        return list(out)
    raise LabkitError(
        f"{who}.forward returned {type(out).__name__}; labkit export needs a tensor or a tuple of tensors"
    )


# -- the difference ------------------------------------------------------------------------------
def relative_difference(
    got: Sequence[np.ndarray], want: Sequence[np.ndarray], *, floor_fraction: float = FLOOR_FRACTION
) -> tuple[float, float]:
    """``(max |a − b|, max |a − b| / max(|b|, floor))`` over every element of every output.

    ``floor = floor_fraction × max |b|`` over the events, per column (axis 1: a class, a target, a
    channel; the whole output when it has one axis), 1 where the column is all zero. float32
    resolves a number only to a few units in the last place of the largest numbers it was summed
    from, so an element far below its column's scale (a logit crossing zero, a probability of
    1e-9) is judged against the floor, not against itself. Both NaN counts as equal; NaN against
    a number as an infinite difference."""
    worst_abs = worst_rel = 0.0
    if len(got) != len(want):
        return float("inf"), float("inf")
    for a, b in zip(got, want, strict=True):
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a64.shape != b64.shape:
            return float("inf"), float("inf")
        if a64.size == 0:
            continue
        both_nan = np.isnan(a64) & np.isnan(b64)
        with np.errstate(invalid="ignore"):
            diff = np.where(both_nan | (a64 == b64), 0.0, np.abs(a64 - b64))  # inf == inf too
        diff = np.where(np.isnan(diff), np.inf, diff)
        magnitude = np.where(np.isfinite(b64), np.abs(b64), 0.0)
        axes = tuple(i for i in range(b64.ndim) if i != 1)  # all but the column axis
        scale = magnitude.max(axis=axes, keepdims=True)
        floor = np.where(scale > 0, floor_fraction * scale, 1.0)
        with np.errstate(invalid="ignore"):
            rel = diff / np.maximum(magnitude, floor)
        worst_abs = max(worst_abs, float(diff.max()))
        worst_rel = max(worst_rel, float(np.where(np.isnan(rel), np.inf, rel).max()))
    return worst_abs, worst_rel


@dataclass(frozen=True)
class ExportCheck:
    """One comparison of the self-check."""

    what: str  #: e.g. ``onnxruntime CPUExecutionProvider vs PyTorch``
    batch: int
    events: int
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_rel <= self.tolerance

    def line(self) -> str:
        verdict = "ok" if self.passed else f"OVER the tolerance {self.tolerance:g}"
        return (
            f"{self.what}, batch {self.batch}, {self.events} events: max abs diff {self.max_abs:.3g}, "
            f"max rel diff {self.max_rel:.3g} ({verdict})"
        )
