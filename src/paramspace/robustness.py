"""Robustness tests of image classifiers: CIFAR-10-C-style corruptions, random affine shifts, and the SimBA black-box attack.

Corruptions in the CIFAR-10-C protocol (Hendrycks and Dietterich, 2019) at five severities
(:func:`corrupt`), a random rotation and translation of each image (:func:`affine_shift`, a stand-in
for a second domain), and the SimBA black-box attack (Guo et al., 2019) in the pixel or DCT basis
(:func:`simba`).  Every random draw comes from an explicit generator.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .vision import accuracy

SIMBA_BASES = ("pixel", "dct")


# --- corruptions (CIFAR-10-C protocol) ------------------------------------------------------------

# Severity 1..5 constants.  "cifar": Hendrycks & Dietterich's CIFAR-10-C values.  "grey" (28x28 digits
# and clothes, mostly black background): the noise ladders of their ImageNet-C values, because
# CIFAR-10-C's small noise leaves such images nearly unchanged; blur, contrast, brightness and
# pixelation keep the CIFAR-10-C values.
SEVERITY = {
    "cifar": {"gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10), "shot_noise": (500, 250, 100, 75, 50),
              "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07), "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
              "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0), "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
              "brightness": (0.05, 0.1, 0.15, 0.2, 0.3), "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65)},
    "grey": {"gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38), "shot_noise": (60, 25, 12, 5, 3),
             "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27), "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
             "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0), "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
             "brightness": (0.05, 0.1, 0.15, 0.2, 0.3), "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65)},
}
CORRUPTIONS = tuple(SEVERITY["cifar"])
CORRUPTION_LABELS = {c: c.replace("_", " ") for c in CORRUPTIONS}


def corruption_constant(name: str, severity: int, table: str = "cifar") -> float:
    if name not in SEVERITY[table]:
        raise ValueError(f"unknown corruption {name!r}; choose one of {CORRUPTIONS}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be in 1..5, got {severity}")
    return SEVERITY[table][name][severity - 1]


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None,
            table: str = "cifar") -> torch.Tensor:
    """Corrupt a batch of images ``x`` (``B x C x H x W`` in ``[0, 1]``); severity 0 returns ``x``.

    gaussian noise ``x + N(0, c^2)``; shot noise ``Poisson(c x) / c``; impulse (salt and pepper, a
    fraction ``c`` of the pixels); speckle ``x + x N(0, c^2)``; gaussian blur with ``sigma = c``
    (``torchvision``, reflect padding, kernel ``2 ceil(3 sigma) + 1``); contrast ``(x - m) c + m`` with
    ``m`` the per-image, per-channel mean; brightness ``x + c``; pixelate: area-downsampling to
    ``c H`` and nearest-neighbour upsampling.  Results are clipped to ``[0, 1]``.  Random draws come from
    ``generator`` (on the CPU), so a seeded generator gives the same corrupted set every time.
    """
    if severity == 0:
        return x
    c = corruption_constant(name, severity, table)
    dev = x.device

    def randn():
        return torch.randn(x.shape, generator=generator).to(dev)

    if name == "gaussian_noise":
        out = x + c * randn()
    elif name == "shot_noise":
        out = torch.poisson((x * c).cpu(), generator=generator).to(dev) / c
    elif name == "impulse_noise":
        u = torch.rand(x.shape, generator=generator).to(dev)
        out = torch.where(u < c / 2, torch.zeros_like(x), torch.where(u < c, torch.ones_like(x), x))
    elif name == "speckle_noise":
        out = x + x * c * randn()
    elif name == "gaussian_blur":
        from torchvision.transforms.functional import gaussian_blur

        k = 2 * math.ceil(3 * c) + 1
        out = gaussian_blur(x, [k, k], [c, c])
    elif name == "contrast":
        m = x.mean((-2, -1), keepdim=True)
        out = (x - m) * c + m
    elif name == "brightness":
        out = x + c
    elif name == "pixelate":
        h, w = x.shape[-2:]
        small = F.interpolate(x, size=(max(1, int(h * c)), max(1, int(w * c))), mode="area")
        out = F.interpolate(small, size=(h, w), mode="nearest")
    else:  # pragma: no cover - corruption_constant already rejected it
        raise ValueError(name)
    return out.clamp(0.0, 1.0)


def shift_accuracies(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, corruptions, severities,
                     table: str = "cifar", seed: int = 0) -> list[dict]:
    """Accuracy on every corruption x severity of ``X``: one row ``{corruption, severity, accuracy}``
    each.  The noise generator is seeded by ``seed * 1000 + 10 * i + severity`` (``i`` the corruption's
    position in ``corruptions``), so every model evaluated with the same ``seed`` sees the same images."""
    rows = []
    for ci, name in enumerate(corruptions):
        for sev in severities:
            gen = torch.Generator().manual_seed(seed * 1000 + ci * 10 + sev)
            Xc = corrupt(X, name, sev, gen, table)
            rows.append(dict(corruption=name, severity=sev, accuracy=accuracy(model, Xc, y)))
    return rows


# --- a geometric shift ----------------------------------------------------------------------------------


def affine_shift(x: torch.Tensor, degrees: float, translate: float, generator: torch.Generator) -> torch.Tensor:
    """Each image rotated about its centre by a uniform random angle in ``[-degrees, degrees]`` and
    shifted by a uniform random fraction in ``[-translate, translate]`` of its side (bilinear, zeros
    outside): the stand-in for a second domain when no real one is available."""
    n = len(x)
    angles = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * degrees
    shifts = (2 * torch.rand(n, 2, generator=generator, dtype=torch.float64) - 1) * translate
    return affine_transform(x, angles, shifts)


def affine_transform(x: torch.Tensor, angles, shifts) -> torch.Tensor:
    """Each image ``x[i]`` rotated about its centre by ``angles[i]`` degrees and shifted by
    ``shifts[i] = (dx, dy)`` times its width and height (bilinear interpolation, zeros outside)."""
    n = len(x)
    th = torch.as_tensor(angles, dtype=torch.float64).reshape(n) * (math.pi / 180)
    t = torch.as_tensor(shifts, dtype=torch.float64).reshape(n, 2) * 2  # grid units: the side is 2
    c, s_ = torch.cos(th), torch.sin(th)
    theta = torch.stack([torch.stack([c, -s_, t[:, 0]], 1), torch.stack([s_, c, t[:, 1]], 1)], 1)
    # affine_grid maps output coordinates to input coordinates: the inverse transform of the image
    inv = torch.linalg.inv(torch.cat([theta, torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype).expand(n, 1, 3)], 1))
    grid = F.affine_grid(inv[:, :2].to(x.dtype).to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


# --- SimBA -----------------------------------------------------------------------------------------


def dct_matrix(n: int, dtype=torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (``D D^T = I``); row ``u`` is the ``u``-th cosine."""
    i = torch.arange(n, dtype=torch.float64)
    D = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    D[0] /= math.sqrt(2.0)
    return D.to(dtype)


