"""Models a user might point ``model.class_path`` at (importable as ``tests.user_models``)."""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch import nn


class TinyNet(nn.Module):
    """Receives ``in_shape`` and ``num_classes`` from labkit because it asks for them."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.in_shape, self.num_classes, self.width = tuple(in_shape), num_classes, width
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(torch.tensor(in_shape).prod()), width),
            nn.ReLU(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Exploding(TinyNet):
    """Raises inside training after a few batches, like a real bug would."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, after: int = 3) -> None:
        super().__init__(in_shape, num_classes)
        self.calls, self.after = 0, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError(f"exploded after {self.after} batches")
        return super().forward(x)


class NaNNet(TinyNet):
    """Trains into NaN: its outputs are NaN from the start."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


class OwnTask(pl.LightningModule):
    """A complete LightningModule: labkit uses it as the task as it is."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


NOT_A_CLASS = 3
