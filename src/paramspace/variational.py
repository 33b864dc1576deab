"""Mean-field Gaussian variational layers (reparameterisation trick, closed-form KL).

The posterior of every weight is ``N(mu, sigma^2)`` with ``sigma = softplus(rho)``; the prior is
``N(0, prior_sigma^2)``.  With ``local_reparam=True`` a layer samples its pre-activations instead of
its weights (the local reparameterisation trick of Kingma, Salimans and Welling 2015): same output
distribution per example, lower-variance gradients.  A network of :class:`BayesLinear` layers is trained by minimising
``NLL + kl_weight * KL(q || p) / n`` with :func:`paramspace.train.train` (pass
:func:`kl_regularizer` as its ``regularizer``).

:class:`LowRankBayesLinear` (report 1) instead makes each neuron (incoming weights and bias) a
Gaussian with a low-rank-plus-diagonal covariance and any full Gaussian prior per neuron.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F


def softplus_inv(x: float) -> float:
    return math.log(math.expm1(x))


class BayesLinear(nn.Module):
    """Linear layer with a factorised Gaussian posterior over weight and bias.

    In training mode (with ``sample`` set) the output is random: by default a weight matrix is drawn
    per forward pass; with ``local_reparam=True`` each pre-activation is drawn from its exact
    marginal ``N(x W_mu^T + b_mu, x^2 (sigma_W^2)^T + sigma_b^2)``, independently per example.
    """

    def __init__(self, in_features: int, out_features: int, prior_sigma: float = 1.0,
                 init_sigma: float = 1e-3, local_reparam: bool = False):
        super().__init__()
        if prior_sigma <= 0 or init_sigma <= 0:
            raise ValueError("prior_sigma and init_sigma must be positive")
        self.in_features, self.out_features = in_features, out_features
        self.prior_sigma = float(prior_sigma)
        ref = nn.Linear(in_features, out_features)  # the usual initialisation for the means
        self.weight_mu = nn.Parameter(ref.weight.detach().clone())
        self.bias_mu = nn.Parameter(ref.bias.detach().clone())
        rho0 = softplus_inv(init_sigma)
        self.weight_rho = nn.Parameter(torch.full_like(self.weight_mu, rho0))
        self.bias_rho = nn.Parameter(torch.full_like(self.bias_mu, rho0))
        self.sample = True  # draw weights in training mode; use the means in eval mode
        self.local_reparam = bool(local_reparam)

    @property
    def weight_sigma(self) -> torch.Tensor:
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> torch.Tensor:
        return F.softplus(self.bias_rho)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sample and self.local_reparam:
            mean = F.linear(x, self.weight_mu, self.bias_mu)
            var = F.linear(x * x, self.weight_sigma**2, self.bias_sigma**2)
            return mean + var.sqrt() * torch.randn_like(mean)
        if self.training and self.sample:
            w = self.weight_mu + self.weight_sigma * torch.randn_like(self.weight_mu)
            b = self.bias_mu + self.bias_sigma * torch.randn_like(self.bias_mu)
        else:
            w, b = self.weight_mu, self.bias_mu
        return F.linear(x, w, b)

    def kl(self) -> torch.Tensor:
        """``KL(q || p)`` summed over this layer's weights and biases."""
        return (kl_normal(self.weight_mu, self.weight_sigma, self.prior_sigma).sum()
                + kl_normal(self.bias_mu, self.bias_sigma, self.prior_sigma).sum())

    def extra_repr(self) -> str:
        extra = ", local_reparam=True" if self.local_reparam else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"prior_sigma={self.prior_sigma}{extra}")


