"""Neurons as points: a layer's neurons as vectors (or Gaussians), merging, alignment, covariances and k-means.

Every neuron of a fully connected layer is the vector of its incoming weights and its bias,
``w_i = (W[i, :], b[i]) in R^d`` with ``d = in_features + 1`` (:func:`neuron_params`), and may be treated
as a Gaussian ``N(w_bar_i, Sigma_i)``.  This module provides

* merging a layer's neurons into cluster centres (:func:`merge_neurons`, :class:`ExpandOutputs`);
* aligning the hidden neurons of two networks (:func:`align_model`, :func:`align_covariances`);
* estimators of ``Sigma_i``: the Hessian sandwich ``H^-1 G H^-1 / n`` (:func:`neuron_covariances`,
  :func:`neuron_curvature`), the sample covariance over aligned runs (:func:`bootstrap_covariances`),
  White's HC0 for least squares (:func:`hc0_covariance`), and a low-rank Bayesian copy of a network
  (:func:`lowrank_bayes`, :class:`paramspace.variational.LowRankBayesLinear`);
* k-means of neurons with the Euclidean distance of their means or the W2 distance of their Gaussians
  (:func:`kmeans_neurons`), and the quality of the merged network over a grid of k (:func:`cluster_sweep`,
  :func:`partition_agreement`).

Covariance shapes: ``(n, d, d)`` full matrices everywhere; ``(n, d)`` diagonals (variances) in
:func:`kmeans_neurons`.  Everything here takes keyword arguments; no parameter dict.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call, grad, vmap

from . import curvature
from .train import task_loss
from .wasserstein import w2_barycenter_ae, w2_barycenter_diag, w2_pairwise

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.Identity, nn.Dropout, nn.LeakyReLU,
               nn.Softplus, nn.SiLU)
ODD = (nn.Tanh, nn.Identity)  # odd activations: a neuron and its negative are equivalent
METRICS = ("euclidean", "w2")  # the two distances of :func:`kmeans_neurons`


# --- neurons of an nn.Sequential -------------------------------------------------------------------


def _linear(model: nn.Sequential, layer: int) -> nn.Linear:
    if not isinstance(model, nn.Sequential) or not 0 <= layer < len(model) or not isinstance(model[layer], nn.Linear):
        raise ValueError(f"model[{layer}] must be an nn.Linear of an nn.Sequential")
    return model[layer]


def _next_linear(model: nn.Sequential, layer: int) -> int | None:
    """Index of the first ``nn.Linear`` after ``layer`` (only elementwise modules in between), or
    ``None`` when ``layer`` is the last one."""
    for j in range(layer + 1, len(model)):
        if isinstance(model[j], nn.Linear):
            return j
        if not isinstance(model[j], ELEMENTWISE):
            raise ValueError(f"model[{j}] ({type(model[j]).__name__}) between model[{layer}] and the next "
                             "Linear is not elementwise; neurons cannot be permuted or merged through it")
    return None


def neuron_params(model: nn.Sequential, layer: int) -> np.ndarray:
    """Neurons of the ``nn.Linear`` at index ``layer`` of ``model``: one row per output unit, its
    incoming weights followed by its bias, shape ``(n_neurons, in_dim + 1)`` (float64)."""
    lin = _linear(model, layer)
    W = lin.weight.detach().cpu().double()
    b = lin.bias.detach().cpu().double() if lin.bias is not None else torch.zeros(len(W), dtype=torch.float64)
    return torch.cat([W, b[:, None]], 1).numpy()


class ExpandOutputs(nn.Module):
    """Copies ``k`` merged outputs back to the original ``n`` positions: ``out[:, j] = z[:, index[j]]``.

    Used when the merged layer is the network's last one; ``index`` is a buffer (the cluster
    labels), not a trainable parameter."""

    def __init__(self, index):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))

    def forward(self, z):
        return z[..., self.index]


def merge_neurons(model: nn.Sequential, layer: int, labels, centre_means) -> nn.Sequential:
    """A new, smaller model in which the neurons of the ``nn.Linear`` at ``layer`` are replaced by
    their cluster centres.

    ``labels[i]`` is the cluster of neuron ``i``; ``centre_means[c]`` the centre of cluster ``c``
    (incoming weights then bias, as in :func:`neuron_params`).  The layer gets one output per
    non-empty cluster, holding its centre; the input columns of the next ``nn.Linear`` are summed per
    cluster (so a cluster of identical neurons computes exactly what they computed together).  The
    parameter count drops by ``in_dim + 1 + out_dim`` per removed neuron.  When ``layer`` is the last
    ``nn.Linear``, there is nothing to sum into: its ``k`` outputs are copied back to the original
    positions by :class:`ExpandOutputs` (a fixed index, no parameters), and the count drops by
    ``in_dim + 1`` per removed neuron.
    """
    lin = _linear(model, layer)
    labels = np.asarray(labels)
    centre_means = np.asarray(centre_means, float)
    if labels.shape != (lin.out_features,):
        raise ValueError(f"need one label per neuron ({lin.out_features}), got shape {labels.shape}")
    if centre_means.ndim != 2 or centre_means.shape[1] != lin.in_features + 1 or labels.max() >= len(centre_means):
        raise ValueError(f"centre_means must be (k, {lin.in_features + 1}) with k > max(labels)")
    used, compact = np.unique(labels, return_inverse=True)
    k = len(used)
    nxt = _next_linear(model, layer)
    ref = lin.weight
    new_lin = nn.Linear(lin.in_features, k, bias=True).to(device=ref.device, dtype=ref.dtype)
    C = torch.as_tensor(centre_means[used], dtype=ref.dtype, device=ref.device)
    with torch.no_grad():
        new_lin.weight.copy_(C[:, :-1])
        new_lin.bias.copy_(C[:, -1])
    new = copy.deepcopy(model)
    layers = list(new)
    layers[layer] = new_lin
    if nxt is None:
        layers.insert(layer + 1, ExpandOutputs(compact).to(ref.device))
    else:
        onehot = torch.zeros(lin.out_features, k, dtype=ref.dtype, device=ref.device)
        onehot[torch.arange(lin.out_features), torch.as_tensor(compact, device=ref.device)] = 1.0
        old = model[nxt]
        summed = nn.Linear(k, old.out_features, bias=old.bias is not None).to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            summed.weight.copy_(old.weight.detach() @ onehot)
            if old.bias is not None:
                summed.bias.copy_(old.bias.detach())
        layers[nxt] = summed
    return nn.Sequential(*layers)


# --- aligning neurons across networks --------------------------------------------------------------


def _hidden_linears(model: nn.Sequential) -> list[int]:
    idx = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    return idx[:-1]


def align_model(reference: nn.Sequential, model: nn.Sequential, sign_flip: bool = False):
    """A copy of ``model`` whose hidden neurons are permuted (and, with ``sign_flip``, negated) to
    match those of ``reference``; the function it computes is unchanged.

    Hidden layers are aligned one after another, from the input side: the cost of matching
    reference neuron ``i`` with neuron ``j`` is ``|w_ref_i - w_j|^2`` (incoming weights and bias,
    after the previous layers were aligned), and :func:`scipy.optimize.linear_sum_assignment` finds
    the permutation of least total cost.  With ``sign_flip`` (only valid for odd activations such
    as tanh, where ``-tanh(z) = tanh(-z)``) the cost is ``min(|w_ref_i - w_j|^2, |w_ref_i + w_j|^2)``
    and a flipped neuron has its incoming weights, bias and outgoing weights negated.  The output
    layer is never permuted (its units are the outputs).  Returns ``(aligned, perms, signs)``, one
    entry per hidden layer: ``aligned``'s neuron ``i`` is ``model``'s neuron ``perm[i]`` times
    ``sign[i]``.
    """
    out = copy.deepcopy(model)
    perms, signs = [], []
    for li in _hidden_linears(out):
        nxt = _next_linear(out, li)
        if sign_flip and not all(isinstance(out[j], ODD) for j in range(li + 1, nxt)):
            raise ValueError("sign_flip needs odd activations (tanh or identity) after the layer")
        R, M = neuron_params(reference, li), neuron_params(out, li)
        cost = ((R[:, None, :] - M[None, :, :]) ** 2).sum(-1)
        sgn = np.ones_like(cost)
        if sign_flip:
            flip = ((R[:, None, :] + M[None, :, :]) ** 2).sum(-1)
            sgn = np.where(flip < cost, -1.0, 1.0)
            cost = np.minimum(cost, flip)
        rows, cols = linear_sum_assignment(cost)  # square cost: rows = 0..n-1 in order
        perm, s = cols, sgn[rows, cols]
        st = torch.as_tensor(s, dtype=out[li].weight.dtype, device=out[li].weight.device)
        p = torch.as_tensor(perm, device=out[li].weight.device)
        with torch.no_grad():
            out[li].weight.copy_(out[li].weight[p] * st[:, None])
            out[li].bias.copy_(out[li].bias[p] * st)
            out[nxt].weight.copy_(out[nxt].weight[:, p] * st[None, :])
        perms.append(perm)
        signs.append(s)
    return out, perms, signs


# --- covariance estimators ---------------------------------------------------------------------------


def _layer_io(model: nn.Sequential, layer: int, X: torch.Tensor):
    """The layer's inputs with a column of ones, and the rest of the network as a function of the
    layer's pre-activations."""
    _linear(model, layer)
    with torch.no_grad():
        a = model[:layer](X) if layer > 0 else X
    xt = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype, device=a.device)], 1)
    head = model[layer + 1:]
    return xt, head


