from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassConfusionMatrix

from labkit.config import ClassificationSpec
from labkit.errors import ConfigError, DataError, did_you_mean
from labkit.tasks._base import Task, unpack_batch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo

Batch = tuple[torch.Tensor, ...]  # (x, y) or (x, y, weights)


class ClassificationTask(Task):
    """Single-label classification with cross-entropy.

    Logs ``train_loss`` (per step), ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` and
    ``test_auc`` (one-vs-rest ROC AUC, macro-averaged over classes); with two classes also
    ``test_rejection_at_eff90``, 1/ε_B at 90 % efficiency for ``signal_class`` (the second class
    unless the experiment names another). Draws the test confusion matrix.
    """

    monitorable: ClassVar[tuple[str, ...]] = ClassificationSpec.monitorable

    @classmethod
    def model_outputs(cls, spec: TaskSpec, info: DataInfo) -> tuple[int, dict[str, Any]]:
        assert isinstance(spec, ClassificationSpec)
        num_classes = spec.num_classes or info.num_classes
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
        if spec.signal_class is not None:
            shown = names or tuple(str(i) for i in range(num_classes))
            if spec.signal_class not in shown:
                raise ConfigError(
                    f"task.signal_class: no class {spec.signal_class!r}"
                    f"{did_you_mean(spec.signal_class, shown)}; the classes are: {', '.join(shown)}"
                )
            signal = shown.index(spec.signal_class)
        return num_classes, {"num_classes": num_classes, "class_names": names, "signal_class": signal}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        *,
        num_classes: int,
        label_smoothing: float = 0.0,
        class_names: Sequence[str] = (),
        signal_class: int | None = None,
    ) -> None:
        super().__init__(model, optimizer)
        if num_classes < 2:
            raise ValueError(f"classification needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.class_names = tuple(class_names) or tuple(str(i) for i in range(num_classes))
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_auc = MulticlassAUROC(num_classes, average="macro")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self._confusion: torch.Tensor | None = None
        # two classes: the signal's score, for the background rejection at 90 % signal efficiency
        self.signal_class = num_classes - 1 if signal_class is None else signal_class
        self._scores: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        if w is None:
            return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        per = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing, reduction="none")
        return (per * w).sum() / w.sum()  # event weights (data.weights)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        logits = self.model(x)
        self.val_acc.update(logits, y)
        self.log(
            "val_loss",
            self._loss(logits, y, w),
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=True,
        )
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        logits = self.model(x)
        self.test_acc.update(logits, y)  # update only: computed once per epoch when logged
        self.test_auc.update(logits, y)
        self.test_confusion.update(logits, y)
        if self.num_classes == 2:
            score = torch.softmax(logits.detach(), dim=1)[:, self.signal_class]
            self._scores.append((score, y == self.signal_class))
        self.log("test_loss", self._loss(logits, y, w), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("test_acc", self.test_acc, on_epoch=True)
        self.log("test_auc", self.test_auc, on_epoch=True)

    def on_test_epoch_start(self) -> None:
        self._scores = []

    def on_test_epoch_end(self) -> None:
        self._confusion = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
        if self._scores:
            from labkit.tasks._functional import rejection_at_efficiency

            score = torch.cat([s for s, _ in self._scores])
            is_signal = torch.cat([t for _, t in self._scores])
            score, is_signal = self.gather_rows(score), self.gather_rows(is_signal)
            if bool(is_signal.any()) and not bool(is_signal.all()):
                rejection = rejection_at_efficiency(score.cpu().numpy(), is_signal.cpu().numpy(), 0.9)
                self.log("test_rejection_at_eff90", rejection, sync_dist=False)
            self._scores = []

    def figures(self) -> dict[str, Figure]:
        if self._confusion is None:
            return {}
        from labkit.tasks._figures import confusion_matrix_figure

        return {"confusion_matrix": confusion_matrix_figure(self._confusion.numpy(), self.class_names)}
