"""Report 4: frame_regularization (its parameters and profiles; being moved here from ``frame.py``)."""

from __future__ import annotations

from .spec import COMMON, CPU_THREADS, Param, Report, _number, fraction_grid, int_list, positive_float, positive_int

_FR_DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
_FR_ARCHS = ("small_resnet", "resnet34", "resnet50")
_FR_METHODS = ("none", "frame", "mhe", "so", "srip", "ocnn")
_FR_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "contrast",
                   "brightness", "pixelate")


def _subset_of(options: tuple, help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and len(set(v)) == len(v) and all(x in options for x in v),
                 f"a non-empty list of distinct values drawn from {options}")


def _nonnegative(help: str) -> Param:
    return Param(float, help, lambda v: v >= 0, "a number >= 0")


REPORT = Report(
    name="frame_regularization",
    title="Frame regularization of a layer",
    author="Grigoriev",
    seed_id="003",
    params={
        **COMMON,
        "datasets": _subset_of(_FR_DATASETS, "data sets: 'mnist', 'fashion-mnist' (shipped) or 'cifar10', "
                               "'cifar100', 'svhn' (paper; need a network)"),
        "archs": _subset_of(_FR_ARCHS, "networks: 'small_resnet' (book) or torchvision 'resnet34', 'resnet50' "
                            "with a 3x3 stem and no max-pool"),
        "widths": int_list("channels of the small ResNet's stages (one basic block each)"),
        "n_train": positive_int("training images, a seeded random subset per seed (all if >= the set's size)"),
        "n_test": positive_int("test images, a seeded random subset per seed (all if >= the set's size)"),
        "augment": Param(bool, "random crop (padding 4) of the training images, + horizontal flip on CIFAR "
                         "(CIFAR and SVHN only)"),
        "epochs": positive_int("training epochs of every run"),
        "batch_size": positive_int("minibatch size"),
        "optimizer": Param(str, "'adam' or 'sgd' (Nesterov momentum 0.9); cosine schedule either way",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("initial learning rate"),
        "weight_decay": _nonnegative("L2 weight decay of the optimizer (every method)"),
        "grad_clip": _nonnegative("clip the gradient norm to this value (0 = no clipping)"),
        "methods": _subset_of(_FR_METHODS, "regularizers compared; must include 'none' and 'frame'"),
        "frame_A": _nonnegative("lower frame bound A"),
        "frame_B": positive_float("upper frame bound B (>= A)"),
        "frame_weight": _nonnegative("weight of the frame penalty (sum over layers)"),
        "mhe_weight": _nonnegative("weight of minimum hyperspherical energy (sum over layers)"),
        "mhe_power": _nonnegative("MHE power s (energy 1/d^s; 0 = logarithmic energy)"),
        "so_weight": _nonnegative("weight of soft orthogonality ||W^T W - I||_F^2 (sum over layers)"),
        "srip_weight": _nonnegative("weight of SRIP sigma_max(W^T W - I) (sum over layers)"),
        "srip_iters": positive_int("power iterations per training step for SRIP (warm-started)"),
        "ocnn_weight": _nonnegative("weight of the orthogonal-convolution penalty (sum over layers)"),
        "corruptions": _subset_of(_FR_CORRUPTIONS, "corruptions of the shifted test sets"),
        "severities": Param(list, "corruption severities", lambda v: len(v) >= 1 and all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 5 for x in v)
            and all(a < b for a, b in zip(v[:-1], v[1:])), "a non-empty increasing list of integers in 1..5"),
        "n_shift": positive_int("test images in each corrupted copy"),
        "simba_basis": Param(str, "SimBA directions: 'pixel' or 'dct' (low frequencies first)",
                             lambda v: v in ("pixel", "dct"), "one of ('pixel', 'dct')"),
        "simba_eps": positive_float("SimBA step (L2 length of one accepted step; pixels in [0, 1])"),
        "simba_images": positive_int("test images attacked with SimBA (the correctly classified ones count)"),
        "simba_checkpoints": Param(list, "iterations after which the attack success rate is reported",
                                   lambda v: len(v) >= 1 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                 and x >= 1 for x in v)
                                   and all(a < b for a, b in zip(v[:-1], v[1:])),
                                   "a non-empty strictly increasing list of positive integers"),
        "robust_methods": _subset_of(_FR_METHODS, "methods compared under domain shift at matched clean accuracy "
                                     "and attacked with SimBA (the deck's tables: none, OCNN, frame); must "
                                     "include 'none' and 'frame'"),
        "domain_rotation": _nonnegative("second-domain stand-in where no real one is available: test images "
                                        "rotated by a uniform random angle in +-this many degrees ..."),
        "domain_translate": _nonnegative("... and shifted by a uniform random fraction in +-this of the image side"),
        "match_checkpoints": Param(int, "checkpoints per regularized run (evenly spaced in steps, the last at the "
                                   "end) among which the domain-shift comparison picks the one whose clean "
                                   "accuracy is closest to the unregularized network's (0 = final weights only)",
                                   lambda v: not isinstance(v, bool) and v >= 0, "an integer >= 0"),
        "match_tolerance_pp": _nonnegative("ours: clean accuracies (pp) within this count as matched (self-check)"),
        "wd_decay": _nonnegative("weight decay of the unregularized network in the weight-decay experiment "
                                 "(frame without weight decay vs no regularization with it; 0 = no experiment)"),
        "wd_tolerance_pp": _nonnegative("ours: 'frame without weight decay is no worse' allows this many pp"),
        "cpu_threads": CPU_THREADS,
    },
)

