"""Curvature of the loss in parameter space with ``torch.func``.

All functions work on the flat parameter vector ``theta`` of a model (the concatenation of
``model.named_parameters()`` in order; see :func:`flat_params`).  The loss is the *mean* NLL of
the model on ``(X, y)`` (cross-entropy or squared error), optionally plus ``l2 * |theta|^2 / 2``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.func import functional_call, grad, hessian as _hessian, jvp, vmap

from .train import task_loss

# torch's own forward-AD decompositions still call torch.jit.script on first use (torch 2.14);
# the deprecation warning is torch's, not ours, and would clutter every report.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


def flat_params(model: nn.Module) -> tuple[torch.Tensor, list[str], list[torch.Size]]:
    names, shapes, chunks = [], [], []
    for name, p in model.named_parameters():
        names.append(name)
        shapes.append(p.shape)
        chunks.append(p.detach().reshape(-1))
    return torch.cat(chunks), names, shapes


def unflatten(theta: torch.Tensor, names: list[str], shapes: list[torch.Size]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for name, shape in zip(names, shapes):
        k = shape.numel()
        out[name] = theta[i:i + k].reshape(shape)
        i += k
    return out


def split_like(vec: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
    """Cut a flat vector (scores, gradients ...) into tensors shaped like ``model``'s parameters."""
    _, names, shapes = flat_params(model)
    return {k: v.detach().clone() for k, v in unflatten(vec, names, shapes).items()}


def loss_function(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, l2: float = 0.0):
    """``f(theta)``: mean NLL of ``model`` with flat parameters ``theta`` on ``(X, y)``."""
    _, names, shapes = flat_params(model)
    nll = task_loss(task)

    def f(theta):
        out = functional_call(model, unflatten(theta, names, shapes), (X,))
        value = nll(out, y)
        return value + 0.5 * l2 * torch.sum(theta**2) if l2 else value

    return f


def _batches(X, y, batch_size):
    n = len(X)
    for i in range(0, n, batch_size):
        yield X[i:i + batch_size], y[i:i + batch_size], min(batch_size, n - i) / n


DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of working memory for one block of Hessian columns (1 GiB)


def _units_per_row(model: nn.Module, x: torch.Tensor) -> int:
    """Numbers the forward pass of one row produces: the sum of every module's output sizes."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() if torch.is_tensor(out) else 0))
             for m in model.modules()]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return max(1, sum(sizes))


def column_block(model: nn.Module, X: torch.Tensor, P: int, rows: int, memory_budget: int) -> int:
    """How many Hessian columns (Hessian-vector products, batched with ``vmap``) fit ``memory_budget``
    bytes at once over ``rows`` rows.  One column costs at most about
    ``itemsize * 12 * (rows * units + P)`` bytes: forward-over-reverse keeps tangent copies of every
    activation through the forward and the backward pass, and several vectors of length P (the basis
    vector, the tangents of the weights and of their gradients, the result).  The factor 12 is
    measured, with room (peak resident memory at P = 4321 over 8, 64 and 512 rows was 7.5 to 10
    numbers per column and unit; ``tools/bench_hessian.py``, BENCHMARKS.md)."""
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget}")
    itemsize = torch.empty((), dtype=X.dtype if X.is_floating_point() else torch.float32).element_size()
    per_column = itemsize * 12 * (rows * _units_per_row(model, X) + P)
    return int(max(1, min(P, memory_budget // per_column)))


def _hvp_blocks(model: nn.Module, X, y, task: str, batch_size: int, memory_budget: int):
    """Yield ``(start, stop, weight, cols)``: ``cols[k] = H_b e_{start+k}`` (the Hessian of the mean loss
    on row batch ``b`` times basis vectors), blocks of columns sized to ``memory_budget``."""
    theta, _, _ = flat_params(model)
    P = theta.numel()
    block = column_block(model, X, P, min(batch_size, len(X)), memory_budget)
    for xb, yb, w in _batches(X, y, batch_size):
        g = grad(loss_function(model, xb, yb, task))
        col = lambda e: jvp(g, (theta,), (e,))[1]  # noqa: E731
        for s in range(0, P, block):
            stop = min(s + block, P)
            E = torch.zeros(stop - s, P, dtype=theta.dtype, device=theta.device)
            E[torch.arange(stop - s), torch.arange(s, stop)] = 1.0
            yield s, stop, w, vmap(col)(E)
            del E


def hessian(model: nn.Module, X, y, task: str, l2: float = 0.0, batch_size: int = 4096,
            memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """Exact ``P x P`` Hessian of the mean loss at the model's parameters.

    ``H = sum_b (n_b / n) H_b`` over row batches of ``batch_size``; each ``H_b`` is built in blocks
    of columns, column ``j`` being the Hessian-vector product ``H_b e_j`` (forward-over-reverse,
    ``vmap``-ed over the block).  The block width is chosen (:func:`column_block`) so that the
    working memory stays within ``memory_budget`` bytes on top of ``H`` itself (``P^2`` numbers);
    the result does not depend on it.  (``torch.func.hessian`` takes all ``P`` columns at once:
    21 GB at P = 3850 over 4096 rows.)"""
    theta, _, _ = flat_params(model)
    P = theta.numel()
    H = torch.zeros(P, P, dtype=theta.dtype, device=theta.device)
    for s, stop, w, cols in _hvp_blocks(model, X, y, task, batch_size, memory_budget):
        H[:, s:stop] += w * cols.T
    if l2:
        H += l2 * torch.eye(P, dtype=theta.dtype, device=theta.device)
    return H


def hessian_full(model: nn.Module, X, y, task: str, l2: float = 0.0, batch_size: int = 4096) -> torch.Tensor:
    """The Hessian with all ``P`` directions at once (``torch.func.hessian``): the reference
    :func:`hessian` is tested against, and the benchmark's baseline.  Memory grows as ``P * rows``."""
    theta, _, _ = flat_params(model)
    H = torch.zeros(theta.numel(), theta.numel(), dtype=theta.dtype, device=theta.device)
    for xb, yb, w in _batches(X, y, batch_size):
        H += w * _hessian(loss_function(model, xb, yb, task))(theta)
    if l2:
        H += l2 * torch.eye(len(theta), dtype=theta.dtype, device=theta.device)
    return H


