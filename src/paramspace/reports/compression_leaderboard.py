"""The compression leaderboard, a chapter beyond the five reports: their ways to shrink a network, compared.

Every criterion is applied to the same trained models on the same data.

Per data set and seed, one mean-field variational MLP with one hidden layer is trained (the ELBO,
as in report 5) for a fixed number of optimiser steps (``train_steps``, the same on every data set:
a small data set gets more epochs, so that its posterior standard deviations move away from their
initial value). Its posterior mean is the network that every criterion shrinks, so all curves
start from the same model and the same test accuracy. The criteria that need the posterior's
standard deviations (``variational``, ``cluster_w2``) are charged the Bayesian training in their
cost; the others are charged a deterministic MLP trained for the same steps (trained only to be
timed):

* unstructured removal of single parameters, one-shot, no retraining, applied with
  ``torch.nn.utils.prune`` (:func:`paramspace.pruning.prune_by_scores`):
  ``random``, ``magnitude``, ``obd`` (Optimal Brain Damage, report 5), ``variational`` (mu^2/sigma^2
  of the same posterior, reports 2 and 5), ``belsley`` (Belsley's variance proportions of the Laplace
  covariance, report 5), ``importance`` (weight importances found by mirror descent on the scaled
  simplex, report 3, with the trained weights held fixed);
* structured removal of hidden neurons (report 1): k-means of the hidden neurons (incoming weights
  and bias) with the Euclidean distance of their means (``cluster_euclidean``) or the 2-Wasserstein
  distance of their Gaussians (``cluster_w2``; covariances: the variational posterior's diagonal),
  each cluster replaced by its centre with summed outgoing weights (``merge_neurons`` of report 1's neuron
  module).

The x axis is the fraction of the network's parameters kept (weights and biases of all layers).
Every curve ends at the same point: with nothing kept the network outputs zeros.

A run of :func:`plan` is one (data set, seed): train the shared model (and the deterministic one that
is only timed), then every criterion's curve. The methods come from method modules only:
:mod:`paramspace.variational`, :mod:`paramspace.pruning`, :mod:`paramspace.train`, report 1's neuron
clustering and report 3's mirror descent.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import data as D, pruning, variational
from .. import dropconnect as _dropconnect
from .. import neurons as _neurons
from ..models import mlp, n_params
from ..quality import quality
from ..train import cpu_threads, resolve_device, seed_everything, train
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

PRUNING = ("random", "magnitude", "obd", "variational", "belsley", "importance")
CLUSTERING = ("cluster_euclidean", "cluster_w2")
CRITERIA = PRUNING + CLUSTERING
SOURCE = {"random": "baseline", "magnitude": "baseline", "obd": "report 5", "variational": "reports 2 and 5",
          "belsley": "report 5", "importance": "report 3", "cluster_euclidean": "report 1",
          "cluster_w2": "report 1"}
PALETTE = {"random": "#7f7f7f", "magnitude": "#8c564b", "obd": "#1f77b4", "variational": "#d62728",
           "belsley": "#2ca02c", "importance": "#ff7f0e", "cluster_euclidean": "#17becf", "cluster_w2": "#e377c2"}
LABELS = {"random": "random", "magnitude": "magnitude |w|", "obd": "OBD (r5)", "variational": "variational μ²/σ² (r2, r5)",
          "belsley": "Belsley, Laplace cov. (r5)", "importance": "importance, mirror descent (r3)",
          "cluster_euclidean": "neuron k-means, Euclidean (r1)", "cluster_w2": "neuron k-means, W2 (r1)"}
HIDDEN_LAYER = 0  # index of the clustered nn.Linear in the Sequential (the one hidden layer)
NEEDS_POSTERIOR = ("variational", "cluster_w2")  # criteria that read the posterior's standard deviations


# --- the shared models ----------------------------------------------------------------------


def load_task(name: str, *, seed: int, n_train: int, n_test: int, mnist_pool: int) -> D.Dataset:
    """Wine (standardised, 13 features) or MNIST average-pooled by ``mnist_pool`` (28/pool squared
    features), a seeded subset of ``n_train``/``n_test`` images."""
    if name == "wine":
        return D.load_wine(seed=seed)
    if name == "mnist":
        ds = D.load_mnist(n_train, n_test, seed=seed)
        k = mnist_pool
        pool = lambda X: F.avg_pool2d(X.reshape(-1, 1, 28, 28), k).reshape(len(X), -1)  # noqa: E731
        return D.Dataset(f"mnist {28 // k}x{28 // k}", ds.task, pool(ds.X_train), ds.y_train, pool(ds.X_test),
                         ds.y_test, n_classes=10)
    raise ValueError(f"unknown data set {name!r}; valid: 'mnist', 'wine'")


def epochs_for(n_train: int, batch_size: int, train_steps: int) -> tuple[int, int]:
    """Epochs that give at least ``train_steps`` minibatch steps on ``n_train`` rows, and the steps they
    give (``epochs * ceil(n_train / batch_size)``; at most one epoch more than asked)."""
    per_epoch = -(-n_train // batch_size)
    epochs = max(1, -(-train_steps // per_epoch))
    return epochs, epochs * per_epoch


def fit(ds: D.Dataset, *, hidden: int, train_steps: int, batch_size: int, lr: float, prior_sigma: float,
        kl_weight: float, seed: int, device: str = "cpu", progress: bool = False):
    """The shared trained model: report 5's mean-field variational MLP ``in -> hidden -> classes``
    (ELBO, :func:`paramspace.variational.fit_variational`) trained for ``train_steps`` steps; returns it
    and its posterior mean."""
    epochs, _ = epochs_for(len(ds.X_train), batch_size, train_steps)
    bayes, _ = variational.fit_variational(ds, hidden=[hidden], epochs=epochs, lr=lr, batch_size=batch_size,
                                           prior_sigma=prior_sigma, kl_weight=kl_weight, seed=seed,
                                           device=str(device), progress=progress)
    return bayes, variational.to_deterministic(bayes)


def fit_deterministic(ds: D.Dataset, *, hidden: int, train_steps: int, batch_size: int, lr: float, seed: int,
                      device: str = "cpu"):
    """A plain MLP of the same shape trained for the same steps (Adam, mean NLL, no KL): what the
    criteria that need no posterior would have to train. Used for its cost and its accuracy only."""
    seed_everything(seed)
    model = mlp(ds.n_features, [hidden], ds.out_dim, "relu")
    epochs, _ = epochs_for(len(ds.X_train), batch_size, train_steps)
    train(model, ds, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=str(device), progress=False)
    return model.cpu()


def posterior_sigmas(bayes) -> np.ndarray:
    """Every posterior standard deviation (weights and biases of all layers), flattened."""
    with torch.no_grad():
        return torch.cat([torch.cat([m.weight_sigma.reshape(-1), m.bias_sigma.reshape(-1)])
                          for m in variational.bayes_layers(bayes)]).double().cpu().numpy()


def sigma_summary(bayes, det) -> dict:
    """How far training moved the posterior standard deviations: quantiles of sigma, the ratio of its
    95% to 5% quantile, and the Spearman rank correlation between the variational order mu^2/sigma^2
    and the magnitude order |mu| (1 = the two criteria remove parameters in the same order, which is
    what happens while every sigma still sits at its common initial value)."""
    from scipy import stats

    s = posterior_sigmas(bayes)
    mu = torch.cat([p.detach().reshape(-1) for _, p in det.named_parameters()]).double().cpu().numpy()
    q05, q50, q95 = np.quantile(s, [0.05, 0.5, 0.95])
    rho = stats.spearmanr(mu**2 / s**2, np.abs(mu)).statistic
    return dict(sigma_min=float(s.min()), sigma_q05=float(q05), sigma_median=float(q50), sigma_q95=float(q95),
                sigma_max=float(s.max()), sigma_spread=float(q95 / q05), rank_corr_var_mag=float(rho))


# --- the criteria ---------------------------------------------------------------------------


def importance_scores(det, ds: D.Dataset, *, batches: int, batch_size: int, eta: float, gamma: float,
                      tau: float, seed: int) -> pruning.Scores:
    """Report 3's importances of the trained weights: ``batches`` mirror-descent steps on minibatches
    of ``batch_size`` (one half gives the gradient, the other half the loss after the
    importance-weighted step), starting from uniform, with the weights fixed. Biases carry no
    importance in report 3; they are ranked above every weight (removed last)."""
    g = torch.Generator().manual_seed(seed)
    w = _dropconnect.uniform_importance(det)
    n, b = len(ds.X_train), batch_size
    for _ in range(batches):
        idx = torch.randperm(n, generator=g)[:b]
        half = len(idx) // 2
        xi, yi = ds.X_train[idx[:half]], ds.y_train[idx[:half]]
        xo, yo = ds.X_train[idx[half:]], ds.y_train[idx[half:]]
        w, _ = _dropconnect.mirror_descent(det, w, xi, yi, xo, yo, eta=eta, gamma=gamma, tau=tau)
    top = max(float(v.max()) for v in w.values()) + 1.0
    return {k: (w[k].float().cpu() if k in w else torch.full_like(p, top).cpu())
            for k, p in det.named_parameters()}


def pruning_scores(name: str, bayes, det, ds: D.Dataset, run: dict) -> pruning.Scores:
    """Scores of one unstructured criterion of the run ``run``: report 3's importances here, the others
    as report 5 computes them (:func:`paramspace.pruning.criterion_score`), curvature from the first
    ``curvature_n`` training points."""
    if name == "importance":
        return importance_scores(det, ds, batches=run["importance_batches"], batch_size=run["batch_size"],
                                 eta=run["importance_lr"], gamma=run["importance_gamma"],
                                 tau=run["importance_tau"], seed=run["seed"])
    n = run["curvature_n"]
    return pruning.criterion_score(name, bayes=bayes, det=det, X=ds.X_train[:n], y=ds.y_train[:n], task=ds.task,
                                   seed=run["seed"], laplace_damping=run["laplace_damping"],
                                   belsley_steps=run["belsley_steps"], condition_index=run["condition_index"])


def neuron_gaussians(bayes) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(n, d)`` and diagonal covariances ``(n, d)`` of the hidden neurons (incoming weights
    and bias, ``d = in + 1``) under the variational posterior."""
    layer = bayes[HIDDEN_LAYER]
    with torch.no_grad():
        mu = torch.cat([layer.weight_mu, layer.bias_mu[:, None]], 1)
        var = torch.cat([layer.weight_sigma, layer.bias_sigma[:, None]], 1) ** 2
    return mu.double().numpy(), var.double().numpy()


