"""Pruning: OBD saliencies, exact mask counts, Belsley's proportions, AUC and noise response."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from paramspace import pruning
from paramspace.data import Dataset
from paramspace.models import mlp


def _small_mlp(seed=0):
    torch.manual_seed(seed)
    return mlp(3, [5], 2, "relu")  # 3*5 + 5 + 5*2 + 2 = 32 parameters


def _mask_zeros(model):
    return sum(int((b == 0).sum()) for n, b in model.named_buffers() if n.endswith("_mask"))


def _perm_scores(model, seed=0):
    """Distinct hand-made scores: a random permutation of 0..P-1 spread over the parameters."""
    P = sum(p.numel() for p in model.parameters())
    perm = torch.randperm(P, generator=torch.Generator().manual_seed(seed)).double()
    out, i = {}, 0
    for n, p in model.named_parameters():
        out[n] = perm[i:i + p.numel()].reshape(p.shape)
        i += p.numel()
    return out, P


# --- OBD --------------------------------------------------------------------------------------


def test_obd_scores_linear_regression_closed_form():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(25, 3, generator=g, dtype=torch.float64)
    y = torch.randn(25, 1, generator=g, dtype=torch.float64)
    lin = nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -2.0, 1.5]]))
        lin.bias.fill_(0.75)
    s = pruning.obd_scores(lin, X, y, "regression")
    h_w = 2.0 / len(X) * (X**2).sum(0)
    torch.testing.assert_close(s["weight"], (0.5 * h_w * torch.tensor([0.5, -2.0, 1.5]) ** 2).reshape(1, 3),
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(s["bias"], torch.tensor([0.5 * 2.0 * 0.75**2], dtype=torch.float64),
                               rtol=1e-12, atol=1e-14)


def test_obd_scores_with_l2_adds_to_curvature():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(10, 2, generator=g, dtype=torch.float64)
    y = torch.randn(10, 1, generator=g, dtype=torch.float64)
    lin = nn.Linear(2, 1).double()
    w, b = lin.weight.detach().reshape(-1), lin.bias.detach()
    s = pruning.obd_scores(lin, X, y, "regression", l2=0.4)
    h_w = 2.0 / len(X) * (X**2).sum(0) + 0.4
    torch.testing.assert_close(s["weight"].reshape(-1), 0.5 * h_w * w**2, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(s["bias"], 0.5 * 2.4 * b**2, rtol=1e-12, atol=1e-14)


def test_magnitude_and_random_scores_shapes():
    model = _small_mlp()
    mag = pruning.magnitude_scores(model)
    for n, p in model.named_parameters():
        assert torch.equal(mag[n], p.detach().abs())
    r1, r2 = pruning.random_scores(model, 3), pruning.random_scores(model, 3)
    assert all(torch.equal(r1[n], r2[n]) and r1[n].shape == p.shape for n, p in model.named_parameters())


# --- prune_by_scores --------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.33, 0.5, 1.0])
def test_prune_by_scores_removes_exactly_round_fP_lowest(fraction):
    model = _small_mlp()
    scores, P = _perm_scores(model)
    assert P == 32
    k = round(fraction * P)
    pruned = pruning.prune_by_scores(model, scores, fraction)
    assert _mask_zeros(pruned) == k
    assert pruning.pruned_fraction(pruned) == pytest.approx(k / P, abs=1e-12)
    for n, _ in model.named_parameters():
        mod_name, _, pname = n.rpartition(".")
        mask = dict(pruned.named_buffers())[f"{n}_mask"]
        # exactly the parameters with score < k (scores are 0..P-1) are removed
        torch.testing.assert_close(mask, (scores[n] >= k).float())
        # the effective parameter is zero where masked and unchanged elsewhere
        eff = getattr(pruned.get_submodule(mod_name), pname)
        orig = dict(model.named_parameters())[n].detach()
        torch.testing.assert_close(eff.detach(), orig * mask)


def test_prune_by_scores_returns_a_copy():
    model = _small_mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scores, _ = _perm_scores(model)
    pruned = pruning.prune_by_scores(model, scores, 0.5)
    assert pruned is not model
    assert not [n for n, _ in model.named_buffers() if n.endswith("_mask")]
    assert pruning.pruned_fraction(model) == 0.0
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n])
    # inplace=True modifies the model itself
    same = pruning.prune_by_scores(model, scores, 0.5, inplace=True)
    assert same is model and _mask_zeros(model) == 16


def test_prune_by_scores_partial_scores_count_only_scored():
    model = _small_mlp()
    scores = {"0.weight": torch.arange(15, dtype=torch.float64).reshape(5, 3)}
    pruned = pruning.prune_by_scores(model, scores, 0.4)  # round(0.4 * 15) = 6
    buffers = dict(pruned.named_buffers())
    assert list(k for k in buffers if k.endswith("_mask")) == ["0.weight_mask"]
    torch.testing.assert_close(buffers["0.weight_mask"],
                               (torch.arange(15).reshape(5, 3) >= 6).float())


@pytest.mark.parametrize("fraction", [1.5, -0.1])
def test_prune_by_scores_bad_fraction(fraction):
    model = _small_mlp()
    with pytest.raises(ValueError, match="fraction"):
        pruning.prune_by_scores(model, pruning.magnitude_scores(model), fraction)


def test_prune_by_scores_bad_scores():
    model = _small_mlp()
    bad = pruning.magnitude_scores(model)
    bad["0.weight"] = torch.ones(3, 5)
    with pytest.raises(ValueError, match="shape"):
        pruning.prune_by_scores(model, bad, 0.5)
    with pytest.raises(KeyError):
        pruning.prune_by_scores(model, {"9.weight": torch.ones(2)}, 0.5)
    nan = pruning.magnitude_scores(model)
    nan["0.bias"][0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pruning.prune_by_scores(model, nan, 0.5)


@pytest.mark.parametrize("fraction", [0.1, 0.33, 0.5, 0.9])
def test_ties_still_give_exact_counts(fraction):
    model = _small_mlp()
    equal = {n: torch.ones_like(p) for n, p in model.named_parameters()}
    pruned = pruning.prune_by_scores(model, equal, fraction, seed=7)
    assert _mask_zeros(pruned) == round(fraction * 32)
    # seeded tie-breaking: same seed -> same mask
    again = pruning.prune_by_scores(model, equal, fraction, seed=7)
    for (n, a), (_, b) in zip(pruned.named_buffers(), again.named_buffers()):
        assert torch.equal(a, b), n


def test_ranks_are_a_permutation_respecting_the_order():
    scores = {"a": torch.tensor([[3.0, 1.0], [1.0, 2.0]]), "b": torch.tensor([0.5, 3.0])}
    r = pruning._ranks(scores, seed=0)
    flat = torch.cat([r["a"].reshape(-1), r["b"]])
    assert sorted(flat.tolist()) == [1, 2, 3, 4, 5, 6]
    assert r["a"].shape == (2, 2) and r["b"].shape == (2,)
    assert r["b"][0] == 1  # 0.5 is the unique minimum
    assert {r["a"][0, 1].item(), r["a"][1, 0].item()} == {2, 3}  # the two 1.0s
    assert r["a"][1, 1] == 4  # 2.0
    assert {r["a"][0, 0].item(), r["b"][1].item()} == {5, 6}  # the two 3.0s


# --- Belsley ----------------------------------------------------------------------------------


def _collinear_design(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    return np.stack([a, b, a + 1e-3 * rng.normal(size=n), c], axis=1)


def test_belsley_proportions_collinear_pair():
    cov = np.cov(_collinear_design(), rowvar=False)
    eta, q = pruning.belsley_proportions(cov, index="belsley")
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-12)
    assert np.all(q >= 0)
    assert np.all(np.diff(eta) >= 0) and eta[0] == pytest.approx(1.0)
    j = int(np.argmax(eta))
    assert eta[j] > 100  # correlation 1 - O(1e-6): condition index ~ sqrt(2 / 1e-6)
    assert q[0, j] > 0.9 and q[2, j] > 0.9
    assert q[1, j] < 0.1 and q[3, j] < 0.1


def test_belsley_proportions_two_by_two_by_hand():
    r = 0.9
    eta, q = pruning.belsley_proportions(np.array([[1.0, r], [r, 1.0]]), index="belsley")
    # eigenvalues 1 + r, 1 - r; eigenvectors (1, 1)/sqrt2, (1, -1)/sqrt2
    np.testing.assert_allclose(eta, [1.0, math.sqrt((1 + r) / (1 - r))], rtol=1e-12)
    np.testing.assert_allclose(q, [[(1 - r) / 2, (1 + r) / 2]] * 2, rtol=1e-12)
    # scaling to unit diagonal makes the variances irrelevant
    s = np.array([2.0, 5.0])
    eta2, q2 = pruning.belsley_proportions(np.outer(s, s) * np.array([[1.0, r], [r, 1.0]]), index="belsley")
    np.testing.assert_allclose(eta2, eta, rtol=1e-12)
    np.testing.assert_allclose(q2, q, rtol=1e-10)


def test_belsley_proportions_diagonal_covariance():
    cov = np.diag([4.0, 1.0, 9.0, 0.25])
    eta, q = pruning.belsley_proportions(cov, index="belsley")
    # unit-diagonal scaling turns it into I: every eta_j = sqrt(1/1) = 1
    np.testing.assert_allclose(eta, np.ones(4), rtol=1e-12)
    # each parameter lies entirely on one direction: q is a permutation matrix
    np.testing.assert_allclose(np.sort(q, axis=1), [[0, 0, 0, 1]] * 4, atol=1e-12)
    np.testing.assert_allclose(q.sum(0), np.ones(4), atol=1e-12)
    # without scaling: lam = (9, 4, 1, 0.25) -> eta = sqrt(9 / lam) = (1, 1.5, 3, 6),
    # and parameter k sits on the direction of its own variance
    eta, q = pruning.belsley_proportions(cov, scale=False, index="belsley")
    np.testing.assert_allclose(eta, [1.0, 1.5, 3.0, 6.0], rtol=1e-12)
    expected = np.zeros((4, 4))
    expected[2, 0] = expected[0, 1] = expected[1, 2] = expected[3, 3] = 1.0
    np.testing.assert_allclose(q, expected, atol=1e-12)


def test_belsley_proportions_accepts_torch_and_rejects_non_square():
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    eta, q = pruning.belsley_proportions(cov)
    assert eta.shape == (2,) and q.shape == (2, 2)
    with pytest.raises(ValueError):
        pruning.belsley_proportions(np.ones((2, 3)))


@pytest.mark.parametrize("n_steps", [100, 2, 1])
def test_belsley_order_is_a_permutation_starting_in_the_collinear_pair(n_steps):
    cov = np.cov(_collinear_design(), rowvar=False)
    order = pruning.belsley_order(cov, n_steps=n_steps, index="belsley")
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert order[0] in (0, 2)


def test_belsley_order_within_one_step_follows_the_proportions():
    # parameters 0 and 1 correlated 0.9 (proportion (1 + r)/2 = 0.95 each on the worst direction),
    # 2 and 3 independent (proportion 0 on it).  n_steps=1 removes P - 1 = 3 parameters in one
    # step; they must still be listed most collinear first, not by index.
    A = np.eye(4)
    A[0, 1] = A[1, 0] = 0.9
    order = pruning.belsley_order(A, n_steps=1, index="belsley")
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert set(order[:2].tolist()) == {0, 1}


def test_belsley_order_larger_block():
    # parameters 1..5 form a correlated block, 0 and 6 are independent
    P = 7
    A = np.eye(P)
    A[1:6, 1:6] = 0.95
    np.fill_diagonal(A, 1.0)
    order = pruning.belsley_order(A, n_steps=P, index="belsley")
    assert sorted(order.tolist()) == list(range(P))
    assert order[0] in range(1, 6)


def _spd(P, seed, cond=1e3):
    """A random symmetric positive-definite P x P matrix with eigenvalues spread log-uniformly over
    [1, cond] (distinct with probability one) and random, non-unit scales on its diagonal."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
    lam = np.exp(rng.uniform(0.0, np.log(cond), P))
    s = np.exp(rng.uniform(-1.0, 1.0, P))
    return (s[:, None] * (Q * lam) @ Q.T) * s[None, :]


