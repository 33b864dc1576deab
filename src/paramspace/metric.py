"""Report 1 (Nasyrov 2023), metric analysis of the parameter space: the Gaussian 2-Wasserstein
geometry in which neurons (incoming weight vectors seen as Gaussians) are compared and merged.

Work in progress: only the W2 distance and barycentre exist so far. Both wrap POT's
Bures-Wasserstein functions (``ot.gaussian``); the tests check them against closed forms and a
direct ``scipy.linalg.sqrtm`` computation.
"""

from __future__ import annotations

import numpy as np
import ot


def w2_gaussian(m1, S1, m2, S2) -> float:
    """Squared 2-Wasserstein distance between N(m1, S1) and N(m2, S2):
    ``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})``."""
    m1, m2 = np.asarray(m1, float), np.asarray(m2, float)
    S1, S2 = np.atleast_2d(np.asarray(S1, float)), np.atleast_2d(np.asarray(S2, float))
    return float(ot.gaussian.bures_wasserstein_distance(m1, m2, S1, S2) ** 2)


def w2_barycenter(means, covs, weights=None, n_iter: int = 1000, tol: float = 1e-10):
    """W2 barycentre of Gaussians ``N(means[i], covs[i])`` with ``weights`` (uniform by default,
    normalised): the weighted mean, and the covariance from POT's fixed-point iteration
    (Alvarez-Esteban et al. 2016).  Returns ``(mean, cov)``."""
    means, covs = np.asarray(means, float), np.asarray(covs, float)
    w = np.full(len(means), 1.0 / len(means)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    m, S = ot.gaussian.bures_wasserstein_barycenter(means, covs, w, method="fixed_point",
                                                    num_iter=n_iter, eps=tol)
    return np.asarray(m), 0.5 * (np.asarray(S) + np.asarray(S).T)