def cluster_curve(name: str, bayes, det, ds: D.Dataset, *, hidden: int, seed: int) -> tuple[list[dict], float]:
    """Report 1's neuron clustering (``cluster_sweep``) for every ``k`` in ``1 .. hidden - 1``: one row
    per merged network, and the seconds spent clustering and merging."""
    means, var = neuron_gaussians(bayes)
    metric_name = "w2" if name == "cluster_w2" else "euclidean"
    rows = _neurons.cluster_sweep(det, HIDDEN_LAYER, means, var, range(1, hidden), ds, seed,
                                  algorithm="auto", metrics=(metric_name,))
    return rows, sum(r["seconds"] for r in rows)


def _zero_quality(det, ds: D.Dataset) -> float:
    """Quality of the network with every parameter removed (outputs all zero)."""
    z = pruning.prune_by_scores(det, pruning.random_scores(det), 1.0)
    return quality(z, ds.X_test, ds.y_test, ds.task)


# --- the experiment: plan / execute / summarize ------------------------------------------------

_RUN_KEYS = ("device", "cpu_threads", "n_train", "n_test", "mnist_pool", "hidden", "train_steps", "lr", "batch_size",
             "prior_sigma", "kl_weight", "fractions", "curvature_n", "belsley_steps", "laplace_damping",
             "condition_index", "importance_batches", "importance_lr", "importance_gamma", "importance_tau")


