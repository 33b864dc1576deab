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
# # Metric analysis of the parameter space
#
# *Report 1 of the collection (seed `000`). Original work: Nasyrov, "Metric analysis of the parameter
# space of a neural network" {cite}`nasyrov2023metric`. This page is an independent re-implementation in
# PyTorch; any error in it is ours, not the author's.*
#
# The report reduces the parameter space of a network by looking at its **neurons as Gaussian
# distributions**: each neuron's weight vector has a mean and a covariance, two neurons are compared by the
# 2-Wasserstein distance between their Gaussians, similar neurons are grouped by k-means, and each group is
# replaced by its centre. The covariance is estimated in three ways, and a teacher -> student scheme
# turns a trained network's posterior into the prior of a Bayesian student. In the report's own experiment on quality
# against the number of parameters, the neurons' covariances are estimated **by the bootstrap**; that is this page's
# default (`cluster_cov`), with the Bayesian network and the Bayesian student of Algorithm 1 as options.
#
# ## Problem statement
#
# Let $f(\mathbf{x}, \mathbf{w})$ be a fully connected network trained on $\mathfrak{D} = \{(\mathbf{x}_i, y_i)\}_{i=1}^{n}$.
# A **neuron** $j$ of a layer $\mathbf{h} = \sigma(\mathbf{W}\mathbf{a} + \mathbf{b})$ is the vector of its incoming
# weights and its bias, $\mathbf{w}_j = (\mathbf{W}_{j\cdot}, b_j) \in \mathbb{R}^{d}$, $d = \dim\mathbf{a} + 1$; we treat it as a
# Gaussian $\mathcal{N}(\bar{\mathbf{w}}_j, \boldsymbol\Sigma_j)$. Two neurons are compared by the squared
# **2-Wasserstein distance** between their Gaussians,
#
# $$
# W_2^2 = \|\mathbf{m}_1 - \mathbf{m}_2\|^2 + \operatorname{Tr}\Bigl(\boldsymbol\Sigma_1 + \boldsymbol\Sigma_2
#   - 2\bigl(\boldsymbol\Sigma_1^{1/2} \boldsymbol\Sigma_2 \boldsymbol\Sigma_1^{1/2}\bigr)^{1/2}\Bigr),
# $$
#
# and a group of neurons is summarised by its **W2 barycentre**, the Gaussian minimising the mean $W_2^2$ to the
# group: its mean is the mean of the means, its covariance the fixed point of
# $\boldsymbol\Sigma = \frac1m\sum_i (\boldsymbol\Sigma^{1/2}\boldsymbol\Sigma_i\boldsymbol\Sigma^{1/2})^{1/2}$. For
# diagonal covariances both are in closed form: $W_2^2 = \|\mathbf{m}_1 - \mathbf{m}_2\|^2 + \|\sqrt{\mathbf{s}_1} - \sqrt{\mathbf{s}_2}\|^2$
# and the barycentre's variances are $(\text{mean of } \sqrt{\mathbf{s}_i})^2$.
#
# **Reducing a layer.** k-means groups the layer's neurons into $k$ clusters, either with the Euclidean distance
# between their means or with $W_2$ between their Gaussians (centres: barycentres). Each cluster $C$ is replaced by one
# neuron, its centre's mean $\bar{\mathbf{w}}_C$, and the outgoing weights of its members are summed,
# $\mathbf{V}_{\cdot C} = \sum_{j \in C} \mathbf{V}_{\cdot j}$, so that a cluster of identical neurons computes exactly what its members
# computed together. A layer of $h$ neurons between $d - 1$ inputs and $o$ outputs loses $(d + o)(h - k)$ parameters. When the
# clustered layer is the **output** layer (the accelerometer network below), the $k$ centres' outputs are copied back to
# the positions of their members (a fixed index, not a parameter), and $d(h - k)$ parameters are removed. The merged
# networks are evaluated as they are, **without fine-tuning**.
#
# **Three estimates of $\boldsymbol\Sigma_j$.**
#
# 1. **Bootstrap**: $N$ copies of the network, all started from the same initial weights, trained on resampled
#    training sets (rows drawn with replacement); each copy's hidden neurons are matched to those of the reference
#    network (the one trained on the full set) by the Hungarian algorithm on $\|\mathbf{w}^{\text{ref}}_i - \mathbf{w}_j\|^2$,
#    allowing a sign flip $\mathbf{w}_j \to -\mathbf{w}_j$ for tanh neurons (with the outgoing weights negated, the function
#    is unchanged), and the outgoing weights are permuted along. $\boldsymbol\Sigma_j$ is the sample covariance of neuron $j$
#    over the $N$ matched copies.
# 2. **Bayesian network**: every neuron is $\mathcal{N}(\bar{\mathbf{w}}_j, \mathbf{A}_j\mathbf{A}_j^\top + \operatorname{diag}\mathbf{s}_j^2)$ with a
#    rank-$r$ factor $\mathbf{A}_j$ and a small diagonal (which keeps the covariance non-singular), trained by variational
#    inference: minimise $\mathrm{KL}(q \| p)/n - \frac1n \sum_i \mathbb{E}_q \log p(y_i \mid \mathbf{x}_i, \mathbf{w})$ (the
#    negative ELBO per example) with the prior $p = \mathcal{N}(\mathbf{0}, \sigma_p^2\mathbf{I})$, a closed-form KL and the local
#    reparameterisation trick (each pre-activation is drawn from its exact Gaussian marginal).
# 3. **Hessian sandwich**: $\boldsymbol\Sigma \approx \mathbf{H}^{-1}\mathbf{G}\mathbf{H}^{-1}/n$ at the trained weights, with
#    $\mathbf{H}$ the mean Hessian of the loss and $\mathbf{G} = \frac1n\sum_i \nabla\ell_i \nabla\ell_i^\top$ the mean outer product
#    of the per-example gradients (for least squares it is White's heteroscedasticity-consistent covariance). We use its
#    **block-diagonal** form, one $d \times d$ block per neuron: a neuron enters the loss only through its pre-activation
#    $z_j = \mathbf{w}_j \cdot \tilde{\mathbf{a}}$, so its blocks are $\mathbf{H}_j = \frac1n\sum_i \partial^2_{z_j}\ell_i\, \tilde{\mathbf{a}}_i\tilde{\mathbf{a}}_i^\top$
#    and $\mathbf{G}_j = \frac1n\sum_i (\partial_{z_j}\ell_i)^2\, \tilde{\mathbf{a}}_i\tilde{\mathbf{a}}_i^\top$, computed exactly with
#    `torch.func`. $\mathbf{H}_j$ is pseudo-inverted (directions the data never moves get zero variance).
#
# **Teacher -> Bayesian student (Algorithm 1 of the report).** (i) Train the teacher; (ii) estimate its posterior,
# $\mathcal{N}(\mathbf{w}^{\text{teacher}}_j, \boldsymbol\Sigma_j)$ per neuron; (iii) make it the prior of a student with the same
# architecture and low-rank Gaussian neurons; (iv) train the student on the **teacher's answers** (its predicted classes,
# or its outputs for regression) by minimising $\mathrm{KL}(q \| \text{prior}) - \log$-likelihood; (v) analyse the student's
# neurons: cluster them, Euclidean vs $W_2$, with the student's own posterior covariances
# $\mathbf{A}_j\mathbf{A}_j^\top + \operatorname{diag}\mathbf{s}_j^2$. The deck's quality-vs-parameters slide states
# "Параметры распределения оцениваются с помощью bootstrap" (the distributions' parameters are estimated by the
# bootstrap), so our default clusters the trained network's neurons with their **bootstrap** covariances
# (`cluster_cov = "bootstrap"`); `"bayes"` clusters a Bayesian network trained on the data, `"student"` the student of
# Algorithm 1. The student's posterior is pulled toward its prior; with the sandwich prior its spread can be tiny next
# to the distances between neurons, and $W_2$ and Euclidean k-means then return the same partition, so that the
# comparison tests nothing ({numref}`tab-r1-contrast` measures how often). Next to every comparison of the two metrics we therefore give the **adjusted Rand index** (ARI) of
# the two partitions (1 = the same partition, about 0 = as alike as chance).
#
# ## The protocol: the report's and ours
#
# The deck gives the data sets, the neuron dimensions of its figure (in brackets in the panel titles), the
# estimator, the two distances and the claims, not the architectures, the number of bootstrap runs or the training.
# {numref}`tab-r1-protocol` sets what this page runs (from the parameters below) next to what the deck states, and
# names every deviation.

