"""The methods of report 3 (paramspace.dropconnect): importances on the scaled simplex by mirror descent,
keep-probabilities, masked training through train.fit."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from paramspace import data as D
from paramspace import dropconnect as I
from paramspace import vision as V
from paramspace.train import seed_everything


def _tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double()


def _tiny_batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


# --- exponentiated gradient on the scaled simplex -----------------------------------------------


def test_eg_step_closed_form_three_elements():
    # w = (1, 1, 1), grad = (1, 0, -1), eta = ln 2: w * exp(-eta grad) = (1/2, 1, 2), sum 7/2,
    # so w' = 3 * (1/2, 1, 2) / (7/2) = (3/7, 6/7, 12/7)
    w = torch.ones(3, dtype=torch.float64)
    out = I.eg_step(w, torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64), math.log(2.0))
    torch.testing.assert_close(out, torch.tensor([3 / 7, 6 / 7, 12 / 7], dtype=torch.float64), rtol=1e-15, atol=0)
    # from a non-uniform point: w = (2, 1, 0) (a zero stays zero), grad = (0, ln 3, 5), eta = 1:
    # w * exp(-grad) = (2, 1/3, 0), sum 7/3 -> 3 * (6/7, 1/7, 0)
    out = I.eg_step(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64),
                    torch.tensor([0.0, math.log(3.0), 5.0], dtype=torch.float64), 1.0)
    torch.testing.assert_close(out, torch.tensor([18 / 7, 3 / 7, 0.0], dtype=torch.float64), rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_eg_iterates_stay_on_the_scaled_simplex(dtype, rtol):
    g = torch.Generator().manual_seed(0)
    w = torch.ones(7, 5, dtype=dtype)
    for _ in range(2000):
        grad = torch.randn(7, 5, generator=g, dtype=dtype) * 3 + torch.linspace(-1, 1, 35, dtype=dtype).reshape(7, 5)
        w = I.eg_step(w, grad, 0.5)
        assert (w >= 0).all() and torch.isfinite(w).all()
        assert abs(float(w.sum()) - 35) <= rtol * 35
    assert w.shape == (7, 5)


def test_kl_to_uniform_and_stats():
    n = 8
    u = torch.ones(n, dtype=torch.float64)
    assert float(I.kl_to_uniform(u)) == pytest.approx(0.0, abs=1e-15)
    vertex = torch.zeros(n, dtype=torch.float64)
    vertex[3] = n
    assert float(I.kl_to_uniform(vertex)) == pytest.approx(math.log(n))
    s = I.importance_stats(u)
    assert s["max_share"] == pytest.approx(1 / n) and s["effective_fraction"] == pytest.approx(1.0)
    s = I.importance_stats(vertex)
    assert s["max_share"] == pytest.approx(1.0) and s["effective_fraction"] == pytest.approx(1 / n)
    # n KL(w/n || u) = sum_j w_j log w_j
    w = torch.tensor([0.5, 1.5, 2.0, 0.0], dtype=torch.float64)
    assert float(4 * I.kl_to_uniform(w)) == pytest.approx(float(torch.special.xlogy(w, w).sum()))


# --- the objective and its gradient --------------------------------------------------------------


def test_importance_gradient_matches_finite_differences_and_the_closed_form():
    model = _tiny_cnn()
    x, y = _tiny_batch()
    gen = torch.Generator().manual_seed(1)
    w = {k: torch.exp(0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
         for k, p in model.named_parameters() if k in I.masked_names(model)}
    w = {k: v * v.numel() / v.sum() for k, v in w.items()}
    gamma, tau = 0.3, 0.02
    g = I.weight_gradient(model, list(w), x[:6], y[:6])
    val, grad = I.importance_grad(model, w, g, x[6:], y[6:], gamma, tau)
    assert val == pytest.approx(float(I.importance_objective(model, w, g, x[6:], y[6:], gamma, tau)))
    eps = 1e-6
    for k in w:
        for j in range(0, w[k].numel(), 5):
            wp = {kk: vv.clone() for kk, vv in w.items()}
            wm = {kk: vv.clone() for kk, vv in w.items()}
            wp[k].view(-1)[j] += eps
            wm[k].view(-1)[j] -= eps
            fd = (float(I.importance_objective(model, wp, g, x[6:], y[6:], gamma, tau))
                  - float(I.importance_objective(model, wm, g, x[6:], y[6:], gamma, tau))) / (2 * eps)
            assert grad[k].view(-1)[j].item() == pytest.approx(fd, rel=1e-6, abs=1e-9)
    # closed form: dJ/dw = -gamma g * g' + tau (1 + log w), g' the gradient at the stepped weights
    stepped = {k: p.detach() - w[k] * gamma * g[k] if k in w else p.detach() for k, p in model.named_parameters()}
    leaves = {k: v.clone().requires_grad_(True) for k, v in stepped.items()}
    loss = nn.functional.cross_entropy(torch.func.functional_call(model, leaves, (x[6:],)), y[6:])
    gprime = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
    for k in w:
        torch.testing.assert_close(grad[k], -gamma * g[k] * gprime[k] + tau * (1 + torch.log(w[k])),
                                   rtol=1e-10, atol=1e-14)


def _toy_problem():
    # a 3-class linear classifier (nine weights) whose weights get very different gradients on a fixed batch
    model = nn.Sequential(nn.Linear(3, 3, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.3, 0.0, 0.0], [-0.2, 0.1, 0.0], [0.0, 0.0, 0.1]]))
    x = torch.tensor([[3.0, 0.2, 0.1], [-3.0, 0.1, -0.2], [0.5, -0.1, 0.1], [-2.0, 0.2, 0.1],
                      [0.1, 1.0, 0.3], [0.0, -0.5, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 2, 0])
    return model, x, y


def test_unregularised_importances_collapse_to_a_vertex_regularised_do_not():
    model, x, y = _toy_problem()
    n = 9
    w0 = I.uniform_importance(model)
    # same batch inside and outside the step: to first order in gamma, J(w) = L - gamma sum_j w_j g_j^2,
    # linear in w, so its minimum over the simplex is the vertex of the largest squared gradient
    g2 = I.weight_gradient(model, ["0.weight"], x, y)["0.weight"] ** 2
    w, vals = I.mirror_descent(model, w0, x, y, x, y, eta=20.0, gamma=0.05, tau=0.0, steps=400)
    s = I.importance_stats(w["0.weight"])
    assert s["max_share"] > 0.99  # all the mass on one weight: max w close to |X| = 9
    assert float(w["0.weight"].max()) > 0.99 * n
    assert float(w["0.weight"].sum()) == pytest.approx(n, rel=1e-12)
    assert int(w["0.weight"].argmax()) == int(g2.argmax())
    assert vals[-1] < vals[0]  # the objective went down
    wr, vr = I.mirror_descent(model, w0, x, y, x, y, eta=20.0, gamma=0.05, tau=0.01, steps=400)
    sr = I.importance_stats(wr["0.weight"])
    assert sr["effective_fraction"] > 0.9 and sr["max_share"] < 0.3  # entropy stays high
    assert int(wr["0.weight"].argmax()) == int(g2.argmax())  # it still ranks the same weight first
    assert float(wr["0.weight"].sum()) == pytest.approx(n, rel=1e-12)


def test_importance_computation_leaves_batchnorm_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 3)).double()
    x, y = _tiny_batch()
    before = {k: v.clone() for k, v in model.named_buffers()}
    w = I.uniform_importance(model)
    assert set(w) == {"0.weight", "4.weight"}
    I.mirror_descent(model, w, x[:6], y[:6], x[6:], y[6:], eta=1.0, gamma=0.1, tau=0.01, steps=2)
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k


# --- DropConnect ---------------------------------------------------------------------------------


@pytest.mark.parametrize("min_keep", [0.0, 0.3, 0.5])
def test_keep_probabilities_expected_drops_equal_plain_dropconnect(min_keep):
    g = torch.Generator().manual_seed(0)
    p = 0.3
    for n, spread in [(1000, 0.5), (5000, 3.0), (17, 1.0)]:
        w = torch.exp(spread * torch.randn(n, generator=g, dtype=torch.float64))
        w = w * n / w.sum()
        k = I.keep_probabilities(w, p, min_keep)
        assert float((1 - k).sum()) == pytest.approx(p * n, rel=1e-12)  # expected number of drops
        assert (k >= min_keep - 1e-15).all() and (k <= 1).all()
        order = torch.argsort(w)
        assert (torch.diff(k[order]) >= -1e-15).all()  # more important -> kept at least as often
    u = torch.ones(50, dtype=torch.float64)
    torch.testing.assert_close(I.keep_probabilities(u, p, min_keep), torch.full((50,), 1 - p, dtype=torch.float64))


def test_keep_probabilities_of_a_collapsed_layer():
    w = torch.zeros(10, dtype=torch.float64)
    w[2] = 10.0  # a vertex: one weight holds all the importance, the rest underflowed to 0
    k = I.keep_probabilities(w, 0.3, 0.5)
    assert k[2] == 1.0 and float((1 - k).sum()) == pytest.approx(3.0, rel=1e-12)
    torch.testing.assert_close(k[w == 0], torch.full((9,), 6.0 / 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="min_keep"):
        I.keep_probabilities(w, 0.3, 0.8)


def test_dropconnect_masks_monte_carlo():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 10)).double()
    g = torch.Generator().manual_seed(3)
    w = torch.exp(torch.randn(10, 20, generator=g, dtype=torch.float64))
    w = w * 200 / w.sum()
    p = 0.4
    keep = {"0.weight": I.keep_probabilities(w, p, 0.2)}
    a = model[0].weight.detach()
    draws = 4000
    dropped, mean_w = 0.0, torch.zeros_like(a)
    gen = torch.Generator().manual_seed(5)
    for _ in range(draws):
        mp = I.masked_parameters(model, keep, gen)
        mw = mp["0.weight"].detach()
        dropped += float((mw == 0).sum())
        mean_w += mw / draws
        assert torch.equal(mp["0.bias"], model[0].bias)  # biases are never dropped
    # number of dropped weights per draw: mean p * 200 = 80, variance sum k (1 - k) <= 50
    var = float((keep["0.weight"] * (1 - keep["0.weight"])).sum())
    assert abs(dropped / draws - p * 200) < 5 * math.sqrt(var / draws)
    # unbiased: E[m a / k] = a, within 5 standard errors per weight
    se = a.abs() * torch.sqrt((1 - keep["0.weight"]) / keep["0.weight"] / draws)
    assert ((mean_w - a).abs() <= 5 * se + 1e-12).all()
    # plain DropConnect: every weight dropped with probability p, kept ones scaled by 1 / (1 - p)
    plain = I.plain_keep(model, p)
    mw = I.masked_parameters(model, plain, gen)["0.weight"].detach()
    kept = mw != 0
    torch.testing.assert_close(mw[kept], a[kept] / (1 - p))


# --- models, training, claims --------------------------------------------------------------------


def _toy_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n + 40, 1, 28, 28, generator=g)
    y = (X[:, 0, :14].mean((1, 2)) > X[:, 0, 14:].mean((1, 2))).long()
    return D.ImageTensors("toy", X[:n], y[:n], X[n:], y[n:])


@pytest.fixture(scope="module")
def fit_params():
    """train_method's keyword arguments: the smoke profile's values, two epochs of batch 32."""
    return dict(epochs=2, batch_size=32, optimizer="adam", lr=0.003, weight_decay=0.0, drop_rate=0.3, min_keep=0.5,
                importance_lr=300.0, importance_gamma=0.1, importance_tau=1e-4, importance_every=1,
                importance_steps=1, importance_data="same")


@pytest.mark.parametrize("method", I.METHODS)
def test_fit_runs_every_method(method, fit_params):
    data = _toy_data()
    seed_everything(0)
    model = V.small_cnn(1, 10, 4, 28)
    before = [p.detach().clone() for p in model.parameters()]
    out = I.train_method(model, data, method, seed=0, device=torch.device("cpu"), **fit_params)
    assert not model.training
    assert [r["epoch"] for r in out["epochs"]] == [1, 2]
    assert all(0 <= r["test_acc"] <= 1 and r["train_loss"] > 0 for r in out["epochs"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    if method.startswith("importance"):
        for k, v in out["importance"].items():
            assert (v >= 0).all() and float(v.sum()) == pytest.approx(v.numel(), rel=1e-4)
        assert "effective_fraction" in out["epochs"][0]
    else:
        assert out["importance"] is None


def test_fit_is_deterministic(fit_params):
    runs = []
    for _ in range(2):
        seed_everything(0)
        model = V.small_cnn(1, 10, 4, 28)
        runs.append(I.train_method(model, _toy_data(), "importance_dc_kl", seed=0, device="cpu", **fit_params))
    strip = lambda r: [{k: v for k, v in e.items() if k != "seconds"} for e in r["epochs"]]  # noqa: E731
    assert strip(runs[0]) == strip(runs[1])


def test_fit_uses_the_importance_data_option(fit_params):
    # the deck's same-batch objective (default) and our split-batch option learn different importances
    outs = {}
    for mode in ("same", "split"):
        seed_everything(0)
        outs[mode] = I.train_method(V.small_cnn(1, 10, 4, 28), _toy_data(), "importance_dc", seed=0,
                                    **{**fit_params, "importance_data": mode})["importance"]
    assert fit_params["importance_data"] == "same"
    assert any(not torch.allclose(outs["same"][k], outs["split"][k]) for k in outs["same"])
    for w in outs["split"].values():
        assert float(w.sum()) == pytest.approx(w.numel(), rel=1e-6)


def test_importance_batches_same_and_split():
    x, y = _tiny_batch(12)
    xi, yi, xo, yo = I.importance_batches(x, y, "same")
    assert xi is x and xo is x and yi is y and yo is y
    xi, yi, xo, yo = I.importance_batches(x, y, "split")
    assert torch.equal(torch.cat([xi, xo]), x) and torch.equal(torch.cat([yi, yo]), y) and len(yi) == 6
    with pytest.raises(ValueError, match="same"):
        I.importance_batches(x, y, "halves")


def test_same_batch_importance_gradient_is_minus_gamma_squared_gradient_to_first_order():
    # the deck's objective (same data inside and after the step): dJ/dw_j = -gamma g_j g'_j with
    # g' = g + O(gamma), so dJ/dw / (-gamma g^2) -> 1 as gamma -> 0, with an error linear in gamma
    model = _tiny_cnn()
    x, y = _tiny_batch()
    w = I.uniform_importance(model)
    g = I.weight_gradient(model, list(w), x, y)
    errs = []
    for gamma in (1e-3, 1e-4):
        _, grad = I.importance_grad(model, w, g, x, y, gamma, 0.0)
        errs.append(max(float((grad[k] + gamma * g[k] ** 2).abs().max() / (gamma * (g[k] ** 2).max())) for k in w))
    assert errs[1] < 2e-3 and errs[1] < errs[0] / 5


def test_collapse_check_converges_to_a_vertex_without_kl_and_not_with_it():
    model, x, y = _toy_problem()
    g2 = I.weight_gradient(model, ["0.weight"], x, y)["0.weight"] ** 2
    cc = I.collapse_check(model, x, y, eta=20.0, gamma=0.05, taus=(0.0, 0.01), steps=400)
    assert set(cc["tau"]) == {0.0, 0.01} and {0, 400} <= set(cc["step"])
    start = cc[cc["step"] == 0]
    assert np.allclose(start["max_share"], 1 / 9) and np.allclose(start["effective_fraction"], 1.0)
    end = cc[cc["step"] == 400].set_index("tau")
    assert end.loc[0.0, "max_share"] > 0.99  # the vertex: all importance on one weight
    assert end.loc[0.01, "effective_fraction"] > 0.9 and end.loc[0.01, "max_share"] < 0.3
    no_kl = cc[cc["tau"] == 0].sort_values("step")["objective"].to_numpy()
    assert no_kl[-1] < no_kl[0]
    w, _ = I.mirror_descent(model, I.uniform_importance(model), x, y, x, y, eta=20.0, gamma=0.05, steps=400)
    # the regularised run converges (eta tau = 0.2: the distance to its fixed point shrinks by 0.8 a step)
    # and stops early; its last state is carried to the recorded steps after it
    assert end.loc[0.01, "converged"] and not cc[cc["step"] == 0]["converged"].any()
    # the same iteration as mirror_descent (up to the early stop, where no entry moves by more than tol)
    assert I.importance_stats(w["0.weight"])["max_share"] == pytest.approx(end.loc[0.0, "max_share"], abs=1e-5)
    assert int(w["0.weight"].argmax()) == int(g2.argmax())

def test_paper_path_resnet18_on_image_tensors(fit_params):
    # the paper profile's code path (vision.load_data's ImageData with crop + flip, standardised;
    # ResNet-18 with batch norm and no normalisation layer; SGD; importance DropConnect + KL) on
    # eight random 32x32 RGB images instead of CIFAR-10
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    data = V.standardized(V.ImageData("cifar10", X, y, X.clone(), y, 10, "cifar", crop=True, flip=True))
    params = {**fit_params, "epochs": 1, "batch_size": 8, "optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4}
    seed_everything(0)
    net = V.build_model("resnet18", data.in_channels, data.n_classes, mean=None, std=None)
    out = I.train_method(net, data, "importance_dc_kl", seed=0, device=torch.device("cpu"), **params)
    assert len(out["importance"]) == 21 and len(out["epochs"]) == 1
    assert 0 <= out["epochs"][0]["test_acc"] <= 1
    assert data.sizes == (8, 8)


def test_train_method_stop_after_equals_the_first_epochs_of_a_full_run(fit_params):
    outs = []
    for stop in (None, 1):
        seed_everything(0)
        outs.append(I.train_method(V.small_cnn(1, 10, 4, 28), _toy_data(), "importance_dc_kl", seed=0,
                                   stop_after=stop, **fit_params))
    strip = lambda r: [{k: v for k, v in e.items() if k != "seconds"} for e in r["epochs"]]  # noqa: E731
    assert len(outs[0]["epochs"]) == 2 and len(outs[1]["epochs"]) == 1
    assert strip(outs[1]) == strip(outs[0])[:1]


def test_train_method_updates_the_importances_every_importance_every_steps(fit_params, monkeypatch):
    calls = []
    real = I.mirror_descent

    def counting(model, w, *args, **kw):
        calls.append(kw["steps"])
        return real(model, w, *args, **kw)

    monkeypatch.setattr(I, "mirror_descent", counting)
    # 96 images in batches of 32: 3 steps an epoch, 6 in two epochs; every 2nd step from step 0 -> 3 updates
    I.train_method(V.small_cnn(1, 10, 4, 28), _toy_data(), "importance_dc", seed=0,
                   **{**fit_params, "importance_every": 2, "importance_steps": 3})
    assert calls == [3, 3, 3]
    calls.clear()
    I.train_method(V.small_cnn(1, 10, 4, 28), _toy_data(), "dropconnect", seed=0, **fit_params)
    assert calls == []  # plain DropConnect never computes importances
    with pytest.raises(ValueError, match="method"):
        I.train_method(V.small_cnn(1, 10, 4, 28), _toy_data(), "dropout", seed=0, **fit_params)


def test_train_method_sgd_is_nesterov_with_a_cosine_schedule(fit_params, monkeypatch):
    from paramspace import train as T

    seen = {}
    real_fit = T.fit

    def spy(step, optimizer, batches, **kw):
        seen["opt"], seen["kw"] = optimizer, kw
        return real_fit(step, optimizer, batches, **kw)

    monkeypatch.setattr(T, "fit", spy)
    I.train_method(V.small_cnn(1, 10, 4, 28), _toy_data(), "no_dropout", seed=0,
                   **{**fit_params, "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "epochs": 2})
    group = seen["opt"].param_groups[0]
    assert isinstance(seen["opt"], torch.optim.SGD) and group["nesterov"] and group["momentum"] == 0.9
    assert group["weight_decay"] == 5e-4 and seen["kw"]["scheduler_every"] == "epoch"
    assert isinstance(seen["kw"]["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert group["lr"] == pytest.approx(0.0)  # cosine over 2 epochs: 0.1 -> 0.05 -> 0
