from __future__ import annotations

import pytest
import torch

from labkit.models import MLP, SmallCNN


@pytest.mark.parametrize("in_shape", [(64,), (1, 8, 8), (8, 8)])
def test_mlp_flattens_any_sample_shape(in_shape: tuple[int, ...]) -> None:
    model = MLP(in_shape, 10, hidden=(16, 16))
    assert model(torch.zeros(5, *in_shape)).shape == (5, 10)


def test_mlp_layer_sizes() -> None:
    model = MLP((64,), 10, hidden=(16, 16))
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [(64, 16), (16, 16), (16, 10)]
    assert sum(p.numel() for p in model.parameters()) == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10


def test_mlp_without_hidden_layers_is_linear() -> None:
    model = MLP((4,), 3, hidden=())
    assert [type(m) for m in model.net] == [torch.nn.Flatten, torch.nn.Linear]


def test_mlp_options_add_layers() -> None:
    model = MLP((4,), 2, hidden=(8,), activation="gelu", dropout=0.2, batch_norm=True)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "GELU", "Dropout", "Linear"]


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (8, 8), (3, 32, 32)])
def test_cnn_takes_images(in_shape: tuple[int, ...]) -> None:
    model = SmallCNN(in_shape, 4, channels=(4, 8))
    assert model(torch.randn(2, *in_shape)).shape == (2, 4)


def test_cnn_rejects_flat_samples() -> None:
    with pytest.raises(
        ValueError, match=r"SmallCNN needs images \(C, H, W\) or \(H, W\), got samples of shape \(64,\)"
    ):
        SmallCNN((64,), 10)


def test_unknown_activation() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; valid: relu"):
        MLP((4,), 2, activation="swish")
