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
# report 3: importance-guided DropConnect (methods of paramspace.dropconnect)
PALETTE.update({"no_dropout": "#000000", "dropconnect": "#7f7f7f", "importance_dc": "#ff7f0e",
                "importance_dc_kl": "#1f77b4"})
LABELS.update({"no_dropout": "no dropout", "dropconnect": "DropConnect",
               "importance_dc": "importance DropConnect", "importance_dc_kl": "importance DropConnect + KL"})


def setup():
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (9.5, 4.5),
                         "savefig.bbox": "tight"})


def band(df: pd.DataFrame, x: str, y: str, hue: str = "criterion", ax=None, xlabel: str = "",
         ylabel: str = "", title: str = "", percent_x: bool = False, palette: dict | None = None,
         labels: dict | None = None, legend: bool = True, legend_title: str | None = None):
    """Mean over seeds with a ± 1 standard-deviation band, one colour per ``hue`` value.

    ``palette``/``labels`` map hue values to colours/legend labels (default: report 5's criteria,
    :data:`PALETTE` and :data:`LABELS`); only hue values in ``palette`` are drawn, in its order.
    """
    ax = ax or plt.subplots()[1]
    palette = PALETTE if palette is None else palette
    labels = LABELS if labels is None else labels
    d = df.copy()
    if percent_x:
        d[x] = 100 * d[x]
    order = [h for h in palette if h in set(d[hue])]
    sns.lineplot(data=d, x=x, y=y, hue=hue, hue_order=order, palette=palette, errorbar="sd",
                 marker="o", markersize=4, ax=ax)
    if legend:
        handles, hl = ax.get_legend_handles_labels()
        # outside the axes, so that no curve is hidden behind it
        ax.legend(handles, [labels.get(lbl, lbl) for lbl in hl], title=legend_title, frameon=False,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif ax.get_legend() is not None:
        ax.get_legend().remove()
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


# --- report 2: complexity coefficient lambda --------------------------------------------------


def lambda_key(lam: float) -> str:
    return f"{lam:g}"


def lambda_palette(lambdas) -> tuple[dict, dict]:
    """Colours and legend labels for values of the complexity coefficient, keyed by :func:`lambda_key`:
    ``lambda = 0`` black, the others along a sequential colour map in increasing order."""
    pos = [lam for lam in lambdas if lam > 0]
    cmap = plt.get_cmap("viridis")
    cols = {lambda_key(lam): cmap(0.85 * i / max(1, len(pos) - 1)) for i, lam in enumerate(pos)}
    pal = ({lambda_key(0.0): "#000000"} if any(lam == 0 for lam in lambdas) else {}) | cols
    return pal, {k: f"λ = {k}" for k in pal}


def lambda_curves_figure(curves: pd.DataFrame, lambdas, methods, method_labels: dict, stages,
                         y: str = "accuracy", ylabel: str = "test accuracy (%)", scale: float = 100.0,
                         hline: float | None = None, vline: float | None = None, suptitle: str = ""):
    """Rows: ``methods``; columns: ``stages``; in each panel ``y`` vs % of weights removed, one line
    (mean ± sd over seeds) per lambda, all panels on the same axes.  The legend sits outside the
    top-right panel."""
    pal, lab = lambda_palette(lambdas)
    fig, axes = plt.subplots(len(methods), len(stages), figsize=(4.3 * len(stages) + 2.2, 3.1 * len(methods) + 0.4),
                             sharex=True, sharey=True, squeeze=False)
    for i, m in enumerate(methods):
        for j, stage in enumerate(stages):
            ax = axes[i, j]
            d = curves[(curves.method == m) & (curves.stage == stage)]
            d = d.assign(value=scale * d[y], λ=d.lam.map(lambda_key))
            band(d, "fraction", "value", hue="λ", ax=ax, percent_x=True, palette=pal, labels=lab,
                 legend=(i == 0 and j == len(stages) - 1), legend_title="complexity λ",
                 xlabel="weights removed (%)" if i == len(methods) - 1 else "",
                 ylabel=ylabel if j == 0 else "", title=f"{method_labels[m]}\n{stage}")
            if hline is not None:
                ax.axhline(hline, color="0.3", ls="--", lw=1)
            if vline is not None:
                ax.axvline(100 * vline, color="0.3", ls=":", lw=1)
            ax.tick_params(labelleft=True)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def lambda_continuum_figure(grid: pd.DataFrame, curves: pd.DataFrame, fraction: float, method_labels: dict,
                            lambdas):
    """Test accuracy against lambda (log axis): each hypernetwork along a fine grid (mean ± sd band over
    seeds) and the separately trained models at their lambdas (mean ± sd), unpruned (top) and with
    ``fraction`` of the weights removed (bottom).  The separate model at lambda = 0, which a log axis
    cannot place, is the dotted horizontal line."""
    colours = {"linear": "#1f77b4", "lowrank": "#ff7f0e", "separate": "#000000"}
    fig, axes = plt.subplots(2, 1, figsize=(9.0, 7.2), sharex=True, sharey=True)
    sep = curves[(curves.method == "separate") & (curves.stage == "one-shot")]
    for ax, f in zip(axes, (0.0, fraction)):
        for m in ("linear", "lowrank"):
            g = grid[(grid.method == m) & np.isclose(grid.fraction, f)].groupby("lam").accuracy.agg(["mean", "std"])
            sd = g["std"].fillna(0)
            ax.plot(g.index, 100 * g["mean"], color=colours[m], label=method_labels[m])
            ax.fill_between(g.index, 100 * (g["mean"] - sd), 100 * (g["mean"] + sd), color=colours[m], alpha=0.2)
        s = sep[np.isclose(sep.fraction, f)].groupby("lam").accuracy.agg(["mean", "std"])
        pos = s[s.index > 0]
        ax.errorbar(pos.index, 100 * pos["mean"], yerr=100 * pos["std"].fillna(0), fmt="o", color=colours["separate"],
                    capsize=3, label=method_labels["separate"])
        if 0.0 in s.index:
            ax.axhline(100 * s.loc[0.0, "mean"], color=colours["separate"], ls=":", lw=1.2,
                       label="separate model, λ = 0")
        ax.set_xscale("log")
        ax.set(ylabel="test accuracy (%)",
               title="unpruned" if f == 0 else f"{100 * f:.0f}% of the weights removed (one-shot)")
        ax.tick_params(labelleft=True)
    axes[-1].set_xlabel("complexity coefficient λ (log scale)")
    axes[0].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def band_panels(df: pd.DataFrame, x: str, panels: list[tuple[str, str]], hue: str = "criterion",
                xlabel: str = "", title: str = "", ncols: int = 2, panel_size=(5.2, 3.8)):
    """One :func:`band` panel per ``(column, y label)``, sharing the x axis; one legend, below the grid."""
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.6),
                             squeeze=False)
    for ax, (col, ylabel) in zip(axes.flat, panels):
        band(df, x, col, hue=hue, ax=ax, xlabel=xlabel, ylabel=ylabel)
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles, [LABELS.get(lbl, lbl) for lbl in labels], loc="lower center", ncol=len(labels),
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def importance_histograms(values: dict[str, np.ndarray], ax=None, title: str = "", floor: float = 1e-8):
    """Histograms of importances (one step line per key of ``values``), log-spaced bins.

    Importances are on the scaled simplex of their layer (layer mean 1); values below ``floor``
    (including those that underflowed to 0) are counted in the first bin.  The legend goes below
    the axes, so that it hides no bar.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 5.2))
    top = max(float(np.max(v)) for v in values.values())
    bins = np.logspace(np.log10(floor), np.log10(max(top, 10.0)) + 0.05, 61)
    for key, v in values.items():
        v = np.clip(np.asarray(v, dtype=float), floor, None)
        frac = np.full(len(v), 1.0 / len(v))
        ax.hist(v, bins=bins, weights=frac, histtype="step", lw=2, color=PALETTE.get(key),
                label=f"{LABELS.get(key, key)} ({np.mean(v <= floor):.1%} of weights at ≤ {floor:.0e})")
    ax.axvline(1.0, color="k", ls=":", lw=1.2, label="uniform importance $w_j = 1$")
    ax.set(xscale="log", yscale="log", xlabel="importance $w_j$ (each layer has mean 1; log scale)",
           ylabel="fraction of weights (log scale)", title=title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.figure.tight_layout()
    return ax


# --- report 4: frame regularization -------------------------------------------------------------

FRAME_PALETTE = {"none": "#000000", "frame": "#d62728", "mhe": "#9467bd", "so": "#1f77b4", "srip": "#2ca02c",
                 "ocnn": "#ff7f0e"}


def method_panels(df: pd.DataFrame, x: str, y: str, panel: str, panels: list, titles: dict, labels: dict,
                  xlabel: str, ylabel: str, palette: dict | None = None, logx: bool = False, suptitle: str = "",
                  panel_size=(5.6, 4.0)):
    """One :func:`band` panel (mean ± sd over seeds, one line per ``method``) per value of ``panel``;
    one legend to the right of the last panel."""
    palette = FRAME_PALETTE if palette is None else palette
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size[0] * len(panels) + 2.4, panel_size[1]),
                             squeeze=False, sharey=True)
    for j, (ax, p) in enumerate(zip(axes[0], panels)):
        band(df[df[panel] == p], x, y, hue="method", ax=ax, xlabel=xlabel, ylabel=ylabel if j == 0 else "",
             title=titles.get(p, p), palette=palette, labels=labels, legend=(j == len(panels) - 1),
             legend_title="regularizer")
        if logx:
            ax.set_xscale("log")
        ax.tick_params(labelleft=True)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def frame_spectra_figure(spectra: pd.DataFrame, A: float, B: float, panels: list, titles: dict, labels: dict,
                         methods=("none", "frame"), floor: float = 1e-4, palette: dict | None = None):
    """Per layer (x axis), the eigenvalues of the layer's Gram matrix: a thin line from the smallest to
    the largest, a thick bar over the 5-95% quantiles and a dot at the median, one colour per method,
    side by side; the frame bounds ``A`` and ``B`` as dashed lines.  One panel per value of
    ``spectra.panel``.  Log scale; eigenvalues below ``floor`` are drawn at ``floor``."""
    palette = FRAME_PALETTE if palette is None else palette
    fig, axes = plt.subplots(len(panels), 1, figsize=(11.5, 3.9 * len(panels) + 0.5), squeeze=False)
    width = 0.8 / len(methods)
    for ax, p in zip(axes[:, 0], panels):
        sub = spectra[spectra.panel == p]
        layers = sub.drop_duplicates("layer").sort_values("layer")
        for k, m in enumerate(methods):
            s = sub[sub.method == m].sort_values("layer")
            xs = s["layer"].to_numpy() + (k - (len(methods) - 1) / 2) * width
            c = palette.get(m)
            lo, hi = np.maximum(s["ev_min"], floor), np.maximum(s["ev_max"], floor)
            ax.vlines(xs, lo, hi, color=c, lw=1.2)
            ax.vlines(xs, np.maximum(s["ev_q05"], floor), np.maximum(s["ev_q95"], floor), color=c, lw=6, alpha=0.55,
                      label=labels.get(m, m))
            ax.plot(xs, np.maximum(s["ev_median"], floor), "o", color="white", mec=c, ms=4.5)
        ax.axhline(A, color="0.25", ls="--", lw=1)
        ax.axhline(B, color="0.25", ls="--", lw=1)
        ax.text(1.005, A, " A", transform=ax.get_yaxis_transform(), va="center", fontsize=10)
        ax.text(1.005, B, " B", transform=ax.get_yaxis_transform(), va="center", fontsize=10)
        ax.set_yscale("log")
        ticks = [f"{lbl} ({sd[0]})" for lbl, sd in zip(layers["label"], layers["side"])]
        ax.set_xticks(layers["layer"].to_numpy(), ticks, rotation=30, ha="right", fontsize=9)
        ax.set(ylabel="eigenvalues of the Gram\n(log scale)", title=titles.get(p, p))
    axes[0, 0].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.04, 1.0), title="regularizer")
    axes[-1, 0].set_xlabel("layer (i: Gram $W^T W$ on the input side, o: $W W^T$ on the output side)")
    fig.tight_layout()
    return fig


def corruption_examples_figure(images: dict, corruptions: list, severities: list, labels: dict):
    """One image under every corruption (rows) and severity (columns; 0 = clean)."""
    cols = [0] + list(severities)
    fig, axes = plt.subplots(len(corruptions), len(cols), figsize=(1.25 * len(cols) + 1.6, 1.3 * len(corruptions)),
                             squeeze=False)
    for i, c in enumerate(corruptions):
        for j, s in enumerate(cols):
            ax = axes[i, j]
            img = images[(c, s)]
            ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if img.shape[0] == 1 else None,
                      vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("clean" if s == 0 else f"severity {s}", fontsize=9)
            if j == 0:
                ax.set_ylabel(labels.get(c, c), rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


# --- report 1: metric analysis of the parameter space -----------------------------------------

PALETTE.update({"euclidean": "#1f77b4", "w2": "#d62728"})
LABELS.update({"euclidean": "Euclidean k-means of the means", "w2": "W2 k-means of the Gaussians"})


def recovery_figure(segment: np.ndarray, recovered: dict, labels: dict, rate_hz: float, start: int, length: int,
                    quality: dict | None = None):
    """Truth vs autoregressive recovery of a signal, one panel per network (``recovered[name]`` is
    NaN where nothing was predicted); ``length`` samples from ``start``, time in seconds."""
    names = list(recovered)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.9 * len(names) + 0.4), sharex=True, squeeze=False)
    sl = slice(start, start + length)
    t = np.arange(len(segment))[sl] / rate_hz
    for ax, name in zip(axes[:, 0], names):
        ax.plot(t, segment[sl], color="0.25", lw=1.4, label="truth")
        ax.plot(t, recovered[name][sl], color="#d62728", lw=1.4, label="recovered")
        title = labels[name] + ("" if quality is None else f" (test R² {quality[name]:.3f} over all test windows)")
        ax.set(ylabel="|a| (standardised)", title=title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def _ellipse(ax, m2, S2, scale, color, chi2_95: float = 5.991):
    from matplotlib.patches import Ellipse

    lam, V = np.linalg.eigh(S2)
    lam = np.clip(lam, 0, None)
    ang = np.degrees(np.arctan2(V[1, -1], V[0, -1]))
    w, h = 2 * scale * np.sqrt(chi2_95 * lam[-1]), 2 * scale * np.sqrt(chi2_95 * lam[0])
    ax.add_patch(Ellipse(m2, w, h, angle=ang, facecolor=color, edgecolor=color, alpha=0.35, lw=1.2))


def ellipse_panels(means: dict, covs: dict, labels: dict, basis: np.ndarray, centre: np.ndarray, n: int,
                   backdrop: np.ndarray, title: str = ""):
    """One panel per estimator: 95% confidence ellipses of the first ``n`` neurons, projected on the
    2-D ``basis`` (rows) around ``centre``; ``backdrop`` (all neuron means) is drawn as a grey line in
    neuron order.  All ellipses are magnified by one common power of ten (stated in the title) when
    they would otherwise be too small to see; colours give the neuron index."""
    keys = list(means)
    proj = lambda m: (np.asarray(m) - centre) @ basis.T  # noqa: E731
    bd = proj(backdrop)
    spacing = np.median(np.linalg.norm(np.diff(bd[:n + 1], axis=0), axis=1))
    major = max(np.median([np.sqrt(max(np.linalg.eigvalsh(basis @ S @ basis.T)[-1], 0)) for S in covs[k][:n]])
                for k in keys)
    scale = 1.0
    if major > 0 and 2 * 2.45 * major < 0.5 * spacing:
        scale = float(10 ** np.ceil(np.log10(0.5 * spacing / (2 * 2.45 * major))))
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys) + 1.2, 4.8), sharex=True, sharey=True)
    for ax, k in zip(np.atleast_1d(axes), keys):
        ax.plot(bd[:, 0], bd[:, 1], color="0.7", lw=1, marker=".", ms=3, zorder=0)
        pm = proj(means[k][:n])
        for i in range(n):
            _ellipse(ax, pm[i], basis @ covs[k][i] @ basis.T, scale, cmap(i / max(n - 1, 1)))
        ax.scatter(pm[:, 0], pm[:, 1], c=np.arange(n), cmap=cmap, s=10, zorder=3)
        ax.set(title=labels[k], xlabel="principal direction 1")
        ax.set_aspect("equal", adjustable="box")
    np.atleast_1d(axes)[0].set_ylabel("principal direction 2")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, n - 1))
    fig.colorbar(sm, ax=np.atleast_1d(axes).tolist(), label="neuron index", fraction=0.025, pad=0.02)
    mag = "" if scale == 1 else f"; ellipses magnified ×{scale:g}"
    fig.suptitle((title + "\n" if title else "") + f"95% ellipses of the first {n} neurons{mag}; grey: all neuron "
                 "means in neuron order", y=1.06)
    return fig, scale


def quality_vs_params_figure(curves: pd.DataFrame, datasets: list, titles: dict, ylabels: dict):
    """Test quality of the merged network against its number of parameters, Euclidean vs W2 k-means,
    mean ± sd over seeds, one panel per data set; one legend below the panels.  The W2 line is dashed
    over a wider Euclidean line, so that both stay visible where they coincide."""
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.0 * len(datasets), 4.6), squeeze=False)
    handles, labels = [], []
    for ax, d in zip(axes[0], datasets):
        band(curves[curves.dataset == d], "n_params", "quality", hue="metric", ax=ax,
             xlabel="parameters of the merged network", ylabel=ylabels[d], title=titles[d])
        from matplotlib.colors import to_hex

        for line in ax.get_lines():  # W2 dashed over a wider Euclidean line: both stay visible where they coincide
            if to_hex(line.get_color()) == to_hex(PALETTE["w2"]):
                line.set_linestyle((0, (4, 2)))
            elif to_hex(line.get_color()) == to_hex(PALETTE["euclidean"]):
                line.set_linewidth(3.0)
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    fig.legend(handles, [LABELS.get(lbl, lbl) for lbl in labels], loc="lower center", ncol=len(labels),
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
