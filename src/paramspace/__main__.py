"""Command line: ``python -m paramspace {list,show,run,all,companion}``.

Examples::

    python -m paramspace list
    python -m paramspace show parameter_relevance --profile paper
    python -m paramspace run parameter_relevance --profile smoke --set n_seeds=3 --set "hidden=[32, 32]"
    python -m paramspace run parameter_relevance --profile paper --device cuda
    python -m paramspace all --profile book
    python -m paramspace companion parameter_relevance --profile paper --device cuda   # -> book/scale/paper/
"""

from __future__ import annotations

import argparse
import json
import sys

from .profiles import PROFILES, REPORTS, ProfileError, resolve


def parse_sets(pairs: list[str]) -> dict:
    """``["k=v", ...]`` -> dict, values parsed as YAML (numbers, lists, booleans, strings).

    JSON is tried first: PyYAML (YAML 1.1) reads ``1e-3`` as a string, JSON as a number.
    """
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ProfileError(f"--set expects NAME=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = yaml.safe_load(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paramspace", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list reports and profiles")
    for name in ("show", "run"):
        p = sub.add_parser(name, help=f"{name} one report's parameters" if name == "show" else "run one report")
        p.add_argument("report", help=f"one of: {', '.join(REPORTS)}")
    p_all = sub.add_parser("all", help="run every report")
    p_comp = sub.add_parser("companion", help="run one report with another profile and store it in book/scale/"
                                              "<profile>/ as a companion page, for committing")
    p_comp.add_argument("report", help=f"one of: {', '.join(REPORTS)}")
    p_comp.add_argument("--dir", default=None, help="companion folder (default: book/scale)")
    for p in (sub.choices["show"], sub.choices["run"], p_all, p_comp):
        p.add_argument("--profile", default="book", help=f"one of {PROFILES} (default: book)")
        p.add_argument("--device", default=None, help="auto, cpu or cuda (overrides the profile)")
    for p in (sub.choices["show"], sub.choices["run"], p_comp):
        p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override one parameter (YAML value), repeatable")
    for p in (sub.choices["run"], p_all):
        p.add_argument("--out", default=None, help="output folder (default: book/reports)")
        p.add_argument("--force", action="store_true", help="run even if the inputs are unchanged")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for r in REPORTS.values():
                print(f"{r.name:24s} report {r.seed_id}: {r.title} ({r.author})")
            print(f"profiles: {', '.join(PROFILES)}")
            return 0
        overrides = parse_sets(getattr(args, "set", []))
        if args.device:
            overrides["device"] = args.device
        if args.cmd == "show":
            print(json.dumps(resolve(args.report, args.profile, overrides), indent=1))
            return 0
        from .runner import ReportFailed, run_all, run_report

        try:
            if args.cmd == "companion":
                from .companion import store

                store(args.report, args.profile, overrides, args.dir)
            elif args.cmd == "run":
                run_report(args.report, args.profile, overrides, args.out, args.force)
            else:
                run_all(args.profile, args.out, args.force, args.device)
        except (ReportFailed, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
