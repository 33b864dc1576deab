"""Report 1 (Nasyrov 2023), metric analysis of the parameter space: parameters, experiment, tables and claims.

The report treats every neuron of a layer as a Gaussian ``N(w_bar_i, Sigma_i)``, clusters neurons by
Euclidean or W2 k-means and replaces each cluster by its centre (the methods: :mod:`paramspace.neurons`
and :mod:`paramspace.wasserstein`).  This module holds the report's side: its parameters and profiles
(``REPORT``) and the rules across them (:func:`check_params`); the tasks (MNIST, Iris, HAPT windows), the
bootstrap, Bayesian and teacher -> student runs (all trained by :func:`paramspace.train.train`); the
report contract :func:`plan` / :func:`execute` / :func:`summarize`, whose runs are one per (task, seed)
of the quality-vs-parameters figure and of the Bayesian-student contrast, one per seed of the
100-3-100 circle study, and one for the estimator comparison; the tables, the claims and the generated
prose of the page.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import pruning
from ..neurons import (align_covariances, align_model, bootstrap_covariances, cluster_sweep,
                       kmeans_neurons, linear_indices, lowrank_bayes, merge_neurons, neuron_covariances,
                       neuron_params, partition_agreement, teacher_answers)
from ..wasserstein import w2_pairwise
from .spec import COMMON, CPU_THREADS, Param, ProfileError, Report, positive_float, positive_int, subset_of

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
        "datasets": subset_of(_MA_TASKS, "tasks of the quality-vs-parameters figure"),
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
    if params["hapt_claim_k"] > params["hapt_window"]:
        raise ProfileError("metric_analysis: hapt_claim_k must not exceed hapt_window (the number of output neurons)")
    if params["n_ellipses"] > params["hapt_window"]:
        raise ProfileError("metric_analysis: n_ellipses must not exceed hapt_window")
    if params["rank"] > params["hapt_hidden"] + 1:
        raise ProfileError("metric_analysis: rank must not exceed hapt_hidden + 1 (the output neurons' dimension)")


REPORT.check = check_params


# --- the report's experiment ---------------------------------------------------------------------------

TASKS = _MA_TASKS
TASK_LABELS = {"mnist": "MNIST", "iris": "Iris", "hapt": "Accelerometer"}
ESTIMATORS = _MA_ESTIMATORS
ESTIMATOR_LABELS = {"bootstrap": "bootstrap (aligned runs)", "bayes": "Bayesian, low-rank VI",
                    "sandwich": "Hessian sandwich $H^{-1}GH^{-1}/n$"}
CLUSTER_COVS = _MA_CLUSTER_COVS
METRIC_LABELS = {"euclidean": "Euclidean k-means of the means", "w2": "W2 k-means of the Gaussians"}


def pca_reduce(ds, n_components: int, seed: int = 0):
    """``ds`` with its inputs replaced by their first ``n_components`` principal components (fitted on
    the training inputs), each scaled to unit training variance; ``extra["explained"]`` is the
    fraction of the pixel variance they keep."""
    from dataclasses import replace

    from sklearn.decomposition import PCA

    pca = PCA(n_components, random_state=seed).fit(ds.X_train.numpy())
    Ztr, Zte = pca.transform(ds.X_train.numpy()), pca.transform(ds.X_test.numpy())
    sd = Ztr.std(0)
    return replace(ds, name=f"{ds.name}-pca{n_components}",
                   X_train=torch.tensor(Ztr / sd, dtype=torch.float32),
                   X_test=torch.tensor(Zte / sd, dtype=torch.float32),
                   extra={**ds.extra, "explained": float(pca.explained_variance_ratio_.sum())})


def load_task(name: str, params: dict, seed: int):
    """The data of one task: MNIST (subsampled, PCA-reduced), Iris, or HAPT walking windows."""
    from .. import data as D

    if name == "mnist":
        ds = D.load_mnist(n_train=params["mnist_train"], n_test=params["mnist_test"], seed=seed)
        return pca_reduce(ds, params["mnist_pca"], seed)
    if name == "iris":
        ds = D.load_iris(seed=seed)
        return pca_reduce(ds, params["iris_pca"], seed) if params.get("iris_pca", 0) else ds
    if name == "hapt":
        w = params["hapt_window"]
        return D.hapt_windows(w, w, stride=params["hapt_stride"], seed=seed)
    raise ValueError(f"unknown task {name!r}; valid: {TASKS}")


def task_spec(name: str, params: dict, hidden: int | None = None) -> dict:
    """Network and clustering of a task: hidden widths, activation, the index of the clustered
    ``nn.Linear`` in the Sequential, epochs, the k grid, and whether alignment may flip signs.

    The accelerometer network is window -> ``hidden`` tanh -> window with its output neurons clustered;
    ``hidden`` defaults to ``hapt_curve_hidden`` (the quality-vs-parameters figure, neuron dimension
    ``hapt_curve_hidden + 1``); the ellipse figures pass ``hapt_hidden`` (the report's 100-3-100)."""
    if name == "hapt":
        h = hidden if hidden is not None else params.get("hapt_curve_hidden", params["hapt_hidden"])
        return dict(widths=[h], act="tanh", layer=2, epochs=params["hapt_epochs"], ks=params["hapt_ks"],
                    sign_flip=True)
    return dict(widths=[params[f"{name}_hidden"]], act="relu", layer=0, epochs=params[f"{name}_epochs"],
                ks=params[f"{name}_ks"], sign_flip=False)


def out_dim(ds) -> int:
    return ds.n_classes if ds.task == "classification" else int(ds.y_train.reshape(len(ds.y_train), -1).shape[1])


def new_model(ds, spec: dict, seed: int) -> nn.Sequential:
    from ..models import mlp
    from ..train import seed_everything

    seed_everything(seed)
    return mlp(ds.n_features, spec["widths"], out_dim(ds), spec["act"])


def fit(model, ds, spec: dict, params: dict, seed: int, epochs: int | None = None, regularizer=None):
    """Adam on the mean NLL (+ ``regularizer``) with the report's learning rate and batch size;
    the model comes back on the CPU, in evaluation mode."""
    from ..train import train

    hist = train(model, ds, epochs=epochs or spec["epochs"], lr=params["lr"], batch_size=params["batch_size"],
                 seed=seed, device=params["device"], progress=False, regularizer=regularizer)
    model.cpu().eval()
    return hist


def bootstrap_rows(n: int, n_models: int, rng) -> torch.Tensor:
    """``(n_models, n)`` row indices: model b's bootstrap resample of the ``n`` training rows (drawn with
    replacement, one ``rng.integers`` call per model, in order); the test set is unchanged."""
    return torch.stack([torch.as_tensor(rng.integers(0, n, n)) for _ in range(n_models)])


def bootstrap_runs(init: nn.Sequential, reference: nn.Sequential, ds, spec: dict, params: dict, seed: int,
                   n_models: int, progress: bool = False):
    """``n_models`` copies of ``init`` (the reference's initial weights) trained on bootstrap
    resamples of the training set, each aligned to ``reference`` (:func:`align_model`).

    The copies are one batched model family (:func:`paramspace.family.fit_family`, copy b on the rows
    :func:`bootstrap_rows` drew for it, seed ``seed + 1000 + b``): the same Adam, learning rate, batch
    size and epochs as :func:`fit`, equal to ``n_models`` separate trainings up to float rounding.

    Returns ``(runs, moved)``: the aligned networks and the fraction of hidden neurons that the
    alignment permuted or negated (0 when every run kept its neurons in place)."""
    from ..family import fit_family

    rng = np.random.default_rng([seed, 1])
    rows = bootstrap_rows(len(ds.X_train), n_models, rng)
    models = [copy.deepcopy(init) for _ in range(n_models)]
    fit_family(models, ds, seeds=[seed + 1000 + b for b in range(n_models)], rows=rows, epochs=spec["epochs"],
               lr=params["lr"], batch_size=params["batch_size"], device=params["device"], progress=progress,
               desc="bootstrap")
    runs, moved, total = [], 0, 0
    for m in models:
        aligned, perms, signs = align_model(reference, m.cpu().eval(), sign_flip=spec["sign_flip"])
        moved += sum(int(np.sum((p != np.arange(len(p))) | (s < 0))) for p, s in zip(perms, signs))
        total += sum(len(p) for p in perms)
        runs.append(aligned)
    return runs, moved / max(total, 1)


def bayes_posterior(init: nn.Sequential, reference: nn.Sequential, ds, spec: dict, params: dict, seed: int):
    """Estimator (2): a low-rank Bayesian copy of ``init`` trained by variational inference on the data
    (prior ``N(0, prior_sigma^2 I)`` per neuron, negative ELBO per example ``NLL + KL / n``), then
    aligned to ``reference``.  Returns ``(bayes, {layer: (means, covs)}, moved)``."""
    from ..variational import kl_regularizer, to_deterministic

    bayes = lowrank_bayes(init, params["rank"], params["prior_sigma"], params["init_sigma"])
    fit(bayes, ds, spec, params, seed + 2000, regularizer=kl_regularizer(len(ds.X_train), params["kl_weight"]))
    det = to_deterministic(bayes)
    aligned, perms, signs = align_model(reference, det, sign_flip=spec["sign_flip"])
    out = {}
    for q, li in enumerate(linear_indices(bayes)):
        cov = align_covariances(bayes[li].covariance().detach().double().numpy(), q, perms, signs)
        out[li] = (neuron_params(aligned, li), cov)
    moved = sum(int(np.sum((p != np.arange(len(p))) | (s < 0))) for p, s in zip(perms, signs))
    return bayes, out, moved / max(sum(len(p) for p in perms), 1)


def fit_student(teacher: nn.Sequential, prior_covs: dict, ds, spec: dict, params: dict, seed: int):
    """Algorithm 1 of the report: the teacher's posterior becomes the student's prior.

    The student has the teacher's architecture with low-rank Gaussian neurons
    (:func:`lowrank_bayes`, means started at the teacher's); the prior of neuron ``i`` of layer
    ``l`` is ``N(w_teacher_i, Sigma_i + eps I)``, ``Sigma_i`` from ``prior_covs[l]`` and ``eps`` =
    ``prior_jitter`` times the layer's mean variance (so that the prior is non-singular).  The student
    is trained on the teacher's answers (:func:`teacher_answers`) by minimising
    ``KL(q || prior) / n + NLL`` (per example, ``kl_weight`` = 1 is the ELBO).
    """
    from ..variational import kl_regularizer

    student = lowrank_bayes(teacher, params["rank"], params["prior_sigma"], params["init_sigma"])
    for li in linear_indices(student):
        S = np.asarray(prior_covs[li], float)
        scale = float(np.mean(np.trace(S, axis1=1, axis2=2))) / S.shape[-1]
        student[li].set_prior(neuron_params(teacher, li), S, jitter=max(params["prior_jitter"] * scale, 1e-12))
    sds = teacher_answers(teacher, ds)
    hist = fit(student, sds, spec, params, seed + 3000,
               regularizer=kl_regularizer(len(ds.X_train), params["kl_weight"]))
    return student, hist


def teacher_posterior(method: str, init, teacher, ds, spec: dict, params: dict, seed: int) -> dict:
    """Per-neuron covariances of every layer of ``teacher`` by ``method`` (one of :data:`ESTIMATORS`)."""
    lins = linear_indices(teacher)
    if method == "sandwich":
        return {li: neuron_covariances(teacher, ds.X_train, ds.y_train, ds.task, li) for li in lins}
    if method == "bootstrap":
        runs, _ = bootstrap_runs(init, teacher, ds, spec, params, seed, params["n_bootstrap"])
        return {li: bootstrap_covariances(runs, li)[1] for li in lins}
    if method == "bayes":
        _, post, _ = bayes_posterior(init, teacher, ds, spec, params, seed)
        return {li: post[li][1] for li in lins}
    raise ValueError(f"method must be one of {ESTIMATORS}, got {method!r}")


def half_k(n_in: int, width: int, n_out: int, fraction: float, last: bool) -> int:
    """The largest k whose merged network has at most ``fraction`` of the parameters of the full
    ``n_in -> width -> n_out`` network (clustered layer: the hidden one, or the output one if ``last``)."""
    if last:  # output layer of width neurons with n_in inputs; the hidden part stays
        raise ValueError("half_k is for a clustered hidden layer")
    full = (n_in + 1) * width + (width + 1) * n_out
    ks = [k for k in range(1, width + 1) if (n_in + 1) * k + (k + 1) * n_out <= fraction * full]
    return max(ks) if ks else 1


def sweep_ks(task: str, ds, spec: dict, params: dict) -> list[int]:
    """The k grid of a task, with the claims' k and the full width added."""
    width = spec["widths"][0] if spec["layer"] == 0 else out_dim(ds)
    ks = set(k for k in spec["ks"] if k <= width) | {width}
    if task == "iris":
        ks.add(half_k(ds.n_features, width, out_dim(ds), params["iris_param_fraction"], False))
    if task == "hapt":
        ks.add(min(params["hapt_claim_k"], width))
    return sorted(ks)


def configure_threads(params: dict) -> int:
    """``cpu_threads`` for torch and, when it is not 0, also for the BLAS/LAPACK and OpenMP pools of
    NumPy, SciPy and scikit-learn (many small eigendecompositions in W2 k-means); returns torch's
    thread count.  Call once, before any compute."""
    from threadpoolctl import threadpool_limits

    from ..train import set_cpu_threads

    if params["cpu_threads"] > 0:
        threadpool_limits(limits=params["cpu_threads"])
    return set_cpu_threads(params["cpu_threads"])


def clustering_covariances(mode: str, init, teacher, ds, spec: dict, params: dict, seed: int):
    """The network whose neurons are clustered and the covariances they are clustered with.

    ``mode`` (:data:`CLUSTER_COVS`):

    * ``"bootstrap"`` (the report's): the network trained on the full training set and, per neuron of
      the clustered layer, the sample covariance over ``n_bootstrap`` aligned bootstrap runs;
    * ``"bayes"``: a low-rank Bayesian network trained by VI on the data (estimator 2), its mean
      network and its posterior covariances;
    * ``"student"``: Algorithm 1, the Bayesian student trained on the teacher's answers with the
      teacher's posterior (``teacher_posterior``) as its prior, its mean network and posterior.

    Returns ``(det, means, covs, extra)``: the deterministic network, the clustered layer's neuron
    means ``(n, d)`` and covariances ``(n, d, d)``, and ``extra`` (the teacher's posterior sd)."""
    from ..variational import to_deterministic

    layer = spec["layer"]
    if mode == "bootstrap":
        runs, _ = bootstrap_runs(init, teacher, ds, spec, params, seed, params["n_bootstrap"])
        covs = bootstrap_covariances(runs, layer)[1]
        return teacher, neuron_params(teacher, layer), covs, {}
    if mode == "bayes":
        bayes, _, _ = bayes_posterior(init, teacher, ds, spec, params, seed)
        det = to_deterministic(bayes)
        return det, neuron_params(det, layer), bayes[layer].covariance().detach().double().numpy(), {}
    if mode == "student":
        tcovs = teacher_posterior(params["teacher_posterior"], init, teacher, ds, spec, params, seed)
        student, _ = fit_student(teacher, tcovs, ds, spec, params, seed)
        det = to_deterministic(student)
        tc = tcovs[layer]
        return det, neuron_params(det, layer), student[layer].covariance().detach().double().numpy(), \
            {"teacher_sd": float(np.sqrt(np.clip(np.trace(tc, axis1=1, axis2=2), 0, None) / tc.shape[-1]).mean())}
    raise ValueError(f"cluster_cov must be one of {CLUSTER_COVS}, got {mode!r}")


def curve_run(run: dict) -> dict:
    """One (task, seed) of the quality-vs-parameters experiment: train the network, estimate the
    covariances of the clustered layer's neurons (``run["cluster_cov"]``, :func:`clustering_covariances`),
    and cluster the neurons with both metrics over the k grid (no fine-tuning).

    ``run`` holds the task, the seed and the parameters (see :func:`plan`).  Returns ``curves`` (rows of
    dataset, seed, metric, k, clusters, n_params, param_fraction, quality, seconds, ari: adjusted Rand
    index between the Euclidean and the W2 partition at that k) and ``models`` (one row: quality of the
    trained and of the clustered network, sizes, the mean sd of the clustering covariances, times)."""
    from ..models import n_params
    from ..quality import quality

    task, seed, mode = run["task"], run["seed"], run["cluster_cov"]
    t0 = time.perf_counter()
    ds = load_task(task, run, seed)
    spec = task_spec(task, run)
    init = new_model(ds, spec, seed)
    teacher = copy.deepcopy(init)
    fit(teacher, ds, spec, run, seed)
    t_teacher = time.perf_counter() - t0
    det, means, covs, extra = clustering_covariances(mode, init, teacher, ds, spec, run, seed)
    t_post = time.perf_counter() - t0 - t_teacher
    layer = spec["layer"]
    rows = cluster_sweep(det, layer, means, covs, sweep_ks(task, ds, spec, run), ds, seed,
                         n_init=run["n_init"], max_iter=run["max_iter"], keep_labels=True)
    ari = partition_agreement(rows)
    curves = [dict(dataset=task, seed=seed, **{k: v for k, v in r.items() if k != "labels"}, ari=ari[r["k"]])
              for r in rows]
    sd = np.sqrt(np.clip(np.trace(covs, axis1=1, axis2=2), 0, None) / covs.shape[-1])
    models = dict(dataset=task, seed=seed, n_params=n_params(det), neurons=len(means), dim=means.shape[1],
                  inputs=ds.n_features, cluster_cov=mode,
                  teacher_quality=quality(teacher, ds.X_test, ds.y_test, ds.task),
                  clustered_quality=quality(det, ds.X_test, ds.y_test, ds.task),
                  cov_sd=float(sd.mean()), teacher_sd=extra.get("teacher_sd", float("nan")),
                  mean_spread=float(np.sqrt(((means - means.mean(0)) ** 2).sum(1).mean() / means.shape[1])),
                  train_s=t_teacher, posterior_s=t_post, total_s=time.perf_counter() - t0,
                  explained=ds.extra.get("explained", float("nan")))
    return {"curves": curves, "models": models}


def curve_frames(results: list[dict]) -> dict[str, pd.DataFrame]:
    """The ``curves`` and ``models`` frames of :func:`curve_run` results, in their order (empty frames
    for no results)."""
    return {"curves": pd.DataFrame([row for r in results for row in r["curves"]]),
            "models": pd.DataFrame([r["models"] for r in results])}


def contrast_table(results: dict, contrast: dict) -> pd.DataFrame:
    """Per task and clustering covariance: the mean ARI of the Euclidean and the W2 partition over
    the non-trivial k (1 < k < n) and seeds, the share of those (k, seed) where the partitions are the
    same, the covariances' sd against the spread of the neuron means, and the W2 minus Euclidean area."""
    rows = []
    for res in (results, contrast):
        curves, models = res["curves"], res["models"]
        if not len(curves):
            continue
        auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
        for d in curves.dataset.unique():
            sub = curves[(curves.dataset == d) & (curves.metric == "w2")]
            kmax = sub.groupby("seed").k.transform("max")
            mid = sub[(sub.k > 1) & (sub.k < kmax)]
            mm = models[models.dataset == d]
            rows.append({"task": TASK_LABELS[d], "covariances": mm.cluster_cov.iloc[0], "ARI (mean)": mid.ari.mean(),
                         "same partition (share of k, seed)": float((mid.ari >= 1 - 1e-12).mean()),
                         "covariance sd / spread of means": float(mm.cov_sd.mean() / mm.mean_spread.mean()),
                         "W2 minus Euclidean area": float((auc.loc[d]["w2"] - auc.loc[d]["euclidean"]).mean())})
    return pd.DataFrame(rows).sort_values(["task", "covariances"]).reset_index(drop=True)


def ring_run(run: dict) -> dict:
    """The report's 100-3-100 accelerometer network (``hapt_window`` -> ``hapt_hidden`` tanh ->
    ``hapt_window``), trained for one seed (``run["seed"]``): how close its output neurons lie to a circle
    (:func:`circle_deviation`) and the test R^2 it keeps when its output neurons are merged into
    ``hapt_claim_k`` clusters (Euclidean k-means of the neurons; merging needs no covariance).

    Returns one row: seed, deviation, var2 (share of the variance in the circle's plane), radius_cv
    (coefficient of variation of the in-plane radius), turns, quality (all neurons), quality_k
    (``hapt_claim_k`` clusters)."""
    from ..quality import quality

    seed = run["seed"]
    spec = task_spec("hapt", run, hidden=run["hapt_hidden"])
    ds = load_task("hapt", run, seed)
    net = new_model(ds, spec, seed)
    fit(net, ds, spec, run, seed)
    means = neuron_params(net, spec["layer"])
    c = circle_stats(means)
    labels, cm, _ = kmeans_neurons(means, None, run["hapt_claim_k"], "euclidean", seed=seed,
                                   n_init=run["n_init"], max_iter=run["max_iter"], algorithm="lloyd")
    merged = merge_neurons(net, spec["layer"], labels, cm)
    return dict(seed=seed, deviation=circle_deviation(means), var2=c["var2"], radius_cv=c["radius_cv"],
                turns=c["turns"],
                quality=quality(net, ds.X_test, ds.y_test, ds.task),
                quality_k=quality(merged, ds.X_test, ds.y_test, ds.task))


def recover(model: nn.Sequential, signal: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """Autoregressive recovery of a series: every block of ``n_out`` samples is predicted from the
    ``n_in`` true samples before it (one step ahead, block by block).  Returns an array like
    ``signal`` with NaN where nothing was predicted (the first ``n_in`` samples and a short tail)."""
    from ..models import predict

    starts = np.arange(n_in, len(signal) - n_out + 1, n_out)
    X = torch.tensor(np.stack([signal[t - n_in:t] for t in starts]), dtype=torch.float32)
    Y = predict(model, X).numpy()
    out = np.full(len(signal), np.nan)
    for t, y in zip(starts, Y):
        out[t:t + n_out] = y
    return out


def circle_stats(means: np.ndarray) -> dict:
    """How much the neuron means look like points along a circle: in the plane of their first two
    principal components, the share of their variance that plane holds, the number of turns the
    sequence of neurons (in index order) makes around the centre, and the coefficient of variation
    of the radius."""
    C = means - means.mean(0)
    U, s, Vt = np.linalg.svd(C, full_matrices=False)
    P = C @ Vt[:2].T
    ang = np.unwrap(np.arctan2(P[:, 1], P[:, 0]))
    r = np.hypot(P[:, 0], P[:, 1])
    return dict(var2=float((s[:2] ** 2).sum() / (s**2).sum()), turns=float(abs(ang[-1] - ang[0]) / (2 * np.pi)),
                radius_cv=float(r.std() / r.mean()), basis=Vt[:2], centre=means.mean(0))


def circle_deviation(means: np.ndarray) -> float:
    """How far points are from a circle, relative to its radius: in the plane of their first two
    principal components, around their centroid, the circle of radius ``r`` = the mean in-plane
    radius; returns ``sqrt(mean_i((r_i - r)^2 + |o_i|^2)) / r`` with ``r_i`` the in-plane radius of
    point ``i`` and ``o_i`` its component outside the plane (0 = every point on the circle)."""
    C = np.asarray(means, float) - np.mean(means, 0)
    _, _, Vt = np.linalg.svd(C, full_matrices=False)
    P = C @ Vt[:2].T
    out = C - P @ Vt[:2]
    r = np.hypot(P[:, 0], P[:, 1]) if P.shape[1] == 2 else np.abs(P[:, 0])
    rbar = float(r.mean())
    if rbar <= 0:
        return float("inf")
    return float(np.sqrt(np.mean((r - rbar) ** 2 + (out**2).sum(1))) / rbar)


def ellipse_axes(cov2: np.ndarray) -> tuple[float, float]:
    lam = np.clip(np.linalg.eigvalsh(cov2), 0, None)
    return float(np.sqrt(lam[-1])), float(np.sqrt(lam[0]))


def estimator_comparison(params: dict) -> dict:
    """The accelerometer experiment of the report, for ``params["seed"]`` (one run of :func:`plan`): the
    window -> 3 -> window network (the teacher) and a small ``hapt_small_in -> 3 -> hapt_small_out``
    one, their recovered series, and the three covariance estimates of the output-layer neurons.

    Bootstrap and Bayesian runs start from the teacher's initial weights and are aligned to the
    trained teacher; the sandwich is evaluated at the teacher.  Returns a dict (arrays and numbers, no
    networks) with the data set's sizes and sampling rate (``data``), ``means``/``covs`` per estimator
    (``(n, d)``, ``(n, d, d)``), the small network's bootstrap ``small_means``/``small_covs``, the
    alignment statistics, the test quality of both networks, the longest test segment and its
    recovery, the wall time of each estimator and the circle statistics of the teacher's neurons.
    """
    from ..quality import quality

    seed = params["seed"]
    out = {"seconds": {}}
    ds = load_task("hapt", params, seed)
    spec = task_spec("hapt", params, hidden=params["hapt_hidden"])
    layer = spec["layer"]
    init = new_model(ds, spec, seed)
    teacher = copy.deepcopy(init)
    t0 = time.perf_counter()
    fit(teacher, ds, spec, params, seed)
    out["seconds"]["teacher"] = time.perf_counter() - t0
    from .. import data as D

    small_ds = D.hapt_windows(params["hapt_small_in"], params["hapt_small_out"], stride=params["hapt_stride"],
                              seed=seed)
    small_init = new_model(small_ds, spec, seed)
    small = copy.deepcopy(small_init)
    fit(small, small_ds, spec, params, seed)
    small_runs, _ = bootstrap_runs(small_init, small, small_ds, spec, params, seed, params["n_bootstrap"])
    out["small_means"] = neuron_params(small, layer)
    out["small_covs"] = bootstrap_covariances(small_runs, layer)[1]
    means, covs = {}, {}
    t0 = time.perf_counter()
    runs, moved_boot = bootstrap_runs(init, teacher, ds, spec, params, seed, params["n_bootstrap"])
    means["bootstrap"], covs["bootstrap"] = bootstrap_covariances(runs, layer)
    out["seconds"]["bootstrap"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, post, moved_bayes = bayes_posterior(init, teacher, ds, spec, params, seed)
    means["bayes"], covs["bayes"] = post[layer]
    out["seconds"]["bayes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    means["sandwich"] = neuron_params(teacher, layer)
    covs["sandwich"] = neuron_covariances(teacher, ds.X_train, ds.y_train, ds.task, layer)
    out["seconds"]["sandwich"] = time.perf_counter() - t0
    seg = max(ds.extra["test_segments"], key=len)
    out.update(data=dict(rate_hz=ds.extra["rate_hz"], n_train=len(ds.X_train), n_test=len(ds.X_test),
                         train_users=len(ds.extra["train_users"]), test_users=len(ds.extra["test_users"])),
               means=means, covs=covs, layer=layer,
               moved={"bootstrap": moved_boot, "bayes": moved_bayes},
               quality={"teacher": quality(teacher, ds.X_test, ds.y_test, ds.task),
                        "small": quality(small, small_ds.X_test, small_ds.y_test, small_ds.task)},
               segment=seg,
               recovered={"teacher": recover(teacher, seg, params["hapt_window"], params["hapt_window"]),
                          "small": recover(small, seg, params["hapt_small_in"], params["hapt_small_out"])},
               circle=circle_stats(means["sandwich"]),
               deviation={e: circle_deviation(means[e]) for e in ESTIMATORS},
               median_sd={e: float(np.median(np.sqrt(np.clip(np.trace(covs[e], axis1=1, axis2=2), 0, None)
                                                     / covs[e].shape[-1]))) for e in ESTIMATORS})
    return out


def estimator_table(comp: dict, n: int) -> pd.DataFrame:
    """Per estimator, over all output neurons: median standard deviation ``sqrt(tr(Sigma)/d)``; for
    the first ``n`` neurons, projected on the plane of the ellipse figure, the median ratio of the
    minor to the major axis (1 = a circle) and the median ``|cos|`` of the angle between the major
    axis and the curve of neuron means (1 = the ellipse is stretched along the curve); and the median
    Bures distance (the covariance part of W2) to each estimator's covariance of the same neuron."""
    basis, centre = comp["circle"]["basis"], comp["circle"]["centre"]
    curve = (comp["means"]["sandwich"] - centre) @ basis.T
    tang = np.gradient(curve, axis=0)
    rows = []
    for e in ESTIMATORS:
        C = comp["covs"][e]
        sd = np.sqrt(np.clip(np.trace(C, axis1=1, axis2=2), 0, None) / C.shape[-1])
        ratio, along = [], []
        for i, S in enumerate(C[:n]):
            lam, V = np.linalg.eigh(basis @ S @ basis.T)
            lam = np.clip(lam, 0, None)
            ratio.append(np.sqrt(lam[0] / lam[-1]) if lam[-1] > 0 else np.nan)
            along.append(abs(V[:, -1] @ tang[i]) / max(np.linalg.norm(tang[i]), 1e-300))
        row = {"estimator": e, "median sd": float(np.median(sd)), "axis ratio": float(np.nanmedian(ratio)),
               "major axis along curve |cos|": float(np.median(along))}
        for f in ESTIMATORS:
            z = np.zeros((1, C.shape[-1]))
            Cf = comp["covs"][f]
            row[f"Bures dist. to {f}"] = float(np.median(
                [np.sqrt(w2_pairwise(z, C[i][None], z, Cf[i][None])[0, 0]) for i in range(len(C))]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("estimator")


def auc_table(curves: pd.DataFrame, clip_min: float | None = 0.0) -> pd.DataFrame:
    """Area under quality vs fraction of parameters kept, per (dataset, seed, metric), normalised by
    the range of the fraction; quality floored at ``clip_min`` (R^2 can fall far below 0); see
    :func:`paramspace.pruning.auc_table`."""
    return pruning.auc_table(curves, "param_fraction", "metric", clip_min)


def describe(params: dict) -> str:
    parts = []
    for t in params["datasets"]:
        if t == "mnist":
            parts.append(f"MNIST ({params['mnist_train']} training / {params['mnist_test']} test images, "
                         f"{params['mnist_pca']} principal components -> {params['mnist_hidden']} ReLU -> 10, "
                         f"{params['mnist_epochs']} epochs)")
        elif t == "iris":
            parts.append(f"Iris ({params.get('iris_pca', 0) or 4} -> {params['iris_hidden']} ReLU -> 3, "
                         f"{params['iris_epochs']} epochs)")
        else:
            w = params["hapt_window"]
            parts.append(f"accelerometer ({w} -> {params.get('hapt_curve_hidden', params['hapt_hidden'])} tanh -> {w}, "
                         f"{params['hapt_epochs']} epochs)")
    cov = params.get("cluster_cov", "student")
    how = {"bootstrap": f"{params['n_bootstrap']} bootstrap runs",
           "bayes": f"a Bayesian network with neurons of rank {params['rank']} + diagonal",
           "student": f"the Bayesian student (teacher posterior: {params['teacher_posterior']}, neurons of rank "
                      f"{params['rank']} + diagonal)"}[cov]
    return (f"{'; '.join(parts)}; Adam (lr {params['lr']}, batch {params['batch_size']}); clustering covariances "
            f"from {how}; {params['n_seeds']} seeds")


SLIDE_CURVES = "slide 'Точности модели VS количество параметров'"
SLIDE_ELLIPSES = "slide 'Визуализация пространства нейронов 3 методами'"
SLIDE_CONCLUSIONS = "slide 'Выводы'"
DECK_FIGURES = {"mnist": "MNIST (8)", "iris": "IRIS (4)", "hapt": "MotionSense (10)"}  # the deck's panels
DECK_DIMS = {"mnist": 8, "iris": 4, "hapt": 10}  # neuron dimensions in the deck's figure titles


def neuron_dims(params: dict) -> dict[str, int]:
    """Dimension of a clustered neuron (incoming weights and bias) per task under ``params``."""
    return {"mnist": params["mnist_pca"] + 1, "iris": (params.get("iris_pca", 0) or 4) + 1,
            "hapt": params.get("hapt_curve_hidden", params["hapt_hidden"]) + 1}


def ari_summary(curves: pd.DataFrame, task: str) -> tuple[bool, str]:
    """Whether the Euclidean and W2 partitions of ``task`` are the same at every k and seed, and a
    phrase with the adjusted Rand index over the non-trivial k (1 < k < number of neurons)."""
    if "ari" not in curves:
        return False, "partitions not recorded"
    sub = curves[(curves.dataset == task) & (curves.metric == "w2")]
    same = bool(np.all(sub.ari >= 1 - 1e-12))
    kmax = sub.groupby("seed").k.transform("max")
    mid = sub[(sub.k > 1) & (sub.k < kmax)]
    if not len(mid):
        return same, "no non-trivial k"
    return same, (f"adjusted Rand index of the two partitions {mid.ari.mean():.2f} (mean; min {mid.ari.min():.2f}) "
                  f"over {mid.k.nunique()} values of 1 < k < n and {mid.seed.nunique()} seeds"
                  + ("; the same partition everywhere" if same else ""))


def claims(curves: pd.DataFrame, params: dict, ring: pd.DataFrame | None = None, comp: dict | None = None) -> list:
    """The report's claims against our measurements (see :mod:`paramspace.claims`).

    ``curves`` (:func:`curve_frames` of the curve runs) gives the Euclidean-vs-W2 rows, ``ring`` (one
    :func:`ring_run` row per seed) the circle and 100 -> 16 rows, ``comp`` (:func:`estimator_comparison`)
    the estimator rows; rows whose data are not given are left out."""
    from ..claims import exact_claim, mean_interval, paired_claim

    prof = params["profile"]
    out = []
    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    tol, much = params["no_worse_tol"], params["much_better"]
    dims = neuron_dims(params)
    best, diffs, same_all = None, {}, {}
    for d in params["datasets"]:
        diff = (auc.loc[d]["w2"] - auc.loc[d]["euclidean"]).to_numpy()
        diffs[d] = pd.Series(diff, index=auc.loc[d].index)
        seeds = auc.loc[d].index.to_numpy()
        same, ari = ari_summary(curves, d)
        same_all[d] = same
        c = paired_claim(
            f"{TASK_LABELS[d]} (d = {dims[d]}): W2 clustering is no worse than Euclidean (per seed: area under quality "
            f"vs parameters kept, W2 minus Euclidean, plus our tolerance {tol:g})",
            f"'не хуже' (no worse); red vs blue curve of panel {DECK_FIGURES[d]}, no number given",
            diff, seeds, prof, fmt="{:+.4f}", kind="report",
            deck=f"{SLIDE_CONCLUSIONS}, bullet 3; {SLIDE_CURVES}, panel {DECK_FIGURES[d]}", tolerance=tol,
            same=same or None)
        c.our_value += f"; {ari}"
        out.append(c)
        m, lo, _ = mean_interval(diff)
        if best is None or m > best[1]:
            best = (d, m, lo)
    holds = best is not None and best[1] > much and best[2] > 0
    out.append(exact_claim(
        f"W2 clustering is sometimes much better than Euclidean: on some data set the mean area difference "
        f"exceeds our threshold {much:g} with its 95% interval above 0",
        "'а иногда даже значительно лучше' (sometimes considerably better), no number given",
        f"largest mean difference {best[1]:+.4f} ({TASK_LABELS[best[0]]}"
        + ("; the same partitions" if same_all[best[0]] else "") + ")",
        holds, prof, kind="report", deck=f"{SLIDE_CONCLUSIONS}, bullet 3"))
    small = min(params["datasets"], key=lambda t: dims[t])
    c = paired_claim(
        f"Covariance helps at small neuron dimension: on {TASK_LABELS[small]}, the smallest neuron dimension here "
        f"(d = {dims[small]}), W2 clustering beats Euclidean (per seed: area difference, no tolerance)",
        "'Учет ковариации улучшает качество модели при небольшой размерности нейронов' (IRIS, d = 4, smallest)",
        diffs[small].to_numpy(), diffs[small].index.to_numpy(), prof, fmt="{:+.4f}", kind="report",
        deck=f"{SLIDE_CURVES}, bullet 1")
    c.our_value += f"; {ari_summary(curves, small)[1]}"
    out.append(c)
    large = max(params["datasets"], key=lambda t: dims[t])
    if dims[large] > dims[small]:
        common = diffs[small].index.intersection(diffs[large].index)
        out.append(paired_claim(
            f"The W2 gain is larger at the smallest neuron dimension ({TASK_LABELS[small]}, d = {dims[small]}) than at "
            f"the largest ({TASK_LABELS[large]}, d = {dims[large]}) (per seed: difference of the two area differences)",
            "not stated as a comparison (our reading of bullet 1)",
            (diffs[small].loc[common] - diffs[large].loc[common]).to_numpy(), common.to_numpy(), prof,
            fmt="{:+.4f}", kind="ours"))
    if "iris" in params["datasets"]:
        sub = curves[(curves.dataset == "iris") & (curves.metric == "w2")]
        pick = sub[sub.param_fraction <= params["iris_param_fraction"] + 1e-12]
        acc = pick.sort_values("param_fraction").groupby("seed").tail(1).set_index("seed")["quality"]
        frac = float(pick.groupby("seed")["param_fraction"].max().mean())
        out.append(paired_claim(
            f"Iris: with at most {params['iris_param_fraction']:.0%} of the parameters (W2 clustering; here "
            f"{frac:.0%}), accuracy stays above {params['iris_min_accuracy']:.0%} (per seed: accuracy minus "
            f"{params['iris_min_accuracy']:g})",
            "'удастся сократить в 2 раза количество параметров, сохраняя точность более 90%'",
            acc.to_numpy() - params["iris_min_accuracy"], acc.index.to_numpy(), prof, kind="report",
            deck=f"{SLIDE_CURVES}, bullet 2"))
    w, h = params["hapt_window"], params["hapt_hidden"]
    if ring is not None and len(ring):
        c = paired_claim(
            f"Accelerometer, {w}-{h}-{w}: the output neurons lie on a circle (per seed: minus the relative RMS "
            f"distance of the neuron means from their best circle, plus our tolerance {params['circle_tol']:g})",
            "'нейроны расположены по кругу' (figure, no number)", -ring.deviation.to_numpy(), ring.seed.to_numpy(),
            prof, fmt="{:+.3f}", kind="report", deck=f"{SLIDE_ELLIPSES}, bullet 1; {SLIDE_CONCLUSIONS}, bullet 1",
            tolerance=params["circle_tol"])
        cv = f", in-plane radius varies by {ring.radius_cv.mean():.0%}" if "radius_cv" in ring else ""
        c.our_value += (f"; deviation {ring.deviation.mean():.3f}, share of variance in the circle's plane "
                        f"{ring.var2.mean():.2f}{cv}, {ring.turns.mean():.1f} turns")
        out.append(c)
        loss = (ring.quality - ring.quality_k).to_numpy()
        c = paired_claim(
            f"Accelerometer, {w}-{h}-{w}: the {w} output neurons reduce to {params['hapt_claim_k']} (k-means of the "
            f"neurons, no fine-tuning) losing at most our tolerance {params['compress_tol']:g} of test R² (per seed: "
            f"minus the R² lost, plus the tolerance)",
            "'возможно снижение размерности пространства с 100 до 16'", -loss, ring.seed.to_numpy(), prof,
            fmt="{:+.4f}", kind="report", deck=f"{SLIDE_ELLIPSES}, bullet 2", tolerance=params["compress_tol"])
        c.our_value += f"; R² {ring.quality.mean():.3f} -> {ring.quality_k.mean():.3f}"
        out.append(c)
    if comp is not None:
        sd = comp["median_sd"]
        ratio = max(sd.values()) / max(min(sd.values()), 1e-300)
        out.append(exact_claim(
            f"Accelerometer, {w}-{h}-{w}: the three estimators give different numbers: the largest median sd of a "
            f"neuron is at least our factor {params['scale_ratio']:g} times the smallest (one seed)",
            "'Разные методы оценки ... дают разные численные результаты' (three figures)",
            f"median sd {', '.join(f'{e} {v:.2g}' for e, v in sd.items())}; ratio {ratio:.1f}",
            ratio >= params["scale_ratio"], prof, kind="report", deck=f"{SLIDE_CONCLUSIONS}, bullet 2; {SLIDE_ELLIPSES}"))
        dev = comp["deviation"]
        out.append(exact_claim(
            f"Accelerometer, {w}-{h}-{w}: ... but alike in structure: under every estimator the neuron means lie on a "
            f"circle (relative RMS distance from it at most our tolerance {params['circle_tol']:g}; one seed)",
            "'схожие по структуре (по «кругу»)' (three figures)",
            "deviation " + ", ".join(f"{e} {v:.3f}" for e, v in dev.items()),
            max(dev.values()) <= params["circle_tol"], prof, kind="report",
            deck=f"{SLIDE_CONCLUSIONS}, bullet 2; {SLIDE_ELLIPSES}"))
    return out


def summary_markdown(curves: pd.DataFrame, models: pd.DataFrame, ledger: list, params: dict) -> str:
    """Bullet points for the discussion, generated from the measurements and the ledger: per task the
    areas, the agreement of the two partitions and the ratio of the clustering covariances' spread to
    the spread of the neuron means; the verdict counts of the report's claims; and for every claim of
    the report that is not reproduced what was measured."""
    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    lines = []
    for d in params["datasets"]:
        a = auc.loc[d]
        diff = a["w2"] - a["euclidean"]
        mm = models[models.dataset == d]
        ratio = float(mm.cov_sd.mean() / mm.mean_spread.mean())
        lines.append(
            f"* **{TASK_LABELS[d]}** (d = {int(mm.dim.iloc[0])}): area under quality vs parameters kept "
            f"{a['euclidean'].mean():.4f} (Euclidean) and {a['w2'].mean():.4f} (W2), difference {diff.mean():+.4f} "
            f"(W2 better on {int((diff > 0).sum())}, equal on {int((diff == 0).sum())}, worse on {int((diff < 0).sum())} "
            f"of {len(diff)} seeds); {ari_summary(curves, d)[1]}. Clustering covariances ({params['cluster_cov']}): "
            f"sd {mm.cov_sd.mean():.2g} per coordinate against a spread of {mm.mean_spread.mean():.2g} of the neuron "
            f"means (ratio {ratio:.2g}); test quality of the clustered network {mm.clustered_quality.mean():.3f}.")
    rep = [c for c in ledger if c.kind == "report"]
    counts = {v: sum(c.verdict == v for c in rep) for v in ("reproduced", "partly", "not reproduced",
                                                            "indistinguishable")}
    lines.append(f"* **Verdicts on the report's claims**: {counts['reproduced']} reproduced, {counts['partly']} partly, "
                 f"{counts['not reproduced']} not reproduced, {counts['indistinguishable']} indistinguishable, of "
                 f"{len(rep)}; {len(ledger) - len(rep)} rows of ours are not counted.")
    for c in rep:
        if c.verdict != "reproduced":
            lines.append(f"* *{c.claim.split(' (per seed')[0]}*: **{c.verdict}**; measured {c.our_value}.")
    return "\n".join(lines)


def protocol_markdown(params: dict) -> str:
    """The protocol this page ran next to the report's, one row per item, deviations named."""
    dims = neuron_dims(params)
    w, h, hc = params["hapt_window"], params["hapt_hidden"], params.get("hapt_curve_hidden", params["hapt_hidden"])
    iris_in = "4 raw features" if not params.get("iris_pca") else f"first {params['iris_pca']} principal components"
    rows = [
        ("covariance the neurons are clustered with", "bootstrap ('Параметры распределения оцениваются с помощью "
         "bootstrap')", f"`cluster_cov = {params['cluster_cov']}`"
         + (f", {params['n_bootstrap']} runs" if params["cluster_cov"] == "bootstrap" else ""),
         "same" if params["cluster_cov"] == "bootstrap" else "**deviation**: not the report's estimator"),
        ("bootstrap runs N", "not stated", f"{params['n_bootstrap']}, resampled with replacement, started from the "
         "network's initial weights, neurons aligned (Hungarian, sign flips for tanh)", "our choice"),
        ("neuron", "'размерность нейронов' in the figure titles; bias not mentioned",
         "incoming weights and bias", "our reading: the deck's dimensions are matched counting the bias"),
        ("MotionSense panel (10)", "MotionSense, architecture not stated",
         f"UCI HAPT walking (magnitude of the acceleration), {w}-{hc}-{w} tanh, output neurons, d = {dims['hapt']}",
         "**deviation**: HAPT stands in for MotionSense; the network is our choice to give d = 10"),
        ("MNIST panel (8)", "MNIST, architecture not stated",
         f"{params['mnist_train']} / {params['mnist_test']} images, first {params['mnist_pca']} principal components, "
         f"-> {params['mnist_hidden']} ReLU -> 10, hidden neurons, d = {dims['mnist']}",
         "**deviation**: subsampled and PCA-reduced to reach d = 8 (pixels would give 785)"),
        ("IRIS panel (4)", "Iris, architecture not stated",
         f"{iris_in} -> {params['iris_hidden']} ReLU -> 3, hidden neurons, d = {dims['iris']}",
         "**deviation**: PCA to 3 components to reach d = 4 with the bias counted (the deck may have counted "
         "4 weights without bias)"),
        ("ellipse figures", f"100-3-100 (first 16 neurons) and 10-3-20, MotionSense",
         f"{w}-{h}-{w} (first {params['n_ellipses']} output neurons, three estimators) and "
         f"{params['hapt_small_in']}-{h}-{params['hapt_small_out']} (bootstrap), HAPT", "data: HAPT for MotionSense"),
        ("clustering", "k-means, rho_1 (Euclidean) vs rho_2 (W2)", "the same Lloyd k-means with either distance, "
         f"best of {params['n_init']} starts", "same"),
        ("merged network", "not stated", "cluster centres' means, outgoing weights summed, no fine-tuning",
         "our choice"),
        ("seeds", "one run shown", f"{params['n_seeds']} seeds, paired comparisons", "ours (more than the deck)"),
    ]
    out = ["| item | the report (deck) | this page | deviation? |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def circle_markdown(comp: dict, n: int) -> str:
    """A comment on the 'circle' structure, from the teacher's output neurons and the estimators."""
    c = comp["circle"]
    tab = estimator_table(comp, n)
    ratios = ", ".join(f"{e} {r:.2f}" for e, r in tab["axis ratio"].items())
    along = ", ".join(f"{e} {r:.2f}" for e, r in tab["major axis along curve |cos|"].items())
    sds = tab["median sd"]
    return (f"In the plane of their first two principal components (which hold {c['var2']:.0%} of the variance of the "
            f"{len(comp['means']['sandwich'])} output-neuron means), the neuron means, taken in the order of the output "
            f"samples they predict, turn {c['turns']:.1f} times around their centre, at a radius that varies by "
            f"{c['radius_cv']:.0%} (coefficient of variation), about one turn per "
            f"{len(comp['means']['sandwich']) / max(c['turns'], 1e-9) / comp['data']['rate_hz']:.2f} s of predicted "
            f"signal; their relative deviation from a circle (the measure of the ledger) is "
            f"{circle_deviation(comp['means']['sandwich']):.3f}. "
            f"Median ratio of the minor to the major axis of the first {n} ellipses (1 = a circle): {ratios}; "
            f"median absolute cosine between the major axis and the curve (1 = stretched along it): {along}. The median standard "
            f"deviations differ by a factor {sds.max() / max(sds.min(), 1e-300):.1f} between the largest "
            f"({sds.idxmax()}) and the smallest ({sds.idxmin()}) estimate."
            + "".join(f" The {e} ellipses are elongated along the curve (axis ratio {r['axis ratio']:.2f}): under this "
                      "estimate the neurons move mostly along the circle, i.e. the phase of the step cycle a neuron "
                      "encodes is less certain than its distance from the centre."
                      for e, r in tab.iterrows()
                      if r["axis ratio"] < 0.5 and r["major axis along curve |cos|"] > 0.9))


# --- tables of the page ---------------------------------------------------------------------------------


def models_table(models: pd.DataFrame) -> pd.DataFrame:
    """Per task, means over seeds: parameters, inputs, neurons of the clustered layer and their dimension,
    test quality of the clustered network, the clustering covariances' sd, the spread of the neuron means
    and the seconds per run."""
    return models.groupby("dataset", sort=False).agg(
        parameters=("n_params", "first"), inputs=("inputs", "first"), neurons=("neurons", "first"),
        neuron_dim=("dim", "first"), quality=("clustered_quality", "mean"), cov_sd=("cov_sd", "mean"),
        spread_of_means=("mean_spread", "mean"), seconds=("total_s", "mean")).round(4)


def auc_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per task: mean and sd over seeds of the area under each metric's curve (:func:`auc_table`)."""
    auc = auc_table(curves).groupby(["dataset", "metric"], sort=False)["auc"].agg(["mean", "std"])
    auc = auc.unstack("metric").round(4)
    auc.columns = [f"{m} area ({s})" for s, m in auc.columns]
    return auc


def ari_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Adjusted Rand index of the Euclidean and the W2 partition per k (rows) and task (columns), mean
    over seeds; "—" where k is not in that task's grid."""
    ari = curves[curves.metric == "w2"].pivot_table(index="k", columns="dataset", values="ari", aggfunc="mean").round(3)
    return ari.reset_index().astype(object).where(ari.reset_index().notna(), "—")


# --- the report contract: plan / execute / summarize ------------------------------------------------------

STUDIES = ("estimators", "ring", "curves", "contrast")
# the parameters a run reads (the rest, the claims' tolerances and the figures' sizes, only summarize reads)
RUN_KEYS = ("device", "cpu_threads", "lr", "batch_size", "mnist_train", "mnist_test", "mnist_pca", "mnist_hidden",
            "mnist_epochs", "mnist_ks", "iris_pca", "iris_hidden", "iris_epochs", "iris_ks", "hapt_window",
            "hapt_stride", "hapt_hidden", "hapt_curve_hidden", "hapt_epochs", "hapt_ks", "hapt_small_in",
            "hapt_small_out", "n_bootstrap", "rank", "prior_sigma", "init_sigma", "kl_weight", "teacher_posterior",
            "prior_jitter", "n_init", "max_iter", "iris_param_fraction", "hapt_claim_k")


def plan(P: dict) -> list[dict]:
    """The independent runs of the report, each a plain dict with its ``study``, ``task``, ``seed``,
    ``cluster_cov`` and the parameters it reads (:data:`RUN_KEYS`):

    * ``estimators``: one run, the three covariance estimates of the 100-3-100 network (seed ``seed``);
    * ``ring``: one run per seed, the 100-3-100 network's circle and its ``hapt_claim_k`` clusters;
    * ``curves``: one run per task of ``datasets`` and seed, quality vs parameters with the
      ``cluster_cov`` covariances;
    * ``contrast``: the same per task of ``contrast_datasets`` and seed with the Bayesian student's
      covariances (Algorithm 1).

    Seeds are ``seed + s`` for ``s < n_seeds``, each run seeded exactly as the report's loops seeded it."""
    base = {k: P[k] for k in RUN_KEYS}
    seeds = [P["seed"] + s for s in range(P["n_seeds"])]

    def one(study, seed, task="hapt", cluster_cov=None):
        return dict(base, study=study, task=task, seed=seed, cluster_cov=cluster_cov)

    runs = [one("estimators", P["seed"])]
    runs += [one("ring", s) for s in seeds]
    runs += [one("curves", s, t, P["cluster_cov"]) for t in P["datasets"] for s in seeds]
    runs += [one("contrast", s, t, "student") for t in P["contrast_datasets"] for s in seeds]
    return runs


def execute(run: dict) -> dict:
    """One run of :func:`plan`: sets the thread counts (``cpu_threads``), then runs its study
    (:func:`estimator_comparison`, :func:`ring_run` or :func:`curve_run`, each seeding itself from
    ``run["seed"]``).  Returns ``{"study": ..., "result": ...}``: arrays, numbers and plain dicts.
    The global generators are seeded from ``run["seed"]`` first, so that a run gives the same numbers
    whatever ran before it in the process."""
    from ..train import seed_everything

    configure_threads(run)
    seed_everything(run["seed"])
    study = run["study"]
    if study == "estimators":
        result = estimator_comparison(run)
    elif study == "ring":
        result = ring_run(run)
    elif study in ("curves", "contrast"):
        result = curve_run(run)
    else:
        raise ValueError(f"study must be one of {STUDIES}, got {study!r}")
    return {"study": study, "result": result}


def summarize(P: dict, results: list[dict]) -> dict:
    """The page from the runs' results (in plan order): ``curves`` and ``models`` (quality vs parameters,
    :func:`curve_frames`), ``contrast`` (the same under the student's covariances), ``ring`` (one row per
    seed), ``comp`` (:func:`estimator_comparison`), the ``ledger`` of claims (:func:`claims`) and the
    page's tables and generated prose."""
    by = {s: [r["result"] for r in results if r["study"] == s] for s in STUDIES}
    main, contrast = curve_frames(by["curves"]), curve_frames(by["contrast"])
    ring = pd.DataFrame(by["ring"])
    comp = by["estimators"][0] if by["estimators"] else None
    curves, models = main["curves"], main["models"]
    ledger = claims(curves, P, ring=ring, comp=comp)
    tables = {"protocol": protocol_markdown(P), "models": models_table(models), "auc": auc_summary(curves),
              "ari": ari_table(curves)}
    if comp is not None:
        tables["estimators"] = estimator_table(comp, P["n_ellipses"])
        tables["circle"] = circle_markdown(comp, P["n_ellipses"])
    if len(contrast["curves"]):
        tables["contrast"] = contrast_table(main, contrast)
    return {"results": main, "curves": curves, "models": models, "contrast": contrast, "ring": ring, "comp": comp,
            "ledger": ledger, "tables": tables, "summary": summary_markdown(curves, models, ledger, P)}
