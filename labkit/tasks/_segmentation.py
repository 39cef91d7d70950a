"""Per-pixel classification of detector images (semantic segmentation)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.segmentation import DiceScore

from labkit.config import SegmentationSpec
from labkit.errors import ConfigError, DataError
from labkit.tasks._base import Task, unpack_batch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.config import OptimizerConfig, TaskSpec
    from labkit.data import DataInfo

__all__ = ["SegmentationTask", "soft_dice_loss"]

LOSSES = ("cross_entropy", "dice", "cross_entropy+dice")


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``1 − mean_c (2 Σ p_c t_c + s) / (Σ p_c + Σ t_c + s)`` over the classes c, with ``p`` the
    softmax of ``logits`` (N, K, ...) and ``t`` the one-hot ``target`` (N, ...), sums over every
    pixel of the batch, and ``s = smooth`` (so a class absent from both counts as perfect).
    With event ``weights`` (N,), each image's pixels enter the sums with its weight, rescaled to
    mean 1 over the batch (weights of 1, or all equal, give the unweighted loss)."""
    k = logits.shape[1]
    p = torch.softmax(logits, dim=1)
    t = F.one_hot(target, k).movedim(-1, 1).to(p.dtype)
    dims = (0, *range(2, p.ndim))
    if weights is None:
        inter, total = (p * t).sum(dims), p.sum(dims) + t.sum(dims)
    else:
        w = weights.to(p.dtype)
        # rescaled to mean 1, so that ``smooth`` keeps its size
        scale = (w * (len(w) / w.sum())).reshape(-1, *([1] * (p.ndim - 1)))
        inter, total = (p * t * scale).sum(dims), ((p + t) * scale).sum(dims)
    dice = (2.0 * inter + smooth) / (total + smooth)
    return 1.0 - dice.mean()


def _class_names(info: DataInfo, num_classes: int | None) -> tuple[int, tuple[str, ...]]:
    k = num_classes or info.num_classes
    if k is None:
        raise DataError("cannot tell the number of classes from this data: set task.num_classes")
    if info.num_classes is not None and info.num_classes > k:
        raise DataError(f"the data has labels up to {info.num_classes - 1}, but task.num_classes is {k}")
    names = tuple(info.class_names) if len(info.class_names) == k else tuple(str(i) for i in range(k))
    return k, names


