"""Report 4: the frame regularizer (Gershgorin rows, convolution Grams without the Toeplitz matrix),
the baselines (SO, SRIP, OCNN, MHE), spectra, corruptions, SimBA, models and claims."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paramspace import frame as Fr
from paramspace.claims import VERDICTS, verdict_paired
from paramspace.reports import ProfileError, resolve

DT = torch.float64


def circular_operator(K: torch.Tensor, stride: int, n: int) -> torch.Tensor:
    """The explicit matrix of the circular convolution with kernel ``K`` (odd size, padding (k-1)/2)
    and ``stride`` on an ``n x n`` input: column j is the layer's output for the j-th unit input."""
    c_in, k = K.shape[1], K.shape[2]
    p = (k - 1) // 2
    X = torch.eye(c_in * n * n, dtype=K.dtype).reshape(-1, c_in, n, n)
    Y = F.conv2d(F.pad(X, (p, p, p, p), mode="circular"), K, stride=stride)
    return Y.reshape(len(X), -1).T


def _rows(d, r):
    return sorted(zip(d.tolist(), r.tolist()))


# (c_out, c_in, k, stride, n): input and output sides, stride 1 and 2, 3x3 and 1x1 kernels
CASES = [(3, 2, 3, 1, 6), (2, 3, 3, 1, 6), (8, 2, 3, 2, 8), (4, 2, 3, 2, 8), (6, 2, 1, 2, 6), (2, 3, 1, 2, 6),
         (2, 2, 1, 1, 4)]


# --- the penalty ------------------------------------------------------------------------------------


def test_penalty_is_zero_on_tight_frames():
    # orthonormal columns scaled by sqrt(1.5): V = 1.5 I, every disc is the point 1.5 in [0.5, 2]
    Q, _ = torch.linalg.qr(torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=DT))
    assert float(Fr.frame_penalty_matrix(math.sqrt(1.5) * Q, 0.5, 2.0)) == 0.0
    # the Mercedes-Benz frame: three unit vectors at 120 degrees, scaled by sqrt(2/3), W^T W = I
    th = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=DT)
    W = math.sqrt(2 / 3) * torch.stack([th.cos(), th.sin()], 1)
    torch.testing.assert_close(W.T @ W, torch.eye(2, dtype=DT))
    assert float(Fr.frame_penalty_matrix(W, 1.0, 1.0)) == pytest.approx(0.0, abs=1e-28)
    assert float(Fr.frame_penalty_matrix(W, 0.9, 1.1)) == 0.0
    # a wide layer with orthonormal rows: W W^T = I (W^T W is singular), penalty on the output side
    Wt = Q.T
    assert Fr.linear_side(Wt) == "output" and float(Fr.frame_penalty_matrix(Wt, 0.5, 2.0)) == 0.0
    # but its singular input-side Gram violates any A > 0
    assert float(Fr.frame_penalty_matrix(Wt, 0.5, 2.0, side="input")) > 0


def test_penalty_hand_computed_when_violated():
    # W^T W = [[2, 1], [1, 2]]: each row has d = 2, r = 1.  A = 0.5, B = 2: the lower term
    # min(2 - 0.5 - 1, 0) = 0, the upper min(2 - 2 - 1, 0) = -1 -> 1 per row, mean 1.
    W = torch.tensor([[math.sqrt(2), 1 / math.sqrt(2)], [0.0, math.sqrt(1.5)]], dtype=DT)
    torch.testing.assert_close(W.T @ W, torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=DT))
    assert float(Fr.frame_penalty_matrix(W, 0.5, 2.0)) == pytest.approx(1.0)
    # A = 1.5: the lower term min(2 - 1.5 - 1, 0)^2 = 0.25 is added
    assert float(Fr.frame_penalty_matrix(W, 1.5, 2.0)) == pytest.approx(1.25)
    # rows with different discs: V = diag(3, 0.2) -> (3 - 2)^2 above B, (0.2 - 0.5)^2 below A, mean of the two
    assert float(Fr.gershgorin_penalty(torch.tensor([3.0, 0.2], dtype=DT), torch.zeros(2, dtype=DT), 0.5, 2.0)) \
        == pytest.approx((1.0 + 0.09) / 2)


def test_penalty_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(4, 3, generator=g, dtype=DT)
    K = torch.randn(3, 2, 3, 3, generator=g, dtype=DT) * 0.4
    for X, f in [(W, lambda Z: Fr.frame_penalty_matrix(Z, 0.5, 2.0)),
                 (K, lambda Z: Fr.frame_penalty_conv(Z, 0.5, 2.0, stride=1)),
                 (K, lambda Z: Fr.frame_penalty_conv(Z, 0.2, 1.5, stride=2))]:
        Z = X.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(Z), Z)
        eps = 1e-6
        for j in range(0, X.numel(), 3):
            zp, zm = X.clone(), X.clone()
            zp.view(-1)[j] += eps
            zm.view(-1)[j] -= eps
            fd = (float(f(zp)) - float(f(zm))) / (2 * eps)
            assert grad.reshape(-1)[j].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


# --- convolutions without the Toeplitz matrix --------------------------------------------------------


