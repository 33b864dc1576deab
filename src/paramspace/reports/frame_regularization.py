"""Report 4, frame_regularization (Grigoriev 2022): parameters and rules, the experiment (plan / execute / summarize), tables, claims.

The methods live in :mod:`paramspace.frames` (the frame penalty and its baselines, spectra),
:mod:`paramspace.robustness` (corruptions, the affine second-domain stand-in, SimBA) and
:mod:`paramspace.vision` (image data, ResNets, training, accuracy).  One run of :func:`plan` is one
data set x architecture x seed: every method's training (the unregularized one first) and the
weight-decay experiment's, with their evaluations; :func:`execute` evaluates the domain shift of each
regularized network at its checkpoint whose clean accuracy is closest to the unregularized network's,
and :func:`summarize` builds the tables and the ledger.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from ..claims import paired_claim
from ..frames import METHODS, Regularizer, layer_input_sizes, layer_spectra
from ..robustness import CORRUPTION_LABELS, affine_shift, attack_success_rate, corrupt, shift_accuracies, simba
from ..train import cpu_threads, resolve_device, seed_everything
from ..vision import AMP_MODES, ARCH_LABELS, DATASET_LABELS, accuracy, load_data, model_for, second_domain, train_classifier
from .spec import (COMMON, CPU_THREADS, Param, ProfileError, Report, _number, fraction_grid, int_list,
                   positive_float, positive_int, subset_of)

_FR_DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
_FR_ARCHS = ("small_resnet", "resnet34", "resnet50")
_FR_METHODS = ("none", "frame", "mhe", "so", "srip", "ocnn")
_FR_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "contrast",
                   "brightness", "pixelate")


def _nonnegative(help: str) -> Param:
    return Param(float, help, lambda v: v >= 0, "a number >= 0")


REPORT = Report(
    name="frame_regularization",
    title="Frame regularization of a layer",
    author="Grigoriev",
    seed_id="003",
    params={
        **COMMON,
        "datasets": subset_of(_FR_DATASETS, "data sets: 'mnist', 'fashion-mnist' (shipped) or 'cifar10', "
                               "'cifar100', 'svhn' (paper; need a network)"),
        "archs": subset_of(_FR_ARCHS, "networks: 'small_resnet' (book) or torchvision 'resnet34', 'resnet50' "
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
        "methods": subset_of(_FR_METHODS, "regularizers compared; must include 'none' and 'frame'"),
        "frame_A": _nonnegative("lower frame bound A"),
        "frame_B": positive_float("upper frame bound B (>= A)"),
        "frame_weight": _nonnegative("weight of the frame penalty (sum over layers)"),
        "mhe_weight": _nonnegative("weight of minimum hyperspherical energy (sum over layers)"),
        "mhe_power": _nonnegative("MHE power s (energy 1/d^s; 0 = logarithmic energy)"),
        "so_weight": _nonnegative("weight of soft orthogonality ||W^T W - I||_F^2 (sum over layers)"),
        "srip_weight": _nonnegative("weight of SRIP sigma_max(W^T W - I) (sum over layers)"),
        "srip_iters": positive_int("power iterations per training step for SRIP (warm-started)"),
        "ocnn_weight": _nonnegative("weight of the orthogonal-convolution penalty (sum over layers)"),
        "corruptions": subset_of(_FR_CORRUPTIONS, "corruptions of the shifted test sets"),
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
        "robust_methods": subset_of(_FR_METHODS, "methods compared under domain shift at matched clean accuracy "
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
        "amp": Param(str, "GPU habit: the forward pass under bfloat16 autocast ('bf16') or not ('off'); off until "
                     "tools/bench_gpu.py measures it faster", lambda v: v in AMP_MODES, f"one of {AMP_MODES}"),
        "channels_last": Param(bool, "GPU habit: weights and batches in NHWC order (CUDA only); off until measured"),
        "cudnn_benchmark": Param(bool, "GPU habit: torch.backends.cudnn.benchmark during the runs; off until measured"),
    },
)

_fr_common = dict(seed=0, methods=list(_FR_METHODS), frame_A=0.5, frame_B=2.0, frame_weight=0.01, mhe_weight=10.0,
                  mhe_power=2.0, so_weight=0.1, srip_weight=0.1, srip_iters=2, ocnn_weight=0.01,
                  simba_checkpoints=[1, 10, 50, 100, 1000], robust_methods=["none", "ocnn", "frame"],
                  domain_rotation=30.0, domain_translate=0.1,
                  match_tolerance_pp=0.5, wd_decay=5e-4, wd_tolerance_pp=0.5,
                  amp="off", channels_last=False, cudnn_benchmark=False)
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

METHOD_LABELS = {"none": "no regularization", "frame": "frame", "mhe": "MHE", "so": "SO", "srip": "SRIP",
                 "ocnn": "OCNN"}


# --- rules across parameters, descriptions ------------------------------------------------------------

def check_params(params: dict) -> dict:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
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
    if params["channels_last"] and resolve_device(params["device"]).type != "cuda":
        raise ProfileError(f"frame_regularization: channels_last = True needs CUDA, but device = "
                           f"{params['device']!r} runs on the CPU (where torch 2.14.1's NHWC backward pass aborts)")
    return params


REPORT.check = check_params


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


# --- the experiment: plan, execute, summarize -----------------------------------------------------------

# The parameters a run needs, copied into it (besides its own data set, network, seed and trainings).
_RUN_KEYS = ("device", "cpu_threads", "n_train", "n_test", "augment", "widths", "epochs", "batch_size", "optimizer",
             "lr", "grad_clip", "frame_A", "frame_B", "mhe_power", "srip_iters", "corruptions", "severities",
             "n_shift", "simba_basis", "simba_eps", "simba_images", "simba_checkpoints", "domain_rotation",
             "domain_translate", "amp", "channels_last", "cudnn_benchmark")


def _reg_weight(params: dict, method: str) -> float:
    return 0.0 if method == "none" else float(params[f"{method}_weight"])


def trainings(params: dict) -> list[dict]:
    """The trainings of one data set x network x seed, in order: every method (``none`` first: the
    others are matched to it) at ``weight_decay``, then the weight-decay experiment's extra runs
    (:func:`wd_variants`).  Each is ``{kind, method, run (its label), weight_decay, reg_weight, robust,
    match_checkpoints}``."""
    methods = ["none"] + [m for m in params["methods"] if m != "none"]
    out = []
    for method in methods:
        robust = method in params["robust_methods"]
        out.append({"kind": "main", "method": method, "run": method, "weight_decay": float(params["weight_decay"]),
                    "reg_weight": _reg_weight(params, method), "robust": robust,
                    "match_checkpoints": params["match_checkpoints"] if robust and method != "none" else 0})
    for label, method, decay in wd_variants(params):  # the weight-decay experiment
        out.append({"kind": "wd", "method": method, "run": label, "weight_decay": decay,
                    "reg_weight": _reg_weight(params, method), "robust": False, "match_checkpoints": 0})
    return out


def plan(params: dict) -> list[dict]:
    """The runs, in the order of the tables: one per data set x architecture x seed, holding every
    training of that setting (:func:`trainings`: the unregularized network first, so that
    :func:`execute` knows its clean accuracy before it matches the regularized runs' checkpoints to it).
    A run holds everything :func:`execute` reads."""
    base = {k: copy.deepcopy(params[k]) for k in _RUN_KEYS}
    todo = trainings(params)
    return [{**copy.deepcopy(base), "dataset": dname, "arch": arch, "seed": params["seed"] + s,
             "trainings": copy.deepcopy(todo)}
            for dname in params["datasets"] for arch in params["archs"] for s in range(params["n_seeds"])]


def shifted_domain(data, run: dict, seed: int):
    """The second domain of the domain-shift comparison: a real label-compatible one where available
    offline (:func:`paramspace.vision.second_domain`), else the first ``n_shift`` test images under
    :func:`paramspace.robustness.affine_shift` (the same transforms for every model of a seed).
    Returns ``(name, X, y)``."""
    real = second_domain(data.name, run["n_test"], seed)
    if real is not None:
        return real
    n = min(run["n_shift"], len(data.y_test))
    gen = torch.Generator().manual_seed(seed * 1000 + 977)
    X = affine_shift(data.X_test[:n].cpu(), run["domain_rotation"], run["domain_translate"], gen)
    return "rotated and shifted", X, data.y_test[:n].cpu()


def domain_shift(model, data, run: dict, seed: int, dev, second) -> dict:
    """Accuracy on the corrupted copies of the first ``n_shift`` test images (``shift``: one row per
    corruption and severity) and on the second domain ``second`` (``(name, accuracy)``)."""
    n_shift = min(run["n_shift"], len(data.y_test))
    Xs, ys = data.X_test[:n_shift], data.y_test[:n_shift]
    return {"shift": shift_accuracies(model, Xs, ys, corruptions=run["corruptions"], severities=run["severities"],
                                      table=data.table, seed=seed),
            "second": (second[0], accuracy(model, second[1].to(dev), second[2].to(dev)))}


def _network(run: dict, data, dev):
    """The run's network, with the same initial weights for every method of a seed, and its regularizer."""
    seed_everything(run["seed"])
    model = model_for(run["arch"], data, widths=run["widths"]).to(dev)
    reg = Regularizer(run["method"], model, run["reg_weight"], A=run["frame_A"], B=run["frame_B"],
                      mhe_power=run["mhe_power"], srip_iters=run["srip_iters"], seed=run["seed"])
    return model, reg


def _train(model, data, reg, run: dict, checkpoints: int = 0, on_checkpoint=None) -> dict:
    return train_classifier(model, data, epochs=run["epochs"], batch_size=run["batch_size"], lr=run["lr"],
                            optimizer=run["optimizer"], weight_decay=run["weight_decay"], grad_clip=run["grad_clip"],
                            regularizer=reg, seed=run["seed"], checkpoints=checkpoints, on_checkpoint=on_checkpoint,
                            amp=run["amp"], channels_last=run["channels_last"])


def _mean_shift(ev: dict) -> float:
    return float(np.mean([r["accuracy"] for r in ev["shift"]]))


def _evaluate(model, data, spec: dict, seed: int, dev, second, ref: float | None, keep: dict | None) -> dict:
    """The evaluations of one trained network (``spec``: the run merged with one of its trainings):
    clean accuracy, domain shift, SimBA (``robust`` only; NaN otherwise), per-layer spectra, and the
    domain shift at the matched checkpoint (``matched``: the final weights for ``none`` or without
    checkpoints; the checkpoint of ``keep`` whose clean accuracy is closest to ``ref`` otherwise;
    NaN for methods not in ``robust_methods``)."""
    out = {"clean": accuracy(model, data.X_test, data.y_test), **domain_shift(model, data, spec, seed, dev, second)}
    if not spec["robust"]:  # not compared at matched accuracy
        out["matched"] = dict(at=np.nan, clean=np.nan, shift=np.nan, second=np.nan)
    elif not keep or not keep["clean"]:  # matched = final weights
        out["matched"] = dict(at=1.0, clean=out["clean"], shift=_mean_shift(out), second=out["second"][1])
    else:  # the checkpoint whose clean accuracy is closest to the unregularized network's
        k = match_checkpoint(keep["clean"], ref)
        assert k == keep["best"], (k, keep["best"])
        at, clean = keep["at"][k], keep["clean"][k]
        if at == 1.0:  # the end of training: the final evaluation
            ev = out
        else:
            final = copy.deepcopy(model.state_dict())
            model.load_state_dict(keep["state"])
            ev = domain_shift(model, data, spec, seed, dev, second)
            model.load_state_dict(final)
        out["matched"] = dict(at=at, clean=clean, shift=_mean_shift(ev), second=ev["second"][1])
    if spec["robust"]:
        n_att = min(spec["simba_images"], len(data.y_test))
        att = simba(model, data.X_test[:n_att], data.y_test[:n_att], spec["simba_eps"], max(spec["simba_checkpoints"]),
                    spec["simba_basis"], torch.Generator().manual_seed(seed + 31337))
        out["asr"] = attack_success_rate(att["success_iter"], spec["simba_checkpoints"])
        out["simba_queries"] = float(att["queries"].float().mean()) if att["n_attacked"] else float("nan")
        out["simba_attacked"] = att["n_attacked"]
    else:  # SimBA skipped: rates not measured
        out.update(asr={int(t): float("nan") for t in spec["simba_checkpoints"]}, simba_queries=float("nan"),
                   simba_attacked=0)
    sizes = layer_input_sizes(model, data.X_test[:2])
    out["spectra"] = layer_spectra(model, sizes, spec["frame_A"], spec["frame_B"])
    return out


def execute(run: dict) -> dict:
    """One run of :func:`plan` (a data set x network x seed): load the data (the seed's subsets), then
    train and evaluate each of its trainings in order, from the same initial weights.

    Returns ``{"trainings": [...]}``, one result per training.  A ``main`` training gives the clean test
    accuracy, the accuracies on the corrupted copies and on the second domain, the SimBA rates
    (``robust`` methods only; NaN otherwise), the per-layer spectra, the training summary, the clean
    accuracy at each of its ``match_checkpoints`` checkpoints (``checkpoints``: ``{at, clean}``, the last
    at the end of training) and ``matched``, the domain shift at the checkpoint whose clean accuracy is
    closest to the unregularized training's (which comes first): only that checkpoint's domain shift is
    evaluated.  A ``wd`` training gives its clean accuracy.  Pure: it reads only ``run``."""
    dev = resolve_device(run["device"])
    if dev.type == "cuda":  # set on every run: a Ray worker process is reused by the next run
        torch.backends.cudnn.benchmark = run["cudnn_benchmark"]
    with cpu_threads(run["cpu_threads"]):
        seed = run["seed"]
        data = load_data(run["dataset"], run["n_train"], run["n_test"], seed, run["augment"]).to(dev)
        second = shifted_domain(data, run, seed)  # the same second domain for every model of a seed
        ref, results = None, []
        for t in run["trainings"]:
            spec = {**{k: v for k, v in run.items() if k != "trainings"}, **t}
            model, reg = _network(spec, data, dev)
            if t["kind"] == "wd":  # the weight-decay experiment: clean accuracy only
                tr = _train(model, data, reg, spec)
                results.append({"clean": accuracy(model, data.X_test, data.y_test), "train": tr})
                continue
            n_ck = t["match_checkpoints"] if ref is not None else 0
            keep = {"at": [], "clean": [], "best": None, "gap": np.inf, "state": None}

            def checkpoint(step, total, model=model, keep=keep):
                # the clean accuracy of every checkpoint; the weights of the closest to ``ref`` so far (ties:
                # the later one, as :func:`match_checkpoint`), to evaluate its domain shift after training
                c = accuracy(model, data.X_test, data.y_test)
                keep["at"].append(step / total)
                keep["clean"].append(c)
                gap = float(np.abs(np.float64(c) - ref))
                if gap <= keep["gap"]:
                    keep["best"], keep["gap"] = len(keep["clean"]) - 1, gap
                    keep["state"] = copy.deepcopy(model.state_dict()) if step < total else None

            tr = _train(model, data, reg, spec, n_ck, checkpoint if n_ck else None)
            res = _evaluate(model, data, spec, seed, dev, second, ref, keep if n_ck else None)
            if t["method"] == "none":
                ref = res["clean"]
            res.update(checkpoints=[dict(at=a, clean=c) for a, c in zip(keep["at"], keep["clean"])], train=tr)
            results.append(res)
        return {"trainings": results}


def frames_of(params: dict, runs: list[dict], results: list[dict]) -> dict[str, pd.DataFrame]:
    """The tidy data frames of the results (in plan order): ``scores`` (dataset, arch, method, seed,
    clean, shift (mean over corruptions and severities), second-domain accuracy, the same at the
    checkpoint matched to the unregularized run's clean accuracy, ASR per checkpoint, mean SimBA
    queries, share of Gram eigenvalues in [A, B] (mean over layers), frame penalty (sum over layers),
    training cross-entropy and seconds), ``shift`` (… corruption, severity, accuracy), ``spectra``
    (… per layer) and ``wd`` (the weight-decay experiment's clean accuracies)."""
    scores, shift, spectra, wd = [], [], [], []
    for run, result in zip(runs, results):
        dname, arch, seed = run["dataset"], run["arch"], run["seed"]
        for t, res in zip(run["trainings"], result["trainings"]):
            method, tr = t["method"], res["train"]
            if t["kind"] == "wd":
                wd.append(dict(dataset=dname, arch=arch, seed=seed, run=t["run"], method=method,
                               weight_decay=t["weight_decay"], clean=res["clean"], seconds=tr["seconds"]))
                continue
            key = dict(dataset=dname, arch=arch, method=method, seed=seed)
            clean, m, sp = res["clean"], res["matched"], res["spectra"]
            scores.append(dict(**key, clean=clean, shift=_mean_shift(res), second=res["second"][1],
                               second_name=res["second"][0], clean_matched=m["clean"], matched_at=m["at"],
                               shift_matched=m["shift"], second_matched=m["second"],
                               **{f"asr_{it}": v for it, v in res["asr"].items()},
                               asr_mean=float(np.mean(list(res["asr"].values()))),
                               simba_queries=res["simba_queries"], simba_attacked=res["simba_attacked"],
                               frac_in_bounds=float(sp["frac_in_bounds"].mean()),
                               frame_penalty=float(sp["frame_penalty"].sum()), train_ce=tr["mean_ce"],
                               seconds=tr["seconds"]))
            shift += [dict(**key, **r) for r in res["shift"]]
            spectra += [dict(**key, **r) for r in sp.to_dict("records")]
            if method in ("none", "frame"):
                wd.append(dict(dataset=dname, arch=arch, seed=seed, run=method, method=method,
                               weight_decay=t["weight_decay"], clean=clean, seconds=tr["seconds"]))
    return {"scores": pd.DataFrame(scores), "shift": pd.DataFrame(shift), "spectra": pd.DataFrame(spectra),
            "wd": pd.DataFrame(wd)}


def summarize(params: dict, results: list[dict]) -> dict:
    """The report from the results of :func:`plan`'s runs (in plan order): the data frames of
    :func:`frames_of`, the tables and figure data of the page, and the ledger (``claims``)."""
    out = frames_of(params, plan(params), results)
    scores, shift, spectra, wd = out["scores"], out["shift"], out["spectra"], out["wd"]
    ledger = claims(scores, params, wd)
    out["claims"] = ledger
    out["tables"] = {"time": timing_table(scores), "accuracy": accuracy_table(scores, params),
                     "deck_shift": deck_shift_table(scores, params), "shift_final": shift_table(scores, params),
                     "deck_simba": deck_simba_table(scores, params), "asr": asr_table(scores, params),
                     "wd": wd_table(wd, params), "spectrum": spectrum_table(scores, params).round(3)}
    out["figures"] = {"severity": severity_curves(scores, shift, params), "asr": asr_curves(scores, params),
                      "spectra": spectra_for_figure(spectra, params)}
    out["text"] = {"spectra": spectra_markdown(spectra, params), "summary": summary_markdown(ledger, scores, params)}
    return out


# --- the rules the profiles' weights and SimBA step come from (run once, not on the page) ----------------


def tune_weights(params: dict, dataset: str, seed: int, grid=(1e-3, 1e-2, 1e-1, 1.0, 10.0), tol_pp: float = 1.0,
                 methods=None, progress: bool = False) -> pd.DataFrame:
    """The rule the profiles' regularization weights come from, on one draw of the data (``seed``, not
    among the reported seeds): train without regularization, then each method at increasing weights
    of ``grid``, and keep the last weight before the clean test accuracy falls more than ``tol_pp``
    percentage points below the unregularized model's.  Returns the trials with a ``chosen`` column."""
    from tqdm import tqdm

    dev = resolve_device(params["device"])
    base_run = {**{k: params[k] for k in _RUN_KEYS}, "arch": params["archs"][0], "seed": seed,
                "weight_decay": params["weight_decay"]}
    data = load_data(dataset, params["n_train"], params["n_test"], seed, params["augment"]).to(dev)

    def trial(method, weight):
        run = {**base_run, "method": method, "reg_weight": weight}
        model, reg = _network(run, data, dev)
        _train(model, data, reg, run)
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
    run = {**{k: params[k] for k in _RUN_KEYS}, "arch": params["archs"][0], "seed": seed, "method": "none",
           "reg_weight": 0.0, "weight_decay": params["weight_decay"]}
    data = load_data(dataset, params["n_train"], params["n_test"], seed, params["augment"]).to(dev)
    model, reg = _network(run, data, dev)
    _train(model, data, reg, run)
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
    piv = g.pivot_table(index="seed", columns="method", values=col, dropna=False)
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
