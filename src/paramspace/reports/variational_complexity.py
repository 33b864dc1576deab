"""Report 2, variational_complexity: its parameters, rules across them, experiment, tables, claims and prose.

Grebenkova, Bakhteev, Strijov (2020): sSeparate mean-field Gaussian networks, one per complexity coefficient lambda, and two hypernetworks
lambda -> variational parameters (the methods are in :mod:`paramspace.hypernet`), pruned by relative
density and by magnitude.  The experiment follows the report contract: :func:`plan` makes one run per
(seed, separate model at one lambda), per (seed, hypernetwork) and per (seed, prior variance of the
sweep other than the run's own), :func:`execute` runs one, :func:`summarize` makes the tables, the
claims and the discussion.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import pandas as pd
import torch

from .. import data as D, hypernet as H, pruning, variational as V
from ..quality import quality
from ..train import cpu_threads, fit, make_optimizer, resolve_device, seed_everything, set_cpu_threads
from .spec import COMMON, CPU_THREADS, Param, ProfileError, Report, _number, fraction_grid, int_list, positive_float, positive_int

def _lambda_grid(help: str) -> Param:
    return Param(list, help,
                 lambda v: len(v) >= 1 and all(_number(x) and x >= 0 for x in v)
                 and all(a < b for a, b in zip(v[:-1], v[1:])),
                 "a non-empty, strictly increasing list of numbers >= 0")


REPORT = Report(
    name="variational_complexity",
    title="Variational optimization of deep learning models with complexity control",
    author="O. S. Grebenkova (with O. Yu. Bakhteev and V. V. Strijov)",
    seed_id="001",
    params={
        **COMMON,
        "n_train": Param(int, "MNIST training images, a seeded random subset per seed (60000 = all)",
                         lambda v: 1 <= v <= 60000, "an integer in [1, 60000]"),
        "n_test": Param(int, "MNIST test images, a seeded random subset per seed (10000 = all)",
                        lambda v: 1 <= v <= 10000, "an integer in [1, 10000]"),
        "hidden": int_list("hidden-layer widths (report: [100], i.e. 784-100-10)"),
        "epochs": positive_int("training epochs of every separately trained model (report: 50)"),
        "hyper_epochs": positive_int("training epochs of each hypernetwork"),
        "optimizer": Param(str, "'adam' (the authors' published code) or 'sgd' (plain SGD, as the deck's slide says)",
                           lambda v: v in ("adam", "sgd"), "one of ('adam', 'sgd')"),
        "lr": positive_float("learning rate of the optimizer (models and hypernetworks)"),
        "finetune_lr": positive_float("plain-SGD learning rate of the fine-tuning after pruning"),
        "grad_clip": Param(float, "clip every gradient (models and hypernetworks) to this value (0 = no clipping)",
                           lambda v: v >= 0, "a number >= 0"),
        "clip_mode": Param(str, "'value' (clip each gradient entry, as the authors' code) or 'norm' (global norm)",
                           lambda v: v in ("value", "norm"), "one of ('value', 'norm')"),
        "input_scaling": Param(str, "'symmetric': pixels to [-1, 1] (the authors' code); 'unit': pixels in [0, 1]",
                               lambda v: v in ("symmetric", "unit"), "one of ('symmetric', 'unit')"),
        "batch_size": positive_int("minibatch size"),
        "prior_variance": positive_float("variance of the Gaussian prior N(0, prior_variance) on every parameter (report: 0.1)"),
        "prior_variances": Param(list, "prior variances of the prior sweep (separate models at λ = sweep_lambda)",
                                 lambda v: len(v) >= 1 and all(_number(x) and x > 0 for x in v),
                                 "a non-empty list of numbers > 0"),
        "sweep_lambda": Param(float, "λ of the separate models of the prior sweep", lambda v: v >= 0, "a number >= 0"),
        "init_sigma": positive_float("initial posterior standard deviation of every parameter"),
        "local_reparam": Param(bool, "sample pre-activations (local reparameterisation) instead of weights"),
        "lambdas": _lambda_grid("complexity coefficients λ of the separate models (report: 0, 0.01, 0.1, 1, 10, 100)"),
        "lambda_min": positive_float("lower end of the λ range the hypernetworks are trained on (log-uniform)"),
        "lambda_max": positive_float("upper end of the λ range the hypernetworks are trained on"),
        "lambdas_per_batch": positive_int("values of λ drawn per minibatch when training a hypernetwork (report: 5)"),
        "linear_init": Param(str, "linear hypernetwork: 'endpoints' (two independently initialised parameter sets at "
                                  "λ_min and λ_max, as the authors' code) or 'zero' (b2 = 0: starts flat in λ)",
                             lambda v: v in ("endpoints", "zero"), "one of ('endpoints', 'zero')"),
        "rank": positive_int("rank of the λ-dependent part of each weight matrix (low-rank hypernetwork)"),
        "lowrank_features": Param(str, "features f(λ) of the low-rank hypernetwork: 'relu' (one hidden layer of "
                                       "embed_dim ReLU units, the deck's) or 'tanh' (a learned tanh embedding, ours)",
                                  lambda v: v in ("relu", "tanh"), "one of ('relu', 'tanh')"),
        "embed_dim": positive_int("number of features f(λ) of the low-rank hypernetwork (report: 50)"),
        "pruning_ranking": Param(str, "'per_layer': remove the same fraction of each layer (the authors' code); "
                                      "'global': rank the weights of all layers together",
                                 lambda v: v in ("per_layer", "global"), "one of ('per_layer', 'global')"),
        "fractions": fraction_grid("fractions of the weights removed (must start at 0)"),
        "finetune_steps": Param(int, "SGD steps of fine-tuning after pruning (0 = no fine-tuning)",
                                lambda v: v >= 0, "an integer >= 0"),
        "claim_fraction": Param(float, "fraction removed at which the claims are checked (report: 0.8); one of `fractions`",
                                lambda v: 0 < v < 1, "a number in (0, 1)"),
        "drop_tol_pp": positive_float("largest accuracy drop (percentage points) that counts as 'no significant loss'"),
        "eval_every_steps": positive_int("optimizer steps between two test evaluations of a separate model while it "
                                         "trains (the cost-to-quality comparison)"),
        "evidence_n": positive_int("training examples on which the generalised evidence is estimated (one draw of q)"),
        "similar_tol_pp": positive_float("largest mean |difference of curve areas| (percentage points) that counts as 'similar'"),
        "n_lambda_grid": Param(int, "points of the fine λ grid along which the hypernetworks are evaluated",
                               lambda v: v >= 2, "an integer >= 2"),
        "cpu_threads": CPU_THREADS,
    },
)

_vc_common = dict(hidden=[100], optimizer="adam", lr=5e-4, finetune_lr=0.1, grad_clip=1.0, clip_mode="value",
                  input_scaling="symmetric", batch_size=256, prior_variance=0.1, prior_variances=[0.01, 0.1, 1.0],
                  sweep_lambda=1.0, init_sigma=0.05, local_reparam=True,
                  lambdas=[0.0, 0.01, 0.1, 1.0, 10.0, 100.0], lambda_min=0.01, lambda_max=100.0, lambdas_per_batch=5,
                  linear_init="endpoints", rank=1, lowrank_features="relu", embed_dim=50, pruning_ranking="per_layer",
                  fractions=[round(i / 10, 1) for i in range(10)], claim_fraction=0.8, drop_tol_pp=1.0,
                  similar_tol_pp=2.0, eval_every_steps=47, evidence_n=10000)
REPORT.profiles = {
    "smoke": {**_vc_common, **dict(profile="smoke", device="cpu", seed=0, n_seeds=2, n_train=600, n_test=300,
                                   lr=5e-3, hidden=[16], epochs=1, hyper_epochs=1, batch_size=64,
                                   lambdas=[0.0, 0.1, 1.0, 100.0], lambda_min=0.1, lambdas_per_batch=2, embed_dim=4,
                                   prior_variances=[0.1, 1.0], fractions=[0.0, 0.5, 0.8], finetune_steps=2,
                                   n_lambda_grid=3, eval_every_steps=3, evidence_n=200, cpu_threads=1)},
    "book": {**_vc_common, **dict(profile="book", device="auto", seed=0, n_seeds=3, n_train=60000, n_test=10000,
                                  lr=5e-3, epochs=3, hyper_epochs=3, finetune_steps=30, n_lambda_grid=13,
                                  eval_every_steps=141, evidence_n=5000, cpu_threads=1)},
    "paper": {**_vc_common, **dict(profile="paper", device="auto", seed=0, n_seeds=5, n_train=60000, n_test=10000,
                                   epochs=50, hyper_epochs=50, finetune_steps=235, n_lambda_grid=33,
                                   eval_every_steps=235, cpu_threads=0)},
}


METHODS = ("separate", "linear", "lowrank")
METHOD_LABELS = {"separate": "separate models (one per λ)", "linear": "linear hypernetwork",
                 "lowrank": "low-rank hypernetwork"}
STAGES = ("one-shot", "fine-tuned")
CRITERIA = H.CRITERIA


# --- the network and the hypernetworks from the parameters --------------------------------------


def prior_sigma(params: dict) -> float:
    return math.sqrt(params["prior_variance"])


def bayes_mlp(params: dict, in_dim: int = 784, out_dim: int = 10):
    """``in_dim -> hidden -> out_dim`` ReLU network of :class:`~paramspace.variational.BayesLinear` layers."""
    return H.bayes_mlp(params["hidden"], prior_sigma=prior_sigma(params), init_sigma=params["init_sigma"],
                       local_reparam=params["local_reparam"], in_dim=in_dim, out_dim=out_dim)


def make_hyper(kind: str, base, params: dict, seed: int = 0, other=None) -> H.HyperNet:
    """The hypernetwork ``kind`` over ``base``.  The linear one starts from the endpoints ``base`` and
    ``other`` when ``params["linear_init"] == "endpoints"`` (``other`` is then required), flat
    otherwise; the low-rank one uses ``params["lowrank_features"]`` (default ``"tanh"``)."""
    if kind == "linear":
        if params.get("linear_init", "zero") == "endpoints":
            if other is None:
                raise ValueError("linear_init = 'endpoints' needs a second network `other`")
            return H.LinearHyper(base, params["lambda_min"], params["lambda_max"], other=other)
        return H.LinearHyper(base, params["lambda_min"], params["lambda_max"])
    if kind == "lowrank":
        return H.LowRankHyper(base, params["lambda_min"], params["lambda_max"], rank=params["rank"],
                              embed_dim=params["embed_dim"], generator=torch.Generator().manual_seed(seed),
                              features=params.get("lowrank_features", "tanh"))
    raise ValueError(f"kind must be 'linear' or 'lowrank', got {kind!r}")


def hyper_lambdas(params: dict) -> list[float]:
    """The lambdas of the grid that the hypernetworks cover (those in ``[lambda_min, lambda_max]``)."""
    return [lam for lam in params["lambdas"] if params["lambda_min"] <= lam <= params["lambda_max"]]


# --- rules across parameters --------------------------------------------------------------------


def check_params(params: dict) -> None:
    """The rules across parameters (run by :func:`paramspace.reports.resolve` before any compute)."""
    if not params["lambda_min"] < params["lambda_max"]:
        raise ProfileError("variational_complexity: need lambda_min < lambda_max, got "
                           f"{params['lambda_min']} and {params['lambda_max']}")
    if not hyper_lambdas(params):
        raise ProfileError("variational_complexity: no value of `lambdas` lies in [lambda_min, lambda_max]")
    if not any(math.isclose(f, params["claim_fraction"]) for f in params["fractions"]):
        raise ProfileError(f"variational_complexity: claim_fraction = {params['claim_fraction']} must be one of "
                           f"`fractions` {params['fractions']}")
    if params["fractions"][0] != 0.0:
        raise ProfileError("variational_complexity: `fractions` must start at 0 (the unpruned network)")
    if params["prior_variance"] not in params["prior_variances"]:
        raise ProfileError(f"variational_complexity: prior_variance = {params['prior_variance']} must be one of "
                           f"`prior_variances` {params['prior_variances']} (the sweep's reference)")
    if params["sweep_lambda"] not in params["lambdas"]:
        raise ProfileError(f"variational_complexity: sweep_lambda = {params['sweep_lambda']} must be one of "
                           f"`lambdas` {params['lambdas']}")


REPORT.check = check_params


def configure_threads(params: dict) -> int:
    """``torch.set_num_threads(params["cpu_threads"])`` unless it is 0 (torch's default); returns the
    number of threads now in use (the notebook calls it once, before any compute)."""
    return set_cpu_threads(params["cpu_threads"])


# --- the experiment: plan, execute, summarize ---------------------------------------------------

# the parameters every run needs (copied into it)
_RUN_KEYS = ("device", "cpu_threads", "n_train", "n_test", "input_scaling", "hidden", "prior_variance",
             "init_sigma", "local_reparam", "epochs", "batch_size", "optimizer", "lr", "grad_clip", "clip_mode",
             "fractions", "pruning_ranking", "finetune_steps", "finetune_lr", "evidence_n")
_HYPER_KEYS = ("hyper_epochs", "lambdas", "lambda_min", "lambda_max", "lambdas_per_batch", "linear_init", "rank",
               "lowrank_features", "embed_dim", "n_lambda_grid", "claim_fraction")
FRAMES = ("curves", "grid", "grid_models", "traces", "timing", "models", "prior_curves", "prior_models")


def plan(P: dict) -> list[dict]:
    """The independent runs, per seed ``P["seed"] + s``: one per separate model (``kind = "separate"``,
    one per λ of ``lambdas``; the one at ``sweep_lambda`` also gives the prior sweep's row for
    ``prior_variance``), one per hypernetwork (``"linear"``, ``"lowrank"``) and one per other prior
    variance of the sweep (``"prior"``, a separate model at ``sweep_lambda``).  Every run is seeded as
    the old single loop seeded that model, so the numbers do not depend on the split."""
    common = {k: P[k] for k in _RUN_KEYS}
    runs = []
    for s in range(P["n_seeds"]):
        seed = P["seed"] + s
        for lam in P["lambdas"]:
            runs.append(dict(common, kind="separate", seed=seed, lam=lam, sweep=lam == P["sweep_lambda"],
                             eval_every_steps=P["eval_every_steps"]))
        for kind in ("linear", "lowrank"):
            runs.append(dict(common, kind=kind, seed=seed, **{k: P[k] for k in _HYPER_KEYS}))
        for pv in P["prior_variances"]:
            if pv != P["prior_variance"]:
                runs.append(dict(common, kind="prior", seed=seed, lam=P["sweep_lambda"], prior_variance=pv))
    return runs


def _sync(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _warm_up():
    """Import what the first optimiser step imports (``torch.optim`` pulls in ``torch._dynamo``, about
    a second), so that this one-off cost is not charged to the first timed model: one step of
    :func:`~paramspace.train.fit` on a scalar."""
    w = torch.zeros(1, requires_grad=True)
    fit(lambda _batch: (w**2).sum(), make_optimizer([w], "sgd", 0.1), lambda _epoch: [None], epochs=1)


@functools.lru_cache(maxsize=1)
def _mnist(n_train: int, n_test: int, seed: int, input_scaling: str):
    """A run's data set.  Kept for the next run in this process (the runs of one seed follow each other
    in the plan and read the same data); no run changes it."""
    return H.scale_inputs(D.load_mnist(n_train=n_train, n_test=n_test, seed=seed), input_scaling)


def execute(run: dict) -> dict[str, list[dict]]:
    """One run of :func:`plan` (everything it reads is in ``run``): rows of the frames of
    :func:`summarize` (``curves``, ``models``, ``timing``, and per kind ``traces``, ``grid``,
    ``grid_models``, ``prior_curves``, ``prior_models``), as lists of plain dicts."""
    with cpu_threads(run["cpu_threads"]):
        return _execute(run)


def _execute(run: dict) -> dict[str, list[dict]]:
    kind, seed = run["kind"], run["seed"]
    dev = resolve_device(run["device"])
    fr, rk = run["fractions"], run["pruning_ranking"]
    ft = dict(finetune_steps=run["finetune_steps"], finetune_lr=run["finetune_lr"],
              batch_size=run["batch_size"], device=str(dev), ranking=rk)
    tk = dict(batch_size=run["batch_size"], optimizer=run["optimizer"], lr=run["lr"], clip=run["grad_clip"],
              clip_mode=run["clip_mode"], device=str(dev))
    out = {k: [] for k in FRAMES}
    _warm_up()
    ds = _mnist(run["n_train"], run["n_test"], seed, run["input_scaling"])

    def evid(bayes, lam):
        ev = H.training_subset(ds, run["evidence_n"], seed)
        return H.evidence_terms(bayes, ev.X_train, ev.y_train, lam, len(ds.X_train), seed)

    def record(method, lam, bayes, final_loss):
        # the magnitude baseline is compared on the separate models only
        c = H.prune_curve(bayes, ds, fr, seed, criteria=CRITERIA if method == "separate" else ("density",), **ft)
        out["curves"].extend(dict(method=method, seed=seed, lam=lam, **r) for r in c.to_dict("records"))
        acc0 = c[(c.criterion == "density") & (c.stage == "one-shot") & (c.fraction == fr[0])].accuracy.iloc[0]
        out["models"].append(dict(method=method, seed=seed, lam=lam, accuracy=acc0, final_loss=final_loss,
                                  **H.posterior_summary(bayes), **evid(bayes, lam)))

    def prior_rows(model, pv):
        c = H.prune_curve(model, ds, fr, seed, **{**ft, "finetune_steps": 0})
        out["prior_curves"].extend(dict(seed=seed, prior_variance=pv, **r) for r in c.to_dict("records"))
        out["prior_models"].append(dict(seed=seed, prior_variance=pv, accuracy=c.accuracy.iloc[0],
                                        **H.posterior_summary(model)))

    if kind == "separate":
        lam = run["lam"]
        seed_everything(seed)  # every lambda starts from the same initialisation
        model = bayes_mlp(run)
        _sync(dev)
        t0 = time.perf_counter()
        hist, steps, trace = H.train_separate(model, ds, lam, epochs=run["epochs"], seed=seed,
                                              eval_every=run["eval_every_steps"], **tk)
        _sync(dev)
        sec = time.perf_counter() - t0
        out["traces"].extend(dict(seed=seed, lam=lam, step=st, accuracy=a) for st, a in trace)
        out["timing"].append(dict(method=kind, seed=seed, lam=lam, seconds=sec, epochs=run["epochs"],
                                  steps=steps, passes=steps))
        record(kind, lam, model, hist.loss[-1])
        if run["sweep"]:  # the prior sweep's reference: this model has the run's prior
            prior_rows(model, run["prior_variance"])
    elif kind == "prior":
        seed_everything(seed)
        model = bayes_mlp(run)
        H.train_separate(model, ds, run["lam"], epochs=run["epochs"], seed=seed, **tk)
        prior_rows(model, run["prior_variance"])
    elif kind in ("linear", "lowrank"):
        seed_everything(seed)
        base = bayes_mlp(run)  # the same initial means and variances as the separate models
        other = bayes_mlp(run) if kind == "linear" else None  # an independent second endpoint
        hyper = make_hyper(kind, base, run, seed, other=other)
        _sync(dev)
        t0 = time.perf_counter()
        hist = H.train_hypernet(hyper, ds, epochs=run["hyper_epochs"], lr=run["lr"], batch_size=run["batch_size"],
                                lambdas_per_batch=run["lambdas_per_batch"], prior_sigma=prior_sigma(run),
                                optimizer=run["optimizer"], clip=run["grad_clip"], clip_mode=run["clip_mode"],
                                seed=seed, device=str(dev))
        _sync(dev)
        out["timing"].append(dict(method=kind, seed=seed, lam=float("nan"), seconds=time.perf_counter() - t0,
                                  epochs=run["hyper_epochs"], steps=hist.steps,
                                  passes=hist.steps * run["lambdas_per_batch"]))
        for lam in hyper_lambdas(run):
            record(kind, lam, hyper.model_at(lam), hist.loss[-1])
        grid = [float(v) for v in np.geomspace(run["lambda_min"], run["lambda_max"], run["n_lambda_grid"])]
        for lam in grid:
            bayes = hyper.model_at(lam)
            det, sc = V.to_deterministic(bayes), H.weight_scores(bayes)
            for f in (0.0, run["claim_fraction"]):
                acc = quality(H.prune_model(det, sc, f, seed, rk), ds.X_test, ds.y_test, ds.task)
                out["grid"].append(dict(method=kind, seed=seed, lam=lam, fraction=f, accuracy=acc))
            out["grid_models"].append(dict(method=kind, seed=seed, lam=lam, **H.posterior_summary(bayes),
                                           **evid(bayes, lam)))
    else:
        raise ValueError(f"unknown run kind {kind!r}")
    return {k: v for k, v in out.items() if v}


def frames(P: dict, results: list[dict]) -> dict[str, pd.DataFrame]:
    """The results of :func:`execute` (in plan order) as tidy data frames: ``curves`` (method, seed,
    lam, criterion, stage, fraction, accuracy), ``grid`` (method, seed, lam, fraction, accuracy),
    ``grid_models`` (method, seed, lam, posterior summary, evidence terms), ``traces`` (seed, lam,
    step, accuracy: separate models while training), ``timing`` (method, seed, lam, seconds, epochs,
    steps, passes), ``models`` (method, seed, lam, accuracy, posterior summary, evidence terms,
    final_loss), ``prior_curves`` (seed, prior_variance, criterion, stage, fraction, accuracy) and
    ``prior_models`` (seed, prior_variance, accuracy, posterior summary); the prior sweep per seed in
    the order of ``prior_variances``."""
    out = {k: [] for k in FRAMES}
    for r in results:
        for k in FRAMES[:-2]:
            out[k].extend(r.get(k, []))
    for s in range(P["n_seeds"]):  # the sweep per seed, in the order of prior_variances
        seed = P["seed"] + s
        for pv in P["prior_variances"]:
            for k in ("prior_curves", "prior_models"):
                out[k].extend(row for r in results for row in r.get(k, [])
                              if row["seed"] == seed and row["prior_variance"] == pv)
    return {k: pd.DataFrame(v) for k, v in out.items()}


def summarize(P: dict, results: list[dict]) -> dict:
    """The report from the results of :func:`execute` in plan order: the data frames of :func:`frames`
    (the figures' data), ``tables`` (name -> data frame, as the page shows them), ``claims`` (the
    ledger) and ``discussion`` (Markdown with this run's numbers)."""
    r = frames(P, results)
    ledger = claims(r, P)
    tables = {"protocol": protocol_table(P), "models": model_table(r["models"]),
              "density_vs_magnitude": density_vs_magnitude_table(r, P), "sensitivity": sensitivity_table(r, P),
              "prior": prior_table(r, P), "cost": cost_table(r, P), "timing": timing_table(r["timing"], P)}
    return {**r, "tables": tables, "claims": ledger, "discussion": discussion_markdown(r, ledger, P)}


# --- describing the run -------------------------------------------------------------------------


def describe(params: dict) -> str:
    sub = params["n_train"] < 60000 or params["n_test"] < 10000
    opt = ("Adam" if params["optimizer"] == "adam" else "plain SGD")
    clip = (f"gradients clipped to {params['grad_clip']:g} ({'each entry' if params['clip_mode'] == 'value' else 'global norm'})"
            if params["grad_clip"] > 0 else "no gradient clipping")
    return (f"MNIST ({params['n_train']} training and {params['n_test']} test images"
            f"{', a new random subsample per seed' if sub else ''}; pixels "
            f"{'mapped to [-1, 1]' if params['input_scaling'] == 'symmetric' else 'in [0, 1]'}), "
            f"network 784-{'-'.join(map(str, params['hidden']))}-10 (ReLU), prior N(0, {params['prior_variance']}), "
            f"initial σ = {params['init_sigma']}, {'local reparameterisation' if params['local_reparam'] else 'weight sampling'}; "
            f"{opt} (lr {params['lr']:g}, batch {params['batch_size']}), {clip}; {params['epochs']} epochs per separate "
            f"model and {params['hyper_epochs']} per hypernetwork ({params['lambdas_per_batch']} values of λ per batch, "
            f"log-uniform on [{params['lambda_min']:g}, {params['lambda_max']:g}]); linear hypernetwork "
            f"{'between two independently initialised endpoints' if params['linear_init'] == 'endpoints' else 'with b2 = 0 at the start'}; "
            f"low-rank hypernetwork of rank {params['rank']} with {params['embed_dim']} "
            f"{'ReLU units' if params['lowrank_features'] == 'relu' else 'tanh features'} f(λ); pruning "
            f"{'the same fraction of each layer' if params['pruning_ranking'] == 'per_layer' else 'ranked globally over the layers'}; "
            f"fine-tuning {params['finetune_steps']} SGD steps; prior sweep: variances "
            f"{', '.join(map(str, params['prior_variances']))} at λ = {params['sweep_lambda']:g}; {params['n_seeds']} seed(s)")


def protocol_table(params: dict) -> pd.DataFrame:
    """The protocol of this run next to the deck's and the authors' published code's (issue 13)."""
    P = params
    rows = [
        ("optimizer", "SGD (slide 'Параметры эксперимента', item 1)", "Adam, lr 5·10⁻⁴ (the MNIST notebooks)",
         f"{P['optimizer']}, lr {P['lr']:g}"),
        ("gradient clipping", "not stated", "each gradient entry to [-1, 1] (clip_grad_value_)",
         f"{P['grad_clip']:g} ({P['clip_mode']})" if P["grad_clip"] > 0 else "none"),
        ("epochs", "50 (item 2)", "25 (the MNIST base_net notebook)", f"{P['epochs']} (separate), {P['hyper_epochs']} (hypernetworks)"),
        ("input scaling", "not stated", "Normalize(0.5, 0.5): pixels in [-1, 1]", P["input_scaling"]),
        ("prior variance", "0.1 (item 3)", "prior σ 1.0", f"{P['prior_variance']:g}; sweep {P['prior_variances']}"),
        ("network", "784-100-10 (slide text)", "hidden 50 (the MNIST base_net notebook)", f"784-{'-'.join(map(str, P['hidden']))}-10"),
        ("λ of the separate models", "figure: 0, 0.01, 0.1, 1, 10, 100", "0.001 ... 100",
         ", ".join(f"{v:g}" for v in P["lambdas"])),
        ("hypernetwork λ range", "not stated", "10^U(-2, 2)", f"log-uniform [{P['lambda_min']:g}, {P['lambda_max']:g}]"),
        ("λ per batch (hypernetworks)", "5 (item 5)", "sampled per batch", str(P["lambdas_per_batch"])),
        ("linear hypernetwork", "G = λ b2 + b3", "interpolation between two Xavier-initialised endpoints",
         P["linear_init"]),
        ("low-rank features f(λ)", "50 ReLU units (item 4)", "Linear(1, hidden) + ReLU", f"{P['embed_dim']} {P['lowrank_features']}"),
        ("pruning", "relative density", "μ²/σ², the same fraction per layer", P["pruning_ranking"]),
        ("seeds", "one run (more planned, 'Выводы' item 4)", "5 starts", str(P["n_seeds"])),
    ]
    return pd.DataFrame(rows, columns=["setting", "the deck", "the authors' code", "this run"]).set_index("setting")


# --- tables, claims, discussion ---------------------------------------------------------------


def model_table(models: pd.DataFrame) -> pd.DataFrame:
    """Per model and lambda, mean over seeds: unpruned test accuracy (%), the posterior sigma of the
    weights (median and interquartile range), the rank correlation of ``mu^2/sigma^2`` with ``|mu|``,
    KL per parameter and the generalised evidence per training example."""
    return (models.assign(accuracy=100 * models.accuracy)
            .groupby(["method", "lam"], sort=False)[["accuracy", "median_sigma", "sigma_iqr", "rank_corr",
                                                     "kl_per_param", "evidence"]].mean()
            .rename(columns={"accuracy": "test accuracy (%)", "median_sigma": "median σ",
                             "sigma_iqr": "IQR of σ", "rank_corr": "rank corr. μ²/σ² vs |μ|",
                             "kl_per_param": "KL per parameter (nats)",
                             "evidence": "generalised evidence per example"})
            .rename_axis(["model", "λ"]).round(4))


def density_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``curves`` pruned by relative density (all stages)."""
    return curves[curves.criterion == "density"] if "criterion" in curves else curves


def drop_curves(curves: pd.DataFrame, stage: str = "one-shot") -> pd.DataFrame:
    """Density ``curves`` of one stage with a column ``drop``: unpruned accuracy minus accuracy (same
    model and seed)."""
    c = density_curves(curves)
    c = c[c.stage == stage].copy()
    ref = c[c.fraction == c.fraction.min()].set_index(["method", "lam", "seed"]).accuracy
    c["drop"] = ref.reindex(list(zip(c.method, c.lam, c.seed))).to_numpy() - c.accuracy.to_numpy()
    return c


def drop_at(curves: pd.DataFrame, fraction: float, method: str = "separate", stage: str = "one-shot",
            criterion: str = "density") -> pd.DataFrame:
    """Accuracy drop in percentage points, unpruned minus ``fraction`` removed, per (lam, seed)."""
    c = curves[(curves.method == method) & (curves.stage == stage)]
    if "criterion" in c:
        c = c[c.criterion == criterion]
    base = c[c.fraction == c.fraction.min()].set_index(["lam", "seed"]).accuracy
    at = c[np.isclose(c.fraction, fraction)].set_index(["lam", "seed"]).accuracy
    if at.empty:
        raise ValueError(f"fraction {fraction} is not in the pruning grid")
    return (100 * (base - at)).rename("drop_pp").reset_index()


def curve_auc_pp(curves: pd.DataFrame, stage: str = "one-shot", criterion: str = "density") -> pd.DataFrame:
    """Area under accuracy (%) vs fraction removed, normalised by the fraction range, per (method, lam, seed)."""
    c = curves[curves.stage == stage]
    if "criterion" in c:
        c = c[c.criterion == criterion]
    rows = []
    for (m, lam, s), g in c.groupby(["method", "lam", "seed"]):
        g = g.sort_values("fraction")
        rows.append(dict(method=m, lam=lam, seed=s, auc_pp=100 * pruning.curve_auc(g.fraction, g.accuracy)))
    return pd.DataFrame(rows)


def density_vs_magnitude_table(results: dict, params: dict, method: str = "separate") -> pd.DataFrame:
    """Per lambda (mean over seeds): the spread of sigma, the rank correlation of ``mu^2/sigma^2`` with
    ``|mu|``, the accuracy drop at ``claim_fraction`` by density and by magnitude, and the difference
    of the areas under the two one-shot curves (density minus magnitude, pp)."""
    cf = params["claim_fraction"]
    curves, models = results["curves"], results["models"]
    m = models[models.method == method].groupby("lam")[["sigma_q25", "sigma_q75", "rank_corr"]].mean()
    dd = drop_at(curves, cf, method, criterion="density").groupby("lam").drop_pp.mean()
    dm = drop_at(curves, cf, method, criterion="magnitude").groupby("lam").drop_pp.mean()
    ad = curve_auc_pp(curves[curves.method == method], criterion="density").groupby("lam").auc_pp.mean()
    am = curve_auc_pp(curves[curves.method == method], criterion="magnitude").groupby("lam").auc_pp.mean()
    out = pd.DataFrame({"σ, 25% quantile": m.sigma_q25, "σ, 75% quantile": m.sigma_q75,
                        "rank corr. μ²/σ² vs |μ|": m.rank_corr,
                        f"drop at {100 * cf:.0f}%, density (pp)": dd, f"drop at {100 * cf:.0f}%, magnitude (pp)": dm,
                        "area: density − magnitude (pp)": ad - am})
    return out.rename_axis("λ").round(4)


def sensitivity(results: dict, params: dict) -> pd.DataFrame:
    """λ-sensitivity per method and seed: ``log10`` of the ratio of KL per parameter at the smallest to
    that at the largest covered λ (positive: the model gets simpler as λ grows), the same ratio of the
    median sigma (``log10 sigma(λ_max) / sigma(λ_min)``) and the accuracy range (pp) over the covered λ."""
    lam_h = hyper_lambdas(params)
    lo, hi = lam_h[0], lam_h[-1]
    m = results["models"]
    rows = []
    for (meth, seed), g in m[m.lam.isin(lam_h)].groupby(["method", "seed"], sort=False):
        g = g.set_index("lam")
        rows.append(dict(method=meth, seed=seed,
                         kl_decades=float(np.log10(g.kl_per_param[lo] / g.kl_per_param[hi])),
                         sigma_decades=float(np.log10(g.median_sigma[hi] / g.median_sigma[lo])),
                         acc_range_pp=float(100 * (g.accuracy.max() - g.accuracy.min()))))
    return pd.DataFrame(rows)


def sensitivity_table(results: dict, params: dict) -> pd.DataFrame:
    lam_h = hyper_lambdas(params)
    s = sensitivity(results, params).groupby("method", sort=False)[["kl_decades", "sigma_decades",
                                                                     "acc_range_pp"]].mean()
    s.index = [METHOD_LABELS[m] for m in s.index]
    return s.rename(columns={
        "kl_decades": f"log10 KL(λ={fmt_lam(lam_h[0])}) / KL(λ={fmt_lam(lam_h[-1])})",
        "sigma_decades": f"log10 σ(λ={fmt_lam(lam_h[-1])}) / σ(λ={fmt_lam(lam_h[0])})",
        "acc_range_pp": "accuracy range over λ (pp)"}).rename_axis("model").round(3)


def cost_to_quality(results: dict, params: dict) -> pd.DataFrame:
    """Counted training work per hypernetwork and seed, in network passes (one forward and backward
    pass of the base network on one minibatch): the hypernetwork's own, the separate models' full
    budget for the covered λ, and the passes the separate models needed to reach the hypernetwork's
    unpruned test accuracy at each covered λ (evaluated every ``eval_every_steps``; a model that never
    reaches it is charged its full budget, which favours the hypernetwork's side of the comparison
    no more than the budget allows), with the number of λ where that happened (``censored``)."""
    lam_h = hyper_lambdas(params)
    t, m, tr = results["timing"], results["models"], results["traces"]
    rows = []
    for meth in ("linear", "lowrank"):
        for seed in sorted(t.seed.unique()):
            hp = int(t[(t.method == meth) & (t.seed == seed)].passes.iloc[0])
            sep_t = t[(t.method == "separate") & (t.seed == seed) & t.lam.isin(lam_h)]
            full = int(sep_t.passes.sum())
            reach, censored = 0, 0
            for lam in lam_h:
                target = float(m[(m.method == meth) & (m.seed == seed) & (m.lam == lam)].accuracy.iloc[0])
                trace = tr[(tr.seed == seed) & (tr.lam == lam)].sort_values("step")
                st = H.steps_to_reach(list(zip(trace.step, trace.accuracy)), target)
                if st is None:
                    censored += 1
                    st = int(sep_t[sep_t.lam == lam].passes.iloc[0])
                reach += st
            rows.append(dict(method=meth, seed=seed, hyper_passes=hp, separate_full_passes=full,
                             separate_to_quality_passes=reach, censored=censored))
    return pd.DataFrame(rows)


def cost_table(results: dict, params: dict) -> pd.DataFrame:
    c = cost_to_quality(results, params).groupby("method", sort=False).mean(numeric_only=True).drop(columns="seed")
    c.index = [METHOD_LABELS[m] for m in c.index]
    return c.rename(columns={"hyper_passes": "hypernetwork", "separate_full_passes": "separate, full budget",
                             "separate_to_quality_passes": "separate, to the hypernetwork's accuracy",
                             "censored": "λ never reaching it (mean)"}).rename_axis("network passes").round(1)


def timing_table(timing: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Training wall time and counted work per seed (mean over seeds): all separate models, the
    separate models for the lambdas the hypernetworks cover, and each hypernetwork."""
    lam_h = hyper_lambdas(params)
    sep = timing[timing.method == "separate"]
    rows = [dict(what=f"separate models, all {len(params['lambdas'])} λ of the grid",
                 models=len(params["lambdas"]), epochs_each=params["epochs"],
                 passes=sep.groupby("seed").passes.sum().mean(), seconds=sep.groupby("seed").seconds.sum().mean()),
            dict(what=f"separate models, the {len(lam_h)} λ a hypernetwork covers", models=len(lam_h),
                 epochs_each=params["epochs"], passes=sep[sep.lam.isin(lam_h)].groupby("seed").passes.sum().mean(),
                 seconds=sep[sep.lam.isin(lam_h)].groupby("seed").seconds.sum().mean())]
    for m in ("linear", "lowrank"):
        h = timing[timing.method == m]
        rows.append(dict(what=METHOD_LABELS[m] + " (a continuum of λ)", models=1, epochs_each=params["hyper_epochs"],
                         passes=h.passes.mean(), seconds=h.seconds.mean()))
    return (pd.DataFrame(rows).set_index("what").rename_axis("training").round({"seconds": 1, "passes": 0})
            .rename(columns={"epochs_each": "epochs each", "passes": "network passes", "seconds": "wall time (s)"}))


def prior_table(results: dict, params: dict) -> pd.DataFrame:
    """The prior-variance sweep (mean over seeds): unpruned accuracy, sigma, KL per parameter and the
    one-shot density-pruning drop at ``claim_fraction``."""
    cf = params["claim_fraction"]
    pm, pc = results["prior_models"], results["prior_curves"]
    pc = pc[(pc.criterion == "density") & (pc.stage == "one-shot")]
    base = pc[pc.fraction == 0].set_index(["prior_variance", "seed"]).accuracy
    at = pc[np.isclose(pc.fraction, cf)].set_index(["prior_variance", "seed"]).accuracy
    drop = (100 * (base - at)).groupby(level="prior_variance").mean()
    t = pm.groupby("prior_variance")[["accuracy", "median_sigma", "sigma_iqr", "kl_per_param"]].mean()
    t["accuracy"] *= 100
    t[f"drop at {100 * cf:.0f}% (pp)"] = drop
    return t.rename(columns={"accuracy": "test accuracy (%)", "median_sigma": "median σ", "sigma_iqr": "IQR of σ",
                             "kl_per_param": "KL per parameter (nats)"}).rename_axis("prior variance").round(4)


def fmt_lam(lam: float) -> str:
    return f"{lam:g}"


DECK_FIGURE = "slide 'График зависимости точности классификации от процента удалённых параметров' and 'Выводы', item 1"
DECK_HYPER = "slides 'Сравнение базовой модели с ... гиперсетью' and 'Выводы', item 2"
DECK_SIMILAR = "slides 'Сравнение базовой модели с ... гиперсетью' and 'Выводы', items 2-3"


def claims(results: dict, params: dict) -> list:
    """The report's claims (kind ``report``), our expectations (``ours``), our per-seed measurements and
    verdicts (see :mod:`paramspace.claims`)."""
    from ..claims import paired_claim

    curves, models = results["curves"], results["models"]
    cf, tol, sim = params["claim_fraction"], params["drop_tol_pp"], params["similar_tol_pp"]
    prof = params["profile"]
    out = []
    drops = drop_at(curves, cf)
    for lam in params["lambdas"]:
        d = drops[drops.lam == lam].sort_values("seed")
        if lam not in (0.0, 0.1):
            out.append(paired_claim(
                f"λ = {fmt_lam(lam)}, separate model: removing {100 * cf:.0f}% of the weights by density "
                f"costs no significant accuracy (number: minus the drop in pp; our tolerance {tol:g} pp)",
                "≈80% removable without significant loss, for every λ except 0 and 0.1 (figure)",
                (-d.drop_pp).to_numpy(), d.seed.to_numpy(), prof, fmt="{:+.2f} pp", kind="report",
                deck=DECK_FIGURE, tolerance=tol))
        else:
            out.append(paired_claim(
                f"λ = {fmt_lam(lam)}, separate model: removing {100 * cf:.0f}% of the weights by density "
                f"costs a significant loss, more than {tol:g} pp (number: drop minus {tol:g} pp)",
                "the exception: λ = 0 and 0.1 lose accuracy (figure)", (d.drop_pp - tol).to_numpy(),
                d.seed.to_numpy(), prof, fmt="{:+.2f} pp", kind="report", deck=DECK_FIGURE))
    exc = [lam for lam in params["lambdas"] if lam in (0.0, 0.1)]
    rest = [lam for lam in params["lambdas"] if lam not in (0.0, 0.1)]
    if exc and rest:
        per = drops.pivot_table(index="seed", columns="lam", values="drop_pp")
        diff = per[exc].mean(axis=1) - per[rest].mean(axis=1)
        out.append(paired_claim(
            f"The exception is an exception: at {100 * cf:.0f}% removed by density, the separate models with "
            f"λ ∈ {{{', '.join(map(fmt_lam, exc))}}} lose more accuracy than those with the other λ (number: mean drop "
            f"of the former minus that of the latter, pp)",
            "λ = 0 and 0.1 lose accuracy, the other λ do not (figure)", diff.to_numpy(), diff.index.to_numpy(),
            prof, fmt="{:+.2f} pp", kind="report", deck=DECK_FIGURE))
    lam_h = hyper_lambdas(params)
    lams = ", ".join(map(fmt_lam, lam_h))
    auc = curve_auc_pp(curves).pivot_table(index=["lam", "seed"], columns="method", values="auc_pp")
    for m in ("linear", "lowrank"):
        a = auc.loc[lam_h]
        gap = (a[m] - a["separate"]).abs().groupby(level="seed").mean()
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} gives pruning curves similar to the separate models: mean over "
            f"λ ∈ {{{lams}}} of |difference of the areas under the one-shot curves| (number: minus that mean, pp; "
            f"our tolerance {sim:g} pp)",
            "similar results, similar behaviour under pruning (figures)", (-gap).to_numpy(), gap.index.to_numpy(),
            prof, fmt="{:+.2f} pp", kind="report", deck=DECK_SIMILAR, tolerance=sim))
    acc = models.pivot_table(index=["lam", "seed"], columns="method", values="accuracy").loc[lam_h]
    for m in ("linear", "lowrank"):
        loss = (100 * (acc["separate"] - acc[m])).groupby(level="seed").mean()
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} loses some quality: unpruned test accuracy of the separate model minus "
            f"the hypernetwork's, mean over λ ∈ {{{lams}}} (pp)",
            "“despite the loss in quality” (Выводы, item 2)", loss.to_numpy(), loss.index.to_numpy(), prof,
            fmt="{:+.2f} pp", kind="report", deck="slide 'Выводы', item 2"))
    cost = cost_to_quality(results, params)
    for m in ("linear", "lowrank"):
        c = cost[cost.method == m].sort_values("seed")
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} costs less than separate models of the same quality: 1 − (its network passes) "
            f"/ (passes the separate models for λ ∈ {{{lams}}} needed to reach its unpruned accuracy) "
            f"[counted work, not wall time; at equal epochs the two budgets are equal by construction, "
            f"{params['lambdas_per_batch']} λ per batch = {len(lam_h)} models]",
            "similar results at lower computational cost (Выводы, item 2)",
            (1 - c.hyper_passes / c.separate_to_quality_passes).to_numpy(), c.seed.to_numpy(), prof,
            fmt="{:+.2f}", kind="report", deck="slide 'Выводы', item 2"))
    sens = sensitivity(results, params)
    sep_s = sens[sens.method == "separate"].set_index("seed").kl_decades
    for m in ("linear", "lowrank"):
        h = sens[sens.method == m].set_index("seed").kl_decades.reindex(sep_s.index)
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} learned complexity control: its λ-sensitivity, log10 of KL per parameter at "
            f"λ = {fmt_lam(lam_h[0])} over that at λ = {fmt_lam(lam_h[-1])}, is at least half the separate models' "
            f"(number: hypernetwork's minus half the separate models')",
            "— (implied by the method: G(λ) should track the optimum for each λ)",
            (h - 0.5 * sep_s).to_numpy(), sep_s.index.to_numpy(), prof, fmt="{:+.2f}", kind="ours"))
    dvm = []
    for lam in params["lambdas"]:
        a_d = curve_auc_pp(curves[(curves.method == "separate") & (curves.lam == lam)], criterion="density")
        a_m = curve_auc_pp(curves[(curves.method == "separate") & (curves.lam == lam)], criterion="magnitude")
        dvm.append((lam, a_d.set_index("seed").auc_pp - a_m.set_index("seed").auc_pp))
    best = max(dvm, key=lambda t: t[1].mean())
    allv = pd.concat([v for _, v in dvm], axis=1).mean(axis=1)
    out.append(paired_claim(
        f"Density pruning beats magnitude pruning of the same separate models: area under the one-shot curve, "
        f"density minus magnitude, mean over all λ (pp; largest at λ = {fmt_lam(best[0])}: "
        f"{best[1].mean():+.2f} pp)", "— (not stated; the reason to prune by density)", allv.to_numpy(),
        allv.index.to_numpy(), prof, fmt="{:+.2f} pp", kind="ours"))
    return out