# %% tags=["parameters"]
profile = "book"
device = "auto"
seed = 0
n_seeds = 5
datasets = ["mnist", "iris", "hapt"]
lr = 0.005
batch_size = 64
mnist_train = 2000
mnist_test = 2000
mnist_pca = 7
mnist_hidden = 64
mnist_epochs = 10
mnist_ks = [2, 4, 8, 12, 16, 24, 32, 48]
iris_pca = 3
iris_hidden = 32
iris_epochs = 200
iris_ks = [1, 2, 3, 4, 6, 8, 12, 16, 24]
hapt_window = 100
hapt_stride = 20
hapt_hidden = 3
hapt_curve_hidden = 9
hapt_epochs = 15
hapt_ks = [2, 4, 8, 12, 16, 24, 32, 48, 64]
hapt_small_in = 10
hapt_small_out = 20
n_bootstrap = 10
rank = 2
prior_sigma = 1.0
init_sigma = 0.001
kl_weight = 1.0
cluster_cov = "bootstrap"
contrast_datasets = ["hapt"]
teacher_posterior = "sandwich"
prior_jitter = 0.01
n_init = 3
max_iter = 50
n_ellipses = 16
no_worse_tol = 0.005
much_better = 0.02
circle_tol = 0.25
scale_ratio = 2.0
iris_min_accuracy = 0.9
iris_param_fraction = 0.5
hapt_claim_k = 16
compress_tol = 0.02
cpu_threads = 1

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from paramspace import claims as C
from paramspace import plots
from paramspace.pages import titled_table
from paramspace.reports import metric_analysis as R
from paramspace.reports import run_all, setup

