from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.models._common import activation as make_activation


class SmallCNN(nn.Module):
    """A few conv blocks, global average pooling and a dense head.

    Each block is ``conv → [batch norm] → activation``, followed by 2×2 max pooling while the
    image is at least 4 pixels on a side; so it works from 8×8 digits up to large detector images.

    Args:
        in_shape: ``(C, H, W)``, or ``(H, W)`` for one channel (a channel axis is added).
        out_features: number of outputs.
        channels: output channels of each conv block.
        kernel_size: odd kernel size (padding keeps the image size).
        hidden: width of the dense layer before the output.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        hidden: int = 64,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(in_shape) not in (2, 3):
            raise ValueError(
                f"SmallCNN needs images (C, H, W) or (H, W), got samples of shape {tuple(in_shape)}"
            )
        self._add_channel = len(in_shape) == 2
        c, h, w = (1, *in_shape) if self._add_channel else tuple(in_shape)
        blocks: list[nn.Module] = []
        for out in channels:
            blocks.append(nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out))
            blocks.append(make_activation(activation))
            if min(h, w) >= 4:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, hidden)]
        head.append(make_activation(activation))
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, out_features))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_channel:
            x = x.unsqueeze(1)
        out: torch.Tensor = self.head(self.features(x))
        return out
