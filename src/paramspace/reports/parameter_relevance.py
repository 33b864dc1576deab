"""Report 5, parameter_relevance (Grabovoy, Bakhteev, Strijov): relevance of parameters and automatic pruning.

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

A run of :func:`plan` is one (data set, seed): train the variational MLP, score every criterion, sweep
the fractions removed, measure the noise responses. Methods live in :mod:`paramspace.variational`
(:func:`~paramspace.variational.fit_variational`) and :mod:`paramspace.pruning`
(:func:`~paramspace.pruning.criterion_score`, :func:`~paramspace.pruning.noise_surface`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from .. import data as D, pruning, variational
from ..train import cpu_threads, resolve_device
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
        "cpu_threads": CPU_THREADS,
    },
)

_grid = [round(i / 20, 2) for i in range(21)]
REPORT.profiles = {
    "smoke": dict(profile="smoke", device="cpu", seed=0, n_seeds=2, datasets=list(_RELEVANCE_DATASETS),
                  hidden=[8], epochs=3, lr=0.01, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                  synthetic_n=400, synthetic_epochs=3, fractions=[0.0, 0.5, 1.0], belsley_steps=5, laplace_damping=0.001,
                  condition_index="deck",
                  noise_fraction=0.5, noise_sigmas=[0.0, 0.5], noise_draws=3, cpu_threads=1),
    "book": dict(profile="book", device="auto", seed=0, n_seeds=5, datasets=list(_RELEVANCE_DATASETS),
                 hidden=[16], epochs=200, lr=0.01, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                 synthetic_n=10000, synthetic_epochs=40, fractions=_grid, belsley_steps=100, laplace_damping=0.001,
                 condition_index="deck",
                 noise_fraction=0.5, noise_sigmas=[0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0], noise_draws=20, cpu_threads=1),
    "paper": dict(profile="paper", device="auto", seed=0, n_seeds=10, datasets=list(_RELEVANCE_DATASETS),
                  hidden=[32, 32], epochs=500, lr=0.005, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                  synthetic_n=10000, synthetic_epochs=200, fractions=[round(i / 50, 2) for i in range(51)], belsley_steps=400,
                  laplace_damping=0.001, condition_index="deck", noise_fraction=0.5,
                  noise_sigmas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0], noise_draws=50, cpu_threads=0),
}


CRITERIA = pruning.CRITERIA
NOISE_CRITERIA = ("random", "obd", "variational")

# --- the experiment: plan / execute / summarize ------------------------------------------------


def load_dataset(name: str, seed: int, synthetic_n: int = 10000) -> D.Dataset:
    """Wine, Boston (split with ``seed``) or the report's synthetic data (``synthetic_n`` rows)."""
    if name == "synthetic":
        return D.make_synthetic_relevance(n=synthetic_n, seed=seed)
    return D.load(name, seed=seed)


def plan(P: dict) -> list[dict]:
    """One run per (data set, seed), data sets outermost; each holds every value its run reads,
    ``cpu_threads`` included (1 in the book profile, so the engine runs two runs at once on two cores;
    0 = torch's default)."""
    keep = ("cpu_threads", "hidden", "lr", "batch_size", "prior_sigma", "kl_weight", "synthetic_n", "fractions", "belsley_steps",
            "laplace_damping", "condition_index", "noise_fraction", "noise_sigmas", "noise_draws", "device")
    return [dict(dataset=d, seed=P["seed"] + s,
                 epochs=P["synthetic_epochs"] if d == "synthetic" else P["epochs"],
                 **{k: P[k] for k in keep})
            for d in P["datasets"] for s in range(P["n_seeds"])]


def execute(run: dict) -> dict[str, list[dict]]:
    """One (data set, seed): the variational MLP, every criterion's scores and quality curve, the noise
    responses at ``noise_fraction`` and the noise surface over ``fractions``. Returns lists of rows:
    ``curves``, ``noise``, ``noise_map``, ``timing``, ``models`` (see :func:`summarize`)."""
    with cpu_threads(run["cpu_threads"]):
        return _execute(run)