def simba_order(shape: tuple[int, int, int], basis: str, generator: torch.Generator) -> torch.Tensor:
    """The order in which SimBA tries the basis directions (flat indices into ``C x H x W``).

    pixel: a random permutation.  dct: low frequencies first -- by ``max(u, v)`` of the frequency
    ``(u, v)``, channels and frequencies in random order within each ring (as SimBA-DCT starts from a
    low-frequency block).
    """
    C, H, W = shape
    n = C * H * W
    if basis == "pixel":
        return torch.randperm(n, generator=generator)
    if basis != "dct":
        raise ValueError(f"basis must be one of {SIMBA_BASES}, got {basis!r}")
    u = torch.arange(H)[:, None].expand(H, W)
    v = torch.arange(W)[None, :].expand(H, W)
    ring = torch.maximum(u, v).reshape(1, H, W).expand(C, H, W).reshape(-1).double()
    key = ring + 0.5 * torch.rand(n, generator=generator, dtype=torch.float64)  # random within a ring
    return torch.argsort(key)


def basis_vector(index: int, shape: tuple[int, int, int], basis: str, dct=None) -> torch.Tensor:
    """Unit-norm direction number ``index`` of the pixel basis or of the 2-D DCT basis (per channel)."""
    C, H, W = shape
    c, rem = divmod(int(index), H * W)
    u, v = divmod(rem, W)
    q = torch.zeros(shape, dtype=torch.float64 if dct is None else dct[0].dtype)
    if basis == "pixel":
        q[c, u, v] = 1.0
    else:
        Dh, Dw = dct if dct is not None else (dct_matrix(H), dct_matrix(W))
        q[c] = Dh[u][:, None] * Dw[v][None, :]
    return q


