"""Provenance footer for every report page: commit, profile, parameters, versions, device, time."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata

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


class Provenance:
    """Create right after the parameters cell; call :meth:`show` in the last cell."""

    def __init__(self, report: str, params: dict):
        self.report, self.params, self.t0 = report, dict(params), time.perf_counter()

    def record(self) -> dict:
        return {"report": self.report, "commit": git_commit(), "profile": self.params.get("profile"),
                "device": device_description(self.params.get("device", "auto"), self.params.get("cpu_threads", 0)),
                "wall_time_s": round(time.perf_counter() - self.t0, 1),
                "parameters": self.params, "versions": versions()}

    def markdown(self) -> str:
        r = self.record()
        params = "<br>".join(f"`{k}` = `{v}`" for k, v in r["parameters"].items())
        vers = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        rows = [("git commit", f"`{r['commit']}`"), ("profile", f"`{r['profile']}`"),
                ("device", r["device"]), ("wall time", f"{r['wall_time_s']:.0f} s"),
                ("parameters", params), ("package versions", vers)]
        return "| provenance | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)

    def show(self):
        from IPython.display import Markdown, display

        display(Markdown(self.markdown()))
