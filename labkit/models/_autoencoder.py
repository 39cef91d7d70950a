from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from labkit.models._common import activation as make_activation

__all__ = ["Autoencoder", "VAEOutput"]


class VAEOutput(NamedTuple):
    """What a variational :class:`Autoencoder` returns: the reconstruction ``(N, out_features)``
    and the mean and log-variance ``(N, latent)`` of the Gaussian posterior q(z|x)."""

    reconstruction: torch.Tensor
    mean: torch.Tensor
    log_var: torch.Tensor

    def kl_divergence(self) -> torch.Tensor:
        """KL(q(z|x) || N(0, 1)) per sample, ``(N,)``: ½ Σ (μ² + σ² − 1 − ln σ²)."""
        return 0.5 * (self.mean.square() + self.log_var.exp() - 1.0 - self.log_var).sum(dim=1)


class Autoencoder(nn.Module):
    """Fully connected autoencoder: ``hidden`` layers down to a ``latent`` code and the same
    widths, mirrored, back up to ``out_features`` outputs. Inputs ``(N, ...)`` are flattened.

    Forward contract:

    * ``variational=False``: ``model(x)`` is the reconstruction, a tensor ``(N, out_features)``.
    * ``variational=True`` (a VAE): ``model(x)`` is a :class:`VAEOutput` ``(reconstruction, mean,
      log_var)``. In training mode the decoder sees ``z = mean + exp(log_var / 2) · ε`` with
      ``ε ~ N(0, 1)`` (the reparameterisation trick); in evaluation mode it sees ``z = mean``, so
      scores are deterministic. ``output.kl_divergence()`` is the KL term of the loss, per sample.

    The code is a bottleneck only if ``latent`` is smaller than the number of inputs: a plain
    autoencoder with ``latent >= in_features`` can learn the identity and reconstruct everything.

    Args:
        in_shape: shape of one sample (``(4,)``: four features).
        out_features: number of outputs (usually the number of inputs: what is reconstructed).
        hidden: widths of the encoder's hidden layers (the decoder's, reversed).
        latent: size of the code.
        activation: name of the non-linearity between layers.
        variational: a VAE with a Gaussian latent (see above).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        hidden: Sequence[int] = (64, 32),
        latent: int = 4,
        activation: str = "relu",
        variational: bool = False,
    ) -> None:
        super().__init__()
        if latent < 1:
            raise ValueError(f"latent must be >= 1, got {latent}")
        self.in_features = math.prod(in_shape)
        self.latent = latent
        self.variational = variational
        encoder: list[nn.Module] = [nn.Flatten()]
        width = self.in_features
        for size in hidden:
            encoder += [nn.Linear(width, size), make_activation(activation)]
            width = size
        encoder.append(nn.Linear(width, 2 * latent if variational else latent))
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = []
        width = latent
        for size in reversed(tuple(hidden)):
            decoder += [nn.Linear(width, size), make_activation(activation)]
            width = size
        decoder.append(nn.Linear(width, out_features))
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each sample, ``(N, latent)`` (for a VAE the posterior mean)."""
        h: torch.Tensor = self.encoder(x)
        return h[:, : self.latent]

    def forward(self, x: torch.Tensor) -> torch.Tensor | VAEOutput:
        h: torch.Tensor = self.encoder(x)
        if not self.variational:
            out: torch.Tensor = self.decoder(h)
            return out
        mean, log_var = h[:, : self.latent], h[:, self.latent :].clamp(-20.0, 20.0)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean) if self.training else mean
        return VAEOutput(self.decoder(z), mean, log_var)
