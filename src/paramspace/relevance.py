"""Report 5 (Grabovoy, Bakhteev, Strijov): relevance of parameters and automatic pruning.

One mean-field variational MLP is trained per data set and seed (the ELBO); its posterior mean is
the network every criterion prunes, so all curves start from the same model.  Criteria:

* ``random``      -- uniform random order;
* ``obd``         -- Optimal Brain Damage, ``h_jj w_j^2 / 2`` with the exact Hessian diagonal of
  the mean training loss at the posterior mean;
* ``variational`` -- ``mu_j^2 / sigma_j^2`` of the variational posterior;
* ``belsley``     -- Belsley's variance-decomposition proportions of the Laplace covariance
  ``(H + damping I)^{-1}`` (correlation-scaled), removing the most collinear parameters first;
* ``belsley_design`` -- our variant: the same diagnostics on ``G = E[g g^T]``, the Gram matrix of the
  per-sample gradients, i.e. of the design matrix of the network linearised at its parameters
  (for a linear model this is Belsley's original setting, up to scale).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import curvature, data as D, pruning, variational
from .models import mlp
from .train import resolve_device, seed_everything, train

CRITERIA = ("random", "obd", "variational", "belsley", "belsley_design")
NOISE_CRITERIA = ("random", "obd", "variational")


def load_dataset(name: str, seed: int, synthetic_n: int = 10000) -> D.Dataset:
    if name == "synthetic":
        return D.make_synthetic_relevance(n=synthetic_n, seed=seed)
    return D.load(name, seed=seed)


def fit_variational(ds: D.Dataset, params: dict, seed: int, progress: bool = False):
    """Train the mean-field Gaussian MLP of the report on ``ds``; returns ``(bayes_model, history)``."""
    seed_everything(seed)
    model = mlp(ds.n_features, params["hidden"], ds.out_dim, "relu",
                linear=variational.BayesLinear, prior_sigma=params["prior_sigma"])
    epochs = params["synthetic_epochs"] if ds.name == "synthetic" else params["epochs"]
    hist = train(model, ds, epochs=epochs, lr=params["lr"], batch_size=params["batch_size"],
                 seed=seed, device=params["device"], progress=progress, desc=f"{ds.name} seed {seed}",
                 regularizer=variational.kl_regularizer(len(ds.X_train), params["kl_weight"]))
    return model.cpu(), hist


def criterion_score(name: str, bayes, det, X, y, task: str, params: dict, seed: int) -> pruning.Scores:
    """Scores of one criterion for the deterministic network ``det`` (the posterior mean of ``bayes``),
    curvature from ``(X, y)``; ``params`` gives ``laplace_damping`` and ``belsley_steps``."""
    if name == "random":
        return pruning.random_scores(det, seed)
    if name == "magnitude":
        return pruning.magnitude_scores(det)
    if name == "obd":
        return pruning.obd_scores(det, X, y, task)
    if name == "variational":
        return pruning.variational_scores(bayes)
    if name == "belsley":
        H = curvature.hessian(det, X, y, task)
        cov = curvature.laplace_covariance(H, params["laplace_damping"])
        return pruning.belsley_scores(det, cov, n_steps=params["belsley_steps"])
    if name == "belsley_design":
        G = curvature.gradient_outer(det, X, y, task).double()
        return pruning.belsley_scores(det, G, n_steps=params["belsley_steps"])
    raise ValueError(f"unknown criterion {name!r}")


def criterion_scores(bayes, det, ds: D.Dataset, params: dict, seed: int) -> tuple[dict, dict]:
    """Scores of every criterion for the deterministic network ``det`` and their wall times (s)."""
    scores, seconds = {}, {}
    for name in CRITERIA:
        t0 = time.perf_counter()
        scores[name] = criterion_score(name, bayes, det, ds.X_train, ds.y_train, ds.task, params, seed)
        seconds[name] = time.perf_counter() - t0
    return scores, seconds


def run(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The whole experiment: every data set x seed x criterion.

    Returns tidy data frames: ``curves`` (dataset, seed, criterion, fraction, quality),
    ``noise`` (dataset, seed, criterion, sigma, output_std), ``timing`` (dataset, seed,
    criterion, seconds), ``models`` (dataset, seed, n_params, test quality, train epochs).
    """
    from tqdm import tqdm

    dev = resolve_device(params["device"])
    curves, noise, timing, models = [], [], [], []
    jobs = [(d, params["seed"] + s) for d in params["datasets"] for s in range(params["n_seeds"])]
    for dname, seed in tqdm(jobs, desc="data set x seed", disable=not progress):
        ds = load_dataset(dname, seed, params["synthetic_n"])
        bayes, hist = fit_variational(ds, {**params, "device": str(dev)}, seed)
        det = variational.to_deterministic(bayes)
        scores, seconds = criterion_scores(bayes, det, ds, params, seed)
        base = pruning.prune_sweep(det, scores["random"], [0.0], ds)[0]
        models.append(dict(dataset=dname, seed=seed, n_params=sum(p.numel() for p in det.parameters()),
                           quality=base, final_loss=hist.loss[-1]))
        for crit, sc in scores.items():
            q = pruning.prune_sweep(det, sc, params["fractions"], ds, seed=seed)
            curves += [dict(dataset=dname, seed=seed, criterion=crit, fraction=f, quality=v)
                       for f, v in zip(params["fractions"], q)]
            timing.append(dict(dataset=dname, seed=seed, criterion=crit, seconds=seconds[crit]))
        noise_models = {"unpruned": det} | {
            c: pruning.prune_by_scores(det, scores[c], params["noise_fraction"], seed) for c in NOISE_CRITERIA}
        for crit, m in noise_models.items():
            r = pruning.noise_response(m, ds.X_test, params["noise_sigmas"], ds.task,
                                       n_draws=params["noise_draws"], seed=seed)
            noise += [dict(dataset=dname, seed=seed, criterion=crit, sigma=s, output_std=v)
                      for s, v in zip(params["noise_sigmas"], r)]
    return {k: pd.DataFrame(v) for k, v in
            dict(curves=curves, noise=noise, timing=timing, models=models).items()}