@pytest.mark.parametrize("index,col", [("deck", 0), ("belsley", -1)])
@pytest.mark.parametrize("P", [80, 150])
def test_belsley_column_lanczos_path_equals_the_full_eigendecomposition(index, col, P):
    # P >= 64 and positive definite: the Cholesky + Lanczos path; it must give the same column
    A = _spd(P, seed=P)
    _, q = pruning.belsley_proportions(A, index=index)
    fast = pruning.belsley_column(A, index=index)
    np.testing.assert_allclose(fast, q[:, col], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fast.sum(), q[:, col].sum(), rtol=1e-8)


@pytest.mark.parametrize("index", ["deck", "belsley"])
def test_belsley_order_is_the_same_with_and_without_the_lanczos_path(index, monkeypatch):
    A = _spd(100, seed=7)
    fast = pruning.belsley_order(A, n_steps=20, index=index)
    monkeypatch.setattr(pruning, "_LANCZOS_MIN_SIZE", 10**9)  # every step through the full eigh
    dense = pruning.belsley_order(A, n_steps=20, index=index)
    assert np.array_equal(fast, dense)


@pytest.mark.parametrize("index,col", [("deck", 0), ("belsley", -1)])
def test_belsley_column_falls_back_where_eigenvalues_are_clipped(index, col):
    # a Gram matrix of rank 30 < P = 90: singular, so the clipping of belsley_proportions applies and
    # the column must be the full eigendecomposition's, bit for bit
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 90))
    G = X.T @ X
    _, q = pruning.belsley_proportions(G, index=index)
    assert np.array_equal(pruning.belsley_column(G, index=index), q[:, col])
    # an indefinite matrix (Cholesky fails) falls back too
    S = G - 5.0 * np.eye(90)
    _, q = pruning.belsley_proportions(S, index=index)
    assert np.array_equal(pruning.belsley_column(S, index=index), q[:, col])


