#!/usr/bin/env python3
"""Benchmark (issue 14 (a)): each report's book profile, cold caches, one process vs the engine.

    .venv/bin/python tools/bench_book.py [--profile book] [--report NAME ...] [--write]

For every report, ``python -m paramspace run NAME --profile PROFILE --force`` runs twice in a fresh
process with an empty per-run cache: once with ``PARAMSPACE_ENGINE=serial`` (every run one after the
other in the notebook's kernel: the code path before the engine) and once with the engine's default
(an embedded local Ray instance with every core of this machine, started and stopped by the runner,
its start-up included in the time).  Prints a Markdown table of wall times and their ratio, and checks
that the two modes wrote identical claims ledgers (``tools/compare_ledgers.py``).  ``--write`` puts the
table into BENCHMARKS.md (section ``book``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import stamp, write_section  # noqa: E402
from compare_ledgers import compare  # noqa: E402

MODES = {"serial": "one process (serial)", "local-ray": "engine (local Ray)"}


def one(name: str, profile: str, mode: str, out: Path) -> float:
    env = dict(os.environ, PARAMSPACE_ENGINE=mode)
    with tempfile.TemporaryDirectory(prefix="bench-runcache-") as cache:
        env["PARAMSPACE_RUN_CACHE"] = cache
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "paramspace", "run", name, "--profile", profile, "--force",
                               "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{name} ({mode}) failed with exit status {proc.returncode}")
    return seconds


def main() -> int:
    from paramspace import reports

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="book")
    ap.add_argument("--report", action="append", choices=reports.NAMES)
    ap.add_argument("--out", type=Path, default=None, help="keep the outputs here (default: a temporary folder)")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md (section 'book')")
    args = ap.parse_args()
    names = args.report or list(reports.NAMES)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-book-"))
    rows, totals = [], {m: 0.0 for m in MODES}
    for name in names:
        runs = len(reports.module(name).plan(reports.resolve(name, args.profile)))
        t = {m: one(name, args.profile, m, out / m) for m in MODES}
        for m in MODES:
            totals[m] += t[m]
        rows.append(f"| {name} | {runs} | {t['serial']:.0f} s | {t['local-ray']:.0f} s | "
                    f"{t['serial'] / t['local-ray']:.2f}x |")
        print(rows[-1], flush=True)
    rows.append(f"| **all** | | **{totals['serial']:.0f} s** | **{totals['local-ray']:.0f} s** | "
                f"**{totals['serial'] / totals['local-ray']:.2f}x** |")
    same = compare(out / "serial", out / "local-ray", [n for n in names if n != "compression_leaderboard"]) == 0
    head = (f"| report ({args.profile} profile) | runs in its plan | {MODES['serial']} | {MODES['local-ray']} | "
            "ratio |\n|---|---|---|---|---|")
    verdict = ("The two modes wrote identical claims ledgers." if same else
               "**The two modes wrote different claims ledgers** (see `tools/compare_ledgers.py`).")
    cmd = f"python tools/bench_book.py --profile {args.profile}" + "".join(f" --report {n}" for n in args.report or [])
    text = f"{stamp(cmd + ' --write')} Cold per-run cache, `--force`. {verdict}\n\n{head}\n" + "\n".join(rows)
    print(text)
    if args.write:
        write_section("book" if args.profile == "book" else f"book-{args.profile}", text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