def discussion_markdown(results: dict, ledger: list, params: dict) -> str:
    """Bullets with this run's numbers for the discussion (so the text never states stale numbers)."""
    curves, models = results["curves"], results["models"]
    cf = params["claim_fraction"]
    d = drop_at(curves, cf).groupby("lam").drop_pp.agg(["mean", "std"])
    sep = models[models.method == "separate"].groupby("lam")[["accuracy", "median_sigma", "sigma_iqr",
                                                               "rank_corr"]].mean()
    lines = ["* **Separate models, one-shot.** Accuracy drop after removing "
             f"{100 * cf:.0f}% of the weights by density (mean ± sd over seeds, percentage points): "
             + "; ".join(f"λ = {fmt_lam(lam)}: {r['mean']:.2f} ± {0 if np.isnan(r['std']) else r['std']:.2f}"
                         for lam, r in d.iterrows()) + "."]
    dm = drop_at(curves, cf, criterion="magnitude").groupby("lam").drop_pp.mean()
    lines.append(f"* **Magnitude pruning** of the same models loses, at {100 * cf:.0f}%: "
                 + "; ".join(f"λ = {fmt_lam(lam)}: {v:.2f}" for lam, v in dm.items()) + " pp.")
    lines.append("* **Posterior width and ranking**: "
                 + "; ".join(f"λ = {fmt_lam(lam)}: {100 * r.accuracy:.1f}%, median σ {r.median_sigma:.3g} "
                             f"(IQR {r.sigma_iqr:.3g}), rank corr. {r.rank_corr:.3f}"
                             for lam, r in sep.iterrows()) + ".")
    if params["finetune_steps"] > 0:
        dft = drop_at(curves, cf, stage="fine-tuned").groupby("lam").drop_pp.mean()
        lines.append(f"* **After fine-tuning** ({params['finetune_steps']} SGD steps), the drop at {100 * cf:.0f}% is "
                     + "; ".join(f"λ = {fmt_lam(lam)}: {v:.2f}" for lam, v in dft.items()) + " pp.")
    for m in ("linear", "lowrank"):
        dh = drop_at(curves, cf, method=m).groupby("lam").drop_pp.mean()
        hm = models[models.method == m].groupby("lam")[["accuracy", "median_sigma"]].mean()
        lines.append(f"* **{METHOD_LABELS[m].capitalize()}**: unpruned accuracy "
                     + ", ".join(f"{100 * a:.1f}%" for a in hm.accuracy) + ", median σ "
                     + ", ".join(f"{v:.3g}" for v in hm.median_sigma) + f" and drop at {100 * cf:.0f}% "
                     + ", ".join(f"{v:.2f}" for v in dh) + " pp for λ = "
                     + ", ".join(map(fmt_lam, hm.index)) + ".")
    sens = sensitivity(results, params).groupby("method", sort=False).kl_decades.mean()
    lines.append("* **λ-sensitivity** (decades by which the KL per parameter falls over the covered λ): "
                 + "; ".join(f"{METHOD_LABELS[m]} {v:.2f}" for m, v in sens.items()) + ".")
    cost = cost_to_quality(results, params).groupby("method", sort=False).mean(numeric_only=True)
    lines.append("* **Counted work** (network passes per seed): "
                 + "; ".join(f"{METHOD_LABELS[m]} {r.hyper_passes:.0f}, against {r.separate_to_quality_passes:.0f} "
                             f"for the separate models to reach its accuracy ({r.separate_full_passes:.0f} for their "
                             f"full budget; {r.censored:.1f} λ never reached it)" for m, r in cost.iterrows()) + ".")
    pt = prior_table(results, params)
    lines.append(f"* **Prior sweep** (λ = {fmt_lam(params['sweep_lambda'])}): "
                 + "; ".join(f"variance {pv:g}: accuracy {r.iloc[0]:.1f}%, median σ {r.iloc[1]:.3g}, "
                             f"KL per parameter {r.iloc[3]:.3g}, drop at {100 * cf:.0f}% {r.iloc[4]:.2f} pp"
                             for pv, r in pt.iterrows()) + ".")
    counted = [c for c in ledger if c.counted]
    counts = pd.Series([c.verdict for c in counted]).value_counts()
    lines.append("* **Verdicts of the report's claims**: " + ", ".join(f"{n} {v}" for v, n in counts.items())
                 + f" of {len(counted)}; our own rows ({sum(c.kind != 'report' for c in ledger)}) are not counted.")
    return "\n".join(lines)