@pytest.mark.parametrize("c_out,c_in,k,stride,n", CASES)
def test_conv_gram_rows_match_the_explicit_circular_operator(c_out, c_in, k, stride, n):
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(c_out * 10 + c_in), dtype=DT)
    T = circular_operator(K, stride, n)
    side = Fr.conv_side(K, stride)
    V = T.T @ T if side == "input" else T @ T.T
    d, r = Fr.matrix_rows(V)
    read = d > 1e-12  # rows of the pixels a strided layer never reads are zero; they are left out
    if side == "output" or k >= stride:
        assert bool(read.all())
    d, r = d[read], r[read]
    fd, fr = Fr.gram_rows(Fr.conv_gram(K, stride))
    reps = len(d) // len(fd)
    assert reps * len(fd) == len(d)
    for (a1, b1), (a2, b2) in zip(_rows(d, r), _rows(fd.repeat(reps), fr.repeat(reps))):
        assert a1 == pytest.approx(a2, abs=1e-11) and b1 == pytest.approx(b2, abs=1e-11)
    # so the penalty is the mean over every (read) row of the explicit Gram
    A, B = 0.5, 2.0
    assert float(Fr.frame_penalty_conv(K, A, B, stride)) == pytest.approx(float(Fr.gershgorin_penalty(d, r, A, B)))
    # the side: input when c_out >= c_in * (read phases)
    assert side == ("input" if c_out >= c_in * min(stride, k) ** 2 else "output")


def test_conv_gram_interior_rows_of_a_zero_padded_layer():
    # nn.Conv2d with zero padding 1 on a 9 x 9 image: rows of pixels at least k - 1 from the border
    # are exactly the rows of the infinite-grid Gram
    K = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    n, c_in = 9, 2
    X = torch.eye(c_in * n * n, dtype=DT).reshape(-1, c_in, n, n)
    T = F.conv2d(X, K, padding=1).reshape(len(X), -1).T
    d, r = Fr.matrix_rows(T.T @ T)
    fd, fr = Fr.gram_rows(Fr.conv_gram(K, 1, side="input"))
    for c in range(c_in):
        i = c * n * n + 4 * n + 4  # channel c at the centre pixel
        assert float(d[i]) == pytest.approx(float(fd[c])) and float(r[i]) == pytest.approx(float(fr[c]))
    corner = 0
    assert float(r[corner]) < float(fr[0])  # a border row loses terms


def test_polyphase_kernel_turns_a_strided_conv_into_a_stride_one_conv():
    g = torch.Generator().manual_seed(4)
    K = torch.randn(5, 3, 3, 3, generator=g, dtype=DT)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=DT)
    out = F.conv2d(x, K, stride=2)
    out2 = F.conv2d(F.pixel_unshuffle(x, 2), Fr.polyphase_kernel(K, 2))
    torch.testing.assert_close(out, out2)
    assert Fr.polyphase_kernel(K, 2).shape == (5, 12, 2, 2)
    # a 1x1 kernel with stride 2 reads one phase in four
    assert Fr.polyphase_kernel(torch.ones(4, 3, 1, 1), 2).shape == (4, 3, 1, 1)


def test_orthogonal_convolutions_have_zero_penalty():
    # identity (delta) kernel: T = I
    K = torch.zeros(4, 4, 3, 3, dtype=DT)
    K[range(4), range(4), 1, 1] = 1.0
    assert float(Fr.frame_penalty_conv(K, 0.5, 2.0)) == 0.0
    assert float(Fr.ocnn_penalty(K, 1)) == pytest.approx(0.0, abs=1e-24)
    # a 1x1 convolution with orthonormal columns (c_out = 6 >= c_in = 3) and a shift kernel
    Q, _ = torch.linalg.qr(torch.randn(6, 3, generator=torch.Generator().manual_seed(5), dtype=DT))
    assert float(Fr.frame_penalty_conv(Q.reshape(6, 3, 1, 1), 0.9, 1.1)) == pytest.approx(0.0, abs=1e-24)
    S = torch.zeros(2, 2, 3, 3, dtype=DT)
    S[0, 0, 0, 2] = S[1, 1, 2, 0] = 1.0  # two channels shifted in different directions
    assert float(Fr.frame_penalty_conv(S, 1.0, 1.0)) == 0.0


@pytest.mark.parametrize("c_out,c_in,k,stride,n", CASES)
def test_conv_spectrum_matches_the_explicit_operator(c_out, c_in, k, stride, n):
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(7 + c_out), dtype=DT)
    T = circular_operator(K, stride, n)
    if Fr.conv_side(K, stride) == "input":
        T = T[:, T.abs().sum(0) > 0]  # the pixels the layer reads
        ev = torch.linalg.eigvalsh(T.T @ T)
    else:
        ev = torch.linalg.eigvalsh(T @ T.T)
    fs = Fr.conv_spectrum(K, stride, n)
    assert len(fs) == len(ev)
    torch.testing.assert_close(fs.sort().values, ev.clamp_min(0).sort().values, atol=1e-10, rtol=1e-10)


def test_conv_spectrum_on_a_grid_smaller_than_the_kernel_wraps_around():
    # on a 2 x 2 circular grid a 3 x 3 kernel's taps wrap around (they add up modulo 2)
    K = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(8), dtype=DT)
    T = circular_operator(K, 1, 2)
    assert T.shape == (12, 8)
    ev = torch.linalg.eigvalsh(T.T @ T)
    torch.testing.assert_close(Fr.conv_spectrum(K, 1, 2).sort().values, ev.clamp_min(0).sort().values)


def test_linear_spectrum():
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=DT)
    torch.testing.assert_close(Fr.linear_spectrum(W), torch.tensor([1.0, 4.0], dtype=DT))
    torch.testing.assert_close(Fr.linear_spectrum(W.T), torch.tensor([1.0, 4.0], dtype=DT))  # W W^T side