def kl_normal(mu: torch.Tensor, sigma: torch.Tensor, prior_sigma: float) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, prior_sigma^2))`` element by element (same shape as ``mu``), as
    :mod:`torch.distributions` computes it; :meth:`BayesLinear.kl` and the batched family
    (:func:`paramspace.family.fit_bayes_family`) sum it."""
    return kl_divergence(Normal(mu, sigma), Normal(torch.zeros((), device=mu.device), prior_sigma))


def kl_gaussian_closed_form(mu, sigma, prior_sigma):
    """``sum KL(N(mu, sigma^2) || N(0, p^2)) = log(p/sigma) + (sigma^2 + mu^2)/(2 p^2) - 1/2``."""
    return torch.sum(math.log(prior_sigma) - torch.log(sigma)
                     + (sigma**2 + mu**2) / (2 * prior_sigma**2) - 0.5)


def bayes_layers(model: nn.Module) -> list[BayesLinear]:
    return [m for m in model.modules() if isinstance(m, BayesLinear)]


def kl_total(model: nn.Module) -> torch.Tensor:
    layers = bayes_layers(model) + [m for m in model.modules() if isinstance(m, LowRankBayesLinear)]
    if not layers:
        raise ValueError("model has no BayesLinear layers")
    return sum(layer.kl() for layer in layers)


def kl_regularizer(n_train: int, kl_weight: float = 1.0):
    """Regulariser for :func:`paramspace.train.train`: ``kl_weight * KL / n_train`` (negative ELBO / n)."""
    if n_train < 1 or kl_weight < 0:
        raise ValueError("n_train must be >= 1 and kl_weight >= 0")
    return lambda model: kl_weight * kl_total(model) / n_train


def to_deterministic(model: nn.Sequential) -> nn.Sequential:
    """A copy of ``model`` with every :class:`BayesLinear` (or :class:`LowRankBayesLinear`) replaced by
    ``nn.Linear`` holding the means."""
    layers = []
    for m in model:
        if isinstance(m, LowRankBayesLinear):
            layers.append(m.deterministic())
        elif isinstance(m, BayesLinear):
            lin = nn.Linear(m.in_features, m.out_features).to(m.weight_mu.device)
            with torch.no_grad():
                lin.weight.copy_(m.weight_mu)
                lin.bias.copy_(m.bias_mu)
            layers.append(lin)
        else:
            layers.append(copy.deepcopy(m))
    return nn.Sequential(*layers)


@torch.no_grad()
def relevance(model: nn.Sequential) -> dict[str, torch.Tensor]:
    """Variational relevance ``mu^2 / sigma^2`` keyed like ``to_deterministic(model)``'s parameters."""
    out = {}
    for i, m in enumerate(model):
        if isinstance(m, BayesLinear):
            out[f"{i}.weight"] = (m.weight_mu**2 / m.weight_sigma**2).detach().clone()
            out[f"{i}.bias"] = (m.bias_mu**2 / m.bias_sigma**2).detach().clone()
    return out