def _repeated_top(P=90, m=4, seed=5):
    """An SPD matrix with unit diagonal whose top eigenvalue repeats m times (the dead-unit case of
    report 5: an identity block in the scaled covariance), the rest distinct and smaller."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
    lam = np.concatenate([np.full(m, 50.0), np.exp(rng.uniform(0.0, np.log(20.0), P - m))])
    A = (Q * lam) @ Q.T
    d = 1.0 / np.sqrt(np.diag(A))
    return d[:, None] * A * d[None, :]


def test_belsley_column_is_a_function_of_the_matrix_where_the_top_eigenvalue_repeats():
    # The deck's direction is not unique here; Lanczos must still pick the same vector every time,
    # whatever ran before in the process (scipy's default start vector came from fresh entropy, so two
    # calls picked different vectors of the eigenspace and report 5's order changed from run to run).
    A = _repeated_top()
    q1, lanczos = pruning._belsley_column(A, True, pruning.RCOND, "deck", True)
    assert lanczos  # the Cholesky + Lanczos path, where the start vector matters
    from scipy.sparse.linalg import eigsh

    eigsh(_spd(70, seed=1), k=2, which="LA")  # something else in between
    np.random.seed(123)
    q2 = pruning.belsley_column(A, index="deck")
    assert np.array_equal(q1, q2)
    # still a valid column: proportions of the top eigenspace, summing like the full one's
    _, q = pruning.belsley_proportions(A, index="deck")
    np.testing.assert_allclose(q1.sum(), q[:, 0].sum(), rtol=1e-6)


@pytest.mark.parametrize("index,col", [("deck", 0), ("belsley", -1)])
def test_belsley_column_falls_back_where_arpack_fails(index, col, monkeypatch):
    # ARPACK's error 3 ("no shifts could be applied") was raised on report 5's synthetic network: the
    # column must then come from the full eigendecomposition, bit for bit, and belsley_order stops trying
    import scipy.sparse.linalg as sla

    def fail(*args, **kwargs):
        raise sla.ArpackError(3)

    A = _spd(80, seed=2)
    monkeypatch.setattr(sla, "eigsh", fail)
    q_fast, lanczos = pruning._belsley_column(A, True, pruning.RCOND, index, True)
    _, q = pruning.belsley_proportions(A, index=index)
    assert not lanczos
    assert np.array_equal(q_fast, q[:, col])
    monkeypatch.setattr(pruning, "_LANCZOS_MIN_SIZE", 10**9)
    dense = pruning.belsley_order(A, n_steps=10, index=index)
    monkeypatch.undo()
    monkeypatch.setattr(sla, "eigsh", fail)
    assert np.array_equal(pruning.belsley_order(A, n_steps=10, index=index), dense)


def test_belsley_column_rejects_bad_input():
    with pytest.raises(ValueError, match="condition index"):
        pruning.belsley_column(np.eye(3), index="largest")
    with pytest.raises(ValueError, match="square"):
        pruning.belsley_column(np.ones((2, 3)))
    with pytest.raises(ValueError, match="condition index"):
        pruning.belsley_order(np.eye(3), index="largest")


def test_belsley_scores_follow_the_order():
    lin = nn.Linear(3, 1)  # 4 parameters: weight (3), bias (1)
    cov = np.cov(_collinear_design(), rowvar=False)
    order = pruning.belsley_order(cov, n_steps=100)
    s = pruning.belsley_scores(lin, cov, n_steps=100)
    flat = torch.cat([s["weight"].reshape(-1), s["bias"]])
    # the k-th removed parameter gets score k
    for k, idx in enumerate(order):
        assert flat[idx] == k
    with pytest.raises(ValueError):
        pruning.belsley_scores(lin, np.eye(5))
    # the deck's index (the default) gives its own order, and the scores follow it too
    order_d = pruning.belsley_order(cov, n_steps=100, index="deck")
    s_d = pruning.belsley_scores(lin, cov, n_steps=100)
    flat_d = torch.cat([s_d["weight"].reshape(-1), s_d["bias"]])
    assert [int(flat_d[i]) for i in order_d] == list(range(4))


# --- the deck's condition index (report 5, slide 'Метод Белсли') ------------------------------


def test_condition_indices_deck_and_belsley_by_hand():
    lam = np.array([9.0, 4.0, 1.0, 0.25])
    np.testing.assert_allclose(pruning.condition_indices(lam, "deck"), [1.0, 4 / 9, 1 / 9, 1 / 36], rtol=1e-15)
    np.testing.assert_allclose(pruning.condition_indices(lam, "belsley"), [1.0, 1.5, 3.0, 6.0], rtol=1e-15)
    # monotone in each other: eta_deck = 1 / eta_belsley^2
    np.testing.assert_allclose(pruning.condition_indices(lam, "deck"),
                               1 / pruning.condition_indices(lam, "belsley") ** 2, rtol=1e-15)
    with pytest.raises(ValueError, match="condition index"):
        pruning.condition_indices(lam, "sqrt")
    with pytest.raises(ValueError, match="condition index"):
        pruning.belsley_proportions(np.eye(2), index="nope")


def test_near_dependent_agrees_between_the_two_indices():
    lam = np.array([1.0, 1e-2, 1e-3, 1e-4])  # sqrt(1 / lam) = 1, 10, 31.6, 100
    for index in ("deck", "belsley"):
        eta = pruning.condition_indices(lam, index)
        assert pruning.near_dependent(eta, index, 30.0).tolist() == [False, False, True, True]


def test_belsley_proportions_deck_index_two_by_two_by_hand():
    r = 0.9
    eta, q = pruning.belsley_proportions(np.array([[1.0, r], [r, 1.0]]), index="deck")
    # eigenvalues 1 + r, 1 - r: eta = ((1 + r)/(1 + r), (1 - r)/(1 + r)); the proportions do not
    # depend on the index
    np.testing.assert_allclose(eta, [1.0, (1 - r) / (1 + r)], rtol=1e-12)
    np.testing.assert_allclose(q, [[(1 - r) / 2, (1 + r) / 2]] * 2, rtol=1e-12)


def test_deck_rule_on_a_laplace_covariance_by_hand():
    # design Gram M with a correlated pair (0, 1) and an independent parameter 2; the Laplace covariance
    # is M^{-1} = [[1, -r], [-r, 1]] / (1 - r^2) (+) 1, unit diagonal after scaling, eigenvalues
    # 1 + r (v = (1, -1, 0)/sqrt2), 1 (v = e_2), 1 - r (v = (1, 1, 0)/sqrt2)
    r = 0.8
    M = np.array([[1.0, r, 0.0], [r, 1.0, 0.0], [0.0, 0.0, 1.0]])
    cov = np.linalg.inv(M)
    eta, q = pruning.belsley_proportions(cov, index="deck")
    np.testing.assert_allclose(eta, [1.0, 1 / (1 + r), (1 - r) / (1 + r)], rtol=1e-12)
    # the deck's xi = argmax eta is the largest eigenvalue; q on it: (1/2)/(1+r) over
    # (1/2)/(1+r) + (1/2)/(1-r) = (1 - r)/2 for both members of the pair, 0 for parameter 2
    np.testing.assert_allclose(q[:, 0], [(1 - r) / 2, (1 - r) / 2, 0.0], atol=1e-12)
    order = pruning.belsley_order(cov, n_steps=3, index="deck")
    assert order[0] in (0, 1) and sorted(order.tolist()) == [0, 1, 2]
    # Belsley's index on the same matrix takes the smallest eigenvalue, share (1 + r)/2 for the pair
    eta_b, q_b = pruning.belsley_proportions(cov, index="belsley")
    np.testing.assert_allclose(eta_b[-1], np.sqrt((1 + r) / (1 - r)), rtol=1e-12)
    np.testing.assert_allclose(q_b[:, -1], [(1 + r) / 2, (1 + r) / 2, 0.0], atol=1e-12)


# --- AUC, sweep and noise response ------------------------------------------------------------


@pytest.mark.parametrize("fractions", [np.linspace(0.0, 1.0, 11), [0.1, 0.2, 0.5, 0.55, 0.9]])
def test_curve_auc_of_linear_function(fractions):
    f = np.asarray(fractions)
    values = 2.0 + 3.0 * f
    # mean of 2 + 3 f over [f0, f1] is 2 + 3 (f0 + f1) / 2
    assert pruning.curve_auc(f, values) == pytest.approx(2.0 + 3.0 * (f[0] + f[-1]) / 2, rel=1e-12)
    assert pruning.curve_auc(f, np.full(len(f), 0.7)) == pytest.approx(0.7, rel=1e-12)


def test_noise_response_linear_model():
    lin = nn.Linear(4, 1)
    w = torch.tensor([[1.0, 2.0, -2.0, 0.5]])
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.fill_(0.3)
    X = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    sigmas = [0.0, 0.5, 2.0]
    r = pruning.noise_response(lin, X, sigmas, "regression", n_draws=400, seed=1)
    assert r[0] == 0.0
    norm = w.norm().item()  # sqrt(9.25)
    np.testing.assert_allclose(r[1:], [0.5 * norm, 2.0 * norm], rtol=0.03)


def test_noise_response_classification_zero_without_noise():
    model = _small_mlp()
    X = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    r = pruning.noise_response(model, X, [0.0, 1.0], "classification", n_draws=5)
    assert r[0] == 0.0 and 0 < r[1] <= 0.5 + 1e-6  # std of a probability is at most 1/2


def _dataset(task, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    if task == "regression":
        y = (X @ torch.tensor([1.0, -1.0, 0.5]) + 0.2).reshape(-1, 1)
        return Dataset("toy", task, X, y, X, y)
    y = torch.randint(0, 2, (n,), generator=g)
    return Dataset("toy", task, X, y, X, y, n_classes=2)


def test_prune_sweep_end_points_regression():
    ds = _dataset("regression")
    lin = nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0, 0.5]]))
        lin.bias.fill_(0.2)
    q = pruning.prune_sweep(lin, pruning.magnitude_scores(lin), [0.0, 1.0], ds)
    y = ds.y_test.double()
    # the exact model has R^2 = 1; with every parameter removed the output is 0, so
    # R^2 = 1 - sum y^2 / sum (y - mean y)^2
    assert q[0] == pytest.approx(1.0, abs=1e-6)
    assert q[1] == pytest.approx(1 - (y**2).sum().item() / ((y - y.mean()) ** 2).sum().item(), rel=1e-5)


def test_prune_sweep_fully_pruned_classifier_predicts_class_zero():
    ds = _dataset("classification")
    q = pruning.prune_sweep(_small_mlp(), pruning.random_scores(_small_mlp()), [1.0], ds)
    # all logits are 0, argmax picks class 0
    assert q[0] == pytest.approx((ds.y_test == 0).float().mean().item())


def test_belsley_zero_variance_parameter_is_flagged_first_without_warnings():
    import warnings

    # parameter 1 has no variance at all (a dead unit); 0 and 2 are independent with unit variance
    A = np.diag([1.0, 0.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eta, q = pruning.belsley_proportions(A, index="belsley")
        order = pruning.belsley_order(A, index="belsley")
    assert np.allclose(q.sum(1), 1.0)
    assert np.isfinite(eta).all() and eta[-1] > 1e5
    assert q[1, -1] == pytest.approx(1.0)
    assert order[0] == 1


# --- criteria by name and the noise surface ------------------------------------------------------


def _bayes_and_mean(seed=0):
    from paramspace import variational as V

    torch.manual_seed(seed)
    bayes = mlp(3, [5], 2, "relu", linear=V.BayesLinear, prior_sigma=1.0)
    return bayes, V.to_deterministic(bayes)


@pytest.mark.parametrize("name", pruning.CRITERIA)
def test_criterion_score_dispatches_to_the_named_criterion(name):
    from paramspace import curvature

    bayes, det = _bayes_and_mean()
    ds = _dataset("classification")
    X, y = ds.X_train, ds.y_train
    got = pruning.criterion_score(name, bayes=bayes, det=det, X=X, y=y, task=ds.task, seed=3,
                                  laplace_damping=1e-2, belsley_steps=4, condition_index="belsley")
    expected = {
        "random": lambda: pruning.random_scores(det, 3),
        "magnitude": lambda: pruning.magnitude_scores(det),
        "obd": lambda: pruning.obd_scores(det, X, y, ds.task),
        "variational": lambda: pruning.variational_scores(bayes),
        "belsley": lambda: pruning.belsley_scores(
            det, curvature.laplace_covariance(curvature.hessian(det, X, y, ds.task), 1e-2), n_steps=4,
            index="belsley"),
        "belsley_design": lambda: pruning.belsley_scores(
            det, curvature.gradient_outer(det, X, y, ds.task).double(), n_steps=4, index="belsley"),
    }[name]()
    assert set(got) == {n for n, _ in det.named_parameters()} == set(expected)
    for k in got:
        assert torch.equal(got[k], expected[k]), (name, k)


def test_criterion_score_variational_is_mu2_over_sigma2_and_bad_names_are_refused():
    bayes, det = _bayes_and_mean()
    ds = _dataset("regression")
    sc = pruning.criterion_score("variational", bayes=bayes, det=det, X=ds.X_train, y=ds.y_train, task=ds.task)
    layer = bayes[0]
    torch.testing.assert_close(sc["0.weight"], (layer.weight_mu ** 2 / layer.weight_sigma ** 2).detach())
    with pytest.raises(ValueError, match="needs the variational network"):
        pruning.criterion_score("variational", bayes=None, det=det, X=ds.X_train, y=ds.y_train, task=ds.task)
    with pytest.raises(ValueError, match="unknown criterion"):
        pruning.criterion_score("entropy", bayes=bayes, det=det, X=ds.X_train, y=ds.y_train, task=ds.task)


def test_noise_response_with_shared_draws_is_bit_identical():
    # drawing the perturbations once (input_noise) and passing them gives exactly the numbers of a call
    # that draws its own with the same seed; the wrong number or shape of draws is refused
    model = _small_mlp()
    X = torch.randn(25, 3, generator=torch.Generator().manual_seed(4))
    sig = [0.0, 0.2, 0.7]
    noise = pruning.input_noise(X.shape, len(sig), 5, seed=9)
    assert len(noise) == 15 and all(e.shape == X.shape for e in noise)
    own = pruning.noise_response(model, X, sig, "classification", n_draws=5, seed=9)
    assert np.array_equal(pruning.noise_response(model, X, sig, "classification", n_draws=5, noise=noise), own)
    with pytest.raises(ValueError, match="len\\(sigmas\\) \\* n_draws = 15"):
        pruning.noise_response(model, X, sig, "classification", n_draws=5, noise=noise[:-1])
    with pytest.raises(ValueError, match="shaped like X"):
        pruning.noise_response(model, X[:5], sig, "classification", n_draws=5, noise=noise)


def test_noise_surface_grid_and_end_points():
    model = _small_mlp()
    X = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    scores = pruning.magnitude_scores(model)
    fr, sig = [0.0, 0.5, 1.0], [0.0, 0.3, 1.0]
    rows = pruning.noise_surface(model, scores, X, "classification", fractions=fr, sigmas=sig, n_draws=4, seed=2)
    # fractions outermost, one row per grid point
    assert [(r["fraction"], r["sigma"]) for r in rows] == [(f, s) for f in fr for s in sig]
    # at fraction 0 the surface is the unpruned network's noise response with the same seed
    at0 = [r["output_std"] for r in rows if r["fraction"] == 0.0]
    np.testing.assert_allclose(at0, pruning.noise_response(model, X, sig, "classification", n_draws=4, seed=2))
    # no input noise -> no output noise; everything removed -> constant output, no output noise
    assert all(r["output_std"] == 0.0 for r in rows if r["sigma"] == 0.0)
    assert all(abs(r["output_std"]) < 1e-7 for r in rows if r["fraction"] == 1.0)
    # half removed by magnitude is the network prune_by_scores gives
    half = pruning.prune_by_scores(model, scores, 0.5, 2)
    at5 = [r["output_std"] for r in rows if r["fraction"] == 0.5]
    np.testing.assert_allclose(at5, pruning.noise_response(half, X, sig, "classification", n_draws=4, seed=2))
