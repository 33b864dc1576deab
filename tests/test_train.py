"""The training loop: determinism, devices, convergence to closed-form solutions, errors."""

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

from paramspace import quality as metrics
from paramspace.data import Dataset
from paramspace.models import mlp, n_params, predict
from paramspace.train import resolve_device, seed_everything, task_loss, train

W_TRUE = torch.tensor([[1.5, -2.0, 0.5]])
B_TRUE = 0.25


def _linear_data(n=64, seed=0, noise=0.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    y = X @ W_TRUE.T + B_TRUE + noise * torch.randn(n, 1, generator=g)
    return Dataset("lin", "regression", X, y, X[:16], y[:16])


def _class_data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long()
    return Dataset("cls", "classification", X, y, X[:20], y[:20], n_classes=2)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_same_seed_same_init_gives_identical_weights():
    ds = _class_data()
    torch.manual_seed(0)
    a = mlp(4, [8], 2, "relu")
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    kw = dict(epochs=4, lr=0.01, batch_size=16, device="cpu", progress=False)
    ha = train(a, ds, seed=5, **kw)
    hb = train(b, ds, seed=5, **kw)
    train(c, ds, seed=6, **kw)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert ha.loss == hb.loss
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_training_changes_the_weights_and_returns_eval_mode():
    ds = _class_data()
    torch.manual_seed(0)
    model = mlp(4, [8], 2, "relu")
    before = _params(model)
    train(model, ds, epochs=2, device="cpu", progress=False)
    assert not model.training
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_resolve_device_missing_cuda(device):
    with pytest.raises(RuntimeError) as exc:
        resolve_device(device)
    msg = str(exc.value)
    assert device in msg and "cpu" in msg and "is_available" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_train_with_missing_cuda_raises_before_training():
    ds = _class_data()
    model = mlp(4, [8], 2)
    before = _params(model)
    with pytest.raises(RuntimeError, match="cuda"):
        train(model, ds, epochs=1, device="cuda", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_resolve_device_other_cases():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="tpu"):
        resolve_device("tpu")


def test_linear_regression_reaches_zero_loss_and_true_weights():
    ds = _linear_data()
    torch.manual_seed(0)
    lin = nn.Linear(3, 1)
    hist = train(lin, ds, epochs=300, lr=0.1, batch_size=len(ds.X_train), optimizer="sgd",
                 device="cpu", progress=False)
    assert hist.loss[-1] < 1e-8
    torch.testing.assert_close(lin.weight.detach(), W_TRUE, rtol=0, atol=1e-4)
    assert lin.bias.item() == pytest.approx(B_TRUE, abs=1e-4)
    assert metrics.r2(predict(lin, ds.X_test), ds.y_test) == pytest.approx(1.0, abs=1e-6)


def test_first_epoch_loss_of_full_batch_is_the_initial_mse():
    ds = _linear_data()
    lin = nn.Linear(3, 1)
    with torch.no_grad():
        init_mse = ((lin(ds.X_train) - ds.y_train) ** 2).mean().item()
    hist = train(lin, ds, epochs=3, lr=0.01, batch_size=1000, optimizer="sgd", device="cpu", progress=False)
    assert len(hist.loss) == 3
    assert hist.loss[0] == pytest.approx(init_mse, rel=1e-6)
    assert hist.loss[2] < hist.loss[1] < hist.loss[0]


def test_l2_regularizer_gives_the_ridge_solution():
    """Full-batch gradient descent on mean (Xw + b - y)^2 + lam |theta|^2 converges to
    (Z^T Z / n + lam I) theta = Z^T y / n with Z = [X 1]."""
    ds = _linear_data(noise=0.3)
    lam = 0.5
    X, y = ds.X_train.double(), ds.y_train.double()
    Z = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    theta = torch.linalg.solve(Z.T @ Z / len(X) + lam * torch.eye(4, dtype=torch.float64), Z.T @ y / len(X))
    lin = nn.Linear(3, 1)
    reg = lambda m: lam * sum((p**2).sum() for p in m.parameters())  # noqa: E731
    train(lin, ds, epochs=400, lr=0.1, batch_size=len(X), optimizer="sgd", regularizer=reg,
          device="cpu", progress=False)
    got = torch.cat([lin.weight.detach().reshape(-1), lin.bias.detach()]).double()
    torch.testing.assert_close(got, theta.reshape(-1), rtol=0, atol=1e-4)
    assert got.norm() < 0.6 * torch.cat([W_TRUE.reshape(-1), torch.tensor([B_TRUE])]).norm()


def test_huge_regularizer_drives_weights_to_zero():
    ds = _class_data()
    torch.manual_seed(0)
    model = mlp(4, [8], 2, "tanh")
    reg = lambda m: 1e3 * sum((p**2).sum() for p in m.parameters())  # noqa: E731
    assert max(p.abs().max().item() for p in model.parameters()) > 0.3
    # gradient step p <- p - lr (g_data + 2000 p): shrinks by 0.8 per step, so after 100 steps
    # only the data term's equilibrium |g_data| / 2000 (< 1e-3 here) remains
    train(model, ds, epochs=100, lr=1e-4, batch_size=len(ds.X_train), optimizer="sgd",
          regularizer=reg, device="cpu", progress=False)
    assert max(p.abs().max().item() for p in model.parameters()) < 2e-3


@pytest.mark.parametrize("kwargs", [dict(epochs=0), dict(batch_size=0), dict(lr=0.0), dict(lr=-1.0),
                                    dict(optimizer="rmsprop")])
def test_bad_arguments(kwargs):
    ds = _class_data()
    with pytest.raises(ValueError):
        train(mlp(4, [8], 2), ds, **{"device": "cpu", "progress": False, **kwargs})


def test_eval_every_records_quality():
    ds = _class_data()
    torch.manual_seed(0)
    model = mlp(4, [8], 2)
    hist = train(model, ds, epochs=5, eval_every=2, device="cpu", progress=False)
    # after epochs 2, 4 and the last one (5)
    assert len(hist.train_quality) == len(hist.test_quality) == 3
    assert hist.quality_name == "accuracy"
    assert all(0.0 <= q <= 1.0 for q in hist.train_quality + hist.test_quality)
    assert hist.test_quality[-1] == pytest.approx(metrics.quality(model, ds.X_test, ds.y_test, ds.task))
    assert set(hist.as_dict()) == {"loss", "train_quality", "test_quality", "quality_name"}


def test_seed_everything():
    g = seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    g = seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    assert a == b


def test_task_loss():
    out = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    # -log softmax: row 1: log(1 + e^-2), row 2: log 2
    expected = (np.log(1 + np.exp(-2.0)) + np.log(2.0)) / 2
    assert task_loss("classification")(out, y).item() == pytest.approx(expected, rel=1e-6)
    assert task_loss("regression")(torch.tensor([1.0, 3.0]), torch.tensor([[0.0], [1.0]])).item() == 2.5
    with pytest.raises(ValueError):
        task_loss("ranking")


# --- metrics and models (used by the loop) ----------------------------------------------------


def test_metrics_by_hand():
    out = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert metrics.accuracy(out, torch.tensor([0, 1, 1, 1])) == 0.75
    assert metrics.mse(torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]])) == 2.5
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # ss_tot = 5, ss_res = 0.25 * 4 = 1 -> R^2 = 0.8
    assert metrics.r2(y + torch.tensor([0.5, -0.5, 0.5, -0.5]), y) == pytest.approx(0.8)
    assert metrics.r2(torch.full((4,), 2.5), y) == pytest.approx(0.0)
    assert metrics.quality_name("regression") == "R²"


