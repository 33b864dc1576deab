"""Pruning criteria as score functions, applied through ``torch.nn.utils.prune`` masks.

A *score* is a dict ``{parameter name: tensor}`` shaped like the model's parameters; higher
means more relevant.  :func:`prune_by_scores` removes the globally lowest-scored fraction of
the scored parameters (exactly ``round(fraction * total)`` of them) with
``prune.global_unstructured``; :func:`prune_sweep` evaluates quality along a grid of fractions.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune
from tqdm import tqdm

from . import curvature
from .quality import quality
from .models import predict

Scores = dict[str, torch.Tensor]


# --- criteria ---------------------------------------------------------------------------------


def random_scores(model: nn.Module, seed: int = 0) -> Scores:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) for n, p in model.named_parameters()}


def magnitude_scores(model: nn.Module) -> Scores:
    return {n: p.detach().abs().cpu().clone() for n, p in model.named_parameters()}


def obd_scores(model: nn.Module, X, y, task: str, l2: float = 0.0) -> Scores:
    """Optimal Brain Damage saliency ``s_j = h_jj w_j^2 / 2`` (LeCun et al. 1990), exact ``h_jj``."""
    theta, _, _ = curvature.flat_params(model)
    h = curvature.hessian_diagonal(model, X, y, task, l2=l2)
    return {k: v.cpu() for k, v in curvature.split_like(0.5 * h * theta**2, model).items()}


def variational_scores(bayes_model: nn.Module) -> Scores:
    """Relevance ``mu^2 / sigma^2`` of a mean-field Gaussian posterior (see :mod:`.variational`)."""
    from .variational import relevance

    return {k: v.cpu() for k, v in relevance(bayes_model).items()}


CONDITION_INDICES = ("deck", "belsley")


def condition_indices(lam: np.ndarray, index: str = "deck") -> np.ndarray:
    """Condition indices of eigenvalues ``lam`` (descending, positive).

    * ``"deck"`` -- report 5's definition, ``eta_j = lam_j / max(lam)`` (slide 'Метод Белсли'),
      in ``(0, 1]``; the method takes the direction of **largest** ``eta`` (largest eigenvalue of the
      covariance: the direction along which the parameters are least determined);
    * ``"belsley"`` -- Belsley, Kuh and Welsch's ``eta_j = sqrt(max(lam) / lam_j) >= 1`` (ours as an
      option); the method takes the direction of largest ``eta`` = smallest eigenvalue.

    The two are monotone in each other, ``eta_deck = 1 / eta_belsley**2``, but they pick opposite ends
    of the spectrum.
    """
    if index not in CONDITION_INDICES:
        raise ValueError(f"condition index must be one of {CONDITION_INDICES}, got {index!r}")
    lam = np.asarray(lam, dtype=np.float64)
    return lam / lam[0] if index == "deck" else np.sqrt(lam[0] / lam)


def near_dependent(eta: np.ndarray, index: str = "deck", threshold: float = 30.0) -> np.ndarray:
    """Directions that Belsley's rule of thumb calls near-dependent: ``sqrt(lam_max / lam_j) > threshold``,
    i.e. ``eta_j > threshold`` for Belsley's index and ``eta_j < 1 / threshold**2`` for the deck's."""
    eta = np.asarray(eta, dtype=np.float64)
    if index == "deck":
        return eta < 1.0 / threshold**2
    if index == "belsley":
        return eta > threshold
    raise ValueError(f"condition index must be one of {CONDITION_INDICES}, got {index!r}")


#: eigenvalues below ``RCOND * lam_max`` are clipped there (:func:`belsley_proportions`)
RCOND = 1e-12


def _scaled_covariance(cov, scale: bool) -> np.ndarray:
    """``cov`` as a symmetric float64 NumPy matrix, rescaled to unit diagonal when ``scale``
    (Belsley's column scaling); checks that it is square and finite."""
    A = np.asarray(cov.detach().cpu() if isinstance(cov, torch.Tensor) else cov, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"covariance must be a square matrix, got shape {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError("covariance has NaN or infinite entries; estimate it in float64 "
                         "(see curvature.laplace_covariance)")
    A = 0.5 * (A + A.T)
    if scale:
        # a parameter with zero variance (e.g. a dead unit's weight in a gradient Gram matrix) keeps
        # its zero row: it spans an exactly singular direction of its own
        dg = np.diag(A).copy()
        dg[dg <= 0] = 1.0
        d = np.sqrt(dg)
        A = A / np.outer(d, d)
    return A


def belsley_proportions(cov: np.ndarray | torch.Tensor, scale: bool = True, rcond: float = RCOND,
                        index: str = "deck"):
    """Condition indices and variance-decomposition proportions of a covariance matrix.

    With ``cov = V diag(lam) V^T`` (``lam`` descending) the condition indices are those of
    :func:`condition_indices` (``index``: the deck's ``lam_j / lam_max`` or Belsley's
    ``sqrt(lam_max / lam_j)``) and the proportions are, as in the deck and in Belsley,
    ``q_kj = (v_kj^2 / lam_j) / sum_i (v_ki^2 / lam_i)``: the share of parameter ``k``'s
    "variance inflation" carried by direction ``j``.  Each row of ``q`` sums to one.  ``scale``
    first rescales to unit diagonal (Belsley's column scaling); eigenvalues below
    ``rcond * lam_max`` are clipped there.

    Returns ``(eta, q)`` as NumPy arrays of shapes ``(P,)`` and ``(P, P)``, directions ordered by
    descending eigenvalue.
    """
    if index not in CONDITION_INDICES:
        raise ValueError(f"condition index must be one of {CONDITION_INDICES}, got {index!r}")
    A = _scaled_covariance(cov, scale)
    lam, V = np.linalg.eigh(A)
    lam, V = lam[::-1], V[:, ::-1]
    lam = np.clip(lam, max(rcond * lam[0], np.finfo(float).tiny), None)
    eta = condition_indices(lam, index)
    phi = V**2 / lam[None, :]
    return eta, phi / phi.sum(1, keepdims=True)


#: below this size :func:`belsley_column` always takes the full eigendecomposition
_LANCZOS_MIN_SIZE = 64


@functools.lru_cache(maxsize=8)
def _lanczos_start(n: int) -> np.ndarray:
    """Lanczos's start vector for an n x n matrix: fixed (seeded), so that every process computes the
    same eigenvector, and random, so that it is not orthogonal to the one sought (read-only, shared)."""
    v = np.random.default_rng(0).standard_normal(n)
    v.setflags(write=False)
    return v


def belsley_column(cov: np.ndarray | torch.Tensor, scale: bool = True, rcond: float = RCOND,
                   index: str = "deck", lanczos: bool = True) -> np.ndarray:
    """The proportions on the direction of largest condition index, ``q[:, 0]`` of
    :func:`belsley_proportions` for the deck's index (largest eigenvalue) and ``q[:, -1]`` for
    Belsley's (smallest), without the full eigendecomposition where that is exact.

    Why: :func:`belsley_order` needs only that column, once per step, and a dense ``eigh`` costs
    about 9 P^3 flops (1.4 s at P = 1633, report 5's synthetic network, one core). When the
    matrix is positive definite and no eigenvalue falls below ``rcond * lam_max`` (nothing is
    clipped), the denominator of the proportions is a diagonal of the inverse,
    ``sum_i v_ki^2 / lam_i = (A^{-1})_kk``, which a Cholesky factorisation gives (LAPACK ``potrf`` +
    ``potri``, about P^3 flops), and the one eigenpair needed comes from Lanczos
    (:func:`scipy.sparse.linalg.eigsh`, to machine precision; the smallest eigenpair of ``A`` as the
    largest of ``A^{-1}``). Otherwise (not positive definite, or clipping would apply, or P < 64)
    the column is taken from :func:`belsley_proportions`; also where ARPACK fails (its error 3 was
    seen on report 5's synthetic network). Lanczos starts from a fixed seeded vector, so a step is a
    function of the matrix alone: scipy's default start is drawn from fresh entropy at every call,
    which made the vector picked in a repeated top eigenvalue change from run to run. The two agree
    to rounding (tests in ``tests/test_pruning.py``); the benchmark is in ``BENCHMARKS.md``. ``lanczos=False`` always takes
    the full eigendecomposition.
    """
    return _belsley_column(cov, scale, rcond, index, lanczos)[0]


def _belsley_column(cov, scale: bool, rcond: float, index: str, lanczos: bool) -> tuple[np.ndarray, bool]:
    """:func:`belsley_column` and whether the Cholesky + Lanczos path gave it."""
    if index not in CONDITION_INDICES:
        raise ValueError(f"condition index must be one of {CONDITION_INDICES}, got {index!r}")
    A = _scaled_covariance(cov, scale)
    P = A.shape[0]
    col = 0 if index == "deck" else -1
    # a zero on the diagonal (a parameter without variance, e.g. a dead unit's in a gradient Gram matrix)
    # means singular: straight to the full eigendecomposition
    if lanczos and P >= _LANCZOS_MIN_SIZE and np.all(np.diag(A) > 0):
        from scipy.linalg import lapack
        from scipy.sparse.linalg import ArpackError, eigsh

        c, info = lapack.dpotrf(A, lower=1, clean=1)
        if info == 0:
            inv, info = lapack.dpotri(c, lower=1)
        if info == 0:
            inv = np.tril(inv) + np.tril(inv, -1).T
            # Without v0 and rng, eigsh starts from a vector drawn from fresh OS entropy (scipy >= 1.15),
            # so the vector it picks in a repeated eigenvalue, and whether ARPACK converges at all,
            # changed from one call to the next: a fixed start (and restarts) make the step a function of A
            v0 = _lanczos_start(P)
            try:
                lam_max, v_max = eigsh(A, k=1, which="LA", tol=0, v0=v0, rng=0)
                mu_max, v_min = eigsh(inv, k=1, which="LA", tol=0, v0=v0, rng=0)
            except ArpackError:  # e.g. error 3, no shifts could be applied: the full eigh below
                info = -1
        if info == 0:
            lam_max, lam_min = float(lam_max[0]), 1.0 / float(mu_max[0])
            # a margin of 10x keeps rounding in the extreme eigenvalues from hiding a clip
            if lam_min > 0 and lam_min >= 10.0 * max(rcond * lam_max, np.finfo(float).tiny):
                v, lam = (v_max[:, 0], lam_max) if index == "deck" else (v_min[:, 0], lam_min)
                return (v**2 / lam) / np.diag(inv), True
    _, q = belsley_proportions(A, scale=False, rcond=rcond, index=index)
    return q[:, col], False


def belsley_order(cov, n_steps: int = 100, scale: bool = True, progress: bool = False,
                  index: str = "deck") -> np.ndarray:
    """Order in which Belsley's method removes parameters (first = least relevant).

    Repeatedly take the direction ``xi`` with the largest condition index among the parameters still
    active (``index="deck"``: the largest eigenvalue, the deck's ``xi = argmax eta_j``;
    ``index="belsley"``: the smallest eigenvalue) and remove the parameter(s) with the largest
    variance proportion ``q_k,xi`` on it; about ``P / n_steps`` parameters leave at each step (one
    per step when ``n_steps >= P``).
    """
    if index not in CONDITION_INDICES:
        raise ValueError(f"condition index must be one of {CONDITION_INDICES}, got {index!r}")
    A = np.asarray(cov.detach().cpu() if isinstance(cov, torch.Tensor) else cov, dtype=np.float64)
    P = A.shape[0]
    step = max(1, math.ceil(P / n_steps))
    active = list(range(P))
    order: list[int] = []
    # once a step needs the full eigendecomposition (singular or clipped), the later steps, principal
    # submatrices of the same matrix, almost always do too: stop trying Cholesky (same numbers)
    lanczos = True
    with tqdm(total=P, desc="Belsley", disable=not progress, leave=False) as bar:
        while len(active) > 1:
            q, lanczos = _belsley_column(A[np.ix_(active, active)], scale, RCOND, index, lanczos)
            take = np.argsort(-q, kind="stable")[: min(step, len(active) - 1)]
            order.extend(active[t] for t in take)  # most dependent first, also within a step
            for t in sorted(take, reverse=True):
                active.pop(t)
            bar.update(len(take))
        order.extend(active)
    return np.array(order)


def belsley_scores(model: nn.Module, cov, n_steps: int = 100, scale: bool = True,
                   index: str = "deck") -> Scores:
    """Scores from :func:`belsley_order`: the earlier a parameter is removed, the lower its score."""
    theta, _, _ = curvature.flat_params(model)
    order = belsley_order(cov, n_steps=n_steps, scale=scale, index=index)
    if len(order) != theta.numel():
        raise ValueError(f"covariance is {len(order)} x {len(order)} but the model has {theta.numel()} parameters")
    score = torch.empty(theta.numel(), dtype=torch.float64)
    score[torch.as_tensor(order.copy())] = torch.arange(theta.numel(), dtype=torch.float64)
    return {k: v.cpu() for k, v in curvature.split_like(score, model).items()}


# --- applying scores --------------------------------------------------------------------------


def _ranks(scores: Scores, seed: int = 0) -> Scores:
    """Replace scores by global ranks 1..P (ties broken at random, seeded): L1 pruning of ranks
    then removes exactly the lowest-scored parameters."""
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).double().cpu() for n in names])
    if torch.isnan(flat).any():
        raise ValueError("pruning scores contain NaN")
    g = torch.Generator().manual_seed(seed)
    shuffle = torch.randperm(len(flat), generator=g)
    order = shuffle[torch.argsort(flat[shuffle], stable=True)]
    ranks = torch.empty_like(flat)
    ranks[order] = torch.arange(1, len(flat) + 1, dtype=flat.dtype)
    out, i = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = ranks[i:i + k].reshape(scores[n].shape).float()
        i += k
    return out


