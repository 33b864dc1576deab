"""Curvature: exact Hessians, diagonals, HVPs and per-sample gradients against closed forms and
finite differences (float64)."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paramspace import curvature
from paramspace.models import mlp


def _regression_data(n=20, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    return X, y


def _task_case(task, n, **model_kwargs):
    """Data of ``n`` rows and a tanh MLP with 3 inputs for ``task`` (1 output, or 3 classes)."""
    if task == "regression":
        return (*_regression_data(n=n), _tanh_mlp(3, 1, **model_kwargs))
    return (*_classification_data(n=n), _tanh_mlp(3, 3, **model_kwargs))


def _classification_data(n=15, d=3, c=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    return X, y


def _tanh_mlp(d, out, seed=0, act="tanh", hidden=4):
    torch.manual_seed(seed)
    return mlp(d, [hidden], out, act).double()


def _fd_hessian(f, theta, h=1e-4):
    """Central finite-difference Hessian from function values only."""
    P = theta.numel()
    H = torch.zeros(P, P, dtype=torch.float64)
    E = torch.eye(P, dtype=torch.float64) * h
    with torch.no_grad():
        for i in range(P):
            for j in range(i, P):
                v = (f(theta + E[i] + E[j]) - f(theta + E[i] - E[j])
                     - f(theta - E[i] + E[j]) + f(theta - E[i] - E[j])) / (4 * h * h)
                H[i, j] = H[j, i] = v
    return H


def _closed_form_linreg_hessian(X):
    n = len(X)
    Z = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], dim=1)  # weight first, then bias
    return 2.0 / n * Z.T @ Z


# --- hessian ----------------------------------------------------------------------------------


def test_flat_params_order_weight_then_bias():
    lin = nn.Linear(3, 1).double()
    theta, names, shapes = curvature.flat_params(lin)
    assert names == ["weight", "bias"]
    assert torch.equal(theta[:3], lin.weight.detach().reshape(-1))
    assert torch.equal(theta[3:], lin.bias.detach())


@pytest.mark.parametrize("batch_size", [4096, 7])
def test_hessian_linear_regression_closed_form(batch_size):
    X, y = _regression_data()
    torch.manual_seed(0)
    lin = nn.Linear(3, 1).double()
    H = curvature.hessian(lin, X, y, "regression", batch_size=batch_size)
    torch.testing.assert_close(H, _closed_form_linreg_hessian(X), rtol=1e-12, atol=1e-12)


def test_hessian_linear_regression_l2_adds_identity():
    X, y = _regression_data()
    lin = nn.Linear(3, 1).double()
    H = curvature.hessian(lin, X, y, "regression", l2=0.3)
    expected = _closed_form_linreg_hessian(X) + 0.3 * torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(H, expected, rtol=1e-12, atol=1e-12)


def test_hessian_is_independent_of_the_weights_for_linear_regression():
    X, y = _regression_data()
    lin = nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.fill_(5.0)
        lin.bias.fill_(-2.0)
    H = curvature.hessian(lin, X, y, "regression")
    torch.testing.assert_close(H, _closed_form_linreg_hessian(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_hessian_tanh_mlp_matches_finite_differences(task):
    if task == "regression":
        X, y = _regression_data(n=12, d=3)
        model = _tanh_mlp(3, 1)
    else:
        X, y = _classification_data(n=12, d=3, c=3)
        model = _tanh_mlp(3, 3, hidden=3)
    theta, _, _ = curvature.flat_params(model)
    f = curvature.loss_function(model, X, y, task)
    H = curvature.hessian(model, X, y, task)
    H_fd = _fd_hessian(f, theta)
    assert H.shape == (theta.numel(), theta.numel())
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(H, H_fd, rtol=0, atol=1e-5)
    # the Hessian is not trivially diagonal / zero here
    assert H_fd.abs().max() > 1e-2


def test_loss_function_is_the_mean_nll():
    X, y = _classification_data()
    model = _tanh_mlp(3, 3)
    theta, _, _ = curvature.flat_params(model)
    f = curvature.loss_function(model, X, y, "classification")
    logits = model(X)
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    expected = -logp[torch.arange(len(y)), y].mean()
    torch.testing.assert_close(f(theta), expected, rtol=1e-12, atol=1e-12)
    f2 = curvature.loss_function(model, X, y, "classification", l2=0.5)
    torch.testing.assert_close(f2(theta), expected + 0.25 * (theta**2).sum(), rtol=1e-12, atol=1e-12)


# --- hessian_diagonal -------------------------------------------------------------------------


@pytest.mark.parametrize("task,act", [("regression", "tanh"), ("classification", "tanh"),
                                      ("regression", "relu")])
@pytest.mark.parametrize("chunk", [3, 256])
def test_hessian_diagonal_equals_diag_of_hessian(task, act, chunk):
    X, y, model = _task_case(task, n=16, act=act, seed=3)
    H = curvature.hessian(model, X, y, task)
    d = curvature.hessian_diagonal(model, X, y, task, chunk=chunk)
    torch.testing.assert_close(d, torch.diagonal(H), rtol=1e-10, atol=1e-12)


def test_hessian_diagonal_relu_regression_closed_form_for_linear_part():
    """ReLU net: the last layer is linear in its weights, so its block of the Hessian is
    2/n [a 1]^T [a 1] with a the hidden activations (weights-then-bias order)."""
    X, y = _regression_data(n=16, d=3)
    model = _tanh_mlp(3, 1, act="relu", seed=3)
    d = curvature.hessian_diagonal(model, X, y, "regression", chunk=3, batch_size=5)
    with torch.no_grad():
        a = model[1](model[0](X))  # hidden activations, n x 4
    expected_last = torch.cat([2.0 / len(X) * (a**2).sum(0), torch.tensor([2.0], dtype=torch.float64)])
    torch.testing.assert_close(d[-5:], expected_last, rtol=1e-10, atol=1e-12)


def test_hessian_diagonal_linear_regression_closed_form_with_l2():
    X, y = _regression_data()
    lin = nn.Linear(3, 1).double()
    d = curvature.hessian_diagonal(lin, X, y, "regression", l2=0.1, chunk=3, batch_size=6)
    expected = torch.cat([2.0 / len(X) * (X**2).sum(0), torch.tensor([2.0], dtype=torch.float64)]) + 0.1
    torch.testing.assert_close(d, expected, rtol=1e-12, atol=1e-12)


def test_task_loss_regression_is_mean_squared_error():
    """task_loss writes MSE out (for vmap); it must still be the mean squared error."""
    from paramspace.train import task_loss

    out = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [2.0], [1.0]], dtype=torch.float64)
    assert task_loss("regression")(out, y).item() == pytest.approx((1 + 0 + 9) / 3)
    assert task_loss("regression")(out, y).item() == pytest.approx(F.mse_loss(out, y).item())


# --- hvp --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_hvp_equals_H_times_v(task):
    X, y, model = _task_case(task, n=10, seed=5)
    theta, _, _ = curvature.flat_params(model)
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    H = curvature.hessian(model, X, y, task)
    torch.testing.assert_close(curvature.hvp(model, X, y, task, v), H @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(curvature.hvp(model, X, y, task, v, l2=0.7), H @ v + 0.7 * v,
                               rtol=1e-10, atol=1e-12)


def test_hvp_linear_regression_closed_form():
    X, y = _regression_data()
    lin = nn.Linear(3, 1).double()
    v = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(curvature.hvp(lin, X, y, "regression", v),
                               _closed_form_linreg_hessian(X) @ v, rtol=1e-12, atol=1e-12)


# --- per-sample gradients and the empirical Fisher --------------------------------------------


def _loop_grads(model, X, y, task):
    rows = []
    for i in range(len(X)):
        out = model(X[i:i + 1])
        if task == "regression":
            loss = ((out - y[i:i + 1]) ** 2).mean()
        else:
            loss = F.cross_entropy(out, y[i:i + 1])
        gs = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(rows)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_per_sample_grads_match_autograd_loop(task):
    X, y, model = _task_case(task, n=8, seed=2)
    G = curvature.per_sample_grads(model, X, y, task)
    expected = _loop_grads(model, X, y, task)
    assert G.shape == expected.shape == (8, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(G, expected, rtol=1e-10, atol=1e-12)


def test_per_sample_grads_linear_regression_closed_form():
    """loss_i = (w.x_i + b - y_i)^2 -> grad = 2 r_i [x_i, 1]."""
    X, y = _regression_data(n=6)
    lin = nn.Linear(3, 1).double()
    r = (lin(X) - y).detach()
    expected = 2 * r * torch.cat([X, torch.ones(6, 1, dtype=torch.float64)], 1)
    torch.testing.assert_close(curvature.per_sample_grads(lin, X, y, "regression"), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_gradient_outer_is_mean_of_outer_products(task):
    X, y, model = _task_case(task, n=9, seed=4)
    rows = _loop_grads(model, X, y, task)
    expected = sum(torch.outer(g, g) for g in rows) / len(rows)
    torch.testing.assert_close(curvature.gradient_outer(model, X, y, task), expected, rtol=1e-10, atol=1e-12)


# --- Laplace covariance -----------------------------------------------------------------------


def test_laplace_covariance_inverts_damped_pd_hessian():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    H = A @ A.T + 0.5 * torch.eye(6, dtype=torch.float64)
    damping = 1e-2
    C = curvature.laplace_covariance(H, damping)
    torch.testing.assert_close(C @ (H + damping * torch.eye(6, dtype=torch.float64)),
                               torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(C, C.T, rtol=0, atol=1e-12)


def test_laplace_covariance_diagonal_by_hand():
    H = torch.diag(torch.tensor([4.0, 1.0, 0.0], dtype=torch.float64))
    C = curvature.laplace_covariance(H, 1.0)
    torch.testing.assert_close(C, torch.diag(torch.tensor([1 / 5, 1 / 2, 1.0], dtype=torch.float64)),
                               rtol=0, atol=1e-14)


def test_laplace_covariance_clips_negative_eigenvalues():
    # H = Q diag(3, -2, 0.5) Q^T: the negative eigenvalue is clipped to 0, so C has eigenvalues
    # 1/(3+d), 1/d, 1/(0.5+d) with the same eigenvectors.
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    lam = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    H = Q @ torch.diag(lam) @ Q.T
    d = 0.1
    C = curvature.laplace_covariance(H, d)
    expected = Q @ torch.diag(1.0 / (lam.clamp_min(0) + d)) @ Q.T
    torch.testing.assert_close(C, expected, rtol=0, atol=1e-10)
    evals = torch.linalg.eigvalsh(C)
    assert (evals > 0).all()
    torch.testing.assert_close(evals.sort().values, torch.tensor(sorted([1 / 3.1, 1 / 0.1, 1 / 0.6]),
                                                                 dtype=torch.float64), rtol=1e-10, atol=0)


def test_split_like_roundtrip():
    model = _tanh_mlp(3, 2)
    theta, _, _ = curvature.flat_params(model)
    parts = curvature.split_like(theta, model)
    for name, p in model.named_parameters():
        assert torch.equal(parts[name], p.detach())


# --- issue 16: the Hessian (and G) in column blocks within a memory budget ---------------------------


def _block_for(model, X, budget, batch_size=4096):
    P = curvature.flat_params(model)[0].numel()
    return curvature.column_block(model, X, P, min(batch_size, len(X)), budget)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("budget", [1, 100_000, 10**9])
def test_blocked_hessian_equals_all_directions_at_once_and_finite_differences(task, budget):
    X, y, model = _task_case(task, n=13, seed=2, hidden=5)
    block = _block_for(model, X, budget)
    P = curvature.flat_params(model)[0].numel()
    assert (block == 1) if budget == 1 else (block == P if budget == 10**9 else 1 < block < P)
    H = curvature.hessian(model, X, y, task, batch_size=5, memory_budget=budget)
    torch.testing.assert_close(H, curvature.hessian_full(model, X, y, task, batch_size=5), rtol=1e-12, atol=1e-13)
    theta = curvature.flat_params(model)[0]
    torch.testing.assert_close(H, _fd_hessian(curvature.loss_function(model, X, y, task), theta), rtol=0, atol=1e-5)


def test_blocked_hessian_l2_and_diagonal_with_a_budget():
    X, y, model = _task_case("classification", n=11, seed=3)
    H = curvature.hessian(model, X, y, "classification", l2=0.2, memory_budget=1)
    torch.testing.assert_close(H, curvature.hessian_full(model, X, y, "classification", l2=0.2), rtol=1e-12, atol=1e-13)
    d = curvature.hessian_diagonal(model, X, y, "classification", l2=0.2, memory_budget=1)
    torch.testing.assert_close(d, torch.diagonal(H), rtol=1e-12, atol=1e-13)


def test_gradient_outer_in_sample_chunks_is_unchanged():
    X, y, model = _task_case("regression", n=10, seed=5)
    full = curvature.gradient_outer(model, X, y, "regression")
    torch.testing.assert_close(curvature.gradient_outer(model, X, y, "regression", memory_budget=1), full,
                               rtol=1e-12, atol=1e-13)


def test_column_block_scales_with_the_budget_and_rejects_nonsense():
    X, _, model = _task_case("regression", n=50, seed=0, hidden=8)
    P = curvature.flat_params(model)[0].numel()
    # units per row: Linear(3->8) 8, Tanh 8, Linear(8->1) 1, the Sequential's own output 1 = 18
    assert curvature._units_per_row(model, X) == 18
    per_column = 8 * 12 * (50 * 18 + P)
    assert curvature.column_block(model, X, P, 50, 3 * per_column) == 3
    assert curvature.column_block(model, X, P, 50, 3 * per_column - 1) == 2
    with pytest.raises(ValueError, match="memory_budget"):
        curvature.column_block(model, X, P, 50, 0)
