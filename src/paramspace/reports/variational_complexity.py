"""Report 2: variational_complexity (its parameters and profiles; being moved here from ``complexity.py``)."""

from __future__ import annotations

from .spec import COMMON, CPU_THREADS, Param, Report, _number, fraction_grid, int_list, positive_float, positive_int

def _lambda_grid(help: str) -> Param:
    return Param(list, help,
                 lambda v: len(v) >= 1 and all(_number(x) and x >= 0 for x in v)
                 and all(a < b for a, b in zip(v[:-1], v[1:])),
                 "a non-empty, strictly increasing list of numbers >= 0")


REPORT = Report(
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
REPORT.profiles = {
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


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
    from ..complexity import check_params as _check

    _check(params)


REPORT.check = check_params
