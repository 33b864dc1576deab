"""Frame penalties of linear and convolutional layers (Gershgorin discs), the baselines SO, SRIP, OCNN and MHE, and layer spectra.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

METHODS = ("none", "frame", "mhe", "so", "srip", "ocnn")


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
    """``weight * sum over regularized layers of the method's penalty``, as a callable on the model.

    ``A``, ``B``: frame bounds (``"frame"``); ``mhe_power``: MHE's ``s``; ``srip_iters``: SRIP's power
    iterations per call (warm-started; the first start is drawn from a generator seeded by
    ``seed + 104729``).  ``method="none"`` (or ``weight=0``) is the zero penalty."""

    def __init__(self, method: str, model: nn.Module, weight: float = 0.0, *, A: float = 0.5, B: float = 2.0,
                 mhe_power: float = 2.0, srip_iters: int = 2, seed: int = 0):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method, self.layers = method, regularized_layers(model)
        self.A, self.B = A, B
        self.weight = 0.0 if method == "none" else float(weight)
        self.mhe_power, self.srip_iters = mhe_power, srip_iters
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


