import numpy as np
from scipy.linalg import sqrtm

from paramspace import wasserstein as W
from paramspace.wasserstein import w2_barycenter, w2_gaussian


def _spd(rng, d):
    A = rng.normal(size=(d, d))
    return A @ A.T + 0.1 * np.eye(d)


def test_w2_diagonal_closed_form_and_basic_properties():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 4), rng.uniform(0.1, 3, 4)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert np.isclose(w2_gaussian(m1, np.diag(a), m2, np.diag(b)), want)
    S = _spd(rng, 4)
    assert w2_gaussian(m1, S, m1, S) < 1e-9
    assert np.isclose(w2_gaussian(m1, S, m2, S), np.sum((m1 - m2) ** 2))


def test_w2_matches_sqrtm_and_is_symmetric():
    rng = np.random.default_rng(1)
    for _ in range(3):
        S1, S2 = _spd(rng, 5), _spd(rng, 5)
        m1, m2 = rng.normal(size=5), rng.normal(size=5)
        r1 = np.real(sqrtm(S1))
        want = np.sum((m1 - m2) ** 2) + np.trace(S1 + S2 - 2 * np.real(sqrtm(r1 @ S2 @ r1)))
        assert np.isclose(w2_gaussian(m1, S1, m2, S2), want, rtol=1e-8)
        assert np.isclose(w2_gaussian(m1, S1, m2, S2), w2_gaussian(m2, S2, m1, S1), rtol=1e-8)


def test_barycenter_commuting_and_single():
    rng = np.random.default_rng(2)
    diags = rng.uniform(0.1, 3, (3, 4))
    means = rng.normal(size=(3, 4))
    w = np.array([0.2, 0.3, 0.5])
    m, S = w2_barycenter(means, [np.diag(d) for d in diags], w)
    assert np.allclose(m, w @ means)
    assert np.allclose(S, np.diag((w @ np.sqrt(diags)) ** 2), atol=1e-8)
    S0 = _spd(rng, 4)
    m1, S1 = w2_barycenter(means[:1], S0[None], [1.0])
    assert np.allclose(m1, means[0]) and np.allclose(S1, S0, atol=1e-8)


def test_w2_pairwise_matches_pot_and_the_diagonal_closed_form():
    rng = np.random.default_rng(4)
    m1, m2 = rng.normal(size=(4, 3)), rng.normal(size=(2, 3))
    S1, S2 = np.stack([_spd(rng, 3) for _ in range(4)]), np.stack([_spd(rng, 3) for _ in range(2)])
    D = W.w2_pairwise(m1, S1, m2, S2)
    want = np.array([[w2_gaussian(m1[i], S1[i], m2[j], S2[j]) for j in range(2)] for i in range(4)])
    assert np.allclose(D, want, rtol=1e-9)
    v1, v2 = rng.uniform(0.1, 2, (4, 3)), rng.uniform(0.1, 2, (2, 3))
    Dd = W.w2_pairwise(m1, v1, m2, v2)
    assert np.allclose(Dd, W.w2_pairwise(m1, np.stack([np.diag(v) for v in v1]), m2,
                                         np.stack([np.diag(v) for v in v2])), rtol=1e-9)
    assert np.isclose(Dd[1, 0], np.sum((m1[1] - m2[0]) ** 2) + np.sum((np.sqrt(v1[1]) - np.sqrt(v2[0])) ** 2))
    # a rank-deficient covariance (bootstrap from fewer runs than dimensions) gives no NaN
    low = np.outer([1.0, 2, 3], [1.0, 2, 3])
    assert np.isfinite(w2_gaussian(m1[0], low, m2[0], low)) and np.isclose(w2_gaussian(m1[0], low, m1[0], low), 0,
                                                                            atol=1e-6)


def test_alvarez_esteban_barycentre_agrees_with_pot_and_the_commuting_closed_form():
    rng = np.random.default_rng(13)
    covs = np.stack([_spd(rng, 3) for _ in range(4)])
    means, w = rng.normal(size=(4, 3)), np.array([0.1, 0.2, 0.3, 0.4])
    m_pot, S_pot = w2_barycenter(means, covs, w)
    m_ae, S_ae = W.w2_barycenter_ae(means, covs, w)
    assert np.allclose(m_ae, m_pot) and np.allclose(S_ae, S_pot, rtol=1e-6, atol=1e-9)
    # the barycentre's fixed-point equation S = sum w (S^1/2 S_i S^1/2)^1/2 holds
    R = np.real(sqrtm(S_ae))
    assert np.allclose(sum(wi * np.real(sqrtm(R @ C @ R)) for wi, C in zip(w, covs)), S_ae, rtol=1e-8)
    diags = rng.uniform(0.1, 3, (3, 4))
    _, S = W.w2_barycenter_ae(np.zeros((3, 4)), np.stack([np.diag(d) for d in diags]))
    assert np.allclose(S, np.diag(np.sqrt(diags).mean(0) ** 2))
    assert np.allclose(W.w2_barycenter_diag(np.zeros((3, 4)), diags)[1], np.sqrt(diags).mean(0) ** 2)


def test_barycentre_of_rank_deficient_covariances_is_finite_and_exact():
    # commuting, singular members (zero variance on the last axis): barycentre diag = (mean sqrt)^2
    diags = np.array([[1.0, 4.0, 0.0], [9.0, 1.0, 0.0]])
    covs = np.stack([np.diag(d) for d in diags])
    m, S = w2_barycenter(np.zeros((2, 3)), covs)
    assert np.all(np.isfinite(S))
    assert np.allclose(S, np.diag([4.0, 2.25, 0.0]), atol=1e-6)


def test_psd_symmetrises_and_lifts_round_off_and_sqrtm_squares_back():
    S = np.array([[1.0, 2.0], [2.0, 4.0]])  # rank 1: eigenvalues 0 and 5
    bent = S + np.array([[0.0, 1e-9], [-1e-9, -1e-15]])  # asymmetric round-off, a tiny negative eigenvalue
    P = W.psd(bent)
    assert np.allclose(P, P.T) and np.allclose(P, S, atol=1e-8)
    assert np.linalg.eigvalsh(P).min() >= 1e-12 * 2.5 * (1 - 1e-6)  # lifted to rel_jitter * mean diagonal
    R = W._sqrtm_psd(np.stack([S, np.diag([4.0, 9.0])]))
    assert np.allclose(R[0] @ R[0], S) and np.allclose(R[1], np.diag([2.0, 3.0]))
