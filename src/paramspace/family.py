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

Mean-field variational networks (:class:`~paramspace.variational.BayesLinear` layers) sample noise in
every training forward pass, from the *global* generator.  :func:`fit_bayes_family` gives model k its
own :class:`torch.Generator`, in the state the global one is in when a separate training of that model
starts (:func:`seeded_models`), and draws model k's noise from it in the order a separate training
draws it (layer by layer; per layer the weight noise, then the bias noise, or the pre-activation noise
with local reparameterisation).  Model k then sees the same noise as in its separate training, and the
argument above holds again: the family equals K separate trainings to float tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn import functional as F

from . import variational as V
from .quality import quality
from .train import OPTIMIZERS, fit, make_optimizer, resolve_device, seed_everything, task_loss


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


def family_batches(n: int, batch_size: int, seeds: Sequence[int], device: torch.device | str = "cpu"):
    """``batches(epoch)`` for :func:`~paramspace.train.fit` over a family: each epoch, model k's
    permutation of ``range(n)`` drawn as :func:`paramspace.train.shuffled_batches` draws it from a
    generator seeded with ``seeds[k]`` (on the CPU), cut into ``(K, batch_size)`` index tensors (the
    last may be shorter): row k is the batch model k's separate training sees."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def batches(_epoch: int):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)  # (K, n)
        return (perms[:, i:i + batch_size] for i in range(0, n, batch_size))

    return batches


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
    batched_loss = torch.vmap(loss_fn)  # (K, B, out), (K, B) -> (K,)

    def losses(p, idx):
        sel = idx if rows is None else rows.gather(1, idx)  # (K, B) rows of X, model k's own
        out = family_forward(base, p, buffers, X[sel])
        return batched_loss(out, y[sel])

    def step(idx):
        per_model = losses(params, idx)
        return per_model.sum(), per_model  # minimise the sum; track each model's loss

    fitted = fit(step, opt, family_batches(n, batch_size, seeds, dev), epochs=epochs, progress=progress, desc=desc)
    history = torch.tensor(fitted.losses, dtype=torch.float32).T  # (K, epochs)
    fitted_models = unstack(params, buffers, models)
    for m in fitted_models:
        m.eval()
    return fitted_models, history.cpu()


# --- families of mean-field variational networks --------------------------------------------------


def global_generator_copy(device: str | torch.device = "cpu") -> torch.Generator:
    """A new generator on ``device`` in the current state of torch's global generator for that device
    (the one ``torch.randn_like`` of a tensor there draws from); drawing from the copy leaves the
    global generator untouched."""
    dev = torch.device(device)
    g = torch.Generator(device=dev)
    g.set_state(torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state())
    return g


def seeded_models(build: Callable[[], nn.Module], seeds: Sequence[int], device: str | torch.device = "cpu"
                  ) -> tuple[list[nn.Module], list[torch.Generator]]:
    """For each seed: ``seed_everything(seed)``, ``build()``, and a copy of the global generator of
    ``device`` taken right after (:func:`global_generator_copy`): the models a separate training
    builds after seeding, and the generators its noise would come from."""
    dev = resolve_device(device)
    models, gens = [], []
    for s in seeds:
        seed_everything(int(s))
        models.append(build())
        gens.append(global_generator_copy(dev))
    return models, gens


def _noise(gens: Sequence[torch.Generator], shape, like: torch.Tensor) -> torch.Tensor:
    """``(K, *shape)`` standard normal noise, slice k drawn from ``gens[k]`` (as ``randn_like``)."""
    return torch.stack([torch.randn(shape, generator=g, dtype=like.dtype, device=like.device) for g in gens])


def bayes_family_forward(layers: Sequence[nn.Module], params: dict, X: torch.Tensor,
                         gens: Sequence[torch.Generator] | None) -> torch.Tensor:
    """Outputs ``(K, n, out)`` of K networks ``layers`` (a :class:`~paramspace.variational.BayesLinear`
    network's children, parameter-free modules between them) with stacked ``params`` on inputs ``X``
    ``(K, n, in)``.  With ``gens`` (one generator per model) each BayesLinear samples as its forward
    does in training, model k's noise from ``gens[k]``: ``W = mu + sigma * eps`` per pass, or with
    local reparameterisation ``x mu_W^T + b_mu + sqrt(x^2 (sigma_W^2)^T + sigma_b^2) * eps`` per
    example; ``gens=None`` uses the means (evaluation mode).  One batched matmul
    (:func:`torch.baddbmm`) per layer for all K models."""
    x = X
    for i, layer in enumerate(layers):
        if not isinstance(layer, V.BayesLinear):
            x = layer(x)
            continue
        w_mu, b_mu = params[f"{i}.weight_mu"], params[f"{i}.bias_mu"]
        if gens is None or not layer.sample:
            x = torch.baddbmm(b_mu.unsqueeze(1), x, w_mu.transpose(1, 2))
            continue
        w_sigma, b_sigma = F.softplus(params[f"{i}.weight_rho"]), F.softplus(params[f"{i}.bias_rho"])
        if layer.local_reparam:
            mean = torch.baddbmm(b_mu.unsqueeze(1), x, w_mu.transpose(1, 2))
            var = torch.baddbmm((b_sigma**2).unsqueeze(1), x * x, (w_sigma**2).transpose(1, 2))
            x = mean + var.sqrt() * _noise(gens, mean.shape[1:], mean)
        else:
            w = w_mu + w_sigma * _noise(gens, w_mu.shape[1:], w_mu)
            b = b_mu + b_sigma * _noise(gens, b_mu.shape[1:], b_mu)
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
    return x


def _bayes_layers(models: Sequence[nn.Module]) -> list[nn.Module]:
    """The children of ``models[0]``, checked: a plain sequence of BayesLinear layers and
    parameter-free modules, with the same priors and sampling modes in every model."""
    if len(models) == 0:
        raise ValueError("a model family needs at least one model")
    layers = list(models[0].children())
    if not any(isinstance(m, V.BayesLinear) for m in layers) or any(
            not isinstance(m, V.BayesLinear) and any(True for _ in m.parameters()) for m in layers):
        raise ValueError("a variational family needs nn.Sequential models of BayesLinear layers and "
                         "parameter-free modules (activations)")
    conf = lambda m: [(type(c), getattr(c, "prior_sigma", None), getattr(c, "local_reparam", None),  # noqa: E731
                       getattr(c, "sample", None)) for c in m.children()]
    if any(conf(m) != conf(models[0]) for m in models[1:]):
        raise ValueError("every model of a variational family must have the same layers, priors and sampling modes")
    return layers


def fit_bayes_family(
    models: Sequence[nn.Module],
    data,
    *,
    seeds: Sequence[int],
    kl_weights: Sequence[float] | float,
    generators: Sequence[torch.Generator],
    epochs: int,
    lr: float,
    batch_size: int,
    optimizer: str = "adam",
    clip: float = 0.0,
    clip_mode: str = "value",
    eval_every: int = 0,
    device: str = "auto",
    progress: bool = False,
    desc: str = "variational family",
) -> tuple[list[nn.Module], torch.Tensor, int, list[list[tuple[int, float]]]]:
    """Train K mean-field networks ``models`` (one architecture, see :func:`bayes_family_forward`) at
    once: model k minimises ``mean NLL + kl_weights[k] * KL(q_k || p) / n`` with minibatches drawn by
    a generator seeded with ``seeds[k]`` and its noise drawn from ``generators[k]``
    (:func:`seeded_models`), ``optimizer`` at ``lr``, gradients clipped per ``clip`` / ``clip_mode``
    (``"norm"``: each model's own gradient norm).

    Equal, to float tolerance, to K separate trainings (:func:`paramspace.variational.fit_variational`,
    :func:`paramspace.hypernet.train_separate`) started with the global generator in the state of
    ``generators[k]``.  ``eval_every > 0`` records ``(step, test quality of model k's means)`` every
    that many steps and after the last, as ``train_separate`` does.  Returns the models (updated in
    place, in evaluation mode), the per-epoch mean loss of each ``(K, epochs)`` on the CPU, the number
    of optimizer steps, and the K traces."""
    layers = _bayes_layers(models)
    K = len(models)
    kl_weights = [float(kl_weights)] * K if isinstance(kl_weights, (int, float)) else list(kl_weights)
    for name, v in (("seeds", seeds), ("kl_weights", kl_weights), ("generators", generators)):
        if len(v) != K:
            raise ValueError(f"need one of {name} per model: {K} models, {len(v)} {name}")
    if any(not w >= 0 for w in kl_weights):
        raise ValueError(f"kl_weights must be >= 0, got {kl_weights}")
    if epochs < 1 or batch_size < 1 or not lr > 0 or eval_every < 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0, eval_every >= 0; got {epochs}, "
                         f"{batch_size}, {lr}, {eval_every}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if clip < 0 or clip_mode not in ("value", "norm"):
        raise ValueError(f"need clip >= 0 and clip_mode in ('value', 'norm'), got {clip}, {clip_mode!r}")
    dev = resolve_device(device)
    if any(torch.device(g.device).type != dev.type for g in generators):
        raise ValueError(f"the noise generators must be on the training device {dev}")
    params, buffers, _ = stack([m.to(dev) for m in models])
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    opt = make_optimizer(params.values(), optimizer, lr)
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    n = len(X)
    lam = torch.tensor(kl_weights, dtype=X.dtype, device=dev)
    batched_nll = torch.vmap(task_loss(data.task))
    traces: list[list[tuple[int, float]]] = [[] for _ in models]

    def kl(p):  # (K,) KL(q_k || p), summed over every layer's weights and biases
        return sum(V.kl_normal(p[f"{i}.{w}_mu"], F.softplus(p[f"{i}.{w}_rho"]), layer.prior_sigma).flatten(1).sum(1)
                   for i, layer in enumerate(layers) if isinstance(layer, V.BayesLinear) for w in ("weight", "bias"))

    def step(idx):
        per_model = batched_nll(bayes_family_forward(layers, params, X[idx], generators), y[idx]) + lam * kl(params) / n
        return per_model.sum(), per_model

    def record(steps):
        unstack(params, buffers, models)
        for k, m in enumerate(models):
            traces[k].append((steps, quality(m, data.X_test, data.y_test, data.task)))

    def after_step(steps, _idx):
        if steps % eval_every == 0:
            record(steps)

    fitted = fit(step, opt, family_batches(n, batch_size, seeds, dev), epochs=epochs, clip=clip,
                 clip_mode="norm_per_model" if clip_mode == "norm" else "value",
                 after_step=after_step if eval_every else None, progress=progress, desc=desc)
    unstack(params, buffers, models)
    if eval_every and (not traces[0] or traces[0][-1][0] != fitted.steps):
        record(fitted.steps)
    for m in models:
        m.eval()
    return list(models), torch.tensor(fitted.losses, dtype=torch.float64).T.cpu(), fitted.steps, traces


def fit_variational_family(ds, *, hidden, epochs: int, lr: float, batch_size: int, prior_sigma: float,
                           kl_weights: Sequence[float] | float, seeds: Sequence[int], device: str = "cpu",
                           progress: bool = False) -> tuple[list[nn.Module], torch.Tensor]:
    """K calls :func:`paramspace.variational.fit_variational` ``(ds, seed=seeds[k],
    kl_weight=kl_weights[k], ...)`` as one batched training (:func:`fit_bayes_family`; a single
    ``kl_weights`` is every model's).  Returns the K trained networks (on the CPU) and their per-epoch
    mean losses ``(K, epochs)``, equal to the separate trainings' to float tolerance."""
    if not isinstance(kl_weights, (int, float)) and len(kl_weights) != len(seeds):
        raise ValueError(f"need one kl weight per seed: {len(seeds)} seeds, {len(kl_weights)} kl_weights")
    from .models import mlp

    models, gens = seeded_models(lambda: mlp(ds.n_features, hidden, ds.out_dim, "relu", linear=V.BayesLinear,
                                             prior_sigma=prior_sigma), seeds, device)
    models, losses, _, _ = fit_bayes_family(models, ds, seeds=seeds, kl_weights=kl_weights, generators=gens,
                                            epochs=epochs, lr=lr, batch_size=batch_size, device=device,
                                            progress=progress)
    return [m.cpu() for m in models], losses
