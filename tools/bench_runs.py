#!/usr/bin/env python3
"""Benchmark (issue 14): where a profile's time goes, run by run, on this machine.

    .venv/bin/python tools/bench_runs.py [--profile book] [--report NAME ...] [--threads 1] [--json OUT]
    .venv/bin/python tools/bench_runs.py --from A.json [B.json ...] [--write]

Every run of each report's plan (``plan(P)``, the engine's unit of work) is executed one after the
other in this process with ``torch`` limited to ``--threads`` threads (the book profile's
``cpu_threads``), no Ray, no cache, and its wall time recorded.  The runs are grouped by the plan keys
that vary between them, the seed left out (e.g. report 2's ``kind`` and ``lam``).  The summary gives,
per report, the serial total (what one core does) and the longest run, and so the least wall time two
independent cores could reach, ``max(total / 2, longest)``, whatever the engine does.

Two processes can measure disjoint reports at once on two cores (``--json``), and ``--from`` joins their
files into one table; ``--write`` puts it into BENCHMARKS.md (section ``runs``).  The first run in a
process also pays one-off imports (``torch._dynamo`` on the first optimiser, ``scipy.stats``), as the
first task of a Ray worker does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import stamp, write_section  # noqa: E402


def _short(value) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def group_keys(runs: list[dict]) -> list[str]:
    """The keys that tell the runs of a plan apart, the seed left out: those with two or more values
    among the runs that set them, then those set by only some runs, where that alone splits runs
    the first keys put together (e.g. report 3's ``collapse``; not report 2's hypernetwork settings,
    which only its hypernetwork runs carry and whose ``kind`` already names them)."""
    def values(k):
        return {json.dumps(run[k], sort_keys=True) for run in runs if run.get(k) is not None}

    keys = sorted({k for run in runs for k in run} - {"seed"})
    chosen = [k for k in keys if len(values(k)) > 1]
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(json.dumps([run.get(k) for k in chosen], sort_keys=True), []).append(run)
    for k in keys:
        if k not in chosen and any(len({run.get(k) is None for run in g}) > 1 for g in groups.values()):
            chosen.append(k)
    return sorted(chosen)


def label(run: dict, keys: list[str]) -> str:
    """The run's values of ``keys``, those it does not set (``None``) left out."""
    return ", ".join(f"{k}={_short(run[k])}" for k in keys if run.get(k) is not None) or "(all alike)"


def measure(name: str, profile: str) -> dict:
    from tqdm import tqdm

    from paramspace import reports

    mod = reports.module(name)
    rows = []
    for run in tqdm(mod.plan(reports.resolve(name, profile)), desc=name, leave=False):
        t0 = time.perf_counter()
        mod.execute(run)
        rows.append(dict(seconds=time.perf_counter() - t0, run=run))
    return dict(report=name, profile=profile, runs=rows)


def labels(res: dict) -> list[str]:
    """Each measured run's label, the keys chosen among all the runs of its report."""
    runs = [r["run"] for r in res["runs"]]
    keys = group_keys(runs)
    return [label(run, keys) for run in runs]


#: the summary table's head (``tools/bench_gpu.py`` reads its last column back as the 2-core baseline)
SUMMARY_HEAD = "| report | runs | serial total (one core) | longest run | least wall time on 2 cores |"


def markdown(results: list[dict], header: str) -> str:
    lines = [header, "", SUMMARY_HEAD, "|---|---|---|---|---|"]
    grand = slowest = 0.0
    for res in results:
        secs = [r["seconds"] for r in res["runs"]]
        total, longest = sum(secs), max(secs)
        grand, slowest = grand + total, max(slowest, longest)
        lines.append(f"| {res['report']} | {len(secs)} | {total:.0f} s | {longest:.0f} s | "
                     f"{max(total / 2, longest):.0f} s |")
    lines.append(f"| **all** | | **{grand:.0f} s** | {slowest:.0f} s | **{max(grand / 2, slowest):.0f} s** |")
    lines += ["", "| report | runs alike (seed left out) | runs | median | total |", "|---|---|---|---|---|"]
    for res in results:
        groups: dict[str, list[float]] = {}
        for lab, r in zip(labels(res), res["runs"]):
            groups.setdefault(lab, []).append(r["seconds"])
        for lab, secs in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
            lines.append(f"| {res['report']} | {lab} | {len(secs)} | {statistics.median(secs):.1f} s | "
                         f"{sum(secs):.0f} s |")
    return "\n".join(lines)


def main() -> int:
    from paramspace import reports
    from paramspace.runner import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="book")
    ap.add_argument("--report", action="append", choices=reports.NAMES)
    ap.add_argument("--threads", type=int, default=1, help="torch (and BLAS) threads (default 1)")
    ap.add_argument("--json", type=Path, help="also save the measurements here")
    ap.add_argument("--from", dest="sources", nargs="+", type=Path, help="join saved measurements; no runs")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md (section 'runs')")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.sources:
        missing = [str(p) for p in args.sources if not p.is_file()]
        if missing:
            ap.error(f"no such measurement file: {', '.join(missing)}")
        saved = [json.loads(p.read_text()) for p in args.sources]
        results = [res for s in saved for res in s["results"]]
        header = "\n\n".join(dict.fromkeys(s["header"] for s in saved))  # one paragraph per process
    else:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        names = args.report or list(reports.NAMES)
        # stamped before measuring: the commit whose code this process imports, and when it started
        header = (stamp(f"python tools/bench_runs.py --profile {args.profile} "
                        + " ".join(f"--report {n}" for n in names) + f" --threads {args.threads}")
                  + f" Profile `{args.profile}`, {args.threads} torch/BLAS thread(s), one process, no Ray, no cache.")
        with threadpool_limits(args.threads):
            results = [measure(name, args.profile) for name in names]
        if args.json:
            atomic_write_text(args.json, json.dumps(dict(header=header, results=results), indent=1))
    text = markdown(results, header)
    print(text)
    if args.write:
        write_section("runs", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
