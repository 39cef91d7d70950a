"""A two-stage generative model of calorimeter showers: the layer energies first (a conditional
neural spline flow), then each layer's cells (a shape network and compound-Poisson sampling)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from labkit.models._common import dense_stack

__all__ = ["TwoStageShowerModel", "TwoStageTerms"]

#: GeV added (uniform in [0, this)) to each layer energy before its logarithm, so that empty
#: layers become a narrow band the flow can learn; well below any readout threshold of interest
DEQUANTIZATION = 1e-3
#: the smooth profile's count is bounded to [LOW, HIGH] times the count the layer's energy
#: implies (a guard against a profile far off in a sparse layer)
SHRINK_LOW, SHRINK_HIGH = 0.25, 4.0
#: below this posterior mode the count is drawn exactly, above it from its normal approximation
EXACT_QUANTA = 12


class TwoStageTerms(NamedTuple):
    """Per shower (N,), in nats: the flow's negative log-likelihood of the layer energies, the
    shape network's cross-entropy of the cells (per GeV of incident energy), and the smooth
    profile's cross-entropy of the layer energies (per GeV of incident energy)."""

    flow: torch.Tensor
    shape: torch.Tensor
    profile: torch.Tensor


class TwoStageShowerModel(nn.Module):
    """Showers of ``layers × cells`` non-negative energies given the incident energy, in two stages
    (the CaloFlow idea, arXiv:2106.05285, with a sampling second stage).

    1. **Layer energies.** y_k = log((E_k + u δ)/E_inc), u ~ U(0, 1), δ = 1 MeV (dequantisation:
       an empty layer becomes a narrow band), standardised with the training mean and standard
       deviation, is modelled by a conditional neural spline flow (``zuko.flows.NSF``:
       ``flow_transforms`` coupling rational-quadratic spline transforms of ``flow_bins`` bins,
       half the layers given the other half, alternating, networks of ``flow_hidden``) given
       the condition c (the normalised log E_inc).
       Generated y are clipped to the training range; E_k = E_inc e^y − δ/2 and 0 below the
       readout threshold.
    2. **Cells.** A shape network (an MLP of ``shape_hidden`` on c and the standardised y) gives
       for each layer k the probabilities p_kv of its cells v (a softmax per layer), trained by
       the cross-entropy −Σ_kv x_kv log p_kv / E_inc (the maximum-likelihood estimate of a
       spatial intensity, every GeV counting alike). A shower's energy
       in a layer arrives in quanta: cells hold θ·Gamma(n_kv) for n_kv quanta of mean energy θ
       (exponential quanta: sampling fluctuations), with n_k = Σ_v n_kv multinomial over the
       cells. θ is the one scalar not trained by gradient: it is set from the moments of the
       validation cells, θ = Σ (x − μ)² / Σ μ (2 − p) over cells with μ = p E_k > 50 θ₀ (the variance of a
       multinomial sum of exponentials), by :meth:`quantum_moments`.
       The count n_k is drawn given the layer energy: its energy alone says E_k/θ (a Gamma
       likelihood of variance E_k/θ); a smooth longitudinal profile m_k (a 2-number bottleneck
       on c and y, trained by the cross-entropy of the layer energies) says m_k Σ_j E_j / θ;
       the two are combined as two Gaussians of equal relative precision: n_k ~ N(2ab/(a+b),
       ab/(a+b)), a bounded to [0.8, 2] b. Quanta lost under the readout threshold are put back
       first (b is raised by the expected lost fraction of single-quantum cells). The cells are
       then drawn, the readout's Gaussian ``noise`` added, cells below ``threshold`` zeroed, and
       each layer's excess over the threshold rescaled so that the layer holds E_k (the hit
       cells stay hit).

    ``forward`` gives the three training terms per shower; ``sample`` one shower per condition.
    Fit the standardisation (:meth:`fit_layer_statistics`) before training.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        conditions: int = 1,
        flow_transforms: int = 6,
        flow_hidden: Sequence[int] = (128, 128),
        flow_bins: int = 10,
        shape_hidden: Sequence[int] = (256, 512),
        activation: str = "silu",
    ) -> None:
        super().__init__()
        import zuko

        shape = tuple(int(d) for d in in_shape)
        if len(shape) < 2 or math.prod(shape) != out_features:
            raise ValueError(
                f"TwoStageShowerModel needs showers of shape (layers, ...cells) with out_features their "
                f"size, got {shape} and {out_features}"
            )
        self.sample_shape = shape
        self.features = out_features
        self.layers = shape[0]
        self.cells = math.prod(shape[1:])
        self.conditions = conditions
        self.flow = zuko.flows.NSF(
            self.layers,
            context=conditions,
            transforms=flow_transforms,
            passes=2,  # coupling transforms: sampling inverts each in two passes, not one per layer
            hidden_features=list(flow_hidden),
            bins=flow_bins,
        )
        self.shape_net = dense_stack(
            conditions + self.layers, shape_hidden, self.layers * self.cells, activation
        )
        self.profile_code = dense_stack(conditions + self.layers, (64,), 2, activation)
        self.profile_net = dense_stack(conditions + 2, (64, 64), self.layers, activation)
        self.register_buffer("y_mean", torch.zeros(self.layers, dtype=torch.float64))
        self.register_buffer("y_std", torch.ones(self.layers, dtype=torch.float64))
        self.register_buffer("y_min", torch.full((self.layers,), -5.0))
        self.register_buffer("y_max", torch.full((self.layers,), 5.0))
        self.register_buffer("quantum", torch.tensor(0.01, dtype=torch.float64))

    # -- preprocessing -------------------------------------------------------------------------
    def layer_code(
        self, layer_energy: torch.Tensor, energy: torch.Tensor, *, dequantize: bool
    ) -> torch.Tensor:
        """Standardised y_k = log((E_k + u δ)/E_inc) (N, layers), float32; u = ½ without ``dequantize``."""
        e_k = layer_energy.double()
        u = torch.rand_like(e_k) if dequantize else torch.full_like(e_k, 0.5)
        y = torch.log((e_k.clamp_min(0.0) + u * DEQUANTIZATION) / energy.double()[:, None])
        mean, std = self.y_mean, self.y_std
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        return ((y - mean) / std).float()

    @torch.no_grad()
    def fit_layer_statistics(self, layer_energy: torch.Tensor, energy: torch.Tensor) -> None:
        """Mean, standard deviation and range of y over the training showers (N, layers)."""
        e_k = layer_energy.double()
        y = torch.log((e_k.clamp_min(0.0) + 0.5 * DEQUANTIZATION) / energy.double()[:, None])
        self.y_mean.copy_(y.mean(dim=0))  # type: ignore[operator]
        self.y_std.copy_(y.std(dim=0).clamp_min(1e-6))  # type: ignore[operator]
        z = self.layer_code(layer_energy, energy, dequantize=False)
        self.y_min.copy_(z.min(dim=0).values)  # type: ignore[operator]
        self.y_max.copy_(z.max(dim=0).values)  # type: ignore[operator]

    def _cells(self, showers: torch.Tensor) -> torch.Tensor:
        return showers.reshape(len(showers), self.layers, self.cells)

    def _shape_probabilities(self, c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.shape_net(torch.cat([c, y], dim=1)).reshape(len(y), self.layers, self.cells)
        return torch.log_softmax(logits, dim=-1)

    def _profile(self, c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        code = self.profile_code(torch.cat([c, y], dim=1))
        return torch.log_softmax(self.profile_net(torch.cat([c, code], dim=1)), dim=-1)

    # -- training ------------------------------------------------------------------------------
    def forward(self, showers: torch.Tensor, energy: torch.Tensor, condition: torch.Tensor) -> TwoStageTerms:
        """The three terms per shower for ``showers`` (N, layers, ...) in GeV at incident
        ``energy`` (N,) GeV with conditions (N, conditions)."""
        x = self._cells(showers).float()
        c = condition.reshape(len(x), -1).float()
        e_k = x.sum(dim=-1)
        y = self.layer_code(e_k, energy, dequantize=self.training)
        flow_nll = -self.flow(c).log_prob(y)
        scale = energy.float()[:, None]
        shape = -(x * self._shape_probabilities(c, y)).sum(dim=(1, 2)) / scale[:, 0]
        profile = -(e_k * self._profile(c, y)).sum(dim=1) / scale[:, 0]
        return TwoStageTerms(flow_nll, shape, profile)

    @torch.no_grad()
    def quantum_moments(
        self, showers: torch.Tensor, energy: torch.Tensor, condition: torch.Tensor
    ) -> tuple[float, float]:
        """Σ (x − μ)² and Σ μ (2 − p) over the cells with μ = p E_k > 0.05 GeV; their ratio over
        a sample is the moment estimate of the quantum θ."""
        x = self._cells(showers).double()
        c = condition.reshape(len(x), -1).float()
        e_k = x.sum(dim=-1)
        p = self._shape_probabilities(c, self.layer_code(e_k, energy, dequantize=False)).exp().double()
        mu = p * e_k[:, :, None]
        used = mu > 0.05
        return float(((x - mu) ** 2)[used].sum()), float((mu * (2.0 - p))[used].sum())

    # -- generation ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        condition: torch.Tensor,
        energy: torch.Tensor,
        *,
        noise: float = 0.0,
        threshold: float = 0.0,
        seed: int | None = None,
    ) -> torch.Tensor:
        """One shower (layers, ...) in GeV, float32, per row of ``condition`` at incident
        ``energy`` (N,) GeV; with ``seed`` reproducible and leaving torch's random state as it was."""
        devices = [condition.device] if condition.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            return self._sample(condition, energy, noise=noise, threshold=threshold)

    def _layer_energies(self, c: torch.Tensor, e: torch.Tensor, threshold: float) -> torch.Tensor:
        """The flow's layer energies (N, layers) in GeV, float64: 0 under the threshold."""
        y = self.flow(c).sample()
        y = torch.maximum(torch.minimum(y, self.y_max), self.y_min)  # type: ignore[arg-type]
        mean, std = self.y_mean, self.y_std
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        e_k = torch.exp(y.double() * std + mean) * e[:, None] - 0.5 * DEQUANTIZATION
        return torch.where(e_k >= max(threshold, 1e-9), e_k, torch.zeros_like(e_k))

    def _sample(
        self, condition: torch.Tensor, energy: torch.Tensor, *, noise: float, threshold: float
    ) -> torch.Tensor:
        n = len(condition)
        c = condition.reshape(n, -1).float()
        e = energy.to(c.device).double()
        e_k = self._layer_energies(c, e, threshold)
        y = self.layer_code(e_k, e, dequantize=False)
        p = self._shape_probabilities(c, y).exp()
        quantum = self.quantum
        assert isinstance(quantum, torch.Tensor)
        theta = float(quantum)
        counts_from_energy = e_k / theta
        # quanta under the threshold are lost from the layer's energy: put them back
        t = max(threshold, 0.0) / theta
        lost_per_quantum = 1.0 - math.exp(-t) * (1.0 + t)  # E[x; x < t] / θ for one exponential quantum
        lam = p * counts_from_energy.float()[:, :, None]
        lost = (
            lost_per_quantum
            * (lam * torch.exp(-lam)).sum(dim=-1).double()
            / counts_from_energy.clamp_min(1e-9)
        )
        b = (counts_from_energy / (1.0 - lost).clamp_min(0.5)).clamp_min(1e-6)
        smooth = self._profile(c, y).exp().double() * e_k.sum(dim=1, keepdim=True) / theta
        a = torch.minimum(torch.maximum(smooth, SHRINK_LOW * b), SHRINK_HIGH * b).clamp_min(1e-6)
        count = _quanta(a, b, _lone_noise_logit(e_k, theta, self.cells, noise=noise, threshold=threshold))
        count = torch.where(e_k > 0, count, torch.zeros_like(count))
        quanta = torch.zeros(n * self.layers, self.cells, dtype=torch.float32, device=c.device)
        rows = (count.reshape(-1) > 0).nonzero().squeeze(1)  # layers without quanta stay empty
        quanta[rows] = _multinomial(count.reshape(-1)[rows].float(), p.reshape(-1, self.cells)[rows])
        quanta = quanta.reshape(n, self.layers, self.cells)
        x = torch.zeros_like(quanta)
        hit = quanta > 0
        x[hit] = torch._standard_gamma(quanta[hit]) * theta
        if noise > 0:
            x = x + noise * torch.randn_like(x)
        # an empty layer (E_k = 0) stays empty: its lack of noise hits is part of what E_k says
        x = torch.where((x >= threshold) & (e_k > 0)[:, :, None], x, torch.zeros_like(x)).clamp_min(0.0)
        # each layer to its E_k, by scaling the cells' excess over the threshold: every hit cell
        # stays hit and >= threshold, so the rescaling changes no cell count
        hit = x > 0
        floor = threshold * hit.sum(dim=-1)
        total = x.sum(dim=-1)
        excess = (total - floor).clamp_min(1e-12)
        factor = ((e_k - floor) / excess).clamp_min(0.0).float()
        x = torch.where(hit, threshold + (x - threshold) * factor[:, :, None], x)
        # a layer without a hit but with energy: every quantum fell under the threshold (the
        # cell it is drawn in takes it), or it had none and its energy is a lone noise hit (any cell)
        empty = (total <= 0) & (e_k > 0)
        if bool(empty.any()):
            cell = torch.multinomial(p[empty].float(), 1).squeeze(1)
            cell = torch.where(count[empty] > 0, cell, torch.randint_like(cell, self.cells))
            x[empty, cell] = e_k[empty].to(x.dtype)
        return x.float().reshape(n, *self.sample_shape)


