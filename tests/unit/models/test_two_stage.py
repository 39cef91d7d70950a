"""The two-stage shower model: shapes, the readout's zeros, reproducibility, the quantum's
moment estimate (no training)."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.models import TwoStageShowerModel

SHAPE = (12, 9, 8)


def model() -> TwoStageShowerModel:
    torch.manual_seed(0)
    m = TwoStageShowerModel(SHAPE, 864, flow_transforms=2, flow_hidden=(16,), shape_hidden=(32,))
    return m.eval()


def energies(n: int) -> torch.Tensor:
    return torch.exp(torch.linspace(0.0, math.log(100.0), n)).double()


def condition(e: torch.Tensor) -> torch.Tensor:
    return ((torch.log(e) - 2.3) / 1.3).float()[:, None]


def test_refuses_a_shape_that_is_not_layers_times_cells() -> None:
    with pytest.raises(ValueError, match=r"showers of shape \(layers, \.\.\.cells\)"):
        TwoStageShowerModel((864,), 864)
    with pytest.raises(ValueError, match="out_features"):
        TwoStageShowerModel(SHAPE, 100)


def test_samples_have_the_grid_exact_zeros_and_nothing_below_threshold() -> None:
    m = model()
    e = energies(64)
    x = m.sample(condition(e), e, noise=0.001, threshold=0.003, seed=3)
    assert x.shape == (64, *SHAPE) and x.dtype == torch.float32
    assert torch.all((x == 0) | (x >= 0.003 * (1 - 1e-6))) and (x == 0).any()
    assert torch.equal(x, m.sample(condition(e), e, noise=0.001, threshold=0.003, seed=3))
    assert not torch.equal(x, m.sample(condition(e), e, noise=0.001, threshold=0.003, seed=4))


def test_sampling_with_a_seed_leaves_the_global_random_state_alone() -> None:
    m = model()
    e = energies(8)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    m.sample(condition(e), e, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_layer_statistics_standardise_the_training_layers() -> None:
    m = model()
    e = energies(200)
    layers = torch.rand(200, 12).double() * e[:, None] / 12
    m.fit_layer_statistics(layers, e)
    y = m.layer_code(layers, e, dequantize=False)
    assert torch.allclose(y.mean(dim=0), torch.zeros(12), atol=1e-4)
    assert torch.allclose(y.std(dim=0), torch.ones(12), atol=1e-3)
    assert torch.equal(m.y_min, y.min(dim=0).values) and torch.equal(m.y_max, y.max(dim=0).values)


def test_forward_gives_three_finite_terms_per_shower_and_gradients() -> None:
    m = model().train()
    e = energies(16)
    x = m.sample(condition(e), e, noise=0.001, threshold=0.003, seed=1)
    terms = m(x, e, condition(e))
    assert all(t.shape == (16,) and torch.isfinite(t).all() for t in terms)
    (terms.flow + terms.shape + terms.profile).mean().backward()
    assert all(p.grad is not None for p in m.shape_net.parameters())


def test_the_moment_estimate_recovers_the_quantum_of_its_own_showers(monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.models import _two_stage

    # the count the layer energy implies (an untrained smooth profile would pull it anywhere)
    monkeypatch.setattr(_two_stage, "_quanta", lambda a, b, zero=None: torch.round(b).clamp_min(1.0))
    m = model()
    m.quantum.fill_(0.02)
    e = torch.full((400,), 50.0, dtype=torch.float64)
    x = m.sample(condition(e), e, seed=5)  # no noise, no threshold: only the quanta fluctuate
    residual, expected = m.quantum_moments(x, e, condition(e))
    assert expected > 0
    assert residual / expected == pytest.approx(0.02, rel=0.15)


def test_the_count_of_quanta_follows_the_profile_and_the_energy() -> None:
    from labkit.models._two_stage import _quanta

    torch.manual_seed(0)
    for a, b in ((5.0, 5.0), (20.0, 5.0), (60.0, 5.0), (500.0, 500.0), (2000.0, 500.0)):
        n = _quanta(
            torch.full((20000,), a, dtype=torch.float64), torch.full((20000,), b, dtype=torch.float64)
        )
        # P(n) ∝ (ab)^n / (n! (n - 1)!), n >= 1: its mean and variance, summed exactly
        k = torch.arange(1, 2000, dtype=torch.float64)
        w = torch.softmax(k * math.log(a * b) - torch.lgamma(k + 1) - torch.lgamma(k), dim=0)
        mean = float((w * k).sum())
        var = float((w * k * k).sum()) - mean**2
        assert float(n.mean()) == pytest.approx(mean, rel=0.02)
        assert float(n.var()) == pytest.approx(var, rel=0.1)


def test_a_layer_whose_quanta_all_fall_under_the_threshold_keeps_its_energy_in_one_cell() -> None:
    m = model()
    m.quantum.fill_(0.01)
    e = energies(64)
    x = m.sample(condition(e), e, threshold=0.05, seed=2)  # most quanta (mean 0.01 GeV) are lost
    assert torch.all((x == 0) | (x >= 0.05 * (1 - 1e-6)))
    per_layer = x.sum(dim=(2, 3))
    hit_layers = (x > 0).sum(dim=(2, 3))
    assert bool(((per_layer > 0) & (hit_layers == 1)).any())  # the likeliest cell took the layer


def test_a_layer_the_flow_leaves_empty_gets_no_noise_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    m = model()
    e = energies(400)
    layers = torch.zeros(400, 12, dtype=torch.float64)
    layers[:, :6] = 0.02 * e[:, None]  # the deep half empty: noise alone must not light it up
    monkeypatch.setattr(m, "_layer_energies", lambda c, energy, threshold: layers.clone())
    x = m.sample(condition(e), e, noise=0.002, threshold=0.003, seed=5)  # noise hits in ~1 % of cells
    per_layer = x.double().sum(dim=(2, 3))
    assert torch.all(per_layer[:, 6:] == 0)
    assert torch.all(per_layer[:, :6] >= layers[:, :6] * (1 - 1e-5))
