"""Mean-field Gaussian variational layers (reparameterisation trick, closed-form KL).

The posterior of every weight is ``N(mu, sigma^2)`` with ``sigma = softplus(rho)``; the prior is
``N(0, prior_sigma^2)``.  With ``local_reparam=True`` a layer samples its pre-activations instead of
its weights (the local reparameterisation trick of Kingma, Salimans and Welling 2015): same output
distribution per example, lower-variance gradients.  A network of :class:`BayesLinear` layers is trained by minimising
``NLL + kl_weight * KL(q || p) / n`` with :func:`paramspace.train.train` (pass
:func:`kl_regularizer` as its ``regularizer``).
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
        prior = Normal(torch.zeros((), device=self.weight_mu.device), self.prior_sigma)
        return (kl_divergence(Normal(self.weight_mu, self.weight_sigma), prior).sum()
                + kl_divergence(Normal(self.bias_mu, self.bias_sigma), prior).sum())

    def extra_repr(self) -> str:
        extra = ", local_reparam=True" if self.local_reparam else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"prior_sigma={self.prior_sigma}{extra}")


def kl_gaussian_closed_form(mu, sigma, prior_sigma):
    """``sum KL(N(mu, sigma^2) || N(0, p^2)) = log(p/sigma) + (sigma^2 + mu^2)/(2 p^2) - 1/2``."""
    return torch.sum(math.log(prior_sigma) - torch.log(sigma)
                     + (sigma**2 + mu**2) / (2 * prior_sigma**2) - 0.5)


def bayes_layers(model: nn.Module) -> list[BayesLinear]:
    return [m for m in model.modules() if isinstance(m, BayesLinear)]


def kl_total(model: nn.Module) -> torch.Tensor:
    layers = bayes_layers(model)
    if not layers:
        raise ValueError("model has no BayesLinear layers")
    return sum(layer.kl() for layer in layers)


def kl_regularizer(n_train: int, kl_weight: float = 1.0):
    """Regulariser for :func:`paramspace.train.train`: ``kl_weight * KL / n_train`` (negative ELBO / n)."""
    if n_train < 1 or kl_weight < 0:
        raise ValueError("n_train must be >= 1 and kl_weight >= 0")
    return lambda model: kl_weight * kl_total(model) / n_train


def to_deterministic(model: nn.Sequential) -> nn.Sequential:
    """A copy of ``model`` with every :class:`BayesLinear` replaced by ``nn.Linear`` holding the means."""
    layers = []
    for m in model:
        if isinstance(m, BayesLinear):
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
