"""Benchmark (issue 14 (b)): K networks 784-100-10, one MNIST epoch, batched (paramspace.family)
vs one after the other (paramspace.train.train). Prints a Markdown row for BENCHMARKS.md.

    .venv/bin/python tools/bench_family.py [--k 30] [--repeats 3] [--device cpu] [--threads 0]

Repeats alternate the two ways (sequential, batched, sequential, ...) so that load from other
processes hits both alike; medians and their ratio are reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time

import torch

from paramspace import data as D
from paramspace import family as F
from paramspace.models import mlp
from paramspace.train import resolve_device, train


def models(k: int) -> list:
    out = []
    for s in range(k):
        torch.manual_seed(s)
        out.append(mlp(784, [100], 10))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--write", action="store_true",
                    help="write the row into BENCHMARKS.md (section 'family' on CPU, 'family-gpu' on CUDA)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    data = D.load_mnist()
    seeds = list(range(args.k))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def sequential() -> float:
        ms = models(args.k)
        sync(); t0 = time.perf_counter()
        for m, s in zip(ms, seeds):
            train(m, data, epochs=1, lr=1e-3, batch_size=args.batch_size, seed=s, device=str(dev), progress=False)
        sync()
        return time.perf_counter() - t0

    def batched() -> float:
        ms = models(args.k)
        sync(); t0 = time.perf_counter()
        F.fit_family(ms, data, seeds=seeds, epochs=1, lr=1e-3, batch_size=args.batch_size, device=str(dev),
                     progress=False)
        sync()
        return time.perf_counter() - t0

    seq, bat = [], []
    for _ in range(args.repeats):
        seq.append(sequential())
        bat.append(batched())
    ms, mb = statistics.median(seq), statistics.median(bat)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    print(f"sequential: {', '.join(f'{t:.2f}' for t in seq)} s; batched: {', '.join(f'{t:.2f}' for t in bat)} s")
    row = (f"| K = {args.k} MLPs 784-100-10, one MNIST epoch (60000 images, batch {args.batch_size}) | {where} | "
           f"`{commit}` | {ms:.2f} s | {mb:.2f} s | {ms / mb:.2f}x |")
    print(row)
    if args.write:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from benchmarks_md import stamp, write_section

        head = ("| workload | machine | commit | one after the other (median) | batched (median) | ratio |\n"
                "|---|---|---|---|---|---|")
        runs = (f"Runs: {', '.join(f'{t:.1f}' for t in seq)} s one after the other; "
                f"{', '.join(f'{t:.1f}' for t in bat)} s batched.")
        cmd = f"python tools/bench_family.py --k {args.k} --repeats {args.repeats} --threads {args.threads} --write"
        write_section("family-gpu" if dev.type == "cuda" else "family", f"{stamp(cmd)} {runs}\n\n{head}\n{row}")


if __name__ == "__main__":
    main()
