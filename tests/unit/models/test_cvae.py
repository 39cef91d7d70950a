"""The conditional VAE of the surrogate task: shapes, exact zeros, seeds, the sum constraint, and
that it learns a hurdle-Gamma distribution."""

from __future__ import annotations

import pytest
import torch

from labkit.models._cvae import ConditionalVAE


def small(**kwargs: object) -> ConditionalVAE:
    torch.manual_seed(0)
    return ConditionalVAE((2, 3), 6, conditions=1, hidden=(16,), latent=2, **kwargs)  # type: ignore[arg-type]


def test_elbo_terms_per_sample_and_samples_in_the_input_shape() -> None:
    model = small()
    x = torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.5, 3.0]] * 4)
    nll, kl = model(x.reshape(4, 2, 3), torch.zeros(4, 1))
    assert nll.shape == kl.shape == (4,) and torch.isfinite(nll).all() and (kl >= 0).all()
    out = model.sample(torch.zeros(5, 1), seed=1)
    assert out.shape == (5, 2, 3) and (out >= 0).all()


def test_a_seed_gives_the_same_samples_and_leaves_the_global_random_state() -> None:
    model = small()
    c = torch.linspace(-1, 1, 50)[:, None]
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = model.sample(c, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(a, model.sample(c, seed=7)) and not torch.equal(a, model.sample(c, seed=8))


def test_sum_constraint_rescales_each_sample_to_a_drawn_total() -> None:
    model = small()
    with torch.no_grad():  # the decoder's last layer: totals log-normal around e^2, narrow
        last = model.decoder[-1]
        assert isinstance(last, torch.nn.Linear)
        last.weight.zero_()
        last.bias.zero_()
        last.bias[-2] = 2.0
        last.bias[-1] = -6.0  # softplus(-6) ≈ 0.0025
        last.bias[:6] = 5.0  # every value non-zero
    totals = model.sample(torch.zeros(200, 1), seed=3).reshape(200, -1).sum(dim=1)
    assert torch.allclose(totals.log(), torch.full((200,), 2.0), atol=0.02)
    free = small(sum_constraint=False)
    assert free.decoder[-1].out_features == 3 * 6  # type: ignore[union-attr]


def test_learns_how_often_values_are_zero_and_their_mean() -> None:
    # each value is non-zero with probability 0.3 (condition -1) or 0.8 (condition +1); then Gamma(2, 0.5)
    torch.manual_seed(0)
    n = 4096
    c = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)[:, None]
    p = torch.where(c > 0, 0.8, 0.3).expand(n, 6)
    x = torch.where(
        torch.rand(n, 6) < p, torch.distributions.Gamma(2.0, 2.0).sample((n, 6)), torch.zeros(n, 6)
    )
    model = ConditionalVAE((6,), 6, conditions=1, hidden=(32,), latent=2, sum_constraint=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        idx = torch.randint(0, n, (256,))
        nll, kl = model(x[idx], c[idx])
        loss = (nll + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for cond, hit_rate in ((-1.0, 0.3), (1.0, 0.8)):
        out = model.sample(torch.full((4000, 1), cond), seed=0)
        assert (out > 0).float().mean().item() == pytest.approx(hit_rate, abs=0.03)
        assert out[out > 0].mean().item() == pytest.approx(1.0, abs=0.08)


def test_out_features_must_match_the_sample_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3\) \(6 values\), but out_features is 5"):
        ConditionalVAE((2, 3), 5)