def preactivation_derivatives(model: nn.Sequential, X, y, task: str, layer: int, batch_size: int = 4096,
                              chunk: int = 16):
    """Per-sample first and (diagonal) second derivatives of the loss with respect to the
    pre-activations ``z = W a + b`` of the layer: ``(g, h, a~)`` with ``g, h`` of shape
    ``(n_samples, n_neurons)``, ``g[s, i] = dl_s/dz_i``, ``h[s, i] = d^2 l_s / dz_i^2``, and ``a~`` the
    layer's inputs with a column of ones.

    Sample ``s``'s loss depends on its own ``z_s`` only (the model must not mix samples: no batch
    statistics), so the gradient of the *summed* loss with respect to the matrix ``Z`` holds every
    per-sample gradient, and its Hessian-vector product with the ``i``-th unit column of every row
    holds column ``i`` of every per-sample Hessian (``torch.func``: ``grad`` and ``jvp``, ``chunk``
    columns at a time).
    """
    from torch.func import jvp

    xt, head = _layer_io(model, layer, X)
    lin = model[layer]
    nll = task_loss(task)
    params = {k: v.detach() for k, v in head.named_parameters()}
    buffers = {k: v.detach() for k, v in head.named_buffers()}
    was = head.training
    head.eval()
    try:
        with torch.no_grad():
            Z_all = xt[:, :-1] @ lin.weight.detach().T + lin.bias.detach()
        gs, hs = [], []
        for s0 in range(0, len(Z_all), batch_size):
            Z, t = Z_all[s0:s0 + batch_size], y[s0:s0 + batch_size]

            def total(z, t=t):
                out = functional_call(head, (params, buffers), (z,)) if len(head) else z
                return nll(out, t) * len(z)  # the summed per-sample losses

            g = grad(total)
            gs.append(g(Z).detach())
            h = torch.empty_like(Z)
            m = Z.shape[1]
            for c0 in range(0, m, chunk):
                cols = torch.arange(c0, min(c0 + chunk, m), device=Z.device)
                E = torch.zeros(len(cols), *Z.shape, dtype=Z.dtype, device=Z.device)
                E[torch.arange(len(cols)), :, cols] = 1.0
                HE = vmap(lambda e: jvp(g, (Z,), (e,))[1])(E)  # (chunk, batch, m)
                h[:, cols] = HE[torch.arange(len(cols)), :, cols].T.detach()
            hs.append(h)
    finally:
        head.train(was)
    return torch.cat(gs), torch.cat(hs), xt


