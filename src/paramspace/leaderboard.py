"""Cross-report compression leaderboard: every way the five reports shrink a network, applied to
the same trained models on the same data.

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
  each cluster replaced by its centre with summed outgoing weights (:func:`paramspace.metric.merge_neurons`).

The x axis is the fraction of the network's parameters kept (weights and biases of all layers).
Every curve ends at the same point: with nothing kept the network outputs zeros.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import data as D, dropconnect as importance, metric, pruning, relevance, variational
from .quality import quality
from .models import mlp, n_params
from .train import cpu_threads, resolve_device

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


def load_task(name: str, params: dict, seed: int) -> D.Dataset:
    """Wine (standardised, 13 features) or MNIST average-pooled by ``mnist_pool`` (28/pool squared
    features), a seeded subset of ``n_train``/``n_test`` images."""
    if name == "wine":
        return D.load_wine(seed=seed)
    if name == "mnist":
        ds = D.load_mnist(params["n_train"], params["n_test"], seed=seed)
        k = params["mnist_pool"]
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


def fit(ds: D.Dataset, params: dict, seed: int, device, progress: bool = False):
    """The shared trained model: report 5's mean-field variational MLP ``in -> hidden -> classes``
    (ELBO, :func:`paramspace.relevance.fit_variational`) trained for ``train_steps`` steps; returns it
    and its posterior mean."""
    epochs, _ = epochs_for(len(ds.X_train), params["batch_size"], params["train_steps"])
    bayes, _ = relevance.fit_variational(
        ds, {**params, "hidden": [params["hidden"]], "epochs": epochs, "device": str(device)}, seed, progress)
    return bayes, variational.to_deterministic(bayes)


def fit_deterministic(ds: D.Dataset, params: dict, seed: int, device):
    """A plain MLP of the same shape trained for the same steps (Adam, mean NLL, no KL): what the
    criteria that need no posterior would have to train. Used for its cost and its accuracy only."""
    from .train import seed_everything, train

    seed_everything(seed)
    model = mlp(ds.n_features, [params["hidden"]], ds.out_dim, "relu")
    epochs, _ = epochs_for(len(ds.X_train), params["batch_size"], params["train_steps"])
    train(model, ds, epochs=epochs, lr=params["lr"], batch_size=params["batch_size"], seed=seed,
          device=str(device), progress=False)
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


def importance_scores(det, ds: D.Dataset, params: dict, seed: int) -> pruning.Scores:
    """Report 3's importances of the trained weights: ``importance_batches`` mirror-descent steps on
    minibatches (one half gives the gradient, the other half the loss after the importance-weighted
    step), starting from uniform, with the weights fixed. Biases carry no importance in report 3;
    they are ranked above every weight (removed last)."""
    g = torch.Generator().manual_seed(seed)
    w = importance.uniform_importance(det)
    n, b = len(ds.X_train), params["batch_size"]
    for _ in range(params["importance_batches"]):
        idx = torch.randperm(n, generator=g)[:b]
        half = len(idx) // 2
        xi, yi = ds.X_train[idx[:half]], ds.y_train[idx[:half]]
        xo, yo = ds.X_train[idx[half:]], ds.y_train[idx[half:]]
        w, _ = importance.mirror_descent(det, w, xi, yi, xo, yo, eta=params["importance_lr"],
                                         gamma=params["importance_gamma"], tau=params["importance_tau"])
    top = max(float(v.max()) for v in w.values()) + 1.0
    return {k: (w[k].float().cpu() if k in w else torch.full_like(p, top).cpu())
            for k, p in det.named_parameters()}


def pruning_scores(name: str, bayes, det, ds: D.Dataset, params: dict, seed: int) -> pruning.Scores:
    """Scores of one unstructured criterion: report 3's importances here, the others as report 5
    computes them (:func:`paramspace.relevance.criterion_score`), curvature from the first
    ``curvature_n`` training points."""
    if name == "importance":
        return importance_scores(det, ds, params, seed)
    n = params["curvature_n"]
    return relevance.criterion_score(name, bayes, det, ds.X_train[:n], ds.y_train[:n], ds.task, params, seed)


def neuron_gaussians(bayes) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(n, d)`` and diagonal covariances ``(n, d)`` of the hidden neurons (incoming weights
    and bias, ``d = in + 1``) under the variational posterior."""
    layer = bayes[HIDDEN_LAYER]
    with torch.no_grad():
        mu = torch.cat([layer.weight_mu, layer.bias_mu[:, None]], 1)
        var = torch.cat([layer.weight_sigma, layer.bias_sigma[:, None]], 1) ** 2
    return mu.double().numpy(), var.double().numpy()