def prune_by_scores(model: nn.Module, scores: Scores, fraction: float, seed: int = 0,
                    inplace: bool = False) -> nn.Module:
    """Zero the ``round(fraction * P)`` lowest-scored parameters (``P`` = number scored).

    Uses ``torch.nn.utils.prune.global_unstructured`` with the scores' ranks as importance, so
    the model carries ``<name>_mask`` buffers.  Returns the pruned model (a copy by default).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    m = model if inplace else copy.deepcopy(model)
    params = dict(m.named_parameters())
    missing = [n for n in scores if n not in params]
    if missing:
        raise KeyError(f"scores name parameters the model does not have: {missing}")
    for n in scores:
        if scores[n].shape != params[n].shape:
            raise ValueError(f"score for {n} has shape {tuple(scores[n].shape)}, parameter has {tuple(params[n].shape)}")
    ranks = _ranks(scores, seed)
    targets, importance = [], {}
    for n in scores:
        mod_name, _, pname = n.rpartition(".")
        mod = m.get_submodule(mod_name)
        targets.append((mod, pname))
        importance[(mod, pname)] = ranks[n].to(params[n].device)
    total = sum(v.numel() for v in scores.values())
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                              importance_scores=importance, amount=int(round(fraction * total)))
    return m


def pruned_fraction(model: nn.Module) -> float:
    """Fraction of parameters zeroed by ``prune`` masks (over the masked parameters)."""
    masks = [b for n, b in model.named_buffers() if n.endswith("_mask")]
    if not masks:
        return 0.0
    return 1.0 - sum(mk.sum().item() for mk in masks) / sum(mk.numel() for mk in masks)


def prune_sweep(model: nn.Module, scores: Scores, fractions: Sequence[float], data,
                seed: int = 0) -> np.ndarray:
    """Test quality (accuracy or R²) after removing each fraction of parameters, one-shot, no retraining."""
    return np.array([quality(prune_by_scores(model, scores, f, seed), data.X_test, data.y_test, data.task)
                     for f in fractions])


def curve_auc(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Area under a quality-vs-fraction-removed curve, normalised by the fraction range."""
    f, v = np.asarray(fractions, float), np.asarray(values, float)
    return float(np.trapezoid(v, f) / (f[-1] - f[0]))