def _quanta(a: torch.Tensor, b: torch.Tensor, zero_logit: torch.Tensor | None = None) -> torch.Tensor:
    """Quanta n in a layer from P(n) ∝ Poisson(n; a) · Gamma(E; n, θ) with b = E/θ, i.e.
    ∝ (ab)^n / (n! (n − 1)!) for n >= 1: the prior of the smooth profile times the likelihood of
    the layer's energy. Its mode is √(ab) and its variance about √(ab)/2; drawn exactly below a
    mode of :data:`EXACT_QUANTA`, from N(√(ab), √(ab)/2) rounded above. ``zero_logit`` (the
    log-weight of n = 0 on the same scale, :func:`_lone_noise_logit`) lets a small layer have
    no quanta at all."""
    mode = torch.sqrt(a * b)
    count = torch.round(mode + torch.sqrt(0.5 * mode) * torch.randn_like(mode)).clamp_min(1.0)
    small = mode < EXACT_QUANTA
    if bool(small.any()):
        n = torch.arange(1, 5 * EXACT_QUANTA + 1, dtype=a.dtype, device=a.device)  # 13 standard deviations
        logits = n * torch.log(a[small] * b[small])[:, None] - torch.lgamma(n + 1) - torch.lgamma(n)
        if zero_logit is not None:
            n = torch.cat([torch.zeros(1, dtype=n.dtype, device=n.device), n])
            logits = torch.cat([zero_logit[small][:, None], logits], dim=1)
        drawn = torch.multinomial(torch.softmax(logits, dim=1).float(), 1).squeeze(1)
        count[small] = n[drawn]
    return count


