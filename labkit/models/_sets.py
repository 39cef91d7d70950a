"""Models of per-event sets (jet constituents: tracks, particles, clusters) and event features.

Both models read named inputs (``data.constituents``): ``x["features"]`` (N, F) per-event
features (absent when there are none) and, per constituent set ``g``, ``x[g]`` (N, M, F_g) with
``x[g + "_valid"]`` (N, M) bool (False marks padding). Padded entries never reach the output
(they are zeroed and masked), and the output does not depend on the order of the valid entries.
An event without any valid constituent gives a finite output (pooling over nothing is zero for
Deep Sets; the transformer keeps a learnt token per set that is always valid).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from labkit.models._common import activation as make_activation

__all__ = ["DeepSets", "SetTransformer", "constituent_sets"]

FEATURES = "features"  #: the key of the per-event features
VALID = "_valid"  #: suffix of a set's mask


def constituent_sets(input_shapes: Mapping[str, Sequence[int]] | None, model: str) -> list[tuple[str, int]]:
    """The constituent sets of ``input_shapes`` as ``(name, features per constituent)``, in
    sorted order; ValueError when there are none (a set model needs ``data.constituents``)."""
    shapes = dict(input_shapes or {})
    sets = sorted(k for k in shapes if k != FEATURES and not k.endswith(VALID))
    if not sets:
        raise ValueError(
            f"{model} reads constituents (per-event sets); name them in data.constituents, e.g. "
            "{tracks: {dataset: tracks, fields: [d0, z0], valid: valid, max: 40}}"
        )
    out = []
    for name in sets:
        shape = tuple(shapes[name])
        if len(shape) != 2:
            raise ValueError(f"constituents {name!r}: expected (entries, features) per event, got {shape}")
        out.append((name, int(shape[1])))
    return out


def _features(in_shape: Sequence[int], input_shapes: Mapping[str, Sequence[int]] | None) -> int:
    shape = tuple((input_shapes or {}).get(FEATURES, in_shape))
    return math.prod(shape) if shape else 0


def _mlp(
    width: int, hidden: Sequence[int], out: int | None, activation: str, dropout: float
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), make_activation(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    if out is not None:
        layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


def _masked(x: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The set ``name`` (N, M, F) with padding zeroed (whatever it held), and its mask (N, M)."""
    values = x[name].float()
    valid = x.get(name + VALID)
    if valid is None:
        valid = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
    valid = valid.bool()
    return torch.where(valid.unsqueeze(-1), values, torch.zeros_like(values)), valid


def _pool(h: torch.Tensor, valid: torch.Tensor, pooling: str) -> torch.Tensor:
    """Masked sum or mean over the entries of (N, M, D); zero for an event with none."""
    h = torch.where(valid.unsqueeze(-1), h, torch.zeros_like(h))
    total = h.sum(dim=1)
    if pooling == "sum":
        return total
    count = valid.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
    return total / count


class DeepSets(nn.Module):
    """Deep Sets (Zaheer et al. 2017; the Energy/Particle Flow Networks of Komiske, Metodiev and
    Thaler 2019): a network φ applied to each constituent, a masked sum (or mean) over the
    constituents of each set, concatenated with the per-event features, then a network ρ.

    Args:
        in_shape: shape of the per-event features (``()`` when there are none).
        out_features: number of outputs.
        input_shapes: per-event shape of each named input (``DataInfo.input_shapes``).
        phi: hidden widths of φ; its last width is the size of each pooled set.
        rho: hidden widths of ρ.
        pooling: ``sum`` (counts matter, as in a likelihood ratio of independent constituents)
            or ``mean``.
        activation: the non-linearity.
        dropout: dropout after each hidden layer of ρ.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        phi: Sequence[int] = (64, 64),
        rho: Sequence[int] = (64, 64),
        pooling: str = "sum",
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if pooling not in ("sum", "mean"):
            raise ValueError(f"pooling must be 'sum' or 'mean', got {pooling!r}")
        if not phi:
            raise ValueError("phi needs at least one layer (its last width is the pooled size)")
        self.sets = constituent_sets(input_shapes, "deepsets")
        self.pooling = pooling
        self.n_features = _features(in_shape, input_shapes)
        self.phi = nn.ModuleList(nn.Sequential(_mlp(f, phi, None, activation, 0.0)) for _, f in self.sets)
        width = self.n_features + len(self.sets) * phi[-1]
        self.rho = _mlp(width, rho, out_features, activation, dropout)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = []
        for (name, _), phi in zip(self.sets, self.phi, strict=True):
            values, valid = _masked(x, name)
            pooled.append(_pool(phi(values), valid, self.pooling))
        if self.n_features:
            pooled.insert(0, x[FEATURES].float().reshape(len(pooled[0]), -1))
        out: torch.Tensor = self.rho(torch.cat(pooled, dim=1))
        return out


class SetTransformer(nn.Module):
    """A small transformer encoder over each constituent set (masked self-attention: padding is
    never attended to), no positional encoding (the order of the constituents means nothing),
    a masked mean over each set's outputs, concatenated with the per-event features, then an MLP
    head. Each set also carries one learnt token that is always valid, so that an event without
    constituents still has something to attend to (attention over nothing is undefined).

    Args:
        in_shape: shape of the per-event features (``()`` when there are none).
        out_features: number of outputs.
        input_shapes: per-event shape of each named input (``DataInfo.input_shapes``).
        dim: width of the constituent embedding (a multiple of ``heads``).
        heads: attention heads.
        layers: encoder layers.
        feedforward: width of each layer's feed-forward network.
        head: hidden widths of the MLP head.
        activation: ``relu`` or ``gelu`` (in the encoder and the head).
        dropout: dropout in the encoder layers and the head.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        feedforward: int = 128,
        head: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu' for the transformer, got {activation!r}")
        self.sets = constituent_sets(input_shapes, "set_transformer")
        self.n_features = _features(in_shape, input_shapes)
        self.embed = nn.ModuleList(nn.Linear(f, dim) for _, f in self.sets)
        self.token = nn.Parameter(torch.zeros(len(self.sets), 1, 1, dim))
        nn.init.normal_(self.token, std=0.02)
        self.encoders = nn.ModuleList(
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(
                    dim, heads, feedforward, dropout, activation=activation, batch_first=True
                ),
                layers,
                enable_nested_tensor=False,
            )
            for _ in self.sets
        )
        width = self.n_features + len(self.sets) * dim
        self.head = _mlp(width, head, out_features, activation, dropout)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = []
        for i, ((name, _), embed, encoder) in enumerate(
            zip(self.sets, self.embed, self.encoders, strict=True)
        ):
            values, valid = _masked(x, name)
            h = embed(values)
            n = h.shape[0]
            tokens = torch.cat([self.token[i].expand(n, 1, -1), h], dim=1)
            keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=valid.device), valid], dim=1)
            out = encoder(tokens, src_key_padding_mask=~keep)
            pooled.append(_pool(out, keep, "mean"))
        if self.n_features:
            pooled.insert(0, x[FEATURES].float().reshape(len(pooled[0]), -1))
        result: torch.Tensor = self.head(torch.cat(pooled, dim=1))
        return result
