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
    if not np.all(np.isfinite(S)):
        S = psd(np.einsum("i,ijk->jk", w, covs), rel_jitter=1e-12)
    for _ in range(n_iter):
        lam, V = np.linalg.eigh(S)
        # rank-deficient members (a bootstrap covariance from fewer runs than dimensions): keep S^-1/2 finite
        lam = np.clip(lam, max(1e-12 * float(lam.max()), 1e-300), None)
        R, Ri = (V * np.sqrt(lam)) @ V.T, (V / np.sqrt(lam)) @ V.T
        T = np.einsum("i,ijk->jk", w, _sqrtm_psd(R @ covs @ R))
        new = Ri @ T @ T @ Ri
        new = 0.5 * (new + new.T)
        done = np.linalg.norm(new - S) <= rtol * np.linalg.norm(S)
        if not np.all(np.isfinite(new)):  # fall back to the iteration with clipped square roots
            return w2_barycenter(means, covs, w, n_iter=n_iter)
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
CLUSTER_COVS = ("bootstrap", "bayes", "student")
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
        ds = D.load_iris(seed=seed)
        return pca_reduce(ds, params["iris_pca"], seed) if params.get("iris_pca", 0) else ds
    if name == "hapt":
        w = params["hapt_window"]
        return D.hapt_windows(w, w, stride=params["hapt_stride"], seed=seed)
    raise ValueError(f"unknown task {name!r}; valid: {TASKS}")


def task_spec(name: str, params: dict, hidden: int | None = None) -> dict:
    """Network and clustering of a task: hidden widths, activation, the index of the clustered
    ``nn.Linear`` in the Sequential, epochs, the k grid, and whether alignment may flip signs.

    The accelerometer network is window -> ``hidden`` tanh -> window with its output neurons clustered;
    ``hidden`` defaults to ``hapt_curve_hidden`` (the quality-vs-parameters figure, neuron dimension
    ``hapt_curve_hidden + 1``); the ellipse figures pass ``hapt_hidden`` (the report's 100-3-100)."""
    if name == "hapt":
        h = hidden if hidden is not None else params.get("hapt_curve_hidden", params["hapt_hidden"])
        return dict(widths=[h], act="tanh", layer=2, epochs=params["hapt_epochs"], ks=params["hapt_ks"],
                    sign_flip=True)
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


def check_params(params: dict) -> None:
    from .reports import ProfileError

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


def clustering_covariances(mode: str, init, teacher, ds, spec: dict, params: dict, seed: int):
    """The network whose neurons are clustered and the covariances they are clustered with.

    ``mode`` (:data:`CLUSTER_COVS`):

    * ``"bootstrap"`` (the report's): the network trained on the full training set and, per neuron of
      the clustered layer, the sample covariance over ``n_bootstrap`` aligned bootstrap runs;
    * ``"bayes"``: a low-rank Bayesian network trained by VI on the data (estimator 2), its mean
      network and its posterior covariances;
    * ``"student"``: Algorithm 1, the Bayesian student trained on the teacher's answers with the
      teacher's posterior (``teacher_posterior``) as its prior, its mean network and posterior.

    Returns ``(det, means, covs, extra)``: the deterministic network, the clustered layer's neuron
    means ``(n, d)`` and covariances ``(n, d, d)``, and ``extra`` (the teacher's posterior sd)."""
    from .variational import to_deterministic

    layer = spec["layer"]
    if mode == "bootstrap":
        runs, _ = bootstrap_runs(init, teacher, ds, spec, params, seed, params["n_bootstrap"])
        covs = bootstrap_covariances(runs, layer)[1]
        return teacher, neuron_params(teacher, layer), covs, {}
    if mode == "bayes":
        bayes, _, _ = bayes_posterior(init, teacher, ds, spec, params, seed)
        det = to_deterministic(bayes)
        return det, neuron_params(det, layer), bayes[layer].covariance().detach().double().numpy(), {}
    if mode == "student":
        tcovs = teacher_posterior(params["teacher_posterior"], init, teacher, ds, spec, params, seed)
        student, _ = fit_student(teacher, tcovs, ds, spec, params, seed)
        det = to_deterministic(student)
        tc = tcovs[layer]
        return det, neuron_params(det, layer), student[layer].covariance().detach().double().numpy(), \
            {"teacher_sd": float(np.sqrt(np.clip(np.trace(tc, axis1=1, axis2=2), 0, None) / tc.shape[-1]).mean())}
    raise ValueError(f"cluster_cov must be one of {CLUSTER_COVS}, got {mode!r}")