def plan(P: dict) -> list[dict]:
    """One run per (data set, seed), data sets outermost; each holds every value its run reads."""
    return [dict(dataset=d, seed=P["seed"] + s, **{k: P[k] for k in _RUN_KEYS})
            for d in P["datasets"] for s in range(P["n_seeds"])]


def execute(run: dict) -> dict[str, list[dict]]:
    """One (data set, seed), with ``cpu_threads`` torch threads: the shared model, the plain MLP (timed),
    and every criterion's curve. Returns lists of rows ``curves`` (dataset, seed, criterion, kept,
    n_kept, accuracy), ``timing`` (dataset, seed, criterion, seconds: computing the scores or all the
    clusterings, not evaluating them; train_seconds: the training the criterion needs, Bayesian for
    :data:`NEEDS_POSTERIOR`, deterministic otherwise; total_seconds), ``models`` (dataset, seed,
    n_params, steps, accuracy, training times, the :func:`sigma_summary`) and ``sigmas`` (every
    posterior standard deviation)."""
    with cpu_threads(run["cpu_threads"]):
        return _execute(run, resolve_device(run["device"]))


def _execute(run: dict, dev: torch.device) -> dict[str, list[dict]]:
    seed = run["seed"]
    out = dict(curves=[], timing=[], models=[], sigmas=[])
    ds = load_task(run["dataset"], seed=seed, n_train=run["n_train"], n_test=run["n_test"],
                   mnist_pool=run["mnist_pool"])
    train_kw = dict(hidden=run["hidden"], train_steps=run["train_steps"], batch_size=run["batch_size"],
                    lr=run["lr"], seed=seed, device=str(dev))
    t0 = time.perf_counter()
    bayes, det = fit(ds, prior_sigma=run["prior_sigma"], kl_weight=run["kl_weight"], **train_kw)
    bayes_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = fit_deterministic(ds, **train_kw)
    plain_s = time.perf_counter() - t0
    P = n_params(det)
    full = quality(det, ds.X_test, ds.y_test, ds.task)
    zero = _zero_quality(det, ds)
    epochs, steps = epochs_for(len(ds.X_train), run["batch_size"], run["train_steps"])
    out["models"].append(dict(dataset=ds.name, seed=seed, n_params=P, n_train=len(ds.X_train), epochs=epochs,
                              steps=steps, accuracy=full, zero_accuracy=zero,
                              plain_accuracy=quality(plain, ds.X_test, ds.y_test, ds.task),
                              bayes_train_s=bayes_s, plain_train_s=plain_s, **sigma_summary(bayes, det)))
    out["sigmas"] += [dict(dataset=ds.name, seed=seed, sigma=v) for v in posterior_sigmas(bayes)]
    for crit in CRITERIA:
        if crit in PRUNING:
            t0 = time.perf_counter()
            scores = pruning_scores(crit, bayes, det, ds, run)
            seconds = time.perf_counter() - t0
            fr = run["fractions"]
            acc = pruning.prune_sweep(det, scores, fr, ds, seed=seed)
            pts = [(1.0 - f, int(round((1.0 - f) * P)), a) for f, a in zip(fr, acc)]
        else:
            rows, seconds = cluster_curve(crit, bayes, det, ds, hidden=run["hidden"], seed=seed)
            pts = [(r["param_fraction"], r["n_params"], r["quality"]) for r in rows]
            pts += [(1.0, P, full), (0.0, 0, zero)]
        train_s = bayes_s if crit in NEEDS_POSTERIOR else plain_s
        out["timing"].append(dict(dataset=ds.name, seed=seed, criterion=crit, seconds=seconds,
                                  train_seconds=train_s, total_seconds=seconds + train_s))
        out["curves"] += [dict(dataset=ds.name, seed=seed, criterion=crit, kept=k, n_kept=n, accuracy=a)
                          for k, n, a in sorted(pts)]
    return out


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """The runs' rows, in plan order, as tidy frames ``curves``, ``timing``, ``models``, ``sigmas``
    (see :func:`execute`)."""
    return {k: pd.DataFrame([row for r in results for row in r[k]]) for k in ("curves", "timing", "models", "sigmas")}


