"""Named parameter profiles per report, validated before any compute.

Each report declares its parameters (type and a check) once in :data:`REPORTS`; each profile
(``smoke``, ``book``, ``paper``) gives a complete value for every one of them.  The ``book``
values are also the defaults written in the notebook's ``parameters`` cell (a test keeps the two
equal).  :func:`resolve` returns a validated copy of a profile with optional overrides.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "book", "paper")
DEVICES = ("auto", "cpu", "cuda")


class ProfileError(ValueError):
    """Unknown report, profile or parameter, or a value of the wrong type or range."""


@dataclass(frozen=True)
class Param:
    type: type | tuple
    help: str
    check: Callable[[Any], bool] | None = None
    rule: str = ""  # human-readable form of ``check``

    def validate(self, report: str, name: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if list in types and isinstance(value, tuple):
            value, ok = list(value), True
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            raise ProfileError(f"{report}: parameter {name!r} must be {names}, got {type(value).__name__} {value!r}")
        if self.check is not None and not self.check(value):
            raise ProfileError(f"{report}: parameter {name!r} = {value!r} is invalid: must be {self.rule}")
        return value


def _number(x: Any) -> bool:
    """An int or float list element, but not a bool (``True`` is an ``int`` in Python)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def positive_int(help: str) -> Param:
    return Param(int, help, lambda v: v >= 1, "an integer >= 1")


def positive_float(help: str) -> Param:
    return Param(float, help, lambda v: v > 0, "a number > 0")


def fraction_grid(help: str) -> Param:
    return Param(list, help,
                 lambda v: len(v) >= 2 and all(_number(x) and 0 <= x <= 1 for x in v)
                 and list(v) == sorted(v),
                 "an increasing list of at least two fractions in [0, 1]")


def int_list(help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and all(_number(x) and isinstance(x, int) and x >= 1 for x in v),
                 "a non-empty list of positive integers")


COMMON = {
    "profile": Param(str, "name of the profile these values came from", lambda v: v in PROFILES,
                     f"one of {PROFILES}"),
    "device": Param(str, "'auto' (CUDA if present), 'cpu' or 'cuda'",
                    lambda v: v in DEVICES or v.startswith("cuda:"), f"one of {DEVICES} or 'cuda:N'"),
    "seed": Param(int, "base random seed; seed s of n_seeds uses seed + s", lambda v: v >= 0, "an integer >= 0"),
    "n_seeds": positive_int("number of independent repetitions (bands show their spread)"),
}


@dataclass
class Report:
    name: str
    title: str
    author: str
    seed_id: str
    params: dict[str, Param]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    notebook: str = ""  # path relative to the repository root (or absolute); default notebooks/<name>.py

    def __post_init__(self):
        self.notebook = self.notebook or f"notebooks/{self.name}.py"


_RELEVANCE_DATASETS = ("wine", "boston", "synthetic")

