"""Run a report notebook: jupytext -> papermill (with a profile's parameters) -> executed notebook.

* The executed notebook is written atomically (to a temporary file, then renamed).
* A notebook whose inputs -- notebook text, the ``src/`` package, the parameters, the lock file
  and the data checksums -- are unchanged since its last successful run is skipped.
* A failing notebook raises :class:`ReportFailed` naming the report and the cell; the partially
  executed notebook is kept next to the output as ``.<name>.failed.ipynb`` for inspection.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from .data import project_root
from .profiles import REPORTS, get_report, resolve

STAMP_VERSION = 1


class ReportFailed(RuntimeError):
    pass


def default_output_dir() -> Path:
    return project_root() / "book" / "reports"


def input_key(report: str, params: dict) -> str:
    """SHA-256 over everything that determines a report's output."""
    root = project_root()
    h = hashlib.sha256(f"v{STAMP_VERSION}".encode())
    files = [root / get_report(report).notebook, root / "requirements.lock", root / "data" / "SHA256SUMS"]
    files += sorted((root / "src" / "paramspace").rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(root) if f.is_relative_to(root) else f).encode())
        h.update(f.read_bytes() if f.exists() else b"<missing>")
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


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


def run_report(report: str, profile: str = "book", overrides: dict | None = None,
               output_dir: Path | str | None = None, force: bool = False, progress: bool = True,
               log=print) -> Path:
    """Execute one report's notebook with ``profile`` (+ ``overrides``); return the output path."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    rep = get_report(report)
    params = resolve(report, profile, overrides)  # validated before any compute
    from .train import resolve_device

    resolve_device(params["device"])  # an unavailable CUDA device is an error now, not mid-run
    root = project_root()
    src = root / rep.notebook
    if not src.exists():
        raise ReportFailed(f"notebook {src} for report {report!r} is missing")
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{rep.name}.ipynb"
    stamp = out_dir / f".{rep.name}.inputs.json"
    key = input_key(report, params)
    if not force and out.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("key") == key:
                log(f"[{report}] inputs unchanged since the last run ({profile} profile); skipping")
                return out
        except json.JSONDecodeError:
            pass
    log(f"[{report}] running {rep.notebook} with the {profile} profile -> {out}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        nb_in = Path(tmp) / f"{rep.name}.ipynb"
        to_ipynb(src, nb_in)
        partial = out_dir / f".{rep.name}.partial.ipynb"
        os.environ["PARAMSPACE_OUTPUT_DIR"] = str(out_dir.resolve())
        try:
            papermill.execute_notebook(str(nb_in), str(partial), parameters=params, kernel_name="python3",
                                       cwd=str(root / "notebooks"), progress_bar=progress, log_output=False)
        except PapermillExecutionError as exc:
            failed = out_dir / f".{rep.name}.failed.ipynb"
            os.replace(partial, failed)
            where = _describe_cell(failed, exc.cell_index)
            raise ReportFailed(
                f"report {report!r} ({profile} profile) failed in {where} of {rep.notebook}: "
                f"{exc.ename}: {exc.evalue}\nThe partially executed notebook is {failed}"
            ) from None
        _hide_default_parameters(partial)
        os.replace(partial, out)
        (out_dir / f".{rep.name}.failed.ipynb").unlink(missing_ok=True)
    _atomic_write_text(stamp, json.dumps({"key": key, "profile": profile, "params": params,
                                          "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    log(f"[{report}] done in {time.perf_counter() - t0:.0f} s")
    return out


def run_all(profile: str = "book", output_dir=None, force: bool = False, device: str | None = None,
            log=print) -> list[Path]:
    """Run every report (in order; stop at the first failure), publish the committed companion pages
    (other profiles, never re-executed; see :mod:`paramspace.companion`), then write the scorecard."""
    from .claims import write_scorecard
    from .companion import publish

    overrides = {"device": device} if device else None
    outs = [run_report(name, profile, overrides, output_dir, force, log=log) for name in REPORTS]
    publish(Path(output_dir) if output_dir is not None else default_output_dir())
    write_scorecard(Path(output_dir) if output_dir is not None else default_output_dir())
    return outs