# --- baselines ----------------------------------------------------------------------------------------


def test_soft_orthogonality():
    Q, _ = torch.linalg.qr(torch.randn(5, 3, generator=torch.Generator().manual_seed(9), dtype=DT))
    assert float(Fr.so_penalty(Q)) == pytest.approx(0.0, abs=1e-24)
    assert float(Fr.so_penalty(Q.T)) == pytest.approx(0.0, abs=1e-24)  # wide: W W^T
    # diag(2, 1): W^T W - I = diag(3, 0) -> 9
    assert float(Fr.so_penalty(torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=DT))) == pytest.approx(9.0)
    # a conv kernel is reshaped to c_out x (c_in k^2): 2 x 18, rows (1, 0, ...) and (1, 0, ...) -> W W^T = all ones
    K = torch.zeros(2, 2, 3, 3, dtype=DT)
    K[:, 0, 0, 0] = 1.0
    assert float(Fr.so_penalty(K)) == pytest.approx(2.0)  # off-diagonal ones: 1 + 1


def test_srip_power_iteration_and_its_gradient():
    g = torch.Generator().manual_seed(10)
    W = torch.randn(6, 4, generator=g, dtype=DT).requires_grad_(True)
    sigma, v = Fr.srip_penalty(W, n_iter=300, generator=g)
    M = W.T @ W - torch.eye(4, dtype=DT)
    exact = torch.linalg.matrix_norm(M, ord=2)
    assert float(sigma.detach()) == pytest.approx(float(exact.detach()), rel=1e-10)
    (g1,) = torch.autograd.grad(sigma, W)
    (g2,) = torch.autograd.grad(exact, W)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-8)
    # warm start: starting from the converged vector, one iteration keeps the value
    s2, _ = Fr.srip_penalty(W, n_iter=1, v0=v)
    assert float(s2.detach()) == pytest.approx(float(exact.detach()), rel=1e-10)
    # orthonormal columns -> 0
    Q, _ = torch.linalg.qr(torch.randn(6, 4, generator=g, dtype=DT))
    assert float(Fr.srip_penalty(Q, 5, generator=g)[0]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("c_out,c_in,k,stride,n", [(3, 2, 3, 1, 6), (2, 3, 3, 1, 6), (4, 2, 3, 2, 8), (6, 2, 1, 2, 6)])
def test_ocnn_is_the_operator_row_orthogonality_per_output_pixel(c_out, c_in, k, stride, n):
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(11), dtype=DT)
    T = circular_operator(K, stride, n)
    explicit = float(((T @ T.T - torch.eye(T.shape[0], dtype=DT)) ** 2).sum()) / (n // stride) ** 2
    assert float(Fr.ocnn_penalty(K, stride)) == pytest.approx(explicit, rel=1e-12)


def test_mhe_hand_cases():
    # two neurons (1, 0) and (0, 2): normalised distance sqrt(2); s = 2 -> 1/2, log energy -> log(1/sqrt 2)
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=DT)
    assert float(Fr.mhe_penalty(W, 2.0, eps=0.0)) == pytest.approx(0.5)
    assert float(Fr.mhe_penalty(W, 1.0, eps=0.0)) == pytest.approx(1 / math.sqrt(2))
    assert float(Fr.mhe_penalty(W, 0.0, eps=0.0)) == pytest.approx(-0.5 * math.log(2))
    # three neurons at 120 degrees: pairwise distance sqrt(3) -> 1/3
    th = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=DT)
    assert float(Fr.mhe_penalty(torch.stack([th.cos(), th.sin()], 1), 2.0, eps=0.0)) == pytest.approx(1 / 3)
    # coinciding neurons stay finite through eps
    assert math.isfinite(float(Fr.mhe_penalty(torch.ones(2, 3, dtype=DT), 2.0)))


def test_regularizer_sums_the_penalty_over_every_conv_and_linear_layer():
    torch.manual_seed(0)
    net = Fr.small_resnet(1, 10, (4, 8, 8))
    layers = Fr.regularized_layers(net)
    names = [la.name for la in layers]
    assert names[0] == "stem" and names[-1] == "fc" and "block2.shortcut.0" in names
    assert len(layers) == 10  # stem, 2 convs x 3 blocks, 2 shortcut convs, fc
    P = {**resolve("frame_regularization", "smoke"), "frame_weight": 0.3}
    with torch.no_grad():
        expected = sum(float(Fr.frame_penalty_layer(la, P["frame_A"], P["frame_B"])) for la in layers)
        assert float(Fr.Regularizer("frame", P, net)(net)) == pytest.approx(0.3 * expected, rel=1e-6)
        assert float(Fr.Regularizer("none", P, net)(net)) == 0.0
        so = sum(float(Fr.so_penalty(la.weight)) for la in layers)
        assert float(Fr.Regularizer("so", P, net)(net)) == pytest.approx(P["so_weight"] * so, rel=1e-6)
    with pytest.raises(ValueError):
        Fr.Regularizer("l2", P, net)


# --- corruptions --------------------------------------------------------------------------------------


