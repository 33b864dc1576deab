# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compression leaderboard across the reports
#
# *A chapter beyond the five reports: every way the collection shrinks a network, applied to the
# **same trained models** on the **same data**, measured the same way. The criteria come from
# reports 1 {cite}`nasyrov2023metric`, 2 {cite}`grebenkova2020variational`, 3
# {cite}`rebrikov2024dropconnect` and 5 {cite}`grabovoy2019relevance`; the implementations are
# the ones their chapters use (`src/paramspace`). Report 4 regularizes a layer rather than removing
# parameters, so it has no entry here.*
#
# Each report compares its criterion with one or two others, each on its own network and data. Here,
# per data set and seed, **one** network is trained: a mean-field variational MLP with one hidden
# layer, trained on the evidence lower bound as in report 5. Its posterior mean $\boldsymbol\mu$ is the
# network every criterion shrinks, so every curve starts at the same accuracy, and its posterior
# standard deviations $\boldsymbol\sigma$ serve the two criteria that need a distribution.
#
# **Training budget.** Every model is trained for the same number of minibatch steps (parameter
# `train_steps`) on every data set, not the same number of epochs: Wine has 133 training rows, so 20
# epochs of batch 128 would be 40 steps, after which every $\sigma_j$ is still close to its common
# initial value ($10^{-3}$); then $\mu_j^2/\sigma_j^2$ is the magnitude order and the W2 distance of
# the neurons is the Euclidean one, and the comparison says nothing about either criterion.
# {numref}`fig-lb-sigma` and {numref}`tab-lb-models` show how far $\boldsymbol\sigma$ moved.
#
# | criterion | what it removes | ranks by | from |
# |---|---|---|---|
# | random | single parameters | a uniform random order | baseline |
# | magnitude | single parameters | $\lvert\mu_j\rvert$ | baseline |
# | OBD | single parameters | $\tfrac12 h_{jj}\mu_j^2$, exact Hessian diagonal {cite}`lecun1990obd` | report 5 |
# | variational | single parameters | $\mu_j^2/\sigma_j^2$ (pruning by relative density) | reports 2 and 5 |
# | Belsley | single parameters | variance-decomposition proportions of the Laplace covariance $(\mathbf H+\delta\mathbf I)^{-1}$ {cite}`belsley1980regression` | report 5 |
# | importance | single parameters | importances $\mathbf w$ on the scaled simplex from mirror descent, weights held fixed | report 3 |
# | neuron k-means, Euclidean | whole hidden neurons | k-means of the neurons' means; each cluster replaced by its centre | report 1 |
# | neuron k-means, W2 | whole hidden neurons | k-means with the 2-Wasserstein distance of the neurons' Gaussians (posterior diagonal covariances); centres are W2 barycentres | report 1 |
#
# **Counting.** The horizontal axis is the fraction of the network's parameters kept: all weights and
# biases of both layers. Pruning a fraction $f$ keeps $1-f$. Merging the $h$ hidden neurons into $k$
# clusters keeps a network with $k$ hidden neurons, $(d+1)k + (k+1)c$ parameters for $d$ inputs and $c$
# classes. With nothing kept, every criterion gives the same network (all outputs zero), so every curve
# ends at the same point. All removal is **one-shot, without retraining**. Report 3's importances carry
# no value for biases: there the biases are removed last.

# %% tags=["parameters"]
profile = "book"
device = "auto"
seed = 0
n_seeds = 5
datasets = ["mnist", "wine"]
n_train = 10000
n_test = 2000
mnist_pool = 4
hidden = 32
train_steps = 1600
lr = 0.01
batch_size = 128
prior_sigma = 1.0
kl_weight = 1.0
fractions = [round(i / 40, 3) for i in range(41)]
curvature_n = 2000
belsley_steps = 100
laplace_damping = 0.001
condition_index = "deck"
importance_batches = 50
importance_lr = 300.0
importance_gamma = 0.1
importance_tau = 0.001
loss_tol_pp = 1.0
cpu_threads = 1

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from paramspace import claims as C
from paramspace import plots
from paramspace.pages import titled_table
from paramspace.reports import compression_leaderboard as LB
from paramspace.reports import run_all, setup

REPORT = "compression_leaderboard"
P, prov = setup(REPORT, globals())  # validates every parameter (and the rules across them) before any compute

# %% [markdown]
# ## The shared models
#
# MNIST is average-pooled to a coarser grid (parameter `mnist_pool`) so that the exact Hessian that OBD
# and Belsley's method need, and Belsley's repeated eigendecompositions, stay cheap on a CPU; Wine is
# used as it is. Setting:

# %%
display(Markdown(LB.describe(P) + "."))
results = run_all(REPORT, P)  # one run per data set x seed (LB.plan), on the engine, then LB.summarize

# %% tags=["hide-input"]
display(Markdown(titled_table("The shared models (means over seeds)", "tab-lb-models",
                              results["models_tab"].to_markdown(floatfmt=".4g"), wide=True)))

