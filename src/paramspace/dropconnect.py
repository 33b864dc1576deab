"""Importance-guided DropConnect (report 3): importances on a scaled simplex by mirror descent, keep-probabilities, masked training.

**Importances.**  Every masked layer ``i`` (the weight tensor of a ``Conv2d`` or ``Linear``; biases
and batch-norm parameters are never dropped) carries importances ``w_i`` on the *scaled simplex*
``|X_i| * Delta`` -- entries ``>= 0`` summing to the number of weights ``|X_i|`` of the layer, so
that ``w_i = 1`` (uniform) means "every weight equally important".  They minimise the loss after
one importance-weighted gradient step on the weights ``a``,

    J(w) = L(f(x', a - w * gamma * grad_a L(f(x, a), y)), y') + tau * sum_i |X_i| KL(w_i / |X_i| || uniform),

(the KL of each layer scaled by its size, so that ``tau`` acts per weight; see
:func:`importance_objective`), by mirror descent with the entropy mirror map (exponentiated
gradient, :func:`eg_step`).  By default (the deck's objective) ``(x', y') = (x, y)``: the gradient
inside the step and the loss after it use the same minibatch, and to first order a weight is
important when its squared gradient is large.  The option ``importance_data = "split"`` (ours)
takes the gradient on one half of the minibatch and the loss after the step on the other half, so
that a weight is important when a step along its gradient lowers the loss on *other* data
(:func:`importance_batches`).  ``grad_a L`` does not depend on ``w``, so ``dJ/dw = -gamma * g * g'``
(``g'`` the gradient at the stepped weights) plus the KL term; :func:`importance_grad` gets it by
autograd through ``torch.func.functional_call``.  :func:`collapse_check` solves the problem to
convergence at fixed weights (the deck's "without KL mirror descent converges to one weight").

**DropConnect.**  Each masked weight ``a_j`` is kept with probability ``k_j`` and, when kept,
rescaled by ``1 / k_j`` (so the masked weight equals ``a_j`` in expectation and evaluation uses the
full weights).  Plain DropConnect: ``k_j = 1 - p``.  Importance DropConnect:
``k_j = clip(c * w_j, min_keep, 1)`` with ``c`` chosen per layer so that ``sum_j k_j = (1 - p) |X_i|``:
the expected number of dropped weights equals plain DropConnect's, more important weights are kept
more often, and uniform importances give plain DropConnect exactly (:func:`keep_probabilities`).
One mask is drawn per minibatch (shared by its examples).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from . import train as T
from .vision import evaluate

METHODS = ("no_dropout", "dropconnect", "importance_dc", "importance_dc_kl")


def masked_names(model: nn.Module) -> list[str]:
    """Names of the parameters that carry importances and are dropped: Conv2d and Linear weights."""
    return [f"{name}.weight" if name else "weight" for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


# --- importances on the scaled simplex ---------------------------------------------------------


def uniform_importance(model: nn.Module, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """``w_i = 1`` for every masked layer, in float64 by default: importances span many orders of
    magnitude, and an entry that underflows to 0 can never come back under exponentiated gradient."""
    theta = dict(model.named_parameters())
    return {k: torch.ones_like(theta[k], dtype=dtype).detach() for k in masked_names(model)}


def eg_step(w: torch.Tensor, grad: torch.Tensor, eta: float) -> torch.Tensor:
    """One exponentiated-gradient (mirror-descent) step on the scaled simplex ``|X| * Delta``:

    ``w <- |X| * w exp(-eta grad) / sum(w exp(-eta grad))``, computed in the log domain
    (a softmax), so it neither overflows nor leaves the simplex; zero entries stay zero.
    """
    n = w.numel()
    logits = torch.log(w) - eta * grad
    return (n * torch.softmax(logits.reshape(-1), 0)).reshape(w.shape)


def kl_to_uniform(w: torch.Tensor) -> torch.Tensor:
    """``KL(w/|X| || uniform) = sum_j p_j log(|X| p_j)``, ``p = w/|X|`` (``0 log 0 = 0``)."""
    n = w.numel()
    p = w.reshape(-1) / n
    return torch.sum(p * torch.log(torch.clamp(p * n, min=torch.finfo(p.dtype).tiny)))


def importance_stats(w: torch.Tensor) -> dict[str, float]:
    """Largest share ``max w / |X|`` (``1/|X|`` at the uniform point, 1 at a vertex) and the
    effective fraction of weights ``exp(H(w/|X|)) / |X| = exp(-KL(w/|X| || uniform))`` (1 at the
    uniform point, ``1/|X|`` at a vertex)."""
    n = w.numel()
    p = (w.reshape(-1).double() / n)
    ent = float(-torch.sum(torch.special.xlogy(p, p)))
    return {"max_share": float(p.max()), "effective_fraction": math.exp(ent) / n}


def _loss(model, theta, buffers, x, y):
    return F.cross_entropy(functional_call(model, {**theta, **buffers}, (x,)), y)


def _cloned_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    # batch-norm running statistics are updated by a forward pass in train mode; the importance
    # computation works on copies so that it leaves the model's own statistics untouched
    return {k: v.clone() for k, v in model.named_buffers()}


def weight_gradient(model: nn.Module, names, x, y) -> dict[str, torch.Tensor]:
    """``grad_a L(f(x, a), y)`` for the named weights, at the model's current parameters."""
    theta = dict(model.named_parameters())
    loss = _loss(model, theta, _cloned_buffers(model), x, y)
    grads = torch.autograd.grad(loss, [theta[k] for k in names])
    return {k: g.detach() for k, g in zip(names, grads)}