def hvp(model: nn.Module, X, y, task: str, v: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """Hessian-vector product ``H v`` (forward-over-reverse), never forming ``H``."""
    theta, _, _ = flat_params(model)
    f = loss_function(model, X, y, task, l2)
    return jvp(grad(f), (theta,), (v,))[1]


def hessian_diagonal(model: nn.Module, X, y, task: str, l2: float = 0.0, chunk: int = 256,
                     batch_size: int = 4096, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """Exact diagonal of the Hessian: ``H_jj = e_j^T H e_j`` by batched HVPs, at most ``chunk`` at a
    time and fewer if ``memory_budget`` (bytes, see :func:`column_block`) needs it."""
    theta, _, _ = flat_params(model)
    P = theta.numel()
    chunk = min(chunk, column_block(model, X, P, min(batch_size, len(X)), memory_budget))
    diag = torch.zeros(P, dtype=theta.dtype, device=theta.device)
    for xb, yb, w in _batches(X, y, batch_size):
        g = grad(loss_function(model, xb, yb, task))
        col = lambda e: jvp(g, (theta,), (e,))[1]  # noqa: E731
        for s in range(0, P, chunk):
            idx = torch.arange(s, min(s + chunk, P), device=theta.device)
            E = torch.zeros(len(idx), P, dtype=theta.dtype, device=theta.device)
            E[torch.arange(len(idx)), idx] = 1.0
            diag[idx] += w * vmap(col)(E)[torch.arange(len(idx)), idx]
    return diag + l2


def per_sample_grads(model: nn.Module, X, y, task: str) -> torch.Tensor:
    """``N x P`` matrix of gradients of each sample's loss (``vmap(grad)``)."""
    theta, names, shapes = flat_params(model)
    nll = task_loss(task)

    def one(theta, x, t):
        out = functional_call(model, unflatten(theta, names, shapes), (x.unsqueeze(0),))
        return nll(out, t.unsqueeze(0))

    return vmap(grad(one), in_dims=(None, 0, 0))(theta, X, y)


def gradient_outer(model: nn.Module, X, y, task: str, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """``G = E[g g^T]`` over the samples of ``(X, y)`` (the empirical Fisher), accumulated over chunks
    of samples whose ``chunk x P`` gradients (and their activations) fit ``memory_budget`` bytes."""
    theta, _, _ = flat_params(model)
    P = theta.numel()
    rows = column_block(model, X, max(P, 1), 1, memory_budget)  # one "column" = one sample's gradient
    G = torch.zeros(P, P, dtype=theta.dtype, device=theta.device)
    for i in range(0, len(X), rows):
        g = per_sample_grads(model, X[i:i + rows], y[i:i + rows], task)
        G += g.T @ g
    return G / len(X)


def laplace_covariance(H: torch.Tensor, damping: float = 1e-3) -> torch.Tensor:
    """Laplace approximation of the parameter covariance, ``(H + damping I)^{-1}`` (symmetrised).

    Negative eigenvalues of ``H`` (away from a minimum) are clipped to zero first so that the
    result is a valid covariance.  Computed in float64 (float32 ``eigh`` returns NaNs on the
    near-singular Hessians of over-parameterised networks).
    """
    H = H.double()
    evals, evecs = torch.linalg.eigh(0.5 * (H + H.T))
    evals = evals.clamp_min(0.0) + damping
    return (evecs / evals) @ evecs.T