def neuron_curvature(model: nn.Sequential, X, y, task: str, layer: int, diagonal: bool = False,
                     chunk: int = 32):
    """Per-neuron blocks of ``H`` (mean Hessian of the loss) and ``G`` (mean outer product of the
    per-sample gradients) for the neurons of the layer, each neuron's parameters being
    ``(incoming weights, bias)``.

    Because a neuron's parameters enter the loss only through its pre-activation ``z_i = w_i . a~``
    (``a~`` = layer input with a 1 appended), ``d^2 l / dw_i^2 = (d^2 l / dz_i^2) a~ a~^T`` and
    ``dl / dw_i = (dl / dz_i) a~``; the blocks are therefore ``H_i = mean_s h_si a~_s a~_s^T`` and
    ``G_i = mean_s g_si^2 a~_s a~_s^T``, exact diagonal blocks of the full ``H`` and ``G`` (the tests
    compare them with :func:`paramspace.curvature.hessian` and ``gradient_outer``).  Returns
    ``(H, G)`` of shape ``(n, d, d)``, or their diagonals ``(n, d)`` with ``diagonal=True``.
    """
    g, h, xt = preactivation_derivatives(model, X, y, task, layer)
    xt, g, h = xt.double().cpu(), g.double().cpu(), h.double().cpu()
    n = len(xt)
    if diagonal:
        x2 = xt**2
        return (h.T @ x2 / n).numpy(), ((g**2).T @ x2 / n).numpy()
    Hs, Gs = [], []
    for i in range(0, g.shape[1], chunk):
        Hs.append(torch.einsum("si,sa,sb->iab", h[:, i:i + chunk], xt, xt) / n)
        Gs.append(torch.einsum("si,sa,sb->iab", g[:, i:i + chunk] ** 2, xt, xt) / n)
    return torch.cat(Hs).numpy(), torch.cat(Gs).numpy()


