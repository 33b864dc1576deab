"""Named parameter profiles per report, validated before any compute.

Each report declares its parameters (type and a check) once in :data:`REPORTS`; each profile
(``smoke``, ``book``, ``paper``) gives a complete value for every one of them.  The ``book``
values are also the defaults written in the notebook's ``parameters`` cell (a test keeps the two
equal).  :func:`resolve` returns a validated copy of a profile with optional overrides.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "book", "paper")
DEVICES = ("auto", "cpu", "cuda")

# Bounds every value must respect, whatever its report (checked before a report's own rule):
SEED_LIMIT = 2**32  # seeds are below 2**32 (numpy's and torch's seeding accept no more)
EPOCH_CEILING = 10_000  # any parameter named *epoch* is at most this
INT_CEILING = 10**9  # any other integer lies in [-INT_CEILING, INT_CEILING]
FLOAT_CEILING = 1e12  # any float is finite with |x| <= FLOAT_CEILING


class ProfileError(ValueError):
    """Unknown report, profile or parameter, or a value of the wrong type or range."""


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a 400-digit number stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}...({len(text)} chars)"


def _bounds_problem(name: str, value: Any) -> str | None:
    """Why ``value`` breaks the collection-wide bounds (non-finite or huge numbers, seeds of 2**32 or
    more, epochs over :data:`EPOCH_CEILING`, a list naming one item twice), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return "must be a finite number"
        if abs(value) > FLOAT_CEILING:
            return f"must be a number of magnitude at most {FLOAT_CEILING:g}"
    elif isinstance(value, int):
        if name == "seed":
            return None if 0 <= value < SEED_LIMIT else "must be an integer in [0, 2**32)"
        if "epoch" in name and value > EPOCH_CEILING:
            return f"must be at most {EPOCH_CEILING} (the ceiling on epochs)"
        if abs(value) > INT_CEILING:
            return f"must be an integer of magnitude at most {INT_CEILING:g}"
    elif isinstance(value, (list, tuple)):
        for x in value:
            problem = _bounds_problem(name, x)
            if problem:
                return f"has an element {_short(x)} that {problem}"
        names = [x for x in value if isinstance(x, str)]
        if len(set(names)) != len(names):
            twice = sorted({x for x in names if names.count(x) > 1})
            return f"names {twice} more than once (each item at most once)"
    return None


