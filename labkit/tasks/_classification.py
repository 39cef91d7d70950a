from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
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

    With event weights (batches ``(x, y, w)``, from ``data.weights``) the loss is Σ w ℓ / Σ w and
    ``test_acc``, ``test_auc`` and ``test_rejection_at_eff90`` are the weighted functional twins
    (:func:`~labkit.tasks.roc_auc` ...) on the test events; the confusion matrix holds weights.
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
        signal = None  # the task's default (the last class)
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
        self.val_acc_weighted = MeanMetric()  # with event weights
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_auc = MulticlassAUROC(num_classes, average="macro")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self._confusion: torch.Tensor | None = None
        # two classes: the signal's score, for the background rejection at 90 % signal efficiency
        self.signal_class = num_classes - 1 if signal_class is None else signal_class
        #: whether the experiment named the signal class (task.signal_class)
        self.signal_named = signal_class is not None
        # per test event: class probabilities, label and weight (1 without data.weights)
        self._test: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._weighted = False
        self._outputs: dict[str, np.ndarray] = {}

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        if w is None:
            return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        per = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing, reduction="none")
        return (per * w).sum() / w.sum()  # event weights (data.weights)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        logits = self.model(x)
        self.log(
            "val_loss",
            self._loss(logits, y, w),
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=True,
        )
        if w is None:
            self.val_acc.update(logits, y)
            self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)
        else:  # event weights: Σ_correct w / Σ w
            self.val_acc_weighted.update((logits.argmax(dim=1) == y).float(), w)
            self.log("val_acc", self.val_acc_weighted, on_epoch=True, prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        logits = self.model(x)
        self.log("test_loss", self._loss(logits, y, w), on_epoch=True, batch_size=len(y), sync_dist=True)
        probs = torch.softmax(logits.detach().float(), dim=1)
        self._test.append(
            (probs, y.detach(), torch.ones_like(probs[:, 0]) if w is None else w.detach().float())
        )
        if w is not None:  # weighted: accuracy, AUC and confusion from the functional twins at the end
            self._weighted = True
            return
        self.test_acc.update(logits, y)  # update only: computed once per epoch when logged
        self.test_auc.update(logits, y)
        self.test_confusion.update(logits, y)
        self.log("test_acc", self.test_acc, on_epoch=True)
        self.log("test_auc", self.test_auc, on_epoch=True)

    def on_test_epoch_start(self) -> None:
        self._test = []
        self._weighted = False
        self._outputs = {}

    def on_test_epoch_end(self) -> None:
        from labkit.tasks._functional import rejection_at_efficiency

        if not self._test:
            return
        probs = self.gather_rows(torch.cat([p for p, _, _ in self._test])).cpu().double().numpy()
        y = self.gather_rows(torch.cat([t for _, t, _ in self._test])).cpu().numpy()
        w = self.gather_rows(torch.cat([v for _, _, v in self._test])).cpu().double().numpy()
        self._test = []
        signal = self.signal_class if self.signal_named or self.num_classes == 2 else -1
        self._outputs = {
            "probs": probs.astype(np.float32),
            "labels": y.astype(np.int64),
            "class_names": np.array(self.class_names, dtype=str),
            "signal_class": np.array(signal, dtype=np.int64),
        }
        if self._weighted:
            self._outputs["weights"] = w.astype(np.float32)
        if self._weighted:
            for key, value in _weighted_scores(probs, y, w).items():
                self.log(key, value, sync_dist=False)
            k = self.num_classes
            confusion = np.zeros((k, k))
            np.add.at(confusion, (y, probs.argmax(axis=1)), w)
            self._confusion = torch.from_numpy(confusion)
        else:
            self._confusion = self.test_confusion.compute().cpu()
            self.test_confusion.reset()
        is_signal = y == self.signal_class
        if self.num_classes == 2 and is_signal.any() and not is_signal.all():
            rejection = rejection_at_efficiency(
                probs[:, self.signal_class], is_signal, 0.9, weights=w if self._weighted else None
            )
            self.log("test_rejection_at_eff90", rejection, sync_dist=False)

    def test_outputs(self) -> dict[str, np.ndarray]:
        """``probs`` (N, K), ``labels`` (N,), ``class_names`` (K,), ``signal_class`` (the named
        signal class, else the last of two, else -1) and, with event weights, ``weights`` (N,)."""
        return dict(self._outputs)

    def figures(self) -> dict[str, Figure]:
        if self._confusion is None:
            return {}
        from labkit.tasks._figures import confusion_matrix_figure

        return {
            "confusion_matrix": confusion_matrix_figure(
                self._confusion.numpy(), self.class_names, weighted=self._weighted
            )
        }


def _weighted_scores(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """``test_acc`` and ``test_auc`` (one-vs-rest, macro over the classes present with both
    outcomes) of numpy class probabilities ``probs`` (N, K), labels ``y`` and event weights ``w``."""
    from labkit.tasks._functional import accuracy, roc_auc

    aucs = []
    for c in range(probs.shape[1]):
        positive = y == c
        if positive.any() and not positive.all() and w[positive].sum() > 0 and w[~positive].sum() > 0:
            aucs.append(roc_auc(probs[:, c], positive, weights=w))
    return {
        "test_acc": accuracy(probs.argmax(axis=1), y, weights=w),
        "test_auc": float(np.mean(aucs)) if aucs else float("nan"),
    }
