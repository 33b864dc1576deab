"""Report 3, importance_dropconnect (Rebrikov 2024): parameters, rules, experiment (plan/execute/summarize), tables, claims and prose.

The methods (importances by mirror descent, keep-probabilities, masked training) are in
:mod:`paramspace.dropconnect`; this module holds what is particular to the report: its parameters
and profiles, the rules across them, the runs of its experiment, and its tables, figures, claims
and generated prose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import dropconnect as DC
from .. import vision as V
from ..claims import KIND_LABEL, paired_claim, verdict_phrase
from ..train import cpu_threads, resolve_device, seed_everything
from .spec import COMMON, CPU_THREADS, Param, ProfileError, Report, _number, fraction_grid, int_list, positive_float, positive_int

_ID_DATASETS = V.DATASETS
_ID_ARCHS = ("cnn", *V.RESNETS)

REPORT = Report(
    name="importance_dropconnect",
    title="DropConnect guided by weight importance",
    author="A. Rebrikov",
    seed_id="002",
    params={
        **COMMON,
        "dataset": Param(str, "data set: 'mnist' or 'fashion-mnist' (shipped) or 'cifar10' (paper), 'cifar100', "
                         "'svhn' (need a network or the files in data/)",
                         lambda v: v in _ID_DATASETS, f"one of {_ID_DATASETS}"),
        "arch": Param(str, "'cnn' (small CNN) or 'resnet18', 'resnet34', 'resnet50' (torchvision ResNet with a "
                      "3x3 stem, no max-pool); channels and image size are read off the data",
                      lambda v: v in _ID_ARCHS, f"one of {_ID_ARCHS}"),
        "width": positive_int("channels of the small CNN's first convolution (the second has twice as many)"),
        "n_train": positive_int("training images, a seeded random subset per seed (all if >= the set's size)"),
        "n_test": positive_int("test images, a seeded random subset per seed (all if >= the set's size)"),
        "augment": Param(bool, "random crop (padding 4) and horizontal flip (no flip for svhn) of the training "
                         "images (cifar10, cifar100, svhn only)"),
        "epochs": positive_int("training epochs of every run"),
        "batch_size": positive_int("minibatch size"),
        "optimizer": Param(str, "'adam', or 'sgd' (Nesterov momentum 0.9, cosine learning-rate schedule)",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("learning rate of the weights"),
        "weight_decay": Param(float, "L2 weight decay of the optimizer (every method)", lambda v: v >= 0,
                              "a number >= 0"),
        "drop_rate": Param(float, "p: expected fraction of dropped weights per layer (all DropConnect variants)",
                           lambda v: 0 < v < 1, "a number in (0, 1)"),
        "min_keep": Param(float, "lowest keep-probability of a weight under importance DropConnect (<= 1 - drop_rate)",
                          lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "importance_lr": positive_float("eta: step of the exponentiated-gradient (mirror-descent) update of the importances"),
        "importance_gamma": positive_float("gamma: size of the importance-weighted gradient step inside the objective"),
        "importance_tau": positive_float("tau: weight of the KL-to-uniform regulariser (per weight) of the '+ KL' variant"),
        "importance_every": positive_int("minibatches between two importance updates"),
        "importance_steps": positive_int("mirror-descent steps per importance update"),
        "importance_data": Param(str, "data of the importance objective: 'same' (the deck's: gradient and loss after "
                                 "the step on the same minibatch) or 'split' (ours: gradient on one half, loss on the other)",
                                 lambda v: v in ("same", "split"), "one of ('same', 'split')"),
        "collapse_steps": positive_int("mirror-descent steps of the collapse check (importance problem solved at fixed "
                                       "trained weights on one batch, from uniform)"),
        "collapse_seeds": positive_int("seeds of the collapse check (the first ones of the main run; <= n_seeds)"),
        "collapse_layer_step": positive_float("collapse check: largest change of a log-importance in the first mirror-"
                                              "descent step, per layer (the step is scaled per layer; see collapse_check)"),
        "collapse_share": Param(float, "ours: a layer counts as collapsed to one weight when its largest share "
                                "max w/|X| exceeds this", lambda v: 0 < v < 1, "a number in (0, 1)"),
        "grid_min_keep": Param(list, "min_keep values of the sensitivity grid (each <= 1 - drop_rate)",
                               lambda v: len(v) >= 1 and all(_number(x) and 0 <= x < 1 for x in v)
                               and list(v) == sorted(set(v)), "a non-empty increasing list of numbers in [0, 1)"),
        "grid_tau": Param(list, "importance_tau values of the sensitivity grid (0 = importance DropConnect without KL)",
                          lambda v: len(v) >= 1 and all(_number(x) and x >= 0 for x in v)
                          and list(v) == sorted(set(v)), "a non-empty increasing list of numbers >= 0"),
        "grid_seeds": positive_int("seeds of the sensitivity grid (the first ones of the main run; <= n_seeds)"),
        "early_epochs": positive_int("'early in training' = the first this many epochs (must be < epochs)"),
        "cpu_threads": CPU_THREADS,
    },
)

_id_common = dict(seed=0, drop_rate=0.3, min_keep=0.5, importance_gamma=0.1, importance_lr=300.0,
                  importance_tau=1e-4, importance_every=1, importance_steps=1, importance_data="same",
                  collapse_share=0.5, collapse_layer_step=0.5)
REPORT.profiles = {
    "smoke": {**_id_common, **dict(profile="smoke", device="cpu", n_seeds=2, dataset="fashion-mnist", arch="cnn",
                                   width=4, n_train=256, n_test=256, augment=False, epochs=3, batch_size=64,
                                   optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=1, cpu_threads=1,
                                   collapse_steps=20, collapse_seeds=2, grid_min_keep=[0.5, 0.7], grid_tau=[0.0, 1e-3],
                                   grid_seeds=1)},
    "book": {**_id_common, **dict(profile="book", device="auto", n_seeds=5, dataset="fashion-mnist", arch="cnn",
                                  width=8, n_train=500, n_test=1000, augment=False, epochs=24, batch_size=64,
                                  optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=6, cpu_threads=1,
                                  collapse_steps=1000, collapse_seeds=3, grid_min_keep=[0.1, 0.5],
                                  grid_tau=[0.0, 1e-4, 1e-3], grid_seeds=3)},
    "paper": {**_id_common, **dict(profile="paper", device="auto", n_seeds=5, dataset="cifar10", arch="resnet18",
                                   width=8, n_train=50000, n_test=10000, augment=True, epochs=50, batch_size=128,
                                   optimizer="sgd", lr=0.1, weight_decay=5e-4, early_epochs=5, cpu_threads=0,
                                   collapse_steps=2000, collapse_seeds=2, grid_min_keep=[0.1, 0.5],
                                   grid_tau=[0.0, 1e-4, 1e-3], grid_seeds=2)},
}


def check_params(params: dict) -> dict:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute);
    each broken rule raises :class:`~paramspace.reports.ProfileError`."""
    if params["min_keep"] > 1 - params["drop_rate"]:
        raise ProfileError(f"importance_dropconnect: min_keep = {params['min_keep']} must be at most "
                           f"1 - drop_rate = {1 - params['drop_rate']:.3g}")
    bad = [v for v in params.get("grid_min_keep", []) if v > 1 - params["drop_rate"]]
    if bad:
        raise ProfileError(f"importance_dropconnect: grid_min_keep values {bad} must be at most "
                           f"1 - drop_rate = {1 - params['drop_rate']:.3g}")
    if params.get("collapse_seeds", 1) > params["n_seeds"]:
        raise ProfileError(f"importance_dropconnect: collapse_seeds = {params['collapse_seeds']} must be at most "
                           f"n_seeds = {params['n_seeds']}")
    if params.get("grid_seeds", 1) > params["n_seeds"]:
        raise ProfileError(f"importance_dropconnect: grid_seeds = {params['grid_seeds']} must be at most "
                           f"n_seeds = {params['n_seeds']}")
    if params["early_epochs"] >= params["epochs"]:
        raise ProfileError(f"importance_dropconnect: early_epochs = {params['early_epochs']} must be "
                           f"smaller than epochs = {params['epochs']}")
    return params