def importance_objective(model: nn.Module, w: dict[str, torch.Tensor], g: dict[str, torch.Tensor],
                         x_out, y_out, gamma: float, tau: float = 0.0) -> torch.Tensor:
    """``L(f(x', a - w * gamma * g), y') + tau * sum_i |X_i| KL(w_i/|X_i| || uniform)`` (differentiable in ``w``).

    ``g`` is the gradient of the loss at the current weights ``a`` (:func:`weight_gradient`).  Each
    layer's KL is multiplied by its size, ``|X| KL(w/|X| || u) = sum_j w_j log w_j``, so that ``tau``
    acts per weight: its gradient is ``tau (1 + log w_j)`` in every layer.  With one ``tau`` for the
    unscaled KL, the pull towards uniform per exponentiated-gradient step, ``eta tau / |X_i|``, would
    differ by the ratio of layer sizes (250x in the book's CNN): unstable for the smallest layers or
    negligible for the largest.
    """
    theta = {k: v.detach() for k, v in model.named_parameters()}
    stepped = dict(theta)
    for k, wk in w.items():
        stepped[k] = theta[k] - wk.to(theta[k].dtype) * (gamma * g[k])
    obj = _loss(model, stepped, _cloned_buffers(model), x_out, y_out)
    if tau:
        obj = obj + tau * sum(wk.numel() * kl_to_uniform(wk) for wk in w.values())
    return obj


