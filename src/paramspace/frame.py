"""Report 4 (Grigoriev 2022): frame regularization of a layer, its baselines, and the robustness tests.

**The frame regularizer.**  For a layer with matrix ``W`` and Gram matrix ``V = W^T W`` (``n x n``),

    R(W) = 1/n sum_i [ M(v_ii - A - sum_{j!=i} |v_ij|)^2 + M(-v_ii + B - sum_{j!=i} |v_ij|)^2 ],  M(v) = min(v, 0),

with frame bounds ``0 <= A <= B``.  ``R = 0`` iff every Gershgorin disc ``[v_ii - r_i, v_ii + r_i]``
(``r_i = sum_{j!=i} |v_ij|``) lies in ``[A, B]``; then every eigenvalue of ``V`` does, so
``A ||x||^2 <= ||W x||^2 <= B ||x||^2`` for every ``x``: the rows of ``W`` form a frame with bounds
``A, B`` (:func:`gershgorin_penalty`).  When ``W`` has fewer rows than columns ``W^T W`` is singular
and no ``A > 0`` can hold, so the Gram of the adjoint ``W W^T`` is used instead (the columns then form
a frame of the output space); we call the two the *input* and the *output* side.

**Convolutions.**  A ``Conv2d`` with kernel ``K`` (``c_out x c_in x k x k``) and stride 1 is a block
Toeplitz operator ``T``; on an infinite (or large enough circular) grid, row ``(c, p)`` of ``T^T T``
holds the kernel's self-correlations ``G[c, c', s] = sum_{o, d} K[o, c, d] K[o, c', d + s]`` for
every input channel ``c'`` and offset ``s`` (``|s| < k``), the same for every position ``p``.  ``G`` is
one ``conv2d`` of ``K^T`` with itself (padding ``k - 1``), as in orthogonal convolutions (Wang et al.,
2020), so ``T`` is never materialised (:func:`conv_gram`).  A convolution with stride ``S`` equals a
stride-1 convolution of the *polyphase* (pixel-unshuffled) input with the kernel
``K'[o, (c, r), q] = K[o, c, S q + r]`` (:func:`polyphase_kernel`): ``T_S = T' P`` with ``P`` a
coordinate selection, so ``T_S^T T_S`` and ``T'^T T'`` have the same rows on the pixels the layer reads
and ``T_S T_S^T = T' T'^T`` exactly.  Pixels a strided layer never reads (a 1x1 convolution with stride
2 reads one pixel in four) are left out: their rows of ``T_S^T T_S`` are zero and would only add the
constant ``A^2``.  The side is the input side when ``c_out >= c_in S^2`` (read phases), else the output
side.  The regularizer is applied to every ``Conv2d`` and ``Linear`` weight, summed over layers.

**Spectra.**  The eigenvalues of the Gram of a circular convolution on an ``N x N`` grid are those of
the ``c x c`` Gram matrices of the kernel's 2-D DFT at the ``N^2`` frequencies (Sedghi, Gupta and Long,
2019), computed after the same polyphase reduction (:func:`conv_spectrum`).

**Baselines** (:func:`so_penalty`, :func:`srip_penalty`, :func:`ocnn_penalty`, :func:`mhe_penalty`):
soft orthogonality and SRIP (Bansal, Chen and Wang, 2018) on the kernel reshaped to
``c_out x (c_in k^2)``, orthogonal convolutions (Wang et al., 2020), and minimum hyperspherical energy
(Liu et al., 2018).

**Robustness.**  Corruptions in the CIFAR-10-C protocol (Hendrycks and Dietterich, 2019) at five
severities (:func:`corrupt`), and the SimBA black-box attack (Guo et al., 2019) in the pixel or DCT
basis (:func:`simba`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from . import data as D
from .claims import paired_claim
from .train import cpu_threads, resolve_device, seed_everything

METHODS = ("none", "frame", "mhe", "so", "srip", "ocnn")
METHOD_LABELS = {"none": "no regularization", "frame": "frame", "mhe": "MHE", "so": "SO", "srip": "SRIP",
                 "ocnn": "OCNN"}
DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                  "cifar100": "CIFAR-100", "svhn": "SVHN"}
ARCHS = ("small_resnet", "resnet34", "resnet50")
ARCH_LABELS = {"small_resnet": "small ResNet", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}
OPTIMIZERS = ("adam", "sgd")
SIMBA_BASES = ("pixel", "dct")


# --- the frame penalty from Gershgorin discs ------------------------------------------------------


def gershgorin_penalty(diag: torch.Tensor, radius: torch.Tensor, A: float, B: float) -> torch.Tensor:
    """``mean_i [min(d_i - A - r_i, 0)^2 + min(B - d_i - r_i, 0)^2]`` over the rows ``i``."""
    lower = torch.clamp(diag - A - radius, max=0.0)
    upper = torch.clamp(B - diag - radius, max=0.0)
    return torch.mean(lower ** 2 + upper ** 2)


def matrix_rows(V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal and Gershgorin radii ``r_i = sum_{j != i} |v_ij|`` of a square matrix."""
    d = torch.diagonal(V)
    return d, V.abs().sum(1) - d.abs()


def linear_side(W: torch.Tensor) -> str:
    """``"input"`` (``W^T W``) when ``W`` has at least as many rows as columns, else ``"output"`` (``W W^T``)."""
    return "input" if W.shape[0] >= W.shape[1] else "output"


def linear_gram(W: torch.Tensor, side: str | None = None) -> torch.Tensor:
    side = side or linear_side(W)
    return W.T @ W if side == "input" else W @ W.T


def frame_penalty_matrix(W: torch.Tensor, A: float, B: float, side: str | None = None) -> torch.Tensor:
    """The frame penalty of a linear layer's weight ``W`` (``out x in``)."""
    return gershgorin_penalty(*matrix_rows(linear_gram(W, side)), A, B)


