import numpy as np
import pytest
import torch
from torch import nn

from paramspace import curvature
from paramspace import neurons as M
from paramspace.models import n_params


def _spd(rng, d):
    A = rng.normal(size=(d, d))
    return A @ A.T + 0.1 * np.eye(d)


def _net(sizes, act=nn.Tanh, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(dtype)


def test_neuron_params_are_rows_of_weight_and_bias():
    lin = nn.Linear(2, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        lin.bias.copy_(torch.tensor([7.0, 8.0, 9.0]))
    net = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), lin)
    assert np.array_equal(M.neuron_params(net, 2), [[1, 2, 7], [3, 4, 8], [5, 6, 9]])
    assert M.neuron_params(net, 0).shape == (2, 5)
    with pytest.raises(ValueError):
        M.neuron_params(net, 1)  # a ReLU, not a Linear


def _with_duplicates(act=nn.ReLU):
    # 3 -> 4 -> 2 with hidden neurons 2 = 0 and 3 = 1 exactly
    net = _net([3, 4, 2], act=act, seed=1)
    with torch.no_grad():
        net[0].weight[2], net[0].bias[2] = net[0].weight[0], net[0].bias[0]
        net[0].weight[3], net[0].bias[3] = net[0].weight[1], net[0].bias[1]
    return net


def test_merging_exact_duplicates_keeps_the_function_and_counts_parameters():
    net = _with_duplicates()
    labels = np.array([0, 1, 0, 1])
    P = M.neuron_params(net, 0)
    merged = M.merge_neurons(net, 0, labels, P[:2])
    X = torch.randn(50, 3, dtype=torch.float64)
    torch.testing.assert_close(merged(X), net(X))
    assert merged[0].out_features == 2 and merged[2].in_features == 2
    assert n_params(net) - n_params(merged) == 2 * (3 + 1 + 2)
    # the next layer's columns are summed per cluster
    W = net[2].weight.detach()
    torch.testing.assert_close(merged[2].weight.detach(), torch.stack([W[:, 0] + W[:, 2], W[:, 1] + W[:, 3]], 1))
    # the input model is untouched
    assert net[0].out_features == 4


def test_merging_the_output_layer_expands_back_and_counts_parameters():
    net = _net([3, 5, 4], seed=2)
    with torch.no_grad():  # output units 2 = 0 and 3 = 1
        net[2].weight[2], net[2].bias[2] = net[2].weight[0], net[2].bias[0]
        net[2].weight[3], net[2].bias[3] = net[2].weight[1], net[2].bias[1]
    labels = np.array([0, 1, 0, 1])
    merged = M.merge_neurons(net, 2, labels, M.neuron_params(net, 2)[:2])
    X = torch.randn(20, 3, dtype=torch.float64)
    torch.testing.assert_close(merged(X), net(X))
    assert n_params(net) - n_params(merged) == 2 * (5 + 1)


def test_merge_uses_centres_and_drops_empty_clusters():
    net = _net([2, 3, 1], act=nn.Identity, seed=3)
    centres = np.array([[1.0, 0.0, 0.5], [9.0, 9.0, 9.0], [0.0, 2.0, -1.0]])  # cluster 1 unused
    merged = M.merge_neurons(net, 0, [0, 2, 0], centres)
    assert merged[0].out_features == 2
    assert np.allclose(M.neuron_params(merged, 0), centres[[0, 2]])
    # identity activation: out = w2 . (h) + b2 with h = centre rows
    X = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    W2 = net[2].weight.detach()[0]
    want = (W2[0] + W2[2]) * (1 + 0.5) + W2[1] * (2 - 1) + net[2].bias.detach()[0]
    assert float(merged(X).detach()) == pytest.approx(float(want))


def test_kmeans_euclidean_recovers_separated_groups():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    means = np.repeat(centres, 5, axis=0) + 0.01 * rng.normal(size=(15, 3))
    labels, cm, cc = M.kmeans_neurons(means, None, 3, seed=0)
    assert cc is None
    for g in range(3):  # each true group is one cluster
        assert len(set(labels[5 * g:5 * g + 5])) == 1
    assert len(set(labels)) == 3
    for c in range(3):
        assert np.allclose(cm[c], means[labels == c].mean(0))
    again = M.kmeans_neurons(means, None, 3, seed=0)[0]
    assert np.array_equal(labels, again)