class LowRankBayesLinear(nn.Module):
    """Linear layer whose neurons are Gaussian with a low-rank-plus-diagonal covariance (report 1).

    Neuron ``i`` is the vector of its incoming weights and bias, ``w_i in R^d`` with ``d = in + 1``;
    its posterior is ``N(mean_i, A_i A_i^T + diag(s_i^2))`` with ``A_i`` a ``d x rank`` factor and
    ``s_i = softplus(rho_i)`` a small diagonal that keeps the covariance non-singular.  Neurons are
    independent of each other.  The prior of neuron ``i`` is ``N(prior_mean_i, prior_cov_i)``:
    ``N(0, prior_sigma^2 I)`` by default, any full Gaussian per neuron via :meth:`set_prior` (the
    teacher's posterior in the report's teacher -> student algorithm).  ``KL(q || p)`` is closed-form
    (``torch.distributions``: low-rank multivariate normal against a full one).

    In training mode (with ``sample`` set) each pre-activation is drawn from its exact marginal
    ``N(mean_i . x~, |A_i^T x~|^2 + sum_j s_ij^2 x~_j^2)``, independently per example (the local
    reparameterisation trick), ``x~ = (x, 1)``; in evaluation mode the layer uses the means.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 1, prior_sigma: float = 1.0,
                 init_scale: float = 1e-3):
        super().__init__()
        if rank < 1 or prior_sigma <= 0 or init_scale <= 0:
            raise ValueError("need rank >= 1, prior_sigma > 0 and init_scale > 0")
        self.in_features, self.out_features, self.rank = in_features, out_features, int(rank)
        d = in_features + 1
        ref = nn.Linear(in_features, out_features)
        self.mean = nn.Parameter(torch.cat([ref.weight.detach(), ref.bias.detach()[:, None]], 1))
        self.factor = nn.Parameter(init_scale / math.sqrt(rank) * torch.randn(out_features, d, rank))
        self.rho = nn.Parameter(torch.full((out_features, d), softplus_inv(init_scale)))
        self.register_buffer("prior_mean", torch.zeros(out_features, d))
        self.register_buffer("prior_scale_tril", prior_sigma * torch.eye(d).repeat(out_features, 1, 1))
        self.sample = True

    @property
    def diag(self) -> torch.Tensor:
        """The diagonal variances ``s_i^2``, shape ``(out, d)``."""
        return F.softplus(self.rho) ** 2

    def covariance(self) -> torch.Tensor:
        """``A_i A_i^T + diag(s_i^2)`` for every neuron, shape ``(out, d, d)``."""
        return self.factor @ self.factor.transpose(-1, -2) + torch.diag_embed(self.diag)

    def posterior(self):
        from torch.distributions import LowRankMultivariateNormal

        return LowRankMultivariateNormal(self.mean, self.factor, self.diag)

    def prior(self):
        from torch.distributions import MultivariateNormal

        return MultivariateNormal(self.prior_mean, scale_tril=self.prior_scale_tril)

    @torch.no_grad()
    def set_prior(self, mean, cov, jitter: float = 0.0) -> None:
        """Prior ``N(mean_i, cov_i + jitter I)`` per neuron (``mean`` ``(out, d)``, ``cov`` ``(out, d, d)``)."""
        mean = torch.as_tensor(mean, dtype=self.mean.dtype, device=self.mean.device)
        cov = torch.as_tensor(cov, dtype=torch.float64, device=self.mean.device)
        cov = 0.5 * (cov + cov.transpose(-1, -2)) + jitter * torch.eye(cov.shape[-1], dtype=cov.dtype,
                                                                       device=cov.device)
        self.prior_mean.copy_(mean)
        self.prior_scale_tril.copy_(torch.linalg.cholesky(cov).to(self.mean.dtype))

    @torch.no_grad()
    def set_mean(self, mean) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype, device=self.mean.device))

    def kl(self) -> torch.Tensor:
        """``KL(q || p)`` summed over the layer's neurons."""
        return kl_divergence(self.posterior(), self.prior()).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)], -1)
        mu = xt @ self.mean.T
        if not (self.training and self.sample):
            return mu
        var = torch.einsum("bd,odr->bor", xt, self.factor).pow(2).sum(-1) + (xt * xt) @ self.diag.T
        return mu + var.clamp_min(1e-30).sqrt() * torch.randn_like(mu)

    def deterministic(self) -> nn.Linear:
        """An ``nn.Linear`` holding the posterior means."""
        lin = nn.Linear(self.in_features, self.out_features).to(device=self.mean.device, dtype=self.mean.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.mean[:, :-1])
            lin.bias.copy_(self.mean[:, -1])
        return lin

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def fit_variational(ds, *, hidden, epochs: int, lr: float, batch_size: int, prior_sigma: float,
                    kl_weight: float, seed: int, device: str = "cpu", progress: bool = False,
                    desc: str | None = None):
    """Train a mean-field Gaussian MLP ``in -> hidden... -> out`` (ReLU, :class:`BayesLinear` layers with
    prior ``N(0, prior_sigma^2)``) on the data set ``ds`` by minimising ``NLL + kl_weight * KL / n`` with
    Adam (:func:`paramspace.train.train`), after seeding everything with ``seed``.  Returns
    ``(bayes_model_on_cpu, history)``."""
    from .models import mlp
    from .train import seed_everything, train

    seed_everything(seed)
    model = mlp(ds.n_features, hidden, ds.out_dim, "relu", linear=BayesLinear, prior_sigma=prior_sigma)
    hist = train(model, ds, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device,
                 progress=progress, desc=desc if desc is not None else f"{ds.name} seed {seed}",
                 regularizer=kl_regularizer(len(ds.X_train), kl_weight))
    return model.cpu(), hist