# %% [markdown]
# In {numref}`tab-lb-models`, `zero_network` is the accuracy with every parameter removed (all outputs
# zero, so the first class is always predicted): the common end point of every curve.
# `plain_mlp_accuracy` is a deterministic MLP of the same shape trained for the same steps (trained only
# to charge the criteria that need no posterior their training; it is not pruned). `sigma_q05`,
# `sigma_median`, `sigma_q95` are quantiles of all posterior standard deviations, and
# `rank_corr_var_mag` is the Spearman correlation between the variational order $\mu_j^2/\sigma_j^2$ and
# the magnitude order $\lvert\mu_j\rvert$: 1 means the two criteria remove parameters in the same order.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Spread of the posterior standard deviations σ of all parameters after training (all seeds pooled); the dashed line is their common initial value 1e-3.", "name": "fig-lb-sigma"}}
LB.sigma_figure(results["sigmas"])
plt.show()
#
# ## Accuracy vs parameters kept
#
# Mean over seeds with a band of $\pm$ one standard deviation. The pruning criteria are evaluated on a
# grid of removed fractions; the clustering curves at their own points, one per number of clusters $k$
# (the same kept fractions in every seed).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Test accuracy vs percentage of parameters kept, every criterion on the same trained networks (one-shot, no retraining); mean ± sd over seeds.", "name": "fig-lb-curves"}}
curves = results["curves"]
names = curves.dataset.unique()
fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 6), squeeze=False)
for ax, d in zip(axes[0], names):
    plots.band(curves[curves.dataset == d], "kept", "accuracy", ax=ax, percent_x=True, palette=LB.PALETTE,
               labels=LB.LABELS, legend=False, xlabel="parameters kept (%)", ylabel="test accuracy",
               title=f"{d} ({P['n_seeds']} seeds)")
handles, keys = axes[0][0].get_legend_handles_labels()
fig.legend(handles, [LB.LABELS[k] for k in keys], loc="lower center", ncol=4, frameon=False)
fig.tight_layout(rect=(0, 0.13, 1, 1))
plt.show()

# %% [markdown]
# ## Leaderboard
#
# {numref}`fig-lb-curves` shows the curves. {numref}`tab-lb-board` ranks the criteria per data set by
# the area under accuracy vs fraction kept (over $[0, 1]$, trapezoids on the measured points; higher is
# better). *Kept at ≤ 1 pp loss* is the smallest measured fraction of parameters down to which the
# network stays within `loss_tol_pp` percentage points of its unpruned accuracy (walking down from the
# full network; lower is better). *Criterion time* is the wall time to compute the criterion (scores, or
# all the clusterings), not to evaluate it. *With its training* adds the training the criterion needs:
# the Bayesian training for the variational criterion and W2 clustering (they read $\boldsymbol\sigma$),
# a deterministic MLP of the same shape and steps for the others. Wall times are measured on a shared
# machine, so read them as orders of magnitude. Belsley's method gets the budget of its own chapter
# (`belsley_steps` = 100 eigendecompositions). Mean $\pm$ sd over seeds.

# %% tags=["hide-input"]
display(Markdown(titled_table("Compression leaderboard (mean ± sd over seeds)", "tab-lb-board",
                              results["board_markdown"])))

# %% [markdown]
# The one tolerance of ours on this page, {numref}`tab-lb-tolerances` (the chapter checks no claims):

# %% tags=["hide-input"]
display(Markdown(titled_table("Our tolerances", "tab-lb-tolerances", C.tolerances_markdown(
    P, {"loss_tol_pp": "accuracy loss below the unpruned network still counted as 'kept' in the "
                       "kept-at-tolerance column"}))))

# %% [markdown]
# ## What this run shows
#
# Generated from the numbers above:

# %% tags=["hide-input"]
display(Markdown(results["summary"]))

# %% [markdown]
# Reading the table:
#
# * **Structured vs unstructured.** The clustering rows remove whole neurons: the result is a smaller
#   dense network that is faster on any hardware. The other rows zero single parameters; their savings
#   need sparse storage and kernels. At equal kept fraction, unstructured removal has more freedom, so
#   a clustering curve below an unstructured one is expected, not a failure.
# * **Report 3's importances are not a pruning criterion by design.** They measure which weights a
#   gradient step should move (the product of the gradients on two half-batches), not which weights the
#   trained network needs; at a trained optimum those gradients are small and noisy. We use them as the
#   report defines them, with the weights fixed, and report where that puts them.
# * **Belsley's method with the Laplace covariance** uses report 5's default, the deck's condition index
#   $\lambda_j/\lambda_{\max}$, and the same number of eigendecompositions as in that chapter; that chapter
#   discusses why neither end of the covariance spectrum is sure to remove unimportant parameters first.
# * **W2 vs Euclidean clustering** differ only through the neurons' posterior standard deviations
#   (for diagonal Gaussians, W2 is the Euclidean distance between the vectors $(\mu, \sigma)$). Where
#   those are nearly equal across neurons, the two metrics make the same clusters; report 1's chapter
#   studies the metric with full covariances.
# * **Variational vs magnitude.** The two are the same order when the posterior standard deviations are
#   all equal; `rank_corr_var_mag` in {numref}`tab-lb-models` says how far apart they are in this run.
# * One-shot removal without retraining throughout; retraining after removal would lift every curve.

# %% [markdown]
# ## Provenance

# %%
prov.show()