def cluster_curve(name: str, bayes, det, ds: D.Dataset, params: dict, seed: int) -> tuple[list[dict], float]:
    """Report 1's neuron clustering (:func:`paramspace.metric.cluster_sweep`) for every ``k`` in
    ``1 .. hidden - 1``: one row per merged network, and the seconds spent clustering and merging."""
    means, var = neuron_gaussians(bayes)
    metric_name = "w2" if name == "cluster_w2" else "euclidean"
    rows = metric.cluster_sweep(det, HIDDEN_LAYER, means, var, range(1, params["hidden"]), ds, seed,
                                algorithm="auto", metrics=(metric_name,))
    return rows, sum(r["seconds"] for r in rows)


def _zero_quality(det, ds: D.Dataset) -> float:
    """Quality of the network with every parameter removed (outputs all zero)."""
    z = pruning.prune_by_scores(det, pruning.random_scores(det), 1.0)
    return quality(z, ds.X_test, ds.y_test, ds.task)


def run(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Every data set x seed x criterion. Returns ``curves`` (dataset, seed, criterion, kept,
    n_kept, accuracy), ``timing`` (dataset, seed, criterion, seconds: computing the scores or all the
    clusterings, not evaluating them; train_seconds: the training the criterion needs, Bayesian for
    :data:`NEEDS_POSTERIOR`, deterministic otherwise; total_seconds), ``models`` (dataset, seed,
    n_params, steps, accuracy, training times, the :func:`sigma_summary`) and ``sigmas`` (every
    posterior standard deviation)."""
    with cpu_threads(params["cpu_threads"]):
        return _run(params, resolve_device(params["device"]), progress)


def _run(params: dict, dev: torch.device, progress: bool) -> dict[str, pd.DataFrame]:
    from tqdm import tqdm

    curves, timing, models, sigmas = [], [], [], []
    jobs = [(d, params["seed"] + s) for d in params["datasets"] for s in range(params["n_seeds"])]
    for dname, seed in tqdm(jobs, desc="data set x seed", disable=not progress):
        ds = load_task(dname, params, seed)
        t0 = time.perf_counter()
        bayes, det = fit(ds, params, seed, dev)
        bayes_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = fit_deterministic(ds, params, seed, dev)
        plain_s = time.perf_counter() - t0
        P = n_params(det)
        full = quality(det, ds.X_test, ds.y_test, ds.task)
        zero = _zero_quality(det, ds)
        epochs, steps = epochs_for(len(ds.X_train), params["batch_size"], params["train_steps"])
        models.append(dict(dataset=ds.name, seed=seed, n_params=P, n_train=len(ds.X_train), epochs=epochs,
                           steps=steps, accuracy=full, zero_accuracy=zero,
                           plain_accuracy=quality(plain, ds.X_test, ds.y_test, ds.task),
                           bayes_train_s=bayes_s, plain_train_s=plain_s, **sigma_summary(bayes, det)))
        sigmas += [dict(dataset=ds.name, seed=seed, sigma=v) for v in posterior_sigmas(bayes)]
        for crit in CRITERIA:
            if crit in PRUNING:
                t0 = time.perf_counter()
                scores = pruning_scores(crit, bayes, det, ds, params, seed)
                seconds = time.perf_counter() - t0
                fr = params["fractions"]
                acc = pruning.prune_sweep(det, scores, fr, ds, seed=seed)
                pts = [(1.0 - f, int(round((1.0 - f) * P)), a) for f, a in zip(fr, acc)]
            else:
                rows, seconds = cluster_curve(crit, bayes, det, ds, params, seed)
                pts = [(r["param_fraction"], r["n_params"], r["quality"]) for r in rows]
                pts += [(1.0, P, full), (0.0, 0, zero)]
            train_s = bayes_s if crit in NEEDS_POSTERIOR else plain_s
            timing.append(dict(dataset=ds.name, seed=seed, criterion=crit, seconds=seconds,
                               train_seconds=train_s, total_seconds=seconds + train_s))
            curves += [dict(dataset=ds.name, seed=seed, criterion=crit, kept=k, n_kept=n, accuracy=a)
                       for k, n, a in sorted(pts)]
    return {k: pd.DataFrame(v) for k, v in
            dict(curves=curves, timing=timing, models=models, sigmas=sigmas).items()}


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
    from .claims import mean_interval

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
            f"75/25 split; {params['n_seeds']} seeds")


def check_params(params: dict) -> None:
    if 28 % params["mnist_pool"]:
        raise ValueError(f"mnist_pool must divide 28, got {params['mnist_pool']}")
    f = params["fractions"]
    if f[0] != 0.0 or f[-1] != 1.0:
        raise ValueError("fractions (removed) must run from 0 to 1, so that every curve spans all kept fractions")
    if params["hidden"] < 2:
        raise ValueError("hidden must be >= 2 (clustering merges hidden neurons)")


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
