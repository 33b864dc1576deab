"""Named parameter profiles per report, validated before any compute.

Each report declares its parameters (type and a check) once in :data:`REPORTS`; each profile
(``smoke``, ``book``, ``paper``) gives a complete value for every one of them.  The ``book``
values are also the defaults written in the notebook's ``parameters`` cell (a test keeps the two
equal).  :func:`resolve` returns a validated copy of a profile with optional overrides.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "book", "paper")
DEVICES = ("auto", "cpu", "cuda")


class ProfileError(ValueError):
    """Unknown report, profile or parameter, or a value of the wrong type or range."""


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
            value, ok = float(value), True
        if list in types and isinstance(value, tuple):
            value, ok = list(value), True
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            raise ProfileError(f"{report}: parameter {name!r} must be {names}, got {type(value).__name__} {value!r}")
        if self.check is not None and not self.check(value):
            raise ProfileError(f"{report}: parameter {name!r} = {value!r} is invalid: must be {self.rule}")
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
                    lambda v: v in DEVICES or v.startswith("cuda:"), f"one of {DEVICES} or 'cuda:N'"),
    "seed": Param(int, "base random seed; seed s of n_seeds uses seed + s", lambda v: v >= 0, "an integer >= 0"),
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
        "epochs": positive_int("SGD epochs of every separately trained model"),
        "hyper_epochs": positive_int("SGD epochs of each hypernetwork"),
        "lr": positive_float("plain-SGD learning rate (models, hypernetworks and fine-tuning)"),
        "batch_size": positive_int("minibatch size"),
        "prior_variance": positive_float("variance of the Gaussian prior N(0, prior_variance) on every parameter"),
        "init_sigma": positive_float("initial posterior standard deviation of every parameter"),
        "local_reparam": Param(bool, "sample pre-activations (local reparameterisation) instead of weights"),
        "lambdas": _lambda_grid("complexity coefficients λ of the separate models (report: 0, 0.01, 0.1, 1, 10, 100)"),
        "lambda_min": positive_float("lower end of the λ range the hypernetworks are trained on (log-uniform)"),
        "lambda_max": positive_float("upper end of the λ range the hypernetworks are trained on"),
        "lambdas_per_batch": positive_int("values of λ drawn per minibatch when training a hypernetwork (report: 5)"),
        "rank": positive_int("rank of the λ-dependent part of each weight matrix (low-rank hypernetwork)"),
        "embed_dim": positive_int("dimension of the learned embedding f(λ) of the low-rank hypernetwork"),
        "hyper_clip": Param(float, "clip the hypernetworks' gradient norm to this value (0 = no clipping)",
                            lambda v: v >= 0, "a number >= 0"),
        "fractions": fraction_grid("fractions of the weights removed (must start at 0)"),
        "finetune_steps": Param(int, "SGD steps of fine-tuning after pruning (0 = no fine-tuning)",
                                lambda v: v >= 0, "an integer >= 0"),
        "claim_fraction": Param(float, "fraction removed at which the claims are checked (report: 0.8); one of `fractions`",
                                lambda v: 0 < v < 1, "a number in (0, 1)"),
        "drop_tol_pp": positive_float("largest accuracy drop (percentage points) that counts as 'no significant loss'"),
        "similar_tol_pp": positive_float("largest mean |difference of curve areas| (percentage points) that counts as 'similar'"),
        "n_lambda_grid": Param(int, "points of the fine λ grid along which the hypernetworks are evaluated",
                               lambda v: v >= 2, "an integer >= 2"),
        "cpu_threads": CPU_THREADS,
    },
)

_vc_common = dict(hidden=[100], lr=0.5, batch_size=256, prior_variance=0.1, init_sigma=0.05, local_reparam=True,
                  lambdas=[0.0, 0.01, 0.1, 1.0, 10.0, 100.0], lambda_min=0.01, lambda_max=100.0, lambdas_per_batch=5,
                  rank=1, embed_dim=8, hyper_clip=1.0, fractions=[round(i / 10, 1) for i in range(10)],
                  claim_fraction=0.8, drop_tol_pp=1.0, similar_tol_pp=2.0)
VARIATIONAL.profiles = {
    "smoke": {**_vc_common, **dict(profile="smoke", device="cpu", seed=0, n_seeds=2, n_train=600, n_test=300,
                                   hidden=[16], epochs=1, hyper_epochs=1, batch_size=64,
                                   lambdas=[0.0, 0.1, 1.0, 100.0], lambda_min=0.1, lambdas_per_batch=2, embed_dim=4,
                                   fractions=[0.0, 0.5, 0.8], finetune_steps=2, n_lambda_grid=3, cpu_threads=1)},
    "book": {**_vc_common, **dict(profile="book", device="auto", seed=0, n_seeds=3, n_train=60000, n_test=10000,
                                  epochs=3, hyper_epochs=3, finetune_steps=30, n_lambda_grid=17, cpu_threads=1)},
    "paper": {**_vc_common, **dict(profile="paper", device="auto", seed=0, n_seeds=5, n_train=60000, n_test=10000,
                                   epochs=50, hyper_epochs=50, finetune_steps=235, n_lambda_grid=33, cpu_threads=0)},
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
        "early_epochs": positive_int("'early in training' = the first this many epochs (must be < epochs)"),
        "cpu_threads": CPU_THREADS,
    },
)

_id_common = dict(seed=0, drop_rate=0.3, min_keep=0.5, importance_gamma=0.1, importance_lr=300.0,
                  importance_tau=1e-3, importance_every=1, importance_steps=1)
IMPORTANCE.profiles = {
    "smoke": {**_id_common, **dict(profile="smoke", device="cpu", n_seeds=2, dataset="fashion-mnist", arch="cnn",
                                   width=4, n_train=256, n_test=256, augment=False, epochs=3, batch_size=64,
                                   optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=1, cpu_threads=1)},
    "book": {**_id_common, **dict(profile="book", device="auto", n_seeds=5, dataset="fashion-mnist", arch="cnn",
                                  width=8, n_train=2000, n_test=1000, augment=False, epochs=12, batch_size=64,
                                  optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=3, cpu_threads=1)},
    "paper": {**_id_common, **dict(profile="paper", device="auto", n_seeds=5, dataset="cifar10", arch="resnet18",
                                   width=8, n_train=50000, n_test=10000, augment=True, epochs=50, batch_size=128,
                                   optimizer="sgd", lr=0.1, weight_decay=5e-4, early_epochs=5, cpu_threads=0)},
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
        "cpu_threads": CPU_THREADS,
    },
)

_fr_common = dict(seed=0, methods=list(_FR_METHODS), frame_A=0.5, frame_B=2.0, frame_weight=0.01, mhe_weight=10.0,
                  mhe_power=2.0, so_weight=0.1, srip_weight=0.1, srip_iters=2, ocnn_weight=0.01,
                  simba_checkpoints=[1, 10, 50, 100, 1000])
FRAME.profiles = {
    "smoke": {**_fr_common, **dict(profile="smoke", device="cpu", n_seeds=2, datasets=["fashion-mnist"],
                                   archs=["small_resnet"], widths=[4, 8, 8], n_train=128, n_test=64, augment=False,
                                   epochs=1, batch_size=64, optimizer="adam", lr=0.01, weight_decay=0.0,
                                   grad_clip=0.0, corruptions=list(_FR_CORRUPTIONS), severities=[1, 5], n_shift=32,
                                   simba_basis="pixel", simba_eps=0.2, simba_images=8,
                                   simba_checkpoints=[1, 5, 20], cpu_threads=1)},
    "book": {**_fr_common, **dict(profile="book", device="auto", n_seeds=3, datasets=["mnist", "fashion-mnist"],
                                  archs=["small_resnet"], widths=[8, 16, 32], n_train=3000, n_test=1000,
                                  augment=False, epochs=5, batch_size=64, optimizer="adam", lr=0.01,
                                  weight_decay=0.0, grad_clip=0.0,
                                  corruptions=["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur",
                                               "contrast", "pixelate"], severities=[1, 2, 3, 4, 5], n_shift=500,
                                  simba_basis="dct", simba_eps=0.2, simba_images=50, cpu_threads=1)},
    "paper": {**_fr_common, **dict(profile="paper", device="auto", n_seeds=3, datasets=["cifar10", "cifar100", "svhn"],
                                   archs=["resnet34", "resnet50"], widths=[8, 16, 32], n_train=100000,
                                   n_test=100000, augment=True, epochs=200, batch_size=128, optimizer="sgd",
                                   lr=0.1, weight_decay=5e-4, grad_clip=5.0, corruptions=list(_FR_CORRUPTIONS),
                                   severities=[1, 2, 3, 4, 5], n_shift=10000, simba_basis="dct", simba_eps=0.2,
                                   simba_images=500, cpu_threads=0)},
}

_MA_TASKS = ("mnist", "iris", "hapt")
_MA_ESTIMATORS = ("bootstrap", "bayes", "sandwich")


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
        "iris_hidden": positive_int("hidden neurons of the Iris MLP (the clustered layer)"),
        "iris_epochs": positive_int("training epochs on Iris"),
        "iris_ks": _k_grid("numbers of clusters k for Iris"),
        "hapt_window": Param(int, "input and output window of the accelerometer net, in samples at 50 Hz "
                             "(report: 100, i.e. 100-3-100); its output neurons are clustered",
                             lambda v: v >= 2, "an integer >= 2"),
        "hapt_stride": positive_int("samples between the starts of two training windows"),
        "hapt_hidden": positive_int("bottleneck of the accelerometer net (report: 3)"),
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
        "teacher_posterior": Param(str, "estimator of the teacher's posterior, the student's prior (Algorithm 1)",
                                   lambda v: v in _MA_ESTIMATORS, f"one of {_MA_ESTIMATORS}"),
        "prior_jitter": positive_float("added to the student's prior covariances, relative to the layer's mean variance"),
        "n_init": positive_int("k-means restarts (the best is kept)"),
        "max_iter": positive_int("k-means iterations per restart"),
        "n_ellipses": positive_int("neurons drawn in the ellipse figure (report: 16)"),
        "no_worse_tol": Param(float, "'no worse': W2 area minus Euclidean area may fall this far below 0",
                              lambda v: v >= 0, "a number >= 0"),
        "much_better": positive_float("'much better': a mean area difference above this"),
        "iris_min_accuracy": _unit("Iris claim: accuracy to stay above (report: 0.9)"),
        "iris_param_fraction": _unit("Iris claim: fraction of the parameters kept (report: 0.5)"),
        "hapt_claim_k": Param(int, "accelerometer claim: output neurons after clustering (report: 16)",
                              lambda v: v >= 1, "an integer >= 1"),
        "compress_tol": positive_float("accelerometer claim: largest loss of test R² that counts as 'compressible'"),
        "cpu_threads": CPU_THREADS,
    },
)

_ma_common = dict(seed=0, lr=0.005, batch_size=64, mnist_pca=30, rank=2, prior_sigma=1.0, init_sigma=0.001,
                  kl_weight=1.0, teacher_posterior="sandwich", prior_jitter=0.01, hapt_hidden=3, hapt_small_in=10,
                  hapt_small_out=20, n_ellipses=16, no_worse_tol=0.005, much_better=0.02, iris_min_accuracy=0.9,
                  iris_param_fraction=0.5, hapt_claim_k=16, compress_tol=0.02)
METRIC.profiles = {
    "smoke": {**_ma_common, **dict(profile="smoke", device="cpu", n_seeds=2, datasets=list(_MA_TASKS),
                                   mnist_train=300, mnist_test=200, mnist_pca=8, mnist_hidden=8, mnist_epochs=2,
                                   mnist_ks=[2, 4], iris_hidden=8, iris_epochs=20, iris_ks=[2, 4],
                                   hapt_window=20, hapt_stride=50, hapt_epochs=2, hapt_ks=[4, 8],
                                   n_bootstrap=2, n_init=1, max_iter=10, n_ellipses=8, hapt_claim_k=8,
                                   cpu_threads=1)},
    "book": {**_ma_common, **dict(profile="book", device="auto", n_seeds=5, datasets=list(_MA_TASKS),
                                  mnist_train=5000, mnist_test=2000, mnist_hidden=64, mnist_epochs=15,
                                  mnist_ks=[2, 4, 8, 12, 16, 24, 32, 48], iris_hidden=32, iris_epochs=200,
                                  iris_ks=[1, 2, 3, 4, 6, 8, 12, 16, 24], hapt_window=100, hapt_stride=10,
                                  hapt_epochs=20, hapt_ks=[2, 4, 8, 12, 16, 24, 32, 48, 64], n_bootstrap=10,
                                  n_init=3, max_iter=50, cpu_threads=1)},
    "paper": {**_ma_common, **dict(profile="paper", device="auto", n_seeds=10, datasets=list(_MA_TASKS),
                                   mnist_train=60000, mnist_test=10000, mnist_pca=50, mnist_hidden=100,
                                   mnist_epochs=30, mnist_ks=[2, 4, 8, 12, 16, 24, 32, 48, 64, 80],
                                   iris_hidden=32, iris_epochs=500, iris_ks=[1, 2, 3, 4, 6, 8, 12, 16, 24],
                                   hapt_window=100, hapt_stride=2, hapt_epochs=50,
                                   hapt_ks=[2, 4, 8, 12, 16, 24, 32, 48, 64, 80], n_bootstrap=100, n_init=10,
                                   max_iter=100, cpu_threads=0)},
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


def get_report(name: str) -> Report:
    if name not in REPORTS:
        raise ProfileError(f"unknown report {name!r}; valid reports: {', '.join(REPORTS)}")
    return REPORTS[name]


def validate(report: str, values: dict[str, Any]) -> dict[str, Any]:
    """Check that ``values`` gives every parameter of ``report`` exactly once, with valid values."""
    rep = get_report(report)
    unknown = sorted(set(values) - set(rep.params))
    if unknown:
        raise ProfileError(f"{report}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    missing = [k for k in rep.params if k not in values]
    if missing:
        raise ProfileError(f"{report}: missing parameter(s) {missing}")
    return {k: spec.validate(report, k, values[k]) for k, spec in rep.params.items()}


def resolve(report: str, profile: str = "book", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated parameters of ``report`` under ``profile``, with ``overrides`` applied."""
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
    return validate(report, values)


def params_from_namespace(report: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Pick ``report``'s parameters out of a notebook's globals and validate them."""
    rep = get_report(report)
    return validate(report, {k: namespace[k] for k in rep.params if k in namespace})
