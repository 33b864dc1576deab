"""The six reports, one module each, named like its notebook; the registry and the notebook set-up.

A report module declares ``REPORT`` (its parameters, profiles and rules across parameters, see
:mod:`.spec`) and the report contract the engine fans out:

- ``plan(P) -> list[dict]``: the independent runs of a parameter set ``P`` (e.g. one per data set and
  seed), each a plain dict that holds everything its run needs;
- ``execute(run) -> result``: one run, pure (everything it reads is in ``run``);
- ``summarize(P, results) -> dict``: tables, figure data and claims from the results, in plan order.

In one process, ``summarize(P, [execute(r) for r in plan(P)])`` is the whole report.  Only modules in
this package read parameter dicts; the method modules of :mod:`paramspace` take keyword arguments.
Report modules are imported on first use, so ``python -m paramspace show`` loads only the one it shows.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

from .spec import DEVICES, PROFILES, ProfileError, Report, resolve_values, validate, check_across

# The reports in the book's order (the leaderboard last: it compares methods of the five).
NAMES = ("metric_analysis", "variational_complexity", "importance_dropconnect", "frame_regularization",
         "parameter_relevance", "compression_leaderboard")


def module(name: str):
    """The report module ``paramspace.reports.<name>`` (a clear error for an unknown name)."""
    if name not in NAMES:
        raise ProfileError(f"unknown report {name!r}; valid reports: {', '.join(REPORTS)}")
    return importlib.import_module(f"{__name__}.{name}")


class _Registry(MutableMapping):
    """``REPORTS[name]`` is that report's :class:`Report`; iteration follows :data:`NAMES`, then any
    report registered at run time (``REPORTS[name] = Report(...)``, e.g. a test's fixture report)."""

    def __init__(self) -> None:
        self._extra: dict[str, Report] = {}

    def __getitem__(self, name: str) -> Report:
        if name in self._extra:
            return self._extra[name]
        if name not in NAMES:
            raise KeyError(name)
        return module(name).REPORT

    def __setitem__(self, name: str, rep: Report) -> None:
        if name in NAMES:
            raise KeyError(f"{name!r} is a report module of the collection; register another name")
        self._extra[name] = rep

    def __delitem__(self, name: str) -> None:
        del self._extra[name]

    def __iter__(self) -> Iterator[str]:
        return iter((*NAMES, *self._extra))

    def __len__(self) -> int:
        return len(NAMES) + len(self._extra)

    def __contains__(self, name: object) -> bool:
        return name in NAMES or name in self._extra


REPORTS: _Registry = _Registry()


def get_report(name: str) -> Report:
    if name not in REPORTS:
        raise ProfileError(f"unknown report {name!r}; valid reports: {', '.join(REPORTS)}")
    return REPORTS[name]


def resolve(report: str, profile: str = "book", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated parameters of ``report`` under ``profile``, with ``overrides`` applied: each value
    alone and then the rules across parameters, all before any compute."""
    return resolve_values(get_report(report), profile, overrides)


def params_from_namespace(report: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Pick ``report``'s parameters out of a notebook's globals and validate them (values and the
    rules across parameters)."""
    rep = get_report(report)
    values = validate(rep, {k: namespace[k] for k in rep.params if k in namespace})
    check_across(rep, values)
    return values


def setup(report: str, namespace: dict[str, Any]):
    """A notebook's one set-up call: ``P, prov = setup(REPORT, globals())`` validates the parameters cell
    (before any compute), starts the provenance record and sets the plot style."""
    from .. import plots
    from ..provenance import Provenance

    P = params_from_namespace(report, namespace)
    prov = Provenance(report, P)
    plots.setup()
    return P, prov


def run_all(report: str, P: dict[str, Any], **engine) -> Any:
    """``summarize(P, [execute(r) for r in plan(P)])`` of ``report``, the runs through the engine
    (:func:`paramspace.engine.execute_plan`: Ray tasks, the per-run cache; ``engine`` its options)."""
    from ..engine import execute_plan

    mod = module(report)
    return mod.summarize(P, execute_plan(report, mod.plan(P), **engine))


__all__ = ["DEVICES", "NAMES", "PROFILES", "REPORTS", "ProfileError", "Report", "get_report", "module",
           "params_from_namespace", "resolve", "run_all", "setup"]