def auc_table(curves: pd.DataFrame, clip_min: float | None = 0.0) -> pd.DataFrame:
    """Area under quality-vs-fraction-removed per (dataset, seed, criterion), quality floored at
    ``clip_min`` (see :func:`paramspace.pruning.auc_table`)."""
    return pruning.auc_table(curves, "fraction", "criterion", clip_min)


def belsley_toy(step: float = 0.02, eta_threshold: float = 30.0) -> dict:
    """Belsley analysis of the report's toy parameter set (see :func:`paramspace.data.belsley_illustration`).

    A parameter is flagged as collinear when more than half of its variance proportion lies on
    directions whose condition index exceeds ``eta_threshold`` (Belsley's rule of thumb: 30).
    """
    W, names = D.belsley_illustration(step)
    cov = np.cov(W, rowvar=False)
    eta, q = pruning.belsley_proportions(cov)
    share = q[:, eta > eta_threshold].sum(1)
    flagged = [names[k] for k in np.flatnonzero(share > 0.5)]
    return dict(W=W, names=names, eta=eta, q=q, share=share, flagged=flagged, eta_threshold=eta_threshold)


def describe(params: dict) -> str:
    return (f"MLP {params['hidden']} (ReLU), mean-field Gaussian posterior, prior N(0, {params['prior_sigma']}²), "
            f"{params['epochs']} epochs of Adam (lr {params['lr']}, batch {params['batch_size']}), "
            f"{params['n_seeds']} seeds")


def belsley_synthetic(n_samples: int = 1000, seed: int = 0, eta_threshold: float = 30.0) -> dict:
    """Belsley analysis of samples of the synthetic parameter vector ``w ~ N(m, A)`` (report 5).

    The law has one collinear group (indices 1..d-1, correlation 0.95) and an independent
    ``w_0``; the analysis should flag exactly the group.
    """
    m, A = D.synthetic_parameter_law()
    rng = np.random.default_rng(seed)
    w = rng.multivariate_normal(m, A, size=n_samples, method="cholesky")
    eta, q = pruning.belsley_proportions(np.cov(w, rowvar=False))
    share = q[:, eta > eta_threshold].sum(1)
    return dict(eta=eta, q=q, share=share, flagged=np.flatnonzero(share > 0.5), d=len(m))


def claims(curves: pd.DataFrame, toy: dict, synth: dict, params: dict) -> list:
    """The report's claims, our measurements and verdicts (see :mod:`paramspace.claims`)."""
    from .claims import Claim, paired_claim, verdict_boolean

    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="criterion", values="auc")
    out = []
    group = ["sin x", "cos x", "2 + cos x", "2 + sin x", "cos x + sin x"]
    out.append(Claim(
        "Belsley's variance proportions single out the collinear group of the toy parameter set "
        "(sin x, cos x, 2+cos x, 2+sin x, cos x+sin x) and leave x",
        "group singled out (figure)", f"flagged: {', '.join(toy['flagged']) or 'none'}",
        verdict_boolean(sorted(toy["flagged"]) == sorted(group)), [], None, params["profile"], [], "exact"))
    expect = list(range(1, synth["d"]))
    out.append(Claim(
        "On samples of the synthetic parameters w ~ N(m, A), Belsley flags the correlated block w_1..w_99 and not w_0",
        "block detected", f"{len(synth['flagged'])} flagged; w_0 flagged: {0 in synth['flagged']}",
        verdict_boolean(list(synth["flagged"]) == expect), [], None, params["profile"], [], "exact"))
    names = {"obd": "Optimal Brain Damage", "variational": "variational relevance μ²/σ²",
             "belsley": "Belsley's method (Laplace covariance)",
             "belsley_design": "Belsley's method on the linearised design G (our variant)"}
    qn = {"wine": "accuracy", "boston": "max(R², 0)", "synthetic": "max(R², 0)"}
    for crit in ("obd", "variational", "belsley", "belsley_design"):
        for d in params["datasets"]:
            sub = auc.loc[d]
            out.append(paired_claim(
                f"{names[crit]} keeps quality longer than random removal on {d} "
                f"(difference in area under {qn[d]} vs fraction removed)",
                "> 0 (curves above random)", (sub[crit] - sub["random"]).to_numpy(),
                sub.index.to_numpy(), params["profile"]))
    return out


def summary_markdown(ledger: list) -> str:
    """A bullet list of the per-criterion verdicts of :func:`claims`, for the discussion."""
    import collections

    lines = []
    exact = [c for c in ledger if c.rule == "exact"]
    if exact:
        ok = sum(c.verdict == "reproduced" for c in exact)
        lines.append(f"* Belsley's collinearity illustrations: {ok} of {len(exact)} exact checks reproduced.")
    by = collections.defaultdict(list)
    for c in ledger:
        if c.rule == "paired":
            by[c.claim.split(" keeps quality")[0]].append(c)
    for crit, cs in by.items():
        counts = collections.Counter(c.verdict for c in cs)
        means = ", ".join(f"{c.claim.split(' random removal on ')[1].split(' ')[0]} {np.mean(c.evidence):+.3f}" for c in cs)
        lines.append(f"* {crit} vs random: " + ", ".join(f"{v} on {n}" for v, n in counts.items())
                     + f" data set(s); mean area difference {means}.")
    return "\n".join(lines)
