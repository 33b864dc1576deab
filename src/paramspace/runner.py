"""Run a report notebook: jupytext -> papermill (with a profile's parameters) -> executed notebook.

One run is one unit:

* The notebook executes with ``$PARAMSPACE_OUTPUT_DIR`` set to a private folder made for this run
  (``<out>/.<name>.run-XXXX``); the executed notebook and every file the notebook writes (its
  claims ledger, ...) land there.  Only when the notebook succeeds are they moved into the output
  folder -- the old stamp removed first, the new stamp ``.<name>.inputs.json`` written last, with
  the SHA-256 of every file it vouches for.  Between the two nothing of that report counts as current.
* A run is skipped when the stamp's key equals the key of the current inputs *and* every file the
  stamp lists is present with its recorded hash (a deleted or edited ledger is regenerated).
  The key covers the notebook text, the ``src/`` package, the parameters, the data actually read
  (the checksum list of ``$PARAMSPACE_DATA`` or ``data/``), the installed versions of the locked
  packages, the device ``auto`` resolves to and, when ``cpu_threads`` is 0 or absent, what decides
  torch's default thread count.
* A lock per report and output folder (``fcntl.flock`` on ``.<name>.lock``) serialises runs of one
  report: the second waits, saying who holds the lock (or, with ``wait=False``, fails saying so).
* A failing notebook raises :class:`ReportFailed` naming the report and the cell; a kernel that dies
  (killed, e.g. out of memory) raises it naming the report.  The partially executed notebook is kept as
  ``.<name>.failed.ipynb``; nothing is cached.
* :func:`current_file` tells the scorecard which ledgers are vouched for by a matching stamp.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from .checksums import sha256
from .reports import REPORTS, ProfileError, get_report, resolve

# (``paramspace.data`` imports torch; this module does not, so that a lock or a skip check is quick)


def project_root() -> Path:
    """The repository root (as :func:`paramspace.data.project_root`)."""
    return Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The data folder the loaders read (as :func:`paramspace.data.data_dir`)."""
    return Path(os.environ.get("PARAMSPACE_DATA", project_root() / "data"))

STAMP_VERSION = 2


class ReportFailed(RuntimeError):
    pass


def default_output_dir() -> Path:
    return project_root() / "book" / "reports"


def stamp_path(out_dir: Path, report: str) -> Path:
    return Path(out_dir) / f".{report}.inputs.json"


def lock_path(out_dir: Path, report: str) -> Path:
    return Path(out_dir) / f".{report}.lock"


# --- the cache key -------------------------------------------------------------------------------


