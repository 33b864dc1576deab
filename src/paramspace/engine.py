"""The run engine: a report's independent runs as Ray tasks (or in this process), with a per-run cache.

``execute_plan(report, runs)`` returns ``[execute(run) for run in runs]`` of the report module, in plan
order, computed in one of three modes:

* ``local-ray`` (default): an embedded local Ray instance using every core of this machine
  (``ray.init(address="local", num_cpus=<all cores>, include_dashboard=False)``): the runner starts
  one for the notebook kernels and stops it at the end (:func:`cluster_for_kernels`); a process without
  one (a notebook opened by hand) starts its own on first use, reused while it lives, stopped at exit;
* ``address``: the same tasks on an existing Ray cluster, ``address=`` or ``$RAY_ADDRESS``
  (``ray start --head`` prints it); the runner passes one to the notebook kernels this way;
* ``serial``: in this process, no Ray (``PARAMSPACE_ENGINE=serial``), for debugging.

Each run is one task with the resources of the report's ``resources(run)`` if it defines one, else
1 CPU and, when the run's device resolves to CUDA, a quarter of a GPU (small runs share one card).
A local instance's workers import ``paramspace`` from the driver's source tree (its folder first on
their ``PYTHONPATH``); a cluster's workers import what the cluster was started with.  Each result comes
back with the digest of the worker's library source, and a worker whose source differs from the
driver's is an error, never a cached result.

The per-run cache: ``<root>/<report>/<key>.pkl`` (root ``$PARAMSPACE_RUN_CACHE``, default
``.cache/runs`` under the project root; ``off`` turns it off), key = SHA-256 of the report, the run (canonical JSON), the
resolved device, the library source and lock file, the data checksum list, the installed versions of
the locked packages and the Python version (the runner's key helpers).  A result is written as soon as
it arrives (temporary file + ``os.replace``), so an interrupted plan resumes where it stopped; an entry
that cannot be read back, or whose recorded key differs, is recomputed.  A failed run caches nothing;
after the other runs finished (and were cached) :class:`RunFailed` names the report and its parameters.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import json
import os
import pickle
import platform
from pathlib import Path
from typing import Any

MODES = ("local-ray", "serial")
CACHE_VERSION = 1


class RunFailed(RuntimeError):
    """One or more runs of a plan failed; the others finished and were cached."""


# --- the report module -------------------------------------------------------------------------------


def report_module(report: str):
    """The module holding ``plan``/``execute``: a report of the collection by name, or any importable
    module by its dotted path (e.g. a test's fixture report)."""
    from . import reports

    if report in reports.NAMES or "." not in report:
        return reports.module(report)
    return importlib.import_module(report)


# --- the cache key ------------------------------------------------------------------------------------


def canonical_json(run: dict) -> str:
    """The run as JSON with sorted keys and no spaces (an error names a run that is not plain JSON)."""
    try:
        return json.dumps(run, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"a run must be a plain JSON-able dict ({exc}): {run!r}"[:300]) from None


def run_device(run: dict) -> str | None:
    """The run's ``device`` resolved on this machine (``auto`` -> ``cuda`` or ``cpu``), or ``None``."""
    dev = run.get("device")
    if dev is None:
        return None
    if str(dev) == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(dev)


def plan_inputs() -> dict:
    """What every run's key shares: library source and lock, data checksums, packages, Python."""
    from .runner import data_checksums, library_digest, locked_package_versions

    return {"library": library_digest(), "data_checksums": data_checksums(),
            "packages": locked_package_versions(), "python": platform.python_version()}


def run_key(report: str, run: dict, inputs: dict) -> str:
    """SHA-256 of the report's name, the run (canonical JSON, its device resolved) and ``inputs``."""
    h = hashlib.sha256(f"paramspace-run v{CACHE_VERSION}\n{report}\n".encode())
    h.update(canonical_json(run).encode())
    h.update(f"\ndevice={run_device(run)}\n".encode())
    h.update(json.dumps(inputs, sort_keys=True).encode())
    return h.hexdigest()


def cache_enabled() -> bool:
    """``PARAMSPACE_RUN_CACHE=off`` turns the per-run cache off (every run recomputed, none stored)."""
    return os.environ.get("PARAMSPACE_RUN_CACHE", "").strip().lower() not in ("off", "0", "false", "no")


def cache_root() -> Path:
    from .runner import project_root

    return Path(os.environ.get("PARAMSPACE_RUN_CACHE") or project_root() / ".cache" / "runs")


def cache_path(report: str, key: str) -> Path:
    return cache_root() / report / f"{key}.pkl"


_MISSING = object()


def cache_load(report: str, key: str) -> Any:
    """The cached result of run ``key``, or ``_MISSING`` (absent, unreadable, or not this key's)."""
    path = cache_path(report, key)
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh)
    except FileNotFoundError:
        return _MISSING
    except Exception:  # truncated, corrupt, written by an incompatible version: recompute
        return _MISSING
    if not isinstance(entry, dict) or entry.get("key") != key or "result" not in entry:
        return _MISSING
    return entry["result"]


