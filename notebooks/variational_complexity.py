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
# # Variational optimization of deep learning models with complexity control
#
# *Report 2 of the collection (seed `001`). Original work: O. S. Grebenkova, with O. Yu. Bakhteev and
# V. V. Strijov, "Variational optimization of deep learning model with complexity control"
# {cite}`grebenkova2020variational`. This page is an independent re-implementation in PyTorch; any
# error in it is ours, not the authors'.*
#
# The report trains a Bayesian (mean-field Gaussian) network with a **complexity coefficient** $\lambda$
# in front of the Kullback–Leibler term of the variational objective, prunes the trained networks by
# the relative density of their weights, and asks two questions: for which $\lambda$ can most of the
# weights be removed without losing accuracy, and can **one hypernetwork**, a function from $\lambda$ to
# the variational parameters, replace training a separate network for every $\lambda$?
#
# ## Problem statement
#
# Let $\mathfrak{D} = \{(\mathbf{x}_i, y_i)\}_{i=1}^{m}$ be the training data and $f(\mathbf{x}, \mathbf{w})$ a
# network with parameters $\mathbf{w} \in \mathbb{R}^{P}$. The posterior is approximated by
# $q_{\boldsymbol\theta}(\mathbf{w}) = \prod_{j=1}^{P} \mathcal{N}(w_j \mid \mu_j, \sigma_j^2)$ with
# $\sigma_j = \log(1 + e^{\rho_j})$ and variational parameters $\boldsymbol\theta = (\boldsymbol\mu, \boldsymbol\rho)$;
# the prior is $p(\mathbf{w}) = \mathcal{N}(\mathbf{0}, \sigma_p^2 \mathbf{I})$. For a complexity coefficient
# $\lambda \ge 0$ the **generalised evidence** is
#
# $$
# \mathcal{L}(\boldsymbol\theta, \lambda) = \mathbb{E}_{q_{\boldsymbol\theta}(\mathbf{w})} \log p(\mathfrak{D} \mid \mathbf{w})
# \;-\; \lambda\, \mathrm{KL}\bigl(q_{\boldsymbol\theta}(\mathbf{w}) \,\|\, p(\mathbf{w})\bigr),
# $$
#
# maximised over $\boldsymbol\theta$. At $\lambda = 1$ it is the usual evidence lower bound; at $\lambda = 0$ the
# prior plays no role and the variances $\sigma_j^2$ are constrained only by the likelihood; a large $\lambda$
# pulls $q$ towards the prior (a simpler model). We minimise $-\mathcal{L}/m$, i.e. the mean negative
# log-likelihood of a minibatch plus $\lambda\,\mathrm{KL}/m$, with a closed-form KL and the *local
# reparameterisation* trick: a layer $\mathbf{h} = \mathbf{W}\mathbf{x} + \mathbf{b}$ samples each pre-activation from its exact
# marginal $\mathcal{N}\bigl(\boldsymbol\mu_W \mathbf{x} + \boldsymbol\mu_b,\ \boldsymbol\sigma_W^2 \mathbf{x}^2 + \boldsymbol\sigma_b^2\bigr)$
# (squares elementwise) instead of sampling $\mathbf{W}$.
#
# **Hypernetworks.** A hypernetwork $\mathbf{G}_{\boldsymbol\phi}: \Lambda \to \boldsymbol\Theta$ outputs all variational
# parameters for a given $\lambda$ and is trained once for a whole range,
#
# $$
# \boldsymbol\phi^{*} = \arg\max_{\boldsymbol\phi}\ \mathbb{E}_{\lambda \sim U(\Lambda)}\, \mathcal{L}\bigl(\mathbf{G}_{\boldsymbol\phi}(\lambda), \lambda\bigr),
# $$
#
# estimated with several values of $\lambda$ per minibatch. We take $\Lambda = [\lambda_{\min}, \lambda_{\max}]$ on a
# **log scale**: $\log\lambda$ is uniform, and the hypernetworks see $t(\lambda) = (\log\lambda - \log\lambda_{\min}) /
# (\log\lambda_{\max} - \log\lambda_{\min}) \in [0, 1]$. $\lambda = 0$ is outside every such range, so only the
# separately trained models have $\lambda = 0$. Two hypernetworks, for every $\boldsymbol\mu$ and $\boldsymbol\rho$ tensor of the
# network:
#
# * **linear**: $\mathbf{G}(\lambda) = t(\lambda)\,\mathbf{b}_2 + \mathbf{b}_3$, with $\mathbf{b}_2, \mathbf{b}_3$ shaped like the tensor.
#   As in the authors' code it starts as the interpolation $(1 - t)\,\boldsymbol\theta_0 + t\,\boldsymbol\theta_1$ between two
#   independently initialised parameter sets ($\mathbf{b}_3 = \boldsymbol\theta_0$, $\mathbf{b}_2 = \boldsymbol\theta_1 - \boldsymbol\theta_0$), so it depends
#   on $\lambda$ from the first step (`linear_init = "endpoints"`; with `"zero"`, $\mathbf{b}_2 = 0$ and it starts flat in $\lambda$);
# * **low-rank**: for a weight matrix of shape $n_{\text{out}} \times n_{\text{in}}$,
#   $\mathbf{G}(\lambda) = \mathbf{A}(\lambda)\mathbf{B}(\lambda)^\top + \mathbf{b}_1$ with $\mathbf{A} = \mathbf{f}(t)\mathbf{U}_1$ reshaped to
#   $n_{\text{out}} \times r$ and $\mathbf{B} = \mathbf{f}(t)\mathbf{U}_2$ reshaped to $n_{\text{in}} \times r$, so the
#   $\lambda$-dependent part has rank at most $r$; bias vectors get $\mathbf{f}(t)\mathbf{U} + \mathbf{b}_1$. The features are the
#   deck's: one hidden layer of $h = 50$ ReLU units, $\mathbf{f}(t) = \max(0, \mathbf{a}\,t + \mathbf{c}) \in \mathbb{R}^{h}$
#   (`lowrank_features = "relu"`); a learned tanh embedding $\tanh(\mathbf{a}\,t + \mathbf{c})$ of ours is an option (`"tanh"`).
#
# The network is run with the generated parameters through `torch.func.functional_call`.
#
# **Pruning.** The relative density of a weight, $\varrho(w_j) = q(0)/q(\mu_j) = \exp\bigl(-\mu_j^2 / 2\sigma_j^2\bigr)$, is
# close to 1 when zero is a likely value of $w_j$; weights are removed in order of decreasing $\varrho$. Since
# $\mu_j^2/\sigma_j^2 = -2\log\varrho(w_j)$ is a decreasing function of $\varrho$, this is removal in order of increasing
# $\mu_j^2/\sigma_j^2$ (smallest $|\mu_j|/\sigma_j$ first), which is how we pass it to `torch.nn.utils.prune`. As in the
# authors' code, the same fraction is removed from **each layer** (`pruning_ranking = "per_layer"`; `"global"` ranks the
# weights of both layers together, under which the small output layer keeps most of its weights); biases (110 of the
# 79,510 parameters of the 784-100-10 network) are kept. If all $\sigma_j$ are equal, $\mu_j^2/\sigma_j^2$ orders the
# weights exactly like $|\mu_j|$, so every run also prunes by **magnitude** $|\mu_j|$ and reports the rank correlation
# of the two scores: density pruning is more than magnitude pruning only where the $\sigma_j$ differ. The pruned
# network is the mean network $\mathbf{w} = \boldsymbol\mu$, evaluated as is (*one-shot*) and after a short
# *fine-tuning* of its remaining weights (plain SGD on the negative log-likelihood; removed weights stay zero).

