from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from labkit.models._common import activation as make_activation


class MLP(nn.Module):
    """Fully connected network. Inputs of any shape ``(N, ...)`` are flattened first.

    Args:
        in_shape: shape of one sample (``(64,)``, ``(1, 8, 8)``, ...).
        out_features: number of outputs (classes, or regression targets).
        hidden: width of each hidden layer; ``()`` gives a linear model.
        activation: name of the non-linearity between layers.
        dropout: dropout probability after each hidden layer.
        batch_norm: batch normalisation before each activation.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(make_activation(activation))
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out
