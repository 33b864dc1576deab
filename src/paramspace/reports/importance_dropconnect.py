"""Report 3: importance_dropconnect (its parameters and profiles; being moved here from ``importance.py``)."""

from __future__ import annotations

from .spec import COMMON, CPU_THREADS, Param, Report, _number, fraction_grid, int_list, positive_float, positive_int

_ID_DATASETS = ("mnist", "fashion-mnist", "cifar10")

REPORT = Report(
    name="importance_dropconnect",
    title="DropConnect guided by weight importance",
    author="A. Rebrikov",
    seed_id="002",
    params={
        **COMMON,
        "dataset": Param(str, "data set: 'mnist' or 'fashion-mnist' (shipped) or 'cifar10' (paper; needs a network)",
                         lambda v: v in _ID_DATASETS, f"one of {_ID_DATASETS}"),
        "arch": Param(str, "'cnn' (small CNN, 28x28 grey images) or 'resnet18' (ResNet-18 for 32x32 RGB)",
                      lambda v: v in ("cnn", "resnet18"), "one of ('cnn', 'resnet18')"),
        "width": positive_int("channels of the small CNN's first convolution (the second has twice as many)"),
        "n_train": positive_int("training images, a seeded random subset per seed (all if >= the set's size)"),
        "n_test": positive_int("test images, a seeded random subset per seed (all if >= the set's size)"),
        "augment": Param(bool, "random crop (padding 4) and horizontal flip of the training images (cifar10 only)"),
        "epochs": positive_int("training epochs of every run"),
        "batch_size": positive_int("minibatch size"),
        "optimizer": Param(str, "'adam', or 'sgd' (Nesterov momentum 0.9, cosine learning-rate schedule)",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("learning rate of the weights"),
        "weight_decay": Param(float, "L2 weight decay of the optimizer (every method)", lambda v: v >= 0,
                              "a number >= 0"),
        "drop_rate": Param(float, "p: expected fraction of dropped weights per layer (all DropConnect variants)",
                           lambda v: 0 < v < 1, "a number in (0, 1)"),
        "min_keep": Param(float, "lowest keep-probability of a weight under importance DropConnect (<= 1 - drop_rate)",
                          lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "importance_lr": positive_float("eta: step of the exponentiated-gradient (mirror-descent) update of the importances"),
        "importance_gamma": positive_float("gamma: size of the importance-weighted gradient step inside the objective"),
        "importance_tau": positive_float("tau: weight of the KL-to-uniform regulariser (per weight) of the '+ KL' variant"),
        "importance_every": positive_int("minibatches between two importance updates"),
        "importance_steps": positive_int("mirror-descent steps per importance update"),
        "importance_data": Param(str, "data of the importance objective: 'same' (the deck's: gradient and loss after "
                                 "the step on the same minibatch) or 'split' (ours: gradient on one half, loss on the other)",
                                 lambda v: v in ("same", "split"), "one of ('same', 'split')"),
        "collapse_steps": positive_int("mirror-descent steps of the collapse check (importance problem solved at fixed "
                                       "trained weights on one batch, from uniform)"),
        "collapse_seeds": positive_int("seeds of the collapse check (the first ones of the main run; <= n_seeds)"),
        "collapse_layer_step": positive_float("collapse check: largest change of a log-importance in the first mirror-"
                                              "descent step, per layer (the step is scaled per layer; see collapse_check)"),
        "collapse_share": Param(float, "ours: a layer counts as collapsed to one weight when its largest share "
                                "max w/|X| exceeds this", lambda v: 0 < v < 1, "a number in (0, 1)"),
        "grid_min_keep": Param(list, "min_keep values of the sensitivity grid (each <= 1 - drop_rate)",
                               lambda v: len(v) >= 1 and all(_number(x) and 0 <= x < 1 for x in v)
                               and list(v) == sorted(set(v)), "a non-empty increasing list of numbers in [0, 1)"),
        "grid_tau": Param(list, "importance_tau values of the sensitivity grid (0 = importance DropConnect without KL)",
                          lambda v: len(v) >= 1 and all(_number(x) and x >= 0 for x in v)
                          and list(v) == sorted(set(v)), "a non-empty increasing list of numbers >= 0"),
        "grid_seeds": positive_int("seeds of the sensitivity grid (the first ones of the main run; <= n_seeds)"),
        "early_epochs": positive_int("'early in training' = the first this many epochs (must be < epochs)"),
        "cpu_threads": CPU_THREADS,
    },
)

_id_common = dict(seed=0, drop_rate=0.3, min_keep=0.5, importance_gamma=0.1, importance_lr=300.0,
                  importance_tau=1e-4, importance_every=1, importance_steps=1, importance_data="same",
                  collapse_share=0.5, collapse_layer_step=0.5)
REPORT.profiles = {
    "smoke": {**_id_common, **dict(profile="smoke", device="cpu", n_seeds=2, dataset="fashion-mnist", arch="cnn",
                                   width=4, n_train=256, n_test=256, augment=False, epochs=3, batch_size=64,
                                   optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=1, cpu_threads=1,
                                   collapse_steps=20, collapse_seeds=2, grid_min_keep=[0.5, 0.7], grid_tau=[0.0, 1e-3],
                                   grid_seeds=1)},
    "book": {**_id_common, **dict(profile="book", device="auto", n_seeds=5, dataset="fashion-mnist", arch="cnn",
                                  width=8, n_train=500, n_test=1000, augment=False, epochs=24, batch_size=64,
                                  optimizer="adam", lr=0.003, weight_decay=0.0, early_epochs=6, cpu_threads=1,
                                  collapse_steps=1000, collapse_seeds=3, grid_min_keep=[0.1, 0.5],
                                  grid_tau=[0.0, 1e-4, 1e-3], grid_seeds=3)},
    "paper": {**_id_common, **dict(profile="paper", device="auto", n_seeds=5, dataset="cifar10", arch="resnet18",
                                   width=8, n_train=50000, n_test=10000, augment=True, epochs=50, batch_size=128,
                                   optimizer="sgd", lr=0.1, weight_decay=5e-4, early_epochs=5, cpu_threads=0,
                                   collapse_steps=2000, collapse_seeds=2, grid_min_keep=[0.1, 0.5],
                                   grid_tau=[0.0, 1e-4, 1e-3], grid_seeds=2)},
}


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
    from ..importance import check_params as _check

    _check(params)


REPORT.check = check_params
