from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassConfusionMatrix

from labkit.tasks._base import Task
from labkit.tasks._specs import ClassificationSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig

Batch = tuple[torch.Tensor, torch.Tensor]


class ClassificationTask(Task):
    """Single-label classification with cross-entropy.

    Logs ``train_loss`` (per step), ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` and
    ``test_auc`` (one-vs-rest ROC AUC, macro-averaged over classes); draws the test confusion
    matrix.
    """

    monitorable: ClassVar[tuple[str, ...]] = ClassificationSpec.monitorable

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        *,
        num_classes: int,
        label_smoothing: float = 0.0,
        class_names: Sequence[str] = (),
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

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self._loss(self.model(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.val_acc.update(logits, y)
        self.log(
            "val_loss", self._loss(logits, y), on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True
        )
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.test_acc.update(logits, y)  # update only: computed once per epoch when logged
        self.test_auc.update(logits, y)
        self.test_confusion.update(logits, y)
        self.log("test_loss", self._loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("test_acc", self.test_acc, on_epoch=True)
        self.log("test_auc", self.test_auc, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        self._confusion = self.test_confusion.compute().cpu()
        self.test_confusion.reset()

    def figures(self) -> dict[str, Figure]:
        if self._confusion is None:
            return {}
        from labkit.tasks._figures import confusion_matrix_figure

        return {"confusion_matrix": confusion_matrix_figure(self._confusion.numpy(), self.class_names)}
