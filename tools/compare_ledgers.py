#!/usr/bin/env python3
"""Compare the claims ledgers (``<report>.claims.json``) of two output folders, row by row.

    python tools/compare_ledgers.py BEFORE_DIR AFTER_DIR [--report NAME ...] [--notebooks]

Prints every row whose text, numbers or verdict differ (rows are matched by their claim text, in
order) and exits 1 if any ledger differs, 0 if all are identical.  ``--notebooks`` also compares the
executed notebooks' Markdown outputs (the generated tables and prose, in order; the provenance footer
left out) line by line, for chapters without a ledger (the leaderboard).  Used to show that a refactoring
left the book's numbers unchanged (issue 11) and that the engine gives the same ledgers (issue 14).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return data["claims"] if isinstance(data, dict) else data


def markdown_outputs(path: Path) -> list[str]:
    """The ``text/markdown`` outputs of an executed notebook, in order, less the provenance footer."""
    nb = json.loads(path.read_text())
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            text = "".join(o.get("data", {}).get("text/markdown", ""))
            if text and not text.startswith("| provenance |"):
                out.append(text)
    return out


def compare_notebooks(before: Path, after: Path, names: list[str] | None = None) -> int:
    names = names or sorted({p.stem for p in before.glob("*.ipynb")} & {p.stem for p in after.glob("*.ipynb")})
    differ = 0
    for name in names:
        a, b = markdown_outputs(before / f"{name}.ipynb"), markdown_outputs(after / f"{name}.ipynb")
        la = [line for text in a for line in text.splitlines()]
        lb = [line for text in b for line in text.splitlines()]
        if la == lb:
            print(f"{name}.ipynb: Markdown outputs identical ({len(a)} outputs)")
            continue
        differ += 1
        import difflib

        diff = list(difflib.unified_diff(la, lb, "before", "after", n=0, lineterm=""))
        print(f"{name}.ipynb: Markdown outputs differ ({len(diff)} diff lines)")
        print("\n".join("  " + d[:160] for d in diff[:40]))
    return 1 if differ else 0


def compare(before: Path, after: Path, names: list[str] | None = None) -> int:
    names = names or sorted({p.name[:-len(".claims.json")] for p in before.glob("*.claims.json")}
                            | {p.name[:-len(".claims.json")] for p in after.glob("*.claims.json")})
    differ = 0
    for name in names:
        a, b = before / f"{name}.claims.json", after / f"{name}.claims.json"
        if not a.exists() or not b.exists():
            print(f"{name}: ledger missing in {'before' if not a.exists() else 'after'}")
            differ += 1
            continue
        ra, rb = rows(a), rows(b)
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(ra, rb)) if x != y]
        if len(ra) != len(rb) or bad:
            differ += 1
            print(f"{name}: {len(ra)} rows before, {len(rb)} after, {len(bad)} differ")
            for i, x, y in bad[:20]:
                keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
                print(f"  row {i} ({str(x.get('claim', ''))[:70]!r}):")
                for k in keys:
                    print(f"    {k}: {str(x.get(k))[:100]!r} -> {str(y.get(k))[:100]!r}")
        else:
            print(f"{name}: identical ({len(ra)} rows)")
    return 1 if differ else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--report", action="append", help="compare only this report (repeatable)")
    ap.add_argument("--notebooks", action="store_true", help="also compare the notebooks' Markdown outputs")
    args = ap.parse_args(argv)
    rc = compare(args.before, args.after, [r for r in args.report or [] if r != "compression_leaderboard"]
                 or (None if not args.report else []))
    if args.notebooks:
        rc |= compare_notebooks(args.before, args.after, args.report)
    return rc


if __name__ == "__main__":
    sys.exit(main())