# %% tags=["parameters"]
profile = 'book'
device = 'auto'
seed = 0
n_seeds = 3
n_train = 60000
n_test = 10000
hidden = [100]
epochs = 3
hyper_epochs = 3
optimizer = 'adam'
lr = 0.005
finetune_lr = 0.1
grad_clip = 1.0
clip_mode = 'value'
input_scaling = 'symmetric'
batch_size = 256
prior_variance = 0.1
prior_variances = [0.01, 0.1, 1.0]
sweep_lambda = 1.0
init_sigma = 0.05
local_reparam = True
lambdas = [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]
lambda_min = 0.01
lambda_max = 100.0
lambdas_per_batch = 5
linear_init = 'endpoints'
rank = 1
lowrank_features = 'relu'
embed_dim = 50
pruning_ranking = 'per_layer'
fractions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
finetune_steps = 30
claim_fraction = 0.8
drop_tol_pp = 1.0
eval_every_steps = 141
evidence_n = 5000
similar_tol_pp = 2.0
n_lambda_grid = 13
cpu_threads = 1

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from paramspace import claims as C
from paramspace import plots
from paramspace.pages import titled_table
from paramspace.reports import run_all, setup
from paramspace.reports import variational_complexity as vc

REPORT = "variational_complexity"
P, prov = setup(REPORT, globals())  # validates every parameter (and the rules across them) before any compute
threads = vc.configure_threads(P)  # this kernel's torch thread count (each run also sets its own)