def importance_grad(model, w, g, x_out, y_out, gamma: float, tau: float = 0.0):
    """``(J(w), dJ/dw)`` by autograd through the weighted step."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in w.items()}
    obj = importance_objective(model, leaves, g, x_out, y_out, gamma, tau)
    grads = torch.autograd.grad(obj, list(leaves.values()))
    return float(obj.detach()), {k: gk.detach() for k, gk in zip(leaves, grads)}


def mirror_descent(model: nn.Module, w: dict[str, torch.Tensor], x_in, y_in, x_out, y_out, *,
                   eta: float, gamma: float, tau: float = 0.0, steps: int = 1):
    """``steps`` exponentiated-gradient steps on ``J`` for one batch split ``(x_in, y_in)`` /
    ``(x_out, y_out)``; returns the new importances and the objective before each step."""
    g = weight_gradient(model, list(w), x_in, y_in)
    values = []
    for _ in range(steps):
        val, grad = importance_grad(model, w, g, x_out, y_out, gamma, tau)
        values.append(val)
        w = {k: eg_step(w[k], grad[k], eta) for k in w}
    return w, values


IMPORTANCE_DATA = ("same", "split")


def importance_batches(x, y, mode: str = "same"):
    """The data of one importance update: ``(x_in, y_in, x_out, y_out)``.

    ``"same"`` (the deck's objective, the default): the gradient inside the step and the loss after
    it are taken on the same minibatch, ``L(f(x - w * gamma grad L(f(x, a)), a))``; to first order in
    ``gamma`` the importance gradient is then ``-gamma g_j^2``, so a weight is important when its
    gradient is large.  ``"split"`` (our variant): the gradient on the first half of the minibatch,
    the loss after the step on the second half, so that ``-gamma g_j g'_j`` rewards weights whose
    gradient *agrees* between two halves of the data (a step along it lowers the loss on other data)
    instead of rewarding large gradients, which the same-batch objective does even for pure noise.
    """
    if mode == "same":
        return x, y, x, y
    if mode == "split":
        h = len(y) // 2
        return x[:h], y[:h], x[h:], y[h:]
    raise ValueError(f"importance data mode must be one of {IMPORTANCE_DATA}, got {mode!r}")


def collapse_check(model: nn.Module, x, y, *, eta: float, gamma: float, taus, steps: int,
                   record=None, layer_step: float | None = None, tol: float = 1e-7) -> pd.DataFrame:
    """Mirror descent on the importance problem *solved to convergence* at fixed weights, as the
    deck states its collapse: on one fixed batch ``(x, y)`` (same data inside and after the step),
    starting from uniform importances, ``steps`` exponentiated-gradient steps for every ``tau`` in
    ``taus`` (``0`` = no regulariser).  Returns one row per (tau, recorded step, layer) with the
    layer's largest share ``max_j w_j / |X_i|`` (1 = all importance on one weight), its effective
    fraction of weights and the objective ``J`` before that step.  ``record`` lists the steps
    recorded (default: roughly log-spaced, always including 0 and ``steps``).

    ``layer_step`` (optional) replaces the one step ``eta`` by a step per layer,
    ``eta_i = layer_step / max_j |gamma g_j g'_j|`` at the uniform start (capped at ``1 / tau``, where
    the KL term's own update would overshoot): every layer's largest log-importance moves by
    ``layer_step`` in the first step, whatever the scale of its gradients.  The problem and its
    solutions are the same; only the speed of reaching them differs, which is what a check of the
    *converged* solution needs within a fixed number of steps (with one ``eta``, a layer whose
    gradients are a thousand times smaller moves a thousand times more slowly).

    A run stops early once no importance moves by more than ``tol`` in one step (converged); its
    last state is then recorded at the remaining recorded steps."""
    if record is None:
        record = sorted({0, steps, *np.unique(np.geomspace(1, steps, 12).astype(int)).tolist()})
    record = set(record)
    rows = []
    for tau in taus:
        w = uniform_importance(model)
        g = weight_gradient(model, list(w), x, y)
        etas = {k: eta for k in w}
        for step in range(steps + 1):
            val, grad = importance_grad(model, w, g, x, y, gamma, tau)
            if step == 0 and layer_step is not None:
                # at w = 1 the KL term's gradient is the constant tau, which the update ignores
                scale = {k: float((grad[k] - tau).abs().max()) for k in w}
                etas = {k: min(layer_step / max(scale[k], 1e-300), 1 / tau if tau > 0 else math.inf) for k in w}
            if step in record:
                for k, wk in w.items():
                    rows.append(dict(tau=float(tau), step=step, layer=k, size=wk.numel(), objective=val,
                                     eta=etas[k], converged=False, **importance_stats(wk)))
            if step < steps:
                new = {k: eg_step(w[k], grad[k], etas[k]) for k in w}
                moved = max(float((new[k] - w[k]).abs().max()) for k in w)
                w = new
                if moved <= tol:  # converged: the state no longer changes
                    last = [r for r in rows if r["tau"] == float(tau) and r["step"] == max(
                        q for q in record if q <= step)]
                    for later in sorted(q for q in record if q > step):
                        rows += [{**r, "step": later, "converged": True} for r in last]
                    break
    return pd.DataFrame(rows)


# --- DropConnect -------------------------------------------------------------------------------


def keep_probabilities(w: torch.Tensor, drop_rate: float, min_keep: float = 0.0) -> torch.Tensor:
    """Keep-probabilities ``k = clip(c w, min_keep, 1)`` with ``sum k = (1 - drop_rate) |X|``.

    ``F(c) = sum clip(c w, min_keep, 1)`` is nondecreasing and piecewise linear in ``c``.  Bisection
    on ``log c`` (on the device, without synchronising per step) brackets the solution inside one
    linear piece; there ``c`` is solved for exactly from the entries strictly between the clips.  So
    the sum of the drop probabilities ``1 - k`` is ``drop_rate |X|`` up to rounding.  Uniform ``w``
    gives ``1 - drop_rate``.
    """
    if not 0 <= drop_rate < 1:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    if not 0 <= min_keep <= 1 - drop_rate:
        raise ValueError(f"min_keep must be in [0, 1 - drop_rate] = [0, {1 - drop_rate}], got {min_keep}")
    flat = w.detach().reshape(-1).double()
    n = flat.numel()
    target = (1.0 - drop_rate) * n
    if drop_rate == 0:
        return torch.ones_like(w)
    if min_keep == 1 - drop_rate:
        return torch.full_like(w, min_keep)
    positive = flat > 0
    n_pos = int(positive.sum())
    if n_pos + min_keep * (n - n_pos) <= target:
        # importances that underflowed to 0 (a collapsed layer): every positive one is kept and the
        # zeros, tied at the bottom, share the rest -- the limit of clip(c w, min_keep, 1) as w -> 0+
        k = torch.ones_like(flat)
        if n_pos < n:
            k[~positive] = (target - n_pos) / (n - n_pos)
        return k.to(w.dtype).reshape(w.shape)
    F = lambda c: torch.clamp(c * flat, min_keep, 1.0).sum()  # noqa: E731
    # F(c_lo) <= min_keep n + c_lo sum(w) < target <= F(c_hi), c_hi = 1 / (smallest positive w)
    lo = torch.log((target - min_keep * n) / (2 * flat.sum()))
    hi = -torch.log(torch.where(positive, flat, torch.inf).min())
    for _ in range(64):  # log(c_hi / c_lo) < 1500: the bracket shrinks below 1e-16 relative
        mid = 0.5 * (lo + hi)
        below = F(torch.exp(mid)) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    c = torch.exp(hi)
    cw = c * flat
    inner = (cw > min_keep) & (cw < 1.0)
    n_low, n_high = int((cw <= min_keep).sum()), int((cw >= 1.0).sum())
    s_inner = float(flat[inner].sum())
    k = torch.clamp(cw, min_keep, 1.0)
    if s_inner > 0:
        exact = torch.clamp((target - min_keep * n_low - n_high) / s_inner * flat, min_keep, 1.0)
        if abs(float(exact.sum()) - target) <= abs(float(k.sum()) - target):
            k = exact
    return k.to(w.dtype).reshape(w.shape)


def plain_keep(model: nn.Module, drop_rate: float) -> dict[str, torch.Tensor]:
    """Plain DropConnect: keep-probability ``1 - drop_rate`` for every masked weight."""
    theta = dict(model.named_parameters())
    return {k: torch.full_like(theta[k], 1.0 - drop_rate).detach() for k in masked_names(model)}


def masked_parameters(model: nn.Module, keep: dict[str, torch.Tensor], gen: torch.Generator | None = None):
    """The model's parameters with each masked weight ``a_j`` replaced by ``m_j a_j / k_j``,
    ``m_j ~ Bernoulli(k_j)`` (one draw per call); gradients flow to the model's parameters."""
    out = {}
    for k, p in model.named_parameters():
        if k in keep:
            kk = keep[k].to(p.dtype)
            m = torch.bernoulli(kk, generator=gen)
            out[k] = p * (m / kk.clamp_min(torch.finfo(p.dtype).tiny))
        else:
            out[k] = p
    return out


# --- training ----------------------------------------------------------------------------------


EVAL_BATCH = 500  # batch size of the per-epoch evaluation


def train_method(model: nn.Module, data, method: str, *, seed: int, device: torch.device | str = "cpu",
                 epochs: int, batch_size: int, optimizer: str = "adam", lr: float, weight_decay: float = 0.0,
                 drop_rate: float, min_keep: float = 0.0, importance_lr: float, importance_gamma: float,
                 importance_tau: float = 0.0, importance_every: int = 1, importance_steps: int = 1,
                 importance_data: str = "same", stop_after: int | None = None, progress: bool = False) -> dict:
    """Train ``model`` on ``data`` with ``method`` (one of :data:`METHODS`) for ``epochs`` epochs through
    :func:`paramspace.train.fit`.

    The step function draws one DropConnect mask per minibatch (:func:`masked_parameters`; none for
    ``"no_dropout"``) from its own generator (seeded ``seed + 7919``).  For the importance methods it
    first updates the importances on that minibatch every ``importance_every`` steps:
    ``importance_steps`` mirror-descent steps (:func:`mirror_descent`, step ``importance_lr``, inner
    step ``importance_gamma``, KL weight ``importance_tau`` for ``"importance_dc_kl"`` and 0 for
    ``"importance_dc"``; data after :func:`importance_batches` ``(importance_data)``), then
    :func:`keep_probabilities` with ``drop_rate`` and ``min_keep``.  The update runs at the start of
    the step, on the batch the step then trains on, at the weights of the previous optimizer step.
    Batch order depends on ``seed`` only (shared by all methods).  Optimizer: ``"adam"``, or ``"sgd"``
    with Nesterov momentum 0.9 and a cosine learning-rate schedule over ``epochs`` (stepped per epoch).

    After every epoch (``after_epoch`` hook) records train and test loss and accuracy with the full
    weights (:func:`paramspace.vision.evaluate`, batches of :data:`EVAL_BATCH`) and, for the importance methods, the importances' largest share and
    effective fraction (means over layers).  ``stop_after`` stops after that many epochs (the
    schedule still spans ``epochs``, so the first epochs equal those of a full run).  Returns
    ``{"epochs": [records], "importance": {name: CPU tensor} or None, "seconds": float}``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    device = T.resolve_device(device)
    model.to(device).train()
    opt = T.make_optimizer(model.parameters(), optimizer, lr, weight_decay=weight_decay,
                           **(dict(momentum=0.9, nesterov=True) if optimizer == "sgd" else {}))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) if optimizer == "sgd" else None
    batch_gen = torch.Generator().manual_seed(seed)
    mask_gen = torch.Generator(device=device).manual_seed(seed + 7919)
    tau = importance_tau if method == "importance_dc_kl" else 0.0
    importance = method.startswith("importance")
    state = {"w": uniform_importance(model) if importance else None,
             "keep": plain_keep(model, drop_rate) if method != "no_dropout" else None, "steps": 0}
    records, t0 = [], time.perf_counter()
    last = epochs if stop_after is None else min(stop_after, epochs)

    def step(batch):
        x, y = batch
        if importance and state["steps"] % importance_every == 0 and len(y) >= 2:
            xi, yi, xo, yo = importance_batches(x, y, importance_data)
            state["w"], _ = mirror_descent(model, state["w"], xi, yi, xo, yo, eta=importance_lr,
                                           gamma=importance_gamma, tau=tau, steps=importance_steps)
            state["keep"] = {k: keep_probabilities(wk, drop_rate, min_keep) for k, wk in state["w"].items()}
        state["steps"] += 1
        if state["keep"] is None:
            return F.cross_entropy(model(x), y)
        return F.cross_entropy(functional_call(model, masked_parameters(model, state["keep"], mask_gen), (x,)), y)

    def after_epoch(epoch, _mean_loss):
        tr_loss, tr_acc = evaluate(model, data.X_train, data.y_train, EVAL_BATCH)
        te_loss, te_acc = evaluate(model, data.X_test, data.y_test, EVAL_BATCH)
        rec = dict(epoch=epoch + 1, train_loss=tr_loss, train_acc=tr_acc, test_loss=te_loss, test_acc=te_acc,
                   seconds=time.perf_counter() - t0)
        if importance:
            stats = [importance_stats(wk) for wk in state["w"].values()]
            rec.update(max_share=float(np.mean([s["max_share"] for s in stats])),
                       effective_fraction=float(np.mean([s["effective_fraction"] for s in stats])))
        records.append(rec)
        model.train()

    T.fit(step, opt, lambda _epoch: data.batches(batch_size, batch_gen), epochs=last, after_epoch=after_epoch,
          scheduler=sched, scheduler_every="epoch", progress=progress, desc=method)
    model.eval()
    return {"epochs": records,
            "importance": {k: v.cpu() for k, v in state["w"].items()} if importance else None,
            "seconds": time.perf_counter() - t0}
