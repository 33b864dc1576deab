"""Provenance footer for every report page: commit, profile, parameters, versions, device, time,
the runner's input key, the one-line command that reruns the page, and the page's source.

:meth:`Provenance.show` also places a copy of the report's jupytext source (``<report>.py``) in the
output folder, beside the executed notebook, so that the footer's download link finds it."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from .data import project_root

PACKAGES = ("paramspace", "torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib",
            "seaborn", "POT", "papermill", "jupytext", "jupyter-book")


def git_commit() -> str:
    root = project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "notebooks", "requirements.lock"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def device_description(device: str, cpu_threads: int = 0) -> str:
    """The device a report ran on; for the CPU, the torch thread count of the computation
    (``cpu_threads`` when the report set it, else torch's current setting)."""
    import torch

    from .train import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    threads = cpu_threads or torch.get_num_threads()
    return f"cpu: {platform.processor() or platform.machine()}, {threads} torch threads"


def _set_value(value) -> str:
    """A parameter value as ``--set``/``SET=`` reads it back: no spaces (``make`` splits ``SET`` on
    them) and no double quotes (the command quotes ``SET="..."``); plain words stay bare, lists are
    written in YAML flow style (``[wine,boston]``, ``[32,32]``)."""
    import yaml

    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_set_value(v) for v in value) + "]"
    if isinstance(value, str):
        plain = bool(value) and not any(ch in value for ch in " ,[]{}:#'\"") and yaml.safe_load(value) == value
        return value if plain else "'" + value.replace("'", "''") + "'"
    return json.dumps(value)


def rerun_command(report: str, params: dict, target: str = "report") -> str:
    """The one-line ``make`` command that reruns ``report`` with ``params``: ``PROFILE=`` names the
    profile, ``DEVICE=`` a device other than the profile's, ``SET="k=v ..."`` every other parameter
    that differs from the profile's value. ``target`` is ``report`` or ``companion``."""
    from .reports import PROFILES, resolve

    profile = params.get("profile", "book")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    base = resolve(report, profile)
    cmd = f"make {target} NAME={report} PROFILE={profile}"
    if params.get("device", base["device"]) != base["device"]:
        cmd += f" DEVICE={params['device']}"
    sets = [f"{k}={_set_value(v)}" for k, v in params.items()
            if k not in ("profile", "device") and (k not in base or base[k] != v)]
    if sets:
        cmd += ' SET="' + " ".join(sets) + '"'
    return cmd


def source_copy(report: str, directory: Path | None = None) -> Path:
    """Copy the report's jupytext source into ``directory`` (default: the output folder of this
    run, ``$PARAMSPACE_OUTPUT_DIR``) as ``<report>.py``, beside the executed notebook."""
    from .claims import output_dir
    from .reports import get_report

    src = Path(get_report(report).notebook)
    src = src if src.is_absolute() else project_root() / src
    directory = Path(directory) if directory is not None else output_dir()
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / f"{report}.py"
    if src.resolve() != dest.resolve():
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    return dest


class Provenance:
    """Create right after the parameters cell; call :meth:`show` in the last cell."""

    def __init__(self, report: str, params: dict):
        self.report, self.params, self.t0 = report, dict(params), time.perf_counter()

    def record(self) -> dict:
        from .runner import input_key

        return {"report": self.report, "commit": git_commit(), "profile": self.params.get("profile"),
                "device": device_description(self.params.get("device", "auto"), self.params.get("cpu_threads", 0)),
                "wall_time_s": round(time.perf_counter() - self.t0, 1),
                "parameters": self.params, "versions": versions(),
                "input_key": input_key(self.report, self.params),
                "rerun": rerun_command(self.report, self.params)}

    def markdown(self) -> str:
        r = self.record()
        params = "<br>".join(f"`{k}` = `{v}`" for k, v in r["parameters"].items())
        vers = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        rows = [("git commit", f"`{r['commit']}`"), ("profile", f"`{r['profile']}`"),
                ("device", r["device"]), ("wall time", f"{r['wall_time_s']:.0f} s"),
                ("parameters", params), ("package versions", vers),
                ("runner input key", f"`{r['input_key']}`"),
                ("rerun this page", f"`{r['rerun']}`"),
                ("source", f"{{download}}`{self.report}.py` (the jupytext source this page was executed from)")]
        return "| provenance | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)

    def show(self):
        from IPython.display import Markdown, display

        source_copy(self.report)  # the footer's download link points at this copy
        display(Markdown(self.markdown()))
