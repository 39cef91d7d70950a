"""Options of the task families, as users write them under ``task:`` (no torch here).

Each spec also says what its task needs from the data (``target_kind``) and turns what the data
module found (its :class:`~labkit.data.DataInfo`) into the model's output size and the task's
arguments (:meth:`model_outputs`), so that mistakes surface before any training.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from labkit.config._base import MAX_CLASSES, ComponentSpec, Seed
from labkit.errors import ConfigError, DataError, did_you_mean

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
    """What every task spec provides."""

    #: what the data's targets are: integer class labels, real values, or per-pixel labels
    target_kind: ClassVar[Literal["labels", "values", "masks"]] = "labels"
    #: what the task logs at every validation (early stopping, checkpoints and studies may watch it)
    monitorable: ClassVar[tuple[str, ...]] = ("train_loss", "val_loss")

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        """The model's number of outputs and the task's keyword arguments taken from the data."""
        raise NotImplementedError

    def model_args(self, info: Any) -> dict[str, Any]:
        """What the model is built from besides its output size and its own options: the shape of
        one input sample (a task may feed the model only part of the inputs, or more)."""
        return {"in_shape": tuple(info.in_shape)}

    def extras(self) -> tuple[str, ...]:
        """Per-event arrays of the data the task needs for its test metrics, besides inputs and
        targets (they reach it as ``DataInfo.extras``, test split only)."""
        return ()


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
    bins: Bins = Field(default=10, description="bins of the true value in the resolution figures")

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


def _class_names(info: Any, num_classes: int | None) -> tuple[int, tuple[str, ...]]:
    k = num_classes or info.num_classes
    if k is None:
        raise DataError("cannot tell the number of classes from this data: set task.num_classes")
    if info.num_classes is not None and info.num_classes > k:
        raise DataError(f"the data has labels up to {info.num_classes - 1}, but task.num_classes is {k}")
    names = tuple(info.class_names) if len(info.class_names) == k else tuple(str(i) for i in range(k))
    return k, names


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

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        k, names = _class_names(info, self.num_classes)
        if k < 2:
            raise DataError("the masks hold a single class: segmentation needs two or more")
        if self.class_weights is not None and len(self.class_weights) != k:
            raise ConfigError(
                f"task.class_weights: {len(self.class_weights)} weights for {k} classes ({', '.join(names)})"
            )
        return k, {"num_classes": k, "class_names": names}


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

    def extras(self) -> tuple[str, ...]:
        return (self.likelihood_ratio,) if self.likelihood_ratio else ()

    def _mass_index(self, info: Any) -> int:
        names = tuple(info.input_names)
        if self.mass_feature not in names:
            shown = ", ".join(names) or "none (the inputs need a `columns` attribute or one key per column)"
            raise DataError(
                f"task.mass_feature: no input column {self.mass_feature!r}"
                f"{did_you_mean(self.mass_feature, names)}; the columns are: {shown}"
            )
        return names.index(self.mass_feature)

    def model_args(self, info: Any) -> dict[str, Any]:
        return {"in_shape": (int(info.in_shape[0]) - 1,)}  # every feature but the mass

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        index = self._mass_index(info)
        features = int(info.in_shape[0]) - 1
        outputs = features if self.method == "autoencoder" else 1
        reference = info.extras.get(self.likelihood_ratio) if self.likelihood_ratio else None
        names = tuple(n for n in info.input_names if n != self.mass_feature)
        return outputs, {"mass_index": index, "feature_names": names, "reference_scores": reference}


class SurrogateSpec(TaskSpec):
    """A conditional generative model of the ``calo`` simulator's showers given the incident
    energy, judged as in the Fast Calorimeter Simulation Challenge: separation power of
    high-level features, a Fréchet distance, a classifier two-sample test, generation time."""

    target: ClassVar[str] = "labkit.tasks._surrogate:SurrogateTask"
    target_kind: ClassVar[Literal["labels", "values", "masks"]] = "values"
    kind: Literal["surrogate"]
    bins: Bins = Field(default=30, description="bins of each high-level feature (separation power)")
    classifier_hidden: tuple[Annotated[int, Field(gt=0, le=2**16)], ...] = Field(
        default=(128, 128), min_length=1, description="layers of the two-sample test's classifier"
    )
    reference: bool = Field(
        default=True,
        description="simulate a second sample at the test energies: reference_classifier_auc, reference_fpd",
    )
    timing_repeats: Annotated[int, Field(gt=0, le=1000)] = Field(
        default=5, description="repeats of each timing (the median is logged)"
    )
    sample_seed: Seed = Field(default=0, description="seed of the generated and reference test showers")

    def options(self) -> dict[str, object]:
        return self.model_dump(exclude={"kind"})

    def model_args(self, info: Any) -> dict[str, Any]:
        return {"in_shape": tuple(info.in_shape), "conditions": len(info.target_names)}

    def model_outputs(self, info: Any) -> tuple[int, dict[str, Any]]:
        if info.simulator != "calo":
            where = f"simulator {info.simulator!r}" if info.simulator else "a file or a class of your own"
            raise DataError(
                f"task surrogate: the data come from {where}; a surrogate learns labkit's calo simulator "
                "(data: {name: simulated, simulator: calo, inputs: showers, targets: [incident_energy]}), "
                "whose options it needs to time it and to write showers in its layout"
            )
        if tuple(info.target_names) != ("incident_energy",):
            raise DataError(
                "task surrogate: data.targets must be [incident_energy] (the condition), got "
                f"[{', '.join(info.target_names)}]"
            )
        options = dict(info.simulator_options)
        if options.get("particle") == "mixed":
            raise DataError(
                "task surrogate: the showers are conditioned on the energy alone: simulate one particle "
                "(data.parameters.particle: electron or pion), not mixed"
            )
        grid = (int(options["layers"]), len(tuple(options["radial_edges"])) - 1, int(options["angular_bins"]))
        if tuple(info.in_shape) != grid:
            raise DataError(
                f"task surrogate: data.inputs must be the showers, shape {grid} (layers, radial bins, "
                f"angular bins); got samples of shape {tuple(info.in_shape)}"
            )
        if float(options.get("threshold", 0.0)) < 0:
            raise DataError(
                "task surrogate: the surrogate models cell energies >= 0 with exact zeros; "
                f"data.parameters.threshold must be >= 0, got {options['threshold']}"
            )
        size = grid[0] * grid[1] * grid[2]
        return size, {
            "scaling": tuple(info.target_scaling),
            "simulator": info.simulator,
            "simulator_options": options,
        }


TASK_SPECS: tuple[type[ComponentSpec], ...] = (
    ClassificationSpec,
    RegressionSpec,
    SegmentationSpec,
    AnomalySpec,
    SurrogateSpec,
)