# %% [markdown]
# ## Protocol: the deck, the authors' code and this run
#
# The deck's slide "Параметры эксперимента" lists plain SGD, 50 epochs, prior variance 0.1, 50 ReLU units for the
# low-rank hypernetwork's features and 5 values of $\lambda$ per batch for the linear one. The authors' published
# code (repository `intsystems/VarHyperNet`, `code/mnist_final` and `code/src`) trains with **Adam** (learning rate
# $5\cdot10^{-4}$), clips **every gradient entry to $[-1, 1]$**, maps the pixels to $[-1, 1]$, initialises
# $\log\sigma = -3$ ($\sigma \approx 0.05$), starts the linear hypernetwork from two independently initialised endpoints and
# removes the same fraction of **each layer**. {numref}`tab-r2-protocol` sets them side by side with this run.
#
# **Deviations from the deck, named as such:**
#
# 1. *Optimizer.* We follow the authors' code (Adam with gradient clipping), not the deck's "SGD": under plain SGD
#    the posterior standard deviations do not move in any budget we can afford (their gradient is of order
#    $\lambda/m$ per step), so density pruning would be magnitude pruning and the $\lambda$ = 0 / 0.1 exception could not
#    show. `optimizer = "sgd"` remains available.
# 2. *Epochs and learning rate.* The `book` profile trains every separate model and each hypernetwork for **3 epochs
#    instead of 50** and, to compensate, with a **learning rate of $5\cdot10^{-3}$, ten times the authors'**; the `paper`
#    profile restores 50 epochs at the authors' $5\cdot10^{-4}$, with 5 seeds. The reason: with Adam each $\rho_j$ moves by
#    at most about the learning rate per step, so the posterior widths can travel about $\text{lr} \times \text{steps}$ in
#    $\rho$: $5\cdot10^{-4} \times 11{,}750 \approx 5.9$ in 50 epochs, but only $0.35$ (a factor $\le e^{0.35} \approx 1.4$ in
#    $\sigma$) in 3 epochs at the authors' rate, against $3.5$ at ours. In a probe at book scale with the authors' rate
#    (seed 0, one model per $\lambda$; not re-run by this page) the interquartile range of $\sigma$ stayed below 0.003 and the
#    rank correlation of $\mu^2/\sigma^2$ with $|\mu|$ above 0.994 for $\lambda \in \{0, 0.1, 1, 100\}$: density pruning
#    was still magnitude pruning, and the deck's distinction could not show.
# 3. *Prior variance and width.* We keep the deck's prior variance 0.1 and 784-100-10 network (the authors' MNIST
#    notebook uses prior $\sigma = 1$ and 50 hidden units).
# 4. *Input scaling, clipping, pruning per layer, the endpoints of the linear hypernetwork and $\lambda \in [0.01, 100]$*
#    are not stated in the deck; we take them from the authors' code.
# 5. *Hidden activation.* The deck's formula $\mathbf{f}(\mathbf{x}, \mathbf{w}) = \mathbf{w}_2^\top \mathrm{softmax}(\mathbf{w}_1^\top \mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2$
#    puts the softmax on the hidden layer, while its text says the second layer is the softmax; the authors' code uses ReLU
#    in the hidden layer and a softmax (cross-entropy) output, and so do we.
# 6. *Our choices:* the local reparameterisation trick (lower-variance gradients; the authors sample weights), the
#    log-scale encoding $t(\lambda)$, the rank 1 of the low-rank term, and a short fine-tuning stage.

