"""Options of the task families, as users write them under ``task:`` (no torch here)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from labkit.config._base import ComponentSpec

__all__ = ["TASK_SPECS", "ClassificationSpec"]


class ClassificationSpec(ComponentSpec):
    """Single-label classification: cross-entropy, accuracy, ROC AUC, confusion matrix."""

    target: ClassVar[str] = "labkit.tasks._classification:ClassificationTask"
    #: what the task logs at every validation (early stopping, checkpoints and studies may watch it)
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss", "val_acc")
    kind: Literal["classification"]
    num_classes: PositiveInt | None = Field(default=None, description="default: from the data")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind", "num_classes"})


TASK_SPECS: tuple[type[ComponentSpec], ...] = (ClassificationSpec,)