def locked_package_versions(lock: Path | None = None) -> dict[str, str]:
    """Installed version of every package pinned in ``requirements.lock`` ("not installed" if absent)."""
    from importlib import metadata

    lock = lock or project_root() / "requirements.lock"
    out = {}
    if not lock.exists():
        return out
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        name = line.split("==", 1)[0].split("[", 1)[0].strip()
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def resolved_device(device: str) -> str:
    """The device a run computes on: ``auto`` resolved, CUDA with its card's name.  An absent
    CUDA device (or index) is an error before any compute."""
    from .train import resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda":
        return "cpu"
    import torch

    index = dev.index if dev.index is not None else 0
    if index >= torch.cuda.device_count():
        raise ProfileError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                           f"(valid: cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def thread_inputs(params: dict) -> dict:
    """What fixes the number of torch CPU threads in the notebook's kernel: ``cpu_threads`` when it
    is set (> 0); otherwise torch's default, which follows the CPUs this process may use and the
    OpenMP/MKL environment variables."""
    if params.get("cpu_threads", 0):
        return {"cpu_threads": params["cpu_threads"]}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_threads": 0, "cpus": cpus,
            **{v: os.environ.get(v, "") for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def data_checksums() -> str:
    """SHA-256 of the checksum list of the data folder the loaders read (``<missing>`` without one)."""
    sums = data_dir() / "SHA256SUMS"
    return sha256(sums) if sums.exists() else "<missing>"


def library_files() -> list[Path]:
    """The lock file and the library's source files (``src/paramspace/**/*.py``), in a fixed order."""
    root = project_root()
    return [root / "requirements.lock", *sorted((root / "src" / "paramspace").rglob("*.py"))]


def _hash_files(h, files: list[Path]) -> None:
    """Feed each file's path (relative to the project root) and bytes (``<missing>``) into ``h``."""
    root = project_root()
    for f in files:
        h.update(str(f.relative_to(root) if f.is_relative_to(root) else f).encode())
        h.update(f.read_bytes() if f.exists() else b"<missing>")


def library_digest() -> str:
    """SHA-256 of :func:`library_files` (the per-run cache's key and the engine's same-source check)."""
    h = hashlib.sha256()
    _hash_files(h, library_files())
    return h.hexdigest()


def key_inputs(report: str, params: dict) -> dict:
    """Everything outside the repository's source that changes a report's outputs."""
    return {"data_checksums": data_checksums(),
            "packages": locked_package_versions(),
            "python": platform.python_version(),
            "device": resolved_device(params.get("device", "auto")),
            "threads": thread_inputs(params)}


def input_key(report: str, params: dict, inputs: dict | None = None) -> str:
    """SHA-256 over everything that determines a report's output: the notebook, ``src/paramspace``,
    the lock file, the parameters and :func:`key_inputs` (pass ``inputs`` to reuse them)."""
    root = project_root()
    h = hashlib.sha256(f"v{STAMP_VERSION}".encode())
    nb = Path(get_report(report).notebook)
    _hash_files(h, [nb if nb.is_absolute() else root / nb, *library_files()])
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(json.dumps(inputs if inputs is not None else key_inputs(report, params), sort_keys=True).encode())
    return h.hexdigest()


# --- stamps ----------------------------------------------------------------------------------------


def read_stamp(out_dir: Path, report: str) -> dict | None:
    try:
        stamp = json.loads(stamp_path(out_dir, report).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("version") == STAMP_VERSION else None


def current_outputs(out_dir: Path, report: str, key: str | None = None) -> dict | None:
    """The stamp of ``report`` in ``out_dir`` if it vouches for its outputs -- every file it lists
    exists with its recorded SHA-256, the executed notebook among them (and its key is ``key`` when
    given) -- else ``None``."""
    stamp = read_stamp(out_dir, report)
    if stamp is None or (key is not None and stamp.get("key") != key):
        return None
    files = stamp.get("files") or {}
    if f"{report}.ipynb" not in files:
        return None
    for rel, digest in files.items():
        path = Path(out_dir) / rel
        if not path.is_file() or sha256(path) != digest:
            return None
    return stamp


def current_file(out_dir: Path, report: str, name: str) -> Path | None:
    """``out_dir/name`` if the report's stamp vouches for it (written by the run that produced the
    served notebook, unchanged since), else ``None``."""
    stamp = current_outputs(out_dir, report)
    return Path(out_dir) / name if stamp is not None and name in stamp["files"] else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file of a unique name in the same folder."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file of a unique name in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the output is for readers
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# --- the lock --------------------------------------------------------------------------------------


@contextlib.contextmanager
def report_lock(out_dir: Path, report: str, wait: bool = True, log=print):
    """Hold ``.<report>.lock`` in ``out_dir`` (``fcntl.flock``, released when the process ends, however
    it ends).  If another process holds it: wait, saying who (``wait=True``), or raise
    :class:`ReportFailed` saying who."""
    path = lock_path(out_dir, report)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            if not wait:
                raise ReportFailed(f"report {report!r} is already running into {out_dir} ({holder}); "
                                   f"wait for it or use another output folder") from None
            log(f"[{report}] waiting: {out_dir} is in use by {holder}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
        fh.close()  # releases the lock


# --- running ---------------------------------------------------------------------------------------


def to_ipynb(src: Path, dest: Path) -> None:
    """``jupytext --to ipynb --set-kernel python3 src -o dest``."""
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--to", "ipynb", "--set-kernel", "python3", "--quiet", str(src), "-o", str(dest)])


def _describe_cell(path: Path, index: int) -> str:
    """``cell N (`first line`)``, N counting the source notebook's cells from 1 (papermill's
    injected-parameters cell is not counted)."""
    import nbformat

    cells = [c for c in nbformat.read(path, as_version=4).cells  # drop papermill's error banners
             if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    injected = sum(1 for c in cells[:index] if "injected-parameters" in c.metadata.get("tags", []))
    first = next((ln for ln in cells[index].source.splitlines() if ln.strip()), "") if index < len(cells) else ""
    return f"cell {index - injected + 1} (`{first.strip()[:80]}`)"


def _hide_default_parameters(path: Path) -> None:
    """Tag the notebook's own ``parameters`` cell ``remove-cell``: the book shows papermill's
    ``injected-parameters`` cell instead, which holds the values this run actually used."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def output_folder(output_dir: Path | str | None) -> Path:
    """The output folder, created if needed; a path that is a file (or cannot be created) is a
    :class:`ProfileError` before any compute."""
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir()
    if out_dir.exists() and not out_dir.is_dir():
        raise ProfileError(f"output folder {str(out_dir)!r} is a file; --out must name a folder (it is created "
                           "if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProfileError(f"output folder {str(out_dir)!r} cannot be created: {exc.strerror or exc}") from None
    return out_dir


def _move(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)


def _install(private: Path, out_dir: Path, report: str, stamp: dict) -> None:
    """Move every file of ``private`` into ``out_dir`` and write the stamp vouching for them, last.
    The old stamp goes first, so an interruption in between leaves nothing that counts as current."""
    files = {p.relative_to(private).as_posix(): sha256(p) for p in sorted(private.rglob("*")) if p.is_file()}
    old = read_stamp(out_dir, report)
    stamp_path(out_dir, report).unlink(missing_ok=True)
    for rel in files:  # the notebook's own files, then the executed notebook
        if rel != f"{report}.ipynb":
            _move(private / rel, out_dir / rel)
    _move(private / f"{report}.ipynb", out_dir / f"{report}.ipynb")
    for rel in (old or {}).get("files", {}):  # files of the previous run that this run did not write
        if rel not in files:
            (out_dir / rel).unlink(missing_ok=True)
    (out_dir / f".{report}.failed.ipynb").unlink(missing_ok=True)
    atomic_write_text(stamp_path(out_dir, report), json.dumps({**stamp, "files": files}, indent=1))


def run_report(report: str, profile: str = "book", overrides: dict | None = None,
               output_dir: Path | str | None = None, force: bool = False, progress: bool = True,
               log=print, wait: bool = True, address: str | None = None) -> Path:
    """Execute one report's notebook with ``profile`` (+ ``overrides``); return the output path.
    ``address``: the Ray cluster the notebook's runs go to (its kernel's ``$RAY_ADDRESS``; default:
    this process's ``$RAY_ADDRESS``, else the kernel starts its own local instance)."""
    rep = get_report(report)
    params = resolve(report, profile, overrides)  # values and cross-parameter rules, before any compute
    inputs = key_inputs(report, params)  # also: an absent CUDA device is an error now, not mid-run
    root = project_root()
    src = Path(rep.notebook) if Path(rep.notebook).is_absolute() else root / rep.notebook
    if not src.exists():
        raise ReportFailed(f"notebook {src} for report {report!r} is missing")
    out_dir = output_folder(output_dir)
    out = out_dir / f"{rep.name}.ipynb"
    key = input_key(report, params, inputs)
    with report_lock(out_dir, rep.name, wait=wait, log=log):
        if not force and current_outputs(out_dir, rep.name, key) is not None:
            log(f"[{report}] inputs unchanged since the last run ({profile} profile); skipping")
            return out
        for stale in out_dir.glob(f".{rep.name}.run-*"):  # left by a killed run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        (out_dir / f".{rep.name}.partial.ipynb").unlink(missing_ok=True)  # left by older versions
        log(f"[{report}] running {rep.notebook} with the {profile} profile -> {out}")
        t0 = time.perf_counter()
        private = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{rep.name}.run-"))
        try:
            with _kernels_cluster(report, params, address) as address:
                _execute(rep, report, profile, params, src, private, out_dir, progress, address)
            _install(private, out_dir, rep.name,
                     {"version": STAMP_VERSION, "key": key, "profile": profile, "params": params,
                      "inputs": {k: v for k, v in inputs.items() if k != "packages"},
                      "seconds": round(time.perf_counter() - t0, 1)})
        finally:
            shutil.rmtree(private, ignore_errors=True)
    log(f"[{report}] done in {time.perf_counter() - t0:.0f} s")
    return out


def _kernels_cluster(report: str, params: dict, address: str | None):
    """The Ray cluster for the kernel (:func:`paramspace.engine.cluster_for_kernels`) when the report
    runs its plan through the engine (a report module with ``plan``) and some run of ``plan(params)``
    is not in the per-run cache, else nothing (no Ray start-up for a notebook that only reads back)."""
    from . import reports

    if report in reports.NAMES and hasattr(reports.module(report), "plan"):
        from .engine import all_cached, cluster_for_kernels

        if address or os.environ.get("RAY_ADDRESS") or not all_cached(report, reports.module(report).plan(params)):
            return cluster_for_kernels(address)
    return contextlib.nullcontext(address)


def kernel_manager_with_env(env: dict[str, str]):
    """A kernel manager class (``jupyter_client``'s async one, what papermill uses) whose kernels start with
    ``env`` on top of this process's environment.

    Why not ``os.environ``: with ``jobs > 1`` several notebooks start their kernels from threads of one
    process, and a variable set process-wide for one notebook reaches the other's kernel.  It did: in a
    fresh-clone ``make book``, report 2's kernel started with report 1's private output folder, so report
    2's ledger and source download were written there and never served (the book build then failed on
    the missing download).  Here each kernel gets its own folder (``tests/test_runner.py``)."""
    from jupyter_client.manager import AsyncKernelManager

    class EnvKernelManager(AsyncKernelManager):
        extra_env = dict(env)

        async def _async_pre_start_kernel(self, **kw):
            kw["env"] = {**(kw.get("env") or os.environ), **self.extra_env}
            return await super()._async_pre_start_kernel(**kw)

    return EnvKernelManager


def _execute(rep, report: str, profile: str, params: dict, src: Path, private: Path, out_dir: Path,
             progress: bool, address: str | None = None) -> None:
    """papermill into ``private``; a failure keeps the notebook as ``.<name>.failed.ipynb``."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    executed = private / f"{rep.name}.ipynb"
    failed = out_dir / f".{rep.name}.failed.ipynb"
    env = {"PARAMSPACE_OUTPUT_DIR": str(private.resolve())}
    if address:
        env["RAY_ADDRESS"] = address  # the kernel's engine connects to it
    with tempfile.TemporaryDirectory() as tmp:
        nb_in = Path(tmp) / f"{rep.name}.ipynb"
        to_ipynb(src, nb_in)
        try:
            papermill.execute_notebook(str(nb_in), str(executed), parameters=params, kernel_name="python3",
                                       cwd=str(project_root() / "notebooks"), progress_bar=progress,
                                       log_output=False, kernel_manager_class=kernel_manager_with_env(env))
        except PapermillExecutionError as exc:
            os.replace(executed, failed)
            where = _describe_cell(failed, exc.cell_index)
            raise ReportFailed(
                f"report {report!r} ({profile} profile) failed in {where} of {rep.notebook}: "
                f"{exc.ename}: {exc.evalue}\nThe partially executed notebook is {failed}"
            ) from None
        except DeadKernelError:
            kept = f"; the partially executed notebook is {failed}" if executed.exists() else ""
            if executed.exists():
                os.replace(executed, failed)
            raise ReportFailed(
                f"report {report!r} ({profile} profile): the kernel running {rep.notebook} died (killed -- "
                f"out of memory is the usual cause; try a smaller profile or fewer rows){kept}"
            ) from None
    missing = [f for f in expected_outputs(rep) if not (private / f).is_file()]
    if missing:
        os.replace(executed, failed)
        raise ReportFailed(
            f"report {report!r} ({profile} profile) ran, but its notebook did not write "
            f"{' and '.join(missing)} into its output folder ($PARAMSPACE_OUTPUT_DIR), where the book reads "
            f"them (the ledger comes from claims.write_ledger, the source copy from the Provenance footer); "
            f"nothing was installed and the previous outputs are kept. The executed notebook is {failed}")
    _hide_default_parameters(executed)


def expected_outputs(rep) -> list[str]:
    """The files a report's notebook must leave in its output folder besides the executed notebook: its
    source copy (the page footer's download) and, for a report with claims, its ledger (the scorecard's
    row).  The runner refuses to install a run without them: a page would link a file the book cannot
    serve, or the scorecard would silently lose a report (both happened when notebooks run at once
    shared one output folder)."""
    return [f"{rep.name}.py"] + ([f"{rep.name}.claims.json"] if rep.claims else [])


def run_all(profile: str = "book", output_dir=None, force: bool = False, device: str | None = None,
            log=print, address: str | None = None, jobs: int = 1) -> list[Path]:
    """Run every report, publish the committed companion pages (other profiles, never re-executed; see
    :mod:`paramspace.companion`), then write the scorecard.
    The reports' runs go to the Ray cluster at ``address`` (or ``$RAY_ADDRESS``); without one, ONE
    local Ray instance started here serves every notebook's kernel, and is stopped at the end.
    ``jobs = 1`` runs the notebooks in order and stops at the first failure; ``jobs > 1`` executes that
    many notebooks at once (their kernels share the Ray instance, so one notebook's plotting and
    summaries overlap another's runs; each report still has its own lock, private run folder and
    stamp), lets the others finish when one fails, then raises the first failure in report order."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1 (notebooks executed at once), got {jobs!r}")
    from .claims import write_scorecard
    from .companion import publish

    overrides = {"device": device} if device else None
    for name in REPORTS:  # every report's parameters (and cross-parameter rules) before any compute
        resolve(name, profile, overrides)
    from .engine import cluster_for_kernels

    out_dir = Path(output_dir) if output_dir is not None else default_output_dir()
    stale = force or any(current_outputs(out_dir, name, input_key(name, resolve(name, profile, overrides)))
                         is None for name in REPORTS)
    with cluster_for_kernels(address) if stale else contextlib.nullcontext(address) as address:
        if jobs == 1:
            outs = [run_report(name, profile, overrides, output_dir, force, log=log, address=address)
                    for name in REPORTS]
        else:
            from concurrent.futures import ThreadPoolExecutor

            def one(name):  # papermill's per-cell bars of several notebooks would interleave: plain lines
                return run_report(name, profile, overrides, output_dir, force, progress=False, log=log,
                                  address=address)

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(one, name) for name in REPORTS]
            errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                raise errors[0]
            outs = [f.result() for f in futures]
    publish(Path(output_dir) if output_dir is not None else default_output_dir())
    write_scorecard(Path(output_dir) if output_dir is not None else default_output_dir())
    return outs