def auc_table(curves, x: str, group: str, clip_min: float | None = 0.0):
    """Area under quality vs ``x`` (:func:`curve_auc`) per (dataset, seed, ``group``) of a tidy
    frame with columns ``dataset, seed, group, x, quality``.  ``clip_min`` floors the quality first
    (R² can fall far below zero once a regression network is broken; flooring at 0 keeps one broken
    point from dominating the area)."""
    import pandas as pd

    rows = []
    for (d, s, c), g in curves.groupby(["dataset", "seed", group], sort=False):
        g = g.sort_values(x)
        q = g["quality"].to_numpy()
        if clip_min is not None:
            q = np.maximum(q, clip_min)
        rows.append({"dataset": d, "seed": s, group: c, "auc": curve_auc(g[x], q)})
    return pd.DataFrame(rows)


@torch.no_grad()
def input_noise(shape: Sequence[int], n_sigmas: int, n_draws: int = 20, seed: int = 0) -> list[torch.Tensor]:
    """The standard-normal draws :func:`noise_response` uses, in its order (for each sigma, ``n_draws``
    tensors of ``shape`` from one generator seeded with ``seed``). Drawing them once and passing them to
    every call (``noise=``) gives the same numbers as drawing them in each call: the pruned models of
    :func:`noise_surface` all see the same perturbations (common random numbers), and the draws, most
    of its time on CPU, are made once instead of once per fraction."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(tuple(shape), generator=g) for _ in range(n_sigmas * n_draws)]


def noise_response(model: nn.Module, X: torch.Tensor, sigmas: Sequence[float], task: str,
                   n_draws: int = 20, seed: int = 0, noise: Sequence[torch.Tensor] | None = None) -> np.ndarray:
    """Output noise vs input noise: for each ``sigma``, the standard deviation of the model's output
    (class probabilities for classification) over ``n_draws`` Gaussian input perturbations
    ``X + sigma * eps``, averaged over points and outputs. ``eps`` are :func:`input_noise` ``(X.shape,
    len(sigmas), n_draws, seed)``, drawn here unless given as ``noise``."""
    if noise is None:
        noise = input_noise(X.shape, len(sigmas), n_draws, seed)
    elif len(noise) != len(sigmas) * n_draws or any(tuple(e.shape) != tuple(X.shape) for e in noise):
        raise ValueError(f"noise must hold len(sigmas) * n_draws = {len(sigmas) * n_draws} tensors shaped like X "
                         f"{tuple(X.shape)}; see input_noise")
    out = []
    for i, s in enumerate(sigmas):
        draws = []
        for eps in noise[i * n_draws:(i + 1) * n_draws]:
            o = predict(model, X + s * eps)
            draws.append(torch.softmax(o, 1) if task == "classification" else o)
        out.append(torch.stack(draws).std(0, unbiased=True).mean().item())
    return np.array(out)


# --- criteria by name, and the noise surface --------------------------------------------------

CRITERIA = ("random", "magnitude", "obd", "variational", "belsley", "belsley_design")


def criterion_score(name: str, *, bayes: nn.Module | None, det: nn.Module, X, y, task: str, seed: int = 0,
                    laplace_damping: float = 1e-3, belsley_steps: int = 100,
                    condition_index: str = "deck") -> Scores:
    """Scores of the criterion ``name`` (one of :data:`CRITERIA`) for the deterministic network ``det``
    (the posterior mean of the variational network ``bayes``, which only ``"variational"`` reads), with
    curvature from ``(X, y)``:

    * ``random`` (seeded by ``seed``), ``magnitude``, ``obd`` (exact Hessian diagonal),
      ``variational`` (``mu^2 / sigma^2``);
    * ``belsley``: :func:`belsley_scores` of the Laplace covariance ``(H + laplace_damping I)^{-1}``
      with ``belsley_steps`` eigendecompositions and the condition index ``condition_index``;
    * ``belsley_design``: the same on ``G = E[g g^T]`` (Gram matrix of the per-sample gradients),
      always with Belsley's own index, the one made for a design matrix.
    """
    if name == "random":
        return random_scores(det, seed)
    if name == "magnitude":
        return magnitude_scores(det)
    if name == "obd":
        return obd_scores(det, X, y, task)
    if name == "variational":
        if bayes is None:
            raise ValueError("the variational criterion needs the variational network (bayes)")
        return variational_scores(bayes)
    if name == "belsley":
        H = curvature.hessian(det, X, y, task)
        cov = curvature.laplace_covariance(H, laplace_damping)
        return belsley_scores(det, cov, n_steps=belsley_steps, index=condition_index)
    if name == "belsley_design":
        G = curvature.gradient_outer(det, X, y, task).double()
        return belsley_scores(det, G, n_steps=belsley_steps, index="belsley")
    raise ValueError(f"unknown criterion {name!r}; valid: {', '.join(CRITERIA)}")


def noise_surface(model: nn.Module, scores: Scores, X: torch.Tensor, task: str, *, fractions: Sequence[float],
                  sigmas: Sequence[float], n_draws: int = 20, seed: int = 0,
                  noise: Sequence[torch.Tensor] | None = None) -> list[dict]:
    """Output noise over a grid: for every fraction removed (by ``scores``, :func:`prune_by_scores`)
    and input noise ``sigma``, the output standard deviation of :func:`noise_response` on ``X``, every
    fraction with the same draws (``noise``, :func:`input_noise`; drawn once here unless given).
    One row ``dict(fraction, sigma, output_std)`` per grid point, fractions outermost."""
    rows = []
    if noise is None:
        noise = input_noise(X.shape, len(sigmas), n_draws, seed)
    for f in fractions:
        m = prune_by_scores(model, scores, f, seed)
        r = noise_response(m, X, sigmas, task, n_draws=n_draws, seed=seed, noise=noise)
        rows += [dict(fraction=f, sigma=sg, output_std=v) for sg, v in zip(sigmas, r)]
    return rows