def _pinv_psd(H, rcond: float = 1e-10, damping: float = 0.0):
    """Pseudo-inverse of symmetric matrices (batched) with negative eigenvalues clipped to zero;
    with ``damping > 0``, ``(H + damping I)^-1`` instead."""
    lam, V = np.linalg.eigh(0.5 * (H + np.swapaxes(H, -1, -2)))
    lam = np.clip(lam, 0, None) + damping
    thr = rcond * lam.max(-1, keepdims=True)
    inv = np.where(lam > np.maximum(thr, 0 if damping else 1e-300), 1.0 / np.where(lam > 0, lam, 1.0), 0.0)
    return np.einsum("...ij,...j,...kj->...ik", V, inv, V)


def sandwich(H, G, n: int, damping: float = 0.0, rcond: float = 1e-10):
    """``H^+ G H^+ / n`` (batched over leading axes), with ``H^+`` the pseudo-inverse of ``H``
    (negative eigenvalues clipped) or ``(H + damping I)^-1``."""
    Hi = _pinv_psd(np.asarray(H, float), rcond, damping)
    S = Hi @ np.asarray(G, float) @ Hi / n
    return 0.5 * (S + np.swapaxes(S, -1, -2))


def neuron_covariances(model, X, y, task, layer, method="sandwich", damping: float = 0.0,
                       rcond: float = 1e-10, **kw):
    """Covariance of every neuron of the ``nn.Linear`` at ``layer`` (incoming weights and bias,
    ``d = in_dim + 1``) from the Hessian sandwich ``H^-1 G H^-1 / n`` at the model's parameters,
    ``H`` the mean Hessian and ``G`` the mean gradient outer product of the loss on ``(X, y)``,
    ``n = len(X)``.

    ``method``:

    * ``"sandwich"`` (default): block-diagonal approximation, each neuron's ``d x d`` blocks of ``H``
      and ``G`` (:func:`neuron_curvature`; cheap: one pass of per-sample derivatives with respect to
      the layer's pre-activations).  Returns ``(n_neurons, d, d)``.
    * ``"sandwich_diag"``: the diagonal approximation, ``G_jj / (n H_jj^2)`` per parameter.
      Returns ``(n_neurons, d)`` variances; fast for wide inputs (784-pixel MNIST).
    * ``"sandwich_full"``: the exact ``P x P`` Hessian and ``G`` of all the model's parameters, the
      full sandwich, then each neuron's diagonal block.  Only for small models.  Returns
      ``(n_neurons, d, d)``.

    ``H`` is inverted as a pseudo-inverse with negative eigenvalues clipped (directions the data
    never moves get zero variance), or as ``(H + damping I)^-1`` when ``damping > 0``.
    """
    n = len(X)
    if method in ("sandwich", "sandwich_diag"):
        H, G = neuron_curvature(model, X, y, task, layer, diagonal=method == "sandwich_diag", **kw)
        if method == "sandwich_diag":
            Hd = np.clip(H, 0, None) + damping
            ok = Hd > rcond * Hd.max()
            return np.where(ok, G / (n * np.where(ok, Hd, 1.0) ** 2), 0.0)
        return sandwich(H, G, n, damping, rcond)
    if method == "sandwich_full":
        _linear(model, layer)
        H = curvature.hessian(model, X, y, task).double().cpu().numpy()
        G = curvature.gradient_outer(model, X, y, task).double().cpu().numpy()
        S = sandwich(H, G, n, damping, rcond)
        return np.stack([S[np.ix_(ix, ix)] for ix in neuron_indices(model, layer)])
    raise ValueError(f"method must be 'sandwich', 'sandwich_diag' or 'sandwich_full', got {method!r}")


