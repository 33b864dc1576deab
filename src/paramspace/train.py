"""The collection's one training loop, :func:`fit` (step function + hooks), the one optimizer factory,
and the seeding, device and thread helpers every report uses.

Every report trains through :func:`fit`: what differs between reports (a KL term, a hypernetwork's
lambda sampling, masked weights, a mirror-descent step between batches, a frame penalty, a batched
model family) is the ``step`` function or a hook, never another loop (d2l's ``Trainer`` /
``training_step`` split).  :func:`train` is the plain case (mean NLL + optional regularizer).
"""

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

from .quality import QUALITY


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
    """``with cpu_threads(n):`` runs the block with :func:`set_cpu_threads` ``(n)`` and, for ``n > 0``,
    the BLAS libraries of NumPy and SciPy (e.g. the eigendecompositions of Belsley's method) limited
    to ``n`` threads too (``threadpoolctl``), so that a run holding ``n`` cores of the engine uses
    ``n``; both are restored afterwards (also on error)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    set_cpu_threads(n)
    try:
        with threadpool_limits(limits=n if n > 0 else None, user_api="blas"):
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


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(parameters, name: str, lr: float, *, weight_decay: float = 0.0, momentum: float = 0.0,
                   nesterov: bool = False) -> torch.optim.Optimizer:
    """The collection's one optimizer factory: ``torch.optim.Adam`` or ``torch.optim.SGD`` (plain unless
    ``momentum > 0``; ``nesterov`` needs momentum), with coupled L2 ``weight_decay`` as torch defines it."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")
    if not lr > 0 or weight_decay < 0 or momentum < 0 or (nesterov and momentum == 0):
        raise ValueError(f"need lr > 0, weight_decay >= 0, momentum >= 0 (> 0 with nesterov); got lr={lr}, "
                         f"weight_decay={weight_decay}, momentum={momentum}, nesterov={nesterov}")
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


CLIP_MODES = ("value", "norm", "norm_per_model")


def clip_gradients(parameters, clip: float, mode: str = "value") -> None:
    """Clip every gradient entry to ``[-clip, clip]`` (``mode="value"``) or the global gradient norm to
    ``clip`` (``mode="norm"``); nothing when ``clip == 0``.

    ``mode="norm_per_model"`` is ``"norm"`` for a model family whose parameters are stacked along a
    leading axis of size K: slice k of every gradient is scaled by ``min(1, clip / (||g_k|| + 1e-6))``
    with ``||g_k||`` the norm of model k's gradient alone, which is what ``clip_grad_norm_`` does to
    one model's gradient in a separate training (the families' clipping must not couple the models)."""
    if clip < 0 or mode not in CLIP_MODES:
        raise ValueError(f"need clip >= 0 and mode in {CLIP_MODES}, got {clip}, {mode!r}")
    if clip == 0:
        return
    if mode == "value":
        torch.nn.utils.clip_grad_value_(parameters, clip)
    elif mode == "norm":
        torch.nn.utils.clip_grad_norm_(parameters, clip)
    else:
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        norms = torch.linalg.vector_norm(torch.stack([g.flatten(1).norm(dim=1) for g in grads]), dim=0)  # (K,)
        coef = (clip / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(-1, *([1] * (g.dim() - 1))))


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
    """``batches(epoch)`` for :func:`fit`: each epoch, a permutation of ``range(n)`` drawn from
    ``generator`` (on the CPU, so the order does not depend on the device), cut into index tensors of
    ``batch_size`` (the last may be shorter)."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got {n}, {batch_size}")

    def batches(_epoch: int):
        perm = torch.randperm(n, generator=generator).to(device)
        return (perm[i:i + batch_size] for i in range(0, n, batch_size))

    return batches


def _batch_weight(batch) -> int:
    """How many examples a batch holds: an index tensor's last dimension ((B,) or (K, B) for a model
    family), or the first dimension of a tuple's last element (the targets of ``(x, y)``)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[-1])
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[-1], torch.Tensor):
        return int(batch[-1].shape[0])
    return 1


