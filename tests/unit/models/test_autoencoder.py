"""The autoencoder model: layer sizes, the VAE's forward contract and its KL term."""

from __future__ import annotations

import pytest
import torch

from labkit.models import Autoencoder
from labkit.models._autoencoder import VAEOutput


def test_plain_autoencoder_mirrors_its_layers_and_reconstructs_each_input() -> None:
    model = Autoencoder((4,), 4, hidden=(16, 8), latent=2)
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [(4, 16), (16, 8), (8, 2), (2, 8), (8, 16), (16, 4)]
    out = model(torch.randn(5, 4))
    assert isinstance(out, torch.Tensor) and out.shape == (5, 4)
    assert model.encode(torch.randn(5, 4)).shape == (5, 2)


def test_vae_returns_reconstruction_mean_and_log_variance() -> None:
    model = Autoencoder((3,), 3, hidden=(8,), latent=2, variational=True)
    x = torch.randn(6, 3)
    out = model(x)
    assert isinstance(out, VAEOutput)
    assert out.reconstruction.shape == (6, 3) and out.mean.shape == (6, 2) and out.log_var.shape == (6, 2)
    # training mode samples z; evaluation mode decodes the mean, so scores are deterministic
    torch.manual_seed(0)
    a, b = model(x).reconstruction, model(x).reconstruction
    assert not torch.equal(a, b)
    model.eval()
    c, d = model(x), model(x)
    assert torch.equal(c.reconstruction, d.reconstruction)
    assert torch.allclose(c.reconstruction, model.decoder(c.mean))
    assert torch.equal(model.encode(x), c.mean)


def test_kl_divergence_by_hand() -> None:
    mean = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    log_var = torch.tensor([[0.0, 0.0], [0.0, torch.log(torch.tensor(4.0))]])
    kl = VAEOutput(torch.zeros(2, 1), mean, log_var).kl_divergence()
    # ½ Σ (μ² + σ² − 1 − ln σ²): 0 for N(0, 1); ½ (1 + 0) + ½ (4 + 4 − 1 − ln 4) for the second
    expected = 0.5 * 1.0 + 0.5 * (4.0 + 4.0 - 1.0 - torch.log(torch.tensor(4.0)))
    assert kl[0] == 0.0 and torch.isclose(kl[1], expected)


def test_latent_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latent must be >= 1, got 0"):
        Autoencoder((4,), 4, latent=0)
