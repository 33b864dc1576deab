#!/usr/bin/env python3
"""Benchmark: report 5's two hot spots on its synthetic network, before and after this project changed them.

1. Belsley's removal order (``pruning.belsley_order``) with the full eigendecomposition at every step
   (before) and with ``pruning.belsley_column`` (Cholesky + Lanczos where nothing is clipped; after).
2. The noise surface (``pruning.noise_surface``, 21 fractions x 7 input-noise levels x 20 draws on the
   2500 test rows) with every fraction drawing its own perturbations (before: each call reseeded the
   same generator, so the draws were the same) and with the draws made once (after; the numbers must
   be identical).

    .venv/bin/python tools/bench_relevance.py [--repeats 3] [--threads 1] [--write]

The matrices are those of one book-profile run of ``parameter_relevance`` (data set ``synthetic``, seed 0:
the variational MLP 100-16-1 trained as the report trains it, P = 1633): the Laplace covariance
``(H + 1e-3 I)^{-1}`` with the deck's condition index, and the gradient Gram matrix ``G`` with Belsley's
(singular, so every step falls back to the full ``eigh``).  The two ways alternate ``--repeats`` times;
the table gives medians and whether the two orders are identical.  ``--write`` puts the tables into
BENCHMARKS.md (section ``relevance``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.repeats < 1 or args.threads < 1:
        ap.error("--repeats and --threads must be >= 1")

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from paramspace import curvature, pruning, reports, variational
    from paramspace.reports import parameter_relevance as pr

    torch.set_num_threads(args.threads)
    threadpool_limits(limits=args.threads, user_api="blas")
    P = reports.resolve("parameter_relevance", "book")
    ds = pr.load_dataset("synthetic", P["seed"], P["synthetic_n"])
    bayes, _ = variational.fit_variational(
        ds, hidden=P["hidden"], epochs=P["synthetic_epochs"], lr=P["lr"], batch_size=P["batch_size"],
        prior_sigma=P["prior_sigma"], kl_weight=P["kl_weight"], seed=P["seed"], device="cpu", progress=False)
    det = variational.to_deterministic(bayes)
    H = curvature.hessian(det, ds.X_train, ds.y_train, ds.task)
    cases = [("Laplace covariance, deck's index", curvature.laplace_covariance(H, P["laplace_damping"]).numpy(),
              P["condition_index"]),
             ("gradient Gram G, Belsley's index", curvature.gradient_outer(det, ds.X_train, ds.y_train, ds.task)
              .double().numpy(), "belsley")]
    full_size = pruning._LANCZOS_MIN_SIZE
    rows = []
    for label, M, index in cases:
        times = {"full": [], "column": []}
        orders = {}
        for _ in range(args.repeats):
            for way in ("full", "column"):
                pruning._LANCZOS_MIN_SIZE = 10**9 if way == "full" else full_size
                t0 = time.perf_counter()
                orders[way] = pruning.belsley_order(M, n_steps=P["belsley_steps"], index=index)
                times[way].append(time.perf_counter() - t0)
        pruning._LANCZOS_MIN_SIZE = full_size
        same = np.array_equal(orders["full"], orders["column"])
        first = "identical" if same else f"differ from position {int(np.argmax(orders['full'] != orders['column']))}"
        a, b = statistics.median(times["full"]), statistics.median(times["column"])
        rows.append(f"| {label} | {len(M)} | {P['belsley_steps']} | {a:.1f} s | {b:.1f} s | {a / b:.2f}x | {first} |")
        print(rows[-1], flush=True)
    # 2. the noise surface, magnitude scores of the same network
    sc = pruning.magnitude_scores(det)
    kw = dict(fractions=P["fractions"], sigmas=P["noise_sigmas"], n_draws=P["noise_draws"], seed=P["seed"])

    def per_fraction():  # what noise_surface did before: each fraction's call draws the noise again
        return [float(v) for f in kw["fractions"] for v in pruning.noise_response(
            pruning.prune_by_scores(det, sc, f, kw["seed"]), ds.X_test, kw["sigmas"], ds.task,
            n_draws=kw["n_draws"], seed=kw["seed"])]

    def once():
        return [r["output_std"] for r in pruning.noise_surface(det, sc, ds.X_test, ds.task, **kw)]

    tn = {"per fraction": [], "once": []}
    for _ in range(args.repeats):
        for way, f in (("per fraction", per_fraction), ("once", once)):
            t0 = time.perf_counter()
            values = f()
            tn[way].append(time.perf_counter() - t0)
            if way == "per fraction":
                ref = values
    same_noise = values == ref
    a, b = statistics.median(tn["per fraction"]), statistics.median(tn["once"])
    noise_row = (f"| noise surface, {len(kw['fractions'])} fractions x {len(kw['sigmas'])} sigmas x {kw['n_draws']} "
                 f"draws, X_test {tuple(ds.X_test.shape)} | {a:.1f} s | {b:.1f} s | {a / b:.2f}x | "
                 f"{'identical' if same_noise else 'DIFFERENT'} |")
    print(noise_row, flush=True)
    from benchmarks_md import stamp, write_section

    head = ("| matrix | P | steps | full eigh every step (median) | belsley_column (median) | ratio | orders |\n"
            "|---|---|---|---|---|---|---|")
    noise_head = ("| workload | noise drawn per fraction (median) | drawn once (median) | ratio | numbers |\n"
                  "|---|---|---|---|---|")
    text = (f"{stamp(f'python tools/bench_relevance.py --repeats {args.repeats} --threads {args.threads} --write')} "
            f"{args.threads} thread(s), {args.repeats} alternating repeats.\n\n{head}\n" + "\n".join(rows)
            + f"\n\n{noise_head}\n{noise_row}")
    print(text)
    if args.write:
        write_section("relevance", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