REPORT = "metric_analysis"
P, prov = setup(REPORT, globals())  # validates every parameter (and the rules across them) before any compute

# %% tags=["hide-input"]
display(Markdown(titled_table("The report's protocol and this page's", "tab-r1-protocol", R.protocol_markdown(P))))

# %% [markdown]
# ## The accelerometer task
#
# The report recovers an accelerometer signal from the MotionSense data set. MotionSense is not shipped with this
# collection; **we use the UCI HAPT smartphone recordings instead** (a deviation: waist-mounted phone, 50 Hz, 30
# subjects), keeping the *walking* segments. The signal is the magnitude of the acceleration vector $|\mathbf{a}|$ (it
# does not depend on how the phone was oriented), standardised with the training samples. The task is
# **autoregressive**: from the `hapt_window` samples before time $t$, predict the `hapt_window` samples from $t$ on (the
# report's 100-3-100 network with `hapt_window = 100`, i.e. 2 s in, 2 s out), and, with the report's smaller 10-3-20
# network, 20 samples from the previous 10. Both have a tanh bottleneck of 3 neurons. Training windows start every
# `hapt_stride` samples inside a walking segment; train and test are split **by subject** (a seeded 30% of the subjects
# are held out). {numref}`fig-r1-recovery` shows a held-out subject's walk, predicted block by block, each block from
# the true samples before it.

# %%
display(Markdown(f"**This run:** {R.describe(P)}; profile `{P['profile']}`."))
# every run of the page (R.plan: the estimator comparison, the 100-3-100 network per seed, every task x seed of the
# quality-vs-parameters figure and of the contrast), then its tables and claims (R.summarize)
S = run_all(REPORT, P)
comp, ring, curves, models = S["comp"], S["ring"], S["curves"], S["models"]
data = comp["data"]
rate = data["rate_hz"]
w, a, b, h = P["hapt_window"], P["hapt_small_in"], P["hapt_small_out"], P["hapt_hidden"]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "A held-out subject's walk (magnitude of the acceleration, standardised) and its autoregressive recovery by the 100-3-100 and the 10-3-20 network, each block predicted from the true samples before it.", "name": "fig-r1-recovery"}}
length = min(len(comp["segment"]) - P["hapt_window"], int(8 * rate))
fig = plots.recovery_figure(comp["segment"], comp["recovered"],
                            {"teacher": f"{w}-{h}-{w} network", "small": f"{a}-{h}-{b} network"},
                            rate, P["hapt_window"], length, comp["quality"])
