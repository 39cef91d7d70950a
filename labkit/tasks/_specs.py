"""Options of the task families, as users write them under ``task:`` (no torch here).

Each spec also says what its task needs from the data (``target_kind``) and turns what the data
module found (its :class:`~labkit.data.DataInfo`) into the model's output size and the task's
arguments (:meth:`model_outputs`), so that mistakes surface before any training.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from labkit.config._base import ComponentSpec
from labkit.errors import ConfigError, DataError, did_you_mean

__all__ = ["TASK_SPECS", "ClassificationSpec", "RegressionSpec", "TaskSpec"]


class TaskSpec(ComponentSpec):
    """What every task spec provides."""

    #: what the data's targets are: integer class labels, or real values
    target_kind: ClassVar[Literal["labels", "values"]] = "labels"
    #: what the task logs at every validation (early stopping, checkpoints and studies may watch it)
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss")

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        """The model's number of outputs and the task's keyword arguments taken from the data."""
        raise NotImplementedError


class ClassificationSpec(TaskSpec):
    """Single-label classification: cross-entropy, accuracy, ROC AUC, confusion matrix; for two
    classes also the background rejection at a fixed signal efficiency."""

    target: ClassVar[str] = "labkit.tasks._classification:ClassificationTask"
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss", "val_acc")
    kind: Literal["classification"]
    num_classes: PositiveInt | None = Field(default=None, description="default: from the data")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    signal_class: str | None = Field(
        default=None, description="two classes: the signal for test_rejection_at_eff90 (default: the second)"
    )

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind", "num_classes", "signal_class"})

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        num_classes = self.num_classes or info.num_classes
        if num_classes is None:
            raise DataError("cannot tell the number of classes from this data: set task.num_classes")
        if info.num_classes is not None and info.num_classes > num_classes:
            raise DataError(
                f"the data has labels up to {info.num_classes - 1}, but task.num_classes is {num_classes}"
            )
        if num_classes < 2:
            raise DataError(
                "the data holds a single class (every label is 0): classification needs two or more"
            )
        names = tuple(info.class_names) if len(info.class_names) == num_classes else ()
        signal = num_classes - 1
        if self.signal_class is not None:
            shown = names or tuple(str(i) for i in range(num_classes))
            if self.signal_class not in shown:
                raise ConfigError(
                    f"task.signal_class: no class {self.signal_class!r}"
                    f"{did_you_mean(self.signal_class, shown)}; the classes are: {', '.join(shown)}"
                )
            signal = shown.index(self.signal_class)
        return num_classes, {"num_classes": num_classes, "class_names": names, "signal_class": signal}


class RegressionSpec(TaskSpec):
    """Regression of one or more real targets: MSE, MAE or Gaussian negative log-likelihood
    (the model also predicts each target's variance); per-target RMSE, bias and resolution."""

    target: ClassVar[str] = "labkit.tasks._regression:RegressionTask"
    target_kind: ClassVar[Literal["labels", "values"]] = "values"
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss", "val_rmse")
    kind: Literal["regression"]
    loss: Literal["mse", "mae", "gaussian_nll"] = "mse"
    resolution_fit: tuple[str, ...] = Field(
        default=(), description="targets whose relative resolution is fitted with a/sqrt(x) (+) b"
    )
    bins: PositiveInt = Field(default=10, description="bins of the true value in the resolution figures")

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind"})

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        names = tuple(info.target_names)
        if not names:
            raise DataError("regression needs real-valued targets: name them in data.targets")
        for name in self.resolution_fit:
            if name not in names:
                raise ConfigError(
                    f"task.resolution_fit: no target {name!r}{did_you_mean(name, names)}; "
                    f"the targets are: {', '.join(names)}"
                )
        outputs = len(names) * (2 if self.loss == "gaussian_nll" else 1)
        return outputs, {"targets": names, "scaling": info.target_scaling}


TASK_SPECS: tuple[type[ComponentSpec], ...] = (ClassificationSpec, RegressionSpec)