def cache_store(report: str, key: str, run: dict, result: Any) -> None:
    from .runner import atomic_write_bytes

    path = cache_path(report, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, pickle.dumps({"key": key, "report": report, "run": run, "result": result},
                                          protocol=pickle.HIGHEST_PROTOCOL))


def all_cached(report: str, runs: list[dict]) -> bool:
    """Whether every run of ``runs`` has a readable entry in the per-run cache."""
    if not cache_enabled():
        return False
    inputs = plan_inputs()
    return all(cache_load(report, run_key(report, run, inputs)) is not _MISSING for run in runs)


# --- resources -----------------------------------------------------------------------------------------


def resources(mod, run: dict) -> dict:
    """The report's ``resources(run)``, else as many CPUs as the run's ``cpu_threads`` (1 when it has none
    or 0, torch's default) and a quarter GPU for a CUDA run: a run that computes with two threads holds
    two cores, so tasks never oversubscribe the machine."""
    if hasattr(mod, "resources"):
        return dict(mod.resources(run))
    threads = run.get("cpu_threads")
    cpus = threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else 1
    return {"num_cpus": cpus, "num_gpus": 0.25 if (run_device(run) or "cpu").startswith("cuda") else 0}


# --- Ray -------------------------------------------------------------------------------------------------


def engine_mode() -> str:
    mode = os.environ.get("PARAMSPACE_ENGINE", "local-ray") or "local-ray"
    if mode not in MODES:
        raise ValueError(f"PARAMSPACE_ENGINE={mode!r}: valid engines are {', '.join(MODES)}")
    return mode


def source_dir() -> str:
    """The folder holding this ``paramspace`` package (what the workers must import)."""
    return str(Path(__file__).resolve().parents[1])