plt.show()

# %% tags=["hide-input"]
display(Markdown(
    f"Test $R^2$ over all held-out windows: {comp['quality']['teacher']:.3f} for the {w}-{h}-{w} network "
    f"(predicting {w / rate:.1f} s ahead) and {comp['quality']['small']:.3f} for the {a}-{h}-{b} network "
    f"({b / rate:.1f} s ahead); {data['n_train']} training and {data['n_test']} test windows "
    f"({data['train_users']} and {data['test_users']} subjects)."))

# %% [markdown]
# ## Three estimates of the neurons' covariance
#
# The neurons of the $w$-3-$w$ network's **output layer** (one per predicted sample, each with $d = 3 + 1$ parameters)
# are the ones the report draws. {numref}`fig-r1-ellipses` shows the 95% confidence ellipses of the first `n_ellipses`
# of them under each estimator, projected on the plane of the first two principal components of the trained network's
# output-neuron means; the grey line joins all its neuron means in the order of the samples they predict. Each
# estimator's ellipse is centred at its own mean (bootstrap: mean of the matched copies; Bayesian: posterior mean;
# sandwich: the trained weights). The bootstrap and Bayesian runs start from the trained network's initial weights, so
# that all three describe the same basin of the loss. One seed (`seed`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "95% confidence ellipses of the first output neurons of the 100-3-100 accelerometer network under the three estimators (bootstrap, Bayesian network, Hessian sandwich), in the plane of the first two principal components of the neuron means; grey: all neuron means in order. The deck's figures on the slide 'Визуализация пространства нейронов 3 методами'.", "name": "fig-r1-ellipses"}}
fig, scale = plots.ellipse_panels(comp["means"], comp["covs"], R.ESTIMATOR_LABELS, comp["circle"]["basis"],
                                  comp["circle"]["centre"], P["n_ellipses"], comp["means"]["sandwich"],
                                  title=f"Accelerometer, {w}-{h}-{w}: output neurons (d = {h + 1})")
plt.show()

# %% tags=["hide-input"]
est = S["tables"]["estimators"].round(4).reset_index()
est.columns = [c.replace("|cos|", "(abs. cosine)") for c in est.columns]
display(Markdown(titled_table(f"The three covariance estimates of the {w}-{h}-{w} output neurons", "tab-r1-estimators",
                              est.to_markdown(index=False))))

# %% [markdown]
# {numref}`tab-r1-estimators` gives, per estimator: the median standard deviation per coordinate,
# $\sqrt{\operatorname{Tr}\boldsymbol\Sigma_j / d}$, over all output neurons; for the ellipses drawn above, the median
# ratio of the minor to the major axis and the median absolute cosine of the angle between the major axis and the grey curve;
# and the median Bures distance (the covariance part of $W_2$) to each estimator's covariance of the same neuron. The
# report says the neurons "lie on a circle" ("нейроны расположены по кругу") and that the estimators "give different
# numbers but a similar structure (a circle)"; we read the circle as the arrangement of the neuron means and measure
# it by the **relative deviation from a circle**: in the plane of the first two principal components, around the
# centroid, the root-mean-square distance of the means from the circle of their mean radius (out-of-plane parts
# included), divided by that radius (0 = exactly on a circle; the ledger's tolerance `circle_tol` is ours):

# %% tags=["hide-input"]
display(Markdown(S["tables"]["circle"]))
display(Markdown(
    "Relative deviation from a circle of each estimator's neuron means: "
    + ", ".join(f"{e} {v:.3f}" for e, v in comp["deviation"].items())
    + f". Alignment: the matching moved {comp['moved']['bootstrap']:.0%} of the hidden neurons of the bootstrap copies "
    f"and {comp['moved']['bayes']:.0%} of those of the Bayesian network (permuted or sign-flipped). Wall time: "
    + ", ".join(f"{k} {v:.1f} s" for k, v in comp["seconds"].items()) + "."))

