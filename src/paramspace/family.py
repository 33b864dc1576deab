"""Model families: K networks of one shape trained at once, as one batched model.

A report that trains many small networks of one architecture (seeds, a λ grid, bootstrap copies)
spends its time launching tiny kernels one model after the other. Here the K models' parameters are
stacked along a new leading axis (:func:`torch.func.stack_module_state`) and one forward pass runs all
of them through :func:`torch.func.functional_call` under :func:`torch.vmap`.

Why this equals K separate trainings (tested against :func:`paramspace.train.train`):

* the loss is :math:`\\sum_k \\ell_k(\\theta_k)`, so its gradient with respect to the stacked
  :math:`\\theta_k` is :math:`\\nabla \\ell_k(\\theta_k)`: the models do not interact;
* Adam and SGD (with weight decay) act element by element, so one optimizer over the stacked
  tensors takes the same steps as K optimizers with the same hyper-parameters;
* model k draws its minibatches from a generator seeded with ``seeds[k]`` exactly as
  :func:`paramspace.train.train` does, so it sees the same batches in the same order; with ``rows``
  (e.g. K bootstrap resamples) the batch indices index model k's own rows of the one training set.

Only the order of floating-point reductions differs (one batched matmul instead of K), so the weights
agree to float tolerance, not bit for bit. The data stay on the device, and the per-model losses are
accumulated on the device and read once per epoch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from .train import OPTIMIZERS, fit, make_optimizer, resolve_device, task_loss


def stack(models: Sequence[nn.Module]) -> tuple[dict, dict, nn.Module]:
    """``(params, buffers, base)``: every parameter and buffer stacked along a leading axis of size K,
    and a parameter-free copy of the architecture (on the ``meta`` device) to call them with."""
    if len(models) == 0:
        raise ValueError("a model family needs at least one model")
    shapes = [[(k, tuple(v.shape)) for k, v in m.state_dict().items()] for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("every model of a family must have the same architecture (parameter names and shapes)")
    params, buffers = stack_module_state(list(models))
    base = copy.deepcopy(models[0]).to("meta")
    return params, buffers, base


def unstack(params: dict, buffers: dict, models: Sequence[nn.Module]) -> list[nn.Module]:
    """Write the k-th slice of the stacked tensors back into ``models[k]`` (in place); return them."""
    with torch.no_grad():
        for k, m in enumerate(models):
            for name, p in m.named_parameters():
                p.copy_(params[name][k].to(p.device))
            for name, b in m.named_buffers():
                b.copy_(buffers[name][k].to(b.device))
    return list(models)


def family_forward(base: nn.Module, params: dict, buffers: dict, X: torch.Tensor,
                   shared: bool = False) -> torch.Tensor:
    """Outputs of all K models, shape ``(K, n, ...)``. ``X`` is ``(K, n, d)``, one input set per model,
    or with ``shared=True`` ``(n, d)``, the same inputs for every model. Deterministic models only
    (a layer that samples noise in its forward pass would need ``vmap(randomness=...)``)."""
    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    return torch.vmap(one, in_dims=(0, 0, None if shared else 0))(params, buffers, X)


def fit_family(
    models: Sequence[nn.Module],
    data,
    *,
    seeds: Sequence[int],
    rows: torch.Tensor | None = None,
    epochs: int = 100,
    lr: float = 1e-2,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    device: str = "auto",
    progress: bool = True,
    desc: str = "family",
) -> tuple[list[nn.Module], torch.Tensor]:
    """Train the K ``models`` (one architecture) on ``data`` at once; model k uses ``seeds[k]``.

    Same contract as K calls ``train.train(models[k], data_k, seed=seeds[k], ...)`` (mean NLL, the same
    minibatch order, Adam or SGD), where ``data_k`` is ``data`` itself, or with ``rows`` (a ``(K, m)``
    integer tensor of row indices into ``data.X_train``) ``data`` with training set
    ``X_train[rows[k]], y_train[rows[k]]``: K bootstrap resamples, say, without K copies of the data.
    Model k's minibatch is ``rows[k][perm_k[i:i + batch_size]]`` with ``perm_k`` the permutation of
    ``range(m)`` that ``train.train`` draws from ``seeds[k]``, i.e. the rows its separate training sees.
    Returns the trained models (updated in place, left in evaluation mode on the device as
    ``train.train`` leaves them) and the per-epoch mean training loss of each, a ``(K, epochs)`` tensor
    on the CPU.
    """
    K = len(models)
    if len(seeds) != K:
        raise ValueError(f"need one seed per model: {K} models, {len(seeds)} seeds")
    n_data = len(data.X_train)
    if rows is not None:
        rows = torch.as_tensor(rows)
        if rows.dim() != 2 or rows.shape[0] != K or rows.shape[1] < 1 or rows.dtype == torch.bool \
                or rows.is_floating_point() or rows.is_complex():
            raise ValueError(f"rows must be an integer tensor of shape (K, m) = ({K}, m >= 1), one row of indices "
                             f"into data.X_train per model; got shape {tuple(rows.shape)}, dtype {rows.dtype}")
        lo, hi = int(rows.min()), int(rows.max())
        if lo < 0 or hi >= n_data:
            raise ValueError(f"rows must index data.X_train's {n_data} rows, i.e. lie in [0, {n_data - 1}]; "
                             f"got values in [{lo}, {hi}]")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    dev = resolve_device(device)
    params, buffers, base = stack([m.to(dev) for m in models])
    base.train()  # functional_call runs in base's mode; train.train trains in training mode
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    opt = make_optimizer(params.values(), optimizer, lr, weight_decay=weight_decay)
    loss_fn: Callable = task_loss(data.task)
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    if rows is not None:
        rows = rows.to(device=dev, dtype=torch.long)
    n = n_data if rows is None else rows.shape[1]  # each model's training-set size
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    batched_loss = torch.vmap(loss_fn)  # (K, B, out), (K, B) -> (K,)

    def losses(p, idx):
        sel = idx if rows is None else rows.gather(1, idx)  # (K, B) rows of X, model k's own
        out = family_forward(base, p, buffers, X[sel])
        return batched_loss(out, y[sel])

    def batches(_epoch):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)  # (K, n)
        return (perms[:, i:i + batch_size] for i in range(0, n, batch_size))  # (K, B): model k's own batch

    def step(idx):
        per_model = losses(params, idx)
        return per_model.sum(), per_model  # minimise the sum; track each model's loss

    fitted = fit(step, opt, batches, epochs=epochs, progress=progress, desc=desc)
    history = torch.tensor(fitted.losses, dtype=torch.float32).T  # (K, epochs)
    fitted_models = unstack(params, buffers, models)
    for m in fitted_models:
        m.eval()
    return fitted_models, history.cpu()
