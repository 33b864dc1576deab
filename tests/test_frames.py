"""paramspace.frames: the frame penalty (Gershgorin rows, convolution Grams without the Toeplitz
matrix), the baselines (SO, SRIP, OCNN, MHE) and the layer spectra."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paramspace import frames as Fm
from paramspace import vision as V

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


def test_penalty_is_zero_on_tight_frames():
    # orthonormal columns scaled by sqrt(1.5): V = 1.5 I, every disc is the point 1.5 in [0.5, 2]
    Q, _ = torch.linalg.qr(torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=DT))
    assert float(Fm.frame_penalty_matrix(math.sqrt(1.5) * Q, 0.5, 2.0)) == 0.0
    # the Mercedes-Benz frame: three unit vectors at 120 degrees, scaled by sqrt(2/3), W^T W = I
    th = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=DT)
    W = math.sqrt(2 / 3) * torch.stack([th.cos(), th.sin()], 1)
    torch.testing.assert_close(W.T @ W, torch.eye(2, dtype=DT))
    assert float(Fm.frame_penalty_matrix(W, 1.0, 1.0)) == pytest.approx(0.0, abs=1e-28)
    assert float(Fm.frame_penalty_matrix(W, 0.9, 1.1)) == 0.0
    # a wide layer with orthonormal rows: W W^T = I (W^T W is singular), penalty on the output side
    Wt = Q.T
    assert Fm.linear_side(Wt) == "output" and float(Fm.frame_penalty_matrix(Wt, 0.5, 2.0)) == 0.0
    # but its singular input-side Gram violates any A > 0
    assert float(Fm.frame_penalty_matrix(Wt, 0.5, 2.0, side="input")) > 0


def test_penalty_hand_computed_when_violated():
    # W^T W = [[2, 1], [1, 2]]: each row has d = 2, r = 1.  A = 0.5, B = 2: the lower term
    # min(2 - 0.5 - 1, 0) = 0, the upper min(2 - 2 - 1, 0) = -1 -> 1 per row, mean 1.
    W = torch.tensor([[math.sqrt(2), 1 / math.sqrt(2)], [0.0, math.sqrt(1.5)]], dtype=DT)
    torch.testing.assert_close(W.T @ W, torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=DT))
    assert float(Fm.frame_penalty_matrix(W, 0.5, 2.0)) == pytest.approx(1.0)
    # A = 1.5: the lower term min(2 - 1.5 - 1, 0)^2 = 0.25 is added
    assert float(Fm.frame_penalty_matrix(W, 1.5, 2.0)) == pytest.approx(1.25)
    # rows with different discs: V = diag(3, 0.2) -> (3 - 2)^2 above B, (0.2 - 0.5)^2 below A, mean of the two
    assert float(Fm.gershgorin_penalty(torch.tensor([3.0, 0.2], dtype=DT), torch.zeros(2, dtype=DT), 0.5, 2.0)) \
        == pytest.approx((1.0 + 0.09) / 2)


def test_penalty_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(4, 3, generator=g, dtype=DT)
    K = torch.randn(3, 2, 3, 3, generator=g, dtype=DT) * 0.4
    for X, f in [(W, lambda Z: Fm.frame_penalty_matrix(Z, 0.5, 2.0)),
                 (K, lambda Z: Fm.frame_penalty_conv(Z, 0.5, 2.0, stride=1)),
                 (K, lambda Z: Fm.frame_penalty_conv(Z, 0.2, 1.5, stride=2))]:
        Z = X.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(Z), Z)
        eps = 1e-6
        for j in range(0, X.numel(), 3):
            zp, zm = X.clone(), X.clone()
            zp.view(-1)[j] += eps
            zm.view(-1)[j] -= eps
            fd = (float(f(zp)) - float(f(zm))) / (2 * eps)
            assert grad.reshape(-1)[j].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("c_out,c_in,k,stride,n", CASES)
def test_conv_gram_rows_match_the_explicit_circular_operator(c_out, c_in, k, stride, n):
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(c_out * 10 + c_in), dtype=DT)
    T = circular_operator(K, stride, n)
    side = Fm.conv_side(K, stride)
    V = T.T @ T if side == "input" else T @ T.T
    d, r = Fm.matrix_rows(V)
    read = d > 1e-12  # rows of the pixels a strided layer never reads are zero; they are left out
    if side == "output" or k >= stride:
        assert bool(read.all())
    d, r = d[read], r[read]
    fd, fr = Fm.gram_rows(Fm.conv_gram(K, stride))
    reps = len(d) // len(fd)
    assert reps * len(fd) == len(d)
    for (a1, b1), (a2, b2) in zip(_rows(d, r), _rows(fd.repeat(reps), fr.repeat(reps))):
        assert a1 == pytest.approx(a2, abs=1e-11) and b1 == pytest.approx(b2, abs=1e-11)
    # so the penalty is the mean over every (read) row of the explicit Gram
    A, B = 0.5, 2.0
    assert float(Fm.frame_penalty_conv(K, A, B, stride)) == pytest.approx(float(Fm.gershgorin_penalty(d, r, A, B)))
    # the side: input when c_out >= c_in * (read phases)
    assert side == ("input" if c_out >= c_in * min(stride, k) ** 2 else "output")


def test_conv_gram_interior_rows_of_a_zero_padded_layer():
    # nn.Conv2d with zero padding 1 on a 9 x 9 image: rows of pixels at least k - 1 from the border
    # are exactly the rows of the infinite-grid Gram
    K = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    n, c_in = 9, 2
    X = torch.eye(c_in * n * n, dtype=DT).reshape(-1, c_in, n, n)
    T = F.conv2d(X, K, padding=1).reshape(len(X), -1).T
    d, r = Fm.matrix_rows(T.T @ T)
    fd, fr = Fm.gram_rows(Fm.conv_gram(K, 1, side="input"))
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
    out2 = F.conv2d(F.pixel_unshuffle(x, 2), Fm.polyphase_kernel(K, 2))
    torch.testing.assert_close(out, out2)
    assert Fm.polyphase_kernel(K, 2).shape == (5, 12, 2, 2)
    # a 1x1 kernel with stride 2 reads one phase in four
    assert Fm.polyphase_kernel(torch.ones(4, 3, 1, 1), 2).shape == (4, 3, 1, 1)


def test_orthogonal_convolutions_have_zero_penalty():
    # identity (delta) kernel: T = I
    K = torch.zeros(4, 4, 3, 3, dtype=DT)
    K[range(4), range(4), 1, 1] = 1.0
    assert float(Fm.frame_penalty_conv(K, 0.5, 2.0)) == 0.0
    assert float(Fm.ocnn_penalty(K, 1)) == pytest.approx(0.0, abs=1e-24)
    # a 1x1 convolution with orthonormal columns (c_out = 6 >= c_in = 3) and a shift kernel
    Q, _ = torch.linalg.qr(torch.randn(6, 3, generator=torch.Generator().manual_seed(5), dtype=DT))
    assert float(Fm.frame_penalty_conv(Q.reshape(6, 3, 1, 1), 0.9, 1.1)) == pytest.approx(0.0, abs=1e-24)
    S = torch.zeros(2, 2, 3, 3, dtype=DT)
    S[0, 0, 0, 2] = S[1, 1, 2, 0] = 1.0  # two channels shifted in different directions
    assert float(Fm.frame_penalty_conv(S, 1.0, 1.0)) == 0.0


@pytest.mark.parametrize("c_out,c_in,k,stride,n", CASES)
def test_conv_spectrum_matches_the_explicit_operator(c_out, c_in, k, stride, n):
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(7 + c_out), dtype=DT)
    T = circular_operator(K, stride, n)
    if Fm.conv_side(K, stride) == "input":
        T = T[:, T.abs().sum(0) > 0]  # the pixels the layer reads
        ev = torch.linalg.eigvalsh(T.T @ T)
    else:
        ev = torch.linalg.eigvalsh(T @ T.T)
    fs = Fm.conv_spectrum(K, stride, n)
    assert len(fs) == len(ev)
    torch.testing.assert_close(fs.sort().values, ev.clamp_min(0).sort().values, atol=1e-10, rtol=1e-10)


def test_conv_spectrum_on_a_grid_smaller_than_the_kernel_wraps_around():
    # on a 2 x 2 circular grid a 3 x 3 kernel's taps wrap around (they add up modulo 2)
    K = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(8), dtype=DT)
    T = circular_operator(K, 1, 2)
    assert T.shape == (12, 8)
    ev = torch.linalg.eigvalsh(T.T @ T)
    torch.testing.assert_close(Fm.conv_spectrum(K, 1, 2).sort().values, ev.clamp_min(0).sort().values)


def test_linear_spectrum():
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=DT)
    torch.testing.assert_close(Fm.linear_spectrum(W), torch.tensor([1.0, 4.0], dtype=DT))
    torch.testing.assert_close(Fm.linear_spectrum(W.T), torch.tensor([1.0, 4.0], dtype=DT))  # W W^T side


def test_soft_orthogonality():
    Q, _ = torch.linalg.qr(torch.randn(5, 3, generator=torch.Generator().manual_seed(9), dtype=DT))
    assert float(Fm.so_penalty(Q)) == pytest.approx(0.0, abs=1e-24)
    assert float(Fm.so_penalty(Q.T)) == pytest.approx(0.0, abs=1e-24)  # wide: W W^T
    # diag(2, 1): W^T W - I = diag(3, 0) -> 9
    assert float(Fm.so_penalty(torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=DT))) == pytest.approx(9.0)
    # a conv kernel is reshaped to c_out x (c_in k^2): 2 x 18, rows (1, 0, ...) and (1, 0, ...) -> W W^T = all ones
    K = torch.zeros(2, 2, 3, 3, dtype=DT)
    K[:, 0, 0, 0] = 1.0
    assert float(Fm.so_penalty(K)) == pytest.approx(2.0)  # off-diagonal ones: 1 + 1


def test_srip_power_iteration_and_its_gradient():
    g = torch.Generator().manual_seed(10)
    W = torch.randn(6, 4, generator=g, dtype=DT).requires_grad_(True)
    sigma, v = Fm.srip_penalty(W, n_iter=300, generator=g)
    M = W.T @ W - torch.eye(4, dtype=DT)
    exact = torch.linalg.matrix_norm(M, ord=2)
    assert float(sigma.detach()) == pytest.approx(float(exact.detach()), rel=1e-10)
    (g1,) = torch.autograd.grad(sigma, W)
    (g2,) = torch.autograd.grad(exact, W)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-8)
    # warm start: starting from the converged vector, one iteration keeps the value
    s2, _ = Fm.srip_penalty(W, n_iter=1, v0=v)
    assert float(s2.detach()) == pytest.approx(float(exact.detach()), rel=1e-10)
    # orthonormal columns -> 0
    Q, _ = torch.linalg.qr(torch.randn(6, 4, generator=g, dtype=DT))
    assert float(Fm.srip_penalty(Q, 5, generator=g)[0]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("c_out,c_in,k,stride,n", [(3, 2, 3, 1, 6), (2, 3, 3, 1, 6), (4, 2, 3, 2, 8), (6, 2, 1, 2, 6)])
def test_ocnn_is_the_operator_row_orthogonality_per_output_pixel(c_out, c_in, k, stride, n):
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(11), dtype=DT)
    T = circular_operator(K, stride, n)
    explicit = float(((T @ T.T - torch.eye(T.shape[0], dtype=DT)) ** 2).sum()) / (n // stride) ** 2
    assert float(Fm.ocnn_penalty(K, stride)) == pytest.approx(explicit, rel=1e-12)


def test_mhe_hand_cases():
    # two neurons (1, 0) and (0, 2): normalised distance sqrt(2); s = 2 -> 1/2, log energy -> log(1/sqrt 2)
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=DT)
    assert float(Fm.mhe_penalty(W, 2.0, eps=0.0)) == pytest.approx(0.5)
    assert float(Fm.mhe_penalty(W, 1.0, eps=0.0)) == pytest.approx(1 / math.sqrt(2))
    assert float(Fm.mhe_penalty(W, 0.0, eps=0.0)) == pytest.approx(-0.5 * math.log(2))
    # three neurons at 120 degrees: pairwise distance sqrt(3) -> 1/3
    th = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=DT)
    assert float(Fm.mhe_penalty(torch.stack([th.cos(), th.sin()], 1), 2.0, eps=0.0)) == pytest.approx(1 / 3)
    # coinciding neurons stay finite through eps
    assert math.isfinite(float(Fm.mhe_penalty(torch.ones(2, 3, dtype=DT), 2.0)))


def test_regularizer_sums_the_penalty_over_every_conv_and_linear_layer():
    torch.manual_seed(0)
    net = V.small_resnet(1, 10, (4, 8, 8))
    layers = Fm.regularized_layers(net)
    names = [la.name for la in layers]
    assert names[0] == "stem" and names[-1] == "fc" and "block2.shortcut.0" in names
    assert len(layers) == 10  # stem, 2 convs x 3 blocks, 2 shortcut convs, fc
    with torch.no_grad():
        expected = sum(float(Fm.frame_penalty_layer(la, 0.5, 2.0)) for la in layers)
        assert float(Fm.Regularizer("frame", net, 0.3, A=0.5, B=2.0)(net)) == pytest.approx(0.3 * expected, rel=1e-6)
        assert float(Fm.Regularizer("none", net, 0.3)(net)) == 0.0  # "none" ignores the weight
        assert float(Fm.Regularizer("frame", net, 0.0)(net)) == 0.0
        so = sum(float(Fm.so_penalty(la.weight)) for la in layers)
        assert float(Fm.Regularizer("so", net, 0.1)(net)) == pytest.approx(0.1 * so, rel=1e-6)
        mhe = sum(float(Fm.mhe_penalty(la.weight, 0.0)) for la in layers)
        assert float(Fm.Regularizer("mhe", net, 2.0, mhe_power=0.0)(net)) == pytest.approx(2.0 * mhe, rel=1e-6)
        ocnn = sum(float(Fm.ocnn_penalty(la.weight, la.stride)) for la in layers)
        assert float(Fm.Regularizer("ocnn", net, 0.01)(net)) == pytest.approx(0.01 * ocnn, rel=1e-6)
    with pytest.raises(ValueError):
        Fm.Regularizer("l2", net, 1.0)