def test_corruptions_by_hand():
    x = torch.tensor([0.0, 1.0, 0.25, 0.75]).reshape(1, 1, 2, 2)
    assert torch.equal(Fr.corrupt(x, "gaussian_noise", 0), x)  # severity 0 is the identity
    # contrast, severity 1 (c = 0.75): (x - 0.5) 0.75 + 0.5
    torch.testing.assert_close(Fr.corrupt(x, "contrast", 1),
                               torch.tensor([0.125, 0.875, 0.3125, 0.6875]).reshape(1, 1, 2, 2))
    # brightness, severity 5 (c = 0.3), clipped at 1
    torch.testing.assert_close(Fr.corrupt(x, "brightness", 5), torch.tensor([0.3, 1.0, 0.55, 1.0]).reshape(1, 1, 2, 2))
    # a constant image is unchanged by blur, contrast and pixelation
    c = torch.full((2, 3, 16, 16), 0.4)
    for name in ("gaussian_blur", "contrast", "pixelate"):
        torch.testing.assert_close(Fr.corrupt(c, name, 5), c)
    with pytest.raises(ValueError):
        Fr.corrupt(x, "fog", 1)
    with pytest.raises(ValueError):
        Fr.corrupt(x, "contrast", 6)


def test_noise_statistics():
    x = torch.full((4, 1, 100, 100), 0.5)
    g = torch.Generator().manual_seed(0)
    z = Fr.corrupt(x, "gaussian_noise", 3, g, "cifar") - x  # c = 0.08: clipping at 0.5 +- 6 sd is negligible
    assert float(z.mean()) == pytest.approx(0.0, abs=3 * 0.08 / 200)
    assert float(z.std()) == pytest.approx(0.08, rel=0.02)
    s = Fr.corrupt(x, "shot_noise", 1, g, "cifar")  # Poisson(500 x) / 500: mean x, variance x / 500
    assert float(s.mean()) == pytest.approx(0.5, abs=3 * math.sqrt(0.5 / 500 / 40000))
    assert float(s.var()) == pytest.approx(0.5 / 500, rel=0.03)
    imp = Fr.corrupt(x, "impulse_noise", 5, g, "grey")  # a fraction 0.27 set to 0 or 1, half each
    changed = (imp != 0.5).float().mean()
    assert float(changed) == pytest.approx(0.27, abs=0.01)
    assert float((imp == 0).float().mean()) == pytest.approx(0.135, abs=0.01)
    # the same generator seed gives the same corrupted images
    a = Fr.corrupt(x, "gaussian_noise", 2, torch.Generator().manual_seed(5))
    b = Fr.corrupt(x, "gaussian_noise", 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert Fr.corruption_constant("gaussian_noise", 5, "grey") > Fr.corruption_constant("gaussian_noise", 5, "cifar")


# --- SimBA ----------------------------------------------------------------------------------------------


class _Linear2(nn.Module):
    """Logits (w . x, 0): p(class 0) = sigmoid(w . x)."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        s = x.reshape(len(x), -1) @ self.w
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_simba_on_a_linear_model_is_predictable():
    # pixel basis, images inside (0, 1) so that no step is clipped.  Direction j lowers p(class 0)
    # by stepping -eps if w_j > 0 (first query), +eps if w_j < 0 (second query), not at all if w_j = 0;
    # so after t iterations w . x has dropped by eps * sum |w_j| over the first t directions tried.
    g = torch.Generator().manual_seed(0)
    d = 16
    w = torch.randn(d, generator=g, dtype=DT)
    w[3] = 0.0
    x = 0.5 + 0.01 * torch.randn(2, 1, 4, 4, generator=g, dtype=DT)
    model = _Linear2(w)
    margin = x.reshape(2, -1) @ w
    y = (margin < 0).long()  # the true class is the one predicted: every image is attacked
    eps = 0.2  # one step per pixel keeps every pixel inside [0.27, 0.73]: nothing is clipped
    out = Fr.simba(model, x, y, eps, iters=d, basis="pixel", generator=torch.Generator().manual_seed(1))
    order = Fr.simba_order((1, 4, 4), "pixel", torch.Generator().manual_seed(1))
    drop = eps * torch.cumsum(w[order].abs(), 0)
    for i in range(2):
        m = float(margin[i]) * (1 if y[i] == 0 else -1)  # distance to the decision boundary in w . x units
        # for class 1 the attack raises w . x: the sign flips but the amounts are the same
        expected = next((t + 1 for t in range(d) if float(drop[t]) > m), math.inf)
        assert float(out["success_iter"][i]) == expected
        assert math.isfinite(expected)  # both images are fooled within the 16 directions
        # queries: one where the first try (-eps) lowers the true class's probability, else two
        first_ok = (w[order[:expected]] > 0) if y[i] == 0 else (w[order[:expected]] < 0)
        assert int(out["queries"][i]) == int((2 - first_ok.long()).sum())
    assert out["n_attacked"] == 2


def test_simba_perturbation_norm_and_monotone_probability():
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 5)).double()
    with torch.no_grad():
        model[1].weight.mul_(0.05)
    x = 0.3 + 0.4 * torch.rand(6, 3, 6, 6, generator=g, dtype=DT)
    y = model(x).argmax(1)
    for basis in ("pixel", "dct"):
        out = Fr.simba(model, x, y, 0.01, iters=60, basis=basis, generator=torch.Generator().manual_seed(3))
        norms = out["delta"].reshape(len(y), -1).norm(dim=1)
        torch.testing.assert_close(norms, 0.01 * out["accepted"].double().sqrt(), rtol=1e-9, atol=1e-12)
        p = out["prob"]
        assert bool((p[1:] <= p[:-1] + 1e-12).all())  # the true-class probability never rises
        assert bool((out["queries"] >= 60).all()) and bool((out["queries"] <= 120).all())
        if basis == "pixel":
            vals = out["delta"].unique()
            assert set(np.round(vals.numpy(), 12)) <= {-0.01, 0.0, 0.01}


def test_dct_basis_is_orthonormal_and_low_frequencies_come_first():
    D = Fr.dct_matrix(7, DT)
    torch.testing.assert_close(D @ D.T, torch.eye(7, dtype=DT))
    shape = (2, 4, 4)
    Q = torch.stack([Fr.basis_vector(i, shape, "dct").reshape(-1) for i in range(32)]).double()
    torch.testing.assert_close(Q @ Q.T, torch.eye(32, dtype=DT), atol=1e-6, rtol=0)
    order = Fr.simba_order(shape, "dct", torch.Generator().manual_seed(0))
    rings = [max(divmod(int(i) % 16, 4)) for i in order]
    assert rings == sorted(rings) and sorted(order.tolist()) == list(range(32))
    assert {int(i) for i in order[:2]} == {0, 16}  # the two DC components come first


def test_attack_success_rate():
    s = torch.tensor([1.0, 5.0, math.inf, 50.0])
    assert Fr.attack_success_rate(s, [1, 10, 50, 1000]) == {1: 0.25, 10: 0.5, 50: 0.75, 1000: 0.75}


# --- models, data, training -----------------------------------------------------------------------------


def test_small_resnet_and_adapted_resnet34():
    net = Fr.small_resnet(1, 10, (4, 8, 8), mean=(0.1,), std=(0.3,))
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    sizes = Fr.layer_input_sizes(net, torch.rand(1, 1, 28, 28))
    assert sizes["stem"] == 28 and sizes["block1.conv1"] == 14 and sizes["block3.conv2"] == 4
    r34 = Fr.build_model("resnet34", 3, 100, [8], [0.5] * 3, [0.25] * 3)
    inner = r34.net
    assert inner.conv1.kernel_size == (3, 3) and inner.conv1.stride == (1, 1) and isinstance(inner.maxpool, nn.Identity)
    layers = Fr.regularized_layers(r34)
    assert len(layers) == 37 and layers[-1].kind == "linear"  # 36 convolutions and the classifier
    r34.eval()
    with torch.no_grad():
        assert r34(torch.rand(2, 3, 32, 32)).shape == (2, 100)


def test_augment_crop_and_flip():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    f = Fr.augment(x, g, crop=False, flip=True)
    for i in range(2):
        assert torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(-1))
    c = Fr.augment(x, g, crop=True, flip=False, pad=1)
    assert c.shape == x.shape
    for i in range(2):  # every crop is a shifted window of the zero-padded image
        xp = F.pad(x[i], (1, 1, 1, 1))
        assert any(torch.equal(c[i], xp[:, a:a + 4, b:b + 4]) for a in range(3) for b in range(3))
    assert torch.equal(Fr.augment(x, g, False, False), x)


def test_data_and_second_domain():
    data = Fr.load_data("mnist", 64, 32, 0)
    assert data.X_train.shape == (64, 1, 28, 28) and 0 <= float(data.X_train.min()) and float(data.X_train.max()) <= 1
    assert data.table == "grey" and not data.crop
    assert Fr.second_domain("mnist", 10, 0) is None and Fr.second_domain("cifar10", 10, 0) is None
    name, X, y = Fr.second_domain("svhn", 10, 0)
    assert name == "MNIST" and X.shape == (10, 3, 32, 32) and len(y) == 10


def _toy_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n + 32, 1, 28, 28, generator=g)
    y = (X[:, 0, :14].mean((1, 2)) > X[:, 0, 14:].mean((1, 2))).long()
    return Fr.ImageData("toy", X[:n], y[:n], X[n:], y[n:], 10, "grey")


@pytest.mark.parametrize("method", Fr.METHODS)
def test_fit_and_evaluate_every_method(method):
    P = {**resolve("frame_regularization", "smoke"), "epochs": 1, "batch_size": 32, "n_shift": 8,
         "severities": [1], "corruptions": ["gaussian_noise", "contrast"], "simba_images": 4,
         "simba_checkpoints": [1, 3]}
    data = _toy_data()
    Fr.seed_everything(0)
    model = Fr.small_resnet(1, 10, (4, 4, 8), *data.stats())
    before = [p.detach().clone() for p in model.parameters()]
    out = Fr.fit(model, data, Fr.Regularizer(method, P, model), P, seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert (out["mean_reg"] == 0) == (method == "none")
    ev = Fr.evaluate(model, data, P, 0, torch.device("cpu"))
    assert 0 <= ev["clean_acc"] <= 1 and len(ev["shift"]) == 2 and set(ev["asr"]) == {1, 3}
    assert len(ev["spectra"]) == 10 and (ev["spectra"].ev_min <= ev["spectra"].ev_max).all()


def test_check_params_and_profiles():
    P = resolve("frame_regularization", "smoke")
    Fr.check_params(P)
    with pytest.raises(ProfileError, match="frame_A"):
        Fr.check_params({**P, "frame_A": 3.0, "frame_B": 2.0})
    with pytest.raises(ProfileError, match="none"):
        Fr.check_params({**P, "methods": ["frame", "so"]})
    with pytest.raises(ProfileError, match="robust_methods"):
        Fr.check_params({**P, "robust_methods": ["none", "ocnn"]})
    with pytest.raises(ProfileError, match="robust_methods"):
        Fr.check_params({**P, "methods": ["none", "frame"], "robust_methods": ["none", "frame", "ocnn"]})
    for bad in (dict(severities=[0, 1]), dict(severities=[3, 2]), dict(methods=["frame", "frame"]),
                dict(datasets=["imagenet"]), dict(simba_basis="haar"), dict(simba_checkpoints=[10, 1])):
        with pytest.raises(ProfileError):
            resolve("frame_regularization", "smoke", bad)
    paper = resolve("frame_regularization", "paper")
    assert paper["archs"] == ["resnet34", "resnet50"] and paper["datasets"] == ["cifar10", "cifar100", "svhn"]
    assert resolve("frame_regularization", "book")["simba_checkpoints"] == [1, 10, 50, 100, 1000]


def _synthetic_scores(bonus_clean):
    rows = []
    for d in ("mnist", "fashion-mnist"):
        for s in range(3):
            for m in Fr.METHODS:
                f = m == "frame"
                rows.append(dict(dataset=d, arch="small_resnet", method=m, seed=s,
                                 clean=0.9 + (bonus_clean if f else 0.0) + (0.002 if m == "ocnn" else 0.0)
                                 + 0.001 * s, shift=0.7 - (0.02 if f else 0.0),
                                 clean_matched=0.9 + 0.001 * s + (0.001 if f else 0.0), matched_at=0.8,
                                 shift_matched=0.7 + (0.03 if f else 0.0) + 0.001 * s * f,
                                 second_matched=0.6 - (0.01 if f else 0.0), second_name="rotated and shifted",
                                 asr_1=0.1 + (0.05 if m == "none" else 0.0), asr_10=0.2, asr_50=0.3, asr_100=0.4,
                                 asr_1000=1.0, asr_mean=0.5 - (0.1 if f else 0.0) + 0.01 * s,
                                 frac_in_bounds=0.3 + (0.05 * s if f else 0.0)))
    return pd.DataFrame(rows)


def _synthetic_wd():
    # book: the main runs have no weight decay, "none+wd" is the extra run
    return pd.DataFrame([dict(dataset=d, arch="small_resnet", seed=s, run=r, method=r.split("+")[0],
                              weight_decay=5e-4 if r == "none+wd" else 0.0,
                              clean={"none": 0.90, "frame": 0.905, "none+wd": 0.91}[r] + 0.001 * s)
                         for d in ("mnist", "fashion-mnist") for s in range(3) for r in ("none", "frame", "none+wd")])


def test_claims_follow_from_the_numbers():
    P = resolve("frame_regularization", "book")
    scores = _synthetic_scores(0.01)
    ledger = Fr.claims(scores, P, _synthetic_wd())
    assert all(c.verdict in VERDICTS for c in ledger)
    assert all(c.verdict == verdict_paired(c.evidence) for c in ledger if not (c.same and c.tolerance > 0))
    report = [c for c in ledger if c.kind == "report"]
    assert all(c.deck for c in report)
    sec = Fr.ledger_sections(ledger)
    # every cell of the two accuracy tables: 2 networks x 3 data sets x 5 baselines
    assert len(sec["accuracy"]) == 30
    first = sec["accuracy"][0]  # ResNet-34, CIFAR-10, frame vs none, on Fashion-MNIST
    assert "95.17 ± 0.05 vs 94.53 ± 0.03" in first.report_value and "Fashion-MNIST" in first.claim
    assert "stand-in" in first.claim and first.evidence == pytest.approx([1.0] * 3) and first.verdict == "reproduced"
    # the deck has OCNN ahead of frame on CIFAR-10 with ResNet-50 (95.29 vs 95.25): that row tests OCNN - frame
    flip = [c for c in sec["accuracy"] if "OCNN beats frame" in c.claim]
    assert len(flip) == 1 and "ResNet-50 on CIFAR-10" in flip[0].claim
    assert flip[0].evidence == pytest.approx([-0.8] * 3) and flip[0].verdict == "not reproduced"
    svhn = [c for c in sec["accuracy"] if "on SVHN (ours on MNIST" in c.claim]
    assert len(svhn) == 10
    # every number of the domain-shift table: frame vs none and vs OCNN, corrupted and second domain
    assert len(sec["shift"]) == 4 and all("Fashion-MNIST" in c.claim for c in sec["shift"])
    cor = sec["shift"][0]
    assert "76.65 ± 0.15 vs 74.77 ± 0.25" in cor.report_value and "94.53 ± 0.01" in cor.report_value
    assert cor.evidence == pytest.approx([3.0, 3.1, 3.2]) and cor.verdict == "reproduced"
    assert sec["shift"][1].evidence == pytest.approx([-1.0] * 3) and sec["shift"][1].verdict == "not reproduced"
    # SimBA: five iteration counts x (vs none, vs OCNN); none's ASR after 1 iteration is 5 points higher
    assert len(sec["simba"]) == 10
    s1 = sec["simba"][0]
    assert "39.56 vs 52.08" == s1.report_value and s1.evidence == pytest.approx([5.0] * 3)
    assert sec["simba"][5].evidence == pytest.approx([0.0] * 3) and sec["simba"][5].verdict == "not reproduced"
    # weight decay: frame without (90.5%) vs none with it (91%): -0.5 pp + our tolerance 0.5 = 0 -> not reproduced
    assert len(sec["wd"]) == 2 and sec["wd"][0].tolerance == 0.5
    assert sec["wd"][0].evidence == pytest.approx([0.0] * 3) and sec["wd"][0].verdict == "not reproduced"
    # self-checks: |clean_matched(frame) - none| = 0.1 pp is within the 0.5 pp tolerance
    checks = [c for c in ledger if c.kind == "check"]
    frame_check = [c for c in checks if "of frame" in c.claim]
    assert len(frame_check) == 2 and frame_check[0].evidence == pytest.approx([0.4] * 3)
    assert frame_check[0].verdict == "reproduced"
    ocnn_check = [c for c in checks if "of OCNN" in c.claim]  # identical clean accuracies: only the tolerance
    assert ocnn_check[0].verdict == "indistinguishable"
    ours = [c for c in ledger if c.kind == "ours"]
    assert any("MNIST, small ResNet, not a deck setting" in c.claim for c in ours)
    assert any("eigenvalues" in c.claim and "the deck shows no spectra" in c.report_value for c in ours)
    text = Fr.summary_markdown(ledger, scores, P)
    assert "30 of the report's claims" in text and "Fashion-MNIST, small ResNet" in text


def test_deck_tables_and_standins():
    # the deck's SimBA rates are whole numbers of correctly classified images: 96, 92 and 91
    assert Fr.simba_denominators() == {"none": 96, "ocnn": 92, "frame": 91}
    assert Fr.simba_denominators({"x": (25.0, 50.0, 75.0)}) == {"x": 4}
    assert Fr.DECK_ACCURACY["resnet34"]["frame"]["cifar100"] == (77.61, 0.07)
    assert Fr.DECK_ACCURACY["resnet50"]["ocnn"]["cifar10"] == (95.29, 0.03)
    book = resolve("frame_regularization", "book")
    assert Fr.deck_setting("resnet50", "cifar100", book) == ("fashion-mnist", "small_resnet", True)
    assert Fr.deck_setting("resnet34", "svhn", book) == ("mnist", "small_resnet", True)
    paper = resolve("frame_regularization", "paper")
    assert Fr.deck_setting("resnet50", "svhn", paper) == ("svhn", "resnet50", False)
    t = Fr.deck_accuracy_table()
    assert t.shape == (6, 6) and t.loc["frame", "ResNet-34, CIFAR-10"] == "95.17 ± 0.05"


def test_checkpoints_and_matching():
    assert Fr.checkpoint_steps(10, 4) == [2, 5, 8, 10] and Fr.checkpoint_steps(3, 5) == [1, 2, 3]
    assert Fr.checkpoint_steps(10, 0) == []
    assert Fr.match_checkpoint([0.80, 0.86, 0.90, 0.93], 0.89) == 2
    assert Fr.match_checkpoint([0.88, 0.90, 0.88], 0.89) == 2  # ties: the later checkpoint
    P = {**resolve("frame_regularization", "smoke"), "epochs": 2, "batch_size": 16}
    data = _toy_data()  # 64 training images: 4 steps per epoch, 8 in all
    Fr.seed_everything(0)
    model = Fr.small_resnet(1, 10, (2, 2, 2), *data.stats())
    seen = []

    def keep(step, total):  # evaluating switches to eval mode; fit must switch back
        seen.append((step, total, model.training))
        model.eval()

    Fr.fit(model, data, Fr.Regularizer("frame", P, model), P, 0, 3, keep)
    assert seen == [(3, 8, True), (5, 8, True), (8, 8, True)]


def test_weight_decay_runs():
    book = resolve("frame_regularization", "book")
    assert Fr.wd_variants(book) == [("none+wd", "none", 5e-4)] and Fr.wd_pair(book) == ("frame", "none+wd")
    paper = resolve("frame_regularization", "paper")  # every method has weight decay 5e-4 there
    assert Fr.wd_variants(paper) == [("frame-wd", "frame", 0.0)] and Fr.wd_pair(paper) == ("frame-wd", "none")
    assert Fr.wd_variants({**book, "wd_decay": 0.0}) == []


def test_affine_transform_by_hand_and_the_second_domain():
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(Fr.affine_transform(x, [0, 0], [[0, 0], [0, 0]]), x)
    # 90 degrees about the centre maps pixel centres onto pixel centres (clockwise as displayed, y down)
    torch.testing.assert_close(Fr.affine_transform(x, [90, 90], torch.zeros(2, 2)), torch.rot90(x, -1, (2, 3)))
    # a shift by one sixth of the side moves a 6-pixel image by one pixel, zeros come in
    r = Fr.affine_transform(x, [0, 0], [[1 / 6, 0], [0, 1 / 6]])
    torch.testing.assert_close(r[0, 0, :, 1:], x[0, 0, :, :-1])
    torch.testing.assert_close(r[1, 0, 1:], x[1, 0, :-1])
    assert float(r[0, 0, :, 0].abs().max()) == 0.0
    P = {**resolve("frame_regularization", "smoke"), "n_shift": 5}
    data = Fr.load_data("mnist", 16, 8, 0)
    name, X, y = Fr.shifted_domain(data, P, 0)
    assert name == "rotated and shifted" and X.shape == (5, 1, 28, 28) and torch.equal(y, data.y_test[:5])
    assert torch.equal(X, Fr.shifted_domain(data, P, 0)[1])  # the same for every model of a seed


def test_tables_and_plot_helpers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramspace import plots

    P = {**resolve("frame_regularization", "book"), "simba_checkpoints": [1, 1000]}
    scores = _synthetic_scores(0.01).assign(second=np.nan, frame_penalty=1.0, seconds=1.0)
    acc = Fr.accuracy_table(scores, P)
    assert acc.loc["frame", "MNIST"] == "91.10 ± 0.10" and list(acc.columns) == ["MNIST", "Fashion-MNIST"]
    sh = Fr.shift_table(scores, P)
    assert sh.loc["frame", ("MNIST", "corrupted")] == "68.00 ± 0.00"
    asr = Fr.asr_table(scores, P)
    assert asr.loc["no regularization", ("MNIST", "t = 1000")] == "100.0 ± 0.0"
    # every column of every table shown on the page has a header
    tt = Fr.frame_markdown(Fr.timing_table(scores))
    assert tt.splitlines()[0] == "| method | training time (s), mean | sd |"
    assert "| no regularization | 1.0 | 0.0 |" in tt
    assert Fr.frame_markdown(asr).splitlines()[0].startswith("| method | MNIST, t = 1 | MNIST, t = 1000 |")
    with pytest.raises(ValueError, match="header"):
        Fr.frame_markdown(pd.DataFrame({"": [1]}))
    ds = Fr.deck_shift_table(scores, P).reset_index()
    row = ds[(ds.setting == "the deck: ResNet-34, CIFAR-10") & (ds.method == "frame")].iloc[0]
    assert row["second domain (deck: CINIC-10)"] == "71.20 ± 0.32" and row["clean (matched)"] == "94.53 ± 0.01"
    row = ds[ds.setting.str.startswith("ours: MNIST") & (ds.method == "frame")].iloc[0]
    assert row["corrupted (deck: CIFAR-10-C)"] == "73.10 ± 0.10" and "rotated and shifted" in row["setting"]
    dsim = Fr.deck_simba_table(scores, P).reset_index()
    assert list(dsim.columns[2:]) == ["t = 1", "t = 10", "t = 50", "t = 100", "t = 1000"]
    assert dsim.iloc[1]["t = 1000"] == "92.06" and dsim.iloc[3]["t = 1"] == "15.0 ± 0.0"
    assert dsim.iloc[3]["t = 10"] == "—"  # not a checkpoint of this (synthetic) run
    w = Fr.wd_table(_synthetic_wd(), P)
    assert w.loc["no regularization, weight decay 0.0005", "MNIST"] == "91.10 ± 0.10"
    curves = Fr.asr_curves(scores, P)
    fig = plots.method_panels(curves, "iterations", "asr", "panel", ["MNIST", "Fashion-MNIST"], {},
                              Fr.METHOD_LABELS, "iterations", "ASR (%)", logx=True)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    sp = pd.DataFrame([dict(dataset="mnist", arch="small_resnet", method=m, seed=0, layer=i, label=f"l{i}",
                            side="input", ev_min=0.1, ev_q05=0.2, ev_median=1.0, ev_q95=2.0, ev_max=3.0)
                       for m in ("none", "frame") for i in range(3)])
    fig = plots.frame_spectra_figure(Fr.spectra_for_figure(sp, P), 0.5, 2.0, ["MNIST"], {}, Fr.METHOD_LABELS)
    assert fig.axes[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["no regularization", "frame"]
    plt.close("all")


def test_tune_weights_follows_its_rule():
    P = {**resolve("frame_regularization", "smoke"), "n_train": 64, "n_test": 32, "widths": [2, 2, 2], "epochs": 1}
    # a tolerance nothing can violate: every weight of the grid is tried and the last one is kept
    t = Fr.tune_weights(P, "mnist", seed=100, grid=(1e-3, 1e-2), tol_pp=1000.0, methods=["none", "so"])
    assert t.method.tolist() == ["none", "so", "so"] and t.chosen.tolist() == [True, False, True]
    # a tolerance everything violates (accuracy would have to rise by more than 100 points): the search
    # stops after the first weight and keeps none
    t = Fr.tune_weights(P, "mnist", seed=100, grid=(1e-3, 1e-2), tol_pp=-100.0, methods=["so"])
    assert t.method.tolist() == ["none", "so"] and t.chosen.tolist() == [True, False]


def test_tune_simba_eps_follows_its_rule():
    # enough training that some test images are classified correctly (the rate is over those)
    P = {**resolve("frame_regularization", "smoke"), "n_train": 256, "n_test": 32, "widths": [4, 4, 4], "epochs": 2,
         "batch_size": 32, "simba_images": 32}
    t = Fr.tune_simba_eps(P, "mnist", seed=100, grid=(0.01, 0.5), target=1.0, iters=3)
    assert t.eps.tolist() == [0.01, 0.5] and t.chosen.tolist() == [False, True]  # any rate is <= 100%
    assert ((t.asr >= 0) & (t.asr <= 1)).all()
    t = Fr.tune_simba_eps(P, "mnist", seed=100, grid=(0.01, 0.5), target=-1.0, iters=3)
    assert not t.chosen.any()  # no rate is below 0: nothing is chosen


def test_paper_path_resnet34_sgd_clipping_and_augmentation():
    # the paper profile's code path (torchvision ResNet-34 for 32x32 RGB, SGD, gradient clipping,
    # crop + flip) on eight random images instead of CIFAR
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    data = Fr.ImageData("cifar10", X, y, X, y, 10, "cifar", crop=True, flip=True)
    P = {**resolve("frame_regularization", "paper"), "epochs": 1, "batch_size": 8, "device": "cpu"}
    Fr.seed_everything(0)
    net = Fr.build_model("resnet34", 3, 10, P["widths"], *data.stats())
    before = net.net.fc.weight.detach().clone()
    out = Fr.fit(net, data, Fr.Regularizer("srip", P, net), P, seed=0)
    assert out["mean_reg"] > 0 and not torch.equal(before, net.net.fc.weight)
    assert 0 <= Fr.accuracy(net, X, y) <= 1
