"""Rewrite one named section of BENCHMARKS.md in place, leaving the rest of the file as it is.

A section is the text between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``; a section
not yet in the file is appended.  Every ``tools/bench_*.py --write`` goes through :func:`write_section`, so
one benchmark never erases another's table.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "BENCHMARKS.md"


def markers(name: str) -> tuple[str, str]:
    """The comments that open and close section ``name``."""
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def read_section(name: str, text: str) -> str | None:
    """The body of section ``name`` in ``text`` (BENCHMARKS.md's), ``None`` where it has none."""
    start, end = markers(name)
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0]


def write_section(name: str, body: str, path: Path = PATH) -> None:
    start, end = markers(name)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def commit() -> str:
    """This checkout's commit; where there is no git repository (the device machine gets a copy of the
    working tree without one), ``PARAMSPACE_COMMIT`` (``tools/gpu_session.sh prepare`` records it)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("PARAMSPACE_COMMIT", "unknown")


def machine() -> str:
    """CPU model, core count and memory of this machine, in a few words."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = " ".join(line.split(":", 1)[1].split()[:2])
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem_text = f", {mem:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        mem_text = ""
    return f"{cpu}, {os.cpu_count()} cores{mem_text}, Python {platform.python_version()}"


def stamp(command: str) -> str:
    return f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit `{commit()}` on {machine()}; `{command}`."