@torch.no_grad()
def simba(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, iters: int, basis: str = "pixel",
          generator: torch.Generator | None = None, batch_size: int = 1000) -> dict:
    """Untargeted SimBA (Guo et al., 2019) on the images ``x`` (pixel values in ``[0, 1]``), batched.

    One *iteration* tries one basis direction ``q`` (the same for every image, in the order of
    :func:`simba_order`; after all ``C H W`` directions the order repeats): ``x - eps q`` is accepted if
    it lowers the probability of the true class, otherwise ``x + eps q`` is tried and accepted if it
    lowers it; so an iteration costs one or two queries.  Perturbed images are clipped to ``[0, 1]``.
    An image stops (succeeds) as soon as it is misclassified.  Only images the model classifies
    correctly are attacked.  Returns ``success_iter`` (the iteration at which each attacked image was
    first misclassified, ``inf`` if never), ``queries`` per attacked image, the final ``delta``,
    the true-class probability after every iteration (``prob``, ``iters x n``) and ``accepted`` steps.
    """
    model.eval()
    shape = tuple(x.shape[1:])
    dev = x.device

    def query(z):
        out = torch.cat([model(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])
        return torch.softmax(out.float(), 1), out.argmax(1)

    probs, pred = query(x)
    ok = pred == y
    x0, y0 = x[ok], y[ok]
    n = len(y0)
    p = probs[ok].gather(1, y0[:, None])[:, 0]
    delta = torch.zeros_like(x0)
    success = torch.full((n,), math.inf)
    queries = torch.zeros(n, dtype=torch.long)
    accepted = torch.zeros(n, dtype=torch.long)
    prob_trace = torch.full((iters, n), math.nan)
    order = simba_order(shape, basis, generator if generator is not None else torch.Generator().manual_seed(0))
    dct = (dct_matrix(shape[1], x.dtype), dct_matrix(shape[2], x.dtype)) if basis == "dct" else None
    active = torch.ones(n, dtype=torch.bool)
    for t in range(iters):
        idx = active.nonzero()[:, 0]
        if len(idx) == 0:
            break
        q = basis_vector(int(order[t % len(order)]), shape, basis, dct).to(dev, x.dtype)
        idx_d = idx.to(dev)
        base = x0[idx_d] + delta[idx_d]
        yi = y0[idx_d]
        pm, predm = query((base - eps * q).clamp(0, 1))
        pm = pm.gather(1, yi[:, None])[:, 0]
        better_m = pm < p[idx_d]
        queries[idx] += 1
        todo = ~better_m
        pp = torch.full_like(pm, math.inf)
        predp = predm.clone()
        if todo.any():
            sub = todo.nonzero()[:, 0]
            pr, prd = query((base[sub] + eps * q).clamp(0, 1))
            pp[sub] = pr.gather(1, yi[sub, None])[:, 0]
            predp[sub] = prd
            queries[idx[sub.cpu()]] += 1
        better_p = todo & (pp < p[idx_d])
        step = torch.zeros(len(idx), dtype=x.dtype, device=dev)
        step[better_m], step[better_p] = -eps, eps
        delta[idx_d] += step[:, None, None, None] * q
        p[idx_d] = torch.where(better_m, pm, torch.where(better_p, pp, p[idx_d]))
        new_pred = torch.where(better_m, predm, torch.where(better_p, predp, yi))
        accepted[idx] += (better_m | better_p).long().cpu()
        fooled = (new_pred != yi).cpu()
        success[idx[fooled]] = t + 1
        active[idx[fooled]] = False
        prob_trace[t] = p.cpu()
    return {"success_iter": success, "queries": queries, "delta": delta.cpu(), "prob": prob_trace,
            "accepted": accepted, "n_attacked": n, "n_total": len(y)}


def attack_success_rate(success_iter: torch.Tensor, checkpoints) -> dict[int, float]:
    """Fraction of the attacked images misclassified after ``t`` iterations, for each ``t``."""
    s = success_iter
    return {int(t): float((s <= t).float().mean()) if len(s) else float("nan") for t in checkpoints}