def run(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The quality-vs-parameters experiment: for every task and seed, train the network, estimate the
    covariances of the clustered layer's neurons (``cluster_cov``, :func:`clustering_covariances`), and
    cluster the neurons with both metrics over the k grid (no fine-tuning).

    Returns ``curves`` (dataset, seed, metric, k, clusters, n_params, param_fraction, quality,
    seconds, ari: adjusted Rand index between the Euclidean and the W2 partition at that k) and
    ``models`` (dataset, seed, quality of the trained and of the clustered network, sizes, the mean sd
    of the clustering covariances, times)."""
    from tqdm import tqdm

    from .quality import quality
    from .models import n_params

    check_params(params)
    mode = params.get("cluster_cov", "student")
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
        det, means, covs, extra = clustering_covariances(mode, init, teacher, ds, spec, params, seed)
        t_post = time.perf_counter() - t0 - t_teacher
        layer = spec["layer"]
        rows = cluster_sweep(det, layer, means, covs, sweep_ks(task, ds, spec, params), ds, seed,
                             n_init=params["n_init"], max_iter=params["max_iter"], keep_labels=True)
        ari = partition_agreement(rows)
        curves += [dict(dataset=task, seed=seed, **{k: v for k, v in r.items() if k != "labels"}, ari=ari[r["k"]])
                   for r in rows]
        sd = np.sqrt(np.clip(np.trace(covs, axis1=1, axis2=2), 0, None) / covs.shape[-1])
        models.append(dict(dataset=task, seed=seed, n_params=n_params(det), neurons=len(means), dim=means.shape[1],
                           inputs=ds.n_features, cluster_cov=mode,
                           teacher_quality=quality(teacher, ds.X_test, ds.y_test, ds.task),
                           clustered_quality=quality(det, ds.X_test, ds.y_test, ds.task),
                           cov_sd=float(sd.mean()), teacher_sd=extra.get("teacher_sd", float("nan")),
                           mean_spread=float(np.sqrt(((means - means.mean(0)) ** 2).sum(1).mean() / means.shape[1])),
                           train_s=t_teacher, posterior_s=t_post, total_s=time.perf_counter() - t0,
                           explained=ds.extra.get("explained", float("nan"))))
    return {"curves": pd.DataFrame(curves), "models": pd.DataFrame(models)}


def contrast_runs(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """:func:`run` on the tasks of ``contrast_datasets`` with the Bayesian student's covariances
    (``cluster_cov = "student"``, Algorithm 1); empty frames when there are none."""
    if not params["contrast_datasets"]:
        return {"curves": pd.DataFrame(), "models": pd.DataFrame()}
    return run(dict(params, cluster_cov="student", datasets=list(params["contrast_datasets"])), progress)


def contrast_table(results: dict, contrast: dict) -> pd.DataFrame:
    """Per task and clustering covariance: the mean ARI of the Euclidean and the W2 partition over
    the non-trivial k (1 < k < n) and seeds, the share of those (k, seed) where the partitions are the
    same, the covariances' sd against the spread of the neuron means, and the W2 minus Euclidean area."""
    rows = []
    for res in (results, contrast):
        curves, models = res["curves"], res["models"]
        if not len(curves):
            continue
        auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
        for d in curves.dataset.unique():
            sub = curves[(curves.dataset == d) & (curves.metric == "w2")]
            kmax = sub.groupby("seed").k.transform("max")
            mid = sub[(sub.k > 1) & (sub.k < kmax)]
            mm = models[models.dataset == d]
            rows.append({"task": TASK_LABELS[d], "covariances": mm.cluster_cov.iloc[0], "ARI (mean)": mid.ari.mean(),
                         "same partition (share of k, seed)": float((mid.ari >= 1 - 1e-12).mean()),
                         "covariance sd / spread of means": float(mm.cov_sd.mean() / mm.mean_spread.mean()),
                         "W2 minus Euclidean area": float((auc.loc[d]["w2"] - auc.loc[d]["euclidean"]).mean())})
    return pd.DataFrame(rows).sort_values(["task", "covariances"]).reset_index(drop=True)


def ring_runs(params: dict, progress: bool = True) -> pd.DataFrame:
    """The report's 100-3-100 accelerometer network (``hapt_window`` -> ``hapt_hidden`` tanh ->
    ``hapt_window``), trained once per seed: how close its output neurons lie to a circle
    (:func:`circle_deviation`) and the test R^2 it keeps when its output neurons are merged into
    ``hapt_claim_k`` clusters (Euclidean k-means of the neurons; merging needs no covariance).

    Returns one row per seed: seed, deviation, var2 (share of the variance in the circle's plane),
    radius_cv (coefficient of variation of the in-plane radius), turns, quality (all neurons),
    quality_k (``hapt_claim_k`` clusters)."""
    from tqdm import tqdm

    from .quality import quality

    check_params(params)
    spec = task_spec("hapt", params, hidden=params["hapt_hidden"])
    rows = []
    for s in tqdm(range(params["n_seeds"]), desc="100-3-100 per seed", disable=not progress):
        seed = params["seed"] + s
        ds = load_task("hapt", params, seed)
        net = new_model(ds, spec, seed)
        fit(net, ds, spec, params, seed)
        means = neuron_params(net, spec["layer"])
        c = circle_stats(means)
        labels, cm, _ = kmeans_neurons(means, None, params["hapt_claim_k"], "euclidean", seed=seed,
                                       n_init=params["n_init"], max_iter=params["max_iter"], algorithm="lloyd")
        merged = merge_neurons(net, spec["layer"], labels, cm)
        rows.append(dict(seed=seed, deviation=circle_deviation(means), var2=c["var2"], radius_cv=c["radius_cv"],
                         turns=c["turns"],
                         quality=quality(net, ds.X_test, ds.y_test, ds.task),
                         quality_k=quality(merged, ds.X_test, ds.y_test, ds.task)))
    return pd.DataFrame(rows)


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


def circle_deviation(means: np.ndarray) -> float:
    """How far points are from a circle, relative to its radius: in the plane of their first two
    principal components, around their centroid, the circle of radius ``r`` = the mean in-plane
    radius; returns ``sqrt(mean_i((r_i - r)^2 + |o_i|^2)) / r`` with ``r_i`` the in-plane radius of
    point ``i`` and ``o_i`` its component outside the plane (0 = every point on the circle)."""
    C = np.asarray(means, float) - np.mean(means, 0)
    _, _, Vt = np.linalg.svd(C, full_matrices=False)
    P = C @ Vt[:2].T
    out = C - P @ Vt[:2]
    r = np.hypot(P[:, 0], P[:, 1]) if P.shape[1] == 2 else np.abs(P[:, 0])
    rbar = float(r.mean())
    if rbar <= 0:
        return float("inf")
    return float(np.sqrt(np.mean((r - rbar) ** 2 + (out**2).sum(1))) / rbar)


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
    from .quality import quality

    check_params(params)
    seed = params["seed"]
    out = {"seconds": {}}
    ds = load_task("hapt", params, seed)
    spec = task_spec("hapt", params, hidden=params["hapt_hidden"])
    layer = spec["layer"]
    init = new_model(ds, spec, seed)
    teacher = copy.deepcopy(init)
    t0 = time.perf_counter()
    fit(teacher, ds, spec, params, seed)
    out["seconds"]["teacher"] = time.perf_counter() - t0
    from . import data as D

    small_ds = D.hapt_windows(params["hapt_small_in"], params["hapt_small_out"], stride=params["hapt_stride"],
                              seed=seed)
    small_init = new_model(small_ds, spec, seed)
    small = copy.deepcopy(small_init)
    fit(small, small_ds, spec, params, seed)
    small_runs, _ = bootstrap_runs(small_init, small, small_ds, spec, params, seed, params["n_bootstrap"])
    out["small_means"] = neuron_params(small, layer)
    out["small_covs"] = bootstrap_covariances(small_runs, layer)[1]
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
               circle=circle_stats(means["sandwich"]),
               deviation={e: circle_deviation(means[e]) for e in ESTIMATORS},
               median_sd={e: float(np.median(np.sqrt(np.clip(np.trace(covs[e], axis1=1, axis2=2), 0, None)
                                                     / covs[e].shape[-1]))) for e in ESTIMATORS})
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
            parts.append(f"Iris ({params.get('iris_pca', 0) or 4} -> {params['iris_hidden']} ReLU -> 3, "
                         f"{params['iris_epochs']} epochs)")
        else:
            w = params["hapt_window"]
            parts.append(f"accelerometer ({w} -> {params.get('hapt_curve_hidden', params['hapt_hidden'])} tanh -> {w}, "
                         f"{params['hapt_epochs']} epochs)")
    cov = params.get("cluster_cov", "student")
    how = {"bootstrap": f"{params['n_bootstrap']} bootstrap runs",
           "bayes": f"a Bayesian network with neurons of rank {params['rank']} + diagonal",
           "student": f"the Bayesian student (teacher posterior: {params['teacher_posterior']}, neurons of rank "
                      f"{params['rank']} + diagonal)"}[cov]
    return (f"{'; '.join(parts)}; Adam (lr {params['lr']}, batch {params['batch_size']}); clustering covariances "
            f"from {how}; {params['n_seeds']} seeds")


