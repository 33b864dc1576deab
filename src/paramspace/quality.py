"""Quality metrics; ``quality`` is the one a report plots (higher is better)."""

from __future__ import annotations

import torch

from .models import predict


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return (out.argmax(1).cpu() == y.cpu()).float().mean().item()


def mse(out: torch.Tensor, y: torch.Tensor) -> float:
    return torch.mean((out.cpu().reshape(y.shape) - y.cpu()) ** 2).item()


def r2(out: torch.Tensor, y: torch.Tensor) -> float:
    y = y.cpu().reshape(-1).double()
    out = out.cpu().reshape(-1).double()
    ss_res = torch.sum((y - out) ** 2)
    ss_tot = torch.sum((y - y.mean()) ** 2)
    return (1.0 - ss_res / ss_tot).item()


QUALITY = {"classification": ("accuracy", accuracy), "regression": ("R²", r2)}


def quality_name(task: str) -> str:
    return QUALITY[task][0]


def quality(model, X: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """Accuracy (classification) or R² (regression) of ``model`` on ``(X, y)``."""
    return QUALITY[task][1](predict(model, X), y)
