"""Report 5: parameter_relevance (its parameters and profiles; being moved here from ``relevance.py``)."""

from __future__ import annotations

from .spec import COMMON, CPU_THREADS, Param, Report, _number, fraction_grid, int_list, positive_float, positive_int

_RELEVANCE_DATASETS = ("wine", "boston", "synthetic")

REPORT = Report(
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
REPORT.profiles = {
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