def models_table(models: pd.DataFrame) -> pd.DataFrame:
    """The shared models, means over seeds per data set (the notebook's ``tab-lb-models``)."""
    return models.groupby("dataset", sort=False).agg(
        parameters=("n_params", "first"), train_rows=("n_train", "first"), epochs=("epochs", "first"),
        steps=("steps", "first"), test_accuracy=("accuracy", "mean"), sd=("accuracy", "std"),
        plain_mlp_accuracy=("plain_accuracy", "mean"), zero_network=("zero_accuracy", "mean"),
        sigma_q05=("sigma_q05", "mean"), sigma_median=("sigma_median", "mean"), sigma_q95=("sigma_q95", "mean"),
        rank_corr_var_mag=("rank_corr_var_mag", "mean"))


def summarize(P: dict, results: list[dict]) -> dict:
    """The tables (:func:`tables`), the models' table, the per-seed summaries, the leaderboard (frame and
    Markdown) and the generated summary. The chapter checks no claims."""
    out = tables(results)
    out["models_tab"] = models_table(out["models"])
    out["per_seed"] = per_seed_table(out, P)
    out["board"] = leaderboard(out, P)
    out["board_markdown"] = leaderboard_markdown(out["board"])
    out["summary"] = summary_markdown(out, P)
    return out


