"""The 2-Wasserstein geometry of Gaussians: squared W2 distances and W2 barycentres.

Distances between two Gaussians (:func:`w2_gaussian`, POT's Bures-Wasserstein distance) or between all
pairs of two sets (:func:`w2_pairwise`, full or diagonal covariances); barycentres by POT's fixed point
(:func:`w2_barycenter`), by Alvarez-Esteban et al.'s faster one (:func:`w2_barycenter_ae`) and in closed
form for diagonal Gaussians (:func:`w2_barycenter_diag`).

Covariance shapes: ``(n, d, d)`` full matrices, or ``(n, d)`` diagonals (variances) in :func:`w2_pairwise`,
where for diagonal Gaussians ``W2^2 = |m1 - m2|^2 + |sqrt(s1) - sqrt(s2)|^2`` and the barycentre is
``(mean m, (mean sqrt s)^2)``.
"""

from __future__ import annotations

import numpy as np
import ot


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