def test_mlp_shapes_and_counts():
    m = mlp(5, [7, 3], 2, "gelu")
    assert n_params(m) == 5 * 7 + 7 + 7 * 3 + 3 + 3 * 2 + 2
    assert [type(x).__name__ for x in m] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    with pytest.raises(ValueError):
        mlp(5, [0], 2)
    with pytest.raises(ValueError, match="activation"):
        mlp(5, [3], 2, "swish")
    X = torch.randn(10, 5)
    m.train()
    out = predict(m, X, batch_size=3)
    assert out.shape == (10, 2) and m.training  # predict restores the mode
    torch.testing.assert_close(out, m(X))


def test_cpu_threads_context_restores_the_thread_count_even_on_error():
    from paramspace.train import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"):
        with cpu_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with cpu_threads(0) as n:  # 0 keeps torch's current setting
        assert n == before


def test_cpu_threads_limits_numpy_blas_too():
    # the eigendecompositions of Belsley's method run in NumPy's BLAS, which torch's setting does not reach
    from threadpoolctl import threadpool_info

    from paramspace.train import cpu_threads

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    np.linalg.eigh(np.eye(3))  # make sure NumPy's BLAS is loaded
    before = blas_threads()
    assert before
    with cpu_threads(1):
        assert set(blas_threads()) == {1}
    assert blas_threads() == before