def describe(params: dict) -> str:
    """Network, data, optimizer and seeds of ``params`` in one phrase."""
    arch = (f"{V.ARCH_LABELS[params['arch']]} (3x3 stem, no max-pool)" if params["arch"] in V.RESNETS else
            f"small CNN (conv {params['width']}-{2 * params['width']}, 5x5, max-pool; FC 64)")
    opt = (f"Adam (lr {params['lr']})" if params["optimizer"] == "adam"
           else f"SGD with Nesterov momentum 0.9 (lr {params['lr']}, cosine schedule)")
    wd = f", weight decay {params['weight_decay']}" if params["weight_decay"] else ""
    return (f"{arch} on {params['dataset']} ({params['n_train']} training / {params['n_test']} test images), "
            f"{params['epochs']} epochs of {opt}{wd}, batch {params['batch_size']}, {params['n_seeds']} seeds")


REPORT.check = check_params

METHODS = DC.METHODS
METHOD_LABELS = {"no_dropout": "no dropout", "dropconnect": "DropConnect",
                 "importance_dc": "importance DropConnect", "importance_dc_kl": "importance DropConnect + KL"}

# --- experiment: plan / execute / summarize ------------------------------------------------------

_TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "drop_rate", "min_keep", "importance_lr",
               "importance_gamma", "importance_tau", "importance_every", "importance_steps", "importance_data")
