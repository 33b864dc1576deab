#!/usr/bin/env python3
"""Benchmark (issue 14 (c)): each report's book profile on the GPU vs on N CPU threads, and report 2's
full paper profile on the GPU.

    .venv/bin/python tools/bench_gpu.py [--report NAME ...] [--cpu-threads 2] [--paper variational_complexity]
                                        [--write]

Where CUDA is absent it says so and exits 0 (``make bench`` runs it on every machine).  Each
measurement is one fresh process that drives the library directly, without notebooks, papermill or
Ray (the GPU machine need not have them): ``summarize(P, [execute(r) for r in plan(P)])`` of the report
with ``device`` set to ``cpu`` or ``cuda``, the per-run cache off, the clock stopped after
``torch.cuda.synchronize()``.  The CPU side uses ``--cpu-threads`` torch and BLAS threads (default 2: the
book's machine), the report's own ``cpu_threads`` parameter set to the same where it has one.  A report
that fails (e.g. a package missing on the GPU machine) gets its error in the table instead of a time.
Then the GPU habits of issue 14, item 4 (``frame_regularization``'s ``amp="bf16"``, ``channels_last``,
``cudnn_benchmark``), each alone against none of them on the GPU (``--no-habits`` skips them): a habit
becomes the paper profile's default only if this table shows it faster.
``--write`` puts the table into BENCHMARKS.md (section ``gpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


#: the GPU habits of issue 14, item 4, each timed alone against none of them
HABITS = ({"amp": "bf16"}, {"channels_last": True}, {"cudnn_benchmark": True})


def one(name: str, profile: str, device: str, threads: int, extra: dict | None = None) -> dict:
    """In this process: the report's whole plan, one run after the other, timed."""
    os.environ["PARAMSPACE_RUN_CACHE"] = "off"
    os.environ["PARAMSPACE_ENGINE"] = "serial"
    import torch
    from threadpoolctl import threadpool_limits

    from paramspace import reports

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
    over = {"device": device, **(extra or {})}
    if "cpu_threads" in reports.get_report(name).params:
        over["cpu_threads"] = threads
    P = reports.resolve(name, profile, over)
    mod = reports.module(name)
    runs = mod.plan(P)
    t0 = time.perf_counter()
    mod.summarize(P, [mod.execute(r) for r in runs])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "runs": len(runs)}


def measure(name: str, profile: str, device: str, threads: int, extra: dict | None = None) -> dict:
    """:func:`one` in a fresh process (``extra``: more parameter values); ``{"error": ...}`` if it failed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, __file__, "--one", name, "--profile", profile, "--device", device,
                           "--cpu-threads", str(threads), "--extra", json.dumps(extra or {})], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        return {"error": last[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cell(m: dict) -> str:
    return f"{m['seconds']:.0f} s" if "seconds" in m else f"failed: `{m['error']}`"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="append", help="report(s) to time (default: all)")
    ap.add_argument("--profile", default="book")
    ap.add_argument("--cpu-threads", type=int, default=2, help="torch/BLAS threads of the CPU side (default 2)")
    ap.add_argument("--paper", action="append", default=None,
                    help="report(s) whose paper profile is also timed on the GPU (default: variational_complexity)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    ap.add_argument("--extra", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--no-habits", action="store_true",
                    help="skip the GPU habits of frame_regularization (bf16, channels_last, cudnn.benchmark)")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md (section 'gpu')")
    args = ap.parse_args()
    if args.cpu_threads < 1:
        ap.error(f"--cpu-threads must be >= 1, got {args.cpu_threads}")
    if args.one:
        print(json.dumps(one(args.one, args.profile, args.device, args.cpu_threads, json.loads(args.extra))))
        return 0

    import torch

    from paramspace import reports

    names = args.report or list(reports.NAMES)
    unknown = [n for n in names + (args.paper or []) if n not in reports.NAMES]
    if unknown:
        ap.error(f"unknown report(s) {unknown}; valid: {', '.join(reports.NAMES)}")
    if not torch.cuda.is_available():
        print("bench_gpu: CUDA is not available on this machine; nothing to measure (run it where a GPU is).")
        return 0
    gpu = torch.cuda.get_device_name(0)
    rows = []
    for name in names:
        cpu = measure(name, args.profile, "cpu", args.cpu_threads)
        cuda = measure(name, args.profile, "cuda", args.cpu_threads)
        ratio = f"{cpu['seconds'] / cuda['seconds']:.2f}x" if "seconds" in cpu and "seconds" in cuda else "-"
        rows.append(f"| {name} | {args.profile} | {cell(cpu)} | {cell(cuda)} | {ratio} |")
        print(rows[-1], flush=True)
    if not args.no_habits:  # issue 14, item 4: each habit alone against none, the ResNet report on the GPU
        off = measure("frame_regularization", args.profile, "cuda", args.cpu_threads)
        for habit in HABITS:
            on = measure("frame_regularization", args.profile, "cuda", args.cpu_threads, habit)
            ratio = f"{off['seconds'] / on['seconds']:.2f}x" if "seconds" in off and "seconds" in on else "-"
            label = ", ".join(f"{k}={v}" for k, v in habit.items())
            rows.append(f"| frame_regularization, {label} | {args.profile} | - | {cell(on)} | {ratio} vs off "
                        f"({cell(off)}) |")
            print(rows[-1], flush=True)
    for name in args.paper if args.paper is not None else ["variational_complexity"]:
        cuda = measure(name, "paper", "cuda", args.cpu_threads)
        rows.append(f"| {name} | paper | not run | {cell(cuda)} | - |")
        print(rows[-1], flush=True)
    from benchmarks_md import stamp, write_section

    head = (f"| report | profile | CPU ({args.cpu_threads} threads) | {gpu} | CPU / GPU |\n"
            "|---|---|---|---|---|")
    cmd = "python tools/bench_gpu.py" + "".join(f" --report {n}" for n in args.report or [])
    text = (f"{stamp(cmd + ' --write')} One fresh process per cell, the library driven directly (no notebook, "
            f"no Ray), per-run cache off.\n\n{head}\n" + "\n".join(rows))
    print(text)
    if args.write:
        write_section("gpu", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