SLIDE_CURVES = "slide 'Точности модели VS количество параметров'"
SLIDE_ELLIPSES = "slide 'Визуализация пространства нейронов 3 методами'"
SLIDE_CONCLUSIONS = "slide 'Выводы'"
DECK_FIGURES = {"mnist": "MNIST (8)", "iris": "IRIS (4)", "hapt": "MotionSense (10)"}  # the deck's panels
DECK_DIMS = {"mnist": 8, "iris": 4, "hapt": 10}  # neuron dimensions in the deck's figure titles


def neuron_dims(params: dict) -> dict[str, int]:
    """Dimension of a clustered neuron (incoming weights and bias) per task under ``params``."""
    return {"mnist": params["mnist_pca"] + 1, "iris": (params.get("iris_pca", 0) or 4) + 1,
            "hapt": params.get("hapt_curve_hidden", params["hapt_hidden"]) + 1}


def ari_summary(curves: pd.DataFrame, task: str) -> tuple[bool, str]:
    """Whether the Euclidean and W2 partitions of ``task`` are the same at every k and seed, and a
    phrase with the adjusted Rand index over the non-trivial k (1 < k < number of neurons)."""
    if "ari" not in curves:
        return False, "partitions not recorded"
    sub = curves[(curves.dataset == task) & (curves.metric == "w2")]
    same = bool(np.all(sub.ari >= 1 - 1e-12))
    kmax = sub.groupby("seed").k.transform("max")
    mid = sub[(sub.k > 1) & (sub.k < kmax)]
    if not len(mid):
        return same, "no non-trivial k"
    return same, (f"adjusted Rand index of the two partitions {mid.ari.mean():.2f} (mean; min {mid.ari.min():.2f}) "
                  f"over {mid.k.nunique()} values of 1 < k < n and {mid.seed.nunique()} seeds"
                  + ("; the same partition everywhere" if same else ""))