_DATA_KEYS = ("dataset", "n_train", "n_test", "augment", "batch_size")


def _grid_cells(P: dict) -> list[tuple[float, float, str, bool]]:
    """The sensitivity grid's cells ``(min_keep, tau, method, reused)`` in order; ``reused``: equal to
    the main run's settings, read from its curves instead of being retrained."""
    out = []
    for mk in P["grid_min_keep"]:
        for tau in P["grid_tau"]:
            method = "importance_dc_kl" if tau > 0 else "importance_dc"
            reuse = mk == P["min_keep"] and (tau == 0 or tau == P["importance_tau"])
            out.append((mk, tau, method, reuse))
    return out


def plan(P: dict) -> list[dict]:
    """The independent runs: one training per (seed, method) of the main comparison (``kind = "main"``;
    the ``importance_dc`` runs of the first ``collapse_seeds`` seeds also run the collapse check at
    the weights they end with), then one per (seed, min_keep, tau) of the sensitivity grid on the first
    ``grid_seeds`` seeds (``kind = "grid"``, the first ``early_epochs`` epochs only), less the cells
    equal to the main run's settings (read from the main curves by :func:`summarize`).  Each run
    holds every value it needs."""
    common = dict(data={k: P[k] for k in _DATA_KEYS}, arch=P["arch"], width=P["width"], device=P["device"],
                  cpu_threads=P["cpu_threads"], progress=P["profile"] == "paper")
    train = {k: P[k] for k in _TRAIN_KEYS}
    runs = []
    for s in range(P["n_seeds"]):
        seed = P["seed"] + s
        for m in METHODS:
            collapse = None
            if m == "importance_dc" and s < P["collapse_seeds"]:
                collapse = dict(eta=P["importance_lr"], gamma=P["importance_gamma"], taus=[0.0, P["importance_tau"]],
                                steps=P["collapse_steps"], layer_step=P["collapse_layer_step"])
            runs.append(dict(kind="main", seed=seed, method=m, train=dict(train), stop_after=None,
                             collapse=collapse, **common))
    for s in range(P["grid_seeds"]):
        seed = P["seed"] + s
        for mk, tau, m, reuse in _grid_cells(P):
            if not reuse:
                runs.append(dict(kind="grid", seed=seed, method=m, min_keep=mk, tau=tau,
                                 train={**train, "min_keep": mk, "importance_tau": tau},
                                 stop_after=P["early_epochs"], collapse=None, **common))
    return runs


