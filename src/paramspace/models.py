"""Small model builders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(in_dim: int, widths: Sequence[int], out_dim: int, act: str = "relu",
        linear: type[nn.Module] = nn.Linear, **linear_kwargs) -> nn.Sequential:
    """``in_dim -> widths[0] -> ... -> widths[-1] -> out_dim`` with ``act`` between layers.

    ``linear`` is the layer class (``nn.Linear`` or e.g. :class:`paramspace.variational.BayesLinear`).
    """
    dims = [int(in_dim), *map(int, widths), int(out_dim)]
    if any(d <= 0 for d in dims):
        raise ValueError(f"all layer widths must be positive, got {dims}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(linear(a, b, **linear_kwargs))
        if i < len(dims) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def n_params(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def linear_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Model outputs on ``X`` in evaluation mode, batched, on the model's device."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = torch.cat([model(X[i:i + batch_size].to(dev)) for i in range(0, len(X), batch_size)])
    model.train(was)
    return out
