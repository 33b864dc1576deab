#!/usr/bin/env python3
"""Peak memory of ``curvature.hessian`` at the paper profiles' sizes (issue 16, item 5).

Each case runs in a fresh subprocess (so that ``ru_maxrss`` is that case's own peak): build the MLP
of a paper profile in float32 and ``n`` rows of random data, then time one Hessian.  Reported: the
resident set before the Hessian (Python, torch, model, data), its peak during the Hessian, their
difference (the Hessian's cost) and the size of ``H`` itself (P^2 float32).

    python tools/bench_hessian.py               # the table of BENCHMARKS.md, printed
    python tools/bench_hessian.py --write       # ... and BENCHMARKS.md rewritten with it
    python tools/bench_hessian.py --case relevance --rows 256 --budget 268435456   # one case (JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The MLPs whose full Hessian the paper profiles need (inputs, hidden widths, outputs, task).
CASES = {
    # parameter_relevance, paper profile: synthetic data set (100 features), hidden [32, 32], 1 output
    "relevance": (100, [32, 32], 1, "regression"),
    # compression_leaderboard, paper profile: MNIST pooled by 2 (14 x 14 = 196), hidden 64, 10 classes
    "leaderboard": (196, [64], 10, "classification"),
    # a small case where the all-directions-at-once Hessian still fits, for comparison
    "small": (30, [30], 1, "regression"),
}

# (case, rows, memory budget in bytes or 0 for torch.func.hessian all at once)
PLAN = [("small", 256, 0), ("small", 256, 1 << 28),
        ("relevance", 64, 0), ("relevance", 64, 1 << 24), ("relevance", 64, 1 << 28), ("relevance", 64, 1 << 30),
        ("relevance", 256, 0), ("relevance", 256, 1 << 28), ("relevance", 512, 1 << 28),
        ("leaderboard", 128, 1 << 28), ("leaderboard", 128, 1 << 30)]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import commit, machine, write_section  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(case: str, rows: int, budget: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from paramspace import curvature
    from paramspace.models import mlp

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    d, hidden, out, task = CASES[case]
    torch.manual_seed(0)
    model = mlp(d, hidden, out, "relu")
    X = torch.randn(rows, d)
    y = torch.randn(rows, 1) if task == "regression" else torch.randint(0, out, (rows,))
    P = curvature.flat_params(model)[0].numel()
    before = _rss_mb()
    t0 = time.perf_counter()
    if budget:
        block = curvature.column_block(model, X, P, rows, budget)
        H = curvature.hessian(model, X, y, task, batch_size=4096, memory_budget=budget)
    else:
        block = P
        H = curvature.hessian_full(model, X, y, task, batch_size=4096)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert H.shape == (P, P) and torch.isfinite(H).all()
    return {"case": case, "P": P, "rows": rows, "budget_mb": budget / 2**20 if budget else None, "block": block,
            "rss_before_mb": round(before), "peak_rss_mb": round(peak), "hessian_cost_mb": round(peak - before),
            "H_mb": round(P * P * 4 / 2**20), "seconds": round(seconds, 1)}


def table(results: list[dict]) -> str:
    rows = ["| case | P | rows n | method | columns per block | H itself (MB) | RSS before (MB) | peak RSS (MB) "
            "| peak - before (MB) | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        method = (f"blocked, budget {r['budget_mb']:.0f} MB" if r["budget_mb"] else "torch.func.hessian (all P at once)")
        rows.append(f"| {r['case']} | {r['P']} | {r['rows']} | {method} | {r['block']} | {r['H_mb']} | "
                    f"{r['rss_before_mb']} | {r['peak_rss_mb']} | {r['hessian_cost_mb']} | {r['seconds']} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--budget", type=int, default=1 << 30, help="bytes; 0 = torch.func.hessian all at once")
    ap.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md with the table")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(one(args.case, args.rows, args.budget)))
        return 0
    results = []
    for case, rows, budget in PLAN:
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--rows", str(rows), "--budget", str(budget)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(table(results[-1:]).splitlines()[-1], flush=True)
    text = table(results)
    if args.write:
        stamp = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit `{commit()}` on "
                 f"{machine()}; torch threads {os.environ.get('BENCH_THREADS', '1')}; "
                 f"`python tools/bench_hessian.py --write` (`make bench`).")
        write_section("hessian", f"{stamp}\n\n{text}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