# %% tags=["hide-input"]
display(Markdown(titled_table("Protocol: the deck, the authors' published code and this run", "tab-r2-protocol",
                              vc.table_markdown(vc.protocol_table(P)))))
display(Markdown(f"**This run:** {vc.describe(P)}; profile `{P['profile']}`."))

# %%
results = run_all(REPORT, P)  # per seed: each λ, each hypernetwork, each prior variance (vc.plan), then vc.summarize
tables = results["tables"]

# %% [markdown]
# {numref}`tab-r2-models` gives, per model and $\lambda$ (mean over seeds), the test accuracy of the mean network before
# pruning, the median and the interquartile range (IQR) of the posterior standard deviations of the weights (they
# start at the initial $\sigma$), the Spearman rank correlation of $\mu^2/\sigma^2$ with $|\mu|$ (1 means density pruning
# removes the weights in the same order as magnitude pruning), the KL divergence from the prior per parameter and the
# generalised evidence per training example.

# %% tags=["hide-input"]
display(Markdown(titled_table("Models before pruning (mean over seeds)", "tab-r2-models",
                              vc.table_markdown(tables["models"]))))

# %% [markdown]
# ## Accuracy vs fraction of weights removed
#
# {numref}`fig-r2-pruning`: one row per way of obtaining the models, one line per $\lambda$ (mean over seeds, band
# $\pm$ one standard deviation); left one-shot, right after fine-tuning. The hypernetwork rows have no $\lambda = 0$
# (outside the log-scale range they are trained on).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Test accuracy of the mean network against the percentage of weights removed by relative density (the same fraction from each layer), per λ; one-shot (left) and after fine-tuning (right); mean ± sd over seeds.", "name": "fig-r2-pruning"}}
methods, labels = list(vc.METHODS), vc.METHOD_LABELS
stages = ["one-shot", "fine-tuned"] if P["finetune_steps"] > 0 else ["one-shot"]
title = f"MNIST, 784-{'-'.join(map(str, P['hidden']))}-10: pruning by relative density ({P['n_seeds']} seeds)"
fig = plots.lambda_curves_figure(vc.density_curves(results["curves"]), P["lambdas"], methods, labels, stages,
                                 suptitle=title)
plt.show()

# %% [markdown]
# {numref}`fig-r2-drops` shows the same one-shot curves as the **accuracy lost** relative to each model's own unpruned
# accuracy, in percentage points, which is what the claims below are about: the dashed line is the tolerance that
# counts as "no significant loss" (`drop_tol_pp`), the dotted line the fraction at which the claims are checked
# (`claim_fraction`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Accuracy lost (percentage points) against the percentage of weights removed by relative density, one-shot; dashed: our tolerance drop_tol_pp; dotted: claim_fraction.", "name": "fig-r2-drops"}}
drops = vc.drop_curves(results["curves"])
fig = plots.lambda_curves_figure(drops, P["lambdas"], methods, labels, ["one-shot"], y="drop",
                                 ylabel="accuracy lost (pp)", hline=P["drop_tol_pp"], vline=P["claim_fraction"])
plt.show()

# %% [markdown]
# ## When is density pruning more than magnitude pruning?
#
# {numref}`fig-r2-magnitude` prunes the same separate models by relative density and by magnitude $|\mu|$;
# {numref}`tab-r2-density-magnitude` gives, per $\lambda$, the quartiles of $\sigma$, the rank correlation of the two
# scores and the difference of the areas under the two one-shot curves. Where the quartiles of $\sigma$ coincide and the
# rank correlation is 1, the two criteria are one.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Separate models: one-shot test accuracy against the percentage of weights removed (per layer) by relative density μ²/σ² and by magnitude |μ|, per λ; mean ± sd over seeds.", "name": "fig-r2-magnitude"}}
fig = vc.magnitude_figure(results["curves"], P["lambdas"])
plt.show()