# %% [markdown]
# The deck also draws the confidence regions of the small **10-3-20** network ("Доверительные области нейронов сети
# 10-3-20", on its model slide, without saying which estimator or which neurons). {numref}`fig-r1-ellipses-small`
# draws all 20 output neurons of our 10-3-20 network ($d = 4$) with their bootstrap covariances (`n_bootstrap` aligned
# runs), our reading of that figure.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "95% bootstrap confidence ellipses of the 20 output neurons of the 10-3-20 accelerometer network, in the plane of the first two principal components of the neuron means (the deck's figure 'Доверительные области нейронов сети 10-3-20').", "name": "fig-r1-ellipses-small"}}
sc = R.circle_stats(comp["small_means"])
fig, _ = plots.ellipse_panels({"bootstrap": comp["small_means"]}, {"bootstrap": comp["small_covs"]},
                              {"bootstrap": f"bootstrap, {P['n_bootstrap']} runs"}, sc["basis"], sc["centre"],
                              P["hapt_small_out"], comp["small_means"],
                              title=f"Accelerometer, {a}-{h}-{b}: output neurons (d = {h + 1})")
plt.show()

# %% [markdown]
# ### The circle and the 100 -> 16 reduction over seeds
#
# The ledger tests "neurons lie on a circle" and "the space can be reduced from 100 to 16" on the 100-3-100 network
# trained once per seed (`n_seeds`): the relative deviation of its output neurons from a circle, and the test $R^2$
# after merging its 100 output neurons into `hapt_claim_k` clusters (k-means of the neurons; merging uses only the
# means, so no covariance is needed), without fine-tuning ({numref}`tab-r1-ring`).

# %% tags=["hide-input"]
display(Markdown(titled_table(f"The {w}-{h}-{w} network per seed: deviation from a circle and R² after "
                              f"{P['hapt_claim_k']} clusters", "tab-r1-ring", ring.round(4).to_markdown(index=False))))

# %% [markdown]
# ## Quality against the number of parameters after clustering
#
# For every task and seed: the network is trained on the full training set, the covariances of the clustered layer's
# neurons are estimated as `cluster_cov` says (the deck's bootstrap by default: `n_bootstrap` copies trained on
# resampled training sets from the same initial weights, neurons matched to the trained network), and the trained
# network's neurons are clustered, for every $k$ of the grid, by Euclidean k-means of their means and by $W_2$ k-means
# of their Gaussians (full $d \times d$ covariances). Both run **the same implementation**, Lloyd's algorithm with
# greedy k-means++ seeding and the best of `n_init` starts, differing only in the distance: k-means lands in different
# local optima from different seedings, which at small $k$ changes the merged network's accuracy by several points, so
# comparing, say, scikit-learn's Euclidean k-means with our own $W_2$ code would mix the effect of the metric with that
# of the implementation. The merged network (cluster means, no fine-tuning) is evaluated on the test set.
#
# **Neuron dimensions as in the deck** (its panels are titled MotionSense (10), MNIST (8), IRIS (4)). We count a
# neuron's bias as one of its coordinates (our reading; the deck does not say) and choose the inputs so that the
# dimensions match: **MNIST** subsampled (`mnist_train`, `mnist_test`) and reduced to its first `mnist_pca` = 7
# principal components (standardised), hidden neurons of dimension 8; **Iris** reduced to its first `iris_pca` = 3
# principal components, hidden neurons of dimension 4 (had the deck counted weights without the bias, its Iris
# neurons would be the 4 raw features); **accelerometer** a `hapt_window`-`hapt_curve_hidden`-`hapt_window` tanh
# network whose output neurons have dimension `hapt_curve_hidden` + 1 = 10 (the deck does not give this network; the
# 100-3-100 of its ellipse slide has output neurons of dimension 4). Clustered layers: the hidden layer for MNIST and
# Iris, the output layer for the accelerometer; Iris: 150 flowers, 25% test split per seed.

# %% tags=["hide-input"]
tab = S["tables"]["models"]
display(Markdown(titled_table("The clustered networks (means over seeds)", "tab-r1-models",
                              tab.reset_index().to_markdown(index=False), wide=True)))

