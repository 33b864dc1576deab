"""paramspace.hypernet (report 2's methods): local reparameterisation, generalised evidence, hypernetworks,
their training on train.fit, density pruning."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from paramspace import hypernet as H
from paramspace import pruning, variational as V
from paramspace.data import Dataset
from paramspace.train import clip_gradients, fit, make_optimizer, shuffled_batches, train

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
    p = {**SMALL, **kw}
    return H.bayes_mlp(p["hidden"], prior_sigma=math.sqrt(p["prior_variance"]), init_sigma=p["init_sigma"],
                       local_reparam=p["local_reparam"], in_dim=d, out_dim=out)


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
    assert H.generalized_evidence_loss(out, y, kl, 0.0, 50).item() == F.cross_entropy(out, y).item()
    assert H.generalized_evidence_loss(out, y, kl, 2.0, 50).item() == pytest.approx(
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
    got = H.kl_from_params(dict(model.named_parameters()), model[0].prior_sigma)
    torch.testing.assert_close(got, V.kl_total(model))
    with pytest.raises(ValueError):
        H.kl_from_params({"weight": torch.zeros(2)}, 1.0)


# --- lambda on a log scale --------------------------------------------------------------------


def test_encode_lambda_is_log_linear():
    assert H.encode_lambda(0.01, 0.01, 100.0) == pytest.approx(0.0, abs=1e-12)
    assert H.encode_lambda(100.0, 0.01, 100.0) == pytest.approx(1.0)
    assert H.encode_lambda(1.0, 0.01, 100.0) == pytest.approx(0.5)
    assert H.encode_lambda(torch.tensor(10.0), 0.01, 100.0).item() == pytest.approx(0.75)
    for bad in [(0.0, 0.01, 100.0), (1.0, 0.0, 1.0), (1.0, 2.0, 1.0)]:
        with pytest.raises(ValueError):
            H.encode_lambda(*bad)


def test_sample_lambdas_is_log_uniform_in_range():
    lams = np.array(H.sample_lambdas(20000, 0.01, 100.0, torch.Generator().manual_seed(0)))
    assert lams.min() >= 0.01 and lams.max() <= 100.0
    t = np.log10(lams)
    assert abs(np.median(t)) < 0.05  # median of a log-uniform on [1e-2, 1e2] is 1
    assert abs(np.mean(t < -1) - 0.25) < 0.02


# --- hypernetworks ----------------------------------------------------------------------------


def test_linear_hypernetwork_returns_t_b2_plus_b3():
    base = _base()
    h = H.LinearHyper(base, 0.01, 100.0)
    with torch.no_grad():
        for p in h.parameters():
            p.normal_()
    for lam in (0.01, 0.3, 1.0, 100.0):
        t = H.encode_lambda(lam, 0.01, 100.0)
        out = h(lam)
        assert list(out) == [n for n, _ in base.named_parameters()]
        for n, v in out.items():
            k = h.key(n)
            torch.testing.assert_close(v, t * h.b2[k] + h.b3[k], rtol=0, atol=0)
    # at lambda_min the generated parameters are b3 exactly; the hypernetwork starts at the base network
    h0 = H.LinearHyper(base, 0.01, 100.0)
    for n, p in base.named_parameters():
        torch.testing.assert_close(h0(0.01)[n], p.detach(), rtol=0, atol=0)
        torch.testing.assert_close(h0(100.0)[n], p.detach(), rtol=0, atol=0)  # b2 starts at zero
    assert not set(map(id, base.parameters())) & set(map(id, h.parameters()))  # base is not trained


@pytest.mark.parametrize("rank", [1, 2])
def test_lowrank_hypernetwork_shapes_and_rank(rank):
    base = _base(hidden=[7])
    h = H.LowRankHyper(base, 0.01, 100.0, rank=rank, embed_dim=5, init_scale=0.5).double()
    shapes = {n: p.shape for n, p in base.named_parameters()}
    for lam in (0.01, 2.0, 100.0):
        out = h(lam)
        assert {n: v.shape for n, v in out.items()} == shapes
        for n, v in out.items():
            if v.dim() == 2:
                delta = (v - h.b1[h.key(n)]).detach()
                assert torch.linalg.matrix_rank(delta).item() == rank  # random factors: exactly r
    with pytest.raises(ValueError):
        H.LowRankHyper(base, 0.01, 100.0, rank=0)


def test_functional_call_matches_the_standalone_model():
    base = _base()
    h = H.LowRankHyper(base, 0.1, 10.0, rank=1, embed_dim=3, init_scale=0.3)
    base.eval()
    x = torch.randn(9, 5)
    m = h.model_at(3.0)
    m.eval()
    torch.testing.assert_close(h.run(x, 3.0), m(x))
    assert not any(p.requires_grad and p.grad_fn is not None for p in m.parameters())


@pytest.mark.parametrize("kind", ["linear", "lowrank"])
def test_tiny_hypernetwork_run_decreases_the_loss(kind):
    ds = _toy_data()
    base = _base(seed=0)
    h = (H.LinearHyper(base, 0.01, 1.0) if kind == "linear" else
         H.LowRankHyper(base, 0.01, 1.0, rank=1, embed_dim=4, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    hist = H.train_hypernet(h, ds, epochs=15, lr=0.2, batch_size=40, lambdas_per_batch=3,
                             prior_sigma=math.sqrt(0.1), clip=5.0, seed=0, device="cpu")
    assert len(hist.loss) == 15 and all(np.isfinite(hist.loss))
    assert np.mean(hist.loss[-3:]) < 0.8 * np.mean(hist.loss[:3])


# --- pruning by relative density --------------------------------------------------------------


def test_density_order_equals_mu_over_sigma_order():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, generator=g, dtype=torch.float64)
    sigma = torch.rand(500, generator=g, dtype=torch.float64) + 0.05
    rho = H.relative_density(mu, sigma)
    assert ((rho > 0) & (rho <= 1)).all()
    assert torch.equal(torch.argsort(-rho), torch.argsort(mu.abs() / sigma))
    torch.testing.assert_close(-2 * torch.log(rho), mu**2 / sigma**2)
    assert H.relative_density(torch.tensor(0.0), torch.tensor(1.0)).item() == 1.0


def test_weight_scores_are_minus_two_log_density_of_the_weights_only():
    model = _base(seed=4)
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.normal_()
    sc = H.weight_scores(model)
    assert sorted(sc) == ["0.weight", "2.weight"]
    for i in (0, 2):
        layer = model[i]
        rho = H.relative_density(layer.weight_mu.detach(), layer.weight_sigma.detach())
        torch.testing.assert_close(sc[f"{i}.weight"], -2 * torch.log(rho), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.9])
def test_pruning_removes_exactly_the_requested_fraction_highest_density_first(fraction):
    model = _base(seed=5, hidden=[8])
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.normal_()
    det = V.to_deterministic(model)
    sc = H.weight_scores(model)
    pruned = pruning.prune_by_scores(det, sc, fraction)
    n_w = sum(v.numel() for v in sc.values())
    assert pruning.pruned_fraction(pruned) == pytest.approx(round(fraction * n_w) / n_w)
    assert not [n for n, _ in pruned.named_buffers() if "bias" in n]  # biases are never pruned
    # the removed weights are those of highest density
    dens = torch.cat([H.relative_density(model[i].weight_mu, model[i].weight_sigma).detach().reshape(-1)
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
    c = H.prune_curve(model, ds, [0.0, 0.5], seed=0, finetune_steps=2, finetune_lr=0.5, batch_size=16, device="cpu")
    assert list(c.stage) == ["one-shot", "fine-tuned", "one-shot", "fine-tuned"]
    m = kept[0.5]
    for i in (0, 2):
        assert (m[i].weight[m[i].weight_mask == 0] == 0).all()
    assert c.accuracy.between(0, 1).all()


def test_training_subset():
    ds = _toy_data()
    sub = H.training_subset(ds, 10, seed=1)
    assert len(sub.X_train) == 10 and torch.equal(sub.X_test, ds.X_test)
    assert H.training_subset(ds, 10**6) is ds


# --- protocol: optimizer, clipping, counted steps, input scaling --------------------------------


def test_make_optimizer_and_clip_gradients():
    w = torch.nn.Parameter(torch.zeros(3))
    """The optimizer factory and clipping the hypernet trainers use (train.make_optimizer, train.clip_gradients)."""
    assert isinstance(make_optimizer([w], "adam", 1e-3), torch.optim.Adam)
    opt = make_optimizer([w], "sgd", 0.5)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0
    for bad in [("rmsprop", 0.1), ("sgd", 0.0)]:
        with pytest.raises(ValueError):
            make_optimizer([w], *bad)
    w.grad = torch.tensor([3.0, -0.5, -4.0])
    clip_gradients([w], 1.0, "value")
    assert w.grad.tolist() == [1.0, -0.5, -1.0]
    w.grad = torch.tensor([3.0, 0.0, -4.0])  # norm 5
    clip_gradients([w], 1.0, "norm")
    torch.testing.assert_close(w.grad, torch.tensor([0.6, 0.0, -0.8]), rtol=1e-5, atol=1e-6)
    w.grad = torch.tensor([3.0, 0.0, -4.0])
    clip_gradients([w], 0.0)
    assert w.grad.tolist() == [3.0, 0.0, -4.0]


def test_fit_counts_steps_and_plain_sgd_takes_the_exact_step():
    """train.fit as the hypernet trainers call it: shuffled batches of 100 examples, after_step hooks, clipping."""
    w = torch.nn.Parameter(torch.tensor([2.0]))
    calls = []
    fitted = fit(lambda idx: (w**2).sum(), make_optimizer([w], "sgd", 0.1),
                 shuffled_batches(100, 32, torch.Generator().manual_seed(0)), epochs=2,
                 after_step=lambda step, idx: calls.append(step))
    assert fitted.steps == 8 and calls == list(range(1, 9)) and len(fitted.losses) == 2
    assert w.item() == pytest.approx(2.0 * 0.8**8)  # w <- w - 0.1 * 2w, eight times
    # with clipping by value 0.1 each step moves w by exactly lr * 0.1 while |2w| > 0.1
    w2 = torch.nn.Parameter(torch.tensor([2.0]))
    fit(lambda idx: (w2**2).sum(), make_optimizer([w2], "sgd", 1.0),
        shuffled_batches(100, 25, torch.Generator().manual_seed(0)), epochs=1, clip=0.1, clip_mode="value")
    assert w2.item() == pytest.approx(2.0 - 4 * 0.1)


def test_steps_to_reach_and_the_training_trace():
    trace = [(10, 0.5), (20, 0.7), (30, 0.69), (35, 0.9)]
    assert H.steps_to_reach(trace, 0.7) == 20
    assert H.steps_to_reach(trace, 0.0) == 10
    assert H.steps_to_reach(trace, 0.95) is None
    ds = _toy_data(n=200)
    model = _base(seed=1)
    hist, steps, tr = H.train_separate(model, ds, 1.0, epochs=2, batch_size=30, optimizer="adam", lr=1e-2,
                                        device="cpu", eval_every=3)
    assert steps == 8 and [s for s, _ in tr] == [3, 6, 8]
    assert all(0 <= a <= 1 for _, a in tr) and not model.training


def test_scale_inputs_maps_unit_pixels_to_symmetric():
    ds = _toy_data()
    ds = Dataset("toy", "classification", ds.X_train.sigmoid(), ds.y_train, ds.X_test.sigmoid(), ds.y_test,
                 n_classes=2)
    sym = H.scale_inputs(ds, "symmetric")
    torch.testing.assert_close(sym.X_train, 2 * ds.X_train - 1)
    assert H.scale_inputs(ds, "unit") is ds
    with pytest.raises(ValueError):
        H.scale_inputs(ds, "zscore")


# --- hypernetworks that depend on lambda from the start -----------------------------------------


def test_linear_hypernetwork_from_two_endpoints_interpolates_them():
    base, other = _base(seed=0), _base(seed=1)
    h = H.LinearHyper(base, 0.01, 100.0, other=other)
    pb, po = dict(base.named_parameters()), dict(other.named_parameters())
    for n in pb:
        torch.testing.assert_close(h(0.01)[n], pb[n].detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(h(100.0)[n], po[n].detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(h(1.0)[n], 0.5 * (pb[n] + po[n]).detach(), rtol=0, atol=1e-6)  # t(1) = 1/2
    assert any(not torch.equal(h(0.01)[n], h(100.0)[n]) for n in pb)  # depends on lambda from the start
    with pytest.raises(ValueError):
        H.LinearHyper(base, 0.01, 100.0, other=_base(hidden=[3]))


def test_lowrank_relu_features_are_one_relu_layer():
    base = _base(hidden=[4])
    h = H.LowRankHyper(base, 0.01, 100.0, rank=1, embed_dim=50, features="relu")
    assert h.embed_a.shape == (50,) and (h.embed_a.abs() <= 1).all() and (h.embed_c.abs() <= 1).all()
    for t in (0.0, 0.3, 1.0):
        tt = torch.tensor(t)
        torch.testing.assert_close(h.features(tt), torch.clamp(h.embed_a * t + h.embed_c, min=0))
    with pytest.raises(ValueError):
        H.LowRankHyper(base, 0.01, 100.0, features="gelu")


# --- pruning per layer, magnitude baseline, posterior summary, evidence ------------------------


def _set_scores(model, s0, s2):
    with torch.no_grad():
        model[0].weight_mu.copy_(s0)
        model[2].weight_mu.copy_(s2)
        for layer in V.bayes_layers(model):
            layer.weight_rho.fill_(V.softplus_inv(0.1))


def test_per_layer_pruning_removes_the_fraction_from_each_layer_while_global_ranking_does_not():
    model = _base(seed=0, hidden=[4])  # layers 4x5 (20 weights) and 2x4 (8 weights)
    g = torch.Generator().manual_seed(0)
    _set_scores(model, 0.01 * torch.rand(4, 5, generator=g), 1.0 + torch.rand(2, 4, generator=g))
    det, sc = V.to_deterministic(model), H.weight_scores(model)
    per = H.prune_model(det, sc, 0.5, ranking="per_layer")
    assert int((per[0].weight_mask == 0).sum()) == 10 and int((per[2].weight_mask == 0).sum()) == 4
    for i in (0, 2):  # within each layer the lowest scores go
        removed = per[i].weight_mask == 0
        assert sc[f"{i}.weight"][removed].max() <= sc[f"{i}.weight"][~removed].min()
    glob = H.prune_model(det, sc, 0.5, ranking="global")  # 14 of 28: all from the small-score first layer
    assert int((glob[0].weight_mask == 0).sum()) == 14 and int((glob[2].weight_mask == 0).sum()) == 0
    with pytest.raises(ValueError):
        H.prune_model(det, sc, 0.5, ranking="random")


def test_with_equal_sigmas_density_and_magnitude_are_one_criterion():
    model = _base(seed=2, hidden=[6])
    g = torch.Generator().manual_seed(1)
    _set_scores(model, torch.randn(6, 5, generator=g), torch.randn(2, 6, generator=g))
    s = H.posterior_summary(model)
    assert s["rank_corr"] == pytest.approx(1.0) and s["sigma_iqr"] == pytest.approx(0.0, abs=1e-7)
    assert s["median_sigma"] == pytest.approx(0.1, rel=1e-5)
    det = V.to_deterministic(model)
    a = H.prune_model(det, H.weight_scores(model), 0.5, ranking="per_layer")
    b = H.prune_model(det, H.magnitude_weight_scores(model), 0.5, ranking="per_layer")
    for i in (0, 2):
        assert torch.equal(a[i].weight_mask, b[i].weight_mask)
    # unequal sigmas: the two scores disagree and the rank correlation drops below 1
    with torch.no_grad():
        model[0].weight_rho.copy_(V.softplus_inv(0.1) + 3 * torch.randn(6, 5, generator=g))
    assert H.posterior_summary(model)["rank_corr"] < 0.99


def test_posterior_summary_quartiles_by_hand():
    model = _base(seed=0, hidden=[2])  # weights 2x5 and 2x2: 14 sigmas
    sig = torch.tensor([0.01 * (k + 1) for k in range(14)])
    with torch.no_grad():
        model[0].weight_rho.copy_(torch.log(torch.expm1(sig[:10])).reshape(2, 5))
        model[2].weight_rho.copy_(torch.log(torch.expm1(sig[10:])).reshape(2, 2))
    s = H.posterior_summary(model)
    q = np.quantile(sig.numpy(), [0.25, 0.5, 0.75])
    assert s["median_sigma"] == pytest.approx(q[1], rel=1e-4)
    assert s["sigma_iqr"] == pytest.approx(q[2] - q[0], rel=1e-4)


def test_evidence_terms_by_hand():
    ds = _toy_data()
    model = _base(seed=3, local_reparam=False)
    with torch.no_grad():
        for layer in V.bayes_layers(model):
            layer.weight_rho.fill_(-30.0)  # sigma ~ 1e-13: a draw of q is the mean network
            layer.bias_rho.fill_(-30.0)
    X, y = ds.X_train, ds.y_train
    e = H.evidence_terms(model, X, y, 2.0, 1000)
    model.eval()
    ll = -F.cross_entropy(model(X), y).item()
    assert e["loglik"] == pytest.approx(ll, rel=1e-5)
    assert e["kl_per_example"] == pytest.approx(V.kl_total(model).item() / 1000, rel=1e-5)
    assert e["evidence"] == pytest.approx(ll - 2.0 * e["kl_per_example"], rel=1e-5)
    assert H.evidence_terms(model, X, y, 0.0, 1000)["evidence"] == pytest.approx(e["loglik"])