def _lone_noise_logit(
    e_k: torch.Tensor, theta: float, cells: int, *, noise: float, threshold: float
) -> torch.Tensor | None:
    """Log-weight, on the scale of :func:`_quanta`'s n >= 1 terms, that a layer's energy E is one
    noise hit alone: (E/θ + log E) + log of the density of one noise hit above the threshold
    among ``cells`` cells of Gaussian noise (and none in the others); −inf where E is under the
    threshold. None without noise."""
    if noise <= 0:
        return None
    over = 0.5 * math.erfc(threshold / (noise * math.sqrt(2.0)))  # one cell's noise above the threshold
    if over <= 0:
        return None
    e = e_k.clamp_min(1e-12)
    log_density = (
        math.log(cells)
        + (cells - 1) * math.log1p(-over)
        - 0.5 * (e / noise) ** 2
        - math.log(noise * math.sqrt(2.0 * math.pi))
    )
    logit = log_density + e / theta + torch.log(e)
    return torch.where(e_k >= threshold, logit, torch.full_like(logit, -math.inf))


def _multinomial(count: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Multinomial draws of ``count`` (M,) quanta over the columns of ``p`` (M, C) (rows sum to
    1), as a chain of binomials; float counts."""
    out = torch.zeros_like(p)
    left = count.clone()
    rest = torch.ones_like(count)
    for v in range(p.shape[1] - 1):
        q = (p[:, v] / rest.clamp_min(1e-12)).clamp(0.0, 1.0)
        drawn = torch.binomial(left, q)
        out[:, v] = drawn
        left = left - drawn
        rest = rest - p[:, v]
    out[:, -1] = left
    return out
