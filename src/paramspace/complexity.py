"""Report 2 (Grebenkova, Bakhteev, Strijov 2020): variational optimisation with complexity control.

A mean-field Gaussian network (:class:`paramspace.variational.BayesLinear` layers) is trained by
maximising the *generalised evidence*

    E_q log p(D | w) - lambda * KL(q(w) || p(w)),

per training example: minimise ``mean NLL + lambda * KL / n``.  ``lambda`` is the complexity
coefficient: ``lambda = 1`` is the usual ELBO, ``lambda = 0`` drops the KL term (the posterior
variances are then free), large ``lambda`` pulls the posterior towards the prior.

Two ways to get models for many ``lambda``:

* ``separate`` -- one network trained per ``lambda`` (:func:`train_separate`: Adam or plain SGD, with
  optional gradient clipping, :func:`fit`);
* a **hypernetwork** ``G: lambda -> (mu, rho)`` of every variational parameter of the same network,
  trained once on ``lambda`` drawn log-uniformly from ``[lambda_min, lambda_max]`` (several per
  minibatch): :class:`LinearHyper` (``G(lambda) = t b2 + b3`` per parameter, by default an
  interpolation between two independently initialised parameter sets) and :class:`LowRankHyper`
  (``G(lambda) = (f(t) U1)(f(t) U2)^T + b1`` per weight matrix, ``f`` one hidden layer of ReLU
  units by default), where ``t = t(lambda)`` is ``log lambda`` rescaled to ``[0, 1]``
  (:func:`encode_lambda`).

Every model is pruned by the relative density ``exp(-mu^2 / (2 sigma^2))`` of its weights (the
highest density, i.e. the smallest ``|mu| / sigma``, goes first), per layer or globally, and, as a
baseline, by the magnitude ``|mu|``; its mean network is evaluated one-shot and (density) after a
short fine-tuning of the pruned mean network.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from . import data as D, pruning, variational as V
from .quality import quality
from .models import mlp
from .train import History, resolve_device, seed_everything, set_cpu_threads, train

METHODS = ("separate", "linear", "lowrank")
METHOD_LABELS = {"separate": "separate models (one per λ)", "linear": "linear hypernetwork",
                 "lowrank": "low-rank hypernetwork"}
STAGES = ("one-shot", "fine-tuned")


# --- the network and its loss -----------------------------------------------------------------


def prior_sigma(params: dict) -> float:
    return math.sqrt(params["prior_variance"])


def bayes_mlp(params: dict, in_dim: int = 784, out_dim: int = 10) -> nn.Sequential:
    """``in_dim -> hidden -> out_dim`` ReLU network of :class:`~paramspace.variational.BayesLinear` layers."""
    return mlp(in_dim, params["hidden"], out_dim, "relu", linear=V.BayesLinear,
               prior_sigma=prior_sigma(params), init_sigma=params["init_sigma"],
               local_reparam=params["local_reparam"])


def generalized_evidence_loss(out: torch.Tensor, y: torch.Tensor, kl: torch.Tensor, lam: float,
                              n_train: int) -> torch.Tensor:
    """Minus the generalised evidence per training example: ``mean NLL + lam * KL / n_train``."""
    if lam < 0 or n_train < 1:
        raise ValueError("lam must be >= 0 and n_train >= 1")
    return F.cross_entropy(out, y) + lam * kl / n_train


def kl_from_params(params: dict[str, torch.Tensor], prior_sigma: float) -> torch.Tensor:
    """``KL(q || p)`` of a set of generated variational parameters (``*_mu`` with ``*_rho``)."""
    total = None
    for name, mu in params.items():
        if name.endswith("_mu"):
            sigma = F.softplus(params[name[:-3] + "_rho"])
            kl = V.kl_gaussian_closed_form(mu, sigma, prior_sigma)
            total = kl if total is None else total + kl
    if total is None:
        raise ValueError("no variational parameters (names ending in _mu) given")
    return total


# --- lambda on a log scale --------------------------------------------------------------------


def encode_lambda(lam, lam_min: float, lam_max: float):
    """``t = (log lam - log lam_min) / (log lam_max - log lam_min)``: 0 at ``lam_min``, 1 at ``lam_max``."""
    if not 0 < lam_min < lam_max:
        raise ValueError(f"need 0 < lam_min < lam_max, got {lam_min}, {lam_max}")
    lo, hi = math.log(lam_min), math.log(lam_max)
    if isinstance(lam, torch.Tensor):
        return (torch.log(lam) - lo) / (hi - lo)
    if lam <= 0:
        raise ValueError(f"lambda must be > 0 on the log scale, got {lam}")
    return (math.log(lam) - lo) / (hi - lo)


def sample_lambdas(k: int, lam_min: float, lam_max: float, generator: torch.Generator | None = None) -> list[float]:
    """``k`` values of lambda drawn log-uniformly from ``[lam_min, lam_max]``."""
    u = torch.rand(k, generator=generator, dtype=torch.float64)
    return [float(v) for v in torch.exp(math.log(lam_min) + u * (math.log(lam_max) - math.log(lam_min)))]


# --- hypernetworks ----------------------------------------------------------------------------


class HyperNet(nn.Module):
    """Maps lambda to every variational parameter (``*_mu``, ``*_rho``) of a base network.

    The base network is kept only as the architecture run by :func:`torch.func.functional_call`
    with the generated parameters; its own parameters are not trained (and are not this module's).
    """

    kind = ""

    def __init__(self, base: nn.Module, lam_min: float, lam_max: float):
        super().__init__()
        encode_lambda(lam_min, lam_min, lam_max)  # validates the range
        self.lam_min, self.lam_max = float(lam_min), float(lam_max)
        self.__dict__["base"] = base  # not a submodule on purpose
        self.names = [n for n, _ in base.named_parameters()]
        self.shapes = {n: tuple(p.shape) for n, p in base.named_parameters()}

    @staticmethod
    def key(name: str) -> str:
        return name.replace(".", "__")

    def encode(self, lam) -> torch.Tensor:
        t = encode_lambda(lam, self.lam_min, self.lam_max)
        dev = next(self.parameters()).device
        return t.to(dev) if isinstance(t, torch.Tensor) else torch.tensor(t, device=dev)

    def generate(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, lam) -> dict[str, torch.Tensor]:
        """The base network's parameters at ``lam``."""
        return self.generate(self.encode(lam))

    def run(self, x: torch.Tensor, lam) -> torch.Tensor:
        """The base network's output on ``x`` with the parameters generated at ``lam``."""
        return functional_call(self.base, self(lam), (x,))

    @torch.no_grad()
    def model_at(self, lam) -> nn.Sequential:
        """A standalone copy of the base network holding the parameters generated at ``lam``."""
        m = copy.deepcopy(self.base)
        params = self(lam)
        for n, p in m.named_parameters():
            p.data = params[n].detach().clone().to(p.device)
        return m


class LinearHyper(HyperNet):
    """``G(lambda) = t(lambda) b2 + b3`` for every variational parameter (``b2``, ``b3`` shaped like it).

    ``b3`` starts at the base network's parameters (``G`` at ``lambda_min``).  ``b2`` starts at 0
    (``other=None``: a flat start, every lambda gives the same model until training separates them)
    or at ``other - base`` for a second, independently initialised network ``other`` of the same
    architecture, so that ``G`` starts as the interpolation ``(1 - t) base + t other`` between two
    endpoints (as in the authors' code) and depends on lambda from the first step."""

    kind = "linear"

    def __init__(self, base: nn.Module, lam_min: float, lam_max: float, other: nn.Module | None = None):
        super().__init__(base, lam_min, lam_max)
        params = dict(base.named_parameters())
        if other is not None:
            oth = dict(other.named_parameters())
            if {n: tuple(p.shape) for n, p in oth.items()} != self.shapes:
                raise ValueError("`other` must have the base network's architecture")
            b2 = {n: (oth[n].detach() - params[n].detach()).clone() for n in self.names}
        else:
            b2 = {n: torch.zeros_like(params[n].detach()) for n in self.names}
        self.b2 = nn.ParameterDict({self.key(n): nn.Parameter(b2[n]) for n in self.names})
        self.b3 = nn.ParameterDict({self.key(n): nn.Parameter(params[n].detach().clone()) for n in self.names})

    def generate(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t * self.b2[self.key(n)] + self.b3[self.key(n)] for n in self.names}


class LowRankHyper(HyperNet):
    """``G(lambda) = A(t) B(t)^T + b1`` per weight matrix, ``A = (f(t) U1)`` of shape ``out x r``,
    ``B = (f(t) U2)`` of shape ``in x r``; vectors (biases) get ``f(t) U + b1``.

    ``f(t)`` maps the encoded lambda to ``R^embed_dim``: ``features="relu"`` (default, the deck's) is
    one hidden layer of ReLU units, ``f(t) = max(0, a t + c)`` with ``a``, ``c`` initialised like
    ``nn.Linear(1, embed_dim)``; ``features="tanh"`` (ours) is ``f(t) = tanh(a t + c)`` with
    ``a ~ N(0, 4)``, ``c ~ N(0, 1)``.  ``a`` and ``c`` are trained with the rest; the
    lambda-dependent part of every weight matrix has rank at most ``rank``.
    """

    kind = "lowrank"

    def __init__(self, base: nn.Module, lam_min: float, lam_max: float, rank: int = 1, embed_dim: int = 8,
                 init_scale: float = 0.01, generator: torch.Generator | None = None, features: str = "tanh"):
        super().__init__(base, lam_min, lam_max)
        if rank < 1 or embed_dim < 1:
            raise ValueError("rank and embed_dim must be >= 1")
        if features not in ("relu", "tanh"):
            raise ValueError(f"features must be 'relu' or 'tanh', got {features!r}")
        self.rank, self.embed_dim, self.feature_kind = int(rank), int(embed_dim), features
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        params = dict(base.named_parameters())
        if features == "tanh":
            self.embed_a = nn.Parameter(2.0 * torch.randn(embed_dim, generator=g))
            self.embed_c = nn.Parameter(torch.randn(embed_dim, generator=g))
        else:  # nn.Linear(1, embed_dim)'s initialisation: U(-1, 1) for weight and bias (fan-in 1)
            self.embed_a = nn.Parameter(2 * torch.rand(embed_dim, generator=g) - 1)
            self.embed_c = nn.Parameter(2 * torch.rand(embed_dim, generator=g) - 1)
        self.b1 = nn.ParameterDict({self.key(n): nn.Parameter(params[n].detach().clone()) for n in self.names})
        self.U1, self.U2 = nn.ParameterDict(), nn.ParameterDict()
        for n in self.names:
            shape = self.shapes[n]
            if len(shape) == 2:
                out_f, in_f = shape
                self.U1[self.key(n)] = nn.Parameter(init_scale * torch.randn(embed_dim, out_f * rank, generator=g))
                self.U2[self.key(n)] = nn.Parameter(init_scale * torch.randn(embed_dim, in_f * rank, generator=g))
            elif len(shape) == 1:
                self.U1[self.key(n)] = nn.Parameter(init_scale * torch.randn(embed_dim, shape[0], generator=g))
            else:
                raise ValueError(f"parameter {n} has shape {shape}; only vectors and matrices are supported")

    def features(self, t: torch.Tensor) -> torch.Tensor:
        z = self.embed_a * t + self.embed_c
        return torch.tanh(z) if self.feature_kind == "tanh" else torch.relu(z)

    def generate(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(t)
        out = {}
        for n in self.names:
            k, shape = self.key(n), self.shapes[n]
            if len(shape) == 2:
                A = (f @ self.U1[k]).reshape(shape[0], self.rank)
                B = (f @ self.U2[k]).reshape(shape[1], self.rank)
                out[n] = A @ B.T + self.b1[k]
            else:
                out[n] = f @ self.U1[k] + self.b1[k]
        return out


def make_hyper(kind: str, base: nn.Module, params: dict, seed: int = 0, other: nn.Module | None = None) -> HyperNet:
    """The hypernetwork ``kind`` over ``base``.  The linear one starts from the endpoints ``base`` and
    ``other`` when ``params["linear_init"] == "endpoints"`` (``other`` is then required), flat
    otherwise; the low-rank one uses ``params["lowrank_features"]`` (default ``"tanh"``)."""
    if kind == "linear":
        if params.get("linear_init", "zero") == "endpoints":
            if other is None:
                raise ValueError("linear_init = 'endpoints' needs a second network `other`")
            return LinearHyper(base, params["lambda_min"], params["lambda_max"], other=other)
        return LinearHyper(base, params["lambda_min"], params["lambda_max"])
    if kind == "lowrank":
        return LowRankHyper(base, params["lambda_min"], params["lambda_max"], rank=params["rank"],
                            embed_dim=params["embed_dim"], generator=torch.Generator().manual_seed(seed),
                            features=params.get("lowrank_features", "tanh"))
    raise ValueError(f"kind must be 'linear' or 'lowrank', got {kind!r}")


# --- training: one loop for the separate models and the hypernetworks ------------------------


def make_optimizer(parameters, optimizer: str, lr: float) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or plain ``torch.optim.SGD`` (no momentum) at learning rate ``lr``."""
    opts = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if optimizer not in opts:
        raise ValueError(f"optimizer must be one of {list(opts)}, got {optimizer!r}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    return opts[optimizer](parameters, lr=lr)


def clip_gradients(parameters, clip: float, mode: str = "value") -> None:
    """Clip every gradient entry to ``[-clip, clip]`` (``mode="value"``, the authors' code) or the
    global gradient norm to ``clip`` (``mode="norm"``); nothing when ``clip == 0``."""
    if clip < 0 or mode not in ("value", "norm"):
        raise ValueError(f"need clip >= 0 and mode in ('value', 'norm'), got {clip}, {mode!r}")
    if clip == 0:
        return
    if mode == "value":
        torch.nn.utils.clip_grad_value_(parameters, clip)
    else:
        torch.nn.utils.clip_grad_norm_(parameters, clip)


def fit(parameters, batch_loss, data, *, epochs: int, batch_size: int, optimizer: str = "sgd", lr: float = 0.1,
        clip: float = 0.0, clip_mode: str = "value", seed: int = 0, device: str = "auto", on_step=None,
        progress: bool = False, desc: str = "train") -> tuple[History, int]:
    """Minimise ``batch_loss(xb, yb, generator)`` over minibatches of ``data``'s training set (drawn with
    a generator seeded by ``seed``) for ``epochs`` epochs.  ``on_step(step)`` is called after every
    optimizer step.  Returns the mean loss per epoch and the number of optimizer steps."""
    from tqdm import tqdm

    if epochs < 1 or batch_size < 1:
        raise ValueError("need epochs >= 1 and batch_size >= 1")
    params = [p for p in parameters]
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    n = len(X)
    opt = make_optimizer(params, optimizer, lr)
    hist = History(quality_name="accuracy")
    step = 0
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False, mininterval=1.0):
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = batch_loss(X[idx], y[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(params, clip, clip_mode)
            opt.step()
            step += 1
            total += loss.item() * len(idx)
            if on_step is not None:
                on_step(step)
        hist.loss.append(total / n)
    return hist, step


def train_separate(model: nn.Module, data, lam: float, *, epochs: int, batch_size: int, optimizer: str, lr: float,
                   clip: float = 0.0, clip_mode: str = "value", seed: int = 0, device: str = "auto",
                   eval_every: int = 0) -> tuple[History, int, list[tuple[int, float]]]:
    """Train one Bayesian network at complexity ``lam`` (minus the generalised evidence per example).

    ``eval_every > 0`` records ``(step, test accuracy of the mean network)`` every that many steps and
    after the last one.  Returns the history, the number of optimizer steps and that trace."""
    dev = resolve_device(device)
    model.to(dev)
    n = len(data.X_train)
    trace: list[tuple[int, float]] = []

    def loss(xb, yb, _gen):
        return generalized_evidence_loss(model(xb), yb, V.kl_total(model), lam, n)

    def on_step(step):
        if eval_every and step % eval_every == 0:
            trace.append((step, quality(model, data.X_test, data.y_test, data.task)))  # eval mode inside

    model.train()
    hist, steps = fit(model.parameters(), loss, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                      lr=lr, clip=clip, clip_mode=clip_mode, seed=seed, device=str(dev),
                      on_step=on_step if eval_every else None)
    model.eval()
    if eval_every and (not trace or trace[-1][0] != steps):
        trace.append((steps, quality(model, data.X_test, data.y_test, data.task)))
    return hist, steps, trace


def steps_to_reach(trace: list[tuple[int, float]], target: float) -> int | None:
    """The first recorded step at which the accuracy reaches ``target`` (``None`` if it never does)."""
    for step, acc in trace:
        if acc >= target:
            return int(step)
    return None


def train_hypernet(hyper: HyperNet, data, *, epochs: int, lr: float, batch_size: int, lambdas_per_batch: int,
                   prior_sigma: float, optimizer: str = "sgd", clip: float = 0.0, clip_mode: str = "norm",
                   seed: int = 0, device: str = "auto", progress: bool = False,
                   desc: str = "hypernetwork") -> History:
    """Minimise the generalised-evidence loss averaged over ``lambdas_per_batch`` values of lambda
    drawn log-uniformly per minibatch, with ``optimizer`` (default plain SGD) and gradient clipping
    (``clip > 0``; ``clip_mode`` 'norm' or 'value').  Returns the mean loss per epoch; the number of
    optimizer steps is in ``hist.steps``."""
    if lambdas_per_batch < 1:
        raise ValueError("need lambdas_per_batch >= 1")
    dev = resolve_device(device)
    hyper.to(dev)
    base = hyper.base.to(dev)
    base.train()
    n = len(data.X_train)

    def loss(xb, yb, gen):
        total = 0.0
        for lam in sample_lambdas(lambdas_per_batch, hyper.lam_min, hyper.lam_max, gen):
            p = hyper(lam)
            out = functional_call(base, p, (xb,))
            total = total + generalized_evidence_loss(out, yb, kl_from_params(p, prior_sigma), lam, n)
        return total / lambdas_per_batch

    hist, steps = fit(hyper.parameters(), loss, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                      lr=lr, clip=clip, clip_mode=clip_mode, seed=seed, device=str(dev), progress=progress,
                      desc=desc)
    hist.steps = steps
    base.eval()
    return hist


# --- pruning by relative density --------------------------------------------------------------


def relative_density(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``rho(w) = q(0) / q(mu) = exp(-mu^2 / (2 sigma^2))``: close to 1 when zero is a likely value."""
    return torch.exp(-mu**2 / (2 * sigma**2))


def weight_scores(bayes: nn.Module) -> pruning.Scores:
    """Keep-scores ``mu^2 / sigma^2 = -2 log rho`` of the weights (biases are never pruned).

    The score is a decreasing function of the relative density, so removing the lowest scores first
    is removing the highest densities first."""
    return {k: v for k, v in pruning.variational_scores(bayes).items() if k.endswith(".weight")}


def training_subset(data, n: int, seed: int = 0):
    """A copy of ``data`` whose training set is a seeded random ``n`` of its training examples."""
    import dataclasses

    if n >= len(data.X_train):
        return data
    idx = torch.randperm(len(data.X_train), generator=torch.Generator().manual_seed(seed))[:n]
    return dataclasses.replace(data, X_train=data.X_train[idx], y_train=data.y_train[idx])


def magnitude_weight_scores(bayes: nn.Module) -> pruning.Scores:
    """Keep-scores ``|mu|`` of the weights, keyed like :func:`weight_scores` (the magnitude baseline;
    biases are never pruned)."""
    return {f"{i}.weight": m.weight_mu.detach().abs().cpu().clone() for i, m in enumerate(bayes)
            if isinstance(m, V.BayesLinear)}


def prune_model(det: nn.Module, scores: pruning.Scores, fraction: float, seed: int = 0,
                ranking: str = "global") -> nn.Module:
    """A pruned copy of ``det``: the ``fraction`` of lowest-scored weights removed, ranked over all
    scored tensors together (``"global"``) or within each tensor (``"per_layer"``: every layer loses
    ``round(fraction * its size)`` weights, as in the authors' code)."""
    if ranking == "global":
        return pruning.prune_by_scores(det, scores, fraction, seed)
    if ranking != "per_layer":
        raise ValueError(f"ranking must be 'global' or 'per_layer', got {ranking!r}")
    m = copy.deepcopy(det)
    for k in scores:
        m = pruning.prune_by_scores(m, {k: scores[k]}, fraction, seed, inplace=True)
    return m


CRITERIA = ("density", "magnitude")


def prune_curve(bayes: nn.Module, data, fractions, seed: int = 0, finetune_steps: int = 0,
                finetune_lr: float = 0.1, batch_size: int = 256, device: str = "auto", ranking: str = "global",
                criteria=("density",)) -> pd.DataFrame:
    """Test accuracy of the mean network after removing each fraction of the weights, by relative
    density (``"density"``) and/or by magnitude ``|mu|`` (``"magnitude"``), ranked per ``ranking``;
    one-shot, and for density also (``finetune_steps > 0``) after that many minibatch steps of plain
    SGD on the pruned mean network (pure NLL, one pass over a seeded random subset of the training
    set; the ``prune`` masks keep removed weights at zero)."""
    det = V.to_deterministic(bayes)
    score_fns = {"density": weight_scores, "magnitude": magnitude_weight_scores}
    unknown = [c for c in criteria if c not in score_fns]
    if unknown:
        raise ValueError(f"criteria must be drawn from {CRITERIA}, got {unknown}")
    sub = training_subset(data, finetune_steps * batch_size, seed) if finetune_steps > 0 else None
    rows = []
    for crit in criteria:
        scores = score_fns[crit](bayes)
        for f in fractions:
            m = prune_model(det, scores, f, seed, ranking)
            rows.append(dict(criterion=crit, fraction=f, stage="one-shot",
                             accuracy=quality(m, data.X_test, data.y_test, data.task)))
            if sub is not None and crit == "density":
                train(m, sub, epochs=1, lr=finetune_lr, batch_size=batch_size, seed=seed,
                      device=device, optimizer="sgd", progress=False)
                rows.append(dict(criterion=crit, fraction=f, stage="fine-tuned",
                                 accuracy=quality(m, data.X_test, data.y_test, data.task)))
    return pd.DataFrame(rows)


@torch.no_grad()
def posterior_summary(bayes: nn.Module) -> dict:
    """Of the weights: median, quartiles and interquartile range of the posterior sigma, the Spearman
    rank correlation of ``mu^2 / sigma^2`` with ``|mu|`` (1 = density pruning ranks exactly like
    magnitude pruning), and KL per parameter (prior of the layers)."""
    from scipy.stats import spearmanr

    layers = V.bayes_layers(bayes)
    sig = torch.cat([layer.weight_sigma.reshape(-1) for layer in layers]).double().cpu()
    mu = torch.cat([layer.weight_mu.reshape(-1) for layer in layers]).double().cpu()
    q25, q50, q75 = (float(v) for v in torch.quantile(sig, torch.tensor([0.25, 0.5, 0.75], dtype=sig.dtype)))
    rc = spearmanr((mu**2 / sig**2).numpy(), mu.abs().numpy()).statistic
    n = sum(p.numel() for p in V.to_deterministic(bayes).parameters())
    return dict(median_sigma=q50, sigma_q25=q25, sigma_q75=q75, sigma_iqr=q75 - q25, rank_corr=float(rc),
                kl_per_param=float(V.kl_total(bayes)) / n)


@torch.no_grad()
def evidence_terms(bayes: nn.Module, X: torch.Tensor, y: torch.Tensor, lam: float, n_train: int,
                   seed: int = 0) -> dict:
    """The generalised evidence per training example at ``lam``, ``E_q log p(y|x, w) - lam KL / n_train``,
    with the expected log-likelihood estimated on ``(X, y)`` from one draw of ``q`` (local
    reparameterisation if the layers use it).  Returns ``loglik`` (mean per example), ``kl_per_example``
    (``KL / n_train``) and ``evidence``."""
    was = bayes.training
    bayes.train()
    torch.manual_seed(seed)
    dev = next(bayes.parameters()).device
    ll = -float(sum(F.cross_entropy(bayes(X[i:i + 4096].to(dev)), y[i:i + 4096].to(dev), reduction="sum")
                    for i in range(0, len(X), 4096))) / len(X)
    bayes.train(was)
    kl = float(V.kl_total(bayes)) / n_train
    return dict(loglik=ll, kl_per_example=kl, evidence=ll - lam * kl)


def scale_inputs(data, mode: str):
    """``data`` with pixels in [0, 1] (``"unit"``, unchanged) or mapped to [-1, 1] (``"symmetric"``:
    ``2x - 1``, the authors' ``Normalize((0.5,), (0.5,))``)."""
    import dataclasses

    if mode == "unit":
        return data
    if mode != "symmetric":
        raise ValueError(f"input scaling must be 'unit' or 'symmetric', got {mode!r}")
    return dataclasses.replace(data, X_train=2 * data.X_train - 1, X_test=2 * data.X_test - 1)


# --- the experiment ---------------------------------------------------------------------------


def hyper_lambdas(params: dict) -> list[float]:
    """The lambdas of the grid that the hypernetworks cover (those in ``[lambda_min, lambda_max]``)."""
    return [lam for lam in params["lambdas"] if params["lambda_min"] <= lam <= params["lambda_max"]]


def _sync(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_params(params: dict) -> None:
    """Checks that involve several parameters (each one alone is validated by the profile)."""
    from .reports import ProfileError

    if not params["lambda_min"] < params["lambda_max"]:
        raise ProfileError("variational_complexity: need lambda_min < lambda_max, got "
                           f"{params['lambda_min']} and {params['lambda_max']}")
    if not hyper_lambdas(params):
        raise ProfileError("variational_complexity: no value of `lambdas` lies in [lambda_min, lambda_max]")
    if not any(math.isclose(f, params["claim_fraction"]) for f in params["fractions"]):
        raise ProfileError(f"variational_complexity: claim_fraction = {params['claim_fraction']} must be one of "
                           f"`fractions` {params['fractions']}")
    if params["fractions"][0] != 0.0:
        raise ProfileError("variational_complexity: `fractions` must start at 0 (the unpruned network)")
    if params["prior_variance"] not in params["prior_variances"]:
        raise ProfileError(f"variational_complexity: prior_variance = {params['prior_variance']} must be one of "
                           f"`prior_variances` {params['prior_variances']} (the sweep's reference)")
    if params["sweep_lambda"] not in params["lambdas"]:
        raise ProfileError(f"variational_complexity: sweep_lambda = {params['sweep_lambda']} must be one of "
                           f"`lambdas` {params['lambdas']}")


def _warm_up():
    """Import what the first optimiser step imports (``torch.optim`` pulls in ``torch._dynamo``, about
    a second), so that this one-off cost is not charged to the first timed model."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    (w**2).sum().backward()
    opt.step()


def configure_threads(params: dict) -> int:
    """``torch.set_num_threads(params["cpu_threads"])`` unless it is 0 (torch's default); returns the
    number of threads now in use.  Call it once, before any compute, so that the provenance footer
    records the thread count the run used."""
    return set_cpu_threads(params["cpu_threads"])


def _train_kwargs(params: dict, dev) -> dict:
    return dict(batch_size=params["batch_size"], optimizer=params["optimizer"], lr=params["lr"],
                clip=params["grad_clip"], clip_mode=params["clip_mode"], device=str(dev))


def run(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The whole experiment, per seed: separate models for every lambda, the prior-variance sweep,
    both hypernetworks, pruning curves (density and magnitude), the generalised evidence, accuracy
    along a fine lambda grid, counted training work and wall times.

    Returns tidy data frames ``curves`` (method, seed, lam, criterion, stage, fraction, accuracy),
    ``grid`` (method, seed, lam, fraction, accuracy), ``grid_models`` (method, seed, lam, posterior
    summary, evidence terms), ``traces`` (seed, lam, step, accuracy: separate models while training),
    ``timing`` (method, seed, lam, seconds, epochs, steps, passes), ``models`` (method, seed, lam,
    accuracy, posterior summary, evidence terms, final_loss), ``prior_curves`` (seed, prior_variance,
    fraction, accuracy) and ``prior_models`` (seed, prior_variance, accuracy, posterior summary).
    """
    from tqdm import tqdm

    check_params(params)
    dev = resolve_device(params["device"])
    ps = prior_sigma(params)
    fr = params["fractions"]
    rk = params["pruning_ranking"]
    ft = dict(finetune_steps=params["finetune_steps"], finetune_lr=params["finetune_lr"],
              batch_size=params["batch_size"], device=str(dev), ranking=rk)
    tk = _train_kwargs(params, dev)
    lam_h = hyper_lambdas(params)
    grid = [float(v) for v in np.geomspace(params["lambda_min"], params["lambda_max"], params["n_lambda_grid"])]
    out = {k: [] for k in ("curves", "grid", "grid_models", "traces", "timing", "models", "prior_curves",
                           "prior_models")}
    _warm_up()

    def evid(bayes, lam, seed):
        ev = training_subset(ds, params["evidence_n"], seed)
        return evidence_terms(bayes, ev.X_train, ev.y_train, lam, len(ds.X_train), seed)

    def record(method, seed, lam, bayes, final_loss):
        # the magnitude baseline is compared on the separate models only
        c = prune_curve(bayes, ds, fr, seed, criteria=CRITERIA if method == "separate" else ("density",), **ft)
        out["curves"].extend(dict(method=method, seed=seed, lam=lam, **r) for r in c.to_dict("records"))
        acc0 = c[(c.criterion == "density") & (c.stage == "one-shot") & (c.fraction == fr[0])].accuracy.iloc[0]
        out["models"].append(dict(method=method, seed=seed, lam=lam, accuracy=acc0, final_loss=final_loss,
                                  **posterior_summary(bayes), **evid(bayes, lam, seed)))

    jobs = [(s, m) for s in range(params["n_seeds"]) for m in (*METHODS, "prior")]
    bar = tqdm(jobs, desc="seed x method", disable=not progress)
    ds, sweep_model = None, None
    for s, method in bar:
        seed = params["seed"] + s
        if method == "separate":
            ds = scale_inputs(D.load_mnist(n_train=params["n_train"], n_test=params["n_test"], seed=seed),
                              params["input_scaling"])
            for lam in params["lambdas"]:
                seed_everything(seed)  # every lambda starts from the same initialisation
                model = bayes_mlp(params)
                _sync(dev)
                t0 = time.perf_counter()
                hist, steps, trace = train_separate(model, ds, lam, epochs=params["epochs"], seed=seed,
                                                    eval_every=params["eval_every_steps"], **tk)
                _sync(dev)
                sec = time.perf_counter() - t0
                out["traces"].extend(dict(seed=seed, lam=lam, step=st, accuracy=a) for st, a in trace)
                out["timing"].append(dict(method=method, seed=seed, lam=lam, seconds=sec, epochs=params["epochs"],
                                          steps=steps, passes=steps))
                record(method, seed, lam, model, hist.loss[-1])
                if lam == params["sweep_lambda"]:
                    sweep_model = model
            continue
        if method == "prior":
            for pv in params["prior_variances"]:
                if pv == params["prior_variance"]:
                    model = sweep_model  # the separate model at sweep_lambda has this prior
                else:
                    seed_everything(seed)
                    model = bayes_mlp({**params, "prior_variance": pv})
                    train_separate(model, ds, params["sweep_lambda"], epochs=params["epochs"], seed=seed, **tk)
                c = prune_curve(model, ds, fr, seed, **{**ft, "finetune_steps": 0})
                out["prior_curves"].extend(dict(seed=seed, prior_variance=pv, **r) for r in c.to_dict("records"))
                out["prior_models"].append(dict(seed=seed, prior_variance=pv, accuracy=c.accuracy.iloc[0],
                                                **posterior_summary(model)))
            continue
        seed_everything(seed)
        base = bayes_mlp(params)  # the same initial means and variances as the separate models
        other = bayes_mlp(params) if method == "linear" else None  # an independent second endpoint
        hyper = make_hyper(method, base, params, seed, other=other)
        _sync(dev)
        t0 = time.perf_counter()
        hist = train_hypernet(hyper, ds, epochs=params["hyper_epochs"], lr=params["lr"],
                              batch_size=params["batch_size"], lambdas_per_batch=params["lambdas_per_batch"],
                              prior_sigma=ps, optimizer=params["optimizer"], clip=params["grad_clip"],
                              clip_mode=params["clip_mode"], seed=seed, device=str(dev))
        _sync(dev)
        out["timing"].append(dict(method=method, seed=seed, lam=float("nan"), seconds=time.perf_counter() - t0,
                                  epochs=params["hyper_epochs"], steps=hist.steps,
                                  passes=hist.steps * params["lambdas_per_batch"]))
        for lam in lam_h:
            record(method, seed, lam, hyper.model_at(lam), hist.loss[-1])
        for lam in grid:
            bayes = hyper.model_at(lam)
            det, sc = V.to_deterministic(bayes), weight_scores(bayes)
            for f in (0.0, params["claim_fraction"]):
                acc = quality(prune_model(det, sc, f, seed, rk), ds.X_test, ds.y_test, ds.task)
                out["grid"].append(dict(method=method, seed=seed, lam=lam, fraction=f, accuracy=acc))
            out["grid_models"].append(dict(method=method, seed=seed, lam=lam, **posterior_summary(bayes),
                                           **evid(bayes, lam, seed)))
    return {k: pd.DataFrame(v) for k, v in out.items()}


def describe(params: dict) -> str:
    sub = params["n_train"] < 60000 or params["n_test"] < 10000
    opt = ("Adam" if params["optimizer"] == "adam" else "plain SGD")
    clip = (f"gradients clipped to {params['grad_clip']:g} ({'each entry' if params['clip_mode'] == 'value' else 'global norm'})"
            if params["grad_clip"] > 0 else "no gradient clipping")
    return (f"MNIST ({params['n_train']} training and {params['n_test']} test images"
            f"{', a new random subsample per seed' if sub else ''}; pixels "
            f"{'mapped to [-1, 1]' if params['input_scaling'] == 'symmetric' else 'in [0, 1]'}), "
            f"network 784-{'-'.join(map(str, params['hidden']))}-10 (ReLU), prior N(0, {params['prior_variance']}), "
            f"initial σ = {params['init_sigma']}, {'local reparameterisation' if params['local_reparam'] else 'weight sampling'}; "
            f"{opt} (lr {params['lr']:g}, batch {params['batch_size']}), {clip}; {params['epochs']} epochs per separate "
            f"model and {params['hyper_epochs']} per hypernetwork ({params['lambdas_per_batch']} values of λ per batch, "
            f"log-uniform on [{params['lambda_min']:g}, {params['lambda_max']:g}]); linear hypernetwork "
            f"{'between two independently initialised endpoints' if params['linear_init'] == 'endpoints' else 'with b2 = 0 at the start'}; "
            f"low-rank hypernetwork of rank {params['rank']} with {params['embed_dim']} "
            f"{'ReLU units' if params['lowrank_features'] == 'relu' else 'tanh features'} f(λ); pruning "
            f"{'the same fraction of each layer' if params['pruning_ranking'] == 'per_layer' else 'ranked globally over the layers'}; "
            f"fine-tuning {params['finetune_steps']} SGD steps; prior sweep: variances "
            f"{', '.join(map(str, params['prior_variances']))} at λ = {params['sweep_lambda']:g}; {params['n_seeds']} seed(s)")


def protocol_table(params: dict) -> pd.DataFrame:
    """The protocol of this run next to the deck's and the authors' published code's (issue 13)."""
    P = params
    rows = [
        ("optimizer", "SGD (slide 'Параметры эксперимента', item 1)", "Adam, lr 5·10⁻⁴ (the MNIST notebooks)",
         f"{P['optimizer']}, lr {P['lr']:g}"),
        ("gradient clipping", "not stated", "each gradient entry to [-1, 1] (clip_grad_value_)",
         f"{P['grad_clip']:g} ({P['clip_mode']})" if P["grad_clip"] > 0 else "none"),
        ("epochs", "50 (item 2)", "25 (the MNIST base_net notebook)", f"{P['epochs']} (separate), {P['hyper_epochs']} (hypernetworks)"),
        ("input scaling", "not stated", "Normalize(0.5, 0.5): pixels in [-1, 1]", P["input_scaling"]),
        ("prior variance", "0.1 (item 3)", "prior σ 1.0", f"{P['prior_variance']:g}; sweep {P['prior_variances']}"),
        ("network", "784-100-10 (slide text)", "hidden 50 (the MNIST base_net notebook)", f"784-{'-'.join(map(str, P['hidden']))}-10"),
        ("λ of the separate models", "figure: 0, 0.01, 0.1, 1, 10, 100", "0.001 ... 100",
         ", ".join(f"{v:g}" for v in P["lambdas"])),
        ("hypernetwork λ range", "not stated", "10^U(-2, 2)", f"log-uniform [{P['lambda_min']:g}, {P['lambda_max']:g}]"),
        ("λ per batch (hypernetworks)", "5 (item 5)", "sampled per batch", str(P["lambdas_per_batch"])),
        ("linear hypernetwork", "G = λ b2 + b3", "interpolation between two Xavier-initialised endpoints",
         P["linear_init"]),
        ("low-rank features f(λ)", "50 ReLU units (item 4)", "Linear(1, hidden) + ReLU", f"{P['embed_dim']} {P['lowrank_features']}"),
        ("pruning", "relative density", "μ²/σ², the same fraction per layer", P["pruning_ranking"]),
        ("seeds", "one run (more planned, 'Выводы' item 4)", "5 starts", str(P["n_seeds"])),
    ]
    return pd.DataFrame(rows, columns=["setting", "the deck", "the authors' code", "this run"]).set_index("setting")


# --- tables, claims, discussion ---------------------------------------------------------------


def model_table(models: pd.DataFrame) -> pd.DataFrame:
    """Per model and lambda, mean over seeds: unpruned test accuracy (%), the posterior sigma of the
    weights (median and interquartile range), the rank correlation of ``mu^2/sigma^2`` with ``|mu|``,
    KL per parameter and the generalised evidence per training example."""
    return (models.assign(accuracy=100 * models.accuracy)
            .groupby(["method", "lam"], sort=False)[["accuracy", "median_sigma", "sigma_iqr", "rank_corr",
                                                     "kl_per_param", "evidence"]].mean()
            .rename(columns={"accuracy": "test accuracy (%)", "median_sigma": "median σ",
                             "sigma_iqr": "IQR of σ", "rank_corr": "rank corr. μ²/σ² vs |μ|",
                             "kl_per_param": "KL per parameter (nats)",
                             "evidence": "generalised evidence per example"})
            .rename_axis(["model", "λ"]).round(4))


def density_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``curves`` pruned by relative density (all stages)."""
    return curves[curves.criterion == "density"] if "criterion" in curves else curves


def drop_curves(curves: pd.DataFrame, stage: str = "one-shot") -> pd.DataFrame:
    """Density ``curves`` of one stage with a column ``drop``: unpruned accuracy minus accuracy (same
    model and seed)."""
    c = density_curves(curves)
    c = c[c.stage == stage].copy()
    ref = c[c.fraction == c.fraction.min()].set_index(["method", "lam", "seed"]).accuracy
    c["drop"] = ref.reindex(list(zip(c.method, c.lam, c.seed))).to_numpy() - c.accuracy.to_numpy()
    return c


def drop_at(curves: pd.DataFrame, fraction: float, method: str = "separate", stage: str = "one-shot",
            criterion: str = "density") -> pd.DataFrame:
    """Accuracy drop in percentage points, unpruned minus ``fraction`` removed, per (lam, seed)."""
    c = curves[(curves.method == method) & (curves.stage == stage)]
    if "criterion" in c:
        c = c[c.criterion == criterion]
    base = c[c.fraction == c.fraction.min()].set_index(["lam", "seed"]).accuracy
    at = c[np.isclose(c.fraction, fraction)].set_index(["lam", "seed"]).accuracy
    if at.empty:
        raise ValueError(f"fraction {fraction} is not in the pruning grid")
    return (100 * (base - at)).rename("drop_pp").reset_index()


def curve_auc_pp(curves: pd.DataFrame, stage: str = "one-shot", criterion: str = "density") -> pd.DataFrame:
    """Area under accuracy (%) vs fraction removed, normalised by the fraction range, per (method, lam, seed)."""
    c = curves[curves.stage == stage]
    if "criterion" in c:
        c = c[c.criterion == criterion]
    rows = []
    for (m, lam, s), g in c.groupby(["method", "lam", "seed"]):
        g = g.sort_values("fraction")
        rows.append(dict(method=m, lam=lam, seed=s, auc_pp=100 * pruning.curve_auc(g.fraction, g.accuracy)))
    return pd.DataFrame(rows)


def density_vs_magnitude_table(results: dict, params: dict, method: str = "separate") -> pd.DataFrame:
    """Per lambda (mean over seeds): the spread of sigma, the rank correlation of ``mu^2/sigma^2`` with
    ``|mu|``, the accuracy drop at ``claim_fraction`` by density and by magnitude, and the difference
    of the areas under the two one-shot curves (density minus magnitude, pp)."""
    cf = params["claim_fraction"]
    curves, models = results["curves"], results["models"]
    m = models[models.method == method].groupby("lam")[["sigma_q25", "sigma_q75", "rank_corr"]].mean()
    dd = drop_at(curves, cf, method, criterion="density").groupby("lam").drop_pp.mean()
    dm = drop_at(curves, cf, method, criterion="magnitude").groupby("lam").drop_pp.mean()
    ad = curve_auc_pp(curves[curves.method == method], criterion="density").groupby("lam").auc_pp.mean()
    am = curve_auc_pp(curves[curves.method == method], criterion="magnitude").groupby("lam").auc_pp.mean()
    out = pd.DataFrame({"σ, 25% quantile": m.sigma_q25, "σ, 75% quantile": m.sigma_q75,
                        "rank corr. μ²/σ² vs |μ|": m.rank_corr,
                        f"drop at {100 * cf:.0f}%, density (pp)": dd, f"drop at {100 * cf:.0f}%, magnitude (pp)": dm,
                        "area: density − magnitude (pp)": ad - am})
    return out.rename_axis("λ").round(4)


def sensitivity(results: dict, params: dict) -> pd.DataFrame:
    """λ-sensitivity per method and seed: ``log10`` of the ratio of KL per parameter at the smallest to
    that at the largest covered λ (positive: the model gets simpler as λ grows), the same ratio of the
    median sigma (``log10 sigma(λ_max) / sigma(λ_min)``) and the accuracy range (pp) over the covered λ."""
    lam_h = hyper_lambdas(params)
    lo, hi = lam_h[0], lam_h[-1]
    m = results["models"]
    rows = []
    for (meth, seed), g in m[m.lam.isin(lam_h)].groupby(["method", "seed"], sort=False):
        g = g.set_index("lam")
        rows.append(dict(method=meth, seed=seed,
                         kl_decades=float(np.log10(g.kl_per_param[lo] / g.kl_per_param[hi])),
                         sigma_decades=float(np.log10(g.median_sigma[hi] / g.median_sigma[lo])),
                         acc_range_pp=float(100 * (g.accuracy.max() - g.accuracy.min()))))
    return pd.DataFrame(rows)


def sensitivity_table(results: dict, params: dict) -> pd.DataFrame:
    lam_h = hyper_lambdas(params)
    s = sensitivity(results, params).groupby("method", sort=False)[["kl_decades", "sigma_decades",
                                                                     "acc_range_pp"]].mean()
    s.index = [METHOD_LABELS[m] for m in s.index]
    return s.rename(columns={
        "kl_decades": f"log10 KL(λ={fmt_lam(lam_h[0])}) / KL(λ={fmt_lam(lam_h[-1])})",
        "sigma_decades": f"log10 σ(λ={fmt_lam(lam_h[-1])}) / σ(λ={fmt_lam(lam_h[0])})",
        "acc_range_pp": "accuracy range over λ (pp)"}).rename_axis("model").round(3)


def cost_to_quality(results: dict, params: dict) -> pd.DataFrame:
    """Counted training work per hypernetwork and seed, in network passes (one forward and backward
    pass of the base network on one minibatch): the hypernetwork's own, the separate models' full
    budget for the covered λ, and the passes the separate models needed to reach the hypernetwork's
    unpruned test accuracy at each covered λ (evaluated every ``eval_every_steps``; a model that never
    reaches it is charged its full budget, which favours the hypernetwork's side of the comparison
    no more than the budget allows), with the number of λ where that happened (``censored``)."""
    lam_h = hyper_lambdas(params)
    t, m, tr = results["timing"], results["models"], results["traces"]
    rows = []
    for meth in ("linear", "lowrank"):
        for seed in sorted(t.seed.unique()):
            hp = int(t[(t.method == meth) & (t.seed == seed)].passes.iloc[0])
            sep_t = t[(t.method == "separate") & (t.seed == seed) & t.lam.isin(lam_h)]
            full = int(sep_t.passes.sum())
            reach, censored = 0, 0
            for lam in lam_h:
                target = float(m[(m.method == meth) & (m.seed == seed) & (m.lam == lam)].accuracy.iloc[0])
                trace = tr[(tr.seed == seed) & (tr.lam == lam)].sort_values("step")
                st = steps_to_reach(list(zip(trace.step, trace.accuracy)), target)
                if st is None:
                    censored += 1
                    st = int(sep_t[sep_t.lam == lam].passes.iloc[0])
                reach += st
            rows.append(dict(method=meth, seed=seed, hyper_passes=hp, separate_full_passes=full,
                             separate_to_quality_passes=reach, censored=censored))
    return pd.DataFrame(rows)


def cost_table(results: dict, params: dict) -> pd.DataFrame:
    c = cost_to_quality(results, params).groupby("method", sort=False).mean(numeric_only=True).drop(columns="seed")
    c.index = [METHOD_LABELS[m] for m in c.index]
    return c.rename(columns={"hyper_passes": "hypernetwork", "separate_full_passes": "separate, full budget",
                             "separate_to_quality_passes": "separate, to the hypernetwork's accuracy",
                             "censored": "λ never reaching it (mean)"}).rename_axis("network passes").round(1)


def timing_table(timing: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Training wall time and counted work per seed (mean over seeds): all separate models, the
    separate models for the lambdas the hypernetworks cover, and each hypernetwork."""
    lam_h = hyper_lambdas(params)
    sep = timing[timing.method == "separate"]
    rows = [dict(what=f"separate models, all {len(params['lambdas'])} λ of the grid",
                 models=len(params["lambdas"]), epochs_each=params["epochs"],
                 passes=sep.groupby("seed").passes.sum().mean(), seconds=sep.groupby("seed").seconds.sum().mean()),
            dict(what=f"separate models, the {len(lam_h)} λ a hypernetwork covers", models=len(lam_h),
                 epochs_each=params["epochs"], passes=sep[sep.lam.isin(lam_h)].groupby("seed").passes.sum().mean(),
                 seconds=sep[sep.lam.isin(lam_h)].groupby("seed").seconds.sum().mean())]
    for m in ("linear", "lowrank"):
        h = timing[timing.method == m]
        rows.append(dict(what=METHOD_LABELS[m] + " (a continuum of λ)", models=1, epochs_each=params["hyper_epochs"],
                         passes=h.passes.mean(), seconds=h.seconds.mean()))
    return (pd.DataFrame(rows).set_index("what").rename_axis("training").round({"seconds": 1, "passes": 0})
            .rename(columns={"epochs_each": "epochs each", "passes": "network passes", "seconds": "wall time (s)"}))


def prior_table(results: dict, params: dict) -> pd.DataFrame:
    """The prior-variance sweep (mean over seeds): unpruned accuracy, sigma, KL per parameter and the
    one-shot density-pruning drop at ``claim_fraction``."""
    cf = params["claim_fraction"]
    pm, pc = results["prior_models"], results["prior_curves"]
    pc = pc[(pc.criterion == "density") & (pc.stage == "one-shot")]
    base = pc[pc.fraction == 0].set_index(["prior_variance", "seed"]).accuracy
    at = pc[np.isclose(pc.fraction, cf)].set_index(["prior_variance", "seed"]).accuracy
    drop = (100 * (base - at)).groupby(level="prior_variance").mean()
    t = pm.groupby("prior_variance")[["accuracy", "median_sigma", "sigma_iqr", "kl_per_param"]].mean()
    t["accuracy"] *= 100
    t[f"drop at {100 * cf:.0f}% (pp)"] = drop
    return t.rename(columns={"accuracy": "test accuracy (%)", "median_sigma": "median σ", "sigma_iqr": "IQR of σ",
                             "kl_per_param": "KL per parameter (nats)"}).rename_axis("prior variance").round(4)


def fmt_lam(lam: float) -> str:
    return f"{lam:g}"


DECK_FIGURE = "slide 'График зависимости точности классификации от процента удалённых параметров' and 'Выводы', item 1"
DECK_HYPER = "slides 'Сравнение базовой модели с ... гиперсетью' and 'Выводы', item 2"
DECK_SIMILAR = "slides 'Сравнение базовой модели с ... гиперсетью' and 'Выводы', items 2-3"


def claims(results: dict, params: dict) -> list:
    """The report's claims (kind ``report``), our expectations (``ours``), our per-seed measurements and
    verdicts (see :mod:`paramspace.claims`)."""
    from .claims import paired_claim

    curves, models = results["curves"], results["models"]
    cf, tol, sim = params["claim_fraction"], params["drop_tol_pp"], params["similar_tol_pp"]
    prof = params["profile"]
    out = []
    drops = drop_at(curves, cf)
    for lam in params["lambdas"]:
        d = drops[drops.lam == lam].sort_values("seed")
        if lam not in (0.0, 0.1):
            out.append(paired_claim(
                f"λ = {fmt_lam(lam)}, separate model: removing {100 * cf:.0f}% of the weights by density "
                f"costs no significant accuracy (number: minus the drop in pp; our tolerance {tol:g} pp)",
                "≈80% removable without significant loss, for every λ except 0 and 0.1 (figure)",
                (-d.drop_pp).to_numpy(), d.seed.to_numpy(), prof, fmt="{:+.2f} pp", kind="report",
                deck=DECK_FIGURE, tolerance=tol))
        else:
            out.append(paired_claim(
                f"λ = {fmt_lam(lam)}, separate model: removing {100 * cf:.0f}% of the weights by density "
                f"costs a significant loss, more than {tol:g} pp (number: drop minus {tol:g} pp)",
                "the exception: λ = 0 and 0.1 lose accuracy (figure)", (d.drop_pp - tol).to_numpy(),
                d.seed.to_numpy(), prof, fmt="{:+.2f} pp", kind="report", deck=DECK_FIGURE))
    exc = [lam for lam in params["lambdas"] if lam in (0.0, 0.1)]
    rest = [lam for lam in params["lambdas"] if lam not in (0.0, 0.1)]
    if exc and rest:
        per = drops.pivot_table(index="seed", columns="lam", values="drop_pp")
        diff = per[exc].mean(axis=1) - per[rest].mean(axis=1)
        out.append(paired_claim(
            f"The exception is an exception: at {100 * cf:.0f}% removed by density, the separate models with "
            f"λ ∈ {{{', '.join(map(fmt_lam, exc))}}} lose more accuracy than those with the other λ (number: mean drop "
            f"of the former minus that of the latter, pp)",
            "λ = 0 and 0.1 lose accuracy, the other λ do not (figure)", diff.to_numpy(), diff.index.to_numpy(),
            prof, fmt="{:+.2f} pp", kind="report", deck=DECK_FIGURE))
    lam_h = hyper_lambdas(params)
    lams = ", ".join(map(fmt_lam, lam_h))
    auc = curve_auc_pp(curves).pivot_table(index=["lam", "seed"], columns="method", values="auc_pp")
    for m in ("linear", "lowrank"):
        a = auc.loc[lam_h]
        gap = (a[m] - a["separate"]).abs().groupby(level="seed").mean()
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} gives pruning curves similar to the separate models: mean over "
            f"λ ∈ {{{lams}}} of |difference of the areas under the one-shot curves| (number: minus that mean, pp; "
            f"our tolerance {sim:g} pp)",
            "similar results, similar behaviour under pruning (figures)", (-gap).to_numpy(), gap.index.to_numpy(),
            prof, fmt="{:+.2f} pp", kind="report", deck=DECK_SIMILAR, tolerance=sim))
    acc = models.pivot_table(index=["lam", "seed"], columns="method", values="accuracy").loc[lam_h]
    for m in ("linear", "lowrank"):
        loss = (100 * (acc["separate"] - acc[m])).groupby(level="seed").mean()
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} loses some quality: unpruned test accuracy of the separate model minus "
            f"the hypernetwork's, mean over λ ∈ {{{lams}}} (pp)",
            "“despite the loss in quality” (Выводы, item 2)", loss.to_numpy(), loss.index.to_numpy(), prof,
            fmt="{:+.2f} pp", kind="report", deck="slide 'Выводы', item 2"))
    cost = cost_to_quality(results, params)
    for m in ("linear", "lowrank"):
        c = cost[cost.method == m].sort_values("seed")
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} costs less than separate models of the same quality: 1 − (its network passes) "
            f"/ (passes the separate models for λ ∈ {{{lams}}} needed to reach its unpruned accuracy) "
            f"[counted work, not wall time; at equal epochs the two budgets are equal by construction, "
            f"{params['lambdas_per_batch']} λ per batch = {len(lam_h)} models]",
            "similar results at lower computational cost (Выводы, item 2)",
            (1 - c.hyper_passes / c.separate_to_quality_passes).to_numpy(), c.seed.to_numpy(), prof,
            fmt="{:+.2f}", kind="report", deck="slide 'Выводы', item 2"))
    sens = sensitivity(results, params)
    sep_s = sens[sens.method == "separate"].set_index("seed").kl_decades
    for m in ("linear", "lowrank"):
        h = sens[sens.method == m].set_index("seed").kl_decades.reindex(sep_s.index)
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} learned complexity control: its λ-sensitivity, log10 of KL per parameter at "
            f"λ = {fmt_lam(lam_h[0])} over that at λ = {fmt_lam(lam_h[-1])}, is at least half the separate models' "
            f"(number: hypernetwork's minus half the separate models')",
            "— (implied by the method: G(λ) should track the optimum for each λ)",
            (h - 0.5 * sep_s).to_numpy(), sep_s.index.to_numpy(), prof, fmt="{:+.2f}", kind="ours"))
    dvm = []
    for lam in params["lambdas"]:
        a_d = curve_auc_pp(curves[(curves.method == "separate") & (curves.lam == lam)], criterion="density")
        a_m = curve_auc_pp(curves[(curves.method == "separate") & (curves.lam == lam)], criterion="magnitude")
        dvm.append((lam, a_d.set_index("seed").auc_pp - a_m.set_index("seed").auc_pp))
    best = max(dvm, key=lambda t: t[1].mean())
    allv = pd.concat([v for _, v in dvm], axis=1).mean(axis=1)
    out.append(paired_claim(
        f"Density pruning beats magnitude pruning of the same separate models: area under the one-shot curve, "
        f"density minus magnitude, mean over all λ (pp; largest at λ = {fmt_lam(best[0])}: "
        f"{best[1].mean():+.2f} pp)", "— (not stated; the reason to prune by density)", allv.to_numpy(),
        allv.index.to_numpy(), prof, fmt="{:+.2f} pp", kind="ours"))
    return out


