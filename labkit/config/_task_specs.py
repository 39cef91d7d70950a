"""Options of the task families, as users write them under ``task:`` (no torch here).

Each spec also says what its task needs from the data (``target_kind``) and what it logs at
validation (``monitorable``). Turning what the data module found into the model's output size and
the task's arguments is the task class's business (``labkit.tasks.Task.model_outputs``).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from labkit.config._base import MAX_CLASSES, ComponentSpec, Seed

__all__ = [
    "TASK_SPECS",
    "AnomalySpec",
    "ClassificationSpec",
    "RegressionSpec",
    "SegmentationSpec",
    "SurrogateSpec",
    "TaskSpec",
]


Classes = Annotated[int, Field(gt=0, le=MAX_CLASSES)]
#: most bins of a histogram or figure
Bins = Annotated[int, Field(gt=0, le=10_000)]


class TaskSpec(ComponentSpec):
    """What every task spec provides: the ``kind`` users write (a ``Literal`` in each spec)."""

    kind: str

    #: what the data's targets are: integer class labels, real values, or per-pixel labels
    target_kind: ClassVar[Literal["labels", "values", "masks"]] = "labels"
    #: what the task logs at every validation (early stopping, checkpoints and studies may watch it)
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss")


class ClassificationSpec(TaskSpec):
    """Single-label classification: cross-entropy, accuracy, ROC AUC, confusion matrix; for two
    classes also the background rejection at a fixed signal efficiency."""

    target: ClassVar[str] = "labkit.tasks._classification:ClassificationTask"
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss", "val_acc")
    kind: Literal["classification"]
    num_classes: Classes | None = Field(default=None, description="default: from the data")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    signal_class: str | None = Field(
        default=None, description="two classes: the signal for test_rejection_at_eff90 (default: the second)"
    )

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind", "num_classes", "signal_class"})


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
    bins: Bins = Field(default=10, description="bins of the true value in the resolution figures")

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind"})


class SegmentationSpec(TaskSpec):
    """Per-pixel classification of images: cross-entropy and/or Dice loss; per-class IoU and Dice."""

    target: ClassVar[str] = "labkit.tasks._segmentation:SegmentationTask"
    target_kind: ClassVar[Literal["labels", "values", "masks"]] = "masks"
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss", "val_miou")
    kind: Literal["segmentation"]
    num_classes: Classes | None = Field(default=None, description="default: from the data")
    loss: Literal["cross_entropy", "dice", "cross_entropy+dice"] = "cross_entropy+dice"
    class_weights: tuple[Annotated[float, Field(ge=0.0, le=1e6)], ...] | None = Field(
        default=None, description="cross-entropy weight per class (rare classes weigh more)"
    )
    overlays: int = Field(default=4, ge=0, le=16, description="test images drawn in the overlay figure")

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind", "num_classes"})


#: a mass-window edge, compared with float32 data (beyond about 3.4e38 it would be infinite)
_Mass = Annotated[float, Field(ge=-1e38, le=1e38)]


class AnomalySpec(TaskSpec):
    """Resonant anomaly detection: an unsupervised autoencoder trained on the sidebands, or a
    weakly supervised classifier of signal region vs sidebands (CWoLa); judged by the SIC."""

    target: ClassVar[str] = "labkit.tasks._anomaly:AnomalyTask"
    kind: Literal["anomaly"]
    method: Literal["autoencoder", "cwola"] = "cwola"
    mass_feature: str = Field(default="mjj", description="the input column the resonance lives in")
    signal_region: tuple[
        Annotated[float, Field(ge=-1e38, le=1e38)], Annotated[float, Field(ge=-1e38, le=1e38)]
    ] = Field(
        default=(3.3, 3.7), description="window [low, high) of the mass feature; the rest are sidebands"
    )
    likelihood_ratio: str | None = Field(
        default="likelihood_ratio", description="the data key of the exact likelihood ratio (for np_max_sic)"
    )
    min_background: Annotated[int, Field(gt=0, le=10**8)] = Field(
        default=10, description="fewest background events behind a SIC value"
    )
    kl_weight: float = Field(
        default=1.0, ge=0.0, le=1e6, description="β of the KL term (variational autoencoders)"
    )

    @field_validator("signal_region")
    @classmethod
    def _ordered_window(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"the signal region must be (low, high) with low < high, got {list(value)}")
        return value

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind", "likelihood_ratio", "mass_feature"})


class SurrogateSpec(TaskSpec):
    """A conditional generative model of the ``calo`` simulator's showers given the incident
    energy, judged as in the Fast Calorimeter Simulation Challenge: separation power of
    high-level features, a Fréchet distance, a classifier two-sample test, generation time."""

    target: ClassVar[str] = "labkit.tasks._surrogate:SurrogateTask"
    target_kind: ClassVar[Literal["labels", "values", "masks"]] = "values"
    kind: Literal["surrogate"]
    bins: Bins = Field(default=30, description="bins of each high-level feature (separation power)")
    evaluation_showers: Annotated[int, Field(ge=100, le=1_000_000)] = Field(
        default=20_000,
        description="showers generated and simulated (twice, with reference) for the test's judgement",
    )
    low_level: bool = Field(default=True, description="run the low-level (cell) classifier test")
    reference: bool = Field(
        default=True,
        description="simulate a second sample: the floor (reference_*) and the gaps test_hl_gap, test_ll_gap",
    )
    timing_repeats: Annotated[int, Field(gt=0, le=1000)] = Field(
        default=5, description="repeats of each timing (the median is logged)"
    )
    sample_seed: Seed = Field(default=0, description="seed of the generated and reference test showers")

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind"})


TASK_SPECS: tuple[type[TaskSpec], ...] = (
    ClassificationSpec,
    RegressionSpec,
    SegmentationSpec,
    AnomalySpec,
    SurrogateSpec,
)
