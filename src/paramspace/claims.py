"""Claims ledger: what a report claims, what we measured, and a verdict derived from the numbers.

Every row has a **kind**:

* ``report`` -- the report's deck states it; the row quotes the deck's number or figure
  (``report_value``) and where it stands in the deck (``deck``: slide heading or table);
* ``ours``   -- an expectation or a variant of ours (e.g. "a baseline beats random removal"),
  or something the deck does not claim;
* ``check``  -- a self-check of our code or data.

Only ``report`` rows are counted in the scorecard; the others are listed apart, and so are rows
whose verdict rests on wall time measured on a shared machine (``timing=True``).

Verdict rule for a claim "A beats B" measured as per-seed paired differences ``d_s`` (positive =
the claim holds on that seed), plus an optional ``tolerance`` of ours (a claim "A is no worse than
B" is tested as ``d_s + tolerance > 0``). With ``e_s = d_s + tolerance``, its mean ``m`` and the
two-sided 95% Student-t interval ``[lo, hi]``:

* ``reproduced``        if ``lo > 0`` (clear across seeds);
* ``partly``            if ``m > 0`` but the interval reaches 0 (right direction, not resolved);
* ``not reproduced``    if ``m <= 0``;
* ``indistinguishable`` if ``tolerance > 0`` and the two compared quantities are equal within
  numerical noise (every ``|d_s| <= noise``, or the caller says they are the same, e.g. two
  clusterings that are one partition): the rule could only pass through our tolerance.

Each row also carries its **margin**: the distance, in standard errors of the mean, from ``m`` to
the nearest boundary between verdicts (0 and ``t * se``). A row with margin below 1 is
**borderline**: one more seed could flip it.

Each report writes its ledger as JSON (``<output dir>/<report>.claims.json``) with
:func:`write_ledger`; the book's scorecard reads them back.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

VERDICTS = ("reproduced", "partly", "not reproduced", "indistinguishable")
COUNTED_VERDICTS = ("reproduced", "partly", "not reproduced")
KINDS = ("report", "ours", "check")
RULES = ("paired", "exact")
KIND_LABEL = {"report": "the report", "ours": "ours", "check": "self-check"}
NOISE = 1e-9  # |difference| at or below which two measured quantities count as equal


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


def margin_se(values, level: float = 0.95) -> float | None:
    """Distance of the mean from the nearest verdict boundary (0 and ``t * se``), in standard errors.

    ``None`` for fewer than two values (no standard error); ``inf`` when every value is the same
    non-zero number (no seed could flip it), 0 when they are all zero (on the boundary).
    """
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return None
    m = float(v.mean())
    se = float(v.std(ddof=1) / np.sqrt(len(v)))
    if se == 0:
        return 0.0 if m == 0 else math.inf
    z, t = m / se, float(stats.t.ppf(0.5 + level / 2, len(v) - 1))
    return float(min(abs(z), abs(z - t)))


@dataclass
class Claim:
    claim: str
    report_value: str
    our_value: str
    verdict: str
    seeds: list[int] = field(default_factory=list)
    interval: list[float] | None = None
    profile: str = ""
    evidence: list[float] = field(default_factory=list)  # the per-seed numbers the rule reads (d_s + tolerance)
    rule: str = "paired"  # "paired" (verdict_paired on evidence) or "exact"
    kind: str = "report"  # "report", "ours" or "check" (see the module docstring)
    deck: str = ""  # where the claim stands in the report's deck (slide heading or table); required for "report"
    tolerance: float = 0.0  # ours, added to the differences before the rule
    same: bool = False  # the compared quantities are equal (within noise): the rule reads only the tolerance
    margin: float | None = None  # distance to the nearest verdict boundary in standard errors
    timing: bool = False  # the verdict rests on wall time on a shared machine: shown, never counted

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.kind == "report" and not self.deck.strip():
            raise ValueError(f"a claim of kind 'report' must say where it stands in the deck (deck=...): "
                             f"{self.claim!r}")
        if self.verdict == "indistinguishable" and not (self.same and self.tolerance > 0):
            raise ValueError("verdict 'indistinguishable' needs same=True and a tolerance > 0")

    @property
    def borderline(self) -> bool:
        return self.margin is not None and self.margin < 1 and self.verdict != "indistinguishable"

    @property
    def counted(self) -> bool:
        """Counted in the scorecard: a claim of the report whose verdict does not rest on wall time."""
        return self.kind == "report" and not self.timing


def rule_verdict(c: Claim) -> str:
    """The verdict that follows from a row's own numbers (what every stored verdict must equal)."""
    if c.rule == "exact":
        return c.verdict
    if c.same and c.tolerance > 0:
        return "indistinguishable"
    return verdict_paired(c.evidence)