@dataclass
class Fitted:
    """What :func:`fit` returns: ``losses[e]`` is the mean over examples of what ``step`` tracked in
    epoch ``e`` (a float, or a list for a tracked vector such as a family's per-model losses), and
    ``steps`` the number of optimizer steps taken."""
    losses: list = field(default_factory=list)
    steps: int = 0


def fit(
    step: Callable[[object], torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], object],
    *,
    epochs: int,
    clip: float = 0.0,
    clip_mode: str = "value",
    after_step: Callable[[int, object], object] | None = None,
    after_epoch: Callable[[int, float], object] | None = None,
    scheduler=None,
    scheduler_every: str = "epoch",
    progress: bool = False,
    desc: str = "train",
) -> Fitted:
    """The collection's one training loop.

    For each epoch ``e`` in ``range(epochs)`` and each ``batch`` of ``batches(e)``: ``loss =
    step(batch)``, then ``zero_grad``, ``loss.backward()``, optional gradient clipping
    (:func:`clip_gradients` of ``clip`` / ``clip_mode`` over the optimizer's parameters),
    ``optimizer.step()``, ``scheduler.step()`` when ``scheduler_every == "step"``, and
    ``after_step(steps_so_far, batch)``.  After the epoch: ``scheduler.step()`` when
    ``scheduler_every == "epoch"``, then ``after_epoch(e, mean_tracked)``.

    ``step`` may return ``(loss, tracked)``: ``loss`` is minimised, ``tracked`` (any shape, e.g. the
    per-model losses of a batched family) is what is averaged per epoch; by default the loss itself.
    The running sums stay on the device (float64) and are read once per epoch, so a GPU run does not
    synchronise every step.  Each batch counts with its number of examples (:func:`_batch_weight`).
    A hook that returns ``True`` from ``after_epoch`` stops training after that epoch.
    """
    if epochs < 1:
        raise ValueError(f"need epochs >= 1, got {epochs}")
    if scheduler_every not in ("epoch", "step"):
        raise ValueError(f"scheduler_every must be 'epoch' or 'step', got {scheduler_every!r}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = Fitted()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False, mininterval=1.0)
    for epoch in bar:
        total, count = None, 0
        for batch in batches(epoch):
            result = step(batch)
            loss, tracked = result if isinstance(result, tuple) else (result, result)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                clip_gradients(params, clip, clip_mode)
            optimizer.step()
            if scheduler is not None and scheduler_every == "step":
                scheduler.step()
            out.steps += 1
            w = _batch_weight(batch)
            t = tracked.detach().double() * w
            total = t if total is None else total + t
            count += w
            if after_step is not None:
                after_step(out.steps, batch)
        if scheduler is not None and scheduler_every == "epoch":
            scheduler.step()
        mean = (total / max(count, 1)).tolist() if total is not None else float("nan")
        out.losses.append(mean)
        if isinstance(mean, float):
            bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
        if after_epoch is not None and after_epoch(epoch, mean) is True:
            break
    return out


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
    """Minimise mean NLL (+ ``regularizer(model)``) on ``data`` (a :class:`~paramspace.data.Dataset`)
    with :func:`fit`.

    Minibatches are drawn with a generator seeded by ``seed``, so two calls with the same seed,
    model initialisation and device give the same weights.  ``eval_every > 0`` records train and
    test quality every that many epochs (and at the end).  Returns a :class:`History`.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    dev = resolve_device(device)
    model.to(dev)
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    loss_fn = task_loss(data.task)
    qname, qfn = QUALITY[data.task]
    opt = make_optimizer(model.parameters(), optimizer, lr, weight_decay=weight_decay)
    hist = History(quality_name=qname)

    def step(idx):
        loss = loss_fn(model(X[idx]), y[idx])
        return loss + regularizer(model) if regularizer is not None else loss

    def after_epoch(epoch, mean_loss):
        hist.loss.append(mean_loss)
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            model.eval()
            with torch.no_grad():
                hist.train_quality.append(qfn(model(X), y))
                hist.test_quality.append(qfn(model(data.X_test.to(dev)), data.y_test.to(dev)))
            model.train()

    model.train()
    fit(step, opt, shuffled_batches(len(X), batch_size, torch.Generator().manual_seed(seed), dev),
        epochs=epochs, after_epoch=after_epoch, progress=progress, desc=desc)
    model.eval()
    return hist
