"""Command line: ``python -m paramspace {list,show,run,all,companion}``.

Examples::

    python -m paramspace list
    python -m paramspace show parameter_relevance --profile paper
    python -m paramspace run parameter_relevance --profile smoke --set n_seeds=3 --set "hidden=[32, 32]"
    python -m paramspace run parameter_relevance --profile paper --device cuda
    python -m paramspace all --profile book
    python -m paramspace run parameter_relevance --profile paper --address 10.0.0.5:6379   # a Ray cluster
    python -m paramspace companion parameter_relevance --profile paper --device cuda   # -> book/scale/paper/
"""

from __future__ import annotations

import argparse
import json
import sys

from .reports import PROFILES, REPORTS, ProfileError, resolve


def _yaml12_loader():
    """A safe YAML loader whose plain scalars follow YAML 1.2's core schema, not PyYAML's YAML 1.1:
    ``010`` is 10 (not octal 8), ``1:30`` is a string (not sexagesimal 90), ``yes``/``on`` are
    strings, ``1e-3`` is a float; only ``true``/``false`` are booleans.  Python tags
    (``!!python/...``) are refused, as by ``yaml.safe_load``."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    drop = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp"}
    Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] not in drop]
                                      for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                 list("-+0123456789"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                   r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+0123456789."))

    def construct_int(loader, node):
        text = loader.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return Loader


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit - 12]!r}...({len(text)} chars)"


def parse_value(name: str, text: str):
    """One ``--set`` value: JSON if it parses as JSON, else YAML 1.2 (core schema, safe tags only).
    Anything unreadable is a one-line :class:`ProfileError` naming the parameter and the value."""
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.load(text, Loader=_yaml12_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ProfileError(f"--set {name}: cannot read {_short(text)} as a value ({problem}); give a number, "
                           "true/false, a string or a list like [8, 8]") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ProfileError(f"--set {name}: cannot read {_short(text)} as a value ({str(exc).splitlines()[0]})") \
            from None


def parse_sets(pairs: list[str]) -> dict:
    """``["k=v", ...]`` -> dict, values read by :func:`parse_value` (numbers, lists, booleans, strings)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ProfileError(f"--set expects NAME=VALUE, got {_short(pair)}")
        k, v = pair.split("=", 1)
        k = k.strip()
        if not k:
            raise ProfileError(f"--set expects NAME=VALUE, got {_short(pair)} (no name)")
        if k in out:
            raise ProfileError(f"--set {k} is given twice")
        out[k] = parse_value(k, v)
    return out


def split_set_string(text: str) -> list[str]:
    """``'hidden=[8, 8] lr=0.1'`` -> ``['hidden=[8, 8]', 'lr=0.1']``: shell-style words (quotes group),
    and a word without ``=`` continues the previous one, so brackets with spaces need no quoting."""
    import shlex

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ProfileError(f"SET={text!r} cannot be split into NAME=VALUE words: {exc}") from None
    pairs: list[str] = []
    for w in words:
        if "=" in w.split("[", 1)[0].split("{", 1)[0] or not pairs:
            pairs.append(w)
        else:
            pairs[-1] += " " + w
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paramspace", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list reports and profiles")
    for name in ("show", "run"):
        p = sub.add_parser(name, help=f"{name} one report's parameters" if name == "show" else "run one report")
        p.add_argument("report", help=f"one of: {', '.join(REPORTS)}")
    p_all = sub.add_parser("all", help="run every report")
    p_all.add_argument("--jobs", type=int, default=1,
                       help="notebooks executed at once (default 1: in order, stop at the first failure)")
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
        p.add_argument("--address", default=None,
                       help="Ray cluster for the report's runs (default: $RAY_ADDRESS, else a local instance)")
    sub.choices["run"].add_argument("--no-wait", action="store_true",
                                    help="fail at once if this report is already running into --out")
    for p in (sub.choices["show"], sub.choices["run"], p_comp):
        p.add_argument("--set-string", default=None, metavar="'K=V K=V'",
                       help="overrides as one string, split like a shell line (make's SET)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for r in REPORTS.values():
                print(f"{r.name:24s} report {r.seed_id}: {r.title} ({r.author})")
            print(f"profiles: {', '.join(PROFILES)}")
            return 0
        pairs = list(getattr(args, "set", []))
        if getattr(args, "set_string", None):
            pairs += split_set_string(args.set_string)
        overrides = parse_sets(pairs)
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
                run_report(args.report, args.profile, overrides, args.out, args.force, wait=not args.no_wait,
                           address=args.address)
            else:
                run_all(args.profile, args.out, args.force, args.device, address=args.address, jobs=args.jobs)
        except ProfileError:
            raise
        except (ReportFailed, RuntimeError, OSError, ValueError) as exc:  # DataError is a RuntimeError
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("error: interrupted; the served outputs are those of the last complete run", file=sys.stderr)
            return 130
        return 0
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