def discussion_markdown(results: dict, ledger: list, params: dict) -> str:
    """Bullets with this run's numbers for the discussion (so the text never states stale numbers)."""
    curves, models = results["curves"], results["models"]
    cf = params["claim_fraction"]
    d = drop_at(curves, cf).groupby("lam").drop_pp.agg(["mean", "std"])
    sep = models[models.method == "separate"].groupby("lam")[["accuracy", "median_sigma", "sigma_iqr",
                                                               "rank_corr"]].mean()
    lines = ["* **Separate models, one-shot.** Accuracy drop after removing "
             f"{100 * cf:.0f}% of the weights by density (mean ± sd over seeds, percentage points): "
             + "; ".join(f"λ = {fmt_lam(lam)}: {r['mean']:.2f} ± {0 if np.isnan(r['std']) else r['std']:.2f}"
                         for lam, r in d.iterrows()) + "."]
    dm = drop_at(curves, cf, criterion="magnitude").groupby("lam").drop_pp.mean()
    lines.append(f"* **Magnitude pruning** of the same models loses, at {100 * cf:.0f}%: "
                 + "; ".join(f"λ = {fmt_lam(lam)}: {v:.2f}" for lam, v in dm.items()) + " pp.")
    lines.append("* **Posterior width and ranking**: "
                 + "; ".join(f"λ = {fmt_lam(lam)}: {100 * r.accuracy:.1f}%, median σ {r.median_sigma:.3g} "
                             f"(IQR {r.sigma_iqr:.3g}), rank corr. {r.rank_corr:.3f}"
                             for lam, r in sep.iterrows()) + ".")
    if params["finetune_steps"] > 0:
        dft = drop_at(curves, cf, stage="fine-tuned").groupby("lam").drop_pp.mean()
        lines.append(f"* **After fine-tuning** ({params['finetune_steps']} SGD steps), the drop at {100 * cf:.0f}% is "
                     + "; ".join(f"λ = {fmt_lam(lam)}: {v:.2f}" for lam, v in dft.items()) + " pp.")
    for m in ("linear", "lowrank"):
        dh = drop_at(curves, cf, method=m).groupby("lam").drop_pp.mean()
        hm = models[models.method == m].groupby("lam")[["accuracy", "median_sigma"]].mean()
        lines.append(f"* **{METHOD_LABELS[m].capitalize()}**: unpruned accuracy "
                     + ", ".join(f"{100 * a:.1f}%" for a in hm.accuracy) + ", median σ "
                     + ", ".join(f"{v:.3g}" for v in hm.median_sigma) + f" and drop at {100 * cf:.0f}% "
                     + ", ".join(f"{v:.2f}" for v in dh) + " pp for λ = "
                     + ", ".join(map(fmt_lam, hm.index)) + ".")
    sens = sensitivity(results, params).groupby("method", sort=False).kl_decades.mean()
    lines.append("* **λ-sensitivity** (decades by which the KL per parameter falls over the covered λ): "
                 + "; ".join(f"{METHOD_LABELS[m]} {v:.2f}" for m, v in sens.items()) + ".")
    cost = cost_to_quality(results, params).groupby("method", sort=False).mean(numeric_only=True)
    lines.append("* **Counted work** (network passes per seed): "
                 + "; ".join(f"{METHOD_LABELS[m]} {r.hyper_passes:.0f}, against {r.separate_to_quality_passes:.0f} "
                             f"for the separate models to reach its accuracy ({r.separate_full_passes:.0f} for their "
                             f"full budget; {r.censored:.1f} λ never reached it)" for m, r in cost.iterrows()) + ".")
    pt = prior_table(results, params)
    lines.append(f"* **Prior sweep** (λ = {fmt_lam(params['sweep_lambda'])}): "
                 + "; ".join(f"variance {pv:g}: accuracy {r.iloc[0]:.1f}%, median σ {r.iloc[1]:.3g}, "
                             f"KL per parameter {r.iloc[3]:.3g}, drop at {100 * cf:.0f}% {r.iloc[4]:.2f} pp"
                             for pv, r in pt.iterrows()) + ".")
    counted = [c for c in ledger if c.counted]
    counts = pd.Series([c.verdict for c in counted]).value_counts()
    lines.append("* **Verdicts of the report's claims**: " + ", ".join(f"{n} {v}" for v, n in counts.items())
                 + f" of {len(counted)}; our own rows ({sum(c.kind != 'report' for c in ledger)}) are not counted.")
    return "\n".join(lines)