def _execute(run: dict) -> dict[str, list[dict]]:
    dname, seed, fractions, sigmas = run["dataset"], run["seed"], run["fractions"], run["noise_sigmas"]
    ds = load_dataset(dname, seed, run["synthetic_n"])
    bayes, hist = variational.fit_variational(
        ds, hidden=run["hidden"], epochs=run["epochs"], lr=run["lr"], batch_size=run["batch_size"],
        prior_sigma=run["prior_sigma"], kl_weight=run["kl_weight"], seed=seed,
        device=str(resolve_device(run["device"])))
    det = variational.to_deterministic(bayes)
    scores, seconds = {}, {}
    for name in CRITERIA:
        t0 = time.perf_counter()
        scores[name] = pruning.criterion_score(
            name, bayes=bayes, det=det, X=ds.X_train, y=ds.y_train, task=ds.task, seed=seed,
            laplace_damping=run["laplace_damping"], belsley_steps=run["belsley_steps"],
            condition_index=run["condition_index"])
        seconds[name] = time.perf_counter() - t0
    out = dict(curves=[], noise=[], noise_map=[], timing=[], models=[])
    base = pruning.prune_sweep(det, scores["random"], [0.0], ds)[0]
    out["models"].append(dict(dataset=dname, seed=seed, n_params=sum(p.numel() for p in det.parameters()),
                              quality=base, final_loss=hist.loss[-1]))
    for crit, sc in scores.items():
        q = pruning.prune_sweep(det, sc, fractions, ds, seed=seed)
        out["curves"] += [dict(dataset=dname, seed=seed, criterion=crit, fraction=f, quality=v)
                          for f, v in zip(fractions, q)]
        out["timing"].append(dict(dataset=dname, seed=seed, criterion=crit, seconds=seconds[crit]))
    noise_models = {"unpruned": det} | {
        c: pruning.prune_by_scores(det, scores[c], run["noise_fraction"], seed) for c in NOISE_CRITERIA}
    # one set of input perturbations for every model of the noise study (as if each call drew its own
    # with the same seed: pruning.input_noise)
    noise = pruning.input_noise(ds.X_test.shape, len(sigmas), run["noise_draws"], seed)
    for crit, m in noise_models.items():
        r = pruning.noise_response(m, ds.X_test, sigmas, ds.task, n_draws=run["noise_draws"], seed=seed, noise=noise)
        out["noise"] += [dict(dataset=dname, seed=seed, criterion=crit, sigma=s, output_std=v)
                         for s, v in zip(sigmas, r)]
    for crit in NOISE_CRITERIA:
        out["noise_map"] += [dict(dataset=dname, seed=seed, criterion=crit, **row) for row in pruning.noise_surface(
            det, scores[crit], ds.X_test, ds.task, fractions=fractions, sigmas=sigmas,
            n_draws=run["noise_draws"], seed=seed, noise=noise)]
    return out


def tables(results: list[dict]) -> dict[str, pd.DataFrame]:
    """The runs' rows, in plan order, as tidy frames: ``curves`` (dataset, seed, criterion, fraction,
    quality), ``noise`` (dataset, seed, criterion, sigma, output_std: ``noise_fraction`` removed),
    ``noise_map`` (dataset, seed, criterion, fraction, sigma, output_std: every fraction of
    ``fractions``, the deck's axes), ``timing`` (dataset, seed, criterion, seconds), ``models``
    (dataset, seed, n_params, test quality, final training loss)."""
    keys = ("curves", "noise", "noise_map", "timing", "models")
    return {k: pd.DataFrame([row for r in results for row in r[k]]) for k in keys}


def summarize(P: dict, results: list[dict]) -> dict:
    """The tables (:func:`tables`), the trained networks' table, the area under each curve (per seed,
    ``auc``, and as mean ± sd, ``auc_tab``), the timing table (ms), the Belsley illustrations (``toy``,
    ``synth``), the claims ledger and the generated discussion."""
    out = tables(results)
    out["models_tab"] = out["models"].groupby("dataset", sort=False).agg(
        parameters=("n_params", "first"), quality_mean=("quality", "mean"), quality_sd=("quality", "std")
    ).round(3)
    out["auc"] = auc = auc_table(out["curves"])
    tab = auc.groupby(["dataset", "criterion"], sort=False)["auc"].agg(["mean", "std"])
    tab = (tab["mean"].map("{:.3f}".format) + " ± " + tab["std"].map("{:.3f}".format)).unstack("criterion")
    out["auc_tab"] = tab[[c for c in CRITERIA if c in tab.columns]]
    out["timing_tab"] = (1000 * out["timing"].groupby(["dataset", "criterion"], sort=False)["seconds"].mean()
                         ).unstack("criterion").round(1)
    out["toy"] = toy = belsley_toy(index=P["condition_index"])
    out["synth"] = synth = belsley_synthetic(seed=P["seed"], index=P["condition_index"])
    out["claims"] = ledger = claims(out["curves"], toy, synth, P)
    out["summary"] = summary_markdown(ledger)
    return out


# --- tables, illustrations, claims, prose, figures ---------------------------------------------


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
    from ..claims import exact_claim, paired_claim

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

    from .. import plots

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

    from .. import plots

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
