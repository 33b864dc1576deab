"""Plot helpers shared by the report notebooks (labelled axes, mean ± sd bands over seeds)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

PALETTE = {"random": "#7f7f7f", "magnitude": "#8c564b", "obd": "#1f77b4", "variational": "#d62728",
           "belsley": "#2ca02c", "belsley_design": "#9467bd", "unpruned": "#000000"}
LABELS = {"random": "random", "magnitude": "magnitude", "obd": "OBD", "variational": "variational μ²/σ²",
          "belsley": "Belsley (Laplace cov.)", "belsley_design": "Belsley (design G)",
          "unpruned": "not pruned"}


def setup():
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (9.5, 4.5),
                         "savefig.bbox": "tight"})


def band(df: pd.DataFrame, x: str, y: str, hue: str = "criterion", ax=None, xlabel: str = "",
         ylabel: str = "", title: str = "", percent_x: bool = False):
    """Mean over seeds with a ± 1 standard-deviation band, one colour per ``hue`` value."""
    ax = ax or plt.subplots()[1]
    d = df.copy()
    if percent_x:
        d[x] = 100 * d[x]
    order = [h for h in PALETTE if h in set(d[hue])]
    sns.lineplot(data=d, x=x, y=y, hue=hue, hue_order=order, palette=PALETTE, errorbar="sd",
                 marker="o", markersize=4, ax=ax)
    handles, labels = ax.get_legend_handles_labels()
    # outside the axes, so that no curve is hidden behind it
    ax.legend(handles, [LABELS.get(lbl, lbl) for lbl in labels], title=None, frameon=False,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set(xlabel=xlabel or x, ylabel=ylabel or y, title=title)
    return ax


def proportions_heatmap(q: np.ndarray, eta: np.ndarray, names: list[str], ax=None, title: str = ""):
    """Variance-decomposition proportions (rows: parameters, columns: directions by condition index)."""
    ax = ax or plt.subplots()[1]
    cols = [f"{e:.3g}" if e < 1e5 else "≥1e5" for e in eta]
    sns.heatmap(pd.DataFrame(q, index=names, columns=cols), vmin=0, vmax=1, cmap="viridis", annot=True,
                fmt=".2f", cbar_kws={"label": "variance proportion $q_{kj}$"}, ax=ax)
    ax.set(xlabel="direction $j$, labelled by its condition index $\\eta_j$", ylabel="parameter $k$",
           title=title)
    return ax


def belsley_toy_figure(toy: dict):
    """The report's toy parameter set (left) and its variance-decomposition proportions (right)."""
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(9, 10.5), gridspec_kw={"height_ratios": [1, 1.15]})
    x = toy["W"][:, 5]
    for k, name in enumerate(toy["names"][:5]):
        a0.plot(x, toy["W"][:, k], label=f"$w_{k + 1}$ = {name}", lw=1.4)
    a0.set(xlabel="x", ylabel="parameter value", xlim=(0, 20), ylim=(-1.6, 4.6),
           title="Toy parameter set ($w_6 = x$ is the horizontal axis)")
    a0.legend(fontsize=9, loc="upper center", ncol=3)
    names = [f"$w_{k + 1}$ = {n}" for k, n in enumerate(toy["names"])]
    proportions_heatmap(toy["q"], toy["eta"], names, ax=a1, title="Variance-decomposition proportions")
    fig.tight_layout()
    return fig


def collinear_share_figure(synth: dict, threshold_eta: float = 30.0):
    """Share of each parameter's variance proportion on directions with condition index above 30."""
    fig, ax = plt.subplots(figsize=(10, 4))
    d = synth["d"]
    ax.bar(range(d), synth["share"], color=["#d62728"] + ["#2ca02c"] * (d - 1), width=0.8)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="flagging threshold 0.5")
    ax.set(xlabel="parameter index $k$", ylabel=f"proportion on directions\nwith $\\eta > {threshold_eta:.0f}$",
           ylim=(0, 1.05), title="Synthetic parameters: $w_0$ (red) is independent, $w_1, \\dots, w_{99}$ (green) collinear")
    ax.legend(loc="lower right", framealpha=1)
    fig.tight_layout()
    return fig