def test_kmeans_w2_diagonal_separates_by_variance_with_closed_form_centres():
    # identical means: Euclidean k-means cannot tell the neurons apart, W2 can (two variance levels)
    means = np.zeros((6, 2))
    var = np.array([[0.01, 0.01]] * 3 + [[4.0, 9.0]] * 2 + [[1.0, 16.0]])
    labels, cm, cc = M.kmeans_neurons(means, var, 2, metric="w2", seed=0)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    big = labels[3]
    # barycentre of diagonal Gaussians: (mean of sqrt(s))^2 = ((2+2+1)/3, (3+3+4)/3)^2
    assert np.allclose(cc[big], [(5 / 3) ** 2, (10 / 3) ** 2])
    assert np.allclose(cc[labels[0]], [0.01, 0.01])
    # Euclidean k-means with the same covariances: the W2 barycentre of each cluster's covariances
    # (identical means: one distinct point, so one cluster)
    lab_e, _, cc_e = M.kmeans_neurons(means, var, 2, metric="euclidean", seed=0)
    assert np.array_equal(lab_e, np.zeros(6)) and len(cc_e) == 1
    for c in range(len(cc_e)):
        assert np.allclose(cc_e[c], np.sqrt(var[lab_e == c]).mean(0) ** 2)


def test_kmeans_w2_full_separates_orientations_and_agrees_with_the_diagonal_path():
    # equal means, covariances elongated along x (3 neurons) or along y (3 neurons)
    ax, ay = np.diag([4.0, 0.01]), np.diag([0.01, 4.0])
    covs = np.stack([ax * s for s in (1.0, 1.1, 0.9)] + [ay * s for s in (1.0, 1.2, 0.8)])
    means = np.zeros((6, 2))
    labels, cm, cc = M.kmeans_neurons(means, covs, 2, metric="w2", seed=0)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    # commuting (diagonal) members: barycentre in closed form
    for c in range(2):
        d = np.stack([np.diag(S) for S in covs[labels == c]])
        assert np.allclose(cc[c], np.diag(np.sqrt(d).mean(0) ** 2), atol=1e-8)
    lab_d, _, cc_d = M.kmeans_neurons(means, np.stack([np.diag(S) for S in covs]), 2, metric="w2", seed=0)
    assert (lab_d == lab_d[0]).tolist() == (labels == labels[0]).tolist()
    assert np.array_equal(labels, M.kmeans_neurons(means, covs, 2, metric="w2", seed=0)[0])


@pytest.mark.parametrize("cov_kind", ["none", "diag", "full"])
def test_own_lloyd_recovers_separated_groups_like_sklearn(cov_kind):
    rng = np.random.default_rng(15)
    centres = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]])
    means = np.repeat(centres, 4, axis=0) + 0.05 * rng.normal(size=(16, 3))
    covs = {"none": None, "diag": rng.uniform(0.01, 0.02, (16, 3)),
            "full": np.stack([0.01 * np.eye(3)] * 16)}[cov_kind]
    metric = "euclidean" if cov_kind == "none" else "w2"
    lab, cm, _ = M.kmeans_neurons(means, covs, 4, metric=metric, seed=1, algorithm="lloyd")
    ref = M.kmeans_neurons(means, None, 4, seed=1)[0]  # scikit-learn
    # the same partition (up to the cluster names)
    assert len(set(zip(lab, ref))) == 4 and len(set(lab)) == 4
    for c in range(4):
        assert np.allclose(cm[c], means[lab == c].mean(0))
    assert np.array_equal(lab, M.kmeans_neurons(means, covs, 4, metric=metric, seed=1, algorithm="lloyd")[0])


def test_kmeans_k_equals_n_and_bad_arguments():
    means = np.arange(6.0).reshape(3, 2)
    labels, cm, _ = M.kmeans_neurons(means, None, 3)
    assert np.array_equal(labels, [0, 1, 2]) and np.array_equal(cm, means)
    with pytest.raises(ValueError):
        M.kmeans_neurons(means, None, 4)
    with pytest.raises(ValueError):
        M.kmeans_neurons(means, None, 2, metric="w2")
    with pytest.raises(ValueError):
        M.kmeans_neurons(means, np.ones((3, 5)), 2, metric="w2")
    with pytest.raises(ValueError):
        M.kmeans_neurons(means, None, 2, algorithm="elkan")


