"""Report 1 (Nasyrov 2023), metric analysis of the parameter space.

Every neuron of a fully connected layer is the vector of its incoming weights and its bias,
``w_i = (W[i, :], b[i]) in R^d`` with ``d = in_features + 1``, and is treated as a Gaussian
``N(w_bar_i, Sigma_i)``.  This module provides

* the geometry: the squared 2-Wasserstein distance between Gaussians and its barycentre (POT's
  Bures-Wasserstein functions), pairwise distance matrices, and the diagonal closed forms;
* three estimators of ``Sigma_i``: the Hessian sandwich ``H^-1 G H^-1 / n``
  (:func:`neuron_covariances`), bootstrap over resampled data with neurons aligned to a reference
  network (:func:`align_model`, :func:`bootstrap_covariances`), and a Bayesian network with
  low-rank Gaussian neurons (:class:`paramspace.variational.LowRankBayesLinear`);
* k-means of neurons with the Euclidean distance of their means or with the W2 distance of their
  Gaussians (:func:`kmeans_neurons`), and the replacement of a layer's neurons by the cluster
  centres (:func:`merge_neurons`);
* the teacher -> Bayesian student algorithm of the report (:func:`fit_student`) and the
  experiment of the report's page (:func:`run`, :func:`claims`).

Covariance shapes: ``(n, d, d)`` full matrices everywhere; ``(n, d)`` diagonals (variances) in
:func:`kmeans_neurons`, where for diagonal Gaussians
``W2^2 = |m1 - m2|^2 + |sqrt(s1) - sqrt(s2)|^2`` and the barycentre is ``(mean m, (mean sqrt s)^2)``.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import ot
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call, grad, vmap

from . import curvature, pruning
from .train import task_loss

# modules that act elementwise, hence commute with permuting, merging or expanding neurons
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.Identity, nn.Dropout, nn.LeakyReLU,
               nn.Softplus, nn.SiLU)
ODD = (nn.Tanh, nn.Identity)  # odd activations: a neuron and its negative are equivalent


# --- the W2 geometry of Gaussians ------------------------------------------------------------------


def w2_gaussian(m1, S1, m2, S2) -> float:
    """Squared 2-Wasserstein distance between N(m1, S1) and N(m2, S2):
    ``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})``."""
    m1, m2 = np.asarray(m1, float), np.asarray(m2, float)
    S1, S2 = np.atleast_2d(np.asarray(S1, float)), np.atleast_2d(np.asarray(S2, float))
    with np.errstate(invalid="ignore"):
        d = float(ot.gaussian.bures_wasserstein_distance(m1, m2, psd(S1), psd(S2)) ** 2)
    if not np.isfinite(d):  # rank-deficient covariances: POT's sqrt of a round-off eigenvalue -1e-16
        d = float(w2_pairwise(m1[None], S1[None], m2[None], S2[None])[0, 0])
    return d


def w2_barycenter(means, covs, weights=None, n_iter: int = 1000, tol: float = 1e-10):
    """W2 barycentre of Gaussians ``N(means[i], covs[i])`` with ``weights`` (uniform by default,
    normalised): the weighted mean, and the covariance from POT's fixed-point iteration
    ``S = sum_i w_i (S^1/2 S_i S^1/2)^1/2`` (Agueh and Carlier 2011).  Returns ``(mean, cov)``.
    Rank-deficient members, where POT's square roots meet negative round-off, run the same
    iteration here with the eigenvalues clipped at zero."""
    means, covs = np.asarray(means, float), np.asarray(covs, float)
    w = np.full(len(means), 1.0 / len(means)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    if len(means) == 1:
        return means[0].copy(), 0.5 * (covs[0] + covs[0].T)
    with np.errstate(invalid="ignore"):
        m, S = ot.gaussian.bures_wasserstein_barycenter(means, psd(covs), w, method="fixed_point",
                                                        num_iter=n_iter, eps=tol)
    S = np.asarray(S)
    if not np.all(np.isfinite(S)):  # rank-deficient members: the same fixed point, square roots clipped
        S = np.einsum("i,ijk->jk", w, covs)
        for _ in range(n_iter):
            R = _sqrtm_psd(S)
            new = np.einsum("i,ijk->jk", w, _sqrtm_psd(R @ covs @ R))
            done = np.linalg.norm(new - S) <= tol
            S = new
            if done:
                break
    return np.asarray(m), 0.5 * (S + S.T)


def psd(S, rel_jitter: float = 1e-12):
    """Symmetrise and lift round-off: eigenvalues clipped at ``rel_jitter * max(1, mean diagonal)``.

    POT takes ``sqrt`` of the eigenvalues of its inputs; a covariance of rank < d (a bootstrap
    covariance from fewer runs than dimensions, say) has round-off eigenvalues ``-1e-17`` that
    would give NaN.  The lift is far below any covariance this module works with.
    """
    S = np.asarray(S, float)
    S = 0.5 * (S + np.swapaxes(S, -1, -2))
    lam, V = np.linalg.eigh(S)
    floor = rel_jitter * np.maximum(1.0, np.abs(np.trace(S, axis1=-2, axis2=-1)) / S.shape[-1])
    lam = np.maximum(lam, np.asarray(floor)[..., None])
    return np.einsum("...ij,...j,...kj->...ik", V, lam, V)


def _sqrtm_psd(S):
    lam, V = np.linalg.eigh(0.5 * (S + np.swapaxes(S, -1, -2)))
    return np.einsum("...ij,...j,...kj->...ik", V, np.sqrt(np.clip(lam, 0, None)), V)


def w2_pairwise(m1, S1, m2, S2) -> np.ndarray:
    """Matrix of squared W2 distances between ``N(m1[i], S1[i])`` and ``N(m2[j], S2[j])``.

    ``m1`` (n, d), ``m2`` (k, d); ``S1``, ``S2`` either full ``(., d, d)`` or diagonal ``(., d)``
    (both of the same kind).  Full: ``Tr((S2^1/2 S1 S2^1/2)^1/2)`` is the sum of the square roots
    of the eigenvalues of ``S2^1/2 S1 S2^1/2``, computed for all pairs at once (the same value as
    :func:`w2_gaussian`, which the tests check).  Diagonal: the closed form.
    """
    m1, m2 = np.atleast_2d(np.asarray(m1, float)), np.atleast_2d(np.asarray(m2, float))
    S1, S2 = np.asarray(S1, float), np.asarray(S2, float)
    dm = ((m1[:, None, :] - m2[None, :, :]) ** 2).sum(-1)
    if S1.ndim == 2 and S2.ndim == 2:
        r1, r2 = np.sqrt(np.clip(S1, 0, None)), np.sqrt(np.clip(S2, 0, None))
        return dm + ((r1[:, None, :] - r2[None, :, :]) ** 2).sum(-1)
    if S1.ndim != 3 or S2.ndim != 3:
        raise ValueError("covariances must both be full (n, d, d) or both diagonal (n, d)")
    R2 = _sqrtm_psd(S2)
    M = R2[None] @ S1[:, None] @ R2[None]  # (n, k, d, d); matmul, not einsum (100x faster)
    ev = np.linalg.eigvalsh(0.5 * (M + np.swapaxes(M, -1, -2)))
    cross = np.sqrt(np.clip(ev, 0, None)).sum(-1)
    tr1, tr2 = np.trace(S1, axis1=1, axis2=2), np.trace(S2, axis1=1, axis2=2)
    return np.maximum(dm + tr1[:, None] + tr2[None, :] - 2 * cross, 0.0)


def w2_barycenter_ae(means, covs, weights=None, n_iter: int = 500, rtol: float = 1e-8, init=None):
    """The same barycentre as :func:`w2_barycenter`, by the fixed point of Alvarez-Esteban, del
    Barrio, Cuesta-Albertos and Matran (2016),
    ``S <- S^-1/2 (sum_i w_i (S^1/2 S_i S^1/2)^1/2)^2 S^-1/2``, which converges in a few iterations
    where POT's iteration ``S <- sum_i w_i (S^1/2 S_i S^1/2)^1/2`` can need hundreds (used inside
    k-means; the tests check that the two agree).  Starts from ``init`` (a warm start) or from the
    weighted mean of the covariances, lifted by :func:`psd` to be non-singular; stops when the
    relative change is below ``rtol`` or after ``n_iter`` steps."""
    means, covs = np.asarray(means, float), np.asarray(covs, float)
    w = np.full(len(means), 1.0 / len(means)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    if len(means) == 1:
        return means[0].copy(), 0.5 * (covs[0] + covs[0].T)
    S = psd(np.einsum("i,ijk->jk", w, covs) if init is None else init, rel_jitter=1e-12)
    for _ in range(n_iter):
        lam, V = np.linalg.eigh(S)
        lam = np.clip(lam, 1e-300, None)
        R, Ri = (V * np.sqrt(lam)) @ V.T, (V / np.sqrt(lam)) @ V.T
        T = np.einsum("i,ijk->jk", w, _sqrtm_psd(R @ covs @ R))
        new = Ri @ T @ T @ Ri
        new = 0.5 * (new + new.T)
        done = np.linalg.norm(new - S) <= rtol * np.linalg.norm(S)
        S = new
        if done:
            break
    return w @ means, S


def w2_barycenter_diag(means, variances, weights=None):
    """W2 barycentre of diagonal Gaussians: ``(sum w m, (sum w sqrt(s))^2)``."""
    means, variances = np.asarray(means, float), np.asarray(variances, float)
    w = np.full(len(means), 1.0 / len(means)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    return w @ means, (w @ np.sqrt(np.clip(variances, 0, None))) ** 2


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


# --- the report's experiment ---------------------------------------------------------------------------

TASKS = ("mnist", "iris", "hapt")
TASK_LABELS = {"mnist": "MNIST", "iris": "Iris", "hapt": "Accelerometer"}
ESTIMATORS = ("bootstrap", "bayes", "sandwich")
ESTIMATOR_LABELS = {"bootstrap": "bootstrap (aligned runs)", "bayes": "Bayesian, low-rank VI",
                    "sandwich": "Hessian sandwich $H^{-1}GH^{-1}/n$"}
METRICS = ("euclidean", "w2")
METRIC_LABELS = {"euclidean": "Euclidean k-means of the means", "w2": "W2 k-means of the Gaussians"}


def pca_reduce(ds, n_components: int, seed: int = 0):
    """``ds`` with its inputs replaced by their first ``n_components`` principal components (fitted on
    the training inputs), each scaled to unit training variance; ``extra["explained"]`` is the
    fraction of the pixel variance they keep."""
    from dataclasses import replace

    from sklearn.decomposition import PCA

    pca = PCA(n_components, random_state=seed).fit(ds.X_train.numpy())
    Ztr, Zte = pca.transform(ds.X_train.numpy()), pca.transform(ds.X_test.numpy())
    sd = Ztr.std(0)
    return replace(ds, name=f"{ds.name}-pca{n_components}",
                   X_train=torch.tensor(Ztr / sd, dtype=torch.float32),
                   X_test=torch.tensor(Zte / sd, dtype=torch.float32),
                   extra={**ds.extra, "explained": float(pca.explained_variance_ratio_.sum())})


def load_task(name: str, params: dict, seed: int):
    """The data of one task: MNIST (subsampled, PCA-reduced), Iris, or HAPT walking windows."""
    from . import data as D

    if name == "mnist":
        ds = D.load_mnist(n_train=params["mnist_train"], n_test=params["mnist_test"], seed=seed)
        return pca_reduce(ds, params["mnist_pca"], seed)
    if name == "iris":
        return D.load_iris(seed=seed)
    if name == "hapt":
        w = params["hapt_window"]
        return D.hapt_windows(w, w, stride=params["hapt_stride"], seed=seed)
    raise ValueError(f"unknown task {name!r}; valid: {TASKS}")


def task_spec(name: str, params: dict) -> dict:
    """Network and clustering of a task: hidden widths, activation, the index of the clustered
    ``nn.Linear`` in the Sequential, epochs, the k grid, and whether alignment may flip signs."""
    if name == "hapt":  # window -> 3 -> window, tanh; the report clusters the window output neurons
        return dict(widths=[params["hapt_hidden"]], act="tanh", layer=2, epochs=params["hapt_epochs"],
                    ks=params["hapt_ks"], sign_flip=True)
    return dict(widths=[params[f"{name}_hidden"]], act="relu", layer=0, epochs=params[f"{name}_epochs"],
                ks=params[f"{name}_ks"], sign_flip=False)


def out_dim(ds) -> int:
    return ds.n_classes if ds.task == "classification" else int(ds.y_train.reshape(len(ds.y_train), -1).shape[1])


def new_model(ds, spec: dict, seed: int) -> nn.Sequential:
    from .models import mlp
    from .train import seed_everything

    seed_everything(seed)
    return mlp(ds.n_features, spec["widths"], out_dim(ds), spec["act"])


def fit(model, ds, spec: dict, params: dict, seed: int, epochs: int | None = None, regularizer=None):
    """Adam on the mean NLL (+ ``regularizer``) with the report's learning rate and batch size;
    the model comes back on the CPU, in evaluation mode."""
    from .train import train

    hist = train(model, ds, epochs=epochs or spec["epochs"], lr=params["lr"], batch_size=params["batch_size"],
                 seed=seed, device=params["device"], progress=False, regularizer=regularizer)
    model.cpu().eval()
    return hist


def linear_indices(model: nn.Sequential) -> list[int]:
    from .variational import LowRankBayesLinear

    return [i for i, m in enumerate(model) if isinstance(m, (nn.Linear, LowRankBayesLinear))]


def resample(ds, rng):
    """A bootstrap resample of the training set (rows drawn with replacement); test set unchanged."""
    from dataclasses import replace

    idx = torch.as_tensor(rng.integers(0, len(ds.X_train), len(ds.X_train)))
    return replace(ds, X_train=ds.X_train[idx], y_train=ds.y_train[idx])


def bootstrap_runs(init: nn.Sequential, reference: nn.Sequential, ds, spec: dict, params: dict, seed: int,
                   n_models: int, progress: bool = False):
    """``n_models`` copies of ``init`` (the reference's initial weights) trained on bootstrap
    resamples of the training set, each aligned to ``reference`` (:func:`align_model`).

    Returns ``(runs, moved)``: the aligned networks and the fraction of hidden neurons that the
    alignment permuted or negated (0 when every run kept its neurons in place)."""
    from tqdm import tqdm

    rng = np.random.default_rng([seed, 1])
    runs, moved, total = [], 0, 0
    for b in tqdm(range(n_models), desc="bootstrap", disable=not progress, leave=False):
        m = copy.deepcopy(init)
        fit(m, resample(ds, rng), spec, params, seed + 1000 + b)
        aligned, perms, signs = align_model(reference, m, sign_flip=spec["sign_flip"])
        moved += sum(int(np.sum((p != np.arange(len(p))) | (s < 0))) for p, s in zip(perms, signs))
        total += sum(len(p) for p in perms)
        runs.append(aligned)
    return runs, moved / max(total, 1)


def bootstrap_covariances(runs: list[nn.Sequential], layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (``ddof = 1``) of every neuron of ``layer`` over aligned runs:
    ``(n_neurons, d)`` and ``(n_neurons, d, d)``."""
    P = np.stack([neuron_params(r, layer) for r in runs])  # (runs, neurons, d)
    mean = P.mean(0)
    C = P - mean
    return mean, np.einsum("rna,rnb->nab", C, C) / max(len(runs) - 1, 1)


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


def bayes_posterior(init: nn.Sequential, reference: nn.Sequential, ds, spec: dict, params: dict, seed: int):
    """Estimator (2): a low-rank Bayesian copy of ``init`` trained by variational inference on the data
    (prior ``N(0, prior_sigma^2 I)`` per neuron, negative ELBO per example ``NLL + KL / n``), then
    aligned to ``reference``.  Returns ``(bayes, {layer: (means, covs)}, moved)``."""
    from .variational import kl_regularizer, to_deterministic

    bayes = lowrank_bayes(init, params["rank"], params["prior_sigma"], params["init_sigma"])
    fit(bayes, ds, spec, params, seed + 2000, regularizer=kl_regularizer(len(ds.X_train), params["kl_weight"]))
    det = to_deterministic(bayes)
    aligned, perms, signs = align_model(reference, det, sign_flip=spec["sign_flip"])
    out = {}
    for q, li in enumerate(linear_indices(bayes)):
        cov = align_covariances(bayes[li].covariance().detach().double().numpy(), q, perms, signs)
        out[li] = (neuron_params(aligned, li), cov)
    moved = sum(int(np.sum((p != np.arange(len(p))) | (s < 0))) for p, s in zip(perms, signs))
    return bayes, out, moved / max(sum(len(p) for p in perms), 1)


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


def teacher_answers(teacher: nn.Sequential, ds):
    """The training set labelled by the teacher: its predicted classes, or its outputs."""
    from dataclasses import replace

    from .models import predict

    out = predict(teacher, ds.X_train)
    y = out.argmax(1) if ds.task == "classification" else out.reshape(ds.y_train.shape)
    return replace(ds, y_train=y.detach().cpu())


def fit_student(teacher: nn.Sequential, prior_covs: dict, ds, spec: dict, params: dict, seed: int):
    """Algorithm 1 of the report: the teacher's posterior becomes the student's prior.

    The student has the teacher's architecture with low-rank Gaussian neurons
    (:func:`lowrank_bayes`, means started at the teacher's); the prior of neuron ``i`` of layer
    ``l`` is ``N(w_teacher_i, Sigma_i + eps I)``, ``Sigma_i`` from ``prior_covs[l]`` and ``eps`` =
    ``prior_jitter`` times the layer's mean variance (so that the prior is non-singular).  The student
    is trained on the teacher's answers (:func:`teacher_answers`) by minimising
    ``KL(q || prior) / n + NLL`` (per example, ``kl_weight`` = 1 is the ELBO).
    """
    from .variational import kl_regularizer

    student = lowrank_bayes(teacher, params["rank"], params["prior_sigma"], params["init_sigma"])
    for li in linear_indices(student):
        S = np.asarray(prior_covs[li], float)
        scale = float(np.mean(np.trace(S, axis1=1, axis2=2))) / S.shape[-1]
        student[li].set_prior(neuron_params(teacher, li), S, jitter=max(params["prior_jitter"] * scale, 1e-12))
    sds = teacher_answers(teacher, ds)
    hist = fit(student, sds, spec, params, seed + 3000,
               regularizer=kl_regularizer(len(ds.X_train), params["kl_weight"]))
    return student, hist


def teacher_posterior(method: str, init, teacher, ds, spec: dict, params: dict, seed: int) -> dict:
    """Per-neuron covariances of every layer of ``teacher`` by ``method`` (one of :data:`ESTIMATORS`)."""
    lins = linear_indices(teacher)
    if method == "sandwich":
        return {li: neuron_covariances(teacher, ds.X_train, ds.y_train, ds.task, li) for li in lins}
    if method == "bootstrap":
        runs, _ = bootstrap_runs(init, teacher, ds, spec, params, seed, params["n_bootstrap"])
        return {li: bootstrap_covariances(runs, li)[1] for li in lins}
    if method == "bayes":
        _, post, _ = bayes_posterior(init, teacher, ds, spec, params, seed)
        return {li: post[li][1] for li in lins}
    raise ValueError(f"method must be one of {ESTIMATORS}, got {method!r}")


def half_k(n_in: int, width: int, n_out: int, fraction: float, last: bool) -> int:
    """The largest k whose merged network has at most ``fraction`` of the parameters of the full
    ``n_in -> width -> n_out`` network (clustered layer: the hidden one, or the output one if ``last``)."""
    if last:  # output layer of width neurons with n_in inputs; the hidden part stays
        raise ValueError("half_k is for a clustered hidden layer")
    full = (n_in + 1) * width + (width + 1) * n_out
    ks = [k for k in range(1, width + 1) if (n_in + 1) * k + (k + 1) * n_out <= fraction * full]
    return max(ks) if ks else 1


def sweep_ks(task: str, ds, spec: dict, params: dict) -> list[int]:
    """The k grid of a task, with the claims' k and the full width added."""
    width = spec["widths"][0] if spec["layer"] == 0 else out_dim(ds)
    ks = set(k for k in spec["ks"] if k <= width) | {width}
    if task == "iris":
        ks.add(half_k(ds.n_features, width, out_dim(ds), params["iris_param_fraction"], False))
    if task == "hapt":
        ks.add(min(params["hapt_claim_k"], width))
    return sorted(ks)


def cluster_sweep(det: nn.Sequential, layer: int, means, covs, ks, ds, seed: int, *, n_init: int = 4,
                  max_iter: int = 100, algorithm: str = "lloyd", metrics=METRICS) -> list[dict]:
    """Quality of the merged network for every k and metric (no fine-tuning). ``seconds`` is the time
    to cluster and merge, not to evaluate. With ``algorithm="lloyd"`` (report 1) both metrics run the
    same Lloyd iteration, so that they differ in the distance only."""
    from .metrics import quality
    from .models import n_params

    full = n_params(det)
    rows = []
    for metric_name in metrics:
        for k in ks:
            t0 = time.perf_counter()
            labels, cm, _ = kmeans_neurons(means, covs, k, metric=metric_name, seed=seed, algorithm=algorithm,
                                           n_init=n_init, max_iter=max_iter)
            merged = merge_neurons(det, layer, labels, cm)
            sec = time.perf_counter() - t0
            rows.append(dict(metric=metric_name, k=int(k), clusters=int(labels.max() + 1),
                             n_params=n_params(merged), param_fraction=n_params(merged) / full,
                             quality=quality(merged, ds.X_test, ds.y_test, ds.task), seconds=sec))
    return rows


def check_params(params: dict) -> None:
    from .profiles import ProfileError

    if params["hapt_claim_k"] > params["hapt_window"]:
        raise ProfileError("metric_analysis: hapt_claim_k must not exceed hapt_window (the number of output neurons)")
    if params["n_ellipses"] > params["hapt_window"]:
        raise ProfileError("metric_analysis: n_ellipses must not exceed hapt_window")
    if params["rank"] > params["hapt_hidden"] + 1:
        raise ProfileError("metric_analysis: rank must not exceed hapt_hidden + 1 (the output neurons' dimension)")


def configure_threads(params: dict) -> int:
    """``cpu_threads`` for torch and, when it is not 0, also for the BLAS/LAPACK and OpenMP pools of
    NumPy, SciPy and scikit-learn (many small eigendecompositions in W2 k-means); returns torch's
    thread count.  Call once, before any compute."""
    from threadpoolctl import threadpool_limits

    from .train import set_cpu_threads

    if params["cpu_threads"] > 0:
        threadpool_limits(limits=params["cpu_threads"])
    return set_cpu_threads(params["cpu_threads"])


def run(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The quality-vs-parameters experiment: for every task and seed, train the teacher, estimate
    its posterior (``teacher_posterior``), train the Bayesian student on its answers (Algorithm 1),
    and cluster the student's neurons with both metrics over the k grid.

    Returns ``curves`` (dataset, seed, metric, k, clusters, n_params, param_fraction, quality,
    seconds) and ``models`` (dataset, seed, teacher and student quality, sizes, times)."""
    from tqdm import tqdm

    from .metrics import quality
    from .models import n_params
    from .variational import to_deterministic

    check_params(params)
    curves, models = [], []
    jobs = [(t, params["seed"] + s) for t in params["datasets"] for s in range(params["n_seeds"])]
    for task, seed in tqdm(jobs, desc="data set x seed", disable=not progress):
        t0 = time.perf_counter()
        ds = load_task(task, params, seed)
        spec = task_spec(task, params)
        init = new_model(ds, spec, seed)
        teacher = copy.deepcopy(init)
        fit(teacher, ds, spec, params, seed)
        t_teacher = time.perf_counter() - t0
        covs = teacher_posterior(params["teacher_posterior"], init, teacher, ds, spec, params, seed)
        t_post = time.perf_counter() - t0 - t_teacher
        student, _ = fit_student(teacher, covs, ds, spec, params, seed)
        det = to_deterministic(student)
        layer = spec["layer"]
        means = neuron_params(det, layer)
        scov = student[layer].covariance().detach().double().numpy()
        rows = cluster_sweep(det, layer, means, scov, sweep_ks(task, ds, spec, params), ds, seed,
                             n_init=params["n_init"], max_iter=params["max_iter"])
        curves += [dict(dataset=task, seed=seed, **r) for r in rows]
        models.append(dict(dataset=task, seed=seed, n_params=n_params(det), neurons=len(means), dim=means.shape[1],
                           teacher_quality=quality(teacher, ds.X_test, ds.y_test, ds.task),
                           student_quality=quality(det, ds.X_test, ds.y_test, ds.task),
                           student_sd=float(np.sqrt(np.trace(scov, axis1=1, axis2=2) / scov.shape[-1]).mean()),
                           teacher_sd=float(np.sqrt(np.trace(covs[layer], axis1=1, axis2=2)
                                                    / covs[layer].shape[-1]).mean()),
                           mean_spread=float(np.sqrt(((means - means.mean(0)) ** 2).sum(1).mean() / means.shape[1])),
                           train_s=t_teacher, posterior_s=t_post, total_s=time.perf_counter() - t0,
                           explained=ds.extra.get("explained", float("nan"))))
    return {"curves": pd.DataFrame(curves), "models": pd.DataFrame(models)}


def recover(model: nn.Sequential, signal: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """Autoregressive recovery of a series: every block of ``n_out`` samples is predicted from the
    ``n_in`` true samples before it (one step ahead, block by block).  Returns an array like
    ``signal`` with NaN where nothing was predicted (the first ``n_in`` samples and a short tail)."""
    from .models import predict

    starts = np.arange(n_in, len(signal) - n_out + 1, n_out)
    X = torch.tensor(np.stack([signal[t - n_in:t] for t in starts]), dtype=torch.float32)
    Y = predict(model, X).numpy()
    out = np.full(len(signal), np.nan)
    for t, y in zip(starts, Y):
        out[t:t + n_out] = y
    return out


def circle_stats(means: np.ndarray) -> dict:
    """How much the neuron means look like points along a circle: in the plane of their first two
    principal components, the share of their variance that plane holds, the number of turns the
    sequence of neurons (in index order) makes around the centre, and the coefficient of variation
    of the radius."""
    C = means - means.mean(0)
    U, s, Vt = np.linalg.svd(C, full_matrices=False)
    P = C @ Vt[:2].T
    ang = np.unwrap(np.arctan2(P[:, 1], P[:, 0]))
    r = np.hypot(P[:, 0], P[:, 1])
    return dict(var2=float((s[:2] ** 2).sum() / (s**2).sum()), turns=float(abs(ang[-1] - ang[0]) / (2 * np.pi)),
                radius_cv=float(r.std() / r.mean()), basis=Vt[:2], centre=means.mean(0))


def ellipse_axes(cov2: np.ndarray) -> tuple[float, float]:
    lam = np.clip(np.linalg.eigvalsh(cov2), 0, None)
    return float(np.sqrt(lam[-1])), float(np.sqrt(lam[0]))


def estimator_comparison(params: dict, progress: bool = True) -> dict:
    """The accelerometer experiment of the report, for ``params["seed"]``: the window -> 3 -> window
    network (the teacher) and a small ``hapt_small_in -> 3 -> hapt_small_out`` one, their recovered
    series, and the three covariance estimates of the output-layer neurons.

    Bootstrap and Bayesian runs start from the teacher's initial weights and are aligned to the
    trained teacher; the sandwich is evaluated at the teacher.  Returns a dict with the data sets,
    the networks, ``means``/``covs`` per estimator (``(n, d)``, ``(n, d, d)``), the alignment
    statistics, the wall time of each estimator and the circle statistics of the teacher's neurons.
    """
    from .metrics import quality

    check_params(params)
    seed = params["seed"]
    out = {"seconds": {}}
    ds = load_task("hapt", params, seed)
    spec = task_spec("hapt", params)
    layer = spec["layer"]
    init = new_model(ds, spec, seed)
    teacher = copy.deepcopy(init)
    t0 = time.perf_counter()
    fit(teacher, ds, spec, params, seed)
    out["seconds"]["teacher"] = time.perf_counter() - t0
    from . import data as D

    small_ds = D.hapt_windows(params["hapt_small_in"], params["hapt_small_out"], stride=params["hapt_stride"],
                              seed=seed)
    small = new_model(small_ds, spec, seed)
    fit(small, small_ds, spec, params, seed)
    means, covs = {}, {}
    t0 = time.perf_counter()
    runs, moved_boot = bootstrap_runs(init, teacher, ds, spec, params, seed, params["n_bootstrap"], progress)
    means["bootstrap"], covs["bootstrap"] = bootstrap_covariances(runs, layer)
    out["seconds"]["bootstrap"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, post, moved_bayes = bayes_posterior(init, teacher, ds, spec, params, seed)
    means["bayes"], covs["bayes"] = post[layer]
    out["seconds"]["bayes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    means["sandwich"] = neuron_params(teacher, layer)
    covs["sandwich"] = neuron_covariances(teacher, ds.X_train, ds.y_train, ds.task, layer)
    out["seconds"]["sandwich"] = time.perf_counter() - t0
    seg = max(ds.extra["test_segments"], key=len)
    out.update(ds=ds, small_ds=small_ds, teacher=teacher, small=small, means=means, covs=covs, layer=layer,
               moved={"bootstrap": moved_boot, "bayes": moved_bayes},
               quality={"teacher": quality(teacher, ds.X_test, ds.y_test, ds.task),
                        "small": quality(small, small_ds.X_test, small_ds.y_test, small_ds.task)},
               segment=seg,
               recovered={"teacher": recover(teacher, seg, params["hapt_window"], params["hapt_window"]),
                          "small": recover(small, seg, params["hapt_small_in"], params["hapt_small_out"])},
               circle=circle_stats(means["sandwich"]))
    return out


def estimator_table(comp: dict, n: int) -> pd.DataFrame:
    """Per estimator, over all output neurons: median standard deviation ``sqrt(tr(Sigma)/d)``; for
    the first ``n`` neurons, projected on the plane of the ellipse figure, the median ratio of the
    minor to the major axis (1 = a circle) and the median ``|cos|`` of the angle between the major
    axis and the curve of neuron means (1 = the ellipse is stretched along the curve); and the median
    Bures distance (the covariance part of W2) to each estimator's covariance of the same neuron."""
    basis, centre = comp["circle"]["basis"], comp["circle"]["centre"]
    curve = (comp["means"]["sandwich"] - centre) @ basis.T
    tang = np.gradient(curve, axis=0)
    rows = []
    for e in ESTIMATORS:
        C = comp["covs"][e]
        sd = np.sqrt(np.clip(np.trace(C, axis1=1, axis2=2), 0, None) / C.shape[-1])
        ratio, along = [], []
        for i, S in enumerate(C[:n]):
            lam, V = np.linalg.eigh(basis @ S @ basis.T)
            lam = np.clip(lam, 0, None)
            ratio.append(np.sqrt(lam[0] / lam[-1]) if lam[-1] > 0 else np.nan)
            along.append(abs(V[:, -1] @ tang[i]) / max(np.linalg.norm(tang[i]), 1e-300))
        row = {"estimator": e, "median sd": float(np.median(sd)), "axis ratio": float(np.nanmedian(ratio)),
               "major axis along curve |cos|": float(np.median(along))}
        for f in ESTIMATORS:
            z = np.zeros((1, C.shape[-1]))
            Cf = comp["covs"][f]
            row[f"Bures dist. to {f}"] = float(np.median(
                [np.sqrt(w2_pairwise(z, C[i][None], z, Cf[i][None])[0, 0]) for i in range(len(C))]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("estimator")


def auc_table(curves: pd.DataFrame, clip_min: float | None = 0.0) -> pd.DataFrame:
    """Area under quality vs fraction of parameters kept, per (dataset, seed, metric), normalised by
    the range of the fraction; quality floored at ``clip_min`` (R^2 can fall far below 0); see
    :func:`paramspace.pruning.auc_table`."""
    return pruning.auc_table(curves, "param_fraction", "metric", clip_min)


def describe(params: dict) -> str:
    parts = []
    for t in params["datasets"]:
        if t == "mnist":
            parts.append(f"MNIST ({params['mnist_train']} training / {params['mnist_test']} test images, "
                         f"{params['mnist_pca']} principal components -> {params['mnist_hidden']} ReLU -> 10, "
                         f"{params['mnist_epochs']} epochs)")
        elif t == "iris":
            parts.append(f"Iris (4 -> {params['iris_hidden']} ReLU -> 3, {params['iris_epochs']} epochs)")
        else:
            w = params["hapt_window"]
            parts.append(f"accelerometer ({w} -> {params['hapt_hidden']} tanh -> {w}, {params['hapt_epochs']} epochs)")
    return (f"{'; '.join(parts)}; Adam (lr {params['lr']}, batch {params['batch_size']}); teacher posterior: "
            f"{params['teacher_posterior']}; student neurons of rank {params['rank']} + diagonal; "
            f"{params['n_bootstrap']} bootstrap runs; {params['n_seeds']} seeds")


def claims(curves: pd.DataFrame, params: dict) -> list:
    """The report's claims against our measurements (see :mod:`paramspace.claims`)."""
    from .claims import Claim, mean_interval, paired_claim, verdict_boolean

    out = []
    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    tol, much = params["no_worse_tol"], params["much_better"]
    best = None
    for d in params["datasets"]:
        diff = (auc.loc[d]["w2"] - auc.loc[d]["euclidean"]).to_numpy()
        seeds = auc.loc[d].index.to_numpy()
        out.append(paired_claim(
            f"{TASK_LABELS[d]}: W2 clustering is no worse than Euclidean (per seed: area under quality vs "
            f"parameters kept, W2 minus Euclidean, plus the tolerance {tol:g})",
            "no worse (report's figure)", diff + tol, seeds, params["profile"], fmt="{:+.4f}"))
        m, lo, _ = mean_interval(diff)
        if best is None or m > best[1]:
            best = (d, m, lo)
    holds = best is not None and best[1] > much and best[2] > 0
    out.append(Claim(
        f"W2 clustering is sometimes much better than Euclidean: on some data set the mean area difference "
        f"exceeds {much:g} with its 95% interval above 0",
        "much better on some data set", f"largest mean difference {best[1]:+.4f} ({TASK_LABELS[best[0]]})",
        verdict_boolean(holds), [], None, params["profile"], [], "exact"))
    if "iris" in params["datasets"]:
        sub = curves[(curves.dataset == "iris") & (curves.metric == "w2")]
        pick = sub[sub.param_fraction <= params["iris_param_fraction"] + 1e-12]
        acc = pick.sort_values("param_fraction").groupby("seed").tail(1).set_index("seed")["quality"]
        frac = float(pick.groupby("seed")["param_fraction"].max().mean())
        out.append(paired_claim(
            f"Iris: with at most {params['iris_param_fraction']:.0%} of the parameters (W2 clustering; here "
            f"{frac:.0%}), accuracy stays above {params['iris_min_accuracy']:.0%} (per seed: accuracy minus "
            f"{params['iris_min_accuracy']:g})",
            f"> {params['iris_min_accuracy']:.0%} at half the parameters", acc.to_numpy() - params["iris_min_accuracy"],
            acc.index.to_numpy(), params["profile"]))
    if "hapt" in params["datasets"]:
        sub = curves[(curves.dataset == "hapt") & (curves.metric == "w2")]
        full = sub[sub.k == sub.k.max()].set_index("seed")["quality"]
        k16 = sub[sub.k == params["hapt_claim_k"]].set_index("seed")["quality"]
        drop = (full - k16).loc[full.index]
        out.append(paired_claim(
            f"Accelerometer: the {params['hapt_window']} output neurons compress to {params['hapt_claim_k']} "
            f"(W2 clustering) losing at most {params['compress_tol']:g} of test R² (per seed: the tolerance "
            f"minus the R² lost)",
            f"{params['hapt_window']} -> {params['hapt_claim_k']} neurons", params["compress_tol"] - drop.to_numpy(),
            drop.index.to_numpy(), params["profile"], fmt="{:+.4f}"))
    return out


def summary_markdown(curves: pd.DataFrame, models: pd.DataFrame, ledger: list, params: dict) -> str:
    """Bullet points for the discussion, generated from the measurements and the ledger: per task the
    areas and the ratio of posterior spread to the spread of the neuron means, the verdict counts, and
    for every claim that is not reproduced what was measured and the likely reason."""
    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    lines, ratio, diffs = [], {}, {}
    for d in params["datasets"]:
        a = auc.loc[d]
        diff = a["w2"] - a["euclidean"]
        diffs[d] = float(diff.mean())
        mm = models[models.dataset == d]
        ratio[d] = float(mm.student_sd.mean() / mm.mean_spread.mean())
        lines.append(
            f"* **{TASK_LABELS[d]}**: area under quality vs parameters kept {a['euclidean'].mean():.4f} (Euclidean) "
            f"and {a['w2'].mean():.4f} (W2), difference {diff.mean():+.4f} (W2 better on {int((diff > 0).sum())}, "
            f"equal on {int((diff == 0).sum())}, worse on {int((diff < 0).sum())} of {len(diff)} seeds). "
            f"Student neurons: posterior sd {mm.student_sd.mean():.2g} per coordinate against a spread of "
            f"{mm.mean_spread.mean():.2g} of the neuron means (ratio {ratio[d]:.2g}); test quality of the teacher "
            f"{mm.teacher_quality.mean():.3f}, of the student {mm.student_quality.mean():.3f}.")
    counts = {v: sum(c.verdict == v for c in ledger) for v in ("reproduced", "partly", "not reproduced")}
    lines.append(f"* **Verdicts**: {counts['reproduced']} reproduced, {counts['partly']} partly, "
                 f"{counts['not reproduced']} not reproduced, of {len(ledger)} claims.")
    for c in ledger:
        if c.verdict == "reproduced":
            continue
        name = c.claim.split(" (per seed")[0]
        why = ""
        task = next((d for d in params["datasets"] if c.claim.startswith(TASK_LABELS[d] + ": W2")), None)
        if task is not None:
            why = (f"W2 minus Euclidean area {diffs[task]:+.4f}. Here the posterior spread is {ratio[task]:.2g} of the "
                   "spread of the means, so the covariance term of W2 can change which neurons are grouped; the merged "
                   "network keeps only the means, so grouping by covariance as well as by mean helps only where neurons "
                   "with alike covariances also compute alike functions.")
            if c.verdict == "partly":
                why += " The mean is in the claim's direction but the interval over seeds reaches zero."
        elif c.rule == "exact":
            best = max(diffs, key=diffs.get)
            why = (f"The largest mean gain of W2 is {diffs[best]:+.4f} ({TASK_LABELS[best]}); the threshold is "
                   f"{params['much_better']:g}. Where the posterior spread is small next to the spread of the means "
                   f"(ratios: {', '.join(f'{TASK_LABELS[d]} {ratio[d]:.2g}' for d in params['datasets'])}), W2 and "
                   "Euclidean distances nearly coincide and so do the clusterings.")
        elif c.claim.startswith("Iris"):
            why = "The accuracy of the W2-merged network at about half the parameters is below the threshold on some seeds."
        elif c.claim.startswith("Accelerometer"):
            sub = curves[(curves.dataset == "hapt") & (curves.metric == "w2")]
            full = sub[sub.k == sub.k.max()].quality.mean()
            kq = sub[sub.k == params["hapt_claim_k"]].quality.mean()
            why = (f"With {params['hapt_claim_k']} clusters the test R² is {kq:.3f} against {full:.3f} with all "
                   f"{int(sub.k.max())} output neurons (a loss of {full - kq:.4f}, {(full - kq) / max(full, 1e-12):.1%} of the "
                   f"full network's R², tolerance {params['compress_tol']:g}); the curve of the figure shows how many "
                   "clusters stay within the tolerance.")
        lines.append(f"* *{name}*: **{c.verdict}**; measured {c.our_value}. {why}")
    return "\n".join(lines)


def circle_markdown(comp: dict, n: int) -> str:
    """A comment on the 'circle' structure, from the teacher's output neurons and the estimators."""
    c = comp["circle"]
    tab = estimator_table(comp, n)
    ratios = ", ".join(f"{e} {r:.2f}" for e, r in tab["axis ratio"].items())
    along = ", ".join(f"{e} {r:.2f}" for e, r in tab["major axis along curve |cos|"].items())
    sds = tab["median sd"]
    return (f"In the plane of their first two principal components (which hold {c['var2']:.0%} of the variance of the "
            f"{len(comp['means']['sandwich'])} output-neuron means), the neuron means, taken in the order of the output "
            f"samples they predict, turn {c['turns']:.1f} times around their centre, at a radius that varies by "
            f"{c['radius_cv']:.0%} (coefficient of variation): the output neurons lie on a closed curve, a circle traversed "
            f"about once per {len(comp['means']['sandwich']) / max(c['turns'], 1e-9) / comp['ds'].extra['rate_hz']:.2f} s of predicted signal. "
            f"Median ratio of the minor to the major axis of the first {n} ellipses (1 = a circle): {ratios}; "
            f"median |cos| between the major axis and the curve (1 = stretched along it): {along}. The median standard "
            f"deviations differ by a factor {sds.max() / max(sds.min(), 1e-300):.1f} between the largest "
            f"({sds.idxmax()}) and the smallest ({sds.idxmin()}) estimate."
            + "".join(f" The {e} ellipses are elongated along the curve (axis ratio {r['axis ratio']:.2f}): under this "
                      "estimate the neurons move mostly along the circle, i.e. the phase of the step cycle a neuron "
                      "encodes is less certain than its distance from the centre."
                      for e, r in tab.iterrows()
                      if r["axis ratio"] < 0.5 and r["major axis along curve |cos|"] > 0.9))
