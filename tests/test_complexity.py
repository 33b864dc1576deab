"""Report 2: local reparameterisation, generalised evidence, hypernetworks, density pruning."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from paramspace import complexity as Cx
from paramspace import pruning, variational as V
from paramspace.data import Dataset
from paramspace.profiles import ProfileError, resolve
from paramspace.train import train

SMALL = dict(hidden=[6], prior_variance=0.1, init_sigma=0.05, local_reparam=True)


def _layer(local, seed=0):
    torch.manual_seed(seed)
    layer = V.BayesLinear(3, 2, prior_sigma=1.0, local_reparam=local).double()
    with torch.no_grad():
        layer.weight_rho.copy_(torch.randn(2, 3, dtype=torch.float64) - 1)
        layer.bias_rho.copy_(torch.randn(2, dtype=torch.float64) - 1)
    return layer


def _toy_data(n=240, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    return Dataset("toy", "classification", X[: n // 2], y[: n // 2], X[n // 2:], y[n // 2:], n_classes=2)


def _base(seed=0, d=5, out=2, **kw):
    torch.manual_seed(seed)
    return Cx.bayes_mlp({**SMALL, **kw}, in_dim=d, out_dim=out)


# --- local reparameterisation -----------------------------------------------------------------


def test_local_reparam_is_off_by_default():
    assert V.BayesLinear(3, 2).local_reparam is False
    assert "local_reparam" not in repr(V.BayesLinear(3, 2))


@pytest.mark.parametrize("local", [True, False])
def test_output_moments_match_closed_form(local):
    """Both samplers give output mean x mu_W^T + mu_b and variance x^2 (sigma_W^2)^T + sigma_b^2."""
    layer = _layer(local)
    layer.train()
    x = torch.tensor([[1.0, -0.5, 2.0], [0.3, 0.0, -1.2]], dtype=torch.float64)
    mean = F.linear(x, layer.weight_mu, layer.bias_mu).detach()
    var = F.linear(x**2, layer.weight_sigma**2, layer.bias_sigma**2).detach()
    torch.manual_seed(1)
    N = 20000
    with torch.no_grad():
        outs = torch.stack([layer(x) for _ in range(N)])
    assert ((outs.mean(0) - mean).abs() < 4 * (var / N).sqrt()).all()
    torch.testing.assert_close(outs.var(0), var, rtol=0.05, atol=0)


def test_local_reparam_samples_each_example_independently_and_eval_uses_means():
    layer = _layer(True)
    x = torch.ones(2, 3, dtype=torch.float64)  # two identical inputs
    layer.train()
    torch.manual_seed(0)
    with torch.no_grad():
        out = layer(x)
    assert not torch.equal(out[0], out[1])  # weight sampling would give the same row twice
    layer.eval()
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu), rtol=0, atol=0)


def test_local_reparam_gradients_reach_mu_and_rho():
    layer = _layer(True)
    layer.train()
    layer(torch.randn(4, 3, dtype=torch.float64)).pow(2).sum().backward()
    for p in (layer.weight_mu, layer.weight_rho, layer.bias_mu, layer.bias_rho):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


# --- generalised evidence -------------------------------------------------------------------


def test_lambda_zero_makes_the_kl_term_vanish():
    torch.manual_seed(0)
    out, y = torch.randn(7, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    kl = torch.tensor(123.4)
    assert Cx.generalized_evidence_loss(out, y, kl, 0.0, 50).item() == F.cross_entropy(out, y).item()
    assert Cx.generalized_evidence_loss(out, y, kl, 2.0, 50).item() == pytest.approx(
        F.cross_entropy(out, y).item() + 2.0 * 123.4 / 50, rel=1e-6)
    model = _base()
    assert V.kl_regularizer(50, 0.0)(model).item() == 0.0


def test_training_with_lambda_zero_equals_pure_nll_training():
    ds = _toy_data()
    a, b = _base(seed=3), _base(seed=3)
    torch.manual_seed(9)
    train(a, ds, epochs=2, lr=0.1, batch_size=32, seed=1, device="cpu", optimizer="sgd", progress=False,
          regularizer=V.kl_regularizer(len(ds.X_train), 0.0))
    torch.manual_seed(9)
    train(b, ds, epochs=2, lr=0.1, batch_size=32, seed=1, device="cpu", optimizer="sgd", progress=False)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)


def test_kl_from_params_equals_the_models_kl():
    model = _base(seed=2)
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.normal_()
            layer.bias_rho.normal_()
    got = Cx.kl_from_params(dict(model.named_parameters()), model[0].prior_sigma)
    torch.testing.assert_close(got, V.kl_total(model))
    with pytest.raises(ValueError):
        Cx.kl_from_params({"weight": torch.zeros(2)}, 1.0)


# --- lambda on a log scale --------------------------------------------------------------------


def test_encode_lambda_is_log_linear():
    assert Cx.encode_lambda(0.01, 0.01, 100.0) == pytest.approx(0.0, abs=1e-12)
    assert Cx.encode_lambda(100.0, 0.01, 100.0) == pytest.approx(1.0)
    assert Cx.encode_lambda(1.0, 0.01, 100.0) == pytest.approx(0.5)
    assert Cx.encode_lambda(torch.tensor(10.0), 0.01, 100.0).item() == pytest.approx(0.75)
    for bad in [(0.0, 0.01, 100.0), (1.0, 0.0, 1.0), (1.0, 2.0, 1.0)]:
        with pytest.raises(ValueError):
            Cx.encode_lambda(*bad)


def test_sample_lambdas_is_log_uniform_in_range():
    lams = np.array(Cx.sample_lambdas(20000, 0.01, 100.0, torch.Generator().manual_seed(0)))
    assert lams.min() >= 0.01 and lams.max() <= 100.0
    t = np.log10(lams)
    assert abs(np.median(t)) < 0.05  # median of a log-uniform on [1e-2, 1e2] is 1
    assert abs(np.mean(t < -1) - 0.25) < 0.02


# --- hypernetworks ----------------------------------------------------------------------------


def test_linear_hypernetwork_returns_t_b2_plus_b3():
    base = _base()
    h = Cx.LinearHyper(base, 0.01, 100.0)
    with torch.no_grad():
        for p in h.parameters():
            p.normal_()
    for lam in (0.01, 0.3, 1.0, 100.0):
        t = Cx.encode_lambda(lam, 0.01, 100.0)
        out = h(lam)
        assert list(out) == [n for n, _ in base.named_parameters()]
        for n, v in out.items():
            k = h.key(n)
            torch.testing.assert_close(v, t * h.b2[k] + h.b3[k], rtol=0, atol=0)
    # at lambda_min the generated parameters are b3 exactly; the hypernetwork starts at the base network
    h0 = Cx.LinearHyper(base, 0.01, 100.0)
    for n, p in base.named_parameters():
        torch.testing.assert_close(h0(0.01)[n], p.detach(), rtol=0, atol=0)
        torch.testing.assert_close(h0(100.0)[n], p.detach(), rtol=0, atol=0)  # b2 starts at zero
    assert not set(map(id, base.parameters())) & set(map(id, h.parameters()))  # base is not trained


@pytest.mark.parametrize("rank", [1, 2])
def test_lowrank_hypernetwork_shapes_and_rank(rank):
    base = _base(hidden=[7])
    h = Cx.LowRankHyper(base, 0.01, 100.0, rank=rank, embed_dim=5, init_scale=0.5).double()
    shapes = {n: p.shape for n, p in base.named_parameters()}
    for lam in (0.01, 2.0, 100.0):
        out = h(lam)
        assert {n: v.shape for n, v in out.items()} == shapes
        for n, v in out.items():
            if v.dim() == 2:
                delta = (v - h.b1[h.key(n)]).detach()
                assert torch.linalg.matrix_rank(delta).item() == rank  # random factors: exactly r
    with pytest.raises(ValueError):
        Cx.LowRankHyper(base, 0.01, 100.0, rank=0)


def test_functional_call_matches_the_standalone_model():
    base = _base()
    h = Cx.LowRankHyper(base, 0.1, 10.0, rank=1, embed_dim=3, init_scale=0.3)
    base.eval()
    x = torch.randn(9, 5)
    m = h.model_at(3.0)
    m.eval()
    torch.testing.assert_close(h.run(x, 3.0), m(x))
    assert not any(p.requires_grad and p.grad_fn is not None for p in m.parameters())


@pytest.mark.parametrize("kind", ["linear", "lowrank"])
def test_tiny_hypernetwork_run_decreases_the_loss(kind):
    ds = _toy_data()
    params = {**SMALL, "lambda_min": 0.01, "lambda_max": 1.0, "rank": 1, "embed_dim": 4}
    torch.manual_seed(0)
    base = Cx.bayes_mlp(params, in_dim=5, out_dim=2)
    h = Cx.make_hyper(kind, base, params, seed=0)
    torch.manual_seed(0)
    hist = Cx.train_hypernet(h, ds, epochs=15, lr=0.2, batch_size=40, lambdas_per_batch=3,
                             prior_sigma=math.sqrt(0.1), clip=5.0, seed=0, device="cpu")
    assert len(hist.loss) == 15 and all(np.isfinite(hist.loss))
    assert np.mean(hist.loss[-3:]) < 0.8 * np.mean(hist.loss[:3])


def test_make_hyper_rejects_unknown_kind():
    with pytest.raises(ValueError):
        Cx.make_hyper("cubic", _base(), {"lambda_min": 0.1, "lambda_max": 1.0})


# --- pruning by relative density --------------------------------------------------------------


def test_density_order_equals_mu_over_sigma_order():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, generator=g, dtype=torch.float64)
    sigma = torch.rand(500, generator=g, dtype=torch.float64) + 0.05
    rho = Cx.relative_density(mu, sigma)
    assert ((rho > 0) & (rho <= 1)).all()
    assert torch.equal(torch.argsort(-rho), torch.argsort(mu.abs() / sigma))
    torch.testing.assert_close(-2 * torch.log(rho), mu**2 / sigma**2)
    assert Cx.relative_density(torch.tensor(0.0), torch.tensor(1.0)).item() == 1.0


def test_weight_scores_are_minus_two_log_density_of_the_weights_only():
    model = _base(seed=4)
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.normal_()
    sc = Cx.weight_scores(model)
    assert sorted(sc) == ["0.weight", "2.weight"]
    for i in (0, 2):
        layer = model[i]
        rho = Cx.relative_density(layer.weight_mu.detach(), layer.weight_sigma.detach())
        torch.testing.assert_close(sc[f"{i}.weight"], -2 * torch.log(rho), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.9])
def test_pruning_removes_exactly_the_requested_fraction_highest_density_first(fraction):
    model = _base(seed=5, hidden=[8])
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.normal_()
    det = V.to_deterministic(model)
    sc = Cx.weight_scores(model)
    pruned = pruning.prune_by_scores(det, sc, fraction)
    n_w = sum(v.numel() for v in sc.values())
    assert pruning.pruned_fraction(pruned) == pytest.approx(round(fraction * n_w) / n_w)
    assert not [n for n, _ in pruned.named_buffers() if "bias" in n]  # biases are never pruned
    # the removed weights are those of highest density
    dens = torch.cat([Cx.relative_density(model[i].weight_mu, model[i].weight_sigma).detach().reshape(-1)
                      for i in (0, 2)])
    removed = torch.cat([(pruned[i].weight_mask == 0).reshape(-1) for i in (0, 2)])
    if removed.any() and (~removed).any():
        assert dens[removed].min() >= dens[~removed].max()


def test_prune_curve_fine_tuning_keeps_removed_weights_at_zero(monkeypatch):
    ds = _toy_data()
    model = _base(seed=6)
    kept = {}
    orig = pruning.prune_by_scores

    def spy(*a, **k):
        m = orig(*a, **k)
        kept[a[2]] = m
        return m

    monkeypatch.setattr(pruning, "prune_by_scores", spy)
    c = Cx.prune_curve(model, ds, [0.0, 0.5], seed=0, finetune_steps=2, finetune_lr=0.5, batch_size=16, device="cpu")
    assert list(c.stage) == ["one-shot", "fine-tuned", "one-shot", "fine-tuned"]
    m = kept[0.5]
    for i in (0, 2):
        assert (m[i].weight[m[i].weight_mask == 0] == 0).all()
    assert c.accuracy.between(0, 1).all()


def test_training_subset():
    ds = _toy_data()
    sub = Cx.training_subset(ds, 10, seed=1)
    assert len(sub.X_train) == 10 and torch.equal(sub.X_test, ds.X_test)
    assert Cx.training_subset(ds, 10**6) is ds


# --- parameters -------------------------------------------------------------------------------


def test_check_params_cross_checks():
    P = resolve("variational_complexity", "smoke")
    Cx.check_params(P)
    for bad in [dict(claim_fraction=0.7), dict(lambda_min=200.0), dict(fractions=[0.1, 0.8])]:
        with pytest.raises(ProfileError):
            Cx.check_params({**P, **bad})


def test_smoke_experiment_tables():
    P = resolve("variational_complexity", "smoke", {"n_seeds": 1, "n_train": 120, "n_test": 60})
    r = Cx.run(P, progress=False)
    lam_h = Cx.hyper_lambdas(P)
    cur = r["curves"]
    assert set(cur.method) == set(Cx.METHODS)
    assert sorted(cur[cur.method == "separate"].lam.unique()) == P["lambdas"]
    assert sorted(cur[cur.method == "linear"].lam.unique()) == lam_h
    assert len(r["grid"]) == 2 * P["n_lambda_grid"] * 2
    assert set(r["timing"].method) == set(Cx.METHODS) and (r["timing"].seconds > 0).all()
    ledger = Cx.claims(r, P)
    assert len(ledger) == len(P["lambdas"]) + 4
    assert "λ = 0:" in Cx.discussion_markdown(r, ledger, P)
