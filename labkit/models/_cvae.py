from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from labkit.models._common import dense_stack

__all__ = ["ConditionalVAE", "ELBOTerms"]


class ELBOTerms(NamedTuple):
    """Per sample (N,): the reconstruction's negative log-likelihood and the KL divergence."""

    nll: torch.Tensor
    kl: torch.Tensor


class ConditionalVAE(nn.Module):
    """A conditional variational autoencoder for non-negative samples with exact zeros (energy
    deposits above a readout threshold), with a per-value *hurdle-Gamma* likelihood.

    The encoder maps a sample ``x`` (flattened, seen as log(1 + x)) and its conditions ``c`` to a
    Gaussian posterior over ``latent`` variables; the decoder maps a latent ``z`` and ``c`` to,
    for each of the ``out_features`` values, the probability π that it is non-zero and a Gamma
    distribution (shape k, scale θ) for it when it is. Given ``z`` the values are drawn
    independently, the way the cells of a shower are given its global parameters (depth of the
    maximum, width): each is a sum of independent spot energies. With ``sum_constraint`` the
    decoder also gives a log-normal for the sum of the values, and a generated sample is rescaled
    to a sum drawn from it: independent cells would give the total too large a spread where the
    real cells share a fixed budget (in a simulator with a fixed number of spots per GeV, a
    multinomial, whose cells are anti-correlated).

    Training minimises the negative evidence lower bound, ``nll + kl`` (:meth:`forward` gives
    both per sample); :meth:`sample` draws z from the standard-normal prior: one decoder pass
    per sample.

    Args:
        in_shape: shape of one sample (a generated sample has this shape).
        out_features: number of values per sample (the product of ``in_shape``).
        conditions: number of conditioning values (e.g. 1: the normalised log incident energy).
        hidden: widths of the encoder's layers (the decoder mirrors them).
        latent: dimension of the latent space.
        sum_constraint: model the sum of the values and rescale generated samples to it.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        conditions: int = 1,
        hidden: Sequence[int] = (512, 512),
        latent: int = 8,
        activation: str = "silu",
        sum_constraint: bool = True,
    ) -> None:
        super().__init__()
        size = math.prod(in_shape)
        if size != out_features:
            raise ValueError(
                f"ConditionalVAE generates samples of shape {tuple(in_shape)} ({size} values), "
                f"but out_features is {out_features}"
            )
        if latent < 1 or conditions < 0:
            raise ValueError(
                f"ConditionalVAE needs latent >= 1 and conditions >= 0, got {latent}, {conditions}"
            )
        self.sample_shape = tuple(int(d) for d in in_shape)
        self.features = size
        self.conditions = conditions
        self.latent = latent
        self.sum_constraint = sum_constraint
        self.encoder = dense_stack(size + conditions, hidden, 2 * latent, activation)
        extra = 2 if sum_constraint else 0
        self.decoder = dense_stack(latent + conditions, tuple(reversed(hidden)), 3 * size + extra, activation)

    # -- the two halves ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the posterior q(z | x, c)."""
        h = self.encoder(torch.cat([torch.log1p(x.reshape(len(x), -1)), c.reshape(len(x), -1)], dim=1))
        return h[:, : self.latent], h[:, self.latent :].clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        """The distribution of the values given z and c: ``logit`` of π, Gamma ``shape`` and
        ``log_scale`` per value; with ``sum_constraint`` also ``sum_mean``, ``sum_std`` of log Σx."""
        out = self.decoder(torch.cat([z, c.reshape(len(z), -1)], dim=1))
        d = self.features
        params = {
            "logit": out[:, :d],
            "shape": F.softplus(out[:, d : 2 * d]).clamp(1e-3, 1e4),
            "log_scale": out[:, 2 * d : 3 * d].clamp(-20.0, 20.0),
        }
        if self.sum_constraint:
            params["sum_mean"] = out[:, 3 * d]
            params["sum_std"] = F.softplus(out[:, 3 * d + 1]) + 1e-4
        return params

    # -- training ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, c: torch.Tensor) -> ELBOTerms:
        """Negative log-likelihood of ``x`` (N, ...) given a posterior draw of z, and the KL
        divergence of the posterior from the prior, per sample, in nats."""
        x = x.reshape(len(x), -1)
        mean, log_var = self.encode(x, c)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        p = self.decode(z, c)
        hit = x > 0
        y = torch.where(hit, x, torch.ones_like(x))
        k, log_scale = p["shape"], p["log_scale"]
        gamma = (k - 1.0) * torch.log(y) - y * torch.exp(-log_scale) - torch.lgamma(k) - k * log_scale
        log_lik = torch.where(hit, F.logsigmoid(p["logit"]) + gamma, F.logsigmoid(-p["logit"]))
        nll = -log_lik.sum(dim=1)
        if self.sum_constraint:
            total = x.sum(dim=1)
            some = total > 0
            log_total = torch.log(torch.where(some, total, torch.ones_like(total)))
            sum_nll = 0.5 * ((log_total - p["sum_mean"]) / p["sum_std"]) ** 2 + torch.log(p["sum_std"])
            nll = nll + torch.where(some, sum_nll + 0.5 * math.log(2 * math.pi), torch.zeros_like(sum_nll))
        kl = 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return ELBOTerms(nll, kl)

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, c: torch.Tensor, *, seed: int | None = None) -> torch.Tensor:
        """One sample per row of the conditions ``c`` (N, conditions), shape (N, *in_shape).

        With ``seed`` the draw is reproducible and leaves torch's global random state as it was.
        """
        devices = [c.device] if c.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            n = len(c)
            z = torch.randn(n, self.latent, device=c.device, dtype=c.dtype)
            p = self.decode(z, c)
            hit = torch.rand_like(p["logit"]) < torch.sigmoid(p["logit"])
            gamma = torch.distributions.Gamma(p["shape"], torch.exp(-p["log_scale"]), validate_args=False)
            values = gamma.sample()
            x = torch.where(hit, values.clamp_min(1e-30), torch.zeros_like(values))
            if self.sum_constraint:
                target = torch.exp(p["sum_mean"] + p["sum_std"] * torch.randn_like(p["sum_mean"]))
                total = x.sum(dim=1)
                x = (
                    x
                    * torch.where(total > 0, target / total.clamp_min(1e-30), torch.ones_like(total))[:, None]
                )
        return x.reshape(n, *self.sample_shape)
