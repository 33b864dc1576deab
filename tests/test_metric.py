import numpy as np
from scipy.linalg import sqrtm

from paramspace.metric import w2_barycenter, w2_gaussian


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
