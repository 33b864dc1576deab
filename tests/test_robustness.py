"""paramspace.robustness: corruptions, the affine shift and the SimBA attack."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from paramspace import robustness as Rb

DT = torch.float64


def test_corruptions_by_hand():
    x = torch.tensor([0.0, 1.0, 0.25, 0.75]).reshape(1, 1, 2, 2)
    assert torch.equal(Rb.corrupt(x, "gaussian_noise", 0), x)  # severity 0 is the identity
    # contrast, severity 1 (c = 0.75): (x - 0.5) 0.75 + 0.5
    torch.testing.assert_close(Rb.corrupt(x, "contrast", 1),
                               torch.tensor([0.125, 0.875, 0.3125, 0.6875]).reshape(1, 1, 2, 2))
    # brightness, severity 5 (c = 0.3), clipped at 1
    torch.testing.assert_close(Rb.corrupt(x, "brightness", 5), torch.tensor([0.3, 1.0, 0.55, 1.0]).reshape(1, 1, 2, 2))
    # a constant image is unchanged by blur, contrast and pixelation
    c = torch.full((2, 3, 16, 16), 0.4)
    for name in ("gaussian_blur", "contrast", "pixelate"):
        torch.testing.assert_close(Rb.corrupt(c, name, 5), c)
    with pytest.raises(ValueError):
        Rb.corrupt(x, "fog", 1)
    with pytest.raises(ValueError):
        Rb.corrupt(x, "contrast", 6)


def test_noise_statistics():
    x = torch.full((4, 1, 100, 100), 0.5)
    g = torch.Generator().manual_seed(0)
    z = Rb.corrupt(x, "gaussian_noise", 3, g, "cifar") - x  # c = 0.08: clipping at 0.5 +- 6 sd is negligible
    assert float(z.mean()) == pytest.approx(0.0, abs=3 * 0.08 / 200)
    assert float(z.std()) == pytest.approx(0.08, rel=0.02)
    s = Rb.corrupt(x, "shot_noise", 1, g, "cifar")  # Poisson(500 x) / 500: mean x, variance x / 500
    assert float(s.mean()) == pytest.approx(0.5, abs=3 * math.sqrt(0.5 / 500 / 40000))
    assert float(s.var()) == pytest.approx(0.5 / 500, rel=0.03)
    imp = Rb.corrupt(x, "impulse_noise", 5, g, "grey")  # a fraction 0.27 set to 0 or 1, half each
    changed = (imp != 0.5).float().mean()
    assert float(changed) == pytest.approx(0.27, abs=0.01)
    assert float((imp == 0).float().mean()) == pytest.approx(0.135, abs=0.01)
    # the same generator seed gives the same corrupted images
    a = Rb.corrupt(x, "gaussian_noise", 2, torch.Generator().manual_seed(5))
    b = Rb.corrupt(x, "gaussian_noise", 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert Rb.corruption_constant("gaussian_noise", 5, "grey") > Rb.corruption_constant("gaussian_noise", 5, "cifar")


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
    out = Rb.simba(model, x, y, eps, iters=d, basis="pixel", generator=torch.Generator().manual_seed(1))
    order = Rb.simba_order((1, 4, 4), "pixel", torch.Generator().manual_seed(1))
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
        out = Rb.simba(model, x, y, 0.01, iters=60, basis=basis, generator=torch.Generator().manual_seed(3))
        norms = out["delta"].reshape(len(y), -1).norm(dim=1)
        torch.testing.assert_close(norms, 0.01 * out["accepted"].double().sqrt(), rtol=1e-9, atol=1e-12)
        p = out["prob"]
        assert bool((p[1:] <= p[:-1] + 1e-12).all())  # the true-class probability never rises
        assert bool((out["queries"] >= 60).all()) and bool((out["queries"] <= 120).all())
        if basis == "pixel":
            vals = out["delta"].unique()
            assert set(np.round(vals.numpy(), 12)) <= {-0.01, 0.0, 0.01}


def test_dct_basis_is_orthonormal_and_low_frequencies_come_first():
    D = Rb.dct_matrix(7, DT)
    torch.testing.assert_close(D @ D.T, torch.eye(7, dtype=DT))
    shape = (2, 4, 4)
    Q = torch.stack([Rb.basis_vector(i, shape, "dct").reshape(-1) for i in range(32)]).double()
    torch.testing.assert_close(Q @ Q.T, torch.eye(32, dtype=DT), atol=1e-6, rtol=0)
    order = Rb.simba_order(shape, "dct", torch.Generator().manual_seed(0))
    rings = [max(divmod(int(i) % 16, 4)) for i in order]
    assert rings == sorted(rings) and sorted(order.tolist()) == list(range(32))
    assert {int(i) for i in order[:2]} == {0, 16}  # the two DC components come first


def test_attack_success_rate():
    s = torch.tensor([1.0, 5.0, math.inf, 50.0])
    assert Rb.attack_success_rate(s, [1, 10, 50, 1000]) == {1: 0.25, 10: 0.5, 50: 0.75, 1000: 0.75}


def test_affine_transform_by_hand():
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(Rb.affine_transform(x, [0, 0], [[0, 0], [0, 0]]), x)
    # 90 degrees about the centre maps pixel centres onto pixel centres (clockwise as displayed, y down)
    torch.testing.assert_close(Rb.affine_transform(x, [90, 90], torch.zeros(2, 2)), torch.rot90(x, -1, (2, 3)))
    # a shift by one sixth of the side moves a 6-pixel image by one pixel, zeros come in
    r = Rb.affine_transform(x, [0, 0], [[1 / 6, 0], [0, 1 / 6]])
    torch.testing.assert_close(r[0, 0, :, 1:], x[0, 0, :, :-1])
    torch.testing.assert_close(r[1, 0, 1:], x[1, 0, :-1])
    assert float(r[0, 0, :, 0].abs().max()) == 0.0


def test_affine_shift_draws_angles_and_shifts_from_its_generator():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=DT)
    a = Rb.affine_shift(x, 30.0, 0.1, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws by hand: angles, then shifts
    angles = (2 * torch.rand(3, generator=g, dtype=DT) - 1) * 30.0
    shifts = (2 * torch.rand(3, 2, generator=g, dtype=DT) - 1) * 0.1
    assert bool((angles.abs() <= 30).all()) and bool((shifts.abs() <= 0.1).all())
    torch.testing.assert_close(a, Rb.affine_transform(x, angles, shifts))
    torch.testing.assert_close(Rb.affine_shift(x, 0.0, 0.0, torch.Generator().manual_seed(7)), x)


def test_shift_accuracies_one_row_per_corruption_and_severity():
    class Bright(nn.Module):  # class 1 iff the mean pixel is above 0.5
        def forward(self, x):
            m = x.mean((1, 2, 3))
            return torch.stack([0.5 - m, m - 0.5], 1)

    x = torch.full((4, 1, 4, 4), 0.6)
    y = torch.ones(4, dtype=torch.long)
    rows = Rb.shift_accuracies(Bright(), x, y, corruptions=["brightness", "contrast"], severities=[1, 5],
                               table="cifar", seed=0)
    assert [(r["corruption"], r["severity"]) for r in rows] == [("brightness", 1), ("brightness", 5),
                                                                ("contrast", 1), ("contrast", 5)]
    # brightness only adds; contrast keeps a constant image: every image stays above 0.5
    assert [r["accuracy"] for r in rows] == [1.0, 1.0, 1.0, 1.0]
    # the noise is seeded by (seed, corruption index, severity): the same rows twice, others for another seed
    a = Rb.shift_accuracies(Bright(), x - 0.1 + 0.001, y, corruptions=["gaussian_noise"], severities=[5], table="grey",
                            seed=3)
    assert a == Rb.shift_accuracies(Bright(), x - 0.1 + 0.001, y, corruptions=["gaussian_noise"], severities=[5],
                                    table="grey", seed=3)