def execute(run: dict) -> dict:
    """One training run (pure: reads only ``run``).  Loads the seed's data
    (:func:`paramspace.vision.load_data`, standardised per channel), seeds everything with the
    run's seed (same initial weights for every method of a seed), builds the network and trains it
    with :func:`paramspace.dropconnect.train_method`; for a run with ``collapse`` settings, then the
    collapse check (:func:`paramspace.dropconnect.collapse_check`) on the first training batch.
    Returns the per-epoch records, the seconds, the final importances (one flat float64 array, or
    None) and the collapse frame (or None), all on the CPU."""
    with cpu_threads(run["cpu_threads"]):
        dev = resolve_device(run["device"])
        seed = run["seed"]
        data = V.load_data(run["data"]["dataset"], run["data"]["n_train"], run["data"]["n_test"], seed,
                           run["data"]["augment"], standardize=True).to(dev)
        seed_everything(seed)
        model = V.build_model(run["arch"], data.in_channels, data.n_classes, width=run["width"],
                              image_size=data.image_size, mean=None, std=None)
        out = DC.train_method(model, data, run["method"], seed=seed, device=dev, stop_after=run["stop_after"],
                              progress=run["progress"], **run["train"])
        imp = out["importance"]
        result = dict(epochs=out["epochs"], seconds=out["seconds"], collapse=None,
                      importance=None if imp is None else
                      torch.cat([v.reshape(-1) for v in imp.values()]).double().numpy())
        if run["collapse"] is not None:
            # the deck's collapse statement: mirror descent solved to convergence, with and without
            # KL, at the weights this run ends with (trained under importance DropConnect without KL)
            x, y = next(iter(data.eval_batches("train", run["data"]["batch_size"])))
            c = run["collapse"]
            cc = DC.collapse_check(model, x, y, eta=c["eta"], gamma=c["gamma"], taus=tuple(c["taus"]),
                                   steps=c["steps"], layer_step=c["layer_step"])
            result["collapse"] = cc.assign(seed=seed)
    return result


def summarize(P: dict, results: list) -> dict:
    """From the results of :func:`plan`'s runs (in plan order): ``curves`` (tidy: method, seed, epoch,
    train/test loss and accuracy, gaps, importance statistics), ``importances`` (method -> {seed ->
    flat array}), ``timing`` (method, seed, seconds), ``collapse`` (the collapse check of the first
    ``collapse_seeds`` seeds), ``grid`` (the sensitivity grid: one row per (min_keep, tau, seed) with
    its early test accuracy and the paired difference to plain DropConnect's, percentage points) and
    ``ledger`` (:func:`claims`)."""
    runs = plan(P)
    if len(runs) != len(results):
        raise ValueError(f"expected {len(runs)} results (one per run of the plan), got {len(results)}")
    rows, timing, collapse = [], [], []
    imps = {m: {} for m in METHODS if m.startswith("importance")}
    grid_out = {}
    for run, res in zip(runs, results):
        seed, method = run["seed"], run["method"]
        if run["kind"] == "grid":
            grid_out[(seed, run["min_keep"], run["tau"])] = float(np.mean([r["test_acc"] for r in res["epochs"]]))
            continue
        rows += [dict(method=method, seed=seed, **r) for r in res["epochs"]]
        timing.append(dict(method=method, seed=seed, seconds=res["seconds"]))
        if res["importance"] is not None:
            imps[method][seed] = res["importance"]
        if res["collapse"] is not None:
            collapse.append(res["collapse"])
    curves = pd.DataFrame(rows)
    curves["gap_acc"] = curves["train_acc"] - curves["test_acc"]
    curves["gap_loss"] = curves["test_loss"] - curves["train_loss"]
    collapse = pd.concat(collapse, ignore_index=True)
    grid = sensitivity_grid(P, curves, grid_out)
    return {"curves": curves, "importances": imps, "timing": pd.DataFrame(timing), "collapse": collapse,
            "grid": grid, "ledger": claims(curves, P, collapse)}


def sensitivity_grid(P: dict, curves: pd.DataFrame, trained: dict) -> pd.DataFrame:
    """The early-training result over ``grid_min_keep`` x ``grid_tau`` for the first ``grid_seeds``
    seeds: one row per (min_keep, tau, seed) with its early test accuracy (``trained[(seed, min_keep,
    tau)]``, or read from ``curves`` for the cells equal to the main run's settings, ``reused``) and
    the paired difference to plain DropConnect's early accuracy of the same seed (same initial
    weights and minibatch order; percentage points)."""
    acc = per_seed(curves, "test_acc", range(1, P["early_epochs"] + 1))
    rows = []
    for s in range(P["grid_seeds"]):
        seed = P["seed"] + s
        for mk, tau, method, reuse in _grid_cells(P):
            early = float(acc.loc[seed, method]) if reuse else trained[(seed, mk, tau)]
            rows.append(dict(min_keep=mk, tau=tau, seed=seed, early_acc=early, reused=reuse,
                             diff_pp=100 * (early - float(acc.loc[seed, "dropconnect"]))))
    return pd.DataFrame(rows)