# --- the one loop: train.fit ----------------------------------------------------------------------


def _scalar(value: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([value], dtype=torch.float64))


def test_fit_gradient_descent_matches_closed_form():
    """SGD on (w - a)^2 / 2 with rate eta: w_k = a + (1 - eta)^k (w_0 - a)."""
    from paramspace.train import fit, make_optimizer

    a, w0, eta, k = 3.0, -1.0, 0.1, 7
    w = _scalar(w0)
    opt = make_optimizer([w], "sgd", eta)
    fitted = fit(lambda _b: 0.5 * ((w - a) ** 2).sum(), opt, lambda e: [torch.zeros(1)], epochs=k)
    assert fitted.steps == k
    assert w.item() == pytest.approx(a + (1 - eta) ** k * (w0 - a), rel=1e-12)
    # the recorded loss of epoch e is the loss before its step: (w_e - a)^2 / 2
    assert fitted.losses[2] == pytest.approx(0.5 * ((1 - eta) ** 2 * (w0 - a)) ** 2, rel=1e-12)


def test_fit_tracks_a_weighted_mean_and_hooks_and_clipping():
    from paramspace.train import fit, make_optimizer

    w = _scalar(0.0)
    opt = make_optimizer([w], "sgd", 1.0)
    # two batches per epoch, of 3 and 1 examples; the tracked value is (batch size, 1)
    batches = lambda e: [torch.arange(3), torch.arange(1)]  # noqa: E731
    steps_seen, epochs_seen = [], []

    def step(idx):
        return 10.0 * w.sum(), torch.tensor([float(len(idx)), 1.0])  # gradient 10, clipped to 1

    fitted = fit(step, opt, batches, epochs=5, clip=1.0, clip_mode="value",
                 after_step=lambda s, b: steps_seen.append(s),
                 after_epoch=lambda e, m: epochs_seen.append(e) or e == 1)  # stop after the second epoch
    assert epochs_seen == [0, 1] and steps_seen == [1, 2, 3, 4] and fitted.steps == 4
    assert w.item() == pytest.approx(-4.0)  # four steps of lr 1 x clipped gradient 1
    # weighted mean of the tracked vectors: (3 * 3 + 1 * 1) / 4 and (3 * 1 + 1 * 1) / 4
    assert fitted.losses[0] == pytest.approx([2.5, 1.0])


def test_fit_steps_the_scheduler_per_step_or_per_epoch():
    from paramspace.train import fit, make_optimizer

    for every, expected in (("step", 6), ("epoch", 3)):
        w = _scalar(1.0)
        opt = make_optimizer([w], "sgd", 1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        fit(lambda b: w.sum(), opt, lambda e: [torch.zeros(1), torch.zeros(1)], epochs=3, scheduler=sched,
            scheduler_every=every)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 ** expected)


def test_make_optimizer_rejects_bad_input_clearly():
    from paramspace.train import make_optimizer

    w = _scalar(0.0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer([w], "rmsprop", 0.1)
    with pytest.raises(ValueError, match="nesterov"):
        make_optimizer([w], "sgd", 0.1, nesterov=True)
    opt = make_optimizer([w], "sgd", 0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["weight_decay"] == 1e-4