TOLERANCES = {
    "drop_tol_pp": "largest accuracy drop (pp) at `claim_fraction` that still counts as “no significant loss”; "
                   "for λ = 0 and 0.1 a drop above it counts as the claimed significant loss",
    "similar_tol_pp": "largest mean absolute difference of the areas under the one-shot curves (pp) that counts as “similar”",
    "claim_fraction": "the fraction of weights removed at which the pruning claims are checked (the deck: ≈80%)",
}


# --- figures and page tables ------------------------------------------------------------------


def table_markdown(df: pd.DataFrame) -> str:
    """A data frame as a Markdown table with headers for every column (the index included)."""
    d = df.reset_index() if df.index.name or any(df.index.names) else df.copy()
    esc = lambda v: v.replace("|", "\\|") if isinstance(v, str) else v  # noqa: E731
    d.columns = [esc(str(c)) for c in d.columns]
    for c in d.columns:
        if not pd.api.types.is_numeric_dtype(d[c]):
            d[c] = d[c].map(esc)
    return d.to_markdown(index=False)


def magnitude_figure(curves: pd.DataFrame, lambdas, method: str = "separate"):
    """One panel per λ: one-shot test accuracy vs % of weights removed by relative density and by
    magnitude |μ| (mean ± sd over seeds) for the models of ``method``."""
    import matplotlib.pyplot as plt

    c = curves[(curves.method == method) & (curves.stage == "one-shot")]
    lams = [lam for lam in lambdas if lam in set(c.lam)]
    ncols = min(3, len(lams))
    nrows = -(-len(lams) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    colours = {"density": "#d62728", "magnitude": "#7f7f7f"}
    for ax, lam in zip(axes.flat, lams):
        for crit, col in colours.items():
            g = c[(c.lam == lam) & (c.criterion == crit)].groupby("fraction").accuracy.agg(["mean", "std"])
            sd = g["std"].fillna(0)
            ax.plot(100 * g.index, 100 * g["mean"], color=col, marker="o", ms=3,
                    label="relative density μ²/σ²" if crit == "density" else "magnitude |μ|")
            ax.fill_between(100 * g.index, 100 * (g["mean"] - sd), 100 * (g["mean"] + sd), color=col, alpha=0.2)
        ax.set_title(f"λ = {fmt_lam(lam)}")
        ax.tick_params(labelleft=True)
    for ax in axes[-1]:
        ax.set_xlabel("weights removed (%)")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in list(axes.flat)[len(lams):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, loc="lower left")
    fig.tight_layout()
    return fig


def evidence_figure(results: dict, lambdas):
    """Against λ (log axis): median posterior σ, KL per parameter, expected log-likelihood per example
    and the generalised evidence per example, for each hypernetwork along the fine grid (mean ± sd over
    seeds) and the separate models at their λ (points; λ = 0 is drawn at the left edge, open marker)."""
    import matplotlib.pyplot as plt

    gm, m = results["grid_models"], results["models"]
    colours = {"linear": "#1f77b4", "lowrank": "#ff7f0e", "separate": "#000000"}
    panels = [("median_sigma", "median posterior σ"), ("kl_per_param", "KL per parameter (nats)"),
              ("loglik", "E_q log p(y|x,w) per example"), ("evidence", "generalised evidence per example")]
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 7.0), sharex=True, squeeze=False)
    pos = [lam for lam in lambdas if lam > 0]
    left = min(pos) / 3 if pos else 1e-3
    for ax, (col, label) in zip(axes.flat, panels):
        for meth in ("linear", "lowrank"):
            g = gm[gm.method == meth].groupby("lam")[col].agg(["mean", "std"])
            sd = g["std"].fillna(0)
            ax.plot(g.index, g["mean"], color=colours[meth], label=METHOD_LABELS[meth])
            ax.fill_between(g.index, g["mean"] - sd, g["mean"] + sd, color=colours[meth], alpha=0.2)
        s = m[m.method == "separate"].groupby("lam")[col].agg(["mean", "std"])
        sp = s[s.index > 0]
        ax.errorbar(sp.index, sp["mean"], yerr=sp["std"].fillna(0), fmt="o", color=colours["separate"], capsize=3,
                    label=METHOD_LABELS["separate"])
        if 0.0 in s.index:
            ax.errorbar([left], [s.loc[0.0, "mean"]], yerr=[0 if np.isnan(s.loc[0.0, "std"]) else s.loc[0.0, "std"]],
                        fmt="o", mfc="white", color=colours["separate"], capsize=3, label="separate model, λ = 0")
        ax.set_xscale("log")
        if col in ("kl_per_param",):
            ax.set_yscale("log")
        if col == "evidence":
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel(label)
    for ax in axes[-1]:
        ax.set_xlabel("complexity coefficient λ (log scale)")
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def prior_figure(results: dict, params: dict):
    """Prior-variance sweep: one-shot accuracy vs % of weights removed by density (left) and the median
    posterior σ with its interquartile range (right), per prior variance (mean over seeds)."""
    import matplotlib.pyplot as plt

    pc, pm = results["prior_curves"], results["prior_models"]
    pc = pc[(pc.criterion == "density") & (pc.stage == "one-shot")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    cmap = plt.get_cmap("plasma")
    pvs = sorted(pc.prior_variance.unique())
    for i, pv in enumerate(pvs):
        g = pc[pc.prior_variance == pv].groupby("fraction").accuracy.agg(["mean", "std"])
        col = cmap(0.8 * i / max(1, len(pvs) - 1))
        a.plot(100 * g.index, 100 * g["mean"], marker="o", ms=3, color=col, label=f"prior variance {pv:g}")
        a.fill_between(100 * g.index, 100 * (g["mean"] - g["std"].fillna(0)), 100 * (g["mean"] + g["std"].fillna(0)),
                       color=col, alpha=0.2)
    a.set(xlabel="weights removed (%)", ylabel="test accuracy (%)",
          title=f"separate models, λ = {fmt_lam(params['sweep_lambda'])}")
    a.legend(frameon=False, loc="lower left")
    s = pm.groupby("prior_variance")[["median_sigma", "sigma_q25", "sigma_q75"]].mean()
    b.errorbar(s.index, s.median_sigma, yerr=[s.median_sigma - s.sigma_q25, s.sigma_q75 - s.median_sigma], fmt="o-",
               color="0.2", capsize=3)
    b.plot(s.index, np.sqrt(s.index), ls="--", color="0.6", label="prior standard deviation")
    b.axhline(params["init_sigma"], ls=":", color="0.6", label="initial σ")
    b.set(xscale="log", yscale="log", xlabel="prior variance", ylabel="posterior σ (median, quartiles)")
    b.legend(frameon=False)
    fig.tight_layout()
    return fig