_fr_common = dict(seed=0, methods=list(_FR_METHODS), frame_A=0.5, frame_B=2.0, frame_weight=0.01, mhe_weight=10.0,
                  mhe_power=2.0, so_weight=0.1, srip_weight=0.1, srip_iters=2, ocnn_weight=0.01,
                  simba_checkpoints=[1, 10, 50, 100, 1000], robust_methods=["none", "ocnn", "frame"],
                  domain_rotation=30.0, domain_translate=0.1,
                  match_tolerance_pp=0.5, wd_decay=5e-4, wd_tolerance_pp=0.5)
REPORT.profiles = {
    "smoke": {**_fr_common, **dict(profile="smoke", device="cpu", n_seeds=2, datasets=["fashion-mnist"],
                                   archs=["small_resnet"], widths=[4, 8, 8], n_train=128, n_test=64, augment=False,
                                   epochs=1, batch_size=64, optimizer="adam", lr=0.01, weight_decay=0.0,
                                   grad_clip=0.0, corruptions=list(_FR_CORRUPTIONS), severities=[1, 5], n_shift=32,
                                   simba_basis="pixel", simba_eps=0.2, simba_images=8,
                                   simba_checkpoints=[1, 5, 20], match_checkpoints=2, cpu_threads=1)},
    "book": {**_fr_common, **dict(profile="book", device="auto", n_seeds=3, datasets=["mnist", "fashion-mnist"],
                                  archs=["small_resnet"], widths=[8, 16, 32], n_train=3000, n_test=1000,
                                  augment=False, epochs=5, batch_size=64, optimizer="adam", lr=0.01,
                                  weight_decay=0.0, grad_clip=0.0,
                                  corruptions=["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur",
                                               "contrast", "pixelate"], severities=[1, 2, 3, 4, 5], n_shift=500,
                                  simba_basis="dct", simba_eps=0.05, simba_images=50, match_checkpoints=10,
                                  cpu_threads=1)},
    "paper": {**_fr_common, **dict(profile="paper", device="auto", n_seeds=3, datasets=["cifar10", "cifar100", "svhn"],
                                   archs=["resnet34", "resnet50"], widths=[8, 16, 32], n_train=100000,
                                   n_test=100000, augment=True, epochs=200, batch_size=128, optimizer="sgd",
                                   lr=0.1, weight_decay=5e-4, grad_clip=5.0, corruptions=list(_FR_CORRUPTIONS),
                                   severities=[1, 2, 3, 4, 5], n_shift=10000, simba_basis="dct", simba_eps=0.2,
                                   simba_images=500, match_checkpoints=40, cpu_threads=0)},
}


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
    from ..frame import check_params as _check

    _check(params)


REPORT.check = check_params