RELEVANCE = Report(
    name="parameter_relevance",
    title="Relevance of neural network parameters: automatic pruning",
    author="A. V. Grabovoy (with O. Yu. Bakhteev and V. V. Strijov)",
    seed_id="004",
    params={
        **COMMON,
        "datasets": Param(list, "data sets to run",
                          lambda v: len(v) >= 1 and all(d in _RELEVANCE_DATASETS for d in v),
                          f"a non-empty list drawn from {_RELEVANCE_DATASETS}"),
        "hidden": int_list("hidden-layer widths of the MLP"),
        "epochs": positive_int("training epochs of the variational network"),
        "lr": positive_float("Adam learning rate"),
        "batch_size": positive_int("minibatch size"),
        "prior_sigma": positive_float("standard deviation of the Gaussian prior on each weight"),
        "kl_weight": Param(float, "weight of KL(q||p)/n in the loss (1 = the ELBO)", lambda v: v >= 0, "a number >= 0"),
        "synthetic_n": positive_int("rows of the synthetic data set (report: 10000)"),
        "synthetic_epochs": positive_int("training epochs on the synthetic data set (it has 40x more rows)"),
        "fractions": fraction_grid("fractions of parameters removed"),
        "belsley_steps": positive_int("eigen-decompositions in Belsley's removal (about P/steps parameters per step)"),
        "laplace_damping": positive_float("damping added to the Hessian before inverting it (Laplace covariance)"),
        "noise_fraction": Param(float, "fraction removed in the noise-stability figure",
                                lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "noise_sigmas": Param(list, "input-noise standard deviations",
                              lambda v: len(v) >= 2 and all(_number(x) and x >= 0 for x in v),
                              "a list of at least two non-negative numbers"),
        "noise_draws": positive_int("noise draws per input-noise level"),
    },
)

_grid = [round(i / 20, 2) for i in range(21)]
RELEVANCE.profiles = {
    "smoke": dict(profile="smoke", device="cpu", seed=0, n_seeds=2, datasets=list(_RELEVANCE_DATASETS),
                  hidden=[8], epochs=3, lr=0.01, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                  synthetic_n=400, synthetic_epochs=3, fractions=[0.0, 0.5, 1.0], belsley_steps=5, laplace_damping=0.001,
                  noise_fraction=0.5, noise_sigmas=[0.0, 0.5], noise_draws=3),
    "book": dict(profile="book", device="auto", seed=0, n_seeds=5, datasets=list(_RELEVANCE_DATASETS),
                 hidden=[16], epochs=200, lr=0.01, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                 synthetic_n=10000, synthetic_epochs=40, fractions=_grid, belsley_steps=100, laplace_damping=0.001,
                 noise_fraction=0.5, noise_sigmas=[0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0], noise_draws=20),
    "paper": dict(profile="paper", device="auto", seed=0, n_seeds=10, datasets=list(_RELEVANCE_DATASETS),
                  hidden=[32, 32], epochs=500, lr=0.005, batch_size=64, prior_sigma=1.0, kl_weight=1.0,
                  synthetic_n=10000, synthetic_epochs=200, fractions=[round(i / 50, 2) for i in range(51)], belsley_steps=400,
                  laplace_damping=0.001, noise_fraction=0.5,
                  noise_sigmas=[0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0], noise_draws=50),
}

REPORTS: dict[str, Report] = {r.name: r for r in (RELEVANCE,)}


def get_report(name: str) -> Report:
    if name not in REPORTS:
        raise ProfileError(f"unknown report {name!r}; valid reports: {', '.join(REPORTS)}")
    return REPORTS[name]


def validate(report: str, values: dict[str, Any]) -> dict[str, Any]:
    """Check that ``values`` gives every parameter of ``report`` exactly once, with valid values."""
    rep = get_report(report)
    unknown = sorted(set(values) - set(rep.params))
    if unknown:
        raise ProfileError(f"{report}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    missing = [k for k in rep.params if k not in values]
    if missing:
        raise ProfileError(f"{report}: missing parameter(s) {missing}")
    return {k: spec.validate(report, k, values[k]) for k, spec in rep.params.items()}


def resolve(report: str, profile: str = "book", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated parameters of ``report`` under ``profile``, with ``overrides`` applied."""
    rep = get_report(report)
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    values = copy.deepcopy(rep.profiles[profile])
    overrides = dict(overrides or {})
    if "profile" in overrides and overrides["profile"] != profile:
        raise ProfileError("set the profile with the profile argument, not as an override")
    unknown = sorted(set(overrides) - set(rep.params))
    if unknown:
        raise ProfileError(f"{report}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    values.update(overrides)
    return validate(report, values)


def params_from_namespace(report: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Pick ``report``'s parameters out of a notebook's globals and validate them."""
    rep = get_report(report)
    return validate(report, {k: namespace[k] for k in rep.params if k in namespace})
