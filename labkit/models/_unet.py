from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from labkit.models._common import activation as make_activation

__all__ = ["UNet"]


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) for per-pixel class scores.

    The encoder has one stage per entry of ``channels``: two ``3×3 conv → [batch norm] →
    activation`` blocks at the stage's width, with 2×2 max pooling between stages, so the
    image is halved ``len(channels) − 1`` times and the deepest stage sees it at
    ``1 / 2^(len(channels) − 1)`` of its size. The decoder goes back up stage by stage: a 2×2
    transposed convolution doubles the size, the encoder's features at that size are concatenated
    (the skip connection) and two conv blocks mix them. A 1×1 convolution gives ``out_features``
    scores (logits) per pixel.

    Images whose sides are not multiples of ``2^(len(channels) − 1)`` are padded with zeros at
    the bottom and right (zero is "no signal" for detector images) and the output is cropped back,
    so any size works and the output always has the input's height and width.

    Args:
        in_shape: ``(C, H, W)``, or ``(H, W)`` for one channel (a channel axis is added).
        out_features: number of classes K; the output has shape ``(N, K, H, W)``.
        channels: width of each encoder stage, from full resolution down.
        activation: activation after each convolution.
        dropout: channel dropout (``Dropout2d``) after each stage, in training only.
        batch_norm: batch normalisation after each convolution.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (16, 32, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(in_shape) not in (2, 3):
            raise ValueError(f"UNet needs images (C, H, W) or (H, W), got samples of shape {tuple(in_shape)}")
        if not channels:
            raise ValueError("UNet needs at least one stage in channels")
        self._add_channel = len(in_shape) == 2
        c = 1 if self._add_channel else int(in_shape[0])
        self.multiple = 2 ** (len(channels) - 1)

        def stage(c_in: int, c_out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in ((c_in, c_out), (c_out, c_out)):
                layers.append(nn.Conv2d(a, b, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(b))
                layers.append(make_activation(activation))
            if dropout:
                layers.append(nn.Dropout2d(dropout))
            return nn.Sequential(*layers)

        self.down = nn.ModuleList()
        for width in channels:
            self.down.append(stage(c, width))
            c = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(channels[:-1]):
            self.up.append(nn.ConvTranspose2d(c, width, 2, stride=2))
            self.merge.append(stage(2 * width, width))
            c = width
        self.head = nn.Conv2d(c, out_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._add_channel:
            x = x.unsqueeze(1)
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        skips = []
        for i, stage in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        out: torch.Tensor = self.head(x)
        return out[..., :h, :w]
