"""The segmentation task learns, and its torchmetrics values match the numpy twins (a small
training run). The cases worked out by hand are in tests/unit/tasks/test_segmentation.py."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from labkit.tasks._functional import dice_per_class, iou_per_class
from tests.unit.tasks.test_segmentation import _blobs, _task, _trainer


def test_learns_and_logs_per_class_metrics_that_match_the_numpy_twins() -> None:
    pl.seed_everything(0, verbose=False)
    task = _task()
    trainer = _trainer(12)
    trainer.fit(
        task,
        DataLoader(_blobs(256, 0), batch_size=32, shuffle=True),
        DataLoader(_blobs(64, 1), batch_size=32),
    )
    assert {"train_loss", "val_loss", "val_miou"} <= set(trainer.logged_metrics)
    test = _blobs(48, 2)
    (result,) = trainer.test(task, DataLoader(test, batch_size=20), verbose=False)
    names = ("background", "track", "delta_ray")
    assert set(result) == {"test_loss", "test_miou"} | {
        f"test_{m}_{c}" for m in ("iou", "dice") for c in names
    }
    assert result["test_iou_track"] > 0.9 and result["test_miou"] > 0.9
    task.eval()
    with torch.no_grad():
        pred = task(test.tensors[0]).argmax(1).numpy()
    true = test.tensors[1].numpy()
    iou, dice = iou_per_class(pred, true, 3), dice_per_class(pred, true, 3)
    for i, c in enumerate(names):
        assert result[f"test_iou_{c}"] == pytest.approx(iou[i], abs=1e-6)
        assert result[f"test_dice_{c}"] == pytest.approx(dice[i], abs=1e-6)
    assert result["test_miou"] == pytest.approx(iou.mean(), abs=1e-6)  # background included