# %% [markdown]
# {numref}`tab-r1-models`, per task (means over seeds): parameters of the network, its inputs, neurons of the
# clustered layer and their dimension $d$, test quality of the clustered (unmerged) network (accuracy; $R^2$ for the
# accelerometer), the mean standard deviation per coordinate of the clustering covariances and, for scale, the
# root-mean-square spread of the neuron means around their centroid; $W_2$ and Euclidean k-means can only differ where
# the first is not negligible next to the second.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Test quality of the network after clustering one layer's neurons into k groups (no fine-tuning) against its number of parameters, Euclidean k-means of the means vs W2 k-means of the Gaussians (covariances as set by cluster_cov: bootstrap in the book); mean ± sd over seeds. The deck's figures on the slide 'Точности модели VS количество параметров'.", "name": "fig-r1-quality"}}
dim = dict(zip(models.dataset, models.dim))
titles = {"mnist": f"MNIST (PCA {P['mnist_pca']}), hidden neurons, d = {dim.get('mnist', '')}",
          "iris": f"Iris (PCA {P['iris_pca']}), hidden neurons, d = {dim.get('iris', '')}",
          "hapt": f"Accelerometer, output neurons, d = {dim.get('hapt', '')}"}
ylabels = {"mnist": "test accuracy", "iris": "test accuracy", "hapt": "test $R^2$"}
fig = plots.quality_vs_params_figure(curves, P["datasets"], titles, ylabels)  # W2 dashed over a wide Euclidean line
fig.suptitle(f"Quality after clustering one layer ({P['cluster_cov']} covariances), no fine-tuning "
             f"(mean ± sd over {P['n_seeds']} seeds)", y=1.02)
plt.show()

# %% [markdown]
# In {numref}`fig-r1-quality` the $W_2$ line is dashed and drawn over a wider Euclidean line, so that both stay visible
# where they coincide. {numref}`tab-r1-auc` gives the area under each curve (quality against the fraction of
# parameters kept, quality floored at 0, normalised by the range of the fraction), mean $\pm$ sd over seeds, higher is
# better, and {numref}`tab-r1-ari` how alike the two partitions are at every $k$.

# %% tags=["hide-input"]
auc = S["tables"]["auc"]
display(Markdown(titled_table("Area under quality vs fraction of parameters kept", "tab-r1-auc",
                              auc.reset_index().to_markdown(index=False))))
ari = S["tables"]["ari"]  # "—": k not in that task's grid
display(Markdown(titled_table("Adjusted Rand index of the Euclidean and the W2 partition (mean over seeds; "
                              "1 = the same partition)", "tab-r1-ari", ari.to_markdown(index=False))))

# %% [markdown]
# **Why the bootstrap.** The tasks of `contrast_datasets` are clustered a second time with the covariances of the
# Bayesian student of Algorithm 1 (teacher posterior `teacher_posterior` as its prior), everything else equal.
# {numref}`tab-r1-contrast` sets the agreement of the two partitions under each covariance side by side.

# %% tags=["hide-input"]
if P["contrast_datasets"]:
    display(Markdown(titled_table("Euclidean vs W2 partitions under the bootstrap and the student's covariances",
                                  "tab-r1-contrast", S["tables"]["contrast"].round(4).to_markdown(index=False))))

# %% [markdown]
# ## Claims and verdicts
#
# Comparisons of the two metrics are paired over seeds: the number per seed is the area under the $W_2$ curve minus that
# under the Euclidean curve (plus our tolerance `no_worse_tol` for "no worse"). **Reproduced** if the 95% Student-t
# interval of the per-seed numbers lies above zero, **partly** if the mean is positive but the interval reaches zero,
# **not reproduced** if the mean is not positive; **indistinguishable** if the two partitions are the same at every $k$
# and seed (ARI 1), so that the rule could only pass through our tolerance. "Sometimes much better" is checked exactly:
# some task must show a mean difference above `much_better` with its interval above zero. "Covariance helps at small
# neuron dimension" is tested on the task with the smallest neuron dimension (Iris, $d = 4$, as in the deck) without a
# tolerance, and, as our own reading, against the largest dimension. Iris: the accuracy of the $W_2$-merged network with
# the largest $k$ that keeps at most `iris_param_fraction` of the parameters, minus `iris_min_accuracy`. The circle and
# 100 -> 16 rows read {numref}`tab-r1-ring`; the two estimator rows read {numref}`tab-r1-estimators` (one seed,
# checked exactly). Only rows of kind "the report" are counted in the collection's scorecard. The tolerances are ours
# ({numref}`tab-r1-tolerances`); the deck gives no number for any of these claims except Iris' 90% at half the
# parameters and the 100 -> 16 neurons.