# --- tables, figures, claims, prose ------------------------------------------------------------


def collapse_markdown(collapse: pd.DataFrame, params: dict) -> str:
    """One sentence per ``tau`` of the collapse check: the largest share of each layer after the last
    step (mean over seeds) and how many layer-seed pairs exceed ``collapse_share``."""
    q, last = params["collapse_share"], int(collapse["step"].max())
    end = collapse[collapse["step"] == last]
    parts = []
    for tau, sub in end.groupby("tau"):
        per_layer = sub.groupby("layer", sort=False).agg(share=("max_share", "mean"), size=("size", "first"))
        layers = ", ".join(f"{k} ({int(r['size'])} weights) {r['share']:.3g}" for k, r in per_layer.iterrows())
        n_over = int((sub["max_share"] > q).sum())
        label = "without KL" if tau == 0 else f"with KL (tau = {tau:g})"
        parts.append(f"{label}: largest share per layer after {last} steps, mean over seeds: {layers}; "
                     f"{n_over} of {len(sub)} layer-seed pairs above our threshold {q:g}")
    return "Collapse check. " + ". ".join(parts) + "."


def sensitivity_markdown(grid: pd.DataFrame) -> str:
    """The sensitivity grid as a Markdown table: rows ``min_keep``, columns ``tau``, cells the mean
    and sd over seeds of the early-accuracy difference to DropConnect (pp)."""
    stats = grid.groupby(["min_keep", "tau"])["diff_pp"].agg(["mean", "std"]).reset_index()
    taus = sorted(stats["tau"].unique())
    head = "| $k_{\\min}$ | " + " | ".join("$\\tau$ = 0 (no KL)" if t == 0 else f"$\\tau$ = {t:g}" for t in taus) + " |"
    rows = [head, "|---" * (len(taus) + 1) + "|"]
    for mk, sub in stats.groupby("min_keep"):
        cell = {r["tau"]: f"{r['mean']:+.2f} ± {0 if np.isnan(r['std']) else r['std']:.2f}" for _, r in sub.iterrows()}
        rows.append(f"| {mk:g} | " + " | ".join(cell.get(t, "") for t in taus) + " |")
    return "\n".join(rows)


