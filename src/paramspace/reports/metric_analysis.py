"""Report 1: metric_analysis (its parameters and profiles; being moved here from ``metric.py``)."""

from __future__ import annotations

from .spec import COMMON, CPU_THREADS, Param, Report, _number, fraction_grid, int_list, positive_float, positive_int

_MA_TASKS = ("mnist", "iris", "hapt")
_MA_ESTIMATORS = ("bootstrap", "bayes", "sandwich")
_MA_CLUSTER_COVS = ("bootstrap", "bayes", "student")


def _k_grid(help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                                                            for x in v) and all(a < b for a, b in zip(v[:-1], v[1:])),
                 "a non-empty strictly increasing list of positive integers")


def _unit(help: str) -> Param:
    return Param(float, help, lambda v: 0 < v < 1, "a number in (0, 1)")


REPORT = Report(
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
REPORT.profiles = {
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


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
    from ..metric import check_params as _check

    _check(params)


REPORT.check = check_params
