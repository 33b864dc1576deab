"""Report 2 (Grebenkova, Bakhteev, Strijov 2020): variational optimisation with complexity control.

A mean-field Gaussian network (:class:`paramspace.variational.BayesLinear` layers) is trained by
maximising the *generalised evidence*

    E_q log p(D | w) - lambda * KL(q(w) || p(w)),

per training example: minimise ``mean NLL + lambda * KL / n``.  ``lambda`` is the complexity
coefficient: ``lambda = 1`` is the usual ELBO, ``lambda = 0`` drops the KL term (the posterior
variances are then free), large ``lambda`` pulls the posterior towards the prior.

Two ways to get models for many ``lambda``:

* ``separate`` -- one network trained per ``lambda`` (SGD, :func:`paramspace.train.train` with
  :func:`paramspace.variational.kl_regularizer`);
* a **hypernetwork** ``G: lambda -> (mu, rho)`` of every variational parameter of the same network,
  trained once on ``lambda`` drawn log-uniformly from ``[lambda_min, lambda_max]`` (several per
  minibatch): :class:`LinearHyper` (``G(lambda) = t b2 + b3`` per parameter) and
  :class:`LowRankHyper` (``G(lambda) = (f(t) U1)(f(t) U2)^T + b1`` per weight matrix), where
  ``t = t(lambda)`` is ``log lambda`` rescaled to ``[0, 1]`` (:func:`encode_lambda`).

Every model is pruned by the relative density ``exp(-mu^2 / (2 sigma^2))`` of its weights (the
highest density, i.e. the smallest ``|mu| / sigma``, goes first) and its mean network evaluated,
one-shot and after a short fine-tuning of the pruned mean network.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from . import data as D, pruning, variational as V
from .metrics import quality
from .models import mlp
from .train import History, resolve_device, seed_everything, set_cpu_threads, train

METHODS = ("separate", "linear", "lowrank")
METHOD_LABELS = {"separate": "separate models (one per λ)", "linear": "linear hypernetwork",
                 "lowrank": "low-rank hypernetwork"}
STAGES = ("one-shot", "fine-tuned")


# --- the network and its loss -----------------------------------------------------------------


def prior_sigma(params: dict) -> float:
    return math.sqrt(params["prior_variance"])


def bayes_mlp(params: dict, in_dim: int = 784, out_dim: int = 10) -> nn.Sequential:
    """``in_dim -> hidden -> out_dim`` ReLU network of :class:`~paramspace.variational.BayesLinear` layers."""
    return mlp(in_dim, params["hidden"], out_dim, "relu", linear=V.BayesLinear,
               prior_sigma=prior_sigma(params), init_sigma=params["init_sigma"],
               local_reparam=params["local_reparam"])


def generalized_evidence_loss(out: torch.Tensor, y: torch.Tensor, kl: torch.Tensor, lam: float,
                              n_train: int) -> torch.Tensor:
    """Minus the generalised evidence per training example: ``mean NLL + lam * KL / n_train``."""
    if lam < 0 or n_train < 1:
        raise ValueError("lam must be >= 0 and n_train >= 1")
    return F.cross_entropy(out, y) + lam * kl / n_train


def kl_from_params(params: dict[str, torch.Tensor], prior_sigma: float) -> torch.Tensor:
    """``KL(q || p)`` of a set of generated variational parameters (``*_mu`` with ``*_rho``)."""
    total = None
    for name, mu in params.items():
        if name.endswith("_mu"):
            sigma = F.softplus(params[name[:-3] + "_rho"])
            kl = V.kl_gaussian_closed_form(mu, sigma, prior_sigma)
            total = kl if total is None else total + kl
    if total is None:
        raise ValueError("no variational parameters (names ending in _mu) given")
    return total


# --- lambda on a log scale --------------------------------------------------------------------


def encode_lambda(lam, lam_min: float, lam_max: float):
    """``t = (log lam - log lam_min) / (log lam_max - log lam_min)``: 0 at ``lam_min``, 1 at ``lam_max``."""
    if not 0 < lam_min < lam_max:
        raise ValueError(f"need 0 < lam_min < lam_max, got {lam_min}, {lam_max}")
    lo, hi = math.log(lam_min), math.log(lam_max)
    if isinstance(lam, torch.Tensor):
        return (torch.log(lam) - lo) / (hi - lo)
    if lam <= 0:
        raise ValueError(f"lambda must be > 0 on the log scale, got {lam}")
    return (math.log(lam) - lo) / (hi - lo)


def sample_lambdas(k: int, lam_min: float, lam_max: float, generator: torch.Generator | None = None) -> list[float]:
    """``k`` values of lambda drawn log-uniformly from ``[lam_min, lam_max]``."""
    u = torch.rand(k, generator=generator, dtype=torch.float64)
    return [float(v) for v in torch.exp(math.log(lam_min) + u * (math.log(lam_max) - math.log(lam_min)))]


# --- hypernetworks ----------------------------------------------------------------------------


class HyperNet(nn.Module):
    """Maps lambda to every variational parameter (``*_mu``, ``*_rho``) of a base network.

    The base network is kept only as the architecture run by :func:`torch.func.functional_call`
    with the generated parameters; its own parameters are not trained (and are not this module's).
    """

    kind = ""

    def __init__(self, base: nn.Module, lam_min: float, lam_max: float):
        super().__init__()
        encode_lambda(lam_min, lam_min, lam_max)  # validates the range
        self.lam_min, self.lam_max = float(lam_min), float(lam_max)
        self.__dict__["base"] = base  # not a submodule on purpose
        self.names = [n for n, _ in base.named_parameters()]
        self.shapes = {n: tuple(p.shape) for n, p in base.named_parameters()}

    @staticmethod
    def key(name: str) -> str:
        return name.replace(".", "__")

    def encode(self, lam) -> torch.Tensor:
        t = encode_lambda(lam, self.lam_min, self.lam_max)
        dev = next(self.parameters()).device
        return t.to(dev) if isinstance(t, torch.Tensor) else torch.tensor(t, device=dev)

    def generate(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, lam) -> dict[str, torch.Tensor]:
        """The base network's parameters at ``lam``."""
        return self.generate(self.encode(lam))

    def run(self, x: torch.Tensor, lam) -> torch.Tensor:
        """The base network's output on ``x`` with the parameters generated at ``lam``."""
        return functional_call(self.base, self(lam), (x,))

    @torch.no_grad()
    def model_at(self, lam) -> nn.Sequential:
        """A standalone copy of the base network holding the parameters generated at ``lam``."""
        m = copy.deepcopy(self.base)
        params = self(lam)
        for n, p in m.named_parameters():
            p.data = params[n].detach().clone().to(p.device)
        return m


class LinearHyper(HyperNet):
    """``G(lambda) = t(lambda) b2 + b3`` for every variational parameter (``b2``, ``b3`` shaped like it)."""

    kind = "linear"

    def __init__(self, base: nn.Module, lam_min: float, lam_max: float):
        super().__init__(base, lam_min, lam_max)
        params = dict(base.named_parameters())
        self.b2 = nn.ParameterDict({self.key(n): nn.Parameter(torch.zeros_like(params[n].detach()))
                                    for n in self.names})
        self.b3 = nn.ParameterDict({self.key(n): nn.Parameter(params[n].detach().clone()) for n in self.names})

    def generate(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t * self.b2[self.key(n)] + self.b3[self.key(n)] for n in self.names}


class LowRankHyper(HyperNet):
    """``G(lambda) = A(t) B(t)^T + b1`` per weight matrix, ``A = (f(t) U1)`` of shape ``out x r``,
    ``B = (f(t) U2)`` of shape ``in x r``; vectors (biases) get ``f(t) U + b1``.

    ``f(t) = tanh(a t + c)`` is a learned embedding of the encoded lambda in ``R^embed_dim``
    (``a``, ``c`` trained with the rest), so the lambda-dependent part of every weight matrix has
    rank at most ``rank``.
    """

    kind = "lowrank"

    def __init__(self, base: nn.Module, lam_min: float, lam_max: float, rank: int = 1, embed_dim: int = 8,
                 init_scale: float = 0.01, generator: torch.Generator | None = None):
        super().__init__(base, lam_min, lam_max)
        if rank < 1 or embed_dim < 1:
            raise ValueError("rank and embed_dim must be >= 1")
        self.rank, self.embed_dim = int(rank), int(embed_dim)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        params = dict(base.named_parameters())
        self.embed_a = nn.Parameter(2.0 * torch.randn(embed_dim, generator=g))
        self.embed_c = nn.Parameter(torch.randn(embed_dim, generator=g))
        self.b1 = nn.ParameterDict({self.key(n): nn.Parameter(params[n].detach().clone()) for n in self.names})
        self.U1, self.U2 = nn.ParameterDict(), nn.ParameterDict()
        for n in self.names:
            shape = self.shapes[n]
            if len(shape) == 2:
                out_f, in_f = shape
                self.U1[self.key(n)] = nn.Parameter(init_scale * torch.randn(embed_dim, out_f * rank, generator=g))
                self.U2[self.key(n)] = nn.Parameter(init_scale * torch.randn(embed_dim, in_f * rank, generator=g))
            elif len(shape) == 1:
                self.U1[self.key(n)] = nn.Parameter(init_scale * torch.randn(embed_dim, shape[0], generator=g))
            else:
                raise ValueError(f"parameter {n} has shape {shape}; only vectors and matrices are supported")

    def features(self, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.embed_a * t + self.embed_c)

    def generate(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(t)
        out = {}
        for n in self.names:
            k, shape = self.key(n), self.shapes[n]
            if len(shape) == 2:
                A = (f @ self.U1[k]).reshape(shape[0], self.rank)
                B = (f @ self.U2[k]).reshape(shape[1], self.rank)
                out[n] = A @ B.T + self.b1[k]
            else:
                out[n] = f @ self.U1[k] + self.b1[k]
        return out


def make_hyper(kind: str, base: nn.Module, params: dict, seed: int = 0) -> HyperNet:
    if kind == "linear":
        return LinearHyper(base, params["lambda_min"], params["lambda_max"])
    if kind == "lowrank":
        return LowRankHyper(base, params["lambda_min"], params["lambda_max"], rank=params["rank"],
                            embed_dim=params["embed_dim"], generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"kind must be 'linear' or 'lowrank', got {kind!r}")


def train_hypernet(hyper: HyperNet, data, *, epochs: int, lr: float, batch_size: int, lambdas_per_batch: int,
                   prior_sigma: float, clip: float = 0.0, seed: int = 0, device: str = "auto",
                   progress: bool = False, desc: str = "hypernetwork") -> History:
    """Minimise the generalised-evidence loss averaged over ``lambdas_per_batch`` values of lambda
    drawn log-uniformly per minibatch (plain SGD, like the separate models).  ``clip > 0`` clips the
    global gradient norm to ``clip`` (the bilinear low-rank term diverges under plain SGD at the
    learning rates that suit the separate models).  Returns the mean loss per epoch."""
    from tqdm import tqdm

    if epochs < 1 or batch_size < 1 or lr <= 0 or lambdas_per_batch < 1:
        raise ValueError("need epochs, batch_size, lambdas_per_batch >= 1 and lr > 0")
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    hyper.to(dev)
    base = hyper.base.to(dev)
    base.train()
    X, y = data.X_train.to(dev), data.y_train.to(dev)
    n = len(X)
    opt = torch.optim.SGD(hyper.parameters(), lr=lr)
    hist = History(quality_name="accuracy")
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False, mininterval=1.0):
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = X[idx], y[idx]
            loss = 0.0
            for lam in sample_lambdas(lambdas_per_batch, hyper.lam_min, hyper.lam_max, gen):
                p = hyper(lam)
                out = functional_call(base, p, (xb,))
                loss = loss + generalized_evidence_loss(out, yb, kl_from_params(p, prior_sigma), lam, n)
            loss = loss / lambdas_per_batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(hyper.parameters(), clip)
            opt.step()
            total += loss.item() * len(idx)
        hist.loss.append(total / n)
    base.eval()
    return hist


# --- pruning by relative density --------------------------------------------------------------


def relative_density(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``rho(w) = q(0) / q(mu) = exp(-mu^2 / (2 sigma^2))``: close to 1 when zero is a likely value."""
    return torch.exp(-mu**2 / (2 * sigma**2))


def weight_scores(bayes: nn.Module) -> pruning.Scores:
    """Keep-scores ``mu^2 / sigma^2 = -2 log rho`` of the weights (biases are never pruned).

    The score is a decreasing function of the relative density, so removing the lowest scores first
    is removing the highest densities first."""
    return {k: v for k, v in pruning.variational_scores(bayes).items() if k.endswith(".weight")}


def training_subset(data, n: int, seed: int = 0):
    """A copy of ``data`` whose training set is a seeded random ``n`` of its training examples."""
    import dataclasses

    if n >= len(data.X_train):
        return data
    idx = torch.randperm(len(data.X_train), generator=torch.Generator().manual_seed(seed))[:n]
    return dataclasses.replace(data, X_train=data.X_train[idx], y_train=data.y_train[idx])


def prune_curve(bayes: nn.Module, data, fractions, seed: int = 0, finetune_steps: int = 0,
                finetune_lr: float = 0.1, batch_size: int = 256, device: str = "auto") -> pd.DataFrame:
    """Test accuracy of the mean network after removing each fraction of the weights by density,
    one-shot and (``finetune_steps > 0``) after that many minibatch steps of SGD on the pruned mean
    network (pure NLL, one pass over a seeded random subset of the training set; the ``prune`` masks
    keep removed weights at zero)."""
    det = V.to_deterministic(bayes)
    scores = weight_scores(bayes)
    sub = training_subset(data, finetune_steps * batch_size, seed) if finetune_steps > 0 else None
    rows = []
    for f in fractions:
        m = pruning.prune_by_scores(det, scores, f, seed)
        rows.append(dict(fraction=f, stage="one-shot", accuracy=quality(m, data.X_test, data.y_test, data.task)))
        if sub is not None:
            train(m, sub, epochs=1, lr=finetune_lr, batch_size=batch_size, seed=seed,
                  device=device, optimizer="sgd", progress=False)
            rows.append(dict(fraction=f, stage="fine-tuned",
                             accuracy=quality(m, data.X_test, data.y_test, data.task)))
    return pd.DataFrame(rows)


@torch.no_grad()
def posterior_summary(bayes: nn.Module) -> dict:
    """Median posterior standard deviation of the weights and KL per parameter (prior of the layers)."""
    sig = torch.cat([layer.weight_sigma.reshape(-1) for layer in V.bayes_layers(bayes)])
    n = sum(p.numel() for p in V.to_deterministic(bayes).parameters())
    return dict(median_sigma=float(sig.median()), kl_per_param=float(V.kl_total(bayes)) / n)


# --- the experiment ---------------------------------------------------------------------------


def hyper_lambdas(params: dict) -> list[float]:
    """The lambdas of the grid that the hypernetworks cover (those in ``[lambda_min, lambda_max]``)."""
    return [lam for lam in params["lambdas"] if params["lambda_min"] <= lam <= params["lambda_max"]]


def _sync(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_params(params: dict) -> None:
    """Checks that involve several parameters (each one alone is validated by the profile)."""
    from .profiles import ProfileError

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


def _warm_up():
    """Import what the first optimiser step imports (``torch.optim`` pulls in ``torch._dynamo``, about
    a second), so that this one-off cost is not charged to the first timed model."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    (w**2).sum().backward()
    opt.step()


def configure_threads(params: dict) -> int:
    """``torch.set_num_threads(params["cpu_threads"])`` unless it is 0 (torch's default); returns the
    number of threads now in use.  Call it once, before any compute, so that the provenance footer
    records the thread count the run used."""
    return set_cpu_threads(params["cpu_threads"])


def run(params: dict, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The whole experiment, per seed: separate models for every lambda, both hypernetworks, pruning
    curves, accuracy along a fine lambda grid, and training wall times.

    Returns tidy data frames ``curves`` (method, seed, lam, stage, fraction, accuracy), ``grid``
    (method, seed, lam, fraction, accuracy), ``timing`` (method, seed, seconds, models, epochs) and
    ``models`` (method, seed, lam, accuracy, median_sigma, kl_per_param, final_loss).
    """
    from tqdm import tqdm

    check_params(params)
    dev = resolve_device(params["device"])
    ps = prior_sigma(params)
    fr = params["fractions"]
    ft = dict(finetune_steps=params["finetune_steps"], finetune_lr=params["lr"],
              batch_size=params["batch_size"], device=str(dev))
    lam_h = hyper_lambdas(params)
    grid = [float(v) for v in np.geomspace(params["lambda_min"], params["lambda_max"], params["n_lambda_grid"])]
    curves, grid_rows, timing, models = [], [], [], []
    _warm_up()

    def record(method, seed, lam, bayes, final_loss):
        c = prune_curve(bayes, ds, fr, seed, **ft)
        curves.extend(dict(method=method, seed=seed, lam=lam, **r) for r in c.to_dict("records"))
        acc0 = c[(c.stage == "one-shot") & (c.fraction == fr[0])].accuracy.iloc[0]
        models.append(dict(method=method, seed=seed, lam=lam, accuracy=acc0, final_loss=final_loss,
                           **posterior_summary(bayes)))

    jobs = [(s, m) for s in range(params["n_seeds"]) for m in METHODS]
    bar = tqdm(jobs, desc="seed x method", disable=not progress)
    ds = None
    for s, method in bar:
        seed = params["seed"] + s
        if method == "separate":
            ds = D.load_mnist(n_train=params["n_train"], n_test=params["n_test"], seed=seed)
        n = len(ds.X_train)
        if method == "separate":
            for lam in params["lambdas"]:
                seed_everything(seed)  # every lambda starts from the same initialisation
                model = bayes_mlp(params)
                _sync(dev)
                t0 = time.perf_counter()
                hist = train(model, ds, epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"],
                             seed=seed, device=str(dev), optimizer="sgd", progress=False,
                             regularizer=V.kl_regularizer(n, lam))
                _sync(dev)
                sec = time.perf_counter() - t0
                timing.append(dict(method=method, seed=seed, lam=lam, seconds=sec, epochs=params["epochs"]))
                record(method, seed, lam, model, hist.loss[-1])
            continue
        seed_everything(seed)
        base = bayes_mlp(params)  # the same initial means and variances as the separate models
        hyper = make_hyper(method, base, params, seed)
        _sync(dev)
        t0 = time.perf_counter()
        hist = train_hypernet(hyper, ds, epochs=params["hyper_epochs"], lr=params["lr"],
                              batch_size=params["batch_size"], lambdas_per_batch=params["lambdas_per_batch"],
                              prior_sigma=ps, clip=params["hyper_clip"], seed=seed, device=str(dev))
        _sync(dev)
        timing.append(dict(method=method, seed=seed, lam=float("nan"), seconds=time.perf_counter() - t0,
                           epochs=params["hyper_epochs"]))
        for lam in lam_h:
            record(method, seed, lam, hyper.model_at(lam), hist.loss[-1])
        for lam in grid:
            bayes = hyper.model_at(lam)
            det, sc = V.to_deterministic(bayes), weight_scores(bayes)
            for f in (0.0, params["claim_fraction"]):
                acc = quality(pruning.prune_by_scores(det, sc, f, seed), ds.X_test, ds.y_test, ds.task)
                grid_rows.append(dict(method=method, seed=seed, lam=lam, fraction=f, accuracy=acc))
    return {k: pd.DataFrame(v) for k, v in dict(curves=curves, grid=grid_rows, timing=timing,
                                                 models=models).items()}


def describe(params: dict) -> str:
    sub = params["n_train"] < 60000 or params["n_test"] < 10000
    return (f"MNIST ({params['n_train']} training and {params['n_test']} test images"
            f"{', a new random subsample per seed' if sub else ''}), "
            f"network 784-{'-'.join(map(str, params['hidden']))}-10 (ReLU), prior N(0, {params['prior_variance']}), "
            f"initial σ = {params['init_sigma']}, {'local reparameterisation' if params['local_reparam'] else 'weight sampling'}; "
            f"plain SGD (lr {params['lr']}, batch {params['batch_size']}), {params['epochs']} epochs per separate model and "
            f"{params['hyper_epochs']} per hypernetwork ({params['lambdas_per_batch']} values of λ per batch, "
            f"log-uniform on [{params['lambda_min']:g}, {params['lambda_max']:g}]); low-rank hypernetwork of rank "
            f"{params['rank']} with an embedding of dimension {params['embed_dim']} of λ; "
            f"hypernetwork gradients clipped to norm {params['hyper_clip']:g}; "
            f"fine-tuning {params['finetune_steps']} SGD steps; {params['n_seeds']} seed(s)")


# --- tables, claims, discussion ---------------------------------------------------------------


def model_table(models: pd.DataFrame) -> pd.DataFrame:
    """Per model and lambda, mean over seeds: unpruned test accuracy (%), median posterior sigma of the
    weights and KL per parameter."""
    return (models.assign(accuracy=100 * models.accuracy)
            .groupby(["method", "lam"], sort=False)[["accuracy", "median_sigma", "kl_per_param"]].mean()
            .rename(columns={"accuracy": "test accuracy (%)", "median_sigma": "median σ of the weights",
                             "kl_per_param": "KL per parameter (nats)"})
            .rename_axis(["model", "λ"]).round(3))


def drop_curves(curves: pd.DataFrame, stage: str = "one-shot") -> pd.DataFrame:
    """``curves`` of one stage with a column ``drop``: unpruned accuracy minus accuracy (same model and seed)."""
    c = curves[curves.stage == stage].copy()
    ref = c[c.fraction == c.fraction.min()].set_index(["method", "lam", "seed"]).accuracy
    c["drop"] = ref.reindex(list(zip(c.method, c.lam, c.seed))).to_numpy() - c.accuracy.to_numpy()
    return c


def timing_table(timing: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Training wall time per seed (mean over seeds): all separate models, the separate models
    for the lambdas the hypernetworks cover, and each hypernetwork."""
    lam_h = hyper_lambdas(params)
    sep = timing[timing.method == "separate"]
    rows = [dict(what=f"separate models, all {len(params['lambdas'])} λ of the grid",
                 models=len(params["lambdas"]), epochs_each=params["epochs"],
                 seconds=sep.groupby("seed").seconds.sum().mean()),
            dict(what=f"separate models, the {len(lam_h)} λ a hypernetwork covers", models=len(lam_h),
                 epochs_each=params["epochs"],
                 seconds=sep[sep.lam.isin(lam_h)].groupby("seed").seconds.sum().mean())]
    for m in ("linear", "lowrank"):
        rows.append(dict(what=METHOD_LABELS[m] + " (a continuum of λ)", models=1, epochs_each=params["hyper_epochs"],
                         seconds=timing[timing.method == m].seconds.mean()))
    return pd.DataFrame(rows).set_index("what").round({"seconds": 1})


def drop_at(curves: pd.DataFrame, fraction: float, method: str = "separate", stage: str = "one-shot") -> pd.DataFrame:
    """Accuracy drop in percentage points, unpruned minus ``fraction`` removed, per (lam, seed)."""
    c = curves[(curves.method == method) & (curves.stage == stage)]
    base = c[c.fraction == c.fraction.min()].set_index(["lam", "seed"]).accuracy
    at = c[np.isclose(c.fraction, fraction)].set_index(["lam", "seed"]).accuracy
    if at.empty:
        raise ValueError(f"fraction {fraction} is not in the pruning grid")
    return (100 * (base - at)).rename("drop_pp").reset_index()


def curve_auc_pp(curves: pd.DataFrame, stage: str = "one-shot") -> pd.DataFrame:
    """Area under accuracy (%) vs fraction removed, normalised by the fraction range, per (method, lam, seed)."""
    rows = []
    for (m, lam, s), g in curves[curves.stage == stage].groupby(["method", "lam", "seed"]):
        g = g.sort_values("fraction")
        rows.append(dict(method=m, lam=lam, seed=s, auc_pp=100 * pruning.curve_auc(g.fraction, g.accuracy)))
    return pd.DataFrame(rows)


def fmt_lam(lam: float) -> str:
    return f"{lam:g}"


def claims(results: dict, params: dict) -> list:
    """The report's claims, our per-seed measurements and verdicts (see :mod:`paramspace.claims`)."""
    from .claims import paired_claim

    curves, timing = results["curves"], results["timing"]
    cf, tol, sim = params["claim_fraction"], params["drop_tol_pp"], params["similar_tol_pp"]
    out = []
    drops = drop_at(curves, cf)
    for lam in params["lambdas"]:
        d = drops[drops.lam == lam].sort_values("seed")
        robust = lam not in (0.0, 0.1)
        diffs = (tol - d.drop_pp) if robust else (d.drop_pp - tol)
        what = "loses at most" if robust else "loses more than"
        out.append(paired_claim(
            f"λ = {fmt_lam(lam)}, separate model: removing {100 * cf:.0f}% of the weights by density {what} "
            f"{tol:g} pp of test accuracy (number: {'' if robust else 'drop minus '}{tol:g} pp"
            f"{' minus drop' if robust else ''})",
            f"{'no significant loss' if robust else 'significant loss'} (figure)", diffs.to_numpy(),
            d.seed.to_numpy(), params["profile"], fmt="{:+.2f} pp"))
    auc = curve_auc_pp(curves).pivot_table(index=["lam", "seed"], columns="method", values="auc_pp")
    lam_h = hyper_lambdas(params)
    for m in ("linear", "lowrank"):
        a = auc.loc[lam_h]
        gap = (a[m] - a["separate"]).abs().groupby(level="seed").mean()
        out.append(paired_claim(
            f"The {METHOD_LABELS[m]} gives pruning curves similar to separate models: mean over "
            f"λ ∈ {{{', '.join(map(fmt_lam, lam_h))}}} of |area difference| at most {sim:g} pp "
            f"(number: {sim:g} pp minus that mean)",
            "similar results (figures)", (sim - gap).to_numpy(), gap.index.to_numpy(), params["profile"],
            fmt="{:+.2f} pp"))
    sep = timing[(timing.method == "separate") & timing.lam.isin(lam_h)].groupby("seed").seconds.sum()
    for m in ("linear", "lowrank"):
        hyp = timing[timing.method == m].set_index("seed").seconds.reindex(sep.index)
        out.append(paired_claim(
            f"Training the {METHOD_LABELS[m]} costs less wall time than training the {len(lam_h)} covered λ "
            f"separately (number: 1 - hypernetwork time / separate time)",
            "lower cost", (1 - hyp / sep).to_numpy(), sep.index.to_numpy(), params["profile"], fmt="{:+.2f}"))
    return out


def discussion_markdown(results: dict, ledger: list, params: dict) -> str:
    """Bullets with this run's numbers for the discussion (so the text never states stale numbers)."""
    curves, models = results["curves"], results["models"]
    cf = params["claim_fraction"]
    d = drop_at(curves, cf).groupby("lam").drop_pp.agg(["mean", "std"])
    sep = models[models.method == "separate"].groupby("lam")[["accuracy", "median_sigma"]].mean()
    lines = ["* **Separate models, one-shot.** Accuracy drop after removing "
             f"{100 * cf:.0f}% of the weights (mean ± sd over seeds, percentage points): "
             + "; ".join(f"λ = {fmt_lam(lam)}: {r['mean']:.2f} ± {0 if np.isnan(r['std']) else r['std']:.2f}"
                         for lam, r in d.iterrows()) + "."]
    lines.append("* **Unpruned accuracy and posterior width** of the separate models: "
                 + "; ".join(f"λ = {fmt_lam(lam)}: {100 * r.accuracy:.1f}%, median σ {r.median_sigma:.3g}"
                             for lam, r in sep.iterrows()) + ".")
    small = sep[sep.index <= 1.0]
    if len(small):
        change = 100 * (small.median_sigma / params["init_sigma"] - 1).abs().max()
        lines.append(f"* For the separate models with λ ≤ 1 the median posterior σ ends within {change:.1f}% of its "
                     f"initial value {params['init_sigma']:g}.")
    if params["finetune_steps"] > 0:
        dft = drop_at(curves, cf, stage="fine-tuned").groupby("lam").drop_pp.mean()
        lines.append(f"* **After fine-tuning** ({params['finetune_steps']} SGD steps), the drop at {100 * cf:.0f}% is "
                     + "; ".join(f"λ = {fmt_lam(lam)}: {v:.2f}" for lam, v in dft.items()) + " pp.")
    for m in ("linear", "lowrank"):
        dh = drop_at(curves, cf, method=m).groupby("lam").drop_pp.mean()
        acc = models[models.method == m].groupby("lam").accuracy.mean()
        lines.append(f"* **{METHOD_LABELS[m].capitalize()}**: unpruned accuracy "
                     + ", ".join(f"{100 * a:.1f}%" for a in acc) + f" and drop at {100 * cf:.0f}% "
                     + ", ".join(f"{v:.2f}" for v in dh) + " pp for λ = "
                     + ", ".join(map(fmt_lam, acc.index)) + ".")
    lam_h = hyper_lambdas(params)
    sep_acc = models[(models.method == "separate") & models.lam.isin(lam_h)].groupby("lam").accuracy.mean()
    for m in ("linear", "lowrank"):
        dh = drop_at(curves, cf, method=m).groupby("lam").drop_pp.mean()
        diff = 100 * (models[models.method == m].groupby("lam").accuracy.mean() - sep_acc)
        robust = bool((dh <= params["drop_tol_pp"]).all())
        lower = ", ".join(fmt_lam(lam) for lam, v in diff.items() if v < 0) or "none"
        higher = ", ".join(fmt_lam(lam) for lam, v in diff.items() if v >= 0) or "none"
        lines.append(f"* The {METHOD_LABELS[m]}'s models {'all' if robust else 'do not all'} lose at most "
                     f"{params['drop_tol_pp']:g} pp at {100 * cf:.0f}% removed; before pruning their accuracy differs "
                     f"from that of the separate model with the same λ by {diff.abs().mean():.2f} pp on average "
                     f"(lower for λ ∈ {{{lower}}}, higher for λ ∈ {{{higher}}}), which is what separates the curves.")
    counts = pd.Series([c.verdict for c in ledger]).value_counts()
    lines.append("* **Verdicts**: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(ledger)} claims.")
    return "\n".join(lines)