# --- tables, prose, figures --------------------------------------------------------------------


def auc(kept, acc) -> float:
    """Area under accuracy vs fraction of parameters kept, over [0, 1] (trapezoids on the measured points)."""
    k, a = np.asarray(kept, float), np.asarray(acc, float)
    o = np.argsort(k)
    return float(np.trapezoid(a[o], k[o]))


def min_kept_within(kept, acc, full: float, tol_pp: float) -> float:
    """Smallest measured kept fraction ``f`` such that every measured point with at least ``f`` kept
    is at most ``tol_pp`` percentage points below the unpruned accuracy ``full`` (walking down from
    the full network; a curve that dips and recovers stops at the dip)."""
    k, a = np.asarray(kept, float), np.asarray(acc, float)
    o = np.argsort(-k, kind="stable")
    best = 1.0
    for kk, aa in zip(k[o], a[o]):
        if aa < full - tol_pp / 100.0 - 1e-12:
            break
        best = kk
    return float(best)


def per_seed_table(results: dict, params: dict) -> pd.DataFrame:
    """Per (dataset, seed, criterion): area under the curve, kept fraction at <= ``loss_tol_pp`` loss,
    and the criterion's wall time."""
    full = results["models"].set_index(["dataset", "seed"])["accuracy"]
    rows = []
    for (d, s, c), g in results["curves"].groupby(["dataset", "seed", "criterion"], sort=False):
        rows.append(dict(dataset=d, seed=s, criterion=c, auc=auc(g.kept, g.accuracy),
                         kept_at_tol=min_kept_within(g.kept, g.accuracy, full[(d, s)], params["loss_tol_pp"])))
    t = pd.DataFrame(rows)
    return t.merge(results["timing"], on=["dataset", "seed", "criterion"])


