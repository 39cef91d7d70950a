"""The segmentation task and its metrics: IoU and Dice against cases worked out by hand, the
torchmetrics values against the numpy twins, the losses, and a small training run."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.config import OptimizerConfig
from labkit.models import UNet
from labkit.tasks import SegmentationTask
from labkit.tasks._functional import confusion_counts, dice_per_class, iou_per_class
from labkit.tasks._segmentation import soft_dice_loss

# ----------------------------------------------------------------------------- numpy twins


def test_perfect_prediction_has_iou_and_dice_one() -> None:
    true = np.array([[0, 1, 2], [2, 1, 0]])
    np.testing.assert_array_equal(iou_per_class(true, true, 3), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dice_per_class(true, true, 3), [1.0, 1.0, 1.0])


def test_disjoint_prediction_has_iou_and_dice_zero() -> None:
    true = np.array([0, 0, 1, 1])
    pred = np.array([1, 1, 0, 0])
    np.testing.assert_array_equal(iou_per_class(pred, true, 2), [0.0, 0.0])
    np.testing.assert_array_equal(dice_per_class(pred, true, 2), [0.0, 0.0])


def test_two_by_two_worked_example() -> None:
    # true    pred        class 0: TP 1 (top left), FP 0, FN 1 (bottom left) -> IoU 1/2, Dice 2/3
    # 0 1     0 1         class 1: TP 2, FP 1 (bottom left), FN 0          -> IoU 2/3, Dice 4/5
    # 0 1     1 1         class 2: absent from both                         -> NaN
    true = np.array([[[0, 1], [0, 1]]])
    pred = np.array([[[0, 1], [1, 1]]])
    np.testing.assert_array_equal(confusion_counts(pred, true, 3), [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    iou, dice = iou_per_class(pred, true, 3), dice_per_class(pred, true, 3)
    np.testing.assert_allclose(iou[:2], [1 / 2, 2 / 3])
    np.testing.assert_allclose(dice[:2], [2 / 3, 4 / 5])
    assert math.isnan(iou[2]) and math.isnan(dice[2])
    np.testing.assert_allclose(dice[:2], 2 * iou[:2] / (1 + iou[:2]))  # Dice = 2 IoU / (1 + IoU)


def test_labels_out_of_range_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"true labels must lie in 0..1"):
        iou_per_class(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"2 predicted labels but 3 true labels"):
        dice_per_class(np.array([0, 1]), np.array([0, 1, 1]), 2)


# ----------------------------------------------------------------------------- losses


def test_soft_dice_loss_by_hand() -> None:
    target = torch.tensor([[[0, 0], [1, 1]]])
    # uniform scores: p = 1/2 everywhere; per class Σpt = 1, Σp = 2, Σt = 2 -> (2 + 1)/(4 + 1) = 0.6
    assert soft_dice_loss(torch.zeros(1, 2, 2, 2), target).item() == pytest.approx(0.4)
    confident = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 40.0
    assert soft_dice_loss(confident, target).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(-confident, target).item() == pytest.approx(1.0 - 1.0 / 5.0, abs=1e-6)


def _task(**kwargs: object) -> SegmentationTask:
    model = UNet((8, 8), 3, channels=(4, 8))
    args: dict[str, object] = {"num_classes": 3, "class_names": ("background", "track", "delta ray")}
    return SegmentationTask(model, OptimizerConfig(lr=0.01), **(args | kwargs))  # type: ignore[arg-type]


def test_losses_combine_and_event_weights_of_one_change_nothing() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4, 8, 8))
    ce = torch.nn.functional.cross_entropy(logits, y)
    dice = soft_dice_loss(logits, y)
    assert _task(loss="cross_entropy")._loss(logits, y).item() == pytest.approx(ce.item())
    assert _task(loss="dice")._loss(logits, y).item() == pytest.approx(dice.item())
    both = _task()._loss(logits, y)
    assert both.item() == pytest.approx((ce + dice).item())
    assert _task()._loss(logits, y, torch.ones(4)).item() == pytest.approx(both.item(), rel=1e-6)
    weighted = _task(loss="cross_entropy", class_weights=(1.0, 2.0, 3.0))
    expected = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1.0, 2.0, 3.0]))
    assert weighted._loss(logits, y).item() == pytest.approx(expected.item())
    assert weighted._loss(logits, y, torch.ones(4)).item() == pytest.approx(expected.item(), rel=1e-6)
    # an event of weight 0 does not count
    w = torch.tensor([1.0, 0.0, 1.0, 1.0])
    keep = [0, 2, 3]
    alone = torch.nn.functional.cross_entropy(logits[keep], y[keep], weight=torch.tensor([1.0, 2.0, 3.0]))
    assert weighted._loss(logits, y, w).item() == pytest.approx(alone.item(), rel=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"unknown segmentation loss 'focal'"):
        _task(loss="focal")
    with pytest.raises(ValueError, match=r"2 class weights for 3 classes"):
        _task(class_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        _task(num_classes=1, class_names=())


# ----------------------------------------------------------------------------- training and test


def _blobs(n: int, seed: int) -> TensorDataset:
    """8x8 images: class 1 where a pixel is bright, class 2 where it is bright and its right
    neighbour too (context matters), class 0 elsewhere."""
    g = torch.Generator().manual_seed(seed)
    bright = torch.rand(n, 8, 8, generator=g) < 0.3
    x = bright.float() * (1.0 + 0.1 * torch.randn(n, 8, 8, generator=g))
    right = torch.zeros_like(bright)
    right[:, :, :-1] = bright[:, :, 1:]
    y = torch.where(bright & right, 2, torch.where(bright, 1, 0))
    return TensorDataset(x, y)


def _trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


def test_overlay_figure_after_test_and_absent_classes() -> None:
    task = _task(overlays=3)
    assert task.figures() == {}
    # a model that calls every pixel background, on images with nothing but background
    head = task.model.head
    assert isinstance(head, torch.nn.Conv2d) and head.bias is not None
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    only_background = TensorDataset(torch.zeros(10, 8, 8), torch.zeros(10, 8, 8, dtype=torch.long))
    (result,) = _trainer(1).test(task, DataLoader(only_background, batch_size=4), verbose=False)
    # classes absent from truth and prediction have no IoU or Dice (NaN) and are left out of the mean
    assert math.isnan(result["test_iou_track"]) and math.isnan(result["test_dice_delta_ray"])
    assert result["test_iou_background"] == 1.0 and result["test_miou"] == 1.0
    _trainer(1).test(task, DataLoader(_blobs(10, 3), batch_size=4), verbose=False)
    fig = task.figures()["segmentation_overlays"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles.count("true labels") == 3 and titles.count("predicted labels") == 3
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("background (IoU") and legend[2].startswith("delta ray")
