"""The collection's one training loop: seeded, device-aware, with tqdm progress."""

from __future__ import annotations

from contextlib import contextmanager

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from .metrics import QUALITY


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; asking for an absent CUDA is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); use device='cpu' or 'auto', or run on a CUDA machine"
        )
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return torch.device(device)


def set_cpu_threads(n: int) -> int:
    """``torch.set_num_threads(n)`` unless ``n`` is 0 (keep torch's default); returns the thread
    count now in use, for the provenance footer."""
    if n < 0:
        raise ValueError(f"cpu threads must be >= 0, got {n}")
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


@contextmanager
def cpu_threads(n: int):
    """``with cpu_threads(n):`` runs the block with :func:`set_cpu_threads` ``(n)`` and restores the
    previous torch thread count afterwards (also on error)."""
    before = torch.get_num_threads()
    set_cpu_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def task_loss(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Mean negative log-likelihood: cross-entropy, or squared error for regression."""
    if task == "classification":
        return F.cross_entropy
    if task == "regression":
        # written out rather than F.mse_loss, whose double-backward fails under vmap(jvp(grad))
        return lambda out, y: torch.mean((out.reshape(y.shape) - y) ** 2)
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


@dataclass
class History:
    loss: list[float] = field(default_factory=list)
    train_quality: list[float] = field(default_factory=list)
    test_quality: list[float] = field(default_factory=list)
    quality_name: str = ""

    def as_dict(self) -> dict:
        return {"loss": self.loss, "train_quality": self.train_quality,
                "test_quality": self.test_quality, "quality_name": self.quality_name}


def train(
    model: nn.Module,
    data,
    *,
    epochs: int = 100,
    lr: float = 1e-2,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    optimizer: str = "adam",
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Minimise mean NLL (+ ``regularizer(model)``) on ``data`` (a :class:`~paramspace.data.Dataset`).

    Minibatches are drawn with a generator seeded by ``seed``, so two calls with the same seed,
    model initialisation and device give the same weights.  ``eval_every > 0`` records train and
    test quality every that many epochs (and at the end).  Returns a :class:`History`.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    model.to(dev)
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    loss_fn = task_loss(data.task)
    qname, qfn = QUALITY[data.task]
    opts = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if optimizer not in opts:
        raise ValueError(f"optimizer must be one of {list(opts)}, got {optimizer!r}")
    opt = opts[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
    hist = History(quality_name=qname)
    n = len(X)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False, mininterval=1.0)
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = loss_fn(model(X[idx]), y[idx])
            if regularizer is not None:
                loss = loss + regularizer(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        hist.loss.append(total / n)
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            model.eval()
            with torch.no_grad():
                hist.train_quality.append(qfn(model(X), y))
                hist.test_quality.append(qfn(model(data.X_test.to(dev)), data.y_test.to(dev)))
        bar.set_postfix(loss=f"{hist.loss[-1]:.4f}", refresh=False)
    model.eval()
    return hist
