from __future__ import annotations

from collections.abc import Sequence

from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation layer by name (one of :data:`_ACTIVATIONS`)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(_ACTIVATIONS)}") from None


def dense_stack(width: int, hidden: Sequence[int], out: int, activation_name: str) -> nn.Sequential:
    """Linear layers of ``hidden`` widths, each followed by the activation, then a linear layer
    to ``out``: the plain MLP body the generative models share."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), activation(activation_name)]
        width = size
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)