def neuron_indices(model: nn.Sequential, layer: int) -> list[np.ndarray]:
    """Positions of each neuron's parameters (incoming weights, then bias) in the flat parameter
    vector of :func:`paramspace.curvature.flat_params`."""
    lin = _linear(model, layer)
    offset, offs = 0, {}
    for name, p in model.named_parameters():
        offs[name] = offset
        offset += p.numel()
    w0, b0 = offs[f"{layer}.weight"], offs[f"{layer}.bias"]
    d_in = lin.in_features
    return [np.r_[w0 + i * d_in + np.arange(d_in), b0 + i] for i in range(lin.out_features)]


def hc0_covariance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """White's heteroscedasticity-consistent covariance (HC0) of ordinary least squares with an
    intercept appended last: ``(X~^T X~)^-1 X~^T diag(e^2) X~ (X~^T X~)^-1``."""
    Xt = np.c_[X, np.ones(len(X))]
    beta = np.linalg.lstsq(Xt, y, rcond=None)[0]
    e = y - Xt @ beta
    B = np.linalg.inv(Xt.T @ Xt)
    return B @ (Xt.T * e**2) @ Xt @ B


# --- k-means of neurons ----------------------------------------------------------------------------


def _barycentres(means, covs, labels, k, init=None, n_iter: int = 500):
    """Cluster centres: mean of the means, W2 barycentre of the covariances (warm-started at
    ``init[c]`` when given)."""
    cm = np.stack([means[labels == c].mean(0) for c in range(k)])
    if covs is None:
        return cm, None
    if covs.ndim == 2:
        cc = np.stack([w2_barycenter_diag(means[labels == c], covs[labels == c])[1] for c in range(k)])
    else:
        cc = np.stack([w2_barycenter_ae(means[labels == c], covs[labels == c], n_iter=n_iter,
                                        init=None if init is None else init[c])[1] for c in range(k)])
    return cm, cc


def _distances(means, covs, cm, cc):
    """Squared distances from every neuron to every centre: Euclidean between means when ``covs`` is
    ``None``, else W2 (diagonal or full)."""
    if covs is None:
        return ((means[:, None, :] - cm[None, :, :]) ** 2).sum(-1)
    return w2_pairwise(means, covs, cm, cc)