def claims(curves: pd.DataFrame, params: dict, ring: pd.DataFrame | None = None, comp: dict | None = None) -> list:
    """The report's claims against our measurements (see :mod:`paramspace.claims`).

    ``curves`` (from :func:`run`) gives the Euclidean-vs-W2 rows, ``ring`` (from :func:`ring_runs`)
    the circle and 100 -> 16 rows, ``comp`` (from :func:`estimator_comparison`) the estimator rows;
    rows whose data are not given are left out."""
    from .claims import exact_claim, mean_interval, paired_claim

    prof = params["profile"]
    out = []
    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    tol, much = params["no_worse_tol"], params["much_better"]
    dims = neuron_dims(params)
    best, diffs, same_all = None, {}, {}
    for d in params["datasets"]:
        diff = (auc.loc[d]["w2"] - auc.loc[d]["euclidean"]).to_numpy()
        diffs[d] = pd.Series(diff, index=auc.loc[d].index)
        seeds = auc.loc[d].index.to_numpy()
        same, ari = ari_summary(curves, d)
        same_all[d] = same
        c = paired_claim(
            f"{TASK_LABELS[d]} (d = {dims[d]}): W2 clustering is no worse than Euclidean (per seed: area under quality "
            f"vs parameters kept, W2 minus Euclidean, plus our tolerance {tol:g})",
            f"'не хуже' (no worse); red vs blue curve of panel {DECK_FIGURES[d]}, no number given",
            diff, seeds, prof, fmt="{:+.4f}", kind="report",
            deck=f"{SLIDE_CONCLUSIONS}, bullet 3; {SLIDE_CURVES}, panel {DECK_FIGURES[d]}", tolerance=tol,
            same=same or None)
        c.our_value += f"; {ari}"
        out.append(c)
        m, lo, _ = mean_interval(diff)
        if best is None or m > best[1]:
            best = (d, m, lo)
    holds = best is not None and best[1] > much and best[2] > 0
    out.append(exact_claim(
        f"W2 clustering is sometimes much better than Euclidean: on some data set the mean area difference "
        f"exceeds our threshold {much:g} with its 95% interval above 0",
        "'а иногда даже значительно лучше' (sometimes considerably better), no number given",
        f"largest mean difference {best[1]:+.4f} ({TASK_LABELS[best[0]]}"
        + ("; the same partitions" if same_all[best[0]] else "") + ")",
        holds, prof, kind="report", deck=f"{SLIDE_CONCLUSIONS}, bullet 3"))
    small = min(params["datasets"], key=lambda t: dims[t])
    c = paired_claim(
        f"Covariance helps at small neuron dimension: on {TASK_LABELS[small]}, the smallest neuron dimension here "
        f"(d = {dims[small]}), W2 clustering beats Euclidean (per seed: area difference, no tolerance)",
        "'Учет ковариации улучшает качество модели при небольшой размерности нейронов' (IRIS, d = 4, smallest)",
        diffs[small].to_numpy(), diffs[small].index.to_numpy(), prof, fmt="{:+.4f}", kind="report",
        deck=f"{SLIDE_CURVES}, bullet 1")
    c.our_value += f"; {ari_summary(curves, small)[1]}"
    out.append(c)
    large = max(params["datasets"], key=lambda t: dims[t])
    if dims[large] > dims[small]:
        common = diffs[small].index.intersection(diffs[large].index)
        out.append(paired_claim(
            f"The W2 gain is larger at the smallest neuron dimension ({TASK_LABELS[small]}, d = {dims[small]}) than at "
            f"the largest ({TASK_LABELS[large]}, d = {dims[large]}) (per seed: difference of the two area differences)",
            "not stated as a comparison (our reading of bullet 1)",
            (diffs[small].loc[common] - diffs[large].loc[common]).to_numpy(), common.to_numpy(), prof,
            fmt="{:+.4f}", kind="ours"))
    if "iris" in params["datasets"]:
        sub = curves[(curves.dataset == "iris") & (curves.metric == "w2")]
        pick = sub[sub.param_fraction <= params["iris_param_fraction"] + 1e-12]
        acc = pick.sort_values("param_fraction").groupby("seed").tail(1).set_index("seed")["quality"]
        frac = float(pick.groupby("seed")["param_fraction"].max().mean())
        out.append(paired_claim(
            f"Iris: with at most {params['iris_param_fraction']:.0%} of the parameters (W2 clustering; here "
            f"{frac:.0%}), accuracy stays above {params['iris_min_accuracy']:.0%} (per seed: accuracy minus "
            f"{params['iris_min_accuracy']:g})",
            "'удастся сократить в 2 раза количество параметров, сохраняя точность более 90%'",
            acc.to_numpy() - params["iris_min_accuracy"], acc.index.to_numpy(), prof, kind="report",
            deck=f"{SLIDE_CURVES}, bullet 2"))
    w, h = params["hapt_window"], params["hapt_hidden"]
    if ring is not None and len(ring):
        c = paired_claim(
            f"Accelerometer, {w}-{h}-{w}: the output neurons lie on a circle (per seed: minus the relative RMS "
            f"distance of the neuron means from their best circle, plus our tolerance {params['circle_tol']:g})",
            "'нейроны расположены по кругу' (figure, no number)", -ring.deviation.to_numpy(), ring.seed.to_numpy(),
            prof, fmt="{:+.3f}", kind="report", deck=f"{SLIDE_ELLIPSES}, bullet 1; {SLIDE_CONCLUSIONS}, bullet 1",
            tolerance=params["circle_tol"])
        cv = f", in-plane radius varies by {ring.radius_cv.mean():.0%}" if "radius_cv" in ring else ""
        c.our_value += (f"; deviation {ring.deviation.mean():.3f}, share of variance in the circle's plane "
                        f"{ring.var2.mean():.2f}{cv}, {ring.turns.mean():.1f} turns")
        out.append(c)
        loss = (ring.quality - ring.quality_k).to_numpy()
        c = paired_claim(
            f"Accelerometer, {w}-{h}-{w}: the {w} output neurons reduce to {params['hapt_claim_k']} (k-means of the "
            f"neurons, no fine-tuning) losing at most our tolerance {params['compress_tol']:g} of test R² (per seed: "
            f"minus the R² lost, plus the tolerance)",
            "'возможно снижение размерности пространства с 100 до 16'", -loss, ring.seed.to_numpy(), prof,
            fmt="{:+.4f}", kind="report", deck=f"{SLIDE_ELLIPSES}, bullet 2", tolerance=params["compress_tol"])
        c.our_value += f"; R² {ring.quality.mean():.3f} -> {ring.quality_k.mean():.3f}"
        out.append(c)
    if comp is not None:
        sd = comp["median_sd"]
        ratio = max(sd.values()) / max(min(sd.values()), 1e-300)
        out.append(exact_claim(
            f"Accelerometer, {w}-{h}-{w}: the three estimators give different numbers: the largest median sd of a "
            f"neuron is at least our factor {params['scale_ratio']:g} times the smallest (one seed)",
            "'Разные методы оценки ... дают разные численные результаты' (three figures)",
            f"median sd {', '.join(f'{e} {v:.2g}' for e, v in sd.items())}; ratio {ratio:.1f}",
            ratio >= params["scale_ratio"], prof, kind="report", deck=f"{SLIDE_CONCLUSIONS}, bullet 2; {SLIDE_ELLIPSES}"))
        dev = comp["deviation"]
        out.append(exact_claim(
            f"Accelerometer, {w}-{h}-{w}: ... but alike in structure: under every estimator the neuron means lie on a "
            f"circle (relative RMS distance from it at most our tolerance {params['circle_tol']:g}; one seed)",
            "'схожие по структуре (по «кругу»)' (three figures)",
            "deviation " + ", ".join(f"{e} {v:.3f}" for e, v in dev.items()),
            max(dev.values()) <= params["circle_tol"], prof, kind="report",
            deck=f"{SLIDE_CONCLUSIONS}, bullet 2; {SLIDE_ELLIPSES}"))
    return out


