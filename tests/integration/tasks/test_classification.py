"""The classification task learns separable classes (a small Lightning fit)."""

from __future__ import annotations

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from labkit.config import OptimizerConfig
from labkit.models import MLP
from labkit.tasks import ClassificationTask
from tests.unit.tasks.test_classification import _separable, _trainer


def test_learns_separable_classes_and_logs_metrics() -> None:
    pl.seed_everything(0, verbose=False)
    task = ClassificationTask(MLP((4,), 3, hidden=(8,)), OptimizerConfig(lr=0.05), num_classes=3)
    data = DataLoader(_separable(), batch_size=16, shuffle=True)
    trainer = _trainer()
    trainer.fit(task, data, DataLoader(_separable(seed=1), batch_size=32))
    assert {"train_loss", "val_loss", "val_acc"} <= set(trainer.logged_metrics)
    (result,) = trainer.test(task, DataLoader(_separable(seed=2), batch_size=32), verbose=False)
    assert set(result) == {"test_loss", "test_acc", "test_auc"}
    assert result["test_acc"] > 0.95 and result["test_auc"] > 0.99
