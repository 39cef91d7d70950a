"""Classes a user might point a ``class_path`` at by mistake, or with bad ``init_args``
(importable as ``tests.user_models_hostile``)."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch import nn

from labkit.data import ArraySplitDataModule


class AbstractNet(nn.Module, abc.ABC):
    """An abstract base: its subclasses define ``features``."""

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class NoForward(nn.Module):
    """Builds layers but never says how to use them."""

    def __init__(self, in_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(int(torch.tensor(in_shape).prod()), num_classes)


class Picky(nn.Module):
    """Checks its own arguments, as a careful user's module does."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, width: int = 8, act: str = "relu") -> None:
        super().__init__()
        if act not in ("relu", "tanh"):
            raise ValueError(f"act must be 'relu' or 'tanh', got {act!r}")
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), width))
        self.out = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(torch.relu(self.net(x)))
        return out


class Untyped(nn.Module):
    """No annotations: a wrong value is only found by the layers it reaches."""

    def __init__(self, in_shape, num_classes, width=8):  # type: ignore[no-untyped-def]
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class HalfTask(pl.LightningModule):
    """A LightningModule that forgot its training step."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class NoLoad(ArraySplitDataModule):
    """Subclasses labkit's base but loads nothing."""


class NoBatches(pl.LightningDataModule):
    """A data module whose training loader is empty."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def train_dataloader(self) -> list[object]:
        return []


def make_net(in_shape: Sequence[int], num_classes: int) -> nn.Module:
    """A factory function, not a class."""
    return nn.Linear(int(torch.tensor(in_shape).prod()), num_classes)


class Frozen(nn.Module):
    """A pretrained layer with every parameter frozen: nothing left to train."""

    def __init__(self, in_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(int(torch.tensor(in_shape).prod()), num_classes)
        self.linear.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x.flatten(1))
        return out