# %% tags=["hide-input"]
display(Markdown(titled_table("Density vs magnitude pruning of the separate models (mean over seeds)",
                              "tab-r2-density-magnitude",
                              vc.table_markdown(tables["density_vs_magnitude"]))))

# %% [markdown]
# ## One hypernetwork, a continuum of models
#
# A hypernetwork gives a model for every $\lambda$ of its range, not only for the six values of the grid. In
# {numref}`fig-r2-continuum` each hypernetwork is evaluated along a fine log-spaced grid of $\lambda$ (band: $\pm$ one
# standard deviation over seeds), next to the separately trained models (points with error bars); top unpruned,
# bottom with the claims' fraction of the weights removed. {numref}`tab-r2-sensitivity` measures how much each kind
# of model changes with $\lambda$ over the covered range: the decades by which the KL per parameter falls and the
# median $\sigma$ grows from the smallest to the largest covered $\lambda$, and the range of unpruned accuracy. A
# hypernetwork that learned no complexity control has sensitivities near zero.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Test accuracy against λ: each hypernetwork along a fine grid (mean ± sd band over seeds) and the separate models (points); unpruned (top) and with claim_fraction of the weights removed by density (bottom).", "name": "fig-r2-continuum"}}
fig = plots.lambda_continuum_figure(results["grid"], vc.density_curves(results["curves"]),
                                    P["claim_fraction"], labels, P["lambdas"])
plt.show()

# %% tags=["hide-input"]
display(Markdown(titled_table("λ-sensitivity of each kind of model over the covered λ (mean over seeds)",
                              "tab-r2-sensitivity",
                              vc.table_markdown(tables["sensitivity"]))))

# %% [markdown]
# ## The generalised evidence and the posterior against λ
#
# The deck sets out to study the behaviour of the generalised evidence
# $\mathbb{E}_q \log p(\mathfrak{D} \mid \mathbf{w}) - \lambda\,\mathrm{KL}(q \,\|\, p)$ (here per training example, the
# expected log-likelihood estimated from one draw of $q$ on `evidence_n` training examples). {numref}`fig-r2-evidence`
# shows it with its parts and the median posterior $\sigma$, for the hypernetworks along the grid and the separate models.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Against λ: median posterior σ, KL per parameter, expected log-likelihood per example and the generalised evidence per example; hypernetworks along a fine grid (mean ± sd over seeds), separate models as points (λ = 0 as the open marker at the left).", "name": "fig-r2-evidence"}}
fig = vc.evidence_figure(results, P["lambdas"])
plt.show()

# %% [markdown]
# ## The prior and the complexity of the model
#
# The deck's second aim is the effect of the prior on the complexity of the model. Separate models at
# $\lambda$ = `sweep_lambda` are trained with each prior variance of `prior_variances` (the run's own prior is one of them);
# {numref}`fig-r2-prior` and {numref}`tab-r2-prior` give their pruning curves, posterior widths and KL.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Prior-variance sweep (separate models at λ = sweep_lambda): one-shot accuracy against the percentage of weights removed by density (left) and the posterior σ, median and quartiles, against the prior variance (right).", "name": "fig-r2-prior"}}
fig = vc.prior_figure(results, P)
plt.show()

# %% tags=["hide-input"]
display(Markdown(titled_table("Prior-variance sweep (mean over seeds)", "tab-r2-prior",
                              vc.table_markdown(tables["prior"]))))

# %% [markdown]
# ## Training cost
#
# Training cost is counted as **network passes**: one forward and backward pass of the base network on one minibatch.
# A separate model makes one per step; a hypernetwork makes `lambdas_per_batch` per step. At equal epochs, a hypernetwork
# with 5 values of $\lambda$ per batch and 5 separate models for the 5 covered $\lambda$ have **equal budgets by
# construction**; the hypernetwork's advantage can only be that it yields every $\lambda$ of its range, or that separate
# models need more work to reach its quality. {numref}`tab-r2-cost` therefore also counts the passes the separate models
# needed to reach the hypernetwork's unpruned test accuracy at each covered $\lambda$ (evaluated every
# `eval_every_steps` steps; a model that never reaches it is charged its full budget). {numref}`tab-r2-timing` adds the
# wall times of this run (shown, never used for a verdict: the machine is shared).

