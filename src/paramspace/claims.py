"""Claims ledger: what a report claims, what we measured, and a verdict derived from the numbers.

Verdict rule for a claim "A beats B" measured as per-seed paired differences ``d_s`` (positive =
the claim holds on that seed): with the mean ``m`` and its two-sided 95% Student-t interval
``[lo, hi]``,

* ``reproduced``      if ``lo > 0`` (the improvement is clear across seeds);
* ``partly``          if ``m > 0`` but the interval reaches 0 (right direction, not resolved);
* ``not reproduced``  if ``m <= 0``.

Each report writes its ledger as JSON (``<output dir>/<report>.claims.json``) with
:func:`write_ledger`; the book's scorecard reads them back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

VERDICTS = ("reproduced", "partly", "not reproduced")


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval; infinite for fewer than two values."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, -np.inf, np.inf
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def verdict_paired(diffs, level: float = 0.95) -> str:
    m, lo, _ = mean_interval(diffs, level)
    if lo > 0:
        return "reproduced"
    if m > 0:
        return "partly"
    return "not reproduced"


def verdict_boolean(holds: bool) -> str:
    """For a claim checked exactly (no seeds): holds or does not."""
    return "reproduced" if holds else "not reproduced"


@dataclass
class Claim:
    claim: str
    report_value: str
    our_value: str
    verdict: str
    seeds: list[int] = field(default_factory=list)
    interval: list[float] | None = None
    profile: str = ""
    evidence: list[float] = field(default_factory=list)  # the per-seed numbers behind the verdict
    rule: str = "paired"  # "paired" (verdict_paired on evidence) or "exact"

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def paired_claim(claim: str, report_value: str, diffs, seeds, profile: str, fmt: str = "{:+.3f}") -> Claim:
    m, lo, hi = mean_interval(diffs)
    ci = "" if not np.isfinite(lo) else f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return Claim(claim, report_value, f"{fmt.format(m)}{ci} (mean, 95% CI over {len(diffs)} seeds)",
                 verdict_paired(diffs), list(map(int, seeds)),
                 [float(lo), float(hi)] if np.isfinite(lo) else None, profile,
                 [float(d) for d in diffs], "paired")


def output_dir() -> Path:
    from .runner import default_output_dir

    return Path(os.environ.get("PARAMSPACE_OUTPUT_DIR", default_output_dir()))


def write_ledger(report: str, claims: list[Claim], directory: Path | None = None) -> Path:
    directory = Path(directory) if directory is not None else output_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report}.claims.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"report": report, "claims": [asdict(c) for c in claims]}, indent=1))
    os.replace(tmp, path)
    return path


def read_ledger(path: Path) -> list[Claim]:
    return [Claim(**c) for c in json.loads(Path(path).read_text())["claims"]]


def markdown_table(claims: list[Claim]) -> str:
    """The claims as a Markdown table (rendered by the book's theme)."""
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    rows = ["| claim | the report | measured here | verdict |", "|---|---|---|---|"]
    rows += [f"| {esc(c.claim)} | {esc(c.report_value)} | {esc(c.our_value)} | **{c.verdict}** |" for c in claims]
    return "\n".join(rows)


def table(claims: list[Claim]):
    """The claims as a pandas DataFrame for display."""
    import pandas as pd

    return pd.DataFrame([{"claim": c.claim, "report": c.report_value, "measured": c.our_value,
                          "verdict": c.verdict} for c in claims])


def scorecard(directory: Path | None = None) -> list[dict]:
    """Per report: how many claims were reproduced / partly / not, read from the ledgers."""
    from .profiles import REPORTS

    directory = Path(directory) if directory is not None else output_dir()
    rows = []
    for name, rep in REPORTS.items():
        if not rep.claims:  # a chapter beyond the reports (the leaderboard) checks no claims
            continue
        path = directory / f"{name}.claims.json"
        row = {"report": name, "title": rep.title, "seed": rep.seed_id, "claims": 0,
               **{v: 0 for v in VERDICTS}, "profile": ""}
        if path.exists():
            ledger = read_ledger(path)
            row["claims"] = len(ledger)
            row["profile"] = ", ".join(sorted({c.profile for c in ledger}))
            for c in ledger:
                row[c.verdict] += 1
        rows.append(row)
    return rows


def write_scorecard(directory: Path | None = None) -> Path:
    """Write ``scorecard.md`` (a MyST table) next to the ledgers; the book's intro includes it."""
    directory = Path(directory) if directory is not None else output_dir()
    lines = ["| report | claims | reproduced | partly | not reproduced | profile |",
             "|---|---|---|---|---|---|"]
    for r in scorecard(directory):
        link = f"{{doc}}`{r['title']} </reports/{r['report']}>`"
        if r["claims"]:
            lines.append(f"| {link} | {r['claims']} | {r['reproduced']} | {r['partly']} | "
                         f"{r['not reproduced']} | `{r['profile']}` |")
        else:
            lines.append(f"| {r['title']} | no ledger yet | | | | |")
    path = directory / "scorecard.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def verdict_phrase(c: Claim, unit: str = "", fmt: str = "{:+.3g}") -> str:
    """One sentence for a paired claim's verdict, with its mean and interval (in ``unit``)."""
    m = fmt.format(float(np.mean(c.evidence)))
    if c.verdict == "reproduced":
        return f"**reproduced**: mean {m}{unit}, and the 95% interval lies above 0"
    if c.verdict == "partly":
        lo, hi = c.interval if c.interval else (float("-inf"), float("inf"))
        return (f"**partly**: the mean {m}{unit} points the claimed way, but the 95% interval "
                f"[{fmt.format(lo)}, {fmt.format(hi)}]{unit} includes 0")
    return f"**not reproduced**, because the mean difference {m}{unit} is not positive"
