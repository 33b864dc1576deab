"""The report contract's first half: parameters (:class:`Param`), reports (:class:`Report`), profiles,
and the validation that runs before any compute (types, collection-wide bounds, each parameter's rule,
then the report's rules across parameters).

Each report module in :mod:`paramspace.reports` declares ``REPORT = Report(...)`` with its parameters
and its ``smoke`` / ``book`` / ``paper`` profiles; every profile gives a complete value for every
parameter.  The ``book`` values are also the defaults of the notebook's ``parameters`` cell (a test
keeps the two equal).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "book", "paper")
DEVICES = ("auto", "cpu", "cuda")

# Bounds every value must respect, whatever its report (checked before a report's own rule):
SEED_LIMIT = 2**32  # seeds are below 2**32 (numpy's and torch's seeding accept no more)
EPOCH_CEILING = 10_000  # any parameter named *epoch* is at most this
INT_CEILING = 10**9  # any other integer lies in [-INT_CEILING, INT_CEILING]
FLOAT_CEILING = 1e12  # any float is finite with |x| <= FLOAT_CEILING


class ProfileError(ValueError):
    """Unknown report, profile or parameter, or a value of the wrong type or range."""


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a 400-digit number stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}...({len(text)} chars)"


def _bounds_problem(name: str, value: Any) -> str | None:
    """Why ``value`` breaks the collection-wide bounds (non-finite or huge numbers, seeds of 2**32 or
    more, epochs over :data:`EPOCH_CEILING`, a list naming one item twice), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return "must be a finite number"
        if abs(value) > FLOAT_CEILING:
            return f"must be a number of magnitude at most {FLOAT_CEILING:g}"
    elif isinstance(value, int):
        if name == "seed":
            return None if 0 <= value < SEED_LIMIT else "must be an integer in [0, 2**32)"
        if "epoch" in name and value > EPOCH_CEILING:
            return f"must be at most {EPOCH_CEILING} (the ceiling on epochs)"
        if abs(value) > INT_CEILING:
            return f"must be an integer of magnitude at most {INT_CEILING:g}"
    elif isinstance(value, (list, tuple)):
        for x in value:
            problem = _bounds_problem(name, x)
            if problem:
                return f"has an element {_short(x)} that {problem}"
        names = [x for x in value if isinstance(x, str)]
        if len(set(names)) != len(names):
            twice = sorted({x for x in names if names.count(x) > 1})
            return f"names {twice} more than once (each item at most once)"
    return None


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
            if abs(value) > INT_CEILING:
                raise ProfileError(f"{report}: parameter {name!r} = {_short(value)} is invalid: must be a number "
                                   f"of magnitude at most {INT_CEILING:g}")
            value, ok = float(value), True
        if list in types and isinstance(value, tuple):
            value, ok = list(value), True
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            rule = f": {self.rule}" if self.rule else ""
            raise ProfileError(f"{report}: parameter {name!r} must be {names}{rule}; got {type(value).__name__} "
                               f"{_short(value)}")
        problem = _bounds_problem(name, value)
        if problem:
            raise ProfileError(f"{report}: parameter {name!r} = {_short(value)} is invalid: it {problem}")
        if self.check is not None and not self.check(value):
            raise ProfileError(f"{report}: parameter {name!r} = {_short(value)} is invalid: must be {self.rule}")
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


def subset_of(options: tuple, help: str) -> Param:
    """A non-empty list of distinct values, each one of ``options``."""
    return Param(list, help, lambda v: len(v) >= 1 and len(set(v)) == len(v) and all(x in options for x in v),
                 f"a non-empty list of distinct values drawn from {options}")


def int_list(help: str) -> Param:
    return Param(list, help, lambda v: len(v) >= 1 and all(_number(x) and isinstance(x, int) and x >= 1 for x in v),
                 "a non-empty list of positive integers")


COMMON = {
    "profile": Param(str, "name of the profile these values came from", lambda v: v in PROFILES,
                     f"one of {PROFILES}"),
    "device": Param(str, "'auto' (CUDA if present), 'cpu' or 'cuda'",
                    lambda v: v in DEVICES or re.fullmatch(r"cuda:[0-9]{1,3}", v) is not None,
                    f"one of {DEVICES} or 'cuda:N' (N a device index)"),
    "seed": Param(int, "base random seed; seed s of n_seeds uses seed + s", lambda v: 0 <= v < SEED_LIMIT,
                  "an integer in [0, 2**32)"),
    "n_seeds": positive_int("number of independent repetitions (bands show their spread)"),
}


CPU_THREADS = Param(int, "torch CPU threads (0 = torch's default; 1 avoids stalls on shared cores)",
                    lambda v: v >= 0, "an integer >= 0")


@dataclass
class Report:
    name: str
    title: str
    author: str
    seed_id: str
    params: dict[str, Param]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    notebook: str = ""  # path relative to the repository root (or absolute); default notebooks/<name>.py
    claims: bool = True  # writes a claims ledger (<name>.claims.json) counted in the scorecard
    # the report's rules across parameters: takes the validated dict, raises ProfileError (a ValueError
    # is turned into one) when values do not fit together
    check: Callable[[dict[str, Any]], Any] | None = None

    def __post_init__(self):
        self.notebook = self.notebook or f"notebooks/{self.name}.py"



def check_across(rep: Report, values: dict[str, Any]) -> None:
    """Rules that involve several parameters: the collection's own (seeds stay below 2**32) and the
    report's (``rep.check``).  Raises :class:`ProfileError` naming the report."""
    if "seed" in values and "n_seeds" in values and values["seed"] + values["n_seeds"] > SEED_LIMIT:
        raise ProfileError(f"{rep.name}: seed + n_seeds = {values['seed'] + values['n_seeds']} must be at most "
                           "2**32 (seed s of n_seeds uses seed + s)")
    if rep.check is None:
        return
    try:
        rep.check(dict(values))
    except ProfileError:
        raise
    except ValueError as exc:
        raise ProfileError(f"{rep.name}: {exc}") from None


def validate(rep: Report, values: dict[str, Any]) -> dict[str, Any]:
    """Check that ``values`` gives every parameter of ``rep`` exactly once, with valid values (each
    alone: type, collection-wide bounds, its rule)."""
    unknown = sorted(set(values) - set(rep.params))
    if unknown:
        raise ProfileError(f"{rep.name}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    missing = [k for k in rep.params if k not in values]
    if missing:
        raise ProfileError(f"{rep.name}: missing parameter(s) {missing}")
    return {k: spec.validate(rep.name, k, values[k]) for k, spec in rep.params.items()}


def resolve_values(rep: Report, profile: str = "book", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated parameters of ``rep`` under ``profile`` with ``overrides`` applied: each value alone,
    then the rules across parameters (:func:`check_across`), all before any compute."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    values = copy.deepcopy(rep.profiles[profile])
    overrides = dict(overrides or {})
    if "profile" in overrides and overrides["profile"] != profile:
        raise ProfileError("set the profile with the profile argument, not as an override")
    unknown = sorted(set(overrides) - set(rep.params))
    if unknown:
        raise ProfileError(f"{rep.name}: unknown parameter(s) {unknown}; valid parameters: {', '.join(rep.params)}")
    values.update(overrides)
    values = validate(rep, values)
    check_across(rep, values)
    return values