def summary_markdown(curves: pd.DataFrame, models: pd.DataFrame, ledger: list, params: dict) -> str:
    """Bullet points for the discussion, generated from the measurements and the ledger: per task the
    areas, the agreement of the two partitions and the ratio of the clustering covariances' spread to
    the spread of the neuron means; the verdict counts of the report's claims; and for every claim of
    the report that is not reproduced what was measured."""
    auc = auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    lines = []
    for d in params["datasets"]:
        a = auc.loc[d]
        diff = a["w2"] - a["euclidean"]
        mm = models[models.dataset == d]
        ratio = float(mm.cov_sd.mean() / mm.mean_spread.mean())
        lines.append(
            f"* **{TASK_LABELS[d]}** (d = {int(mm.dim.iloc[0])}): area under quality vs parameters kept "
            f"{a['euclidean'].mean():.4f} (Euclidean) and {a['w2'].mean():.4f} (W2), difference {diff.mean():+.4f} "
            f"(W2 better on {int((diff > 0).sum())}, equal on {int((diff == 0).sum())}, worse on {int((diff < 0).sum())} "
            f"of {len(diff)} seeds); {ari_summary(curves, d)[1]}. Clustering covariances ({params['cluster_cov']}): "
            f"sd {mm.cov_sd.mean():.2g} per coordinate against a spread of {mm.mean_spread.mean():.2g} of the neuron "
            f"means (ratio {ratio:.2g}); test quality of the clustered network {mm.clustered_quality.mean():.3f}.")
    rep = [c for c in ledger if c.kind == "report"]
    counts = {v: sum(c.verdict == v for c in rep) for v in ("reproduced", "partly", "not reproduced",
                                                            "indistinguishable")}
    lines.append(f"* **Verdicts on the report's claims**: {counts['reproduced']} reproduced, {counts['partly']} partly, "
                 f"{counts['not reproduced']} not reproduced, {counts['indistinguishable']} indistinguishable, of "
                 f"{len(rep)}; {len(ledger) - len(rep)} rows of ours are not counted.")
    for c in rep:
        if c.verdict != "reproduced":
            lines.append(f"* *{c.claim.split(' (per seed')[0]}*: **{c.verdict}**; measured {c.our_value}.")
    return "\n".join(lines)


