"""Report 5 (Grabovoy, Bakhteev, Strijov): relevance of parameters and automatic pruning.

One mean-field variational MLP is trained per data set and seed (the ELBO); its posterior mean is
the network every criterion prunes, so all curves start from the same model.  Criteria:

* ``random``      -- uniform random order;
* ``magnitude``   -- ``|mu_j|`` (a baseline the deck does not use; ours);
* ``obd``         -- Optimal Brain Damage, ``h_jj w_j^2 / 2`` with the exact Hessian diagonal of
  the mean training loss at the posterior mean;
* ``variational`` -- ``mu_j^2 / sigma_j^2`` of the variational posterior;
* ``belsley``     -- the deck's method: variance-decomposition proportions of the Laplace covariance
  ``(H + damping I)^{-1}`` (correlation-scaled); at each step the direction ``xi = argmax eta_j``
  with the deck's condition index ``eta_j = lambda_j / max lambda`` (parameter ``condition_index =
  "deck"``; ``"belsley"`` = Belsley's ``sqrt(lambda_max / lambda_j)``, ours as an option), and the
  parameters with the largest proportion on it leave first;
* ``belsley_design`` -- our variant: the same diagnostics on ``G = E[g g^T]``, the Gram matrix of the
  per-sample gradients, i.e. of the design matrix of the network linearised at its parameters
  (for a linear model this is Belsley's original setting, up to scale), always with Belsley's own
  condition index (smallest eigenvalue of the design first).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import curvature, data as D, pruning, variational
from .models import mlp
from .train import resolve_device, seed_everything, train

CRITERIA = ("random", "magnitude", "obd", "variational", "belsley", "belsley_design")
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
    curvature from ``(X, y)``; ``params`` gives ``laplace_damping``, ``belsley_steps`` and
    ``condition_index`` (the deck's or Belsley's, for ``belsley``; ``belsley_design`` always uses
    Belsley's, the one made for a design matrix)."""
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
        return pruning.belsley_scores(det, cov, n_steps=params["belsley_steps"], index=params["condition_index"])
    if name == "belsley_design":
        G = curvature.gradient_outer(det, X, y, task).double()
        return pruning.belsley_scores(det, G, n_steps=params["belsley_steps"], index="belsley")
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
    ``noise`` (dataset, seed, criterion, sigma, output_std: ``noise_fraction`` removed),
    ``noise_map`` (dataset, seed, criterion, fraction, sigma, output_std: every fraction of
    ``fractions``, the deck's axes), ``timing`` (dataset, seed, criterion, seconds),
    ``models`` (dataset, seed, n_params, test quality, train epochs).
    """
    from tqdm import tqdm

    dev = resolve_device(params["device"])
    curves, noise, noise_map, timing, models = [], [], [], [], []
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
        for crit in NOISE_CRITERIA:
            noise_map += [dict(dataset=dname, seed=seed, criterion=crit, **row)
                          for row in noise_surface(det, scores[crit], ds, params, seed)]
    return {k: pd.DataFrame(v) for k, v in
            dict(curves=curves, noise=noise, noise_map=noise_map, timing=timing, models=models).items()}


def noise_surface(det, scores: pruning.Scores, ds: D.Dataset, params: dict, seed: int) -> list[dict]:
    """Output noise over the deck's axes: for every fraction removed (``fractions``) and input noise
    (``noise_sigmas``), the output standard deviation of :func:`paramspace.pruning.noise_response`."""
    rows = []
    for f in params["fractions"]:
        m = pruning.prune_by_scores(det, scores, f, seed)
        r = pruning.noise_response(m, ds.X_test, params["noise_sigmas"], ds.task,
                                   n_draws=params["noise_draws"], seed=seed)
        rows += [dict(fraction=f, sigma=sg, output_std=v) for sg, v in zip(params["noise_sigmas"], r)]
    return rows


def auc_table(curves: pd.DataFrame, clip_min: float | None = 0.0) -> pd.DataFrame:
    """Area under quality-vs-fraction-removed per (dataset, seed, criterion), quality floored at
    ``clip_min`` (see :func:`paramspace.pruning.auc_table`)."""
    return pruning.auc_table(curves, "fraction", "criterion", clip_min)


def belsley_toy(step: float = 0.02, eta_threshold: float = 30.0, index: str = "deck") -> dict:
    """Belsley analysis of the report's toy parameter set (see :func:`paramspace.data.belsley_illustration`).

    A parameter is flagged as collinear when more than half of its variance proportion lies on
    near-dependent directions: ``sqrt(lambda_max / lambda_j) > eta_threshold`` (Belsley's rule of thumb,
    30), i.e. ``eta_j < 1 / eta_threshold**2`` with the deck's index (:func:`paramspace.pruning.near_dependent`;
    the flags are the same for both indices).  ``first`` names the parameter each index's removal rule
    (:func:`paramspace.pruning.belsley_order`) takes first.
    """
    W, names = D.belsley_illustration(step)
    cov = np.cov(W, rowvar=False)
    eta, q = pruning.belsley_proportions(cov, index=index)
    share = q[:, pruning.near_dependent(eta, index, eta_threshold)].sum(1)
    flagged = [names[k] for k in np.flatnonzero(share > 0.5)]
    first = {ix: names[int(pruning.belsley_order(cov, n_steps=len(names), index=ix)[0])]
             for ix in pruning.CONDITION_INDICES}
    return dict(W=W, names=names, eta=eta, q=q, share=share, flagged=flagged, eta_threshold=eta_threshold,
                index=index, first=first)


def describe(params: dict) -> str:
    return (f"MLP {params['hidden']} (ReLU), mean-field Gaussian posterior, prior N(0, {params['prior_sigma']}²), "
            f"{params['epochs']} epochs of Adam (lr {params['lr']}, batch {params['batch_size']}), "
            f"{params['n_seeds']} seeds")


def belsley_synthetic(n_samples: int = 1000, seed: int = 0, eta_threshold: float = 30.0,
                      index: str = "deck") -> dict:
    """Belsley analysis of samples of the synthetic parameter vector ``w ~ N(m, A)`` (report 5).

    The law has one collinear group (indices 1..d-1, correlation 0.95) and an independent
    ``w_0``; the analysis should flag exactly the group.
    """
    m, A = D.synthetic_parameter_law()
    rng = np.random.default_rng(seed)
    w = rng.multivariate_normal(m, A, size=n_samples, method="cholesky")
    eta, q = pruning.belsley_proportions(np.cov(w, rowvar=False), index=index)
    share = q[:, pruning.near_dependent(eta, index, eta_threshold)].sum(1)
    return dict(eta=eta, q=q, share=share, flagged=np.flatnonzero(share > 0.5), d=len(m), index=index)


DECK_QUALITY_FIGURES = {
    "wine": "slide 'Результаты эксперимента', figure 'Качество прогноза при удаление параметров на выборке Wine'",
    "boston": "slide 'Результаты эксперимента', figure 'Качество прогноза при удаление параметров на выборке Boston'",
    "synthetic": "slide 'Результаты эксперимента', figure 'Качество прогноза при удаление параметров на "
                 "синтетических данных'",
}
CRITERION_NAMES = {"magnitude": "magnitude |μ|", "obd": "Optimal Brain Damage",
                   "variational": "variational relevance μ²/σ²",
                   "belsley": "Belsley's method (Laplace covariance)",
                   "belsley_design": "Belsley's method on the linearised design G (our variant)"}


def claims(curves: pd.DataFrame, toy: dict, synth: dict, params: dict) -> list:
    """The ledger (see :mod:`paramspace.claims`): what the deck proposes (kind ``report``), our own
    expectations and variant (``ours``) and the checks of our Belsley code on the deck's toy set and
    on the synthetic parameter law (``check``).

    The deck's quality figures are images without numbers in its text; what it states in words is
    its goal, a pruning algorithm that finds the model's structure (slide 'Цель работы'), with
    Belsley's method as the proposal (slide 'Метод Белсли').  The ``report`` rows therefore test the
    proposed method (with the deck's condition index) against random removal, the deck's own
    baseline, on each of its data sets. With ``condition_index = "belsley"`` (ours) those rows are
    ``ours``. OBD, the variational criterion and magnitude vs random are expectations of ours: the
    deck does not state how they compare.
    """
    from .claims import exact_claim, paired_claim

    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="criterion", values="auc")
    prof = params["profile"]
    out = []
    group = ["sin x", "cos x", "2 + cos x", "2 + sin x", "cos x + sin x"]
    out.append(exact_claim(
        "Our Belsley diagnostics on the deck's toy parameter set flag the collinear group "
        "(sin x, cos x, 2+cos x, 2+sin x, cos x+sin x) and leave x",
        "figure 'Илюстрация метода Белсли' (no values in the deck's text)",
        f"flagged: {', '.join(toy['flagged']) or 'none'}", sorted(toy["flagged"]) == sorted(group), prof,
        kind="check"))
    expect = list(range(1, synth["d"]))
    out.append(exact_claim(
        "Our Belsley diagnostics on samples of the deck's synthetic parameter law w ~ N(m, A) flag the "
        "correlated block w_1..w_99 and not w_0",
        "— (the deck gives the law, slide 'Синтетические данные', no diagnostics of it)",
        f"{len(synth['flagged'])} flagged; w_0 flagged: {0 in synth['flagged']}",
        list(synth["flagged"]) == expect, prof, kind="check"))
    out.append(exact_claim(
        "Read literally, the deck's removal rule (xi = argmax lambda_j / max lambda, then the largest q on "
        "xi) first removes a parameter of the toy set's collinear group",
        "not stated (our reading of slide 'Метод Белсли': the largest q belong to the most dependent parameters)",
        f"first removed: {toy['first']['deck']} (with Belsley's index: {toy['first']['belsley']})",
        toy["first"]["deck"] in group, prof, kind="ours"))
    qn = {"wine": "accuracy", "boston": "max(R², 0)", "synthetic": "max(R², 0)"}
    deck_index = params["condition_index"] == "deck"
    for crit in ("belsley", "obd", "variational", "magnitude", "belsley_design"):
        for d in params["datasets"]:
            sub = auc.loc[d]
            diffs, seeds = (sub[crit] - sub["random"]).to_numpy(), sub.index.to_numpy()
            text = (f"{CRITERION_NAMES[crit]} keeps quality longer than random removal on {d} "
                    f"(difference in area under {qn[d]} vs fraction removed)")
            if crit == "belsley" and deck_index:
                out.append(paired_claim(
                    text, "proposed as the pruning method (slides 'Цель работы', 'Метод Белсли'); the "
                    "figure's curves carry no numbers in the deck's text", diffs, seeds, prof, kind="report",
                    deck=DECK_QUALITY_FIGURES[d]))
            else:
                why = ("with Belsley's condition index instead of the deck's (our option)" if crit == "belsley"
                       else "our variant" if crit == "belsley_design" else "our expectation")
                out.append(paired_claim(text, f"not stated ({why})", diffs, seeds, prof, kind="ours"))
    return out


def summary_markdown(ledger: list) -> str:
    """A bullet list of the per-criterion verdicts of :func:`claims`, for the discussion."""
    import collections

    lines = []
    exact = [c for c in ledger if c.rule == "exact"]
    if exact:
        ok = sum(c.verdict == "reproduced" for c in exact)
        checks = [c for c in exact if c.kind == "check"]
        ok = sum(c.verdict == "reproduced" for c in checks)
        lines.append(f"* Self-checks of our Belsley diagnostics (not counted): {ok} of {len(checks)} pass.")
        lines += [f"* {c.claim} (ours, not counted): **{c.verdict}**; {c.our_value}." for c in exact
                  if c.kind != "check"]
    by = collections.defaultdict(list)
    for c in ledger:
        if c.rule == "paired":
            by[c.claim.split(" keeps quality")[0]].append(c)
    for crit, cs in by.items():
        counts = collections.Counter(c.verdict for c in cs)
        means = ", ".join(f"{c.claim.split(' random removal on ')[1].split(' ')[0]} {np.mean(c.evidence):+.3f}" for c in cs)
        kind = "the report's claim" if cs[0].kind == "report" else "ours, not counted"
        lines.append(f"* {crit} vs random ({kind}): " + ", ".join(f"{v} on {n}" for v, n in counts.items())
                     + f" data set(s); mean area difference {means}.")
    return "\n".join(lines)


NOISE_TITLES = {"random": "(a) random removal", "obd": "(b) Optimal Brain Damage", "variational": "(c) variational"}


def noise_map_figure(noise_map: pd.DataFrame, datasets: list[str]):
    """The deck's axes for output vs input noise: one row per data set, one panel per criterion
    (random, OBD, variational, as the deck's panels (a)-(c)); x = parameters removed (%), y = input
    noise sigma, colour = output noise (mean over seeds), one colour scale per row."""
    import matplotlib.pyplot as plt

    crits = [c for c in NOISE_CRITERIA if c in set(noise_map.criterion)]
    fig, axes = plt.subplots(len(datasets), len(crits), figsize=(4.2 * len(crits) + 1.2, 3.4 * len(datasets)),
                             squeeze=False, sharey=True)
    for r, d in enumerate(datasets):
        sub = noise_map[noise_map.dataset == d].groupby(["criterion", "sigma", "fraction"])["output_std"].mean()
        vmax = float(sub.max())
        for c, crit in enumerate(crits):
            grid = sub.loc[crit].unstack("fraction")
            ax = axes[r][c]
            mesh = ax.pcolormesh(100 * grid.columns.to_numpy(), grid.index.to_numpy(), grid.to_numpy(),
                                 shading="nearest", cmap="viridis", vmin=0.0, vmax=vmax)
            ax.set(title=f"{d.capitalize()}: {NOISE_TITLES[crit]}", xlabel="parameters removed (%)",
                   ylabel="input noise $\\sigma$" if c == 0 else "")
        fig.colorbar(mesh, ax=list(axes[r]), label="output noise (sd)", fraction=0.03, pad=0.02)
    return fig


def noise_curves_figure(noise: pd.DataFrame, datasets: list[str], fraction: float):
    """Our view: output noise vs input noise sigma at one fraction removed, one panel per data set."""
    import matplotlib.pyplot as plt

    from . import plots

    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets) + 1.5, 4.2), squeeze=False)
    for i, (ax, d) in enumerate(zip(axes[0], datasets)):
        plots.band(noise[noise.dataset == d], "sigma", "output_std", ax=ax, legend=i == len(datasets) - 1,
                   xlabel="input noise $\\sigma$", ylabel="output noise (sd)" if i == 0 else "",
                   title=f"{d.capitalize()}: {100 * fraction:.0f}% removed")
    fig.tight_layout()
    return fig


def quality_figure(curves: pd.DataFrame, datasets: list[str], n_seeds: int):
    """Quality vs fraction of parameters removed, one panel per data set, every criterion."""
    import matplotlib.pyplot as plt

    from . import plots

    qlabel = {"wine": "test accuracy", "boston": "test $R^2$", "synthetic": "test $R^2$"}
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets) + 2.0, 4.4), squeeze=False)
    for i, (ax, d) in enumerate(zip(axes[0], datasets)):
        plots.band(curves[curves.dataset == d], "fraction", "quality", ax=ax, percent_x=True,
                   legend=i == len(datasets) - 1, xlabel="parameters removed (%)", ylabel=qlabel[d],
                   title=f"{d.capitalize()} ({n_seeds} seeds)")
        if d != "wine":
            ax.set_ylim(-0.5, 1.05)
    fig.tight_layout()
    return fig
