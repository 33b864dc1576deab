"""Variational networks with complexity control: the generalised evidence, hypernetworks over lambda, their training, pruning by relative density.

A mean-field Gaussian network (:class:`paramspace.variational.BayesLinear` layers) is trained by
maximising the *generalised evidence*

    E_q log p(D | w) - lambda * KL(q(w) || p(w)),

per training example: minimise ``mean NLL + lambda * KL / n``.  ``lambda`` is the complexity
coefficient: ``lambda = 1`` is the usual ELBO, ``lambda = 0`` drops the KL term (the posterior
variances are then free), large ``lambda`` pulls the posterior towards the prior.

Two ways to get models for many ``lambda``:

* one network trained per ``lambda`` (:func:`train_separate`);
* a **hypernetwork** ``G: lambda -> (mu, rho)`` of every variational parameter of the same network,
  trained once on ``lambda`` drawn log-uniformly from ``[lambda_min, lambda_max]`` (several per
  minibatch, :func:`train_hypernet`): :class:`LinearHyper` (``G(lambda) = t b2 + b3`` per parameter,
  optionally an interpolation between two independently initialised parameter sets) and
  :class:`LowRankHyper` (``G(lambda) = (f(t) U1)(f(t) U2)^T + b1`` per weight matrix, ``f`` one hidden
  layer of ReLU units or a tanh embedding), where ``t = t(lambda)`` is ``log lambda`` rescaled to
  ``[0, 1]`` (:func:`encode_lambda`).

Both train through the collection's one loop, :func:`paramspace.train.fit`.  A model is pruned by the
relative density ``exp(-mu^2 / (2 sigma^2))`` of its weights (the highest density, i.e. the smallest
``|mu| / sigma``, goes first), per layer or globally, or by the magnitude ``|mu|`` (:func:`prune_curve`).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pandas as pd
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from . import pruning, variational as V
from .models import mlp
from .quality import quality
from .train import History, fit, make_optimizer, resolve_device, shuffled_batches, train


# --- the network and its loss -----------------------------------------------------------------


def bayes_mlp(hidden, *, prior_sigma: float, init_sigma: float, local_reparam: bool, in_dim: int = 784,
              out_dim: int = 10) -> nn.Sequential:
    """``in_dim -> hidden -> out_dim`` ReLU network of :class:`~paramspace.variational.BayesLinear` layers
    with the prior ``N(0, prior_sigma^2)`` and initial posterior standard deviation ``init_sigma``."""
    return mlp(in_dim, hidden, out_dim, "relu", linear=V.BayesLinear, prior_sigma=prior_sigma,
               init_sigma=init_sigma, local_reparam=local_reparam)



def generalized_evidence_loss(out: torch.Tensor, y: torch.Tensor, kl: torch.Tensor, lam: float,
                              n_train: int) -> torch.Tensor:
    """Minus the generalised evidence per training example: ``mean NLL + lam * KL / n_train``."""
    if lam < 0 or n_train < 1:
        raise ValueError("lam must be >= 0 and n_train >= 1")
    return F.cross_entropy(out, y) + lam * kl / n_train


def kl_from_params(theta: dict[str, torch.Tensor], prior_sigma: float) -> torch.Tensor:
    """``KL(q || p)`` of a set of generated variational parameters (``*_mu`` with ``*_rho``)."""
    total = None
    for name, mu in theta.items():
        if name.endswith("_mu"):
            sigma = F.softplus(theta[name[:-3] + "_rho"])
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
        theta = self(lam)
        for n, p in m.named_parameters():
            p.data = theta[n].detach().clone().to(p.device)
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
        own = dict(base.named_parameters())
        if other is not None:
            oth = dict(other.named_parameters())
            if {n: tuple(p.shape) for n, p in oth.items()} != self.shapes:
                raise ValueError("`other` must have the base network's architecture")
            b2 = {n: (oth[n].detach() - own[n].detach()).clone() for n in self.names}
        else:
            b2 = {n: torch.zeros_like(own[n].detach()) for n in self.names}
        self.b2 = nn.ParameterDict({self.key(n): nn.Parameter(b2[n]) for n in self.names})
        self.b3 = nn.ParameterDict({self.key(n): nn.Parameter(own[n].detach().clone()) for n in self.names})

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
        own = dict(base.named_parameters())
        if features == "tanh":
            self.embed_a = nn.Parameter(2.0 * torch.randn(embed_dim, generator=g))
            self.embed_c = nn.Parameter(torch.randn(embed_dim, generator=g))
        else:  # nn.Linear(1, embed_dim)'s initialisation: U(-1, 1) for weight and bias (fan-in 1)
            self.embed_a = nn.Parameter(2 * torch.rand(embed_dim, generator=g) - 1)
            self.embed_c = nn.Parameter(2 * torch.rand(embed_dim, generator=g) - 1)
        self.b1 = nn.ParameterDict({self.key(n): nn.Parameter(own[n].detach().clone()) for n in self.names})
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


# --- training, on the collection's one loop (train.fit) -----------------------------------------


def train_separate(model: nn.Module, data, lam: float, *, epochs: int, batch_size: int, optimizer: str, lr: float,
                   clip: float = 0.0, clip_mode: str = "value", seed: int = 0, device: str = "auto",
                   eval_every: int = 0) -> tuple[History, int, list[tuple[int, float]]]:
    """Train one Bayesian network at complexity ``lam`` (minus the generalised evidence per example) with
    :func:`~paramspace.train.fit`: ``optimizer`` (:func:`~paramspace.train.make_optimizer`, plain SGD or
    Adam) at ``lr``, gradients clipped per ``clip`` / ``clip_mode``, minibatches drawn with a generator
    seeded by ``seed``.

    ``eval_every > 0`` records ``(step, test accuracy of the mean network)`` every that many steps and
    after the last one.  Returns the history (mean loss per epoch), the number of optimizer steps and
    that trace."""
    dev = resolve_device(device)
    model.to(dev)
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    n = len(X)
    trace: list[tuple[int, float]] = []

    def step(idx):
        return generalized_evidence_loss(model(X[idx]), y[idx], V.kl_total(model), lam, n)

    def after_step(steps, _idx):
        if steps % eval_every == 0:
            trace.append((steps, quality(model, data.X_test, data.y_test, data.task)))  # eval mode inside

    opt = make_optimizer(model.parameters(), optimizer, lr)
    batches = shuffled_batches(n, batch_size, torch.Generator().manual_seed(seed), dev)
    model.train()
    fitted = fit(step, opt, batches, epochs=epochs, clip=clip, clip_mode=clip_mode,
                 after_step=after_step if eval_every else None)
    model.eval()
    if eval_every and (not trace or trace[-1][0] != fitted.steps):
        trace.append((fitted.steps, quality(model, data.X_test, data.y_test, data.task)))
    return History(loss=fitted.losses, quality_name="accuracy"), fitted.steps, trace


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
    drawn log-uniformly per minibatch, with :func:`~paramspace.train.fit`, ``optimizer`` (default plain
    SGD) and gradient clipping (``clip > 0``; ``clip_mode`` 'norm' or 'value').  One generator seeded
    by ``seed`` draws the minibatches (at the start of each epoch) and the lambdas (per minibatch).
    Returns the mean loss per epoch; the number of optimizer steps is in ``hist.steps``."""
    if lambdas_per_batch < 1:
        raise ValueError("need lambdas_per_batch >= 1")
    dev = resolve_device(device)
    hyper.to(dev)
    base = hyper.base.to(dev)
    base.train()
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    n = len(X)
    gen = torch.Generator().manual_seed(seed)

    def step(idx):
        xb, yb = X[idx], y[idx]
        total = 0.0
        for lam in sample_lambdas(lambdas_per_batch, hyper.lam_min, hyper.lam_max, gen):
            p = hyper(lam)
            out = functional_call(base, p, (xb,))
            total = total + generalized_evidence_loss(out, yb, kl_from_params(p, prior_sigma), lam, n)
        return total / lambdas_per_batch

    opt = make_optimizer(hyper.parameters(), optimizer, lr)
    fitted = fit(step, opt, shuffled_batches(n, batch_size, gen, dev), epochs=epochs, clip=clip,
                 clip_mode=clip_mode, progress=progress, desc=desc)
    hist = History(loss=fitted.losses, quality_name="accuracy")
    hist.steps = fitted.steps
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
    if mode == "unit":
        return data
    if mode != "symmetric":
        raise ValueError(f"input scaling must be 'unit' or 'symmetric', got {mode!r}")
    return dataclasses.replace(data, X_train=2 * data.X_train - 1, X_test=2 * data.X_test - 1)