def _lloyd(means, covs, k, seed, n_init, max_iter, inner_iter: int = 10):
    """Lloyd's algorithm with greedy k-means++ seeding, in the Euclidean distance of the means
    (``covs=None``) or in W2 (diagonal or full covariances); the best of ``n_init`` starts.

    Seeding as in scikit-learn: each new centre is the best, for the k-means potential, of
    ``2 + log k`` neurons drawn with probability proportional to their squared distance to the
    nearest centre so far.  Steps: assign every neuron to its nearest centre; replace every centre by
    its cluster's barycentre (mean of the means; W2 barycentre of the covariances); an empty cluster
    takes the neuron farthest from its centre; stop when the assignment no longer changes.  With full
    covariances each barycentre takes at most ``inner_iter`` fixed-point steps inside the loop,
    warm-started at the previous centre (an inexact update, as in generalised EM), and the final
    centres are converged barycentres."""
    rng = np.random.default_rng(seed)
    n = len(means)
    D0 = _distances(means, covs, means, covs)
    n_local = 2 + int(np.log(k))
    full = covs is not None and covs.ndim == 3
    best = None
    for _ in range(n_init):
        chosen = [int(rng.integers(n))]
        dmin = D0[:, chosen[0]].copy()
        for _ in range(1, k):
            p = dmin / dmin.sum() if dmin.sum() > 0 else np.full(n, 1.0 / n)
            cand = rng.choice(n, size=n_local, p=p)
            pot = [np.minimum(dmin, D0[:, c]).sum() for c in cand]
            nxt = int(cand[int(np.argmin(pot))])
            chosen.append(nxt)
            dmin = np.minimum(dmin, D0[:, nxt])
        cm = means[chosen].copy()
        cc = None if covs is None else covs[chosen].copy()
        labels = None
        for _ in range(max_iter):
            D = _distances(means, covs, cm, cc)
            new = D.argmin(1)
            for c in range(k):  # an empty cluster takes the point farthest from its centre
                if not np.any(new == c):
                    for i in np.argsort(-D[np.arange(n), new]):
                        if np.sum(new == new[i]) > 1:
                            new[i] = c
                            break
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            cm, cc = _barycentres(means, covs, labels, k, init=cc if full else None, n_iter=inner_iter)
        if full:
            cm, cc = _barycentres(means, covs, labels, k, init=cc, n_iter=200)
        inertia = float(_distances(means, covs, cm, cc)[np.arange(n), labels].sum())
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, labels.copy(), cm, cc)
    return best[1], best[2], best[3]