def paired_claim(claim: str, report_value: str, diffs, seeds, profile: str, fmt: str = "{:+.3f}", *,
                 kind: str = "report", deck: str = "", tolerance: float = 0.0, same: bool | None = None,
                 timing: bool = False, noise: float = NOISE) -> Claim:
    """A claim tested on per-seed paired differences ``diffs`` (positive = the claim holds).

    ``tolerance`` (ours) is added before the rule; ``same`` says the two compared quantities are
    equal on every seed (default: every ``|diff| <= noise``), which makes a tolerance-passed row
    ``indistinguishable``.
    """
    d = np.asarray(diffs, dtype=float)
    if same is None:
        same = bool(len(d)) and bool(np.all(np.abs(d) <= noise))
    e = d + tolerance
    m, lo, hi = mean_interval(e)
    ci = "" if not np.isfinite(lo) else f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    tol = f"; tolerance {tolerance:g} added" if tolerance else ""
    c = Claim(claim, report_value, f"{fmt.format(m)}{ci} (mean, 95% CI over {len(d)} seeds{tol})",
              "not reproduced", list(map(int, seeds)), [float(lo), float(hi)] if np.isfinite(lo) else None,
              profile, [float(x) for x in e], "paired", kind, deck, float(tolerance), bool(same),
              None, timing)
    c.verdict = rule_verdict(c)
    c.margin = None if c.verdict == "indistinguishable" else margin_se(e)
    return c


def exact_claim(claim: str, report_value: str, our_value: str, holds: bool, profile: str, *,
                kind: str = "report", deck: str = "") -> Claim:
    """A claim checked exactly (no seeds, no interval): reproduced if ``holds``."""
    return Claim(claim, report_value, our_value, verdict_boolean(holds), [], None, profile, [], "exact", kind, deck)


def output_dir() -> Path:
    from .runner import default_output_dir

    return Path(os.environ.get("PARAMSPACE_OUTPUT_DIR", default_output_dir()))


def write_ledger(report: str, claims: list[Claim], directory: Path | None = None) -> Path:
    directory = Path(directory) if directory is not None else output_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = ledger_path(directory, report)
    from .runner import atomic_write_text

    atomic_write_text(path, json.dumps({"report": report, "claims": [asdict(c) for c in claims]}, indent=1))
    return path


def read_ledger(path: Path) -> list[Claim]:
    return [Claim(**c) for c in json.loads(Path(path).read_text())["claims"]]


def _fmt_margin(c: Claim) -> str:
    if c.margin is None:
        return "n/a"
    text = "∞" if math.isinf(c.margin) else f"{c.margin:.1f}"
    return f"{text} (borderline)" if c.borderline else text


def markdown_table(claims: list[Claim]) -> str:
    """The claims as a Markdown table: kind, where in the deck, the deck's value, ours, margin, verdict.

    Rows whose verdict rests on wall time say so next to the verdict (they are never counted)."""
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    rows = ["| claim | kind | in the deck | the report | measured here | margin (SE) | verdict |",
            "|---|---|---|---|---|---|---|"]
    for c in claims:
        verdict = f"**{c.verdict}**" + (" (timing; not counted)" if c.timing else "")
        rows.append(f"| {esc(c.claim)} | {KIND_LABEL[c.kind]} | {esc(c.deck) or '—'} | {esc(c.report_value)} | "
                    f"{esc(c.our_value)} | {_fmt_margin(c)} | {verdict} |")
    return "\n".join(rows)


def table(claims: list[Claim]):
    """The claims as a pandas DataFrame for display."""
    import pandas as pd

    return pd.DataFrame([{"claim": c.claim, "kind": c.kind, "deck": c.deck, "report": c.report_value,
                          "measured": c.our_value, "margin": c.margin, "verdict": c.verdict,
                          "timing": c.timing} for c in claims])


def tolerances_markdown(params: dict, used: dict[str, str]) -> str:
    """The tolerances *we* chose (not the report), in one table: parameter, value, where it is used.

    ``used`` maps a parameter name of ``params`` to what the tolerance decides."""
    missing = [k for k in used if k not in params]
    if missing:
        raise KeyError(f"tolerance parameters not in the parameters: {missing}")
    rows = ["| our tolerance (parameter) | value | what it decides |", "|---|---|---|"]
    rows += [f"| `{k}` | {params[k]} | {what} |" for k, what in used.items()]
    return "\n".join(rows)