# %% tags=["hide-input"]
display(Markdown(titled_table("Counted training work per seed (network passes, mean over seeds)", "tab-r2-cost",
                              vc.table_markdown(tables["cost"]))))
display(Markdown(titled_table("Training budgets and wall time per seed (mean over seeds)", "tab-r2-timing",
                              vc.table_markdown(tables["timing"]))))

# %% [markdown]
# ## Claims and verdicts
#
# "Without significant loss" is made precise as: removing the fraction `claim_fraction` of the weights (one-shot, by
# relative density, per layer) lowers the test accuracy of the mean network by at most `drop_tol_pp` percentage points.
# For each row the number is a per-seed difference that is positive when the claim holds (for $\lambda = 0$ and $0.1$,
# where the report claims a *significant* loss, the drop minus `drop_tol_pp`). "Similar results" means that the areas
# under the one-shot curves of the hypernetwork and of the separate model differ, on average over the covered $\lambda$,
# by at most `similar_tol_pp`. "Lower cost" compares counted network passes at equal quality (above). Rows of kind
# *the report* are the deck's claims and are counted in the scorecard; rows of kind *ours* are our expectations and
# are not. **Reproduced** if the 95% Student-t interval of the per-seed numbers (plus our tolerance, where one is
# named) lies above zero, **partly** if the mean is positive but the interval reaches zero, **not reproduced** if the
# mean is not positive. {numref}`tab-r2-tolerances` lists the tolerances we chose; {numref}`tab-r2-claims` the verdicts.
# The ledger is also written to `variational_complexity.claims.json` for the collection's scorecard.

# %% tags=["hide-input"]
ledger = results["claims"]
C.write_ledger(REPORT, ledger)
display(Markdown(titled_table("Tolerances we chose (not the report's)", "tab-r2-tolerances",
                              C.tolerances_markdown(P, vc.TOLERANCES))))
display(Markdown(titled_table("Claims and verdicts", "tab-r2-claims", C.markdown_table(ledger), wide=True)))

# %% [markdown]
# ## Discussion
#
# What this run measured (generated from the results above):

# %% tags=["hide-input"]
display(Markdown(results["discussion"]))

# %% [markdown]
# * **Why the scale of training matters.** The KL term enters the loss divided by the number of training examples $m$.
#   With Adam every $\rho_j$ moves by about the learning rate per step whatever the size of its gradient, so the
#   posterior widths separate only with enough steps; {numref}`tab-r2-density-magnitude` shows how far they got in this
#   run. Where the rank correlation of $\mu^2/\sigma^2$ with $|\mu|$ is close to 1, density pruning and magnitude pruning
#   remove almost the same weights, and the report's distinction between small and large $\lambda$ can only come from
#   the means. The `paper` profile (50 epochs, GPU) is the test under the deck's budget.
# * **Per-layer pruning.** Removing the same fraction from each layer, as the authors do, also removes that fraction
#   of the 1,000 output-layer weights; ranking globally instead keeps most of the small output layer (option
#   `pruning_ranking = "global"`), which is why a global ranking looks far more robust at high fractions.
# * **Hypernetworks.** The linear hypernetwork interpolates linearly in $\log\lambda$ between two parameter sets that start
#   as two independent initialisations; the low-rank one changes each weight matrix by a rank-$r$ term driven by the
#   deck's 50 ReLU features. {numref}`tab-r2-sensitivity` says whether each learned to make its models simpler as
#   $\lambda$ grows, as the separate models do. The quality and similarity rows average over the covered $\lambda$, and
#   the per-$\lambda$ differences can have opposite signs (a hypernetwork can be below the separate models at small
#   $\lambda$ and above them at large $\lambda$): {numref}`tab-r2-models` and {numref}`fig-r2-continuum` show them per $\lambda$.
# * **Cost.** At equal epochs the budgets are equal by construction (above); the cost rows ask instead how much work the
#   separate models need to reach the hypernetwork's quality, which is the deck's "similar results at lower cost".
# * The claims use the one-shot curves, as the report does; the fine-tuned curves show how much of any loss a few
#   SGD steps on the remaining weights recover.

# %% [markdown]
# ## Provenance

# %%
prov.show()