class SegmentationTask(Task):
    """One class label per pixel, from a model that returns scores of shape (N, K, H, W).

    Losses (``loss``): ``cross_entropy`` (with ``class_weights``, and event weights when
    ``data.weights`` is set), ``dice`` (:func:`soft_dice_loss`: 1 − the mean over classes of the
    soft Dice coefficient over the batch's pixels), or ``cross_entropy+dice``, their sum.

    Logs ``train_loss``, ``val_loss``, ``val_miou``, ``test_loss``, and on the test split, pooled
    over all its pixels, per class ``C``: ``test_iou_C`` = TP/(TP + FP + FN) and ``test_dice_C``
    = 2TP/(2TP + FP + FN) (torchmetrics), and ``test_miou``, their mean over the classes,
    background included (a class absent from both truth and prediction has no IoU and is left
    out of the mean). Figure ``segmentation_overlays``: the first ``overlays`` test images with
    their true and predicted labels. With event weights (``data.weights``) each event's pixels
    weigh its weight in both losses and in the test IoU and Dice (:func:`iou_per_class`).
    """

    monitorable: ClassVar[tuple[str, ...]] = SegmentationSpec.monitorable

    @classmethod
    def model_outputs(cls, spec: TaskSpec, info: DataInfo) -> tuple[int, dict[str, Any]]:
        assert isinstance(spec, SegmentationSpec)
        k, names = _class_names(info, spec.num_classes)
        if k < 2:
            raise DataError("the masks hold a single class: segmentation needs two or more")
        if spec.class_weights is not None and len(spec.class_weights) != k:
            raise ConfigError(
                f"task.class_weights: {len(spec.class_weights)} weights for {k} classes ({', '.join(names)})"
            )
        return k, {"num_classes": k, "class_names": names}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        *,
        num_classes: int,
        class_names: Sequence[str] = (),
        loss: str = "cross_entropy+dice",
        class_weights: Sequence[float] | None = None,
        overlays: int = 4,
    ) -> None:
        super().__init__(model, optimizer)
        if num_classes < 2:
            raise ValueError(f"segmentation needs at least 2 classes, got {num_classes}")
        if loss not in LOSSES:
            raise ValueError(f"unknown segmentation loss {loss!r}; valid: {', '.join(LOSSES)}")
        self.num_classes = num_classes
        self.class_names = tuple(class_names) or tuple(str(i) for i in range(num_classes))
        if len(self.class_names) != num_classes:
            raise ValueError(f"{num_classes} classes but {len(self.class_names)} class names")
        self.loss_name = loss
        weights = None
        if class_weights is not None:
            if len(class_weights) != num_classes:
                raise ValueError(f"{len(class_weights)} class weights for {num_classes} classes")
            weights = torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights)
        self.overlays = overlays
        nan = float("nan")  # a class absent from truth and prediction has no IoU
        self.val_iou = MulticlassJaccardIndex(num_classes, average="none", zero_division=nan)
        self.test_iou = MulticlassJaccardIndex(num_classes, average="none", zero_division=nan)
        self.test_dice = DiceScore(
            num_classes, average="none", aggregation_level="global", input_format="index"
        )
        self._examples: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._scores: dict[str, float] = {}
        #: with event weights: the weighted pixel counts C[true, predicted] of the test split
        self._confusion: torch.Tensor | None = None
        self._val_confusion: torch.Tensor | None = None  # the same for the validation split

    # -- loss ------------------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        cw = self.class_weights
        assert cw is None or isinstance(cw, torch.Tensor)
        total = logits.new_zeros(())
        if "cross_entropy" in self.loss_name:
            if w is None:
                total = total + F.cross_entropy(logits, y, weight=cw)
            else:  # event weights: each event's pixels weigh w
                per = F.cross_entropy(logits, y, weight=cw, reduction="none").flatten(1).sum(1)
                norm = cw[y].flatten(1).sum(1) if cw is not None else torch.full_like(per, y[0].numel())
                total = total + (per * w).sum() / (norm * w).sum()
        if "dice" in self.loss_name:
            total = total + soft_dice_loss(logits, y, weights=w)
        return total

    # -- Lightning ---------------------------------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        logits = self.model(x)
        if w is None:
            self.val_iou.update(logits.argmax(1), y)
        else:
            counts = _weighted_counts(logits.argmax(1), y, w, self.num_classes)
            self._val_confusion = counts if self._val_confusion is None else self._val_confusion + counts
        self.log(
            "val_loss",
            self._loss(logits, y, w),
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=True,
        )

    def on_validation_epoch_end(self) -> None:
        if self._val_confusion is not None:
            iou, _ = _weighted_iou_dice(self._all_ranks(self._val_confusion))
            self._val_confusion = None
        else:
            iou = self.val_iou.compute()
            self.val_iou.reset()
        self.log("val_miou", torch.nanmean(iou), prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self._examples = None
        self._scores = {}
        self._confusion = None

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y, w = unpack_batch(batch)
        logits = self.model(x)
        pred = logits.argmax(1)
        if w is None:
            self.test_iou.update(pred, y)
            self.test_dice.update(pred, y)
        else:  # event weights: every pixel of an event weighs its weight
            counts = _weighted_counts(pred, y, w, self.num_classes)
            self._confusion = counts if self._confusion is None else self._confusion + counts
        self.log("test_loss", self._loss(logits, y, w), on_epoch=True, batch_size=len(y), sync_dist=True)
        if self._examples is None and self.overlays > 0:
            k = self.overlays
            self._examples = (
                x[:k].detach().float().cpu().numpy(),
                y[:k].detach().cpu().numpy(),
                pred[:k].detach().cpu().numpy(),
            )

    def on_test_epoch_end(self) -> None:
        if self._confusion is not None:
            iou, dice = _weighted_iou_dice(self._all_ranks(self._confusion))
            self._confusion = None
        else:
            iou = self.test_iou.compute().cpu()
            dice = self.test_dice.compute().cpu()
            self.test_iou.reset()
            self.test_dice.reset()
        scores: dict[str, float] = {}
        for i, name in enumerate(self.class_names):
            scores[f"test_iou_{_metric_name(name)}"] = float(iou[i])
            scores[f"test_dice_{_metric_name(name)}"] = float(dice[i])
        scores["test_miou"] = float(torch.nanmean(iou))
        for key, value in scores.items():
            self.log(key, value, sync_dist=False)
        self._scores = scores

    def _all_ranks(self, confusion: torch.Tensor) -> torch.Tensor:
        """Weighted pixel counts summed over the DDP ranks (each saw a share of the images), on the CPU."""
        if self._trainer is not None and self.trainer.world_size > 1:
            confusion = self.trainer.strategy.reduce(confusion, reduce_op="sum")
        return confusion.cpu()

    def figures(self) -> dict[str, Figure]:
        if self._examples is None:
            return {}
        from labkit.tasks._figures import segmentation_figure

        iou = {name: self._scores.get(f"test_iou_{_metric_name(name)}") for name in self.class_names}
        return {"segmentation_overlays": segmentation_figure(*self._examples, self.class_names, iou)}


def _metric_name(class_name: str) -> str:
    """A class name as it appears in metric names: spaces and odd characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name.strip()) or "class"


def _weighted_counts(pred: torch.Tensor, true: torch.Tensor, w: torch.Tensor, k: int) -> torch.Tensor:
    """Pixel counts ``C[true, predicted]`` (k, k), each pixel weighing its event's weight ``w`` (N,)."""
    pixel_w = w.detach().double().reshape(-1, *([1] * (true.ndim - 1))).expand(true.shape)
    counts = torch.bincount((true * k + pred).flatten(), weights=pixel_w.flatten(), minlength=k * k)
    return counts.reshape(k, k)


def _weighted_iou_dice(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and Dice per class from weighted pixel counts ``C[true, predicted]`` (NaN where the
    class's union, or its truth plus prediction, weighs <= 0), as :func:`iou_per_class` and
    :func:`dice_per_class` compute them."""
    tp = torch.diagonal(confusion)
    total = confusion.sum(dim=0) + confusion.sum(dim=1)
    nan = torch.full_like(tp, float("nan"))
    iou = torch.where(total - tp > 0, tp / (total - tp), nan)
    dice = torch.where(total > 0, 2.0 * tp / total, nan)
    return iou, dice
