"""Mean-field Gaussian layers: closed-form KL, sampling moments, conversion and relevance."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paramspace import variational as V
from paramspace.models import mlp


def _layer(in_f=3, out_f=2, mu=None, sigma=None, prior=1.0, seed=0):
    torch.manual_seed(seed)
    layer = V.BayesLinear(in_f, out_f, prior_sigma=prior).double()
    with torch.no_grad():
        if mu is not None:
            layer.weight_mu.fill_(mu)
            layer.bias_mu.fill_(mu)
        if sigma is not None:
            layer.weight_rho.fill_(V.softplus_inv(sigma))
            layer.bias_rho.fill_(V.softplus_inv(sigma))
    return layer


def test_softplus_inv_inverts_softplus():
    for s in (1e-3, 0.3, 1.0, 4.0):
        assert F.softplus(torch.tensor(V.softplus_inv(s), dtype=torch.float64)).item() == pytest.approx(s, rel=1e-12)


@pytest.mark.parametrize("mu,sigma,prior,per_weight", [
    (0.0, 1.0, 1.0, 0.0),                                  # q = p
    (0.0, 2.0, 2.0, 0.0),                                  # q = p, wider prior
    (1.0, 1.0, 1.0, 0.5),                                  # mu^2 / 2
    (0.0, 0.5, 1.0, math.log(2) + 0.25 / 2 - 0.5),         # log(p/s) + s^2/(2p^2) - 1/2
    (2.0, 1.0, 2.0, math.log(2) + (1 + 4) / 8 - 0.5),
])
def test_kl_known_values(mu, sigma, prior, per_weight):
    layer = _layer(3, 2, mu=mu, sigma=sigma, prior=prior)
    n = 3 * 2 + 2
    assert layer.kl().item() == pytest.approx(n * per_weight, abs=1e-10)


def test_kl_equals_closed_form_for_random_parameters():
    layer = _layer(4, 3)
    with torch.no_grad():
        layer.weight_rho.copy_(torch.randn(3, 4, dtype=torch.float64))
        layer.bias_rho.copy_(torch.randn(3, dtype=torch.float64))
    expected = (V.kl_gaussian_closed_form(layer.weight_mu, layer.weight_sigma, 1.0)
                + V.kl_gaussian_closed_form(layer.bias_mu, layer.bias_sigma, 1.0))
    torch.testing.assert_close(layer.kl(), expected, rtol=1e-10, atol=1e-12)
    # and the closed form itself, by hand for one weight
    mu, s, p = 0.3, 0.7, 1.5
    by_hand = math.log(p / s) + (s**2 + mu**2) / (2 * p**2) - 0.5
    got = V.kl_gaussian_closed_form(torch.tensor([mu], dtype=torch.float64),
                                    torch.tensor([s], dtype=torch.float64), p)
    assert got.item() == pytest.approx(by_hand, rel=1e-12)


def test_kl_total_sums_layers_and_regularizer_scales():
    torch.manual_seed(0)
    model = mlp(3, [4], 2, "tanh", linear=V.BayesLinear, prior_sigma=1.0).double()
    layers = V.bayes_layers(model)
    assert len(layers) == 2
    total = layers[0].kl() + layers[1].kl()
    torch.testing.assert_close(V.kl_total(model), total)
    reg = V.kl_regularizer(n_train=50, kl_weight=2.0)
    torch.testing.assert_close(reg(model), 2.0 * total / 50)
    with pytest.raises(ValueError):
        V.kl_total(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("n_train,kl_weight", [(0, 1.0), (-5, 1.0), (10, -0.1)])
def test_kl_regularizer_bad_inputs(n_train, kl_weight):
    with pytest.raises(ValueError):
        V.kl_regularizer(n_train, kl_weight)


@pytest.mark.parametrize("kwargs", [dict(prior_sigma=0.0), dict(prior_sigma=-1.0), dict(init_sigma=0.0)])
def test_bayes_linear_bad_sigmas(kwargs):
    with pytest.raises(ValueError):
        V.BayesLinear(2, 2, **kwargs)


def test_init_sigma():
    layer = V.BayesLinear(3, 2, init_sigma=0.05)
    torch.testing.assert_close(layer.weight_sigma, torch.full((2, 3), 0.05), rtol=1e-5, atol=0)
    torch.testing.assert_close(layer.bias_sigma, torch.full((2,), 0.05), rtol=1e-5, atol=0)


# --- forward ----------------------------------------------------------------------------------


def test_eval_mode_uses_the_means():
    layer = _layer(3, 2, sigma=0.5)
    x = torch.randn(5, 3, dtype=torch.float64)
    layer.eval()
    out1, out2 = layer(x), layer(x)
    torch.testing.assert_close(out1, F.linear(x, layer.weight_mu, layer.bias_mu), rtol=0, atol=0)
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)


def test_train_mode_samples_with_the_right_moments():
    sigma = 0.5
    layer = _layer(3, 2, sigma=sigma, seed=1)
    layer.train()
    torch.manual_seed(123)
    x = torch.tensor([[1.0, 0.0, 0.0], [0.5, -1.0, 2.0]], dtype=torch.float64)
    N = 20000
    with torch.no_grad():
        outs = torch.stack([layer(x) for _ in range(N)])  # N x 2 points x 2 outputs
    assert not torch.equal(outs[0], outs[1])
    mean_out = F.linear(x, layer.weight_mu, layer.bias_mu).detach()
    # Var(out) = sigma_w^2 |x|^2 + sigma_b^2 for every output
    var = sigma**2 * (x**2).sum(1, keepdim=True) + sigma**2
    se = (var / N).sqrt()
    assert ((outs.mean(0) - mean_out).abs() < 4 * se).all()
    # x = e_1: variance sigma_w^2 + sigma_b^2 = 0.5
    emp_var = outs[:, 0, :].var(0)
    torch.testing.assert_close(emp_var, torch.full((2,), 2 * sigma**2, dtype=torch.float64), rtol=0.05, atol=0)
    torch.testing.assert_close(outs[:, 1, :].var(0), var[1].expand(2), rtol=0.05, atol=0)


def test_sample_flag_off_uses_means_in_train_mode():
    layer = _layer(3, 2, sigma=0.5)
    layer.train()
    layer.sample = False
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu), rtol=0, atol=0)


# --- conversion and relevance -----------------------------------------------------------------


def _bayes_mlp(seed=0):
    torch.manual_seed(seed)
    model = mlp(3, [4], 2, "relu", linear=V.BayesLinear, prior_sigma=1.0, init_sigma=0.2)
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.copy_(torch.randn_like(layer.weight_rho))
            layer.bias_rho.copy_(torch.randn_like(layer.bias_rho))
    return model


def test_to_deterministic_matches_eval_outputs():
    bayes = _bayes_mlp()
    det = V.to_deterministic(bayes)
    assert not V.bayes_layers(det)
    assert [type(m) for m in det] == [nn.Linear, nn.ReLU, nn.Linear]
    x = torch.randn(10, 3)
    bayes.eval()
    torch.testing.assert_close(det(x), bayes(x), rtol=0, atol=0)
    # a copy: changing the deterministic model leaves the Bayes model alone
    with torch.no_grad():
        det[0].weight.zero_()
    assert bayes[0].weight_mu.abs().sum() > 0


def test_relevance_is_mu2_over_sigma2_keyed_like_deterministic():
    bayes = _bayes_mlp()
    det = V.to_deterministic(bayes)
    rel = V.relevance(bayes)
    det_params = dict(det.named_parameters())
    assert list(rel) == list(det_params)
    for i in (0, 2):
        layer = bayes[i]
        torch.testing.assert_close(rel[f"{i}.weight"], layer.weight_mu.detach() ** 2 / layer.weight_sigma.detach() ** 2)
        torch.testing.assert_close(rel[f"{i}.bias"], layer.bias_mu.detach() ** 2 / layer.bias_sigma.detach() ** 2)
    for k, p in det_params.items():
        assert rel[k].shape == p.shape
    # a hand-made value: mu = 2, sigma = 0.5 -> 16
    with torch.no_grad():
        bayes[0].weight_mu[0, 0] = 2.0
        bayes[0].weight_rho[0, 0] = V.softplus_inv(0.5)
    assert V.relevance(bayes)["0.weight"][0, 0].item() == pytest.approx(16.0, rel=1e-5)


# --- fit_variational --------------------------------------------------------------------------


def test_fit_variational_trains_a_seeded_mean_field_mlp():
    from paramspace.data import Dataset

    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=g)
    y = (X[:, 0] > 0).long()
    ds = Dataset("toy", "classification", X, y, X, y, n_classes=2)
    kw = dict(hidden=[3], epochs=3, lr=0.01, batch_size=16, prior_sigma=1.0, kl_weight=1.0, device="cpu")
    m1, h1 = V.fit_variational(ds, seed=5, **kw)
    m2, h2 = V.fit_variational(ds, seed=5, **kw)
    layers = V.bayes_layers(m1)
    assert [(b.in_features, b.out_features) for b in layers] == [(4, 3), (3, 2)]
    assert all(b.prior_sigma == 1.0 and b.weight_mu.device.type == "cpu" for b in layers)
    assert len(h1.loss) == 3 and h1.loss == h2.loss  # one mean loss per epoch, reproducible
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    m3, _ = V.fit_variational(ds, seed=6, **kw)
    assert not torch.equal(m1[0].weight_mu, m3[0].weight_mu)
    # the loss is the negative ELBO per sample: with kl_weight 0 training sees only the NLL
    m0, h0 = V.fit_variational(ds, seed=5, **{**kw, "kl_weight": 0.0})
    assert h0.loss[0] < h1.loss[0]