def polyphase_kernel(K: torch.Tensor, stride: int) -> torch.Tensor:
    """The stride-1 kernel ``K'[o, (c, r_h, r_w), q_h, q_w] = K[o, c, S q_h + r_h, S q_w + r_w]`` acting on
    the polyphase components of the input (``pixel_unshuffle`` order), keeping only the phases the
    kernel reaches (``r < k``)."""
    if stride == 1:
        return K
    s = stride
    c_out, c_in, kh, kw = K.shape
    qh, qw = -(-kh // s), -(-kw // s)
    Kp = F.pad(K, (0, qw * s - kw, 0, qh * s - kh))
    Kp = Kp.reshape(c_out, c_in, qh, s, qw, s).permute(0, 1, 3, 5, 2, 4)  # (o, c, r_h, r_w, q_h, q_w)
    Kp = Kp[:, :, :min(s, kh), :min(s, kw)]
    return Kp.reshape(c_out, -1, qh, qw)


def conv_side(K: torch.Tensor, stride: int = 1) -> str:
    """``"input"`` when ``c_out`` is at least the number of read input phases ``c_in min(S, k)^2``."""
    return "input" if K.shape[0] >= polyphase_kernel(K, stride).shape[1] else "output"


def conv_gram(K: torch.Tensor, stride: int = 1, side: str | None = None) -> torch.Tensor:
    """The distinct rows of the Gram of a convolution's operator, as a ``m x m x (2k'-1) x (2k'-1)`` array.

    Input side (``T^T T``): ``G[a, b, s]`` is the entry between input channel (phase) ``a`` at any
    pixel ``p`` and channel ``b`` at pixel ``p + s``.  Output side (``T T^T``): the same between output
    channels.  Each is one ``conv2d`` of the (polyphase) kernel with itself.
    """
    side = side or conv_side(K, stride)
    Kp = polyphase_kernel(K, stride)
    pad = (Kp.shape[2] - 1, Kp.shape[3] - 1)
    if side == "input":
        Kt = Kp.transpose(0, 1)
        return F.conv2d(Kt, Kt, padding=pad)
    return F.conv2d(Kp, Kp, padding=pad)


def gram_rows(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal and Gershgorin radius of each distinct row of a convolution Gram from :func:`conv_gram`."""
    ch, cw = G.shape[2] // 2, G.shape[3] // 2
    d = torch.diagonal(G[:, :, ch, cw])
    return d, G.abs().sum((1, 2, 3)) - d.abs()


def frame_penalty_conv(K: torch.Tensor, A: float, B: float, stride: int = 1, side: str | None = None) -> torch.Tensor:
    """The frame penalty of a convolution: mean over the distinct rows of its operator's Gram."""
    return gershgorin_penalty(*gram_rows(conv_gram(K, stride, side)), A, B)


# --- regularized layers ---------------------------------------------------------------------------


@dataclass
class Layer:
    name: str
    module: nn.Module
    kind: str  # "conv" or "linear"
    stride: int

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight


def regularized_layers(model: nn.Module) -> list[Layer]:
    """Every ``Conv2d`` (square stride, no groups or dilation) and ``Linear`` of ``model``, in order."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.dilation != (1, 1) or m.stride[0] != m.stride[1]:
                raise ValueError(f"{name}: only convolutions without groups or dilation and with a square stride")
            out.append(Layer(name, m, "conv", m.stride[0]))
        elif isinstance(m, nn.Linear):
            out.append(Layer(name, m, "linear", 1))
    return out


def frame_penalty_layer(layer: Layer, A: float, B: float) -> torch.Tensor:
    if layer.kind == "conv":
        return frame_penalty_conv(layer.weight, A, B, layer.stride)
    return frame_penalty_matrix(layer.weight, A, B)


# --- baselines ------------------------------------------------------------------------------------


def _rows_matrix(W: torch.Tensor) -> torch.Tensor:
    """Convolution kernels as ``c_out x (c_in k^2)``: one row per filter (neuron)."""
    return W.reshape(W.shape[0], -1)


def _small_gram_minus_identity(W: torch.Tensor) -> torch.Tensor:
    M = _rows_matrix(W)
    G = M @ M.T if M.shape[0] <= M.shape[1] else M.T @ M
    return G - torch.eye(G.shape[0], dtype=G.dtype, device=G.device)


def so_penalty(W: torch.Tensor) -> torch.Tensor:
    """Soft orthogonality ``||W^T W - I||_F^2`` of the reshaped weight, on the smaller Gram (``W W^T`` for wide)."""
    return torch.sum(_small_gram_minus_identity(W) ** 2)


def srip_penalty(W: torch.Tensor, n_iter: int = 2, v0: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SRIP: the spectral norm ``sigma(W^T W - I)`` of the reshaped weight by power iteration.

    ``n_iter`` iterations from ``v0`` (or a random start) on the detached matrix; the returned value
    ``||M v||`` (``v`` the last unit iterate) carries the gradient.  Returns ``(sigma, v)`` so that the
    next call can start from ``v`` (warm start, as ``torch.nn.utils.spectral_norm`` does).
    """
    M = _small_gram_minus_identity(W)
    with torch.no_grad():
        v = v0 if v0 is not None else torch.randn(M.shape[0], generator=generator, dtype=M.dtype).to(M.device)
        v = v / v.norm().clamp_min(1e-12)
        Md = M.detach()
        for _ in range(n_iter):
            v = Md @ v
            v = v / v.norm().clamp_min(1e-12)
    return torch.linalg.vector_norm(M @ v), v


def ocnn_penalty(W: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Orthogonal convolution (Wang et al., 2020): ``||Conv(K, K, padding=P, stride=S) - I_r0||_F^2``,
    ``P = floor((k - 1)/S) S``; for a linear weight ``||W W^T - I||_F^2`` on the smaller Gram."""
    if W.dim() == 2:
        return so_penalty(W)
    k = W.shape[2]
    P = ((k - 1) // stride) * stride
    out = F.conv2d(W, W, stride=stride, padding=P)
    target = torch.zeros_like(out)
    c = out.shape[-1] // 2
    target[:, :, c, c] = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    return torch.sum((out - target) ** 2)


def mhe_penalty(W: torch.Tensor, power: float = 2.0, eps: float = 1e-4) -> torch.Tensor:
    """Minimum hyperspherical energy (Liu et al., 2018) of the layer's neurons (rows, filters):
    the mean over ordered pairs ``i != j`` of ``||w_i/|w_i| - w_j/|w_j|||^{-s}`` (``s = power > 0``), or
    of ``log(1 / ||.||)`` for ``s = 0``.  ``eps`` keeps coinciding neurons finite."""
    M = _rows_matrix(W)
    n = M.shape[0]
    if n < 2:
        return M.sum() * 0.0
    U = M / M.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d2 = (2.0 - 2.0 * (U @ U.T)).clamp_min(0.0)
    off = ~torch.eye(n, dtype=torch.bool, device=M.device)
    d2 = d2[off] + eps
    if power == 0:
        return torch.mean(-0.5 * torch.log(d2))
    return torch.mean(d2 ** (-power / 2))


class Regularizer:
    """``weight * sum over regularized layers of the method's penalty``, as a callable on the model."""

    def __init__(self, method: str, params: dict, model: nn.Module, seed: int = 0):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method, self.layers = method, regularized_layers(model)
        self.A, self.B = params["frame_A"], params["frame_B"]
        self.weight = 0.0 if method == "none" else float(params[f"{method}_weight"])
        self.mhe_power, self.srip_iters = params["mhe_power"], params["srip_iters"]
        self._v: dict[str, torch.Tensor] = {}
        self._gen = torch.Generator().manual_seed(seed + 104729)

    def penalty(self) -> torch.Tensor:
        total = 0.0
        for layer in self.layers:
            W = layer.weight
            if self.method == "frame":
                total = total + frame_penalty_layer(layer, self.A, self.B)
            elif self.method == "so":
                total = total + so_penalty(W)
            elif self.method == "srip":
                sigma, self._v[layer.name] = srip_penalty(W, self.srip_iters, self._v.get(layer.name), self._gen)
                total = total + sigma
            elif self.method == "ocnn":
                total = total + ocnn_penalty(W, layer.stride)
            elif self.method == "mhe":
                total = total + mhe_penalty(W, self.mhe_power)
        return total

    def __call__(self, model: nn.Module | None = None) -> torch.Tensor:
        if self.method == "none" or self.weight == 0:
            return torch.zeros((), device=self.layers[0].weight.device)
        return self.weight * self.penalty()


# --- spectra --------------------------------------------------------------------------------------


def _fold(Kp: torch.Tensor, m: int) -> torch.Tensor:
    """The kernel of the circular convolution on an ``m x m`` grid (taps beyond ``m`` wrap around)."""
    if Kp.shape[2] <= m and Kp.shape[3] <= m:
        return Kp
    out = Kp.new_zeros(Kp.shape[0], Kp.shape[1], m, m)
    for a in range(Kp.shape[2]):
        for b in range(Kp.shape[3]):
            out[:, :, a % m, b % m] += Kp[:, :, a, b]
    return out


def conv_spectrum(K: torch.Tensor, stride: int, n: int, side: str | None = None) -> torch.Tensor:
    """Eigenvalues of the Gram (``side`` as in :func:`conv_side`) of the circular convolution with
    kernel ``K`` and stride ``S`` on an ``n x n`` input, ``n`` rounded up to a multiple of ``S``
    (the squared singular values, with zeros where the Gram is larger than the operator's rank).
    One ``c x c`` eigenproblem per DFT frequency of the polyphase kernel (Sedghi et al., 2019)."""
    side = side or conv_side(K, stride)
    Kp = polyphase_kernel(K.detach().double(), stride)
    m = -(-n // stride)
    Kh = torch.fft.fft2(_fold(Kp, m), s=(m, m))  # (c_out, c_in', m, m)
    Mf = Kh.permute(2, 3, 0, 1)
    G = Mf.mH @ Mf if side == "input" else Mf @ Mf.mH
    return torch.linalg.eigvalsh(G).reshape(-1).clamp_min(0.0)


def linear_spectrum(W: torch.Tensor, side: str | None = None) -> torch.Tensor:
    return torch.linalg.eigvalsh(linear_gram(W.detach().double(), side)).clamp_min(0.0)


def layer_input_sizes(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Spatial input size of every ``Conv2d`` on input ``x`` (one forward pass with hooks)."""
    sizes, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: sizes.__setitem__(name, inp[0].shape[-1])))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(was)
    for h in hooks:
        h.remove()
    return sizes


def layer_spectra(model: nn.Module, sizes: dict[str, int], A: float, B: float) -> pd.DataFrame:
    """Per regularized layer: eigenvalue summary of its Gram (the side the frame penalty uses), the
    Gershgorin bounds ``min(d - r)``, ``max(d + r)``, the fraction of eigenvalues in ``[A, B]`` and the
    frame penalty."""
    rows = []
    for i, layer in enumerate(regularized_layers(model)):
        W = layer.weight.detach()
        with torch.no_grad():
            if layer.kind == "conv":
                ev = conv_spectrum(W, layer.stride, sizes[layer.name])
                d, r = gram_rows(conv_gram(W.double(), layer.stride))
                side = conv_side(W, layer.stride)
            else:
                ev = linear_spectrum(W)
                d, r = matrix_rows(linear_gram(W.double()))
                side = linear_side(W)
            pen = float(frame_penalty_layer(layer, A, B))
        ev = ev.cpu().numpy()
        label = layer.name.removeprefix("net.")
        label = label[:-2] if label.endswith(("shortcut.0", "downsample.0")) else label
        rows.append(dict(layer=i, name=layer.name, label=label, kind=layer.kind, side=side, ev_min=float(ev.min()),
                         ev_q05=float(np.quantile(ev, 0.05)), ev_median=float(np.median(ev)),
                         ev_q95=float(np.quantile(ev, 0.95)), ev_max=float(ev.max()),
                         gersh_lo=float((d - r).min()), gersh_hi=float((d + r).max()),
                         frac_in_bounds=float(np.mean((ev >= A) & (ev <= B))), frame_penalty=pen))
    return pd.DataFrame(rows)


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


# --- models -----------------------------------------------------------------------------------------


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so that the network takes pixel values in ``[0, 1]``."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm, identity or 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def small_resnet(in_channels: int = 1, n_classes: int = 10, widths=(8, 16, 32), mean=(0.5,),
                 std=(0.5,)) -> nn.Sequential:
    """Normalize - conv3x3 stride 2 (width w1) - BN - ReLU - one basic block per width (stride 1 for
    the first, 2 after) - global average pool - linear.  Kaiming-normal (fan-out) initialisation of the
    convolutions, as torchvision's ResNets.  Layers are named ``stem``, ``block1.conv1``, ..., ``fc``."""
    layers = [("norm", Normalize(mean, std)), ("stem", nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False)),
              ("bn", nn.BatchNorm2d(widths[0])), ("relu", nn.ReLU())]
    c = widths[0]
    for i, w in enumerate(widths):
        layers.append((f"block{i + 1}", BasicBlock(c, w, 1 if i == 0 else 2)))
        c = w
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, n_classes))]
    net = nn.Sequential(OrderedDict(layers))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def resnet_cifar(arch: str, n_classes: int, in_channels: int = 3, mean=(0.5,), std=(0.5,)) -> nn.Sequential:
    """torchvision's ResNet-34/50 for 32x32 inputs: 3x3 stride-1 stem, no max-pool, behind :class:`Normalize`."""
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None, num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    return nn.Sequential(OrderedDict([("norm", Normalize(mean, std)), ("net", net)]))


def build_model(arch: str, in_channels: int, n_classes: int, widths, mean, std) -> nn.Module:
    if arch == "small_resnet":
        return small_resnet(in_channels, n_classes, tuple(widths), mean, std)
    if arch in ("resnet34", "resnet50"):
        return resnet_cifar(arch, n_classes, in_channels, mean, std)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


# --- data -------------------------------------------------------------------------------------------


@dataclass
class ImageData(D.ImageTensors):
    """Images as tensors with pixel values in ``[0, 1]`` (the model normalises them itself); training
    batches optionally randomly cropped and flipped."""

    table: str = "grey"  # corruption constants: "grey" or "cifar"
    crop: bool = False  # random crop (padding 4) of training batches
    flip: bool = False  # random horizontal flip of training batches

    def stats(self) -> tuple[list[float], list[float]]:
        return self.X_train.mean((0, 2, 3)).tolist(), self.X_train.std((0, 2, 3)).tolist()

    def augment_batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return augment(x, gen, self.crop, self.flip)


def augment(x: torch.Tensor, gen: torch.Generator, crop: bool, flip: bool, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and/or random horizontal flip, per image."""
    if not (crop or flip):
        return x
    B, C, H, W = x.shape
    if crop:
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=gen).to(x.device)
        xp = F.pad(x, (pad, pad, pad, pad))
        iy = (torch.arange(H, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        ix = (torch.arange(W, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        b = torch.arange(B, device=x.device)[:, None, None, None]
        c = torch.arange(C, device=x.device)[None, :, None, None]
        x = xp[b, c, iy, ix]
    if flip:
        f = (torch.rand(B, generator=gen) < 0.5).to(x.device)
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    return x


def _subset(X, y, n, rng):
    if n < len(y):
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        return X[idx], y[idx]
    return X, y


def _torchvision_tensors(name: str, train: bool):
    ds = D.load_torchvision(name, train=train)
    X = torch.as_tensor(np.asarray(ds.data))
    if X.dim() == 4 and X.shape[-1] == 3:  # CIFAR: N x 32 x 32 x 3
        X = X.permute(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(ds.labels if hasattr(ds, "labels") else ds.targets), dtype=torch.long)
    return X.float() / 255.0, y


def load_data(name: str, n_train: int, n_test: int, seed: int, augment_train: bool = False) -> ImageData:
    """MNIST / Fashion-MNIST (shipped, 28x28 grey) or CIFAR-10/100, SVHN (torchvision; needs a network
    or the files in ``data/``).  ``n_train``/``n_test``: seeded random subsets (all if larger)."""
    if name in ("mnist", "fashion-mnist"):
        ds = D.load_mnist(n_train=n_train, n_test=n_test, seed=seed, flatten=False, variant=name)
        return ImageData(name, ds.X_train, ds.y_train, ds.X_test, ds.y_test, 10, "grey")
    if name in ("cifar10", "cifar100", "svhn"):
        rng = np.random.default_rng(seed)
        Xtr, ytr = _subset(*_torchvision_tensors(name, True), n_train, rng)
        Xte, yte = _subset(*_torchvision_tensors(name, False), n_test, rng)
        n_classes = 100 if name == "cifar100" else 10
        return ImageData(name, Xtr, ytr, Xte, yte, n_classes, "cifar", crop=augment_train,
                         flip=augment_train and name != "svhn")
    raise D.DataError(f"unknown data set {name!r}; choose one of {DATASETS}")


def second_domain(name: str, n: int, seed: int):
    """A label-compatible second domain, where one is available offline: SVHN digits -> MNIST digits
    (shipped; resized to 32x32 and replicated to three channels).  ``None`` otherwise."""
    if name != "svhn":
        return None
    ds = D.load_mnist(n_test=n, n_train=1, seed=seed, flatten=False, variant="mnist")
    X = F.interpolate(ds.X_test, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return "MNIST", X.clamp(0, 1), ds.y_test


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


def shifted_domain(data: "ImageData", params: dict, seed: int):
    """The second domain of the domain-shift comparison: a real label-compatible one where available
    offline (:func:`second_domain`), else the first ``n_shift`` test images under :func:`affine_shift`
    (the same transforms for every model of a seed).  Returns ``(name, X, y)``."""
    real = second_domain(data.name, params["n_test"], seed)
    if real is not None:
        return real
    n = min(params["n_shift"], len(data.y_test))
    gen = torch.Generator().manual_seed(seed * 1000 + 977)
    X = affine_shift(data.X_test[:n].cpu(), params["domain_rotation"], params["domain_translate"], gen)
    return "rotated and shifted", X, data.y_test[:n].cpu()


# --- training and evaluation --------------------------------------------------------------------------


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(X[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(y))


def checkpoint_steps(total: int, n: int) -> list[int]:
    """``n`` checkpoint steps evenly spaced over ``total`` training steps, the last at ``total``."""
    return sorted({max(1, round(k * total / n)) for k in range(1, n + 1)}) if n > 0 else []


def fit(model: nn.Module, data: ImageData, reg: Regularizer, params: dict, seed: int, checkpoints: int = 0,
        on_checkpoint=None) -> dict:
    """Minimise cross-entropy + ``reg(model)`` with a cosine learning-rate schedule (per step, to 0) and,
    if ``grad_clip > 0``, the gradient norm clipped to it; batch order and augmentation depend on
    ``seed`` only.  With ``checkpoints = n > 0``, ``on_checkpoint(step, total)`` is called after each of
    the steps of :func:`checkpoint_steps` (the model is back in training mode afterwards)."""
    model.train()
    if params["optimizer"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    elif params["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, nesterov=True,
                              weight_decay=params["weight_decay"])
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {params['optimizer']!r}")
    steps = params["epochs"] * -(-len(data.y_train) // params["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    marks = set(checkpoint_steps(steps, checkpoints)) if on_checkpoint is not None else set()
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    ce_sum, reg_sum, n = 0.0, 0.0, 0
    for _ in range(params["epochs"]):
        model.train()
        for x, y in data.batches(params["batch_size"], gen):
            ce = F.cross_entropy(model(x), y)
            r = reg(model)
            loss = ce + r
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if params["grad_clip"] > 0:
                nn.utils.clip_grad_norm_(model.parameters(), params["grad_clip"])
            opt.step()
            sched.step()
            ce_sum, reg_sum, n = ce_sum + float(ce.detach()), reg_sum + float(r.detach()), n + 1
            if n in marks:
                on_checkpoint(n, steps)
                model.train()
    model.eval()
    return {"seconds": time.perf_counter() - t0, "mean_ce": ce_sum / max(1, n), "mean_reg": reg_sum / max(1, n)}


def shift_accuracies(model: nn.Module, X: torch.Tensor, y: torch.Tensor, params: dict, table: str,
                     seed: int) -> list[dict]:
    """Accuracy on every corruption x severity of ``X`` (the same corrupted images for every model of a
    seed: the noise generator is seeded by ``seed``, the corruption and the severity)."""
    rows = []
    for ci, name in enumerate(params["corruptions"]):
        for sev in params["severities"]:
            gen = torch.Generator().manual_seed(seed * 1000 + ci * 10 + sev)
            Xc = corrupt(X, name, sev, gen, table)
            rows.append(dict(corruption=name, severity=sev, accuracy=accuracy(model, Xc, y)))
    return rows


def domain_shift(model: nn.Module, data: ImageData, params: dict, seed: int, dev: torch.device,
                 second=None) -> dict:
    """Accuracy on the corrupted copies of the first ``n_shift`` test images (``shift``: one row per
    corruption and severity) and on the second domain (``second``: ``(name, accuracy)``; ``second``
    may pass the domain in, else :func:`shifted_domain` builds it)."""
    n_shift = min(params["n_shift"], len(data.y_test))
    Xs, ys = data.X_test[:n_shift], data.y_test[:n_shift]
    sd = second if second is not None else shifted_domain(data, params, seed)
    return {"shift": shift_accuracies(model, Xs, ys, params, data.table, seed),
            "second": (sd[0], accuracy(model, sd[1].to(dev), sd[2].to(dev)))}


def evaluate(model: nn.Module, data: ImageData, params: dict, seed: int, dev: torch.device,
             attack: bool = True) -> dict:
    """Clean accuracy, accuracy on the corrupted copies, on a second domain (if any), SimBA ASRs,
    and the per-layer spectra."""
    out = {"clean_acc": accuracy(model, data.X_test, data.y_test), **domain_shift(model, data, params, seed, dev)}
    if not attack:  # SimBA skipped: rates not measured
        out.update(asr={int(t): float("nan") for t in params["simba_checkpoints"]}, simba_queries=float("nan"),
                   simba_attacked=0)
        sizes = layer_input_sizes(model, data.X_test[:2])
        out["spectra"] = layer_spectra(model, sizes, params["frame_A"], params["frame_B"])
        return out
    n_att = min(params["simba_images"], len(data.y_test))
    gen = torch.Generator().manual_seed(seed + 31337)
    att = simba(model, data.X_test[:n_att], data.y_test[:n_att], params["simba_eps"],
                max(params["simba_checkpoints"]), params["simba_basis"], gen)
    out["asr"] = attack_success_rate(att["success_iter"], params["simba_checkpoints"])
    out["simba_queries"] = float(att["queries"].float().mean()) if att["n_attacked"] else float("nan")
    out["simba_attacked"] = att["n_attacked"]
    sizes = layer_input_sizes(model, data.X_test[:2])
    out["spectra"] = layer_spectra(model, sizes, params["frame_A"], params["frame_B"])
    return out


def check_params(params: dict) -> dict:
    """Checks across parameters that :mod:`paramspace.profiles` validates one at a time."""
    from .reports import ProfileError

    if params["frame_A"] > params["frame_B"]:
        raise ProfileError(f"frame_regularization: frame_A = {params['frame_A']} must be at most "
                           f"frame_B = {params['frame_B']}")
    if "none" not in params["methods"] or "frame" not in params["methods"]:
        raise ProfileError("frame_regularization: methods must include 'none' and 'frame' (the claims compare them)")
    missing = [m for m in ("none", "frame") if m not in params["robust_methods"]]
    extra = [m for m in params["robust_methods"] if m not in params["methods"]]
    if missing or extra:
        raise ProfileError(f"frame_regularization: robust_methods = {params['robust_methods']} must include 'none' "
                           f"and 'frame' and only methods of `methods` ({params['methods']})")
    return params


def describe(params: dict) -> str:
    archs = ", ".join(ARCH_LABELS[a] + (f" (widths {params['widths']})" if a == "small_resnet" else "")
                      for a in params["archs"])
    sets = ", ".join(DATASET_LABELS[d] for d in params["datasets"])
    opt = (f"Adam (lr {params['lr']:g}" if params["optimizer"] == "adam"
           else f"SGD with Nesterov momentum 0.9 (lr {params['lr']:g}") + ", cosine schedule to 0)"
    wd = f", weight decay {params['weight_decay']:g}" if params["weight_decay"] else ""
    wd += f", gradient norm clipped at {params['grad_clip']:g}" if params["grad_clip"] else ""
    aug = ", random crop (+ flip for CIFAR)" if params["augment"] else ""
    return (f"{archs} on {sets} ({params['n_train']} training / {params['n_test']} test images per set, "
            f"seeded subsets), {params['epochs']} epochs of {opt}{wd}, batch {params['batch_size']}{aug}, "
            f"{params['n_seeds']} seeds")


def describe_run(params: dict) -> str:
    w = ", ".join(f"{METHOD_LABELS[m]} {params[m + '_weight']:g}" for m in params["methods"] if m != "none")
    corr = ", ".join(CORRUPTION_LABELS[c] for c in params["corruptions"])
    return (f"**This run:** {describe(params)}. Frame bounds $A$ = {params['frame_A']:g}, $B$ = "
            f"{params['frame_B']:g}; regularization weights: {w}; MHE power $s$ = {params['mhe_power']:g}, "
            f"SRIP power iterations {params['srip_iters']}. Shifted domain: {corr} at severities "
            f"{params['severities']} on {params['n_shift']} test images. SimBA-{params['simba_basis']} with "
            f"$\\epsilon$ = {params['simba_eps']:g} on {params['simba_images']} test images, up to "
            f"{max(params['simba_checkpoints'])} iterations. Domain shift at matched clean accuracy: the closest of "
            f"{params['match_checkpoints']} checkpoints per regularized run; second domain where none is available: "
            f"rotations up to ±{params['domain_rotation']:g}° and shifts up to ±{params['domain_translate']:g} of the "
            f"side. Weight-decay experiment: no regularization with weight decay {params['wd_decay']:g} vs frame "
            f"without. Profile `{params['profile']}`.")


def run(params: dict, progress: bool = True) -> dict:
    """Every data set x architecture x seed x method: train, then evaluate.

    Returns tidy data frames: ``scores`` (dataset, arch, method, seed, clean, shift (mean over
    corruptions and severities), second-domain accuracy, ASR per checkpoint, mean SimBA queries,
    fraction of Gram eigenvalues in [A, B] and frame penalty averaged over layers, seconds),
    ``shift`` (… corruption, severity, accuracy) and ``spectra`` (… per layer).
    """
    check_params(params)
    dev = resolve_device(params["device"])
    with cpu_threads(params["cpu_threads"]):
        return _run(params, dev, progress)


def wd_variants(params: dict) -> list[tuple[str, str, float]]:
    """Extra runs of the weight-decay experiment (frame without weight decay vs no regularization with
    ``wd_decay``), as ``(label, method, weight decay)``: only those the main runs (all at
    ``weight_decay``) do not already provide.  Empty when ``wd_decay`` is 0."""
    if params["wd_decay"] <= 0:
        return []
    out = []
    if params["weight_decay"] != params["wd_decay"]:
        out.append(("none+wd", "none", float(params["wd_decay"])))
    if params["weight_decay"] != 0:
        out.append(("frame-wd", "frame", 0.0))
    return out


def wd_pair(params: dict) -> tuple[str, str]:
    """The two runs the weight-decay claim compares: (frame without weight decay, none with it)."""
    frame_ = "frame" if params["weight_decay"] == 0 else "frame-wd"
    none_ = "none" if params["weight_decay"] == params["wd_decay"] else "none+wd"
    return frame_, none_


def match_checkpoint(accs, target: float) -> int:
    """Index of the checkpoint whose clean accuracy is closest to ``target`` (ties: the later one)."""
    a = np.asarray(accs, dtype=float)
    gap = np.abs(a - target)
    return int(np.flatnonzero(gap == gap.min())[-1])


def _run(params: dict, dev: torch.device, progress: bool) -> dict:
    import copy

    from tqdm import tqdm

    methods = ["none"] + [m for m in params["methods"] if m != "none"]  # the others are matched to "none"
    variants = wd_variants(params)
    blocks = [(d, a, params["seed"] + s) for d in params["datasets"] for a in params["archs"]
              for s in range(params["n_seeds"])]
    scores, shift, spectra, wd = [], [], [], []
    bar = tqdm(total=len(blocks) * (len(methods) + len(variants)), desc="data set x arch x seed x run",
               disable=not progress)
    for dname, arch, seed in blocks:
        data = load_data(dname, params["n_train"], params["n_test"], seed, params["augment"]).to(dev)
        mean, std = data.stats()
        second = shifted_domain(data, params, seed)  # the same second domain for every model of a seed
        ref = None
        for method in methods:
            seed_everything(seed)  # same initial weights for every method of a seed
            model = build_model(arch, data.in_channels, data.n_classes, params["widths"], mean, std).to(dev)
            reg = Regularizer(method, params, model, seed)
            ckpts = []

            def keep(step, total, model=model, ckpts=ckpts):
                ckpts.append((step / total, accuracy(model, data.X_test, data.y_test),
                              copy.deepcopy(model.state_dict())))

            robust = method in params["robust_methods"]
            n_ck = params["match_checkpoints"] if method != "none" and robust else 0
            tr = fit(model, data, reg, params, seed, n_ck, keep if n_ck else None)
            ev = evaluate(model, data, params, seed, dev, attack=robust)
            ev_second = domain_shift(model, data, params, seed, dev, second)
            key = dict(dataset=dname, arch=arch, method=method, seed=seed)
            clean = ev["clean_acc"]
            if method == "none":
                ref = clean
            if not robust:  # not compared at matched accuracy
                m_frac, m_clean, m_ev = np.nan, np.nan, {"shift": [{"accuracy": np.nan}], "second": ("", np.nan)}
            elif method == "none" or not ckpts:  # matched = final weights
                m_frac, m_clean, m_ev = 1.0, clean, ev_second
            else:  # the checkpoint whose clean accuracy is closest to the unregularized network's
                k = match_checkpoint([c[1] for c in ckpts], ref)
                m_frac, m_clean, state = ckpts[k]
                final = copy.deepcopy(model.state_dict())
                model.load_state_dict(state)
                m_ev = domain_shift(model, data, params, seed, dev, second)
                model.load_state_dict(final)
            sp = ev["spectra"]
            row = dict(**key, clean=clean, shift=float(np.mean([r["accuracy"] for r in ev["shift"]])),
                       second=ev_second["second"][1], second_name=ev_second["second"][0],
                       clean_matched=m_clean, matched_at=m_frac,
                       shift_matched=float(np.mean([r["accuracy"] for r in m_ev["shift"]])),
                       second_matched=m_ev["second"][1],
                       **{f"asr_{t}": v for t, v in ev["asr"].items()},
                       asr_mean=float(np.mean(list(ev["asr"].values()))), simba_queries=ev["simba_queries"],
                       simba_attacked=ev["simba_attacked"], frac_in_bounds=float(sp["frac_in_bounds"].mean()),
                       frame_penalty=float(sp["frame_penalty"].sum()), train_ce=tr["mean_ce"], seconds=tr["seconds"])
            scores.append(row)
            shift += [dict(**key, **r) for r in ev["shift"]]
            spectra += [dict(**key, **r) for r in sp.to_dict("records")]
            if method in ("none", "frame"):
                wd.append(dict(dataset=dname, arch=arch, seed=seed, run=method, method=method,
                               weight_decay=params["weight_decay"], clean=clean, seconds=tr["seconds"]))
            bar.update()
        for label, method, decay in variants:  # the weight-decay experiment: clean accuracy only
            P = {**params, "weight_decay": decay}
            seed_everything(seed)
            model = build_model(arch, data.in_channels, data.n_classes, params["widths"], mean, std).to(dev)
            tr = fit(model, data, Regularizer(method, P, model, seed), P, seed)
            wd.append(dict(dataset=dname, arch=arch, seed=seed, run=label, method=method, weight_decay=decay,
                           clean=accuracy(model, data.X_test, data.y_test), seconds=tr["seconds"]))
            bar.update()
    bar.close()
    return {"scores": pd.DataFrame(scores), "shift": pd.DataFrame(shift), "spectra": pd.DataFrame(spectra),
            "wd": pd.DataFrame(wd)}


def tune_weights(params: dict, dataset: str, seed: int, grid=(1e-3, 1e-2, 1e-1, 1.0, 10.0), tol_pp: float = 1.0,
                 methods=None, progress: bool = False) -> pd.DataFrame:
    """The rule the profiles' regularization weights come from, on one draw of the data (``seed``, not
    among the reported seeds): train without regularization, then each method at increasing weights
    of ``grid``, and keep the last weight before the clean test accuracy falls more than ``tol_pp``
    percentage points below the unregularized model's.  Returns the trials with a ``chosen`` column."""
    from tqdm import tqdm

    dev = resolve_device(params["device"])
    data = load_data(dataset, params["n_train"], params["n_test"], seed, params["augment"]).to(dev)
    mean, std = data.stats()

    def trial(method, weight):
        P = {**params, f"{method}_weight": weight} if method != "none" else params
        seed_everything(seed)
        model = build_model(params["archs"][0], data.in_channels, data.n_classes, params["widths"], mean, std).to(dev)
        fit(model, data, Regularizer(method, P, model, seed), P, seed)
        return accuracy(model, data.X_test, data.y_test)

    base = trial("none", 0.0)
    rows = [dict(method="none", weight=0.0, accuracy=base, chosen=True)]
    for m in tqdm([m for m in (methods or METHODS) if m != "none"], desc="tuning", disable=not progress):
        trials = []
        for w in grid:
            acc = trial(m, w)
            trials.append(dict(method=m, weight=w, accuracy=acc, chosen=False))
            if 100 * (base - acc) > tol_pp:
                break
        ok = [t for t in trials if 100 * (base - t["accuracy"]) <= tol_pp]
        if ok:
            ok[-1]["chosen"] = True
        rows += trials
    return pd.DataFrame(rows)


def tune_simba_eps(params: dict, dataset: str, seed: int, grid=(0.05, 0.1, 0.15, 0.2), target: float = 0.9375,
                   iters: int | None = None) -> pd.DataFrame:
    """The rule the profiles' SimBA step comes from, on one draw of the data (``seed``, not among the
    reported seeds): train the unregularized network, run SimBA with every step of ``grid`` for
    ``iters`` iterations (default: the last checkpoint) and keep the largest step whose attack success
    rate stays at or below ``target`` (default: the deck's 93.75% for no regularization after 1000
    iterations).  Returns the trials with a ``chosen`` column."""
    dev = resolve_device(params["device"])
    data = load_data(dataset, params["n_train"], params["n_test"], seed, params["augment"]).to(dev)
    seed_everything(seed)
    model = build_model(params["archs"][0], data.in_channels, data.n_classes, params["widths"], *data.stats()).to(dev)
    fit(model, data, Regularizer("none", params, model, seed), params, seed)
    T = iters or max(params["simba_checkpoints"])
    n = min(params["simba_images"], len(data.y_test))
    rows = []
    for eps in grid:
        att = simba(model, data.X_test[:n], data.y_test[:n], eps, T, params["simba_basis"],
                    torch.Generator().manual_seed(seed + 31337))
        rows.append(dict(eps=eps, asr=attack_success_rate(att["success_iter"], [T])[T], chosen=False))
    ok = [r for r in rows if r["asr"] <= target]
    if ok:
        max(ok, key=lambda r: r["eps"])["chosen"] = True
    return pd.DataFrame(rows)


# --- tables -----------------------------------------------------------------------------------------


def _mean_sd(s: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    v = scale * s.to_numpy(dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else float("nan")
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}" if np.isfinite(sd) else f"{v.mean():.{digits}f}"


def _setting(d: str, a: str, params: dict) -> str:
    return f"{DATASET_LABELS[d]}" + (f", {ARCH_LABELS[a]}" if len(params["archs"]) > 1 else "")


def accuracy_table(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Clean test accuracy (%), mean ± sd over seeds: methods (rows) x data sets (columns)."""
    cols = {}
    for (d, a), g in scores.groupby(["dataset", "arch"], sort=False):
        cols[_setting(d, a, params)] = {METHOD_LABELS[m]: _mean_sd(gm["clean"])
                                        for m, gm in g.groupby("method", sort=False)}
    return pd.DataFrame(cols).rename_axis("method")


def shift_table(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Accuracy (%) on clean, corrupted (mean over corruptions and severities) and second-domain data."""
    rows = {}
    for m, gm in scores.groupby("method", sort=False):
        row = {}
        for (d, a), g in gm.groupby(["dataset", "arch"], sort=False):
            s = _setting(d, a, params)
            row[(s, "clean")] = _mean_sd(g["clean"])
            row[(s, "corrupted")] = _mean_sd(g["shift"])
            if g["second"].notna().any():
                row[(s, f"{g['second_name'].iloc[0]} (second domain)")] = _mean_sd(g["second"])
        rows[METHOD_LABELS[m]] = row
    df = pd.DataFrame(rows).T
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df.rename_axis("method")


def asr_table(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """SimBA attack success rate (%) after t iterations, mean ± sd over seeds."""
    rows = {}
    for m, gm in scores.groupby("method", sort=False):
        row = {}
        if gm[f"asr_{params['simba_checkpoints'][0]}"].isna().all():
            continue  # not attacked (not in robust_methods)
        for (d, a), g in gm.groupby(["dataset", "arch"], sort=False):
            for t in params["simba_checkpoints"]:
                row[(_setting(d, a, params), f"t = {t}")] = _mean_sd(g[f"asr_{t}"], digits=1)
        rows[METHOD_LABELS[m]] = row
    df = pd.DataFrame(rows).T
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df.rename_axis("method")


def spectrum_table(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Fraction of Gram eigenvalues inside [A, B] (mean over layers) and the frame penalty (sum over
    layers) at the end of training, mean over seeds."""
    g = scores.groupby(["dataset", "arch", "method"], sort=False)[["frac_in_bounds", "frame_penalty"]].mean()
    g = g.reset_index()
    g["setting"] = [_setting(d, a, params) for d, a in zip(g.dataset, g.arch)]
    g["method"] = g["method"].map(METHOD_LABELS)
    out = g.pivot_table(index="method", columns="setting", values=["frac_in_bounds", "frame_penalty"], sort=False)
    return out.rename(columns={"frac_in_bounds": "eigenvalues in [A, B]", "frame_penalty": "frame penalty"}, level=0)


# --- the deck's numbers --------------------------------------------------------------------------------

DECK_ROWS = {"none": "Без регуляризации", "mhe": "Minimum Hyperspherical Energy", "so": "Weights Orthogonalization",
             "srip": "Spectral Restricted Isometry", "ocnn": "Orthogonal Convolutions",
             "frame": "Фреймовая регуляризация"}
DECK_DATASETS = ("cifar10", "cifar100", "svhn")
DECK_ARCHS = ("resnet34", "resnet50")
_ACC = {  # method: (CIFAR-10, CIFAR-100, SVHN) as (mean, sd) in %, deck tables "Accuracy (%) ... (ResNet-34/50)"
    "resnet34": {"none": ((94.53, .03), (75.58, .08), (96.50, .03)), "mhe": ((94.58, .04), (75.78, .08), (96.59, .03)),
                 "so": ((94.59, .04), (75.98, .08), (96.51, .02)), "srip": ((94.72, .03), (76.24, .09), (96.57, .03)),
                 "ocnn": ((95.03, .04), (76.57, .06), (96.66, .02)), "frame": ((95.17, .05), (77.61, .07), (96.85, .02))},
    "resnet50": {"none": ((94.83, .04), (77.20, .07), (96.92, .03)), "mhe": ((94.88, .03), (77.34, .06), (96.94, .02)),
                 "so": ((94.92, .04), (77.38, .06), (96.91, .03)), "srip": ((95.01, .03), (77.40, .07), (96.95, .03)),
                 "ocnn": ((95.29, .03), (77.77, .07), (97.01, .02)), "frame": ((95.25, .04), (78.35, .06), (97.10, .02))},
}
DECK_ACCURACY = {a: {m: dict(zip(DECK_DATASETS, v)) for m, v in t.items()} for a, t in _ACC.items()}
# Domain shift (trained on CIFAR-10; the clean column CIFAR-10 (*) at the "suboptimal epochs" chosen for the
# regularized models; the third column is printed "CINIC-100" in the deck, CINIC-10 in its text)
DECK_SHIFT = {"none": {"clean": (94.53, .03), "corrupted": (74.77, .25), "second": (67.91, .35)},
              "ocnn": {"clean": (94.52, .01), "corrupted": (76.27, .19), "second": (69.87, .29)},
              "frame": {"clean": (94.53, .01), "corrupted": (76.65, .15), "second": (71.20, .32)}}
DECK_SIMBA_ITERS = (1, 10, 50, 100, 1000)
DECK_SIMBA = {"none": (52.08, 59.37, 84.38, 92.71, 93.75), "ocnn": (41.30, 57.61, 83.69, 91.30, 92.06),
              "frame": (39.56, 49.45, 80.20, 84.61, 86.81)}
DECK_WHERE = {
    "acc": "slide 'Результаты: классификация изображений', table 'Accuracy (%) методов регуляризации ({arch})', "
           "rows '{row}' and 'Фреймовая регуляризация', column {col}",
    "shift": "slide 'Результаты: устойчивость к смене домена', table 'Accuracy (%) методов регуляризации на разных "
             "доменах', rows '{row}' and 'Фреймовая регуляризация', columns CIFAR-10 (*) and {col}",
    "simba": "slide 'Результаты: устойчивость к состязательным атакам', table 'Зависимость ASR (%) от числа "
             "итераций SimBA', rows '{row}' and 'Фреймовая регуляризация', column {col}",
    "wd": "slide 'Выводы', last bullet ('позволила отказаться от стандартной регуляризации weight decay')",
}
# Stand-ins for the deck's data sets when they are not run: CIFAR-10 and CIFAR-100 (natural images) ->
# Fashion-MNIST, SVHN (digits) -> MNIST; ResNet-34 and ResNet-50 -> the first network of the run.
DECK_STANDIN = {"cifar10": "fashion-mnist", "cifar100": "fashion-mnist", "svhn": "mnist"}


def simba_denominators(rates=None, max_n: int = 200, tol: float = 0.006) -> dict[str, int]:
    """The smallest number of attacked images ``n`` for which every SimBA rate of a deck row is a
    multiple of ``100/n`` % (to the deck's rounding, ``tol`` percentage points, or a typo)."""
    rates = DECK_SIMBA if rates is None else rates
    out = {}
    for m, r in rates.items():
        for n in range(1, max_n + 1):
            off = [abs(x * n / 100 - round(x * n / 100)) * 100 / n for x in r]
            if sum(o <= tol for o in off) >= len(r) - 1:  # allow one misprint per row
                out[m] = n
                break
    return out


def deck_setting(deck_arch: str, deck_ds: str, params: dict) -> tuple[str, str, bool]:
    """Our (data set, network) for a cell of the deck, and whether it is a stand-in."""
    d = deck_ds if deck_ds in params["datasets"] else DECK_STANDIN[deck_ds]
    if d not in params["datasets"]:
        d = params["datasets"][0]
    a = deck_arch if deck_arch in params["archs"] else params["archs"][0]
    return d, a, (d, a) != (deck_ds, deck_arch)


def _pm(x) -> str:
    return f"{x[0]:.2f} ± {x[1]:.2f}"


# --- claims -----------------------------------------------------------------------------------------


def _paired(scores, d, a, col, m1="frame", m2="none", sign=1.0, scale=100.0):
    g = scores[(scores.dataset == d) & (scores.arch == a)]
    piv = g.pivot_table(index="seed", columns="method", values=col)
    return sign * scale * (piv[m1] - piv[m2]).to_numpy(), piv.index.to_numpy()


def _means(scores, d, a, col, methods, scale=100.0):
    g = scores[(scores.dataset == d) & (scores.arch == a)]
    return {m: scale * float(g[g.method == m][col].mean()) for m in methods}


def _ours(d: str, a: str, standin: bool, deck_text: str) -> str:
    where = f"{DATASET_LABELS[d]}, {ARCH_LABELS[a]}"
    return f"ours on {where}, a stand-in for {deck_text}" if standin else f"ours on {where}"


def claims(scores: pd.DataFrame, params: dict, wd: pd.DataFrame | None = None) -> list:
    """The ledger.  Kind ``report`` (every number of the deck's four tables, and its weight-decay
    conclusion), each compared on the same comparison in our run (a stand-in where the deck's data set
    or network is not run, said in the row); kind ``ours`` for our own variants and expectations;
    ``check`` for the self-check of the domain-shift protocol.  See the module docstring for the
    stand-ins."""
    prof, out = params["profile"], []
    methods = set(scores.method)
    robust = methods & set(params["robust_methods"])
    L = METHOD_LABELS
    # 1. test accuracy: frame vs each baseline, per deck table (network) and data set
    for deck_arch in DECK_ARCHS:
        for deck_ds in DECK_DATASETS:
            d, a, standin = deck_setting(deck_arch, deck_ds, params)
            deck_text = f"{ARCH_LABELS[deck_arch]} on {DATASET_LABELS[deck_ds]}"
            ours_mean = _means(scores, d, a, "clean", methods)
            for b in ("none", "mhe", "so", "srip", "ocnn"):
                if b not in methods:
                    continue
                fr, bl = DECK_ACCURACY[deck_arch]["frame"][deck_ds], DECK_ACCURACY[deck_arch][b][deck_ds]
                ahead = fr[0] >= bl[0]
                diff, seeds = _paired(scores, d, a, "clean", "frame", b, 1.0 if ahead else -1.0)
                lead = (f"frame beats {L[b]} in test accuracy" if ahead else
                        f"{L[b]} beats frame in test accuracy (the deck has {L[b]} ahead here)")
                c = paired_claim(f"{lead}: {deck_text} ({_ours(d, a, standin, deck_text)}; "
                                 f"{'frame minus ' + L[b] if ahead else L[b] + ' minus frame'}, pp)",
                                 f"{_pm(fr)} vs {_pm(bl)} ({fr[0] - bl[0]:+.2f})", diff, seeds, prof, "{:+.2f}",
                                 deck=DECK_WHERE["acc"].format(arch=ARCH_LABELS[deck_arch], row=DECK_ROWS[b],
                                                               col=DATASET_LABELS[deck_ds]))
                c.our_value += f"; frame {ours_mean['frame']:.2f} vs {L[b]} {ours_mean[b]:.2f} %"
                out.append(c)
    # 2. domain shift at matched clean accuracy (CIFAR-10, ResNet-34 in the deck)
    d0, a0, standin = deck_setting("resnet34", "cifar10", params)
    tol = params["match_tolerance_pp"]
    for d, a in scores.groupby(["dataset", "arch"], sort=False).groups:
        deck_kind = (d, a) == (d0, a0)
        kind = "report" if deck_kind else "ours"
        second = scores[(scores.dataset == d) & (scores.arch == a)].second_name.iloc[0]
        for b in ("none", "ocnn"):
            if b not in robust:
                continue
            cm = _means(scores, d, a, "clean_matched", methods)
            for col, deck_col, what in (("shift_matched", "corrupted", "CIFAR-10-C"),
                                        ("second_matched", "second", "CINIC-10")):
                ours_what = ("corrupted copies (mean over corruptions and severities)" if deck_col == "corrupted"
                             else f"second domain: {second}")
                diff, seeds = _paired(scores, d, a, col, "frame", b)
                fr, bl = DECK_SHIFT["frame"], DECK_SHIFT[b]
                mm = _means(scores, d, a, col, methods)
                text = (f"at matched clean accuracy, frame is more accurate than {L[b]} on shifted data: "
                        f"{what} ({_ours(d, a, standin, 'ResNet-34 trained on CIFAR-10') if deck_kind else 'ours on ' + DATASET_LABELS[d] + ', ' + ARCH_LABELS[a] + ', not a deck setting'}"
                        f"; {ours_what}; frame minus {L[b]}, pp)")
                c = paired_claim(text, f"{_pm(fr[deck_col])} vs {_pm(bl[deck_col])} (clean {_pm(fr['clean'])} vs "
                                 f"{_pm(bl['clean'])})", diff, seeds, prof, "{:+.2f}", kind=kind,
                                 deck=DECK_WHERE["shift"].format(row=DECK_ROWS[b], col=what) if deck_kind else "")
                c.our_value += (f"; frame {mm['frame']:.2f} vs {L[b]} {mm[b]:.2f} % (clean {cm['frame']:.2f} vs "
                                f"{cm[b]:.2f})")
                out.append(c)
        for m in ("frame", "ocnn"):
            if m not in robust:
                continue
            diff, seeds = _paired(scores, d, a, "clean_matched", m, "none")
            out.append(paired_claim(f"self-check of the protocol: the chosen checkpoint of {L[m]} matches the "
                                    f"unregularized network's clean accuracy ({DATASET_LABELS[d]}, {ARCH_LABELS[a]}; "
                                    f"minus |{L[m]} minus none|, pp; within our tolerance)",
                                    "the deck's clean column: " + " / ".join(_pm(DECK_SHIFT[x]['clean'])
                                                                             for x in ("none", "ocnn", "frame")),
                                    -np.abs(diff), seeds, prof, "{:+.2f}", kind="check", tolerance=tol))
        diff, seeds = _paired(scores, d, a, "shift", "frame", "none")
        out.append(paired_claim(f"without matching (final weights), frame is more accurate than no regularization "
                                f"on the corrupted copies ({DATASET_LABELS[d]}, {ARCH_LABELS[a]}; frame minus none, pp)",
                                "— (the deck compares at matched clean accuracy)", diff, seeds, prof, "{:+.2f}",
                                kind="ours"))
    # 3. SimBA attack success rate after t iterations (CIFAR-10 in the deck)
    ts = [t for t in DECK_SIMBA_ITERS if t in params["simba_checkpoints"]]
    for d, a in scores.groupby(["dataset", "arch"], sort=False).groups:
        deck_kind = (d, a) == (d0, a0)
        for b in ("none", "ocnn"):
            if b not in robust:
                continue
            if deck_kind:
                for t in ts:
                    k = DECK_SIMBA_ITERS.index(t)
                    diff, seeds = _paired(scores, d, a, f"asr_{t}", b, "frame")
                    mm = _means(scores, d, a, f"asr_{t}", methods)
                    c = paired_claim(f"frame has a lower SimBA attack success rate than {L[b]} after {t} "
                                     f"iteration{'s' if t > 1 else ''} ({_ours(d, a, standin, 'CIFAR-10')}; "
                                     f"{L[b]} minus frame, pp)", f"{DECK_SIMBA['frame'][k]:.2f} vs "
                                     f"{DECK_SIMBA[b][k]:.2f}", diff, seeds, prof, "{:+.1f}",
                                     deck=DECK_WHERE["simba"].format(row=DECK_ROWS[b], col=t))
                    c.our_value += f"; frame {mm['frame']:.1f} vs {L[b]} {mm[b]:.1f} %"
                    out.append(c)
            else:
                diff, seeds = _paired(scores, d, a, "asr_mean", b, "frame")
                out.append(paired_claim(f"frame has a lower SimBA attack success rate than {L[b]}, averaged over "
                                        f"the checkpoints ({DATASET_LABELS[d]}, {ARCH_LABELS[a]}, not a deck setting; "
                                        f"{L[b]} minus frame, pp)", "—", diff, seeds, prof, "{:+.1f}", kind="ours"))
    # 4. weight decay: frame without it vs no regularization with it
    if wd is not None and len(wd):
        f_run, n_run = wd_pair(params)
        for (d, a), g in wd.groupby(["dataset", "arch"], sort=False):
            piv = g.pivot_table(index="seed", columns="run", values="clean")
            if f_run in piv and n_run in piv:
                diff = 100 * (piv[f_run] - piv[n_run]).to_numpy()
                c = paired_claim(f"frame regularization lets weight decay be dropped: frame without weight decay is "
                                 f"no worse in test accuracy than no regularization with weight decay "
                                 f"{params['wd_decay']:g}, same training budget ({DATASET_LABELS[d]}, "
                                 f"{ARCH_LABELS[a]}, a stand-in: the deck names no data set; frame minus none, pp; "
                                 f"our tolerance added)", "stated in the conclusions, no number", diff, piv.index.to_numpy(), prof,
                                 "{:+.2f}", deck=DECK_WHERE["wd"], tolerance=params["wd_tolerance_pp"])
                c.our_value += (f"; frame (no WD) {100 * piv[f_run].mean():.2f} vs none (WD) "
                                f"{100 * piv[n_run].mean():.2f} %")
                out.append(c)
            plain = [r for r in piv.columns if r == "none" and r != n_run]
            if plain:
                diff = 100 * (piv[n_run] - piv["none"]).to_numpy()
                out.append(paired_claim(f"weight decay {params['wd_decay']:g} helps the unregularized network here "
                                        f"(context for the row above; {DATASET_LABELS[d]}, {ARCH_LABELS[a]}; none with "
                                        f"minus none without weight decay, pp)", "— (implied: weight decay is the "
                                        "standard the frame penalty replaces)", diff, piv.index.to_numpy(), prof,
                                        "{:+.2f}", kind="ours"))
    # 5. our expectation: the penalty moves the Gram eigenvalues into [A, B]
    for d, a in scores.groupby(["dataset", "arch"], sort=False).groups:
        diff, seeds = _paired(scores, d, a, "frac_in_bounds")
        out.append(paired_claim(f"the frame regularizer moves the layers' Gram eigenvalues into [A, B] "
                                f"({DATASET_LABELS[d]}, {ARCH_LABELS[a]}; share of eigenvalues in [A, B], mean over "
                                f"layers, frame minus none, pp)", "— (the deck shows no spectra; our expectation "
                                "from the penalty's definition)", diff, seeds, prof, "{:+.1f}", kind="ours"))
    return out


def ledger_sections(ledger: list) -> dict[str, list]:
    """The ledger split for display: accuracy, domain shift, SimBA, weight decay, the rest (ours, checks)."""
    sec = {"accuracy": [], "shift": [], "simba": [], "wd": [], "ours": []}
    for c in ledger:
        if c.kind != "report":
            sec["ours"].append(c)
        elif "test accuracy" in c.claim and "weight decay" not in c.claim:
            sec["accuracy"].append(c)
        elif "shifted data" in c.claim:
            sec["shift"].append(c)
        elif "SimBA" in c.claim:
            sec["simba"].append(c)
        else:
            sec["wd"].append(c)
    return sec


def summary_markdown(ledger: list, scores: pd.DataFrame, params: dict) -> str:
    """Discussion bullets, every number taken from ``scores`` and the ledger."""
    from collections import Counter

    lines = []
    names = {"accuracy": "Test accuracy, frame vs each baseline (the cells of the deck's two accuracy tables)",
             "shift": "Domain shift at matched clean accuracy", "simba": "SimBA attack success rate",
             "wd": "Dropping weight decay"}
    for k, rows in ledger_sections(ledger).items():
        if k == "ours" or not rows:
            continue
        cnt = Counter(c.verdict for c in rows)
        lines.append(f"* **{names[k]}**: {len(rows)} of the report's claims, "
                     + ", ".join(f"{n} {v}" for v, n in cnt.most_common()) + ".")
    T = max(params["simba_checkpoints"])
    cols = ["clean", "clean_matched", "shift_matched", "second_matched", f"asr_{T}"]
    means = scores.groupby(["dataset", "arch", "method"], sort=False)[cols].mean()
    for (d, a), _ in scores.groupby(["dataset", "arch"], sort=False):
        mm = means.loc[(d, a)]
        best = mm["clean"].idxmax()
        lines.append(f"* **{DATASET_LABELS[d]}, {ARCH_LABELS[a]}.** Clean accuracy: frame "
                     f"{100 * mm.loc['frame', 'clean']:.2f}%, none {100 * mm.loc['none', 'clean']:.2f}%, best "
                     f"{METHOD_LABELS[best]} ({100 * mm.loc[best, 'clean']:.2f}%). At matched clean accuracy "
                     f"(frame {100 * mm.loc['frame', 'clean_matched']:.2f}% vs none "
                     f"{100 * mm.loc['none', 'clean_matched']:.2f}%): corrupted copies frame "
                     f"{100 * mm.loc['frame', 'shift_matched']:.2f}% vs none {100 * mm.loc['none', 'shift_matched']:.2f}%, "
                     f"second domain frame {100 * mm.loc['frame', 'second_matched']:.2f}% vs none "
                     f"{100 * mm.loc['none', 'second_matched']:.2f}%. SimBA ASR after {T} iterations: frame "
                     f"{100 * mm.loc['frame', f'asr_{T}']:.1f}%, none {100 * mm.loc['none', f'asr_{T}']:.1f}%.")
    return "\n".join(lines)


# --- the deck's tables beside ours -----------------------------------------------------------------------


def frame_markdown(df: pd.DataFrame, index_name: str | None = None) -> str:
    """A data frame as a Markdown table with a header on every column (the index becomes the first
    column, named ``index_name`` or the index's name; multi-level column names joined with ', ')."""
    df = df.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [", ".join(str(x) for x in c if str(x)) for c in df.columns]
    name = index_name or df.index.name or "row"
    df = df.reset_index()
    df.columns = [name] + [str(c) for c in df.columns[1:]]
    if any(not str(c).strip() for c in df.columns):
        raise ValueError(f"every column needs a header, got {list(df.columns)}")
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    rows = ["| " + " | ".join(esc(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(esc(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows)


def timing_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Wall time (s) of one training run per method: mean and sd over data sets and seeds."""
    g = scores.assign(method=scores.method.map(METHOD_LABELS)).groupby("method", sort=False)["seconds"]
    return g.agg(["mean", "std"]).round(1).rename(columns={"mean": "training time (s), mean", "std": "sd"})


def deck_accuracy_table() -> pd.DataFrame:
    """The deck's two accuracy tables (ResNet-34 and ResNet-50), methods x (network, data set)."""
    rows = {}
    for deck_arch in DECK_ARCHS:
        for deck_ds in DECK_DATASETS:
            col = f"{ARCH_LABELS[deck_arch]}, {DATASET_LABELS[deck_ds]}"
            for m in ("none", "mhe", "so", "srip", "ocnn", "frame"):
                rows.setdefault(METHOD_LABELS[m], {})[col] = _pm(DECK_ACCURACY[deck_arch][m][deck_ds])
    return pd.DataFrame(rows).T.rename_axis("method (the deck)")


def deck_shift_table(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The deck's domain-shift table and ours at matched clean accuracy (%, mean ± sd over seeds): one
    row per setting (the deck's, then each of ours) and method."""
    rows = []
    for m in ("none", "ocnn", "frame"):
        rows.append({"setting": "the deck: ResNet-34, CIFAR-10", "method": METHOD_LABELS[m],
                     "clean (matched)": _pm(DECK_SHIFT[m]["clean"]),
                     "corrupted (deck: CIFAR-10-C)": _pm(DECK_SHIFT[m]["corrupted"]),
                     "second domain (deck: CINIC-10)": _pm(DECK_SHIFT[m]["second"]),
                     "checkpoint (share of training)": "suboptimal epoch" if m != "none" else "—"})
    for (d, a), g in scores.groupby(["dataset", "arch"], sort=False):
        for m in ("none", "ocnn", "frame"):
            gm = g[g.method == m]
            if not len(gm):
                continue
            rows.append({"setting": f"ours: {_setting(d, a, params)} (second domain: {gm.second_name.iloc[0]})",
                         "method": METHOD_LABELS[m], "clean (matched)": _mean_sd(gm["clean_matched"]),
                         "corrupted (deck: CIFAR-10-C)": _mean_sd(gm["shift_matched"]),
                         "second domain (deck: CINIC-10)": _mean_sd(gm["second_matched"]),
                         "checkpoint (share of training)": f"{gm.matched_at.mean():.2f}"})
    return pd.DataFrame(rows).set_index("setting")


def deck_simba_table(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The deck's SimBA table and ours (ASR %, mean ± sd over seeds): one row per setting and method,
    one column per iteration count of the deck or of ours."""
    ts = list(dict.fromkeys(list(DECK_SIMBA_ITERS) + list(params["simba_checkpoints"])))
    ts.sort()
    rows = []
    for m in ("none", "ocnn", "frame"):
        r = {"setting": "the deck: CIFAR-10", "method": METHOD_LABELS[m]}
        r.update({f"t = {t}": (f"{DECK_SIMBA[m][DECK_SIMBA_ITERS.index(t)]:.2f}" if t in DECK_SIMBA_ITERS else "—")
                  for t in ts})
        rows.append(r)
    for (d, a), g in scores.groupby(["dataset", "arch"], sort=False):
        for m in ("none", "ocnn", "frame"):
            gm = g[g.method == m]
            if len(gm):
                r = {"setting": f"ours: {_setting(d, a, params)}", "method": METHOD_LABELS[m]}
                r.update({f"t = {t}": (_mean_sd(gm[f"asr_{t}"], digits=1) if t in params["simba_checkpoints"]
                                       else "—") for t in ts})
                rows.append(r)
    return pd.DataFrame(rows).set_index("setting")


def wd_table(wd: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Clean accuracy (%) of the weight-decay experiment's runs, mean ± sd over seeds."""
    labels = {"none": "no regularization", "frame": "frame", "none+wd": "no regularization",
              "frame-wd": "frame"}
    rows = {}
    for (run, decay), g in wd.groupby(["run", "weight_decay"], sort=False):
        name = f"{labels[run]}, weight decay {decay:g}"
        rows[name] = {_setting(d, a, params): _mean_sd(gg["clean"]) for (d, a), gg in
                      g.groupby(["dataset", "arch"], sort=False)}
    return pd.DataFrame(rows).T.rename_axis("run")


def spectra_markdown(spectra: pd.DataFrame, params: dict) -> str:
    """What the spectra figure shows, in numbers (all seeds): per data set and method, the median over
    layers of the largest and the smallest Gram eigenvalue, the share of layers whose whole spectrum
    lies in [A, B] and the share of eigenvalues in [A, B]."""
    A, B = params["frame_A"], params["frame_B"]
    lines = []
    for (d, a), g in spectra.groupby(["dataset", "arch"], sort=False):
        parts = []
        for m in params["methods"]:
            gm = g[g.method == m]
            per_model = gm.groupby("seed")
            inside = ((gm.ev_min >= A) & (gm.ev_max <= B)).groupby(gm.seed).mean().mean()
            below = (gm.ev_max < A).groupby(gm.seed).mean().mean()
            parts.append(f"{METHOD_LABELS[m]}: largest {per_model.ev_max.median().mean():.3g}, smallest "
                         f"{per_model.ev_min.median().mean():.2g}; layers entirely in [A, B] {100 * inside:.0f}%, "
                         f"entirely below A {100 * below:.0f}%; eigenvalues in [A, B] "
                         f"{100 * gm.frac_in_bounds.mean():.0f}%")
        lines.append(f"* **{_setting(d, a, params)}** (eigenvalues: median over layers, mean over seeds) -- "
                     + "; ".join(parts) + ".")
    return "\n".join(lines)


# --- figure data ------------------------------------------------------------------------------------


def panel_names(df: pd.DataFrame, params: dict) -> pd.DataFrame:
    """``df`` with a ``panel`` column naming its data set (and network, when there are several)."""
    return df.assign(panel=[_setting(d, a, params) for d, a in zip(df.dataset, df.arch)])


def asr_curves(scores: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Tidy ASR (%) per data set, method, seed and checkpoint."""
    rows = [dict(dataset=r.dataset, arch=r.arch, method=r.method, seed=r.seed, iterations=t,
                 asr=100 * getattr(r, f"asr_{t}")) for r in scores.itertuples() for t in params["simba_checkpoints"]
            if np.isfinite(getattr(r, f"asr_{t}"))]
    return panel_names(pd.DataFrame(rows), params)


def severity_curves(scores: pd.DataFrame, shift: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Accuracy (%) averaged over the corruptions per severity, with the clean accuracy at severity 0."""
    keys = ["dataset", "arch", "method", "seed"]
    g = shift.groupby(keys + ["severity"], sort=False)["accuracy"].mean().reset_index()
    clean = scores[keys + ["clean"]].rename(columns={"clean": "accuracy"}).assign(severity=0)
    out = pd.concat([clean, g], ignore_index=True)
    return panel_names(out.assign(accuracy=100 * out["accuracy"]), params)


def spectra_for_figure(spectra: pd.DataFrame, params: dict, seed: int | None = None) -> pd.DataFrame:
    """The per-layer spectra of the first seed (or ``seed``), with a ``panel`` column."""
    seed = params["seed"] if seed is None else seed
    return panel_names(spectra[spectra.seed == seed], params)


def corruption_examples(dataset: str, params: dict, index: int = 0) -> dict:
    """One test image of ``dataset`` under every corruption and severity (0 = clean) of ``params``."""
    data = load_data(dataset, params["n_train"], params["n_test"], params["seed"])
    x = data.X_test[index:index + 1]
    out = {}
    for ci, c in enumerate(params["corruptions"]):
        out[(c, 0)] = x[0]
        for s in params["severities"]:
            out[(c, s)] = corrupt(x, c, s, torch.Generator().manual_seed(ci * 10 + s), data.table)[0]
    return out