def kmeans_neurons(means, covs, k, metric="euclidean", seed=0, n_init=4, max_iter=100, algorithm="auto"):
    """k-means of neurons. Returns ``(labels, centre_means, centre_covs)``.

    ``means`` ``(n, d)``: the neurons (e.g. :func:`neuron_params`); ``covs``: their covariances,
    full ``(n, d, d)`` or diagonal ``(n, d)`` (variances), or ``None`` (only with the Euclidean
    metric; ``centre_covs`` is then ``None``).

    * ``metric="euclidean"``: :class:`sklearn.cluster.KMeans` on the means; the covariances play no
      part in the clustering; ``centre_covs`` are the W2 barycentres of the clusters' covariances.
    * ``metric="w2"``: clusters of Gaussians in the 2-Wasserstein distance, centres their W2
      barycentres.  Diagonal covariances: W2 between diagonal Gaussians is the Euclidean distance
      between the vectors ``(m, sqrt(s))`` and their barycentre is the mean of those vectors, so
      this *is* Euclidean k-means on ``(m, sqrt(s))`` (exact, and as fast).  Full covariances:
      Lloyd's algorithm with W2 assignments and W2 barycentres (:func:`w2_barycenter_ae`, which
      agrees with POT's), greedy k-means++ seeding; cost grows like ``n k d^3`` per iteration, fine
      for ``d`` up to about 100.

    In both, ``centre_means`` are the plain means of the clusters' means (the mean of a W2
    barycentre is the mean of the means), so the two metrics differ only in the assignment.
    Deterministic given ``seed``: the best of ``n_init`` seeded starts (lowest inertia).

    ``algorithm="lloyd"`` runs every case through this module's own Lloyd iteration (:func:`_lloyd`:
    greedy k-means++ seeding as in scikit-learn, then Lloyd), so that a comparison of the two metrics
    differs in the distance only, not in the implementation; ``"auto"`` (default) uses scikit-learn
    where it applies (Euclidean, diagonal W2) and the Lloyd iteration for full covariances.
    """
    from sklearn.cluster import KMeans

    means = np.asarray(means, float)
    n = len(means)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= number of neurons ({n}), got k = {k}")
    if metric not in ("euclidean", "w2"):
        raise ValueError(f"metric must be 'euclidean' or 'w2', got {metric!r}")
    if covs is not None:
        covs = np.asarray(covs, float)
        if covs.shape not in ((n, means.shape[1]), (n, means.shape[1], means.shape[1])):
            raise ValueError(f"covs must be (n, d) or (n, d, d) with n, d = {means.shape}, got {covs.shape}")
    elif metric == "w2":
        raise ValueError("metric='w2' needs covariances")
    if k == n:
        labels = np.arange(n)
        return labels, means.copy(), None if covs is None else covs.copy()
    if algorithm not in ("auto", "lloyd"):
        raise ValueError(f"algorithm must be 'auto' or 'lloyd', got {algorithm!r}")
    if algorithm == "lloyd" or (metric == "w2" and covs.ndim == 3):
        labels, cm, cc = _lloyd(means, covs if metric == "w2" else None, k, seed, n_init, max_iter)
        if metric == "euclidean" and covs is not None:
            cc = _barycentres(means, covs, labels, k)[1]
        return labels, cm, cc
    feats = means if metric == "euclidean" else np.c_[means, np.sqrt(np.clip(covs, 0, None))]
    import warnings

    from threadpoolctl import threadpool_limits

    # one OpenMP thread: a few hundred points gain nothing from more, and busy-waiting OpenMP threads
    # on a shared CPU made single calls take seconds instead of milliseconds
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="openmp"):
        warnings.simplefilter("ignore")  # duplicate points (fewer distinct than k) are allowed
        km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed).fit(feats)
    labels = km.labels_.astype(int)
    # sklearn leaves no cluster empty, but relabel compactly in case of exact duplicates
    _, labels = np.unique(labels, return_inverse=True)
    kk = labels.max() + 1
    cm, cc = _barycentres(means, covs, labels, kk)
    return labels, cm, cc


# --- Bayesian copies, aligned runs and answers ------------------------------------------------------


def linear_indices(model: nn.Sequential) -> list[int]:
    from .variational import LowRankBayesLinear

    return [i for i, m in enumerate(model) if isinstance(m, (nn.Linear, LowRankBayesLinear))]