def leaderboard(results: dict, params: dict) -> pd.DataFrame:
    """Mean ± sd over seeds per data set and criterion, ranked by area under the curve."""
    t = per_seed_table(results, params)
    rows = []
    for (d, c), g in t.groupby(["dataset", "criterion"], sort=False):
        sd = lambda v: v.std(ddof=1) if len(v) > 1 else float("nan")  # noqa: E731
        rows.append({"data set": d, "criterion": c, "from": SOURCE[c],
                     "AUC": f"{g.auc.mean():.3f} ± {sd(g.auc):.3f}",
                     f"kept at ≤{params['loss_tol_pp']:g} pp loss": f"{g.kept_at_tol.mean():.3f} ± {sd(g.kept_at_tol):.3f}",
                     "criterion time (s)": f"{g.seconds.mean():.2f} ± {sd(g.seconds):.2f}",
                     "with its training (s)": f"{g.total_seconds.mean():.2f} ± {sd(g.total_seconds):.2f}",
                     "_auc": g.auc.mean()})
    out = pd.DataFrame(rows).sort_values(["data set", "_auc"], ascending=[True, False], kind="stable")
    return out.drop(columns="_auc").reset_index(drop=True)


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """:func:`leaderboard` as one Markdown table (ranks restart per data set), criteria by their full names."""
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    cols = [c for c in board.columns if c not in ("data set", "criterion")]
    out = ["| data set | rank | criterion | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for d, g in board.groupby("data set", sort=False):
        out += [f"| {esc(d)} | {i} | {esc(LABELS[r['criterion']])} | " + " | ".join(esc(r[c]) for c in cols) + " |"
                for i, (_, r) in enumerate(g.iterrows(), 1)]
    return "\n".join(out)


def summary_markdown(results: dict, params: dict) -> str:
    """What this run measured, per data set (generated from the numbers)."""
    from ..claims import mean_interval

    t = per_seed_table(results, params)
    lines = []
    for d, g in t.groupby("dataset", sort=False):
        m = g.groupby("criterion", sort=False)[["auc", "kept_at_tol"]].mean()
        rank = m.sort_values("auc", ascending=False)
        best, worst = rank.index[0], rank.index[-1]
        w2 = g[g.criterion == "cluster_w2"].set_index("seed").auc
        eu = g[g.criterion == "cluster_euclidean"].set_index("seed").auc
        diff = (w2 - eu).dropna()
        dm, lo, hi = mean_interval(diff.to_numpy())
        above = [LABELS[c] for c in rank.index if c != "random" and m.auc[c] > m.auc["random"]]
        below = [LABELS[c] for c in rank.index if c != "random" and m.auc[c] <= m.auc["random"]]
        smallest = m.kept_at_tol.idxmin()
        lines.append(
            f"* **{d}** ({len(diff)} seeds): largest area under the curve: {LABELS[best]}, {m.auc[best]:.3f}; "
            f"smallest: {LABELS[worst]}, {m.auc[worst]:.3f}; random removal: {m.auc['random']:.3f}. "
            f"Above random: {', '.join(above) or 'none'}; not above random: "
            f"{', '.join(below) or 'none'}. The smallest network within {params['loss_tol_pp']:g} pp of the "
            f"unpruned accuracy: {LABELS[smallest]}, {100 * m.kept_at_tol[smallest]:.1f}% of the "
            f"parameters kept (mean over seeds). W2 minus Euclidean neuron clustering, area under the curve: "
            f"{dm:+.4f} (95% interval [{lo:+.4f}, {hi:+.4f}]).")
    return "\n".join(lines)


def describe(params: dict) -> str:
    k = params["mnist_pool"]
    return (f"MLP `in-{params['hidden']}-classes` with one hidden layer of {params['hidden']} ReLU units, "
            f"mean-field variational, {params['train_steps']} minibatch steps of {params['batch_size']} on every "
            f"data set (Adam, lr {params['lr']}); MNIST "
            f"average-pooled {k}x{k} to {28 // k}x{28 // k} = {(28 // k) ** 2} inputs, "
            f"{params['n_train']} training / {params['n_test']} test images; Wine: 13 standardised features, "
            f"75/25 split; {params['n_seeds']} seeds; the Hessian of OBD and of Belsley's Laplace covariance is "
            f"computed on at most {params['curvature_n']} training points (`curvature_n`): all of Wine's, "
            f"{min(params['curvature_n'], params['n_train'])} of the {params['n_train']} MNIST training images")


def sigma_figure(sigmas: pd.DataFrame, init_sigma: float = 1e-3):
    """Histogram of log10 of every posterior standard deviation, one panel per data set (seeds pooled)."""
    import matplotlib.pyplot as plt

    names = list(sigmas.dataset.unique())
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.8), squeeze=False)
    for ax, d in zip(axes[0], names):
        v = np.log10(sigmas[sigmas.dataset == d].sigma.to_numpy())
        ax.hist(v, bins=50, color="#d62728", alpha=0.8)
        ax.axvline(np.log10(init_sigma), color="k", ls="--", lw=1, label="initial σ")
        ax.set(xlabel="$\\log_{10} \\sigma_j$", ylabel="parameters (all seeds)", title=d)
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute; a
    ``ValueError`` here becomes a :class:`~paramspace.reports.ProfileError` naming the report)."""
    if 28 % params["mnist_pool"]:
        raise ValueError(f"mnist_pool must divide 28, got {params['mnist_pool']}")
    f = params["fractions"]
    if f[0] != 0.0 or f[-1] != 1.0:
        raise ValueError("fractions (removed) must run from 0 to 1, so that every curve spans all kept fractions")
    if params["hidden"] < 2:
        raise ValueError("hidden must be >= 2 (clustering merges hidden neurons)")


REPORT.check = check_params