def plot_collapse(collapse: pd.DataFrame, params: dict):
    """Largest share ``max_j w_j / |X_i|`` of each layer against the mirror-descent step of the
    collapse check (mean over seeds), without KL (left) and with it (right); the dashed line is our
    threshold ``collapse_share``."""
    import matplotlib.pyplot as plt

    taus = sorted(collapse["tau"].unique())
    fig, axes = plt.subplots(1, len(taus), figsize=(5.2 * len(taus), 3.8), sharey=True, squeeze=False)
    for ax, tau in zip(axes[0], taus):
        sub = collapse[np.isclose(collapse["tau"], tau)]
        for layer, d in sub.groupby("layer", sort=False):
            m = d.groupby("step")["max_share"].mean()
            ax.plot(np.maximum(m.index, 0.5), m.values, marker=".", label=f"{layer} ({int(d['size'].iloc[0])} weights)")
        ax.axhline(params["collapse_share"], color="0.4", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("mirror-descent step (step 0 plotted at 0.5)")
        ax.set_title("without KL ($\\tau$ = 0)" if tau == 0 else f"with KL ($\\tau$ = {tau:g})")
    axes[0][0].set_ylabel("largest share $\\max_j w_j / |X_i|$")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_sensitivity(grid: pd.DataFrame, params: dict):
    """Early-accuracy difference to plain DropConnect (mean over seeds +- one standard error) against
    ``tau`` (symlog axis; 0 = without KL), one line per ``min_keep``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    stats = grid.groupby(["min_keep", "tau"])["diff_pp"].agg(["mean", "std", "count"]).reset_index()
    positive = sorted(t for t in stats["tau"].unique() if t > 0)
    for mk, sub in stats.groupby("min_keep"):
        se = sub["std"].fillna(0) / np.sqrt(sub["count"])
        ax.errorbar(sub["tau"], sub["mean"], yerr=se, marker="o", capsize=3,
                    label=f"$k_{{\\min}}$ = {mk:g}" + (" (= plain DropConnect)" if mk >= 1 - params["drop_rate"] else ""))
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=positive[0] if positive else 1e-3)
    ax.set_xlabel("KL weight $\\tau$ (0 = no KL)")
    ax.set_ylabel("early test accuracy minus\nDropConnect's (pp)")
    ax.set_title(f"Sensitivity: first {params['early_epochs']} epochs, {grid['seed'].nunique()} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- claims ------------------------------------------------------------------------------------


def per_seed(curves: pd.DataFrame, column: str, epochs) -> pd.DataFrame:
    """Mean of ``column`` over the given epochs, per seed (rows) and method (columns)."""
    sub = curves[curves["epoch"].isin(list(epochs))]
    return sub.pivot_table(index="seed", columns="method", values=column, aggfunc="mean")


DECK_EARLY = "slide 'Выводы', item 3; slide 'Эксперименты', figure 'Графики сходимости'"
DECK_HIST = "slide 'Эксперименты', figure 'Гистограмма важности веса (value)' and the text above it"
DECK_FUTURE = "slide 'Выводы', 'В будущем' item 1 (late training left to future work)"
DECK_GAP = "slide 'Постановка задачи регуляризации' (GAP stated as an aim; no result reported)"


def collapse_shares(collapse: pd.DataFrame, tau: float = 0.0, step: int | None = None) -> pd.Series:
    """Per seed: the largest share ``max_j w_j / |X_i|``, mean over layers, of the converged mirror
    descent of :func:`collapse_check` (``step``: default the last recorded one) for ``tau``."""
    sub = collapse[np.isclose(collapse["tau"], tau)]
    step = int(sub["step"].max()) if step is None else step
    return sub[sub["step"] == step].groupby("seed")["max_share"].mean()


def claims(curves: pd.DataFrame, params: dict, collapse: pd.DataFrame | None = None) -> list:
    """The ledger, in the order of :data:`CLAIM_SHORT`.

    Kind ``report`` (the deck states it): importance DropConnect, with and without KL, beats plain
    DropConnect early in training; the KL term keeps the importances spread; without it mirror
    descent converges to one weight (checked on ``collapse``, the converged mirror descent of
    :func:`collapse_check`; the row is left out when ``collapse`` is None).  Kind ``ours``: the
    same importances as trained (one mirror-descent step per minibatch), the condition that plain
    DropConnect helps over no dropout in the chosen regime, the end-of-training comparisons the
    deck leaves to future work, and the train-test gaps the deck states only as an aim."""
    E, k = params["epochs"], params["early_epochs"]
    early, late = range(1, k + 1), [E]
    acc_e, acc_l = per_seed(curves, "test_acc", early), per_seed(curves, "test_acc", late)
    gap = per_seed(curves, "gap_acc", late)
    imp = curves[curves["method"].str.startswith("importance")]
    eff, share = per_seed(imp, "effective_fraction", late), per_seed(imp, "max_share", late)
    seeds = acc_e.index.to_numpy()
    prof, q = params["profile"], params["collapse_share"]
    fmt_pp = "{:+.2f}"
    pp = lambda s: 100 * s.to_numpy()  # noqa: E731  (accuracy differences in percentage points)
    early_txt = f"mean test accuracy over epochs 1-{k}" if k > 1 else "test accuracy after epoch 1"
    early_deck = "better results than classic DropConnect early in training (convergence plot; no number)"
    out = []
    for m in ("importance_dc_kl", "importance_dc"):
        out.append(paired_claim(
            f"{METHOD_LABELS[m]} beats plain DropConnect early in training ({early_txt}; percentage points)",
            early_deck, pp(acc_e[m] - acc_e["dropconnect"]), seeds, prof, fmt_pp, kind="report", deck=DECK_EARLY))
    out.append(paired_claim(
        f"the KL regulariser keeps the importances spread out (effective fraction of weights "
        f"exp(-KL(w/|X| || uniform)) at epoch {E}, mean over layers, with KL minus without)",
        "histogram: 'more informative' with KL, degenerate without (figure; no number)",
        (eff["importance_dc_kl"] - eff["importance_dc"]).to_numpy(), seeds, prof, "{:+.3f}",
        kind="report", deck=DECK_HIST))
    if collapse is not None:
        cs = collapse_shares(collapse, 0.0)
        out.append(paired_claim(
            f"without KL, mirror descent converges to one weight per layer (importance problem solved at "
            f"fixed trained weights on one batch, {params['collapse_steps']} steps from uniform: largest "
            f"share max w/|X| per layer, mean over layers, minus our threshold {q:g})",
            "degenerate solution: every importance 0 except one (largest share 1)",
            cs.to_numpy() - q, cs.index.to_numpy(), prof, "{:+.3f}", kind="report", deck=DECK_HIST))
    out.append(paired_claim(
        f"without KL, the importances as trained (one mirror-descent step per minibatch) hold one weight "
        f"at epoch {E} (largest share, mean over layers, minus our threshold {q:g})",
        "not claimed as such: the deck's collapse is the converged mirror descent",
        share["importance_dc"].to_numpy() - q, seeds, prof, "{:+.3f}", kind="ours", deck=DECK_HIST))
    loss_e, loss_l = per_seed(curves, "test_loss", early), per_seed(curves, "test_loss", late)
    out.append(paired_claim(
        f"in this regime plain DropConnect beats no dropout at the end of training in test loss (the deck's L; "
        f"no-dropout minus DropConnect test cross-entropy at epoch {E}): the condition under which the early "
        f"comparison means something", "not claimed: our choice of regime",
        (loss_l["no_dropout"] - loss_l["dropconnect"]).to_numpy(), seeds, prof, "{:+.3f}", kind="ours"))
    out.append(paired_claim(
        f"in this regime plain DropConnect beats no dropout at the end of training in test accuracy (epoch {E}; "
        f"percentage points)", "not claimed: our choice of regime",
        pp(acc_l["dropconnect"] - acc_l["no_dropout"]), seeds, prof, fmt_pp, kind="ours"))
    for m in ("importance_dc_kl", "importance_dc"):
        out.append(paired_claim(
            f"{METHOD_LABELS[m]} beats plain DropConnect early in training in test loss (DropConnect minus "
            f"{METHOD_LABELS[m]}, mean test cross-entropy over epochs 1-{k})",
            "not claimed as such: the deck does not say which quantity its convergence plot shows",
            (loss_e["dropconnect"] - loss_e[m]).to_numpy(), seeds, prof, "{:+.3f}", kind="ours", deck=DECK_EARLY))
    for m in ("importance_dc_kl", "importance_dc"):
        out.append(paired_claim(
            f"{METHOD_LABELS[m]} beats plain DropConnect at the end of training (test accuracy at epoch {E}; "
            f"percentage points)", "not claimed: left to future work", pp(acc_l[m] - acc_l["dropconnect"]),
            seeds, prof, fmt_pp, kind="ours", deck=DECK_FUTURE))
    for a, b in (("importance_dc_kl", "dropconnect"), ("dropconnect", "no_dropout")):
        out.append(paired_claim(
            f"{METHOD_LABELS[a]} has a smaller train-test accuracy gap than {METHOD_LABELS[b]} (gap of "
            f"{METHOD_LABELS[b]} minus gap of {METHOD_LABELS[a]} at epoch {E}; percentage points)",
            "not claimed: the deck states the GAP only as an aim", pp(gap[b] - gap[a]), seeds, prof, fmt_pp,
            kind="ours", deck=DECK_GAP))
    return out


CLAIM_SHORT = {
    "importance DropConnect + KL beats plain DropConnect early": ("early in training, importance DropConnect + KL vs DropConnect", " pp"),
    "importance DropConnect beats plain DropConnect early": ("early in training, importance DropConnect (no KL) vs DropConnect", " pp"),
    "the KL regulariser keeps": ("spread of the importances, with vs without KL", ""),
    "without KL, mirror descent converges": ("collapse of the converged mirror descent without KL (largest share minus threshold)", ""),
    "without KL, the importances as trained": ("collapse of the importances as trained without KL (largest share minus threshold)", ""),
    "in this regime plain DropConnect beats no dropout at the end of training in test loss": (
        "regime check, DropConnect vs no dropout, final test loss", ""),
    "in this regime plain DropConnect beats no dropout at the end of training in test accuracy": (
        "regime check, DropConnect vs no dropout, final test accuracy", " pp"),
    "importance DropConnect + KL beats plain DropConnect early in training in test loss": (
        "early test loss, importance DropConnect + KL vs DropConnect", ""),
    "importance DropConnect beats plain DropConnect early in training in test loss": (
        "early test loss, importance DropConnect (no KL) vs DropConnect", ""),
    "importance DropConnect + KL beats plain DropConnect at the end": ("end of training, importance DropConnect + KL vs DropConnect", " pp"),
    "importance DropConnect beats plain DropConnect at the end": ("end of training, importance DropConnect (no KL) vs DropConnect", " pp"),
    "importance DropConnect + KL has a smaller": ("train-test gap, importance DropConnect + KL vs DropConnect", " pp"),
    "DropConnect has a smaller": ("train-test gap, DropConnect vs no dropout", " pp"),
}


def short_label(c) -> tuple[str, str]:
    """The short name and unit of a ledger row (for the discussion's bullet points)."""
    match = [prefix for prefix in CLAIM_SHORT if c.claim.startswith(prefix)]
    return CLAIM_SHORT[max(match, key=len)] if match else (c.claim, "")


def summary_markdown(ledger: list, curves: pd.DataFrame, params: dict) -> str:
    """Bullet points for the discussion, every number taken from ``curves`` and the ledger
    (accuracy differences in percentage points)."""
    E, k = params["epochs"], params["early_epochs"]
    last = curves[curves["epoch"] == E].groupby("method")
    acc, gap = last["test_acc"].mean(), last["gap_acc"].mean()
    early = curves[curves["epoch"] <= k].groupby("method")["test_acc"].mean()
    early_txt = f"mean over epochs 1-{k}" if k > 1 else "epoch 1"
    lines = [f"* Test accuracy, mean over seeds (early = {early_txt}, final = epoch {E}), and train-test "
             f"accuracy gap at epoch {E}:"]
    lines += [f"  * {METHOD_LABELS[m]}: early {100 * early[m]:.2f}%, final {100 * acc[m]:.2f}%, "
              f"gap {100 * gap[m]:.2f} pp" for m in METHODS if m in acc]
    for c in ledger:
        short, unit = short_label(c)
        lines.append(f"* {short[0].upper() + short[1:]} ({KIND_LABEL[c.kind]}): {verdict_phrase(c, unit)}.")
    return "\n".join(lines)


def concentration_markdown(curves: pd.DataFrame, params: dict) -> str:
    """The importances' effective fraction and largest share at the last epoch, per variant."""
    last = curves[curves["epoch"] == params["epochs"]].groupby("method")
    eff, share = last["effective_fraction"].mean(), last["max_share"].mean()
    return ("Effective fraction of weights $\\exp(-\\mathrm{KL}(\\mathbf{w}_i/|X_i| \\,\\|\\, \\mathrm{uniform}))$ "
            "(1 = uniform, $1/|X_i|$ = one weight) and largest share $\\max_j w_j/|X_i|$, averaged over layers "
            f"and seeds at epoch {params['epochs']}: without KL {eff['importance_dc']:.3f} and "
            f"{share['importance_dc']:.3f}; with KL {eff['importance_dc_kl']:.3f} and {share['importance_dc_kl']:.3f}.")


def describe_run(params: dict) -> str:
    """The one-paragraph description of a run shown above its results."""
    return (f"**This run:** {describe(params)}. DropConnect rate $p$ = {params['drop_rate']}, "
            f"$k_{{\\min}}$ = {params['min_keep']}; importances: $\\eta$ = {params['importance_lr']:g}, "
            f"$\\gamma$ = {params['importance_gamma']:g}, $\\tau$ = {params['importance_tau']:g} (+ KL variant), "
            f"{params['importance_steps']} mirror-descent step(s) every {params['importance_every']} minibatch(es), "
            + ("objective on the same minibatch (the deck's); " if params.get("importance_data", "same") == "same"
               else "objective split across two halves of the minibatch (our option); ")
            + f"profile `{params['profile']}`.")


def importance_histogram_data(importances: dict, seed: int) -> dict[str, np.ndarray]:
    """Importances of one seed per importance method (all layers pooled; each layer has mean 1)."""
    return {m: v[seed] for m, v in importances.items() if seed in v}