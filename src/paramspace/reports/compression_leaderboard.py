"""The leaderboard: compression_leaderboard (its parameters and profiles; being moved here from ``leaderboard.py``)."""

from __future__ import annotations

from .spec import COMMON, CPU_THREADS, Param, Report, _number, fraction_grid, int_list, positive_float, positive_int

_LB_DATASETS = ("mnist", "wine")

REPORT = Report(
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
REPORT.profiles = {
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


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
    from ..leaderboard import check_params as _check

    _check(params)


REPORT.check = check_params