def protocol_markdown(params: dict) -> str:
    """The protocol this page ran next to the report's, one row per item, deviations named."""
    dims = neuron_dims(params)
    w, h, hc = params["hapt_window"], params["hapt_hidden"], params.get("hapt_curve_hidden", params["hapt_hidden"])
    iris_in = "4 raw features" if not params.get("iris_pca") else f"first {params['iris_pca']} principal components"
    rows = [
        ("covariance the neurons are clustered with", "bootstrap ('Параметры распределения оцениваются с помощью "
         "bootstrap')", f"`cluster_cov = {params['cluster_cov']}`"
         + (f", {params['n_bootstrap']} runs" if params["cluster_cov"] == "bootstrap" else ""),
         "same" if params["cluster_cov"] == "bootstrap" else "**deviation**: not the report's estimator"),
        ("bootstrap runs N", "not stated", f"{params['n_bootstrap']}, resampled with replacement, started from the "
         "network's initial weights, neurons aligned (Hungarian, sign flips for tanh)", "our choice"),
        ("neuron", "'размерность нейронов' in the figure titles; bias not mentioned",
         "incoming weights and bias", "our reading: the deck's dimensions are matched counting the bias"),
        ("MotionSense panel (10)", "MotionSense, architecture not stated",
         f"UCI HAPT walking (magnitude of the acceleration), {w}-{hc}-{w} tanh, output neurons, d = {dims['hapt']}",
         "**deviation**: HAPT stands in for MotionSense; the network is our choice to give d = 10"),
        ("MNIST panel (8)", "MNIST, architecture not stated",
         f"{params['mnist_train']} / {params['mnist_test']} images, first {params['mnist_pca']} principal components, "
         f"-> {params['mnist_hidden']} ReLU -> 10, hidden neurons, d = {dims['mnist']}",
         "**deviation**: subsampled and PCA-reduced to reach d = 8 (pixels would give 785)"),
        ("IRIS panel (4)", "Iris, architecture not stated",
         f"{iris_in} -> {params['iris_hidden']} ReLU -> 3, hidden neurons, d = {dims['iris']}",
         "**deviation**: PCA to 3 components to reach d = 4 with the bias counted (the deck may have counted "
         "4 weights without bias)"),
        ("ellipse figures", f"100-3-100 (first 16 neurons) and 10-3-20, MotionSense",
         f"{w}-{h}-{w} (first {params['n_ellipses']} output neurons, three estimators) and "
         f"{params['hapt_small_in']}-{h}-{params['hapt_small_out']} (bootstrap), HAPT", "data: HAPT for MotionSense"),
        ("clustering", "k-means, rho_1 (Euclidean) vs rho_2 (W2)", "the same Lloyd k-means with either distance, "
         f"best of {params['n_init']} starts", "same"),
        ("merged network", "not stated", "cluster centres' means, outgoing weights summed, no fine-tuning",
         "our choice"),
        ("seeds", "one run shown", f"{params['n_seeds']} seeds, paired comparisons", "ours (more than the deck)"),
    ]
    out = ["| item | the report (deck) | this page | deviation? |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


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
            f"{c['radius_cv']:.0%} (coefficient of variation), about one turn per "
            f"{len(comp['means']['sandwich']) / max(c['turns'], 1e-9) / comp['ds'].extra['rate_hz']:.2f} s of predicted "
            f"signal; their relative deviation from a circle (the measure of the ledger) is "
            f"{circle_deviation(comp['means']['sandwich']):.3f}. "
            f"Median ratio of the minor to the major axis of the first {n} ellipses (1 = a circle): {ratios}; "
            f"median absolute cosine between the major axis and the curve (1 = stretched along it): {along}. The median standard "
            f"deviations differ by a factor {sds.max() / max(sds.min(), 1e-300):.1f} between the largest "
            f"({sds.idxmax()}) and the smallest ({sds.idxmin()}) estimate."
            + "".join(f" The {e} ellipses are elongated along the curve (axis ratio {r['axis ratio']:.2f}): under this "
                      "estimate the neurons move mostly along the circle, i.e. the phase of the step cycle a neuron "
                      "encodes is less certain than its distance from the centre."
                      for e, r in tab.iterrows()
                      if r["axis ratio"] < 0.5 and r["major axis along curve |cos|"] > 0.9))