# %% tags=["hide-input"]
display(Markdown(titled_table("Tolerances we chose (not the report's)", "tab-r1-tolerances", C.tolerances_markdown(P, {
    "no_worse_tol": "'W2 no worse': the W2 area may fall this far below the Euclidean one",
    "much_better": "'sometimes much better': the mean area gain that counts as much",
    "circle_tol": "'on a circle': largest relative deviation of the neuron means from a circle",
    "compress_tol": "'100 -> 16': largest loss of test R² that still counts as a reduction",
    "scale_ratio": "'different numbers': smallest ratio of the largest to the smallest median sd of the estimators",
}))))

# %%
ledger = S["ledger"]
C.write_ledger(REPORT, ledger)

# %% tags=["hide-input"]
display(Markdown(titled_table("Claims and verdicts", "tab-r1-claims", C.markdown_table(ledger), wide=True)))

# %% [markdown]
# ## Discussion
#
# What this run measured ({numref}`tab-r1-claims`, generated from the results above):

# %% tags=["hide-input"]
display(Markdown(S["summary"]))

# %% [markdown]
# * **When can $W_2$ differ from Euclidean k-means?** The merged network uses only the centres' *means*, and the mean of a
#   $W_2$ barycentre is the plain mean of its members, so the two methods differ only in which neurons they group. $W_2$
#   adds the Bures distance between covariances to the distance between means; it regroups neurons only when the
#   covariances' spreads are comparable to the distances between the neurons, and when uncertain and certain neurons
#   are spread differently. The ratio of the two ({numref}`tab-r1-models`) and the ARI ({numref}`tab-r1-ari`) tell
#   where that happens. The posterior of the Bayesian student of Algorithm 1 (`cluster_cov = "student"`) is pulled
#   toward its prior (here the sandwich, a small spread where there are many training windows); where its spread is
#   negligible next to the spread of the means, the two partitions coincide (ARI 1) and the comparison tests nothing
#   ({numref}`tab-r1-contrast` measures this for the tasks of `contrast_datasets`). That is one more reason, besides the
#   deck's own statement, why this page clusters with bootstrap covariances, and why the ARI stands next to every
#   comparison.
# * **The circle.** The deviation from a circle counts the part of the neuron means outside the plane of the figure as
#   well as the variation of the radius in it; a two-dimensional figure like the deck's shows only the second. The
#   circle row of {numref}`tab-r1-claims` and {numref}`tab-r1-ring` give both (share of the variance in the plane,
#   in-plane variation of the radius). The three estimators' means are close to each other (the bootstrap and Bayesian
#   runs start from the trained network's initial weights and are aligned to it), so the "alike in structure" row
#   mostly repeats the circle row for one seed; the estimators differ in their covariances ({numref}`tab-r1-estimators`).
# * **Estimators.** The three estimates measure different things. The sandwich is local (curvature at one optimum,
#   scaling as $1/n$); with overlapping windows, which are far from independent, it understates the uncertainty. The
#   bootstrap also includes the randomness of training (minibatch order) and, with few runs, is a noisy, low-rank
#   estimate (with `n_bootstrap` = 10 runs and $d = 10$ its covariances have rank at most 9). The variational posterior
#   depends on the prior and on the family (rank $r$ plus diagonal). The report does not pin down its choices, so
#   agreement in shape, not in size, is what to expect.
# * **Deviations** (also in {numref}`tab-r1-protocol`): HAPT walking (magnitude of the acceleration) stands in for
#   MotionSense; MNIST and Iris are PCA-reduced and the accelerometer network of the quality figure is our choice, so
#   that the neuron dimensions are the deck's 8 / 4 / 10 with the bias counted; the number of bootstrap runs, the
#   architectures and the training are ours; no fine-tuning after merging; several seeds where the deck shows one run.
#   The `paper` profile restores the scale the `book` profile cuts: the full MNIST training and test sets (100 hidden
#   neurons), 100 bootstrap runs, windows every 2 samples, longer training and 10 seeds; those sizes are our choice
#   where the report does not give them.

# %% [markdown]
# ## Provenance

# %%
prov.show()
