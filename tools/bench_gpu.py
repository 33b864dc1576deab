#!/usr/bin/env python3
"""Benchmark (issue 14 (c)): each report's book profile on the GPU against two CPU cores, report 2's full
paper profile on the GPU, and the GPU habits, within a device session's budget.

    .venv/bin/python tools/bench_gpu.py [--report NAME ...] [--paper variational_complexity] [--no-habits]
        [--baseline runs|measure] [--cpu-threads 2] [--parallel N] [--cell-timeout S] [--budget S]
        [--json OUT] [--markdown OUT] [--write]

Where CUDA is absent it says so and exits 0 (``make bench`` runs it on every machine); ``--device``
names another accelerator (``cpu`` in the tests).  Each cell is one fresh process that drives the
library directly, without notebooks, papermill or Ray (the GPU machine need not have them):
``summarize(P, [execute(r) for r in plan(P)])`` of the report, the per-run cache off, the clock stopped
after ``torch.cuda.synchronize()``.  A report that fails (e.g. a package missing on the GPU machine) gets
its error in the table instead of a time.

The CPU side (``--baseline``):

* ``runs`` (default): the 2-core machine's least wall time for the report's runs, ``max(total / 2,
  longest run)`` of BENCHMARKS.md's ``runs`` section (``tools/bench_runs.py``, measured on that machine;
  its header is quoted).  It is a lower bound of what two cores take (the notebook, the summary and the
  scheduling left out), so the ratio it gives is the GPU's *least* speed-up.  The GPU machine does not
  spend its budget re-timing the CPU.
* ``measure``: the same cell on this machine's CPU with ``--cpu-threads`` threads, as before.

A device session has 15 minutes, one command at most 10 (``/work/.library/device/README.md``); timed
one after the other the cells take far longer.  So ``--parallel N`` runs N cells at once, in priority
order (each report's book profile, then the paper profiles, then the habits), and ``--cell-timeout``
and ``--budget`` bound each device cell and all of them (the CPU cells of ``--baseline measure`` only
by ``--cell-timeout``): a cell stopped at its limit reads ``> T s (stopped)``, with no speed-up (T counts
the process's start-up, which the clock of a finished cell does not), a cell whose turn comes with less
than a quarter of ``--cell-timeout`` (at least 5 s) of the budget left ``not run (budget)``.  Cells that
ran at once shared the GPU and the CPU, so each time is an upper bound of the cell alone (the speed-up a
lower bound); the table says how many ran at once.  Each finished cell is printed at once, and
``--json`` is rewritten when a cell starts (``running_since``) and when it ends, so a command killed at
its limit still leaves what was measured and what was still running.

The GPU habits of issue 14, item 4 (``frame_regularization``'s ``amp="bf16"``, ``channels_last``,
``cudnn_benchmark``), each alone against the report's own book cell without them (``--no-habits`` skips
them): a habit becomes the paper profile's default only if this table shows it faster.  With
``--parallel`` at least the number of cells, all of them start together; cells ending at different times
still leave the later ones a lighter machine, so a habit's gain must be large to count.  ``--write`` puts
the table into BENCHMARKS.md (section ``gpu``), ``--markdown`` into a file of its own (the device machine
sends back files, not commits).  Bad options are refused (exit 2) before anything else, then a machine
without CUDA says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


#: the GPU habits of issue 14, item 4, each timed alone against none of them
HABITS = ({"amp": "bf16"}, {"channels_last": True}, {"cudnn_benchmark": True})
#: the report the habits apply to (the ResNet runs)
HABIT_REPORT = "frame_regularization"


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


def measure(name: str, profile: str, device: str, threads: int, extra: dict | None = None,
            timeout: float | None = None) -> dict:
    """:func:`one` in a fresh process (``extra``: more parameter values): ``{"seconds", "runs"}``,
    ``{"timeout": T}`` if it was stopped after ``timeout`` seconds, ``{"error": ...}`` if it failed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, __file__, "--one", name, "--profile", profile, "--device", device,
           "--cpu-threads", str(threads), "--extra", json.dumps(extra or {})]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": float(timeout)}
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        return {"error": last[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cell(m: dict) -> str:
    """A measurement as a table cell."""
    if "seconds" in m:
        return f"{m['seconds']:.0f} s"
    if "timeout" in m:
        return f"> {m['timeout']:.0f} s (stopped)"
    if "skipped" in m:
        return f"not run ({m['skipped']})"
    if "running_since" in m:
        return f"still running (since {m['running_since']:.0f} s)"
    return "failed: `" + str(m.get("error", "no result")).replace("`", "'").replace("|", "/") + "`"


def ratio(slow: dict, fast: dict) -> str:
    """``slow / fast`` as a speed-up, ``-`` unless both have a time: a stopped cell's limit also counts
    its process's start-up, which a finished cell's clock leaves out, so it bounds nothing here."""
    if "seconds" in slow and "seconds" in fast:
        return f"{slow['seconds'] / fast['seconds']:.2f}x"
    return "-"


def runs_baseline(text: str) -> tuple[dict[str, float], str, str]:
    """From BENCHMARKS.md's text: each report's least wall time on two cores (seconds) in the ``runs``
    section's summary table, where and when it was measured (from the section's first header line) and
    the profile it was measured for."""
    from bench_runs import SUMMARY_HEAD
    from benchmarks_md import read_section

    section = read_section("runs", text)
    if section is None:
        raise ValueError("BENCHMARKS.md has no 'runs' section: run `python tools/bench_runs.py ... --write` "
                         "on the 2-core machine first, or use --baseline measure")
    first = next((line for line in section.splitlines() if line.startswith("Measured")), "")
    where = re.match(r"Measured (.*?) at commit `(.*?)`.*? on (.*?);", first)
    head = f"measured {where[1]} at commit `{where[2]}` on {where[3]}" if where else "undated"
    base, lines = {}, section.splitlines()
    at = next((i for i, line in enumerate(lines) if line == SUMMARY_HEAD), None)
    for line in lines[at + 2:] if at is not None else []:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[a-z_]+", cells[0]) and re.fullmatch(r"\d+(\.\d+)? s", cells[4]):
            base[cells[0]] = float(cells[4][:-2])
    if not base:
        raise ValueError("BENCHMARKS.md's 'runs' section has no summary table (report, runs, serial total, "
                         "longest run, least wall time on 2 cores)")
    profile = re.search(r"Profile `(\w+)`", section)
    return base, head, profile[1] if profile else "book"


def jobs(names: list[str], papers: list[str], habits: bool, profile: str) -> list[dict]:
    """The GPU cells in priority order: each report's book profile, the paper profiles, the habits (each
    alone; compared with the report's own book cell, which has none of them)."""
    out = [dict(key=f"{n}|{profile}", report=n, profile=profile, extra={}) for n in names]
    out += [dict(key=f"{n}|paper", report=n, profile="paper", extra={}) for n in papers]
    if habits:
        out += [dict(key=f"{HABIT_REPORT}|{profile}|" + json.dumps(h, sort_keys=True), report=HABIT_REPORT,
                     profile=profile, extra=dict(h)) for h in HABITS]
    return out


def run_jobs(todo: list[dict], device: str, threads: int, parallel: int, cell_timeout: float | None,
             budget: float | None, on_done=None, measure_fn=None) -> dict[str, dict]:
    """Each job's measurement, ``parallel`` at a time in the order given.  A job's limit is
    ``cell_timeout`` or what is left of ``budget``, whichever is less; a job whose turn comes with less
    of the budget left than a quarter of ``cell_timeout`` (at least 5 s: a shorter limit would time
    little more than the start-up) is not run.  A measurement that raises is recorded as its error.
    ``on_done(results, key)`` is called when a job starts (its entry ``{"running_since": seconds}``)
    and when it ends."""
    measure_fn = measure_fn or measure
    t0 = time.monotonic()
    deadline = None if budget is None else t0 + budget
    floor = 5.0 if cell_timeout is None else max(5.0, cell_timeout / 4)
    results: dict[str, dict] = {}
    lock = threading.Lock()

    def record(key, m):
        with lock:
            results[key] = m
            if on_done:
                on_done(dict(results), key)

    def work(job):
        limit = cell_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < floor:
                record(job["key"], {"skipped": "budget"})
                return
            limit = left if limit is None else min(limit, left)
        record(job["key"], {"running_since": time.monotonic() - t0})
        try:
            m = measure_fn(job["report"], job["profile"], device, threads, job["extra"], limit)
        except Exception as e:  # noqa: BLE001 -- one cell's failure must not cost the others' table
            m = {"error": f"{type(e).__name__}: {e}"[:160]}
        record(job["key"], m)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(work, todo))
    return {j["key"]: results[j["key"]] for j in todo}


def table(todo: list[dict], results: dict[str, dict], cpu: dict[str, dict], device_name: str, cpu_label: str) -> list[str]:
    """The Markdown rows: per report, the CPU baseline, the GPU time and the speed-up; the paper rows; the
    habit rows (each against the report's own book cell, without habits)."""
    rows = [f"| report | profile | {cpu_label} | {device_name} | speed-up |", "|---|---|---|---|---|"]
    for job in todo:
        m = results.get(job["key"], {"skipped": "budget"})
        if job["extra"]:
            off = results.get(f"{job['report']}|{job['profile']}", {"skipped": "budget"})
            label = ", ".join(f"{k}={v}" for k, v in job["extra"].items())
            rows.append(f"| {job['report']}, {label} | {job['profile']} | - | {cell(m)} | "
                        f"{ratio(off, m)} vs none ({cell(off)}) |")
        elif job["profile"] == "paper":
            rows.append(f"| {job['report']} | paper | not run | {cell(m)} | - |")
        else:
            c = cpu.get(job["report"], {"skipped": "no baseline"})
            rows.append(f"| {job['report']} | {job['profile']} | {cell(c)} | {cell(m)} | {ratio(c, m)} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="append", help="report(s) to time (default: all)")
    ap.add_argument("--profile", default="book")
    ap.add_argument("--baseline", choices=("runs", "measure"), default="runs",
                    help="CPU side: the 2-core machine's runs table in BENCHMARKS.md (default) or measured here")
    ap.add_argument("--cpu-threads", type=int, default=2, help="torch/BLAS threads of each process (default 2)")
    ap.add_argument("--paper", action="append", default=None,
                    help="report(s) whose paper profile is also timed on the GPU (default: variational_complexity)")
    ap.add_argument("--parallel", type=int, default=1, help="cells run at once (default 1)")
    ap.add_argument("--cell-timeout", type=float, default=None, help="seconds after which a cell is stopped")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all cells; later ones are not run")
    ap.add_argument("--json", type=Path, help="the measurements so far, rewritten after every cell")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help="the accelerator (default cuda)")
    ap.add_argument("--extra", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--no-habits", action="store_true",
                    help="skip the GPU habits of frame_regularization (bf16, channels_last, cudnn.benchmark)")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md (section 'gpu')")
    args = ap.parse_args()
    if args.cpu_threads < 1:
        ap.error(f"--cpu-threads must be >= 1, got {args.cpu_threads}")
    if args.parallel < 1:
        ap.error(f"--parallel must be >= 1, got {args.parallel}")
    for opt in ("cell_timeout", "budget"):
        if getattr(args, opt) is not None and getattr(args, opt) <= 0:
            ap.error(f"--{opt.replace('_', '-')} must be > 0 seconds, got {getattr(args, opt)}")
    if args.one:
        print(json.dumps(one(args.one, args.profile, args.device, args.cpu_threads, json.loads(args.extra))))
        return 0

    from paramspace import reports

    names = args.report or list(reports.NAMES)
    papers = args.paper if args.paper is not None else ["variational_complexity"]
    unknown = [n for n in names + papers if n not in reports.NAMES]
    if unknown:
        ap.error(f"unknown report(s) {unknown}; valid: {', '.join(reports.NAMES)}")
    from benchmarks_md import PATH, stamp, write_section
    from paramspace.runner import atomic_write_text

    if args.baseline == "runs":
        try:
            base, head, base_profile = runs_baseline(PATH.read_text() if PATH.exists() else "")
        except ValueError as e:
            ap.error(str(e))
        if base_profile != args.profile:
            ap.error(f"BENCHMARKS.md's 'runs' table is of profile {base_profile!r}, not {args.profile!r}; "
                     "use --baseline measure")
        missing = [n for n in names if n not in base]
        if missing:
            ap.error(f"BENCHMARKS.md's 'runs' table has no row for {missing}; use --baseline measure")
    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("bench_gpu: CUDA is not available on this machine; nothing to measure (run it where a GPU is).")
        return 0
    device_name = torch.cuda.get_device_name(0) if cuda else args.device
    threads = f"thread{'s' if args.cpu_threads > 1 else ''}"
    habits = not args.no_habits and HABIT_REPORT in names
    todo = jobs(names, papers, habits, args.profile)
    t0 = time.monotonic()

    def save(results, key):
        if "running_since" not in results[key]:  # the log (and a device call's output) shows each cell as it ends
            print(f"bench_gpu: {key}: {cell(results[key])} (at {time.monotonic() - t0:.0f} s)", flush=True)
        if args.json:
            atomic_write_text(args.json, json.dumps(dict(device=device_name, parallel=args.parallel,
                                                         elapsed=time.monotonic() - t0, results=results), indent=1))

    if args.baseline == "runs":
        cpu = {n: {"seconds": base[n]} for n in names}
        cpu_label = "2 CPU cores, least wall time (bench:runs)"
        source = f" CPU side: the `runs` section, {head}."
    else:
        # one at a time: the CPU side is what these threads alone do
        cpu = run_jobs([dict(key=n, report=n, profile=args.profile, extra={}) for n in names], "cpu",
                       args.cpu_threads, 1, args.cell_timeout, None)
        cpu_label = f"CPU ({args.cpu_threads} {threads}, this machine)"
        source = " CPU side measured on this machine, the same way."
    results = run_jobs(todo, args.device, args.cpu_threads, args.parallel, args.cell_timeout, args.budget, save)
    rows = table(todo, results, cpu, device_name, cpu_label)
    cmd = shlex.join(["python", "tools/bench_gpu.py", *(a for a in sys.argv[1:] if a != "--write")])
    together = ("one cell at a time" if args.parallel == 1 else
                f"up to {min(args.parallel, len(todo))} of its {len(todo)} cells at once, sharing the GPU and "
                f"the CPU (each time an upper bound of the cell alone)")
    text = (f"{stamp(cmd)} One fresh process per cell, the library driven directly (no notebook, no Ray), "
            f"per-run cache off, {args.cpu_threads} torch/BLAS {threads} per process, {together}; "
            f"{time.monotonic() - t0:.0f} s in all.{source}\n\n" + "\n".join(rows))
    print(text, flush=True)
    if args.markdown:
        atomic_write_text(args.markdown, text + "\n")
    if args.write:
        write_section("gpu", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