TOLERANCES = {
    "drop_tol_pp": "largest accuracy drop (pp) at `claim_fraction` that still counts as “no significant loss”; "
                   "for λ = 0 and 0.1 a drop above it counts as the claimed significant loss",
    "similar_tol_pp": "largest mean absolute difference of the areas under the one-shot curves (pp) that counts as “similar”",
    "claim_fraction": "the fraction of weights removed at which the pruning claims are checked (the deck: ≈80%)",
}


# --- figures and page tables ------------------------------------------------------------------


def table_markdown(df: pd.DataFrame) -> str:
    """A data frame as a Markdown table with headers for every column (the index included)."""
    d = df.reset_index() if df.index.name or any(df.index.names) else df.copy()
    esc = lambda v: v.replace("|", "\\|") if isinstance(v, str) else v  # noqa: E731
    d.columns = [esc(str(c)) for c in d.columns]
    for c in d.columns:
        if not pd.api.types.is_numeric_dtype(d[c]):
            d[c] = d[c].map(esc)
    return d.to_markdown(index=False)


def magnitude_figure(curves: pd.DataFrame, lambdas, method: str = "separate"):
    """One panel per λ: one-shot test accuracy vs % of weights removed by relative density and by
    magnitude |μ| (mean ± sd over seeds) for the models of ``method``."""
    import matplotlib.pyplot as plt

    c = curves[(curves.method == method) & (curves.stage == "one-shot")]
    lams = [lam for lam in lambdas if lam in set(c.lam)]
    ncols = min(3, len(lams))
    nrows = -(-len(lams) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    colours = {"density": "#d62728", "magnitude": "#7f7f7f"}
    for ax, lam in zip(axes.flat, lams):
        for crit, col in colours.items():
            g = c[(c.lam == lam) & (c.criterion == crit)].groupby("fraction").accuracy.agg(["mean", "std"])
            sd = g["std"].fillna(0)
            ax.plot(100 * g.index, 100 * g["mean"], color=col, marker="o", ms=3,
                    label="relative density μ²/σ²" if crit == "density" else "magnitude |μ|")
            ax.fill_between(100 * g.index, 100 * (g["mean"] - sd), 100 * (g["mean"] + sd), color=col, alpha=0.2)
        ax.set_title(f"λ = {fmt_lam(lam)}")
        ax.tick_params(labelleft=True)
    for ax in axes[-1]:
        ax.set_xlabel("weights removed (%)")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in list(axes.flat)[len(lams):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, loc="lower left")
    fig.tight_layout()
    return fig


def evidence_figure(results: dict, lambdas):
    """Against λ (log axis): median posterior σ, KL per parameter, expected log-likelihood per example
    and the generalised evidence per example, for each hypernetwork along the fine grid (mean ± sd over
    seeds) and the separate models at their λ (points; λ = 0 is drawn at the left edge, open marker)."""
    import matplotlib.pyplot as plt

    gm, m = results["grid_models"], results["models"]
    colours = {"linear": "#1f77b4", "lowrank": "#ff7f0e", "separate": "#000000"}
    panels = [("median_sigma", "median posterior σ"), ("kl_per_param", "KL per parameter (nats)"),
              ("loglik", "E_q log p(y|x,w) per example"), ("evidence", "generalised evidence per example")]
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 7.0), sharex=True, squeeze=False)
    pos = [lam for lam in lambdas if lam > 0]
    left = min(pos) / 3 if pos else 1e-3
    for ax, (col, label) in zip(axes.flat, panels):
        for meth in ("linear", "lowrank"):
            g = gm[gm.method == meth].groupby("lam")[col].agg(["mean", "std"])
            sd = g["std"].fillna(0)
            ax.plot(g.index, g["mean"], color=colours[meth], label=METHOD_LABELS[meth])
            ax.fill_between(g.index, g["mean"] - sd, g["mean"] + sd, color=colours[meth], alpha=0.2)
        s = m[m.method == "separate"].groupby("lam")[col].agg(["mean", "std"])
        sp = s[s.index > 0]
        ax.errorbar(sp.index, sp["mean"], yerr=sp["std"].fillna(0), fmt="o", color=colours["separate"], capsize=3,
                    label=METHOD_LABELS["separate"])
        if 0.0 in s.index:
            ax.errorbar([left], [s.loc[0.0, "mean"]], yerr=[0 if np.isnan(s.loc[0.0, "std"]) else s.loc[0.0, "std"]],
                        fmt="o", mfc="white", color=colours["separate"], capsize=3, label="separate model, λ = 0")
        ax.set_xscale("log")
        if col in ("kl_per_param",):
            ax.set_yscale("log")
        if col == "evidence":
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel(label)
    for ax in axes[-1]:
        ax.set_xlabel("complexity coefficient λ (log scale)")
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def prior_figure(results: dict, params: dict):
    """Prior-variance sweep: one-shot accuracy vs % of weights removed by density (left) and the median
    posterior σ with its interquartile range (right), per prior variance (mean over seeds)."""
    import matplotlib.pyplot as plt

    pc, pm = results["prior_curves"], results["prior_models"]
    pc = pc[(pc.criterion == "density") & (pc.stage == "one-shot")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    cmap = plt.get_cmap("plasma")
    pvs = sorted(pc.prior_variance.unique())
    for i, pv in enumerate(pvs):
        g = pc[pc.prior_variance == pv].groupby("fraction").accuracy.agg(["mean", "std"])
        col = cmap(0.8 * i / max(1, len(pvs) - 1))
        a.plot(100 * g.index, 100 * g["mean"], marker="o", ms=3, color=col, label=f"prior variance {pv:g}")
        a.fill_between(100 * g.index, 100 * (g["mean"] - g["std"].fillna(0)), 100 * (g["mean"] + g["std"].fillna(0)),
                       color=col, alpha=0.2)
    a.set(xlabel="weights removed (%)", ylabel="test accuracy (%)",
          title=f"separate models, λ = {fmt_lam(params['sweep_lambda'])}")
    a.legend(frameon=False, loc="lower left")
    s = pm.groupby("prior_variance")[["median_sigma", "sigma_q25", "sigma_q75"]].mean()
    b.errorbar(s.index, s.median_sigma, yerr=[s.median_sigma - s.sigma_q25, s.sigma_q75 - s.median_sigma], fmt="o-",
               color="0.2", capsize=3)
    b.plot(s.index, np.sqrt(s.index), ls="--", color="0.6", label="prior standard deviation")
    b.axhline(params["init_sigma"], ls=":", color="0.6", label="initial σ")
    b.set(xscale="log", yscale="log", xlabel="prior variance", ylabel="posterior σ (median, quartiles)")
    b.legend(frameon=False)
    fig.tight_layout()
    return fig