@dataclass(frozen=True)
class Param:
    type: type | tuple
    help: str
    check: Callable[[Any], bool] | None = None
    rule: str = ""  # human-readable form of ``check``

    def validate(self, report: str, name: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > INT_CEILING:
                raise ProfileError(f"{report}: parameter {name!r} = {_short(value)} is invalid: must be a number "
                                   f"of magnitude at most {INT_CEILING:g}")
            value, ok = float(value), True
        if list in types and isinstance(value, tuple):
            value, ok = list(value), True
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            rule = f": {self.rule}" if self.rule else ""
            raise ProfileError(f"{report}: parameter {name!r} must be {names}{rule}; got {type(value).__name__} "
                               f"{_short(value)}")
        problem = _bounds_problem(name, value)
        if problem:
            raise ProfileError(f"{report}: parameter {name!r} = {_short(value)} is invalid: it {problem}")
        if self.check is not None and not self.check(value):
            raise ProfileError(f"{report}: parameter {name!r} = {_short(value)} is invalid: must be {self.rule}")
        return value


def _number(x: Any) -> bool:
    """An int or float list element, but not a bool (``True`` is an ``int`` in Python)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def positive_int(help: str) -> Param:
    return Param(int, help, lambda v: v >= 1, "an integer >= 1")


def positive_float(help: str) -> Param:
    return Param(float, help, lambda v: v > 0, "a number > 0")


def fraction_grid(help: str) -> Param:
    return Param(list, help,
                 lambda v: len(v) >= 2 and all(_number(x) and 0 <= x <= 1 for x in v)
                 and list(v) == sorted(v),
                 "an increasing list of at least two fractions in [0, 1]")


def int_list(help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and all(_number(x) and isinstance(x, int) and x >= 1 for x in v),
                 "a non-empty list of positive integers")


COMMON = {
    "profile": Param(str, "name of the profile these values came from", lambda v: v in PROFILES,
                     f"one of {PROFILES}"),
    "device": Param(str, "'auto' (CUDA if present), 'cpu' or 'cuda'",
                    lambda v: v in DEVICES or re.fullmatch(r"cuda:[0-9]{1,3}", v) is not None,
                    f"one of {DEVICES} or 'cuda:N' (N a device index)"),
    "seed": Param(int, "base random seed; seed s of n_seeds uses seed + s", lambda v: 0 <= v < SEED_LIMIT,
                  "an integer in [0, 2**32)"),
    "n_seeds": positive_int("number of independent repetitions (bands show their spread)"),
}


CPU_THREADS = Param(int, "torch CPU threads (0 = torch's default; 1 avoids stalls on shared cores)",
                    lambda v: v >= 0, "an integer >= 0")


@dataclass
class Report:
    name: str
    title: str
    author: str
    seed_id: str
    params: dict[str, Param]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    notebook: str = ""  # path relative to the repository root (or absolute); default notebooks/<name>.py
    claims: bool = True  # writes a claims ledger (<name>.claims.json) counted in the scorecard

    def __post_init__(self):
        self.notebook = self.notebook or f"notebooks/{self.name}.py"


_RELEVANCE_DATASETS = ("wine", "boston", "synthetic")

RELEVANCE = Report(
    name="parameter_relevance",
    title="Relevance of neural network parameters: automatic pruning",
    author="A. V. Grabovoy (with O. Yu. Bakhteev and V. V. Strijov)",
    seed_id="004",
    params={
        **COMMON,
        "datasets": Param(list, "data sets to run",
                          lambda v: len(v) >= 1 and all(d in _RELEVANCE_DATASETS for d in v),
                          f"a non-empty list drawn from {_RELEVANCE_DATASETS}"),
        "hidden": int_list("hidden-layer widths of the MLP"),
        "epochs": positive_int("training epochs of the variational network"),
        "lr": positive_float("Adam learning rate"),
        "batch_size": positive_int("minibatch size"),
        "prior_sigma": positive_float("standard deviation of the Gaussian prior on each weight"),
        "kl_weight": Param(float, "weight of KL(q||p)/n in the loss (1 = the ELBO)", lambda v: v >= 0, "a number >= 0"),
        "synthetic_n": positive_int("rows of the synthetic data set (report: 10000)"),
        "synthetic_epochs": positive_int("training epochs on the synthetic data set (it has 40x more rows)"),
        "fractions": fraction_grid("fractions of parameters removed"),
        "belsley_steps": positive_int("eigen-decompositions in Belsley's removal (about P/steps parameters per step)"),
        "laplace_damping": positive_float("damping added to the Hessian before inverting it (Laplace covariance)"),
        "condition_index": Param(str, "Belsley's condition index: 'deck' (lambda_j / max lambda, the deck's; the "
                                 "direction of largest eta is the largest eigenvalue) or 'belsley' "
                                 "(sqrt(max lambda / lambda_j), ours as an option)",
                                 lambda v: v in ("deck", "belsley"), "one of 'deck', 'belsley'"),
        "noise_fraction": Param(float, "fraction removed in the noise-stability figure",
                                lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "noise_sigmas": Param(list, "input-noise standard deviations",
                              lambda v: len(v) >= 2 and all(_number(x) and x >= 0 for x in v),
                              "a list of at least two non-negative numbers"),
        "noise_draws": positive_int("noise draws per input-noise level"),
    },
)

_grid = [round(i / 20, 2) for i in range(21)]
RELEVANCE.profiles = {
    "smoke": dict(profile="smoke", device="cpu", seed=0, n_seeds=2, datasets=list(_RELEVANCE_DATASETS),
                  hidden=[8], epochs=3, lr=0.01, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                  synthetic_n=400, synthetic_epochs=3, fractions=[0.0, 0.5, 1.0], belsley_steps=5, laplace_damping=0.001,
                  condition_index="deck",
                  noise_fraction=0.5, noise_sigmas=[0.0, 0.5], noise_draws=3),
    "book": dict(profile="book", device="auto", seed=0, n_seeds=5, datasets=list(_RELEVANCE_DATASETS),
                 hidden=[16], epochs=200, lr=0.01, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                 synthetic_n=10000, synthetic_epochs=40, fractions=_grid, belsley_steps=100, laplace_damping=0.001,
                 condition_index="deck",
                 noise_fraction=0.5, noise_sigmas=[0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0], noise_draws=20),
    "paper": dict(profile="paper", device="auto", seed=0, n_seeds=10, datasets=list(_RELEVANCE_DATASETS),
                  hidden=[32, 32], epochs=500, lr=0.005, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                  synthetic_n=10000, synthetic_epochs=200, fractions=[round(i / 50, 2) for i in range(51)], belsley_steps=400,
                  laplace_damping=0.001, condition_index="deck", noise_fraction=0.5,
                  noise_sigmas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0], noise_draws=50),
}

def _lambda_grid(help: str) -> Param:
    return Param(list, help,
                 lambda v: len(v) >= 1 and all(_number(x) and x >= 0 for x in v)
                 and all(a < b for a, b in zip(v[:-1], v[1:])),
                 "a non-empty, strictly increasing list of numbers >= 0")


VARIATIONAL = Report(
    name="variational_complexity",
    title="Variational optimization of deep learning models with complexity control",
    author="O. S. Grebenkova (with O. Yu. Bakhteev and V. V. Strijov)",
    seed_id="001",
    params={
        **COMMON,
        "n_train": Param(int, "MNIST training images, a seeded random subset per seed (60000 = all)",
                         lambda v: 1 <= v <= 60000, "an integer in [1, 60000]"),
        "n_test": Param(int, "MNIST test images, a seeded random subset per seed (10000 = all)",
                        lambda v: 1 <= v <= 10000, "an integer in [1, 10000]"),
        "hidden": int_list("hidden-layer widths (report: [100], i.e. 784-100-10)"),
        "epochs": positive_int("training epochs of every separately trained model (report: 50)"),
        "hyper_epochs": positive_int("training epochs of each hypernetwork"),
        "optimizer": Param(str, "'adam' (the authors' published code) or 'sgd' (plain SGD, as the deck's slide says)",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("learning rate of the optimizer (models and hypernetworks)"),
        "finetune_lr": positive_float("plain-SGD learning rate of the fine-tuning after pruning"),
        "grad_clip": Param(float, "clip every gradient (models and hypernetworks) to this value (0 = no clipping)",
                           lambda v: v >= 0, "a number >= 0"),
        "clip_mode": Param(str, "'value' (clip each gradient entry, as the authors' code) or 'norm' (global norm)",
                           lambda v: v in ("value", "norm"), "one of ('value', 'norm')"),
        "input_scaling": Param(str, "'symmetric': pixels to [-1, 1] (the authors' code); 'unit': pixels in [0, 1]",
                               lambda v: v in ("symmetric", "unit"), "one of ('symmetric', 'unit')"),
        "batch_size": positive_int("minibatch size"),
        "prior_variance": positive_float("variance of the Gaussian prior N(0, prior_variance) on every parameter (report: 0.1)"),
        "prior_variances": Param(list, "prior variances of the prior sweep (separate models at λ = sweep_lambda)",
                                 lambda v: len(v) >= 1 and all(_number(x) and x > 0 for x in v),
                                 "a non-empty list of numbers > 0"),
        "sweep_lambda": Param(float, "λ of the separate models of the prior sweep", lambda v: v >= 0, "a number >= 0"),
        "init_sigma": positive_float("initial posterior standard deviation of every parameter"),
        "local_reparam": Param(bool, "sample pre-activations (local reparameterisation) instead of weights"),
        "lambdas": _lambda_grid("complexity coefficients λ of the separate models (report: 0, 0.01, 0.1, 1, 10, 100)"),
        "lambda_min": positive_float("lower end of the λ range the hypernetworks are trained on (log-uniform)"),
        "lambda_max": positive_float("upper end of the λ range the hypernetworks are trained on"),
        "lambdas_per_batch": positive_int("values of λ drawn per minibatch when training a hypernetwork (report: 5)"),
        "linear_init": Param(str, "linear hypernetwork: 'endpoints' (two independently initialised parameter sets at "
                                  "λ_min and λ_max, as the authors' code) or 'zero' (b2 = 0: starts flat in λ)",
                             lambda v: v in ("endpoints", "zero"), "one of ('endpoints', 'zero')"),
        "rank": positive_int("rank of the λ-dependent part of each weight matrix (low-rank hypernetwork)"),
        "lowrank_features": Param(str, "features f(λ) of the low-rank hypernetwork: 'relu' (one hidden layer of "
                                       "embed_dim ReLU units, the deck's) or 'tanh' (a learned tanh embedding, ours)",
                                  lambda v: v in ("relu", "tanh"), "one of ('relu', 'tanh')"),
        "embed_dim": positive_int("number of features f(λ) of the low-rank hypernetwork (report: 50)"),
        "pruning_ranking": Param(str, "'per_layer': remove the same fraction of each layer (the authors' code); "
                                      "'global': rank the weights of all layers together",
                                 lambda v: v in ("per_layer", "global"), "one of ('per_layer', 'global')"),
        "fractions": fraction_grid("fractions of the weights removed (must start at 0)"),
        "finetune_steps": Param(int, "SGD steps of fine-tuning after pruning (0 = no fine-tuning)",
                                lambda v: v >= 0, "an integer >= 0"),
        "claim_fraction": Param(float, "fraction removed at which the claims are checked (report: 0.8); one of `fractions`",
                                lambda v: 0 < v < 1, "a number in (0, 1)"),
        "drop_tol_pp": positive_float("largest accuracy drop (percentage points) that counts as 'no significant loss'"),
        "eval_every_steps": positive_int("optimizer steps between two test evaluations of a separate model while it "
                                         "trains (the cost-to-quality comparison)"),
        "evidence_n": positive_int("training examples on which the generalised evidence is estimated (one draw of q)"),
        "similar_tol_pp": positive_float("largest mean |difference of curve areas| (percentage points) that counts as 'similar'"),
        "n_lambda_grid": Param(int, "points of the fine λ grid along which the hypernetworks are evaluated",
                               lambda v: v >= 2, "an integer >= 2"),
        "cpu_threads": CPU_THREADS,
    },
)

_vc_common = dict(hidden=[100], optimizer="adam", lr=5e-4, finetune_lr=0.1, grad_clip=1.0, clip_mode="value",
                  input_scaling="symmetric", batch_size=256, prior_variance=0.1, prior_variances=[0.01, 0.1, 1.0],
                  sweep_lambda=1.0, init_sigma=0.05, local_reparam=True,
                  lambdas=[0.0, 0.01, 0.1, 1.0, 10.0, 100.0], lambda_min=0.01, lambda_max=100.0, lambdas_per_batch=5,
                  linear_init="endpoints", rank=1, lowrank_features="relu", embed_dim=50, pruning_ranking="per_layer",
                  fractions=[round(i / 10, 1) for i in range(10)], claim_fraction=0.8, drop_tol_pp=1.0,
                  similar_tol_pp=2.0, eval_every_steps=47, evidence_n=10000)
VARIATIONAL.profiles = {
    "smoke": {**_vc_common, **dict(profile="smoke", device="cpu", seed=0, n_seeds=2, n_train=600, n_test=300,
                                   lr=5e-3, hidden=[16], epochs=1, hyper_epochs=1, batch_size=64,
                                   lambdas=[0.0, 0.1, 1.0, 100.0], lambda_min=0.1, lambdas_per_batch=2, embed_dim=4,
                                   prior_variances=[0.1, 1.0], fractions=[0.0, 0.5, 0.8], finetune_steps=2,
                                   n_lambda_grid=3, eval_every_steps=3, evidence_n=200, cpu_threads=1)},
    "book": {**_vc_common, **dict(profile="book", device="auto", seed=0, n_seeds=3, n_train=60000, n_test=10000,
                                  lr=5e-3, epochs=3, hyper_epochs=3, finetune_steps=30, n_lambda_grid=13,
                                  eval_every_steps=141, evidence_n=5000, cpu_threads=1)},
    "paper": {**_vc_common, **dict(profile="paper", device="auto", seed=0, n_seeds=5, n_train=60000, n_test=10000,
                                   epochs=50, hyper_epochs=50, finetune_steps=235, n_lambda_grid=33,
                                   eval_every_steps=235, cpu_threads=0)},
}

_ID_DATASETS = ("mnist", "fashion-mnist", "cifar10")

IMPORTANCE = Report(
    name="importance_dropconnect",
    title="DropConnect guided by weight importance",
    author="A. Rebrikov",
    seed_id="002",
    params={
        **COMMON,
        "dataset": Param(str, "data set: 'mnist' or 'fashion-mnist' (shipped) or 'cifar10' (paper; needs a network)",
                         lambda v: v in _ID_DATASETS, f"one of {_ID_DATASETS}"),
        "arch": Param(str, "'cnn' (small CNN, 28x28 grey images) or 'resnet18' (ResNet-18 for 32x32 RGB)",
                      lambda v: v in ("cnn", "resnet18"), "one of ('cnn', 'resnet18')"),
        "width": positive_int("channels of the small CNN's first convolution (the second has twice as many)"),
        "n_train": positive_int("training images, a seeded random subset per seed (all if >= the set's size)"),
        "n_test": positive_int("test images, a seeded random subset per seed (all if >= the set's size)"),
        "augment": Param(bool, "random crop (padding 4) and horizontal flip of the training images (cifar10 only)"),
        "epochs": positive_int("training epochs of every run"),
        "batch_size": positive_int("minibatch size"),
        "optimizer": Param(str, "'adam', or 'sgd' (Nesterov momentum 0.9, cosine learning-rate schedule)",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("learning rate of the weights"),
        "weight_decay": Param(float, "L2 weight decay of the optimizer (every method)", lambda v: v >= 0,
                              "a number >= 0"),
        "drop_rate": Param(float, "p: expected fraction of dropped weights per layer (all DropConnect variants)",
                           lambda v: 0 < v < 1, "a number in (0, 1)"),
        "min_keep": Param(float, "lowest keep-probability of a weight under importance DropConnect (<= 1 - drop_rate)",
                          lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "importance_lr": positive_float("eta: step of the exponentiated-gradient (mirror-descent) update of the importances"),
        "importance_gamma": positive_float("gamma: size of the importance-weighted gradient step inside the objective"),
        "importance_tau": positive_float("tau: weight of the KL-to-uniform regulariser (per weight) of the '+ KL' variant"),
        "importance_every": positive_int("minibatches between two importance updates"),
        "importance_steps": positive_int("mirror-descent steps per importance update"),
        "importance_data": Param(str, "data of the importance objective: 'same' (the deck's: gradient and loss after "
                                 "the step on the same minibatch) or 'split' (ours: gradient on one half, loss on the other)",
                                 lambda v: v in ("same", "split"), "one of ('same', 'split')"),
        "collapse_steps": positive_int("mirror-descent steps of the collapse check (importance problem solved at fixed "
                                       "trained weights on one batch, from uniform)"),
        "collapse_seeds": positive_int("seeds of the collapse check (the first ones of the main run; <= n_seeds)"),
        "collapse_layer_step": positive_float("collapse check: largest change of a log-importance in the first mirror-"
                                              "descent step, per layer (the step is scaled per layer; see collapse_check)"),
        "collapse_share": Param(float, "ours: a layer counts as collapsed to one weight when its largest share "
                                "max w/|X| exceeds this", lambda v: 0 < v < 1, "a number in (0, 1)"),
        "grid_min_keep": Param(list, "min_keep values of the sensitivity grid (each <= 1 - drop_rate)",
                               lambda v: len(v) >= 1 and all(_number(x) and 0 <= x < 1 for x in v)
                               and list(v) == sorted(set(v)), "a non-empty increasing list of numbers in [0, 1)"),
        "grid_tau": Param(list, "importance_tau values of the sensitivity grid (0 = importance DropConnect without KL)",
                          lambda v: len(v) >= 1 and all(_number(x) and x >= 0 for x in v)
                          and list(v) == sorted(set(v)), "a non-empty increasing list of numbers >= 0"),
        "grid_seeds": positive_int("seeds of the sensitivity grid (the first ones of the main run; <= n_seeds)"),
        "early_epochs": positive_int("'early in training' = the first this many epochs (must be < epochs)"),
        "cpu_threads": CPU_THREADS,
    },
)

_id_common = dict(seed=0, drop_rate=0.3, min_keep=0.5, importance_gamma=0.1, importance_lr=300.0,
                  importance_tau=1e-4, importance_every=1, importance_steps=1, importance_data="same",
                  collapse_share=0.5, collapse_layer_step=0.5)
IMPORTANCE.profiles = {
    "smoke": {**_id_common, **dict(profile="smoke", device="cpu", n_seeds=2, dataset="fashion-mnist", arch="cnn",
                                   width=4, n_train=256, n_test=256, augment=False, epochs=3, batch_size=64,
                                   optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=1, cpu_threads=1,
                                   collapse_steps=20, collapse_seeds=2, grid_min_keep=[0.5, 0.7], grid_tau=[0.0, 1e-3],
                                   grid_seeds=1)},
    "book": {**_id_common, **dict(profile="book", device="auto", n_seeds=5, dataset="fashion-mnist", arch="cnn",
                                  width=8, n_train=500, n_test=1000, augment=False, epochs=24, batch_size=64,
                                  optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=6, cpu_threads=1,
                                  collapse_steps=1000, collapse_seeds=3, grid_min_keep=[0.1, 0.5],
                                  grid_tau=[0.0, 1e-4, 1e-3], grid_seeds=3)},
    "paper": {**_id_common, **dict(profile="paper", device="auto", n_seeds=5, dataset="cifar10", arch="resnet18",
                                   width=8, n_train=50000, n_test=10000, augment=True, epochs=50, batch_size=128,
                                   optimizer="sgd", lr=0.1, weight_decay=5e-4, early_epochs=5, cpu_threads=0,
                                   collapse_steps=2000, collapse_seeds=2, grid_min_keep=[0.1, 0.5],
                                   grid_tau=[0.0, 1e-4, 1e-3], grid_seeds=2)},
}

_FR_DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
_FR_ARCHS = ("small_resnet", "resnet34", "resnet50")
_FR_METHODS = ("none", "frame", "mhe", "so", "srip", "ocnn")
_FR_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "contrast",
                   "brightness", "pixelate")


def _subset_of(options: tuple, help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and len(set(v)) == len(v) and all(x in options for x in v),
                 f"a non-empty list of distinct values drawn from {options}")


def _nonnegative(help: str) -> Param:
    return Param(float, help, lambda v: v >= 0, "a number >= 0")


FRAME = Report(
    name="frame_regularization",
    title="Frame regularization of a layer",
    author="Grigoriev",
    seed_id="003",
    params={
        **COMMON,
        "datasets": _subset_of(_FR_DATASETS, "data sets: 'mnist', 'fashion-mnist' (shipped) or 'cifar10', "
                               "'cifar100', 'svhn' (paper; need a network)"),
        "archs": _subset_of(_FR_ARCHS, "networks: 'small_resnet' (book) or torchvision 'resnet34', 'resnet50' "
                            "with a 3x3 stem and no max-pool"),
        "widths": int_list("channels of the small ResNet's stages (one basic block each)"),
        "n_train": positive_int("training images, a seeded random subset per seed (all if >= the set's size)"),
        "n_test": positive_int("test images, a seeded random subset per seed (all if >= the set's size)"),
        "augment": Param(bool, "random crop (padding 4) of the training images, + horizontal flip on CIFAR "
                         "(CIFAR and SVHN only)"),
        "epochs": positive_int("training epochs of every run"),
        "batch_size": positive_int("minibatch size"),
        "optimizer": Param(str, "'adam' or 'sgd' (Nesterov momentum 0.9); cosine schedule either way",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("initial learning rate"),
        "weight_decay": _nonnegative("L2 weight decay of the optimizer (every method)"),
        "grad_clip": _nonnegative("clip the gradient norm to this value (0 = no clipping)"),
        "methods": _subset_of(_FR_METHODS, "regularizers compared; must include 'none' and 'frame'"),
        "frame_A": _nonnegative("lower frame bound A"),
        "frame_B": positive_float("upper frame bound B (>= A)"),
        "frame_weight": _nonnegative("weight of the frame penalty (sum over layers)"),
        "mhe_weight": _nonnegative("weight of minimum hyperspherical energy (sum over layers)"),
        "mhe_power": _nonnegative("MHE power s (energy 1/d^s; 0 = logarithmic energy)"),
        "so_weight": _nonnegative("weight of soft orthogonality ||W^T W - I||_F^2 (sum over layers)"),
        "srip_weight": _nonnegative("weight of SRIP sigma_max(W^T W - I) (sum over layers)"),
        "srip_iters": positive_int("power iterations per training step for SRIP (warm-started)"),
        "ocnn_weight": _nonnegative("weight of the orthogonal-convolution penalty (sum over layers)"),
        "corruptions": _subset_of(_FR_CORRUPTIONS, "corruptions of the shifted test sets"),
        "severities": Param(list, "corruption severities", lambda v: len(v) >= 1 and all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 5 for x in v)
            and all(a < b for a, b in zip(v[:-1], v[1:])), "a non-empty increasing list of integers in 1..5"),
        "n_shift": positive_int("test images in each corrupted copy"),
        "simba_basis": Param(str, "SimBA directions: 'pixel' or 'dct' (low frequencies first)",
                             lambda v: v in ("pixel", "dct"), "one of ('pixel', 'dct')"),
        "simba_eps": positive_float("SimBA step (L2 length of one accepted step; pixels in [0, 1])"),
        "simba_images": positive_int("test images attacked with SimBA (the correctly classified ones count)"),
        "simba_checkpoints": Param(list, "iterations after which the attack success rate is reported",
                                   lambda v: len(v) >= 1 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                 and x >= 1 for x in v)
                                   and all(a < b for a, b in zip(v[:-1], v[1:])),
                                   "a non-empty strictly increasing list of positive integers"),
        "robust_methods": _subset_of(_FR_METHODS, "methods compared under domain shift at matched clean accuracy "
                                     "and attacked with SimBA (the deck's tables: none, OCNN, frame); must "
                                     "include 'none' and 'frame'"),
        "domain_rotation": _nonnegative("second-domain stand-in where no real one is available: test images "
                                        "rotated by a uniform random angle in +-this many degrees ..."),
        "domain_translate": _nonnegative("... and shifted by a uniform random fraction in +-this of the image side"),
        "match_checkpoints": Param(int, "checkpoints per regularized run (evenly spaced in steps, the last at the "
                                   "end) among which the domain-shift comparison picks the one whose clean "
                                   "accuracy is closest to the unregularized network's (0 = final weights only)",
                                   lambda v: not isinstance(v, bool) and v >= 0, "an integer >= 0"),
        "match_tolerance_pp": _nonnegative("ours: clean accuracies (pp) within this count as matched (self-check)"),
        "wd_decay": _nonnegative("weight decay of the unregularized network in the weight-decay experiment "
                                 "(frame without weight decay vs no regularization with it; 0 = no experiment)"),
        "wd_tolerance_pp": _nonnegative("ours: 'frame without weight decay is no worse' allows this many pp"),
        "cpu_threads": CPU_THREADS,
    },
)

_fr_common = dict(seed=0, methods=list(_FR_METHODS), frame_A=0.5, frame_B=2.0, frame_weight=0.01, mhe_weight=10.0,
                  mhe_power=2.0, so_weight=0.1, srip_weight=0.1, srip_iters=2, ocnn_weight=0.01,
                  simba_checkpoints=[1, 10, 50, 100, 1000], robust_methods=["none", "ocnn", "frame"],
                  domain_rotation=30.0, domain_translate=0.1,
                  match_tolerance_pp=0.5, wd_decay=5e-4, wd_tolerance_pp=0.5)
FRAME.profiles = {
    "smoke": {**_fr_common, **dict(profile="smoke", device="cpu", n_seeds=2, datasets=["fashion-mnist"],
                                   archs=["small_resnet"], widths=[4, 8, 8], n_train=128, n_test=64, augment=False,
                                   epochs=1, batch_size=64, optimizer="adam", lr=0.01, weight_decay=0.0,
                                   grad_clip=0.0, corruptions=list(_FR_CORRUPTIONS), severities=[1, 5], n_shift=32,
                                   simba_basis="pixel", simba_eps=0.2, simba_images=8,
                                   simba_checkpoints=[1, 5, 20], match_checkpoints=2, cpu_threads=1)},
    "book": {**_fr_common, **dict(profile="book", device="auto", n_seeds=3, datasets=["mnist", "fashion-mnist"],
                                  archs=["small_resnet"], widths=[8, 16, 32], n_train=3000, n_test=1000,
                                  augment=False, epochs=5, batch_size=64, optimizer="adam", lr=0.01,
                                  weight_decay=0.0, grad_clip=0.0,
                                  corruptions=["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur",
                                               "contrast", "pixelate"], severities=[1, 2, 3, 4, 5], n_shift=500,
                                  simba_basis="dct", simba_eps=0.05, simba_images=50, match_checkpoints=10,
                                  cpu_threads=1)},
    "paper": {**_fr_common, **dict(profile="paper", device="auto", n_seeds=3, datasets=["cifar10", "cifar100", "svhn"],
                                   archs=["resnet34", "resnet50"], widths=[8, 16, 32], n_train=100000,
                                   n_test=100000, augment=True, epochs=200, batch_size=128, optimizer="sgd",
                                   lr=0.1, weight_decay=5e-4, grad_clip=5.0, corruptions=list(_FR_CORRUPTIONS),
                                   severities=[1, 2, 3, 4, 5], n_shift=10000, simba_basis="dct", simba_eps=0.2,
                                   simba_images=500, match_checkpoints=40, cpu_threads=0)},
}

_MA_TASKS = ("mnist", "iris", "hapt")
_MA_ESTIMATORS = ("bootstrap", "bayes", "sandwich")
_MA_CLUSTER_COVS = ("bootstrap", "bayes", "student")


def _k_grid(help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                                                            for x in v) and all(a < b for a, b in zip(v[:-1], v[1:])),
                 "a non-empty strictly increasing list of positive integers")


def _unit(help: str) -> Param:
    return Param(float, help, lambda v: 0 < v < 1, "a number in (0, 1)")


METRIC = Report(
    name="metric_analysis",
    title="Metric analysis of the parameter space",
    author="Nasyrov",
    seed_id="000",
    params={
        **COMMON,
        "datasets": Param(list, "tasks of the quality-vs-parameters figure",
                          lambda v: len(v) >= 1 and len(set(v)) == len(v) and all(d in _MA_TASKS for d in v),
                          f"a non-empty list of distinct values drawn from {_MA_TASKS}"),
        "lr": positive_float("Adam learning rate (every network)"),
        "batch_size": positive_int("minibatch size"),
        "mnist_train": Param(int, "MNIST training images, a seeded subset per seed", lambda v: 1 <= v <= 60000,
                             "an integer in [1, 60000]"),
        "mnist_test": Param(int, "MNIST test images, a seeded subset per seed", lambda v: 1 <= v <= 10000,
                            "an integer in [1, 10000]"),
        "mnist_pca": Param(int, "principal components of the MNIST pixels fed to the network (neuron dim = this + 1)",
                           lambda v: 1 <= v <= 784, "an integer in [1, 784]"),
        "mnist_hidden": positive_int("hidden neurons of the MNIST MLP (the clustered layer)"),
        "mnist_epochs": positive_int("training epochs on MNIST (teacher, student, Bayesian and bootstrap runs)"),
        "mnist_ks": _k_grid("numbers of clusters k for MNIST"),
        "iris_pca": Param(int, "principal components of the 4 Iris features fed to the network (neuron dim = this + 1; "
                          "0 = the 4 raw features, dim 5)", lambda v: 0 <= v <= 4, "an integer in [0, 4]"),
        "iris_hidden": positive_int("hidden neurons of the Iris MLP (the clustered layer)"),
        "iris_epochs": positive_int("training epochs on Iris"),
        "iris_ks": _k_grid("numbers of clusters k for Iris"),
        "hapt_window": Param(int, "input and output window of the accelerometer net, in samples at 50 Hz "
                             "(report: 100, i.e. 100-3-100); its output neurons are clustered",
                             lambda v: v >= 2, "an integer >= 2"),
        "hapt_stride": positive_int("samples between the starts of two training windows"),
        "hapt_hidden": positive_int("bottleneck of the accelerometer net (report: 3)"),
        "hapt_curve_hidden": positive_int("bottleneck of the accelerometer net whose output neurons (dim = this + 1) "
                                          "are clustered in the quality-vs-parameters figure (report: dim 10)"),
        "hapt_epochs": positive_int("training epochs on the accelerometer windows"),
        "hapt_ks": _k_grid("numbers of clusters k of the accelerometer output neurons"),
        "hapt_small_in": positive_int("input window of the small accelerometer net (report: 10, as in 10-3-20)"),
        "hapt_small_out": positive_int("output window of the small accelerometer net (report: 20)"),
        "n_bootstrap": Param(int, "bootstrap runs (resampled training sets) for the bootstrap covariance",
                             lambda v: v >= 2, "an integer >= 2"),
        "rank": positive_int("rank of the factor A of each Bayesian neuron's covariance A A^T + diag"),
        "prior_sigma": positive_float("sd of the N(0, sigma^2 I) prior of the Bayesian estimator"),
        "init_sigma": positive_float("initial scale of A and of the diagonal sd of the Bayesian neurons"),
        "kl_weight": Param(float, "weight of KL/n in the variational loss (1 = the ELBO)", lambda v: v >= 0,
                           "a number >= 0"),
        "cluster_cov": Param(str, "covariances the neurons are clustered with: 'bootstrap' (the report's: the trained "
                             "network's neurons with the covariance of aligned bootstrap runs), 'bayes' (a low-rank "
                             "Bayesian network trained on the data), 'student' (the Bayesian student of Algorithm 1)",
                             lambda v: v in _MA_CLUSTER_COVS, f"one of {_MA_CLUSTER_COVS}"),
        "contrast_datasets": Param(list, "tasks also clustered with the Bayesian student's covariances (Algorithm 1), "
                                   "to compare how alike the Euclidean and W2 partitions are under each covariance",
                                   lambda v: len(set(v)) == len(v) and all(d in _MA_TASKS for d in v),
                                   f"a list of distinct values drawn from {_MA_TASKS} (may be empty)"),
        "teacher_posterior": Param(str, "estimator of the teacher's posterior, the student's prior (Algorithm 1)",
                                   lambda v: v in _MA_ESTIMATORS, f"one of {_MA_ESTIMATORS}"),
        "prior_jitter": positive_float("added to the student's prior covariances, relative to the layer's mean variance"),
        "n_init": positive_int("k-means restarts (the best is kept)"),
        "max_iter": positive_int("k-means iterations per restart"),
        "n_ellipses": positive_int("neurons drawn in the ellipse figure (report: 16)"),
        "no_worse_tol": Param(float, "'no worse': W2 area minus Euclidean area may fall this far below 0",
                              lambda v: v >= 0, "a number >= 0"),
        "much_better": positive_float("'much better': a mean area difference above this"),
        "circle_tol": _unit("'neurons lie on a circle': largest relative RMS distance of the neuron means from "
                            "their best circle"),
        "scale_ratio": Param(float, "'estimators differ in scale': smallest ratio of the largest to the smallest "
                             "median sd of the three estimates", lambda v: v >= 1, "a number >= 1"),
        "iris_min_accuracy": _unit("Iris claim: accuracy to stay above (report: 0.9)"),
        "iris_param_fraction": _unit("Iris claim: fraction of the parameters kept (report: 0.5)"),
        "hapt_claim_k": Param(int, "accelerometer claim: output neurons after clustering (report: 16)",
                              lambda v: v >= 1, "an integer >= 1"),
        "compress_tol": positive_float("accelerometer claim: largest loss of test R² that counts as 'compressible'"),
        "cpu_threads": CPU_THREADS,
    },
)

# neuron dimensions as in the report's figure (MotionSense 10, MNIST 8, Iris 4; a neuron = weights and bias)
_ma_common = dict(seed=0, lr=0.005, batch_size=64, mnist_pca=7, iris_pca=3, hapt_curve_hidden=9, rank=2,
                  prior_sigma=1.0, init_sigma=0.001, kl_weight=1.0, cluster_cov="bootstrap", contrast_datasets=["iris"],
                  teacher_posterior="sandwich", prior_jitter=0.01,
                  hapt_hidden=3, hapt_small_in=10, hapt_small_out=20, n_ellipses=16, no_worse_tol=0.005,
                  much_better=0.02, circle_tol=0.25, scale_ratio=2.0, iris_min_accuracy=0.9, iris_param_fraction=0.5,
                  hapt_claim_k=16, compress_tol=0.02)
METRIC.profiles = {
    "smoke": {**_ma_common, **dict(profile="smoke", device="cpu", n_seeds=2, datasets=list(_MA_TASKS),
                                   mnist_train=300, mnist_test=200, mnist_hidden=8, mnist_epochs=2,
                                   mnist_ks=[2, 4], iris_hidden=8, iris_epochs=20, iris_ks=[2, 4],
                                   hapt_window=20, hapt_stride=50, hapt_epochs=2, hapt_ks=[4, 8],
                                   n_bootstrap=2, n_init=1, max_iter=10, n_ellipses=8, hapt_claim_k=8,
                                   cpu_threads=1)},
    "book": {**_ma_common, **dict(profile="book", device="auto", n_seeds=5, datasets=list(_MA_TASKS),
                                  mnist_train=2000, mnist_test=2000, mnist_hidden=64, mnist_epochs=10,
                                  mnist_ks=[2, 4, 8, 12, 16, 24, 32, 48], iris_hidden=32, iris_epochs=200,
                                  iris_ks=[1, 2, 3, 4, 6, 8, 12, 16, 24], hapt_window=100, hapt_stride=20,
                                  hapt_epochs=15, hapt_ks=[2, 4, 8, 12, 16, 24, 32, 48, 64], n_bootstrap=10,
                                  n_init=3, max_iter=50, contrast_datasets=["hapt"], cpu_threads=1)},
    "paper": {**_ma_common, **dict(profile="paper", device="auto", n_seeds=10, datasets=list(_MA_TASKS),
                                   mnist_train=60000, mnist_test=10000, mnist_hidden=100,
                                   mnist_epochs=30, mnist_ks=[2, 4, 8, 12, 16, 24, 32, 48, 64, 80],
                                   iris_hidden=32, iris_epochs=500, iris_ks=[1, 2, 3, 4, 6, 8, 12, 16, 24],
                                   hapt_window=100, hapt_stride=2, hapt_epochs=50,
                                   hapt_ks=[2, 4, 8, 12, 16, 24, 32, 48, 64, 80], n_bootstrap=100, n_init=10,
                                   max_iter=100, contrast_datasets=list(_MA_TASKS), cpu_threads=0)},
}

REPORTS: dict[str, Report] = {r.name: r for r in (METRIC, VARIATIONAL, IMPORTANCE, FRAME, RELEVANCE)}

# The chapter beyond the reports: every report's way of shrinking a network on the same models.
_LB_DATASETS = ("mnist", "wine")

LEADERBOARD = Report(
    name="compression_leaderboard",
    title="Compression leaderboard across the reports",
    author="the collection (criteria of reports 1, 2, 3 and 5)",
    seed_id="—",
    claims=False,
    params={
        **COMMON,
        "datasets": Param(list, "data sets", lambda v: len(v) >= 1 and all(d in _LB_DATASETS for d in v),
                          f"a non-empty list drawn from {_LB_DATASETS}"),
        "n_train": Param(int, "MNIST training images, a seeded subset per seed", lambda v: 1 <= v <= 60000,
                         "an integer in [1, 60000]"),
        "n_test": Param(int, "MNIST test images, a seeded subset per seed", lambda v: 1 <= v <= 10000,
                        "an integer in [1, 10000]"),
        "mnist_pool": Param(int, "average-pool MNIST by this factor (28/pool squared inputs; 1 = raw 784)",
                            lambda v: v in (1, 2, 4, 7, 14), "one of 1, 2, 4, 7, 14"),
        "hidden": Param(int, "width of the one hidden layer (the layer whose neurons are clustered)",
                        lambda v: v >= 2, "an integer >= 2"),
        "train_steps": positive_int("minibatch steps of training, the same on every data set (epochs = steps / "
                                    "batches per epoch, rounded up)"),
        "lr": positive_float("Adam learning rate"),
        "batch_size": positive_int("minibatch size (training and importance updates)"),
        "prior_sigma": positive_float("standard deviation of the Gaussian prior on each weight"),
        "kl_weight": Param(float, "weight of KL(q||p)/n in the loss (1 = the ELBO)", lambda v: v >= 0, "a number >= 0"),
        "fractions": fraction_grid("fractions of parameters removed by the pruning criteria (0 to 1)"),
        "curvature_n": positive_int("training points used for the Hessian (OBD, Belsley)"),
        "belsley_steps": positive_int("eigen-decompositions in Belsley's removal"),
        "laplace_damping": positive_float("damping added to the Hessian before inverting it (Laplace covariance)"),
        "condition_index": Param(str, "Belsley's condition index, as in report 5: 'deck' or 'belsley'",
                                 lambda v: v in ("deck", "belsley"), "one of 'deck', 'belsley'"),
        "importance_batches": positive_int("minibatches of mirror descent for the weight importances (report 3)"),
        "importance_lr": positive_float("eta: exponentiated-gradient step of the importances"),
        "importance_gamma": positive_float("gamma: importance-weighted gradient step inside the objective"),
        "importance_tau": Param(float, "tau: weight of the KL-to-uniform regulariser of the importances",
                                lambda v: v >= 0, "a number >= 0"),
        "loss_tol_pp": positive_float("accuracy loss (percentage points) tolerated in the 'kept fraction' column"),
        "cpu_threads": CPU_THREADS,
    },
)

_lb_common = dict(seed=0, datasets=list(_LB_DATASETS), prior_sigma=1.0, kl_weight=1.0, lr=0.01,
                  laplace_damping=0.001, condition_index="deck", importance_lr=300.0, importance_gamma=0.1, importance_tau=1e-3,
                  loss_tol_pp=1.0)
LEADERBOARD.profiles = {
    "smoke": {**_lb_common, **dict(profile="smoke", device="cpu", n_seeds=2, n_train=500, n_test=200, mnist_pool=4,
                                   hidden=4, train_steps=16, batch_size=64, fractions=[0.0, 0.5, 1.0], curvature_n=200,
                                   belsley_steps=3, importance_batches=2, cpu_threads=1)},
    "book": {**_lb_common, **dict(profile="book", device="auto", n_seeds=5, n_train=10000, n_test=2000, mnist_pool=4,
                                  hidden=32, train_steps=1600, batch_size=128,
                                  fractions=[round(i / 40, 3) for i in range(41)],
                                  curvature_n=2000, belsley_steps=100, importance_batches=50, cpu_threads=1)},
    "paper": {**_lb_common, **dict(profile="paper", device="auto", n_seeds=5, n_train=60000, n_test=10000,
                                   mnist_pool=2, hidden=64, train_steps=25000, batch_size=128,
                                   fractions=[round(i / 100, 2) for i in range(101)], curvature_n=10000,
                                   belsley_steps=100, importance_batches=200, cpu_threads=0)},
}
REPORTS[LEADERBOARD.name] = LEADERBOARD  # after the five reports


# Each report's cross-parameter rules ("module:function", imported when first needed so that this file
# imports no experiment code).  The function takes the validated parameter dict and raises
# ProfileError (a ValueError is turned into one) when the values do not fit together.
CHECKS: dict[str, str] = {
    "variational_complexity": "paramspace.complexity:check_params",
    "importance_dropconnect": "paramspace.importance:check_params",
    "frame_regularization": "paramspace.frame:check_params",
    "metric_analysis": "paramspace.metric:check_params",
    "compression_leaderboard": "paramspace.leaderboard:check_params",
}


def get_report(name: str) -> Report:
    if name not in REPORTS:
        raise ProfileError(f"unknown report {name!r}; valid reports: {', '.join(REPORTS)}")
    return REPORTS[name]


def check_across(report: str, values: dict[str, Any]) -> None:
    """Rules that involve several parameters: the collection's own (seeds stay below 2**32) and the
    report's (:data:`CHECKS`).  Raises :class:`ProfileError` naming the report."""
    if "seed" in values and "n_seeds" in values and values["seed"] + values["n_seeds"] > SEED_LIMIT:
        raise ProfileError(f"{report}: seed + n_seeds = {values['seed'] + values['n_seeds']} must be at most 2**32 "
                           "(seed s of n_seeds uses seed + s)")
    target = CHECKS.get(report)
    if target is None:
        return
    import importlib

    module, func = target.split(":")
    check = getattr(importlib.import_module(module), func)
    try:
        check(dict(values))
    except ProfileError:
        raise
    except ValueError as exc:
        raise ProfileError(f"{report}: {exc}") from None


def validate(report: str, values: dict[str, Any]) -> dict[str, Any]:
    """Check that ``values`` gives every parameter of ``report`` exactly once, with valid values
    (each alone: type, collection-wide bounds, its rule)."""
    rep = get_report(report)
    unknown = sorted(set(values) - set(rep.params))
    if unknown:
        raise ProfileError(f"{report}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    missing = [k for k in rep.params if k not in values]
    if missing:
        raise ProfileError(f"{report}: missing parameter(s) {missing}")
    return {k: spec.validate(report, k, values[k]) for k, spec in rep.params.items()}


def resolve(report: str, profile: str = "book", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated parameters of ``report`` under ``profile``, with ``overrides`` applied: each value
    alone and then the cross-parameter rules (:func:`check_across`), all before any compute."""
    rep = get_report(report)
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    values = copy.deepcopy(rep.profiles[profile])
    overrides = dict(overrides or {})
    if "profile" in overrides and overrides["profile"] != profile:
        raise ProfileError("set the profile with the profile argument, not as an override")
    unknown = sorted(set(overrides) - set(rep.params))
    if unknown:
        raise ProfileError(f"{report}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    values.update(overrides)
    values = validate(report, values)
    check_across(report, values)
    return values


def params_from_namespace(report: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Pick ``report``'s parameters out of a notebook's globals and validate them (values and the
    cross-parameter rules)."""
    rep = get_report(report)
    values = validate(report, {k: namespace[k] for k in rep.params if k in namespace})
    check_across(report, values)
    return values