def worker_pythonpath() -> str:
    """``PYTHONPATH`` for the workers: this source tree first, then the caller's ``PYTHONPATH``."""
    path = [source_dir(), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return os.pathsep.join(dict.fromkeys(path))


_STARTED_HERE = False


def import_ray():
    """``import ray`` without the notes it prints inside a notebook kernel (no ipywidgets here: tqdm's
    IProgress warning and Ray's "missing packages" line)."""
    import logging
    import warnings

    logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import ray
    return ray


def _token_auth_if_available() -> None:
    """Before connecting to a cluster: send this user's Ray token (``~/.ray/auth_token``, which
    ``ray start`` uses) when ``RAY_AUTH_MODE`` is unset, as a process that started the cluster does."""
    import logging

    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication import authentication_token_setup as auth
    except ImportError:  # another Ray version: its own rules apply
        return
    log = logging.getLogger(auth.__name__)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        log.setLevel(level)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect to Ray once per process and return the cluster's address: the instance this process
    already initialised, else the cluster at ``address`` (or ``$RAY_ADDRESS``), else a new embedded local
    instance with ``num_cpus`` (default: every core this process may use), stopped at process exit.

    A local instance's processes inherit this process's environment, with :func:`worker_pythonpath`
    (so its workers import this source tree, not another checkout's editable install).  A cluster's
    workers import what the cluster was started with; each result is checked against this tree."""
    global _STARTED_HERE
    import logging

    ray = import_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        # ERROR: no start-up notes in the notebooks; the runs' own output stays in the workers' logs
        common = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        if address:
            _token_auth_if_available()
            ray.init(address=address, **common)
        else:
            cpus = num_cpus or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count())
            saved = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = worker_pythonpath()  # inherited by the raylet, hence the workers
            try:
                ray.init(address="local", num_cpus=cpus, **common)
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
            if not _STARTED_HERE:
                atexit.register(shutdown_ray)
            _STARTED_HERE = True
    return ray.get_runtime_context().gcs_address


@contextlib.contextmanager
def cluster_for_kernels(address: str | None = None):
    """The Ray address a runner gives its notebook kernels (their ``$RAY_ADDRESS``): ``address`` or
    ``$RAY_ADDRESS`` as given; ``None`` with ``PARAMSPACE_ENGINE=serial``; else a local instance
    started here (stopped on leaving, if this process started it), so that a kernel only connects:
    a kernel that owned the instance would not stop it within the kernel's shutdown grace time."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address or engine_mode() == "serial":
        yield address
        return
    owned = not import_ray().is_initialized()
    address = init_ray()
    try:
        yield address
    finally:
        if owned:
            shutdown_ray()


def shutdown_ray() -> None:
    """Stop the Ray connection of this process (the local instance too, if this process started it)."""
    global _STARTED_HERE
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()
    _STARTED_HERE = False


_WORKER_DIGEST: str | None = None


def _execute_one(report: str, run: dict) -> tuple[Any, str, str]:
    """One run in a worker: its result, the worker's library digest, where it imported paramspace."""
    global _WORKER_DIGEST
    from .runner import library_digest

    if _WORKER_DIGEST is None:
        _WORKER_DIGEST = library_digest()
    return report_module(report).execute(run), _WORKER_DIGEST, source_dir()


# --- the plan -------------------------------------------------------------------------------------------


def _describe(report: str, i: int, n: int, run: dict, exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the run's own exception
    what = (str(cause).strip().splitlines() or [""])[0]
    if "failed to import on the worker" in what:  # the worker's paramspace lacks this engine
        what = (f"the worker cannot import paramspace.engine: its paramspace is not this source tree "
                f"({source_dir()}); start the cluster with it on PYTHONPATH")
    return f"report {report!r}: run {i + 1}/{n} {canonical_json(run)} failed: {type(cause).__name__}: {what}"


def execute_plan(report: str, runs: list[dict], *, address: str | None = None, cache: bool = True,
                 progress: bool = True) -> list:
    """``[execute(run) for run in runs]`` of ``report``'s module, in plan order: cached runs read back,
    the others as Ray tasks (``PARAMSPACE_ENGINE=serial``: in this process), each result cached as it
    arrives.  A failing run raises :class:`RunFailed` (report and run parameters, one line) once the
    other runs finished and were cached."""
    from tqdm import tqdm

    mod = report_module(report)
    cache = cache and cache_enabled()
    runs = list(runs)
    n = len(runs)
    for run in runs:
        canonical_json(run)
    inputs = plan_inputs() if cache else None
    keys = [run_key(report, run, inputs) for run in runs] if cache else [None] * n
    results: list[Any] = [_MISSING] * n
    if cache:
        for i, key in enumerate(keys):
            results[i] = cache_load(report, key)
    todo = [i for i in range(n) if results[i] is _MISSING]
    bar = tqdm(total=n, initial=n - len(todo), desc=report, disable=not progress or n == 0,
               mininterval=1.0, leave=False)
    failures: list[tuple[int, BaseException]] = []

    def done(i: int, result: Any) -> None:
        results[i] = result
        if cache:
            cache_store(report, keys[i], runs[i], result)
        bar.update(1)

    try:
        if todo and engine_mode() == "serial":
            for i in todo:
                try:
                    result = mod.execute(runs[i])
                except Exception as exc:
                    failures.append((i, exc))
                    bar.update(1)
                    continue
                done(i, result)
        elif todo:
            _ray_execute(report, mod, runs, todo, address, done, failures, bar)
    finally:
        bar.close()
    if failures:
        failures.sort(key=lambda f: f[0])
        i, exc = failures[0]
        more = f" (and {len(failures) - 1} more failed run(s))" if len(failures) > 1 else ""
        raise RunFailed(_describe(report, i, n, runs[i], exc) + more) from exc
    return results


def _ray_execute(report, mod, runs, todo, address, done, failures, bar) -> None:
    ray = import_ray()
    from ray.exceptions import RayError

    from .runner import library_digest

    init_ray(address)
    wanted = [resources(mod, runs[i]) for i in todo]
    total = ray.cluster_resources()
    if any(r.get("num_gpus", 0) for r in wanted) and not total.get("GPU", 0):
        raise RunFailed(f"report {report!r}: runs ask for a GPU and the Ray cluster has none")
    cpus = total.get("CPU", 1)
    # a request larger than the whole cluster would wait forever: it gets every CPU there is instead
    wanted = [dict(r, num_cpus=min(r.get("num_cpus", 1), cpus)) for r in wanted]
    here = library_digest()
    task = ray.remote(_execute_one)
    pending = {task.options(**res).remote(report, runs[i]): i for i, res in zip(todo, wanted)}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result, digest, where = ray.get(ref)
                except RayError as exc:  # the run raised, or its worker died
                    failures.append((i, exc))
                    bar.update(1)
                    continue
                if digest != here:
                    failures.append((i, RuntimeError(
                        f"the worker's paramspace ({where}) differs from this one ({source_dir()}); run the "
                        f"cluster from the same source tree")))
                    bar.update(1)
                    continue
                done(i, result)
    except BaseException:  # interrupted: stop what is still running; what finished is cached
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
