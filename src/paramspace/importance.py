"""Report 3 (Rebrikov 2024): DropConnect guided by weight importance.

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
import os
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from . import data as D
from .claims import KIND_LABEL, paired_claim, verdict_phrase
from .train import cpu_threads, resolve_device, seed_everything

DATASETS = ("mnist", "fashion-mnist", "cifar10")
ARCHS = ("cnn", "resnet18")
OPTIMIZERS = ("adam", "sgd")
METHODS = ("no_dropout", "dropconnect", "importance_dc", "importance_dc_kl")
METHOD_LABELS = {"no_dropout": "no dropout", "dropconnect": "DropConnect",
                 "importance_dc": "importance DropConnect", "importance_dc_kl": "importance DropConnect + KL"}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


# --- models ------------------------------------------------------------------------------------


def small_cnn(in_channels: int = 1, n_classes: int = 10, width: int = 8, image_size: int = 28) -> nn.Sequential:
    """conv5x5(width) - ReLU - maxpool2 - conv5x5(2 width) - ReLU - maxpool2 - linear(64) - ReLU - linear."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * side * side, 64), nn.ReLU(), nn.Linear(64, n_classes),
    )


def resnet18_cifar(n_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 adapted to 32x32 inputs: 3x3 stride-1 stem, no max-pool."""
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def build_model(arch: str, in_channels: int, n_classes: int, image_size: int, width: int = 8) -> nn.Module:
    if arch == "cnn":
        return small_cnn(in_channels, n_classes, width, image_size)
    if arch == "resnet18":
        return resnet18_cifar(n_classes, in_channels)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def masked_names(model: nn.Module) -> list[str]:
    """Names of the parameters that carry importances and are dropped: Conv2d and Linear weights."""
    return [f"{name}.weight" if name else "weight" for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


# --- importances on the scaled simplex ---------------------------------------------------------


def uniform_importance(model: nn.Module, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """``w_i = 1`` for every masked layer, in float64 by default: importances span many orders of
    magnitude, and an entry that underflows to 0 can never come back under exponentiated gradient."""
    params = dict(model.named_parameters())
    return {k: torch.ones_like(params[k], dtype=dtype).detach() for k in masked_names(model)}


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


def _loss(model, params, buffers, x, y):
    return F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y)


def _cloned_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    # batch-norm running statistics are updated by a forward pass in train mode; the importance
    # computation works on copies so that it leaves the model's own statistics untouched
    return {k: v.clone() for k, v in model.named_buffers()}


def weight_gradient(model: nn.Module, names, x, y) -> dict[str, torch.Tensor]:
    """``grad_a L(f(x, a), y)`` for the named weights, at the model's current parameters."""
    params = dict(model.named_parameters())
    loss = _loss(model, params, _cloned_buffers(model), x, y)
    grads = torch.autograd.grad(loss, [params[k] for k in names])
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
    params = {k: v.detach() for k, v in model.named_parameters()}
    stepped = dict(params)
    for k, wk in w.items():
        stepped[k] = params[k] - wk.to(params[k].dtype) * (gamma * g[k])
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
    params = dict(model.named_parameters())
    return {k: torch.full_like(params[k], 1.0 - drop_rate).detach() for k in masked_names(model)}


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


# --- data --------------------------------------------------------------------------------------


class LoaderData:
    """CIFAR-10 through torchvision ``DataLoader``s (the ``paper`` profile), batches moved to ``device``."""

    def __init__(self, train_set, train_eval_set, test_set, device, batch_size, num_workers):
        self.name, self.in_channels, self.image_size, self.n_classes = "cifar10", 3, 32, 10
        self.train_set, self.train_eval_set, self.test_set = train_set, train_eval_set, test_set
        self.device, self.batch_size = device, batch_size
        self.num_workers = num_workers
        self.pin = device.type == "cuda"

    def to(self, dev):
        self.device, self.pin = dev, dev.type == "cuda"
        return self

    def _loader(self, ds, shuffle, gen=None, batch_size=None):
        return torch.utils.data.DataLoader(ds, batch_size=batch_size or self.batch_size, shuffle=shuffle,
                                           generator=gen, num_workers=self.num_workers, pin_memory=self.pin,
                                           drop_last=False, persistent_workers=False)

    def batches(self, batch_size: int, gen: torch.Generator) -> Iterator:
        for x, y in self._loader(self.train_set, True, gen, batch_size):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def eval_batches(self, split: str, batch_size: int = 1000) -> Iterator:
        ds = self.train_eval_set if split == "train" else self.test_set
        for x, y in self._loader(ds, False, batch_size=batch_size):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    @property
    def sizes(self):
        return len(self.train_set), len(self.test_set)


def load_data(params: dict, seed: int):
    """The data set of ``params["dataset"]``; MNIST-type sets are subsampled with ``seed``.

    ``cifar10`` goes through :func:`paramspace.data.load_torchvision`, which needs a network (or the
    files in ``data/cifar10``) and raises :class:`~paramspace.data.DataError` otherwise.
    """
    name = params["dataset"]
    if name in ("mnist", "fashion-mnist"):
        ds = D.load_mnist(n_train=params["n_train"], n_test=params["n_test"], seed=seed, flatten=False,
                          variant=name)
        mu, sd = ds.X_train.mean(), ds.X_train.std()
        return D.ImageTensors(name, (ds.X_train - mu) / sd, ds.y_train, (ds.X_test - mu) / sd, ds.y_test)
    if name == "cifar10":
        import torchvision.transforms as T

        norm = [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
        aug = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if params["augment"] else []
        train_set = D.load_torchvision("cifar10", train=True)
        train_set.transform = T.Compose(aug + norm)
        train_eval = D.load_torchvision("cifar10", train=True)
        train_eval.transform = T.Compose(norm)
        test_set = D.load_torchvision("cifar10", train=False)
        test_set.transform = T.Compose(norm)
        rng = np.random.default_rng(seed)
        if params["n_train"] < len(train_set):
            idx = np.sort(rng.choice(len(train_set), params["n_train"], replace=False)).tolist()
            train_set = torch.utils.data.Subset(train_set, idx)
            train_eval = torch.utils.data.Subset(train_eval, idx)
        if params["n_test"] < len(test_set):
            idx = np.sort(rng.choice(len(test_set), params["n_test"], replace=False)).tolist()
            test_set = torch.utils.data.Subset(test_set, idx)
        workers = min(8, os.cpu_count() or 1)
        return LoaderData(train_set, train_eval, test_set, torch.device("cpu"), params["batch_size"], workers)
    raise D.DataError(f"unknown data set {name!r}; choose one of {DATASETS}")


# --- training ----------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, data, split: str) -> tuple[float, float]:
    """Mean cross-entropy and accuracy with the full (unmasked) weights, in eval mode."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    for x, y in data.eval_batches(split):
        out = model(x)
        total += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    return total / n, correct / n


def _optimizer(model, params):
    if params["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    if params["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, nesterov=True,
                               weight_decay=params["weight_decay"])
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {params['optimizer']!r}")


def fit(model: nn.Module, data, method: str, params: dict, seed: int, device: torch.device,
        progress: bool = False, stop_after: int | None = None) -> dict:
    """Train ``model`` with ``method`` (one of :data:`METHODS`) for ``params["epochs"]`` epochs.

    Batch order depends on ``seed`` only (shared by all methods); masks use their own generator.
    After every epoch records train and test loss and accuracy with the full weights and, for the
    importance methods, the importances' largest share and normalised entropy (means over layers).
    Returns ``{"epochs": [records], "importance": {name: tensor} or None, "seconds": float}``.
    ``stop_after`` stops after that many epochs (the learning-rate schedule still spans
    ``params["epochs"]``, so the first epochs equal those of a full run).  The importance
    objective's data follow ``params["importance_data"]`` (:func:`importance_batches`; default
    ``"same"``, the deck's).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    from tqdm import tqdm

    model.to(device).train()
    opt = _optimizer(model, params)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, params["epochs"])
             if params["optimizer"] == "sgd" else None)
    batch_gen = torch.Generator().manual_seed(seed)
    mask_gen = torch.Generator(device=device).manual_seed(seed + 7919)
    p, min_keep = params["drop_rate"], params["min_keep"]
    tau = params["importance_tau"] if method == "importance_dc_kl" else 0.0
    importance = method.startswith("importance")
    w = uniform_importance(model) if importance else None
    keep = plain_keep(model, p) if method != "no_dropout" else None
    records, step, t0 = [], 0, time.perf_counter()
    last = params["epochs"] if stop_after is None else min(stop_after, params["epochs"])
    for epoch in tqdm(range(1, last + 1), desc=method, disable=not progress, leave=False):
        model.train()
        for x, y in data.batches(params["batch_size"], batch_gen):
            if importance and step % params["importance_every"] == 0 and len(y) >= 2:
                xi, yi, xo, yo = importance_batches(x, y, params.get("importance_data", "same"))
                w, _ = mirror_descent(model, w, xi, yi, xo, yo, eta=params["importance_lr"],
                                      gamma=params["importance_gamma"], tau=tau, steps=params["importance_steps"])
                keep = {k: keep_probabilities(w[k], p, min_keep) for k in w}
            if keep is None:
                loss = F.cross_entropy(model(x), y)
            else:
                loss = F.cross_entropy(functional_call(model, masked_parameters(model, keep, mask_gen), (x,)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if sched is not None:
            sched.step()
        tr_loss, tr_acc = evaluate(model, data, "train")
        te_loss, te_acc = evaluate(model, data, "test")
        rec = dict(epoch=epoch, train_loss=tr_loss, train_acc=tr_acc, test_loss=te_loss, test_acc=te_acc,
                   seconds=time.perf_counter() - t0)
        if importance:
            stats = [importance_stats(wk) for wk in w.values()]
            rec.update(max_share=float(np.mean([s["max_share"] for s in stats])),
                       effective_fraction=float(np.mean([s["effective_fraction"] for s in stats])))
        records.append(rec)
    model.eval()
    return {"epochs": records, "importance": {k: v.cpu() for k, v in w.items()} if importance else None,
            "seconds": time.perf_counter() - t0}


def check_params(params: dict) -> dict:
    """Checks across parameters that :mod:`paramspace.profiles` validates one at a time."""
    from .reports import ProfileError

    if params["min_keep"] > 1 - params["drop_rate"]:
        raise ProfileError(f"importance_dropconnect: min_keep = {params['min_keep']} must be at most "
                           f"1 - drop_rate = {1 - params['drop_rate']:.3g}")
    bad = [v for v in params.get("grid_min_keep", []) if v > 1 - params["drop_rate"]]
    if bad:
        raise ProfileError(f"importance_dropconnect: grid_min_keep values {bad} must be at most "
                           f"1 - drop_rate = {1 - params['drop_rate']:.3g}")
    if params.get("collapse_seeds", 1) > params["n_seeds"]:
        raise ProfileError(f"importance_dropconnect: collapse_seeds = {params['collapse_seeds']} must be at most "
                           f"n_seeds = {params['n_seeds']}")
    if params.get("grid_seeds", 1) > params["n_seeds"]:
        raise ProfileError(f"importance_dropconnect: grid_seeds = {params['grid_seeds']} must be at most "
                           f"n_seeds = {params['n_seeds']}")
    if params["early_epochs"] >= params["epochs"]:
        raise ProfileError(f"importance_dropconnect: early_epochs = {params['early_epochs']} must be "
                           f"smaller than epochs = {params['epochs']}")
    if params["dataset"] == "cifar10" and params["arch"] == "cnn" or \
            params["dataset"] != "cifar10" and params["arch"] == "resnet18":
        raise ProfileError("importance_dropconnect: arch 'resnet18' goes with dataset 'cifar10' "
                           "(32x32 RGB), arch 'cnn' with 'mnist' or 'fashion-mnist'")
    return params


def describe(params: dict) -> str:
    arch = ("ResNet-18 (3x3 stem, no max-pool)" if params["arch"] == "resnet18" else
            f"small CNN (conv {params['width']}-{2 * params['width']}, 5x5, max-pool; FC 64)")
    opt = (f"Adam (lr {params['lr']})" if params["optimizer"] == "adam"
           else f"SGD with Nesterov momentum 0.9 (lr {params['lr']}, cosine schedule)")
    wd = f", weight decay {params['weight_decay']}" if params["weight_decay"] else ""
    return (f"{arch} on {params['dataset']} ({params['n_train']} training / {params['n_test']} test images), "
            f"{params['epochs']} epochs of {opt}{wd}, batch {params['batch_size']}, {params['n_seeds']} seeds")


def run(params: dict, progress: bool = True) -> dict:
    """Every seed x method.  Returns ``curves`` (tidy: method, seed, epoch, train/test loss and
    accuracy, gap, importance statistics), ``importances`` (method -> {seed -> 1-d numpy array
    of all importances}) and ``timing`` (method, seed, seconds)."""
    check_params(params)
    dev = resolve_device(params["device"])
    with cpu_threads(params["cpu_threads"]):
        return _run(params, dev, progress)


def _run(params: dict, dev: torch.device, progress: bool) -> dict:
    from tqdm import tqdm

    rows, timing, collapse, imps = [], [], [], {m: {} for m in METHODS if m.startswith("importance")}
    jobs = [(params["seed"] + s, m) for s in range(params["n_seeds"]) for m in METHODS]
    data_cache: dict[int, object] = {}
    for seed, method in tqdm(jobs, desc="seed x method", disable=not progress):
        if seed not in data_cache:
            data_cache.clear()
            data_cache[seed] = load_data(params, seed).to(dev)
        data = data_cache[seed]
        seed_everything(seed)  # same initial weights for every method of a seed
        model = build_model(params["arch"], data.in_channels, data.n_classes, data.image_size, params["width"])
        out = fit(model, data, method, params, seed, dev)
        for r in out["epochs"]:
            rows.append(dict(method=method, seed=seed, **r))
        timing.append(dict(method=method, seed=seed, seconds=out["seconds"]))
        if out["importance"] is not None:
            imps[method][seed] = torch.cat([v.reshape(-1) for v in out["importance"].values()]).double().numpy()
        if method == "importance_dc" and seed < params["seed"] + params["collapse_seeds"]:
            # the deck's collapse statement: mirror descent solved to convergence, with and without
            # KL, at the weights this run ends with (trained under importance DropConnect without KL)
            x, y = next(iter(data.eval_batches("train", params["batch_size"])))
            cc = collapse_check(model, x, y, eta=params["importance_lr"], gamma=params["importance_gamma"],
                                taus=(0.0, params["importance_tau"]), steps=params["collapse_steps"],
                                layer_step=params["collapse_layer_step"])
            collapse.append(cc.assign(seed=seed))
    curves = pd.DataFrame(rows)
    curves["gap_acc"] = curves["train_acc"] - curves["test_acc"]
    curves["gap_loss"] = curves["test_loss"] - curves["train_loss"]
    return {"curves": curves, "importances": imps, "timing": pd.DataFrame(timing),
            "collapse": pd.concat(collapse, ignore_index=True)}  # the first collapse_seeds seeds


def sensitivity(params: dict, curves: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """The early-training result over a small grid of ``min_keep`` x ``importance_tau``.

    For the first ``grid_seeds`` seeds and every ``(min_keep, tau)`` of ``grid_min_keep`` x
    ``grid_tau`` (``tau = 0``: importance DropConnect without KL), trains importance DropConnect for
    the first ``early_epochs`` epochs only and returns one row per (min_keep, tau, seed) with its
    early test accuracy and the paired difference to plain DropConnect's early accuracy of the same
    seed, taken from ``curves`` (same initial weights and minibatch order; percentage points).
    Cells equal to the main run's settings are read from ``curves`` instead of being retrained."""
    check_params(params)
    dev = resolve_device(params["device"])
    with cpu_threads(params["cpu_threads"]):
        return _sensitivity(params, curves, dev, progress)


def _sensitivity(params, curves, dev, progress):
    from tqdm import tqdm

    k = params["early_epochs"]
    acc = per_seed(curves, "test_acc", range(1, k + 1))
    seeds = [params["seed"] + s for s in range(params["grid_seeds"])]
    cells = [(mk, tau) for mk in params["grid_min_keep"] for tau in params["grid_tau"]]
    rows = []
    for seed in tqdm(seeds, desc="sensitivity seeds", disable=not progress):
        data = None
        for mk, tau in cells:
            method = "importance_dc_kl" if tau > 0 else "importance_dc"
            reuse = mk == params["min_keep"] and (tau == 0 or tau == params["importance_tau"])
            if reuse:
                early = float(acc.loc[seed, method])
            else:
                if data is None:
                    data = load_data(params, seed).to(dev)
                seed_everything(seed)
                model = build_model(params["arch"], data.in_channels, data.n_classes, data.image_size,
                                    params["width"])
                out = fit(model, data, method, {**params, "min_keep": mk, "importance_tau": tau}, seed, dev,
                          stop_after=k)
                early = float(np.mean([r["test_acc"] for r in out["epochs"]]))
            rows.append(dict(min_keep=mk, tau=tau, seed=seed, early_acc=early, reused=reuse,
                             diff_pp=100 * (early - float(acc.loc[seed, "dropconnect"]))))
    return pd.DataFrame(rows)


def collapse_markdown(collapse: pd.DataFrame, params: dict) -> str:
    """One sentence per ``tau`` of the collapse check: the largest share of each layer after the last
    step (mean over seeds) and how many layer-seed pairs exceed ``collapse_share``."""
    q, last = params["collapse_share"], int(collapse["step"].max())
    end = collapse[collapse["step"] == last]
    parts = []
    for tau, sub in end.groupby("tau"):
        per_layer = sub.groupby("layer", sort=False).agg(share=("max_share", "mean"), size=("size", "first"))
        layers = ", ".join(f"{k} ({int(r['size'])} weights) {r['share']:.3g}" for k, r in per_layer.iterrows())
        n_over = int((sub["max_share"] > q).sum())
        label = "without KL" if tau == 0 else f"with KL (tau = {tau:g})"
        parts.append(f"{label}: largest share per layer after {last} steps, mean over seeds: {layers}; "
                     f"{n_over} of {len(sub)} layer-seed pairs above our threshold {q:g}")
    return "Collapse check. " + ". ".join(parts) + "."


def sensitivity_markdown(grid: pd.DataFrame) -> str:
    """The sensitivity grid as a Markdown table: rows ``min_keep``, columns ``tau``, cells the mean
    and sd over seeds of the early-accuracy difference to DropConnect (pp)."""
    stats = grid.groupby(["min_keep", "tau"])["diff_pp"].agg(["mean", "std"]).reset_index()
    taus = sorted(stats["tau"].unique())
    head = "| $k_{\\min}$ | " + " | ".join("$\\tau$ = 0 (no KL)" if t == 0 else f"$\\tau$ = {t:g}" for t in taus) + " |"
    rows = [head, "|---" * (len(taus) + 1) + "|"]
    for mk, sub in stats.groupby("min_keep"):
        cell = {r["tau"]: f"{r['mean']:+.2f} ± {0 if np.isnan(r['std']) else r['std']:.2f}" for _, r in sub.iterrows()}
        rows.append(f"| {mk:g} | " + " | ".join(cell.get(t, "") for t in taus) + " |")
    return "\n".join(rows)


def plot_collapse(collapse: pd.DataFrame, params: dict):
    """Largest share ``max_j w_j / |X_i|`` of each layer against the mirror-descent step of the
    collapse check (mean over seeds), without KL (left) and with it (right); the dashed line is our
    threshold ``collapse_share``."""
    import matplotlib.pyplot as plt

    taus = sorted(collapse["tau"].unique())
    fig, axes = plt.subplots(1, len(taus), figsize=(5.2 * len(taus), 3.8), sharey=True, squeeze=False)
    for ax, tau in zip(axes[0], taus):
        sub = collapse[np.isclose(collapse["tau"], tau)]
        for layer, d in sub.groupby("layer", sort=False):
            m = d.groupby("step")["max_share"].mean()
            ax.plot(np.maximum(m.index, 0.5), m.values, marker=".", label=f"{layer} ({int(d['size'].iloc[0])} weights)")
        ax.axhline(params["collapse_share"], color="0.4", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("mirror-descent step (step 0 plotted at 0.5)")
        ax.set_title("without KL ($\\tau$ = 0)" if tau == 0 else f"with KL ($\\tau$ = {tau:g})")
    axes[0][0].set_ylabel("largest share $\\max_j w_j / |X_i|$")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_sensitivity(grid: pd.DataFrame, params: dict):
    """Early-accuracy difference to plain DropConnect (mean over seeds +- one standard error) against
    ``tau`` (symlog axis; 0 = without KL), one line per ``min_keep``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    stats = grid.groupby(["min_keep", "tau"])["diff_pp"].agg(["mean", "std", "count"]).reset_index()
    positive = sorted(t for t in stats["tau"].unique() if t > 0)
    for mk, sub in stats.groupby("min_keep"):
        se = sub["std"].fillna(0) / np.sqrt(sub["count"])
        ax.errorbar(sub["tau"], sub["mean"], yerr=se, marker="o", capsize=3,
                    label=f"$k_{{\\min}}$ = {mk:g}" + (" (= plain DropConnect)" if mk >= 1 - params["drop_rate"] else ""))
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=positive[0] if positive else 1e-3)
    ax.set_xlabel("KL weight $\\tau$ (0 = no KL)")
    ax.set_ylabel("early test accuracy minus\nDropConnect's (pp)")
    ax.set_title(f"Sensitivity: first {params['early_epochs']} epochs, {grid['seed'].nunique()} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- claims ------------------------------------------------------------------------------------


def per_seed(curves: pd.DataFrame, column: str, epochs) -> pd.DataFrame:
    """Mean of ``column`` over the given epochs, per seed (rows) and method (columns)."""
    sub = curves[curves["epoch"].isin(list(epochs))]
    return sub.pivot_table(index="seed", columns="method", values=column, aggfunc="mean")


DECK_EARLY = "slide 'Выводы', item 3; slide 'Эксперименты', figure 'Графики сходимости'"
DECK_HIST = "slide 'Эксперименты', figure 'Гистограмма важности веса (value)' and the text above it"
DECK_FUTURE = "slide 'Выводы', 'В будущем' item 1 (late training left to future work)"
DECK_GAP = "slide 'Постановка задачи регуляризации' (GAP stated as an aim; no result reported)"


def collapse_shares(collapse: pd.DataFrame, tau: float = 0.0, step: int | None = None) -> pd.Series:
    """Per seed: the largest share ``max_j w_j / |X_i|``, mean over layers, of the converged mirror
    descent of :func:`collapse_check` (``step``: default the last recorded one) for ``tau``."""
    sub = collapse[np.isclose(collapse["tau"], tau)]
    step = int(sub["step"].max()) if step is None else step
    return sub[sub["step"] == step].groupby("seed")["max_share"].mean()


def claims(curves: pd.DataFrame, params: dict, collapse: pd.DataFrame | None = None) -> list:
    """The ledger, in the order of :data:`CLAIM_SHORT`.

    Kind ``report`` (the deck states it): importance DropConnect, with and without KL, beats plain
    DropConnect early in training; the KL term keeps the importances spread; without it mirror
    descent converges to one weight (checked on ``collapse``, the converged mirror descent of
    :func:`collapse_check`; the row is left out when ``collapse`` is None).  Kind ``ours``: the
    same importances as trained (one mirror-descent step per minibatch), the condition that plain
    DropConnect helps over no dropout in the chosen regime, the end-of-training comparisons the
    deck leaves to future work, and the train-test gaps the deck states only as an aim."""
    E, k = params["epochs"], params["early_epochs"]
    early, late = range(1, k + 1), [E]
    acc_e, acc_l = per_seed(curves, "test_acc", early), per_seed(curves, "test_acc", late)
    gap = per_seed(curves, "gap_acc", late)
    imp = curves[curves["method"].str.startswith("importance")]
    eff, share = per_seed(imp, "effective_fraction", late), per_seed(imp, "max_share", late)
    seeds = acc_e.index.to_numpy()
    prof, q = params["profile"], params["collapse_share"]
    fmt_pp = "{:+.2f}"
    pp = lambda s: 100 * s.to_numpy()  # noqa: E731  (accuracy differences in percentage points)
    early_txt = f"mean test accuracy over epochs 1-{k}" if k > 1 else "test accuracy after epoch 1"
    early_deck = "better results than classic DropConnect early in training (convergence plot; no number)"
    out = []
    for m in ("importance_dc_kl", "importance_dc"):
        out.append(paired_claim(
            f"{METHOD_LABELS[m]} beats plain DropConnect early in training ({early_txt}; percentage points)",
            early_deck, pp(acc_e[m] - acc_e["dropconnect"]), seeds, prof, fmt_pp, kind="report", deck=DECK_EARLY))
    out.append(paired_claim(
        f"the KL regulariser keeps the importances spread out (effective fraction of weights "
        f"exp(-KL(w/|X| || uniform)) at epoch {E}, mean over layers, with KL minus without)",
        "histogram: 'more informative' with KL, degenerate without (figure; no number)",
        (eff["importance_dc_kl"] - eff["importance_dc"]).to_numpy(), seeds, prof, "{:+.3f}",
        kind="report", deck=DECK_HIST))
    if collapse is not None:
        cs = collapse_shares(collapse, 0.0)
        out.append(paired_claim(
            f"without KL, mirror descent converges to one weight per layer (importance problem solved at "
            f"fixed trained weights on one batch, {params['collapse_steps']} steps from uniform: largest "
            f"share max w/|X| per layer, mean over layers, minus our threshold {q:g})",
            "degenerate solution: every importance 0 except one (largest share 1)",
            cs.to_numpy() - q, cs.index.to_numpy(), prof, "{:+.3f}", kind="report", deck=DECK_HIST))
    out.append(paired_claim(
        f"without KL, the importances as trained (one mirror-descent step per minibatch) hold one weight "
        f"at epoch {E} (largest share, mean over layers, minus our threshold {q:g})",
        "not claimed as such: the deck's collapse is the converged mirror descent",
        share["importance_dc"].to_numpy() - q, seeds, prof, "{:+.3f}", kind="ours", deck=DECK_HIST))
    loss_e, loss_l = per_seed(curves, "test_loss", early), per_seed(curves, "test_loss", late)
    out.append(paired_claim(
        f"in this regime plain DropConnect beats no dropout at the end of training in test loss (the deck's L; "
        f"no-dropout minus DropConnect test cross-entropy at epoch {E}): the condition under which the early "
        f"comparison means something", "not claimed: our choice of regime",
        (loss_l["no_dropout"] - loss_l["dropconnect"]).to_numpy(), seeds, prof, "{:+.3f}", kind="ours"))
    out.append(paired_claim(
        f"in this regime plain DropConnect beats no dropout at the end of training in test accuracy (epoch {E}; "
        f"percentage points)", "not claimed: our choice of regime",
        pp(acc_l["dropconnect"] - acc_l["no_dropout"]), seeds, prof, fmt_pp, kind="ours"))
    for m in ("importance_dc_kl", "importance_dc"):
        out.append(paired_claim(
            f"{METHOD_LABELS[m]} beats plain DropConnect early in training in test loss (DropConnect minus "
            f"{METHOD_LABELS[m]}, mean test cross-entropy over epochs 1-{k})",
            "not claimed as such: the deck does not say which quantity its convergence plot shows",
            (loss_e["dropconnect"] - loss_e[m]).to_numpy(), seeds, prof, "{:+.3f}", kind="ours", deck=DECK_EARLY))
    for m in ("importance_dc_kl", "importance_dc"):
        out.append(paired_claim(
            f"{METHOD_LABELS[m]} beats plain DropConnect at the end of training (test accuracy at epoch {E}; "
            f"percentage points)", "not claimed: left to future work", pp(acc_l[m] - acc_l["dropconnect"]),
            seeds, prof, fmt_pp, kind="ours", deck=DECK_FUTURE))
    for a, b in (("importance_dc_kl", "dropconnect"), ("dropconnect", "no_dropout")):
        out.append(paired_claim(
            f"{METHOD_LABELS[a]} has a smaller train-test accuracy gap than {METHOD_LABELS[b]} (gap of "
            f"{METHOD_LABELS[b]} minus gap of {METHOD_LABELS[a]} at epoch {E}; percentage points)",
            "not claimed: the deck states the GAP only as an aim", pp(gap[b] - gap[a]), seeds, prof, fmt_pp,
            kind="ours", deck=DECK_GAP))
    return out


CLAIM_SHORT = {
    "importance DropConnect + KL beats plain DropConnect early": ("early in training, importance DropConnect + KL vs DropConnect", " pp"),
    "importance DropConnect beats plain DropConnect early": ("early in training, importance DropConnect (no KL) vs DropConnect", " pp"),
    "the KL regulariser keeps": ("spread of the importances, with vs without KL", ""),
    "without KL, mirror descent converges": ("collapse of the converged mirror descent without KL (largest share minus threshold)", ""),
    "without KL, the importances as trained": ("collapse of the importances as trained without KL (largest share minus threshold)", ""),
    "in this regime plain DropConnect beats no dropout at the end of training in test loss": (
        "regime check, DropConnect vs no dropout, final test loss", ""),
    "in this regime plain DropConnect beats no dropout at the end of training in test accuracy": (
        "regime check, DropConnect vs no dropout, final test accuracy", " pp"),
    "importance DropConnect + KL beats plain DropConnect early in training in test loss": (
        "early test loss, importance DropConnect + KL vs DropConnect", ""),
    "importance DropConnect beats plain DropConnect early in training in test loss": (
        "early test loss, importance DropConnect (no KL) vs DropConnect", ""),
    "importance DropConnect + KL beats plain DropConnect at the end": ("end of training, importance DropConnect + KL vs DropConnect", " pp"),
    "importance DropConnect beats plain DropConnect at the end": ("end of training, importance DropConnect (no KL) vs DropConnect", " pp"),
    "importance DropConnect + KL has a smaller": ("train-test gap, importance DropConnect + KL vs DropConnect", " pp"),
    "DropConnect has a smaller": ("train-test gap, DropConnect vs no dropout", " pp"),
}


def short_label(c) -> tuple[str, str]:
    """The short name and unit of a ledger row (for the discussion's bullet points)."""
    match = [prefix for prefix in CLAIM_SHORT if c.claim.startswith(prefix)]
    return CLAIM_SHORT[max(match, key=len)] if match else (c.claim, "")


def summary_markdown(ledger: list, curves: pd.DataFrame, params: dict) -> str:
    """Bullet points for the discussion, every number taken from ``curves`` and the ledger
    (accuracy differences in percentage points)."""
    E, k = params["epochs"], params["early_epochs"]
    last = curves[curves["epoch"] == E].groupby("method")
    acc, gap = last["test_acc"].mean(), last["gap_acc"].mean()
    early = curves[curves["epoch"] <= k].groupby("method")["test_acc"].mean()
    early_txt = f"mean over epochs 1-{k}" if k > 1 else "epoch 1"
    lines = [f"* Test accuracy, mean over seeds (early = {early_txt}, final = epoch {E}), and train-test "
             f"accuracy gap at epoch {E}:"]
    lines += [f"  * {METHOD_LABELS[m]}: early {100 * early[m]:.2f}%, final {100 * acc[m]:.2f}%, "
              f"gap {100 * gap[m]:.2f} pp" for m in METHODS if m in acc]
    for c in ledger:
        short, unit = short_label(c)
        lines.append(f"* {short[0].upper() + short[1:]} ({KIND_LABEL[c.kind]}): {verdict_phrase(c, unit)}.")
    return "\n".join(lines)


def concentration_markdown(curves: pd.DataFrame, params: dict) -> str:
    """The importances' effective fraction and largest share at the last epoch, per variant."""
    last = curves[curves["epoch"] == params["epochs"]].groupby("method")
    eff, share = last["effective_fraction"].mean(), last["max_share"].mean()
    return ("Effective fraction of weights $\\exp(-\\mathrm{KL}(\\mathbf{w}_i/|X_i| \\,\\|\\, \\mathrm{uniform}))$ "
            "(1 = uniform, $1/|X_i|$ = one weight) and largest share $\\max_j w_j/|X_i|$, averaged over layers "
            f"and seeds at epoch {params['epochs']}: without KL {eff['importance_dc']:.3f} and "
            f"{share['importance_dc']:.3f}; with KL {eff['importance_dc_kl']:.3f} and {share['importance_dc_kl']:.3f}.")


def describe_run(params: dict) -> str:
    """The one-paragraph description of a run shown above its results."""
    return (f"**This run:** {describe(params)}. DropConnect rate $p$ = {params['drop_rate']}, "
            f"$k_{{\\min}}$ = {params['min_keep']}; importances: $\\eta$ = {params['importance_lr']:g}, "
            f"$\\gamma$ = {params['importance_gamma']:g}, $\\tau$ = {params['importance_tau']:g} (+ KL variant), "
            f"{params['importance_steps']} mirror-descent step(s) every {params['importance_every']} minibatch(es), "
            + ("objective on the same minibatch (the deck's); " if params.get("importance_data", "same") == "same"
               else "objective split across two halves of the minibatch (our option); ")
            + f"profile `{params['profile']}`.")


def importance_histogram_data(importances: dict, seed: int) -> dict[str, np.ndarray]:
    """Importances of one seed per importance method (all layers pooled; each layer has mean 1)."""
    return {m: v[seed] for m, v in importances.items() if seed in v}