# --- covariance estimators ---------------------------------------------------------------------------


def _ols_problem(n=60, p=3, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + rng.normal(size=n) * (0.2 + np.abs(X[:, 0]))  # heteroscedastic
    Xt = np.c_[X, np.ones(n)]
    beta = np.linalg.lstsq(Xt, y, rcond=None)[0]
    net = nn.Sequential(nn.Linear(p, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(beta[:-1])[None])
        net[0].bias.copy_(torch.tensor(beta[-1:]))
    return X, y, Xt, beta, net


def test_sandwich_of_linear_regression_is_white_hc0():
    X, y, Xt, beta, net = _ols_problem()
    e = y - Xt @ beta
    B = np.linalg.inv(Xt.T @ Xt)
    hc0 = B @ Xt.T @ np.diag(e**2) @ Xt @ B  # written out independently of hc0_covariance
    assert np.allclose(M.hc0_covariance(X, y), hc0)
    Xtt, ytt = torch.tensor(X), torch.tensor(y)[:, None]
    for method in ("sandwich", "sandwich_full"):
        cov = M.neuron_covariances(net, Xtt, ytt, "regression", 0, method=method)
        assert cov.shape == (1, 4, 4)
        assert np.allclose(cov[0], hc0, rtol=1e-8, atol=1e-12)
    # diagonal variant: G_jj / (n H_jj^2) with H = 2 X~^T X~ / n and G = 4 X~^T diag(e^2) X~ / n
    n = len(y)
    Hd, Gd = 2 * (Xt**2).sum(0) / n, 4 * ((e**2)[:, None] * Xt**2).sum(0) / n
    assert np.allclose(M.neuron_covariances(net, Xtt, ytt, "regression", 0, method="sandwich_diag")[0],
                       Gd / (n * Hd**2))


@pytest.mark.parametrize("task,layer", [("classification", 0), ("classification", 2), ("regression", 0),
                                        ("regression", 2)])
def test_neuron_curvature_blocks_are_blocks_of_the_full_hessian_and_g(task, layer):
    net = _net([3, 4, 3], act=nn.Tanh, seed=6)
    torch.manual_seed(7)
    X = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (40,)) if task == "classification" else torch.randn(40, 3, dtype=torch.float64)
    H = curvature.hessian(net, X, y, task).numpy()
    G = curvature.gradient_outer(net, X, y, task).numpy()
    Hb, Gb = M.neuron_curvature(net, X, y, task, layer)
    for i, ix in enumerate(M.neuron_indices(net, layer)):
        assert np.allclose(Hb[i], H[np.ix_(ix, ix)], atol=1e-10)
        assert np.allclose(Gb[i], G[np.ix_(ix, ix)], atol=1e-10)
    Hd, Gd = M.neuron_curvature(net, X, y, task, layer, diagonal=True)
    assert np.allclose(Hd, np.stack([np.diag(h) for h in Hb])) and np.allclose(Gd, np.stack([np.diag(g) for g in Gb]))
    # and the block sandwich is H_i^-1 G_i H_i^-1 / n (H_i positive definite here or pseudo-inverted)
    cov = M.neuron_covariances(net, X, y, task, layer)
    Hp = np.linalg.pinv(Hb[0], rcond=1e-10, hermitian=True)
    if np.linalg.eigvalsh(Hb[0]).min() > 0:
        assert np.allclose(cov[0], Hp @ Gb[0] @ Hp / 40, rtol=1e-6, atol=1e-12)


def _permute_and_flip(net, perm, signs):
    out = nn.Sequential(*[nn.Linear(m.in_features, m.out_features).double() if isinstance(m, nn.Linear) else m
                          for m in net])
    out.load_state_dict(net.state_dict())
    p, s = torch.tensor(perm), torch.tensor(signs, dtype=torch.float64)
    with torch.no_grad():
        out[0].weight.copy_(net[0].weight[p] * s[:, None])
        out[0].bias.copy_(net[0].bias[p] * s)
        out[2].weight.copy_(net[2].weight[:, p] * s[None])
    return out


def test_align_undoes_a_permutation_and_sign_flips():
    net = _net([3, 5, 2], act=nn.Tanh, seed=8)
    perm, signs = [3, 0, 4, 1, 2], [1.0, -1.0, -1.0, 1.0, -1.0]
    shuffled = _permute_and_flip(net, perm, signs)
    X = torch.randn(30, 3, dtype=torch.float64)
    torch.testing.assert_close(shuffled(X), net(X))  # tanh is odd: the function is unchanged
    back, perms, sg = M.align_model(net, shuffled, sign_flip=True)
    for a, b in zip(back.parameters(), net.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(back(X), net(X))
    # aligned neuron i is shuffled neuron perms[0][i] times sg[0][i]
    assert np.array_equal(np.asarray(perm)[perms[0]], np.arange(5))
    # ReLU: permutation only
    rnet = _net([3, 5, 2], act=nn.ReLU, seed=9)
    rs = _permute_and_flip(rnet, perm, [1.0] * 5)
    rback = M.align_model(rnet, rs)[0]
    for a, b in zip(rback.parameters(), rnet.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        M.align_model(rnet, rs, sign_flip=True)


# --- the low-rank Bayesian layer ------------------------------------------------------------------------


def _kl_full(m1, S1, m2, S2):
    d = len(m1)
    S2i = np.linalg.inv(S2)
    return 0.5 * (np.trace(S2i @ S1) + (m2 - m1) @ S2i @ (m2 - m1) - d
                  + np.log(np.linalg.det(S2) / np.linalg.det(S1)))


def test_lowrank_layer_kl_matches_the_closed_form_of_full_gaussians():
    from paramspace.variational import LowRankBayesLinear, kl_total

    torch.manual_seed(10)
    layer = LowRankBayesLinear(3, 2, rank=2, prior_sigma=0.5).double()
    with torch.no_grad():
        layer.factor.normal_(0, 0.3)
        layer.rho.normal_(-1, 0.2)
    rng = np.random.default_rng(11)
    S = layer.covariance().detach().numpy()
    A, s2 = layer.factor.detach().numpy(), layer.diag.detach().numpy()
    assert np.allclose(S, A @ np.swapaxes(A, 1, 2) + np.stack([np.diag(v) for v in s2]))
    mu = layer.mean.detach().numpy()
    iso = sum(_kl_full(mu[i], S[i], np.zeros(4), 0.25 * np.eye(4)) for i in range(2))
    assert float(layer.kl().detach()) == pytest.approx(iso, rel=1e-9)
    pm, pc = rng.normal(size=(2, 4)), np.stack([_spd(rng, 4) for _ in range(2)])
    layer.set_prior(pm, pc)
    want = sum(_kl_full(mu[i], S[i], pm[i], pc[i]) for i in range(2))
    assert float(layer.kl().detach()) == pytest.approx(want, rel=1e-9)
    assert float(kl_total(nn.Sequential(layer, nn.Tanh())).detach()) == pytest.approx(want, rel=1e-9)


def test_lowrank_layer_forward_means_and_preactivation_variance():
    from paramspace.variational import LowRankBayesLinear, to_deterministic

    torch.manual_seed(12)
    layer = LowRankBayesLinear(2, 1, rank=1).double()
    with torch.no_grad():
        layer.factor.copy_(torch.tensor([[[0.5], [-1.0], [0.2]]]))
        layer.rho.fill_(-3.0)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    xt = np.array([1.0, 2.0, 1.0])
    layer.eval()
    mean = float(layer(x).detach())
    assert mean == pytest.approx(float(layer.mean.detach().numpy()[0] @ xt))
    det = to_deterministic(nn.Sequential(layer))
    assert float(det(x).detach()) == pytest.approx(mean)
    # training mode: z ~ N(mean . x~, x~^T (A A^T + diag) x~) -- exact variance, checked on 40000 draws
    layer.train()
    z = layer(x.repeat(40000, 1)).detach().numpy().ravel()
    var = xt @ layer.covariance().detach().numpy()[0] @ xt  # = (0.5 - 2 + 0.2)^2 + small diagonal
    assert np.isclose(var, 1.69 + float(layer.diag[0].detach() @ torch.tensor(xt**2)))
    assert z.mean() == pytest.approx(mean, abs=4 * np.sqrt(var / 40000))
    assert z.var() == pytest.approx(var, rel=0.05)


# --- aligned covariances, bootstrap covariances, partitions ------------------------------------------


def test_align_covariances_follow_the_permutation_and_signs():
    rng = np.random.default_rng(14)
    covs = np.stack([_spd(rng, 4) for _ in range(2)])  # 2 neurons of a layer with 3 inputs (+ bias)
    perms, signs = [np.array([2, 0, 1]), np.array([1, 0])], [np.array([1.0, -1.0, 1.0]), np.array([1.0, 1.0])]
    out = M.align_covariances(covs, 1, perms, signs)
    # coordinate a of an aligned neuron is s_a times coordinate p_a of the original; bias stays last;
    # neuron i of the aligned layer is original neuron perms[1][i]
    T = np.zeros((4, 4))
    for a, (p, s) in enumerate(zip([2, 0, 1], [1.0, -1.0, 1.0])):
        T[a, p] = s
    T[3, 3] = 1.0
    for i, j in enumerate([1, 0]):
        assert np.allclose(out[i], T @ covs[j] @ T.T)
    # the first layer: only its neurons are reordered (its inputs are the data)
    covs3 = np.stack([_spd(rng, 2) for _ in range(3)])
    assert np.allclose(M.align_covariances(covs3, 0, perms, signs), covs3[[2, 0, 1]])


def test_bootstrap_covariances_are_sample_covariances():
    nets = [_net([2, 3, 1], seed=s) for s in range(5)]
    mean, cov = M.bootstrap_covariances(nets, 0)
    P = np.stack([M.neuron_params(n, 0) for n in nets])
    for i in range(3):
        assert np.allclose(mean[i], P[:, i].mean(0))
        assert np.allclose(cov[i], np.cov(P[:, i], rowvar=False))


def test_partition_agreement_is_the_adjusted_rand_index():
    rows = [dict(metric="euclidean", k=2, labels=np.array([0, 0, 1, 1])),
            dict(metric="w2", k=2, labels=np.array([1, 1, 0, 0])),  # the same partition, renamed
            dict(metric="euclidean", k=3, labels=np.array([0, 0, 1, 1])),
            dict(metric="w2", k=3, labels=np.array([0, 1, 0, 1]))]
    ari = M.partition_agreement(rows)
    # k = 3 by hand: all four pair-cells hold one neuron, sum C(n_ij, 2) = 0; row and column sums 2, 2:
    # sum C(a_i, 2) = sum C(b_j, 2) = 2, C(4, 2) = 6, expected 2 * 2 / 6; ARI = (0 - 2/3) / (2 - 2/3) = -1/2
    assert ari[2] == pytest.approx(1.0) and ari[3] == pytest.approx(-0.5)


def test_cluster_sweep_merges_exact_duplicates_without_loss_and_counts_parameters():
    from paramspace.data import Dataset
    from paramspace.quality import quality

    net = _with_duplicates().float()  # hidden neurons 2 = 0 and 3 = 1
    torch.manual_seed(0)
    X = torch.randn(30, 3)
    y = net(X).argmax(1)
    ds = Dataset(name="toy", task="classification", X_train=X, y_train=y, X_test=X, y_test=y, n_classes=2)
    means = M.neuron_params(net, 0)
    covs = np.stack([0.01 * np.eye(4)] * 4)
    rows = M.cluster_sweep(net, 0, means, covs, [1, 2, 4], ds, 0, n_init=2, max_iter=20, keep_labels=True)
    assert [(r["metric"], r["k"]) for r in rows] == [(m, k) for m in M.METRICS for k in (1, 2, 4)]
    full = quality(net, X, y, "classification")
    for r in rows:
        assert r["clusters"] == r["k"] and r["n_params"] == n_params(net) - (4 - r["k"]) * (3 + 1 + 2)
        assert r["param_fraction"] == pytest.approx(r["n_params"] / n_params(net)) and r["seconds"] >= 0
        if r["k"] == 2:  # the duplicates share a cluster: the merged network computes the same function
            assert r["labels"][0] == r["labels"][2] and r["labels"][1] == r["labels"][3]
            assert r["quality"] == pytest.approx(full)
    # one metric only, as the leaderboard calls it (diagonal covariances, scikit-learn)
    only = M.cluster_sweep(net, 0, means, np.full((4, 4), 0.01), range(1, 4), ds, 0, algorithm="auto", metrics=("w2",))
    assert [r["k"] for r in only] == [1, 2, 3] and {r["metric"] for r in only} == {"w2"} and "labels" not in only[0]
    assert M.partition_agreement(rows) == {1: pytest.approx(1.0), 2: pytest.approx(1.0), 4: pytest.approx(1.0)}