def bootstrap_covariances(runs: list[nn.Sequential], layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (``ddof = 1``) of every neuron of ``layer`` over aligned runs:
    ``(n_neurons, d)`` and ``(n_neurons, d, d)``."""
    P = np.stack([neuron_params(r, layer) for r in runs])  # (runs, neurons, d)
    mean = P.mean(0)
    C = P - mean
    return mean, np.einsum("rna,rnb->nab", C, C) / max(len(runs) - 1, 1)


def align_covariances(covs: np.ndarray, q: int, perms: list, signs: list) -> np.ndarray:
    """Neuron covariances of the ``q``-th ``nn.Linear`` of a network, carried through the alignment
    :func:`align_model` returned ``(perms, signs)`` for: the neurons are reordered by the layer's own
    permutation (a negated neuron has the same covariance), and their input coordinates follow the
    previous layer's permutation and signs, ``Sigma'[a, b] = s_a s_b Sigma[p_a, p_b]`` (bias last,
    unchanged)."""
    cov = np.asarray(covs, float)
    if q < len(perms):
        cov = cov[perms[q]]
    if q >= 1:
        p, s = np.r_[perms[q - 1], len(perms[q - 1])], np.r_[signs[q - 1], 1.0]
        cov = cov[:, p][:, :, p] * s[None, :, None] * s[None, None, :]
    return cov


def lowrank_bayes(det: nn.Sequential, rank: int, prior_sigma: float, init_scale: float) -> nn.Sequential:
    """``det`` with every ``nn.Linear`` replaced by a :class:`~paramspace.variational.LowRankBayesLinear`
    whose means are ``det``'s weights and biases (rank capped at the neuron dimension)."""
    from .variational import LowRankBayesLinear

    layers = []
    for m in det:
        if isinstance(m, nn.Linear):
            lr_ = LowRankBayesLinear(m.in_features, m.out_features, rank=min(rank, m.in_features + 1),
                                     prior_sigma=prior_sigma, init_scale=init_scale)
            lr_.set_mean(torch.cat([m.weight.detach(), m.bias.detach()[:, None]], 1).cpu())
            layers.append(lr_)
        else:
            layers.append(copy.deepcopy(m))
    return nn.Sequential(*layers)


def teacher_answers(teacher: nn.Sequential, ds):
    """The training set labelled by the teacher: its predicted classes, or its outputs."""
    from dataclasses import replace

    from .models import predict

    out = predict(teacher, ds.X_train)
    y = out.argmax(1) if ds.task == "classification" else out.reshape(ds.y_train.shape)
    return replace(ds, y_train=y.detach().cpu())


# --- the quality of merged networks over a grid of k --------------------------------------------------


def cluster_sweep(det: nn.Sequential, layer: int, means, covs, ks, ds, seed: int, *, n_init: int = 4,
                  max_iter: int = 100, algorithm: str = "lloyd", metrics=METRICS,
                  keep_labels: bool = False) -> list[dict]:
    """Quality of the merged network for every k and metric (no fine-tuning). ``seconds`` is the time
    to cluster and merge, not to evaluate. With ``algorithm="lloyd"`` (report 1) both metrics run the
    same Lloyd iteration, so that they differ in the distance only. ``keep_labels=True`` adds each
    partition (``labels``, one cluster index per neuron) to its row."""
    from .quality import quality
    from .models import n_params

    full = n_params(det)
    rows = []
    for metric_name in metrics:
        for k in ks:
            t0 = time.perf_counter()
            # the Euclidean partition does not use the covariances (nor their barycentres: only the means merge)
            labels, cm, _ = kmeans_neurons(means, covs if metric_name == "w2" else None, k, metric=metric_name,
                                           seed=seed, algorithm=algorithm, n_init=n_init, max_iter=max_iter)
            merged = merge_neurons(det, layer, labels, cm)
            sec = time.perf_counter() - t0
            rows.append(dict(metric=metric_name, k=int(k), clusters=int(labels.max() + 1),
                             n_params=n_params(merged), param_fraction=n_params(merged) / full,
                             quality=quality(merged, ds.X_test, ds.y_test, ds.task), seconds=sec))
            if keep_labels:
                rows[-1]["labels"] = np.asarray(labels)
    return rows


def partition_agreement(rows: list[dict], a: str = "euclidean", b: str = "w2") -> dict[int, float]:
    """Adjusted Rand index between the partitions of metrics ``a`` and ``b`` at every k, from the rows
    of :func:`cluster_sweep` with ``keep_labels=True`` (1 = the same partition, about 0 = as alike as
    chance)."""
    from sklearn.metrics import adjusted_rand_score

    lab = {(r["metric"], r["k"]): r["labels"] for r in rows}
    return {k: float(adjusted_rand_score(lab[(a, k)], lab[(b, k)])) for (m, k) in lab if m == a and (b, k) in lab}
