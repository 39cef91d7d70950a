"""The set models: shapes, invariance under the order of the constituents and under what the
padding holds, and finite outputs for events without any constituent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.config import validate_experiment
from labkit.models import DeepSets, SetTransformer

SHAPES = {"features": (4,), "tracks": (7, 3), "tracks_valid": (7,)}


def batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    valid = torch.zeros(n, 7, dtype=torch.bool)
    for i in range(n):
        valid[i, : i % 8] = True  # 0..7 valid tracks; event 0 has none
    tracks = torch.randn(n, 7, 3, generator=g)
    return {"features": torch.randn(n, 4, generator=g), "tracks": tracks, "tracks_valid": valid}


def models() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        DeepSets((4,), 2, input_shapes=SHAPES, phi=(16, 8), rho=(16,)),
        DeepSets((4,), 2, input_shapes=SHAPES, pooling="mean"),
        SetTransformer((4,), 2, input_shapes=SHAPES, dim=16, heads=2, layers=2, feedforward=32),
    ]


@pytest.mark.parametrize("model", models(), ids=["deepsets_sum", "deepsets_mean", "transformer"])
def test_shapes_permutation_padding_and_empty_events(model: nn.Module) -> None:
    model.eval()
    x = batch()
    with torch.no_grad():
        out = model(x)
        assert out.shape == (6, 2) and torch.isfinite(out).all()  # event 0: no valid track
        # the valid tracks in another order: same output
        perm = dict(x)
        tracks = x["tracks"].clone()
        for i in range(6):
            k = int(x["tracks_valid"][i].sum())
            order = torch.randperm(k, generator=torch.Generator().manual_seed(i))
            tracks[i, :k] = x["tracks"][i, order]
        perm["tracks"] = tracks
        torch.testing.assert_close(model(perm), out, rtol=1e-5, atol=1e-5)
        # whatever the padding holds (even NaN): same output
        padded = dict(x)
        garbage = torch.full_like(x["tracks"], 1e6)
        garbage[..., 0] = float("nan")
        padded["tracks"] = torch.where(x["tracks_valid"].unsqueeze(-1), x["tracks"], garbage)
        torch.testing.assert_close(model(padded), out, rtol=1e-5, atol=1e-5)
        # valid entries scattered among the padding rather than first: same output
        moved = {k: v.flip(1) if k.startswith("tracks") else v for k, v in x.items()}
        torch.testing.assert_close(model(moved), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [DeepSets, SetTransformer])
def test_no_event_features_and_two_sets(cls: type[nn.Module]) -> None:
    shapes = {"tracks": (5, 2), "tracks_valid": (5,), "towers": (3, 4), "towers_valid": (3,)}
    model = cls((), 3, input_shapes=shapes)
    x = {
        "tracks": torch.randn(4, 5, 2),
        "tracks_valid": torch.rand(4, 5) > 0.5,
        "towers": torch.randn(4, 3, 4),
        "towers_valid": torch.zeros(4, 3, dtype=torch.bool),
    }
    out = model(x)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    out.sum().backward()  # gradients flow through the masked pooling


@pytest.mark.parametrize("cls", [DeepSets, SetTransformer])
def test_a_set_model_without_constituents_says_to_name_them(cls: type[nn.Module]) -> None:
    with pytest.raises(ValueError, match=r"reads constituents .*name them in data.constituents"):
        cls((5,), 2, input_shapes={})
    with pytest.raises(ValueError, match=r"reads constituents"):
        cls((5,), 2)


def test_transformer_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"dim \(10\) must be a multiple of heads \(4\)"):
        SetTransformer((), 2, input_shapes=SHAPES, dim=10, heads=4)


def test_specs_validate_the_options() -> None:
    base = {
        "name": "jets",
        "task": {"kind": "classification"},
        "data": {"name": "digits"},
    }
    exp = validate_experiment(
        base | {"model": {"name": "set_transformer", "dim": 32, "heads": 8}}, environ={}
    )
    assert exp.model.options()["dim"] == 32  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"dim \(30\) must be a multiple of heads \(4\)"):
        validate_experiment(base | {"model": {"name": "set_transformer", "dim": 30}})
    with pytest.raises(ValueError, match=r"pooling"):
        validate_experiment(base | {"model": {"name": "deepsets", "pooling": "max"}})