def ledger_path(directory: Path, report: str) -> Path:
    """Where a report's ledger lives in an output folder."""
    return Path(directory) / f"{report}.claims.json"


def count(ledger: list[Claim]) -> dict:
    """Scorecard counts of one ledger: the report's claims by verdict (timing rows excluded),
    indistinguishable and borderline among them, and the rows not counted (ours, checks, timing)."""
    counted = [c for c in ledger if c.counted]
    out = {"claims": len(counted), **{v: sum(c.verdict == v for c in counted) for v in VERDICTS},
           "borderline": sum(c.borderline for c in counted),
           "ours": sum(c.kind == "ours" for c in ledger), "check": sum(c.kind == "check" for c in ledger),
           "timing": sum(c.kind == "report" and c.timing for c in ledger)}
    return out


def scorecard(directory: Path | None = None, stamped: bool = True) -> list[dict]:
    """Per report: the counts of :func:`count`, read from the ledgers in ``directory``.

    With ``stamped`` (the default) a ledger is read only if the report's run stamp vouches for it
    (:func:`paramspace.runner.current_file`: written by the run that produced the served notebook,
    unchanged since); a ledger left by an interrupted or other run counts as no ledger."""
    from .reports import REPORTS
    from .runner import current_file

    directory = Path(directory) if directory is not None else output_dir()
    rows = []
    for name, rep in REPORTS.items():
        if not rep.claims:  # a chapter beyond the reports (the leaderboard) checks no claims
            continue
        path = ledger_path(directory, name)
        ok = path.exists() and (not stamped or current_file(directory, name, path.name) is not None)
        row = {"report": name, "title": rep.title, "seed": rep.seed_id, "ledger": ok,
               **count([]), "profile": ""}
        if ok:
            ledger = read_ledger(path)
            row.update(count(ledger))
            row["profile"] = ", ".join(sorted({c.profile for c in ledger}))
        rows.append(row)
    return rows


def write_scorecard(directory: Path | None = None, stamped: bool = True) -> Path:
    """Write ``scorecard.md`` (MyST) next to the ledgers; the book's intro includes it.

    Only claims of kind ``report`` are counted; indistinguishable and borderline rows are shown
    apart, and so are our own expectations, self-checks and timing rows (not counted)."""
    directory = Path(directory) if directory is not None else output_dir()
    head = ("| report | the report's claims | reproduced | partly | not reproduced | indistinguishable "
            "| of which borderline | not counted: ours / checks / timing | profile |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    rows = scorecard(directory, stamped)
    keys = ("claims", "reproduced", "partly", "not reproduced", "indistinguishable", "borderline",
            "ours", "check", "timing")
    total = {k: sum(r[k] for r in rows) for k in keys}
    for r in rows:
        link = f"{{doc}}`{r['title']} </reports/{r['report']}>`"
        if r["ledger"]:
            lines.append(f"| {link} | {r['claims']} | {r['reproduced']} | {r['partly']} | "
                         f"{r['not reproduced']} | {r['indistinguishable']} | {r['borderline']} | "
                         f"{r['ours']} / {r['check']} / {r['timing']} | `{r['profile']}` |")
        else:
            lines.append(f"| {r['title']} | no ledger yet | | | | | | | |")
    lines.append(f"| **all reports** | **{total['claims']}** | **{total['reproduced']}** | **{total['partly']}** | "
                 f"**{total['not reproduced']}** | **{total['indistinguishable']}** | **{total['borderline']}** | "
                 f"{total['ours']} / {total['check']} / {total['timing']} | |")
    from .companion import profile_columns  # verdicts per profile, with companion pages (e.g. paper)

    lines += profile_columns(rows, directory)
    path = directory / "scorecard.md"
    from .runner import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def verdict_phrase(c: Claim, unit: str = "", fmt: str = "{:+.3g}") -> str:
    """One sentence for a paired claim's verdict, with its mean and interval (in ``unit``)."""
    m = fmt.format(float(np.mean(c.evidence)))
    if c.verdict == "indistinguishable":
        return (f"**indistinguishable**: the two compared quantities are equal on every seed, so the rule "
                f"passes only through our tolerance {c.tolerance:g}{unit}")
    if c.verdict == "reproduced":
        return f"**reproduced**: mean {m}{unit}, and the 95% interval lies above 0"
    if c.verdict == "partly":
        lo, hi = c.interval if c.interval else (float("-inf"), float("inf"))
        return (f"**partly**: the mean {m}{unit} points the claimed way, but the 95% interval "
                f"[{fmt.format(lo)}, {fmt.format(hi)}]{unit} includes 0")
    return f"**not reproduced**, because the mean difference {m}{unit} is not positive"
