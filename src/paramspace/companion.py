"""Companion pages: a report executed elsewhere (a GPU machine, a cluster) with another profile.

A companion is committed under ``book/scale/<profile>/`` as four files::

    <report>.ipynb         the executed notebook (never re-executed by the book build)
    <report>.claims.json   its claims ledger (absent for a chapter without claims)
    <report>.py            the jupytext source it was executed from
    <report>.inputs.json   {"report", "key", "commit", "profile", "params", "date", "device", "seconds"}

``key`` is :func:`paramspace.runner.input_key` of the report and parameters at the time of the run.
:func:`store` (``python -m paramspace companion NAME --profile paper``, ``make companion``) runs a
report and writes these files. At build time :func:`publish` (called by
:func:`paramspace.runner.run_all`) copies every companion into ``<output dir>/scale/<profile>/``,
where the book's table of contents finds it beside the report's own page, and puts an admonition on
top of it: a note saying where and when it was produced, and, when the recorded key differs from the
key of the current inputs for the same report and parameters, a warning that the library has changed
since, with the command that reruns it. :func:`profile_columns` adds a column group per companion
profile to the intro's scorecard.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .data import project_root
from .reports import PROFILES, REPORTS, ProfileError, get_report, resolve

SCALE_ENV = "PARAMSPACE_SCALE_DIR"
RECORD_FIELDS = ("report", "key", "commit", "profile", "params", "date")


def scale_dir() -> Path:
    """Where companions are committed: ``$PARAMSPACE_SCALE_DIR`` or ``book/scale``."""
    return Path(os.environ.get(SCALE_ENV) or project_root() / "book" / "scale")


@dataclass
class Companion:
    report: str
    profile: str
    folder: Path
    record: dict

    @property
    def notebook(self) -> Path:
        return self.folder / f"{self.report}.ipynb"

    @property
    def ledger(self) -> Path:
        return self.folder / f"{self.report}.claims.json"

    @property
    def source(self) -> Path:
        return self.folder / f"{self.report}.py"

    @property
    def current_key(self) -> str:
        from .runner import input_key

        return input_key(self.report, self.record["params"])

    @property
    def stale(self) -> bool:
        """The recorded input key differs from the key of the current inputs (same report, same params)."""
        return self.record["key"] != self.current_key

    @property
    def docname(self) -> str:
        """The page's document name in the book (the output folder is ``book/reports``)."""
        return f"reports/scale/{self.profile}/{self.report}"


def _read_record(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProfileError(f"companion record {path} is not valid JSON: {exc}") from None
    missing = [k for k in RECORD_FIELDS if k not in rec]
    if missing:
        raise ProfileError(f"companion record {path} lacks {missing}; it needs {', '.join(RECORD_FIELDS)}")
    return rec


def find(directory: Path | str | None = None) -> list[Companion]:
    """The companions committed under ``directory`` (default :func:`scale_dir`), in report order.

    A companion that names an unknown report or profile, lacks its notebook, or whose record does
    not agree with its place (``<profile>/<report>.inputs.json``) is an error, not skipped."""
    directory = Path(directory) if directory is not None else scale_dir()
    out = []
    for rec_path in sorted(directory.glob("*/*.inputs.json")):
        profile, report = rec_path.parent.name, rec_path.name[: -len(".inputs.json")]
        if report not in REPORTS:
            raise ProfileError(f"companion {rec_path}: unknown report {report!r}; valid reports: {', '.join(REPORTS)}")
        if profile not in PROFILES or profile == "book":
            raise ProfileError(f"companion {rec_path}: folder {profile!r} must name a profile other than "
                               f"'book': one of {', '.join(p for p in PROFILES if p != 'book')}")
        rec = _read_record(rec_path)
        if (rec["report"], rec["profile"]) != (report, profile):
            raise ProfileError(f"companion {rec_path} records report {rec['report']!r}, profile {rec['profile']!r}, "
                               f"but lies in {profile}/{report}")
        c = Companion(report, profile, rec_path.parent, rec)
        if not c.notebook.exists():
            raise ProfileError(f"companion {rec_path}: its executed notebook {c.notebook} is missing")
        out.append(c)
    order = list(REPORTS)
    return sorted(out, key=lambda c: (order.index(c.report), c.profile))


# ---------------------------------------------------------------------------------------------- store

def store(report: str, profile: str = "paper", overrides: dict | None = None,
          directory: Path | str | None = None, log=print) -> Path:
    """Run ``report`` with ``profile`` (+ ``overrides``) and store it as a companion for committing;
    return the folder (``<directory>/<profile>``). The parameters are validated before any compute."""
    from .provenance import device_description, git_commit
    from .runner import expected_outputs, input_key, run_report

    if profile == "book":
        raise ProfileError("a companion page needs a profile other than 'book' (the book's own page is the "
                           f"book profile): one of {', '.join(p for p in PROFILES if p != 'book')}")
    params = resolve(report, profile, overrides)
    rep = get_report(report)
    dest = Path(directory) if directory is not None else scale_dir()
    dest = dest / profile
    key, commit = input_key(report, params), git_commit()
    if "uncommitted" in commit:
        log(f"[{report}] warning: the working tree has uncommitted changes in src/, notebooks/ or the lock "
            f"file; the companion records commit {commit!r}: commit them first so that it names the code it ran")
    with tempfile.TemporaryDirectory(prefix=f"companion-{report}-") as tmp:
        t0 = _dt.datetime.now(_dt.timezone.utc)
        run_report(report, profile, overrides, output_dir=tmp, force=True, log=log)
        seconds = (_dt.datetime.now(_dt.timezone.utc) - t0).total_seconds()
        tmp = Path(tmp)
        # run_report refuses a run without these (its source copy, and its ledger where it has claims)
        files = {name: tmp / name for name in (f"{report}.ipynb", *expected_outputs(rep))}
        record = {"report": report, "key": key, "commit": commit, "profile": profile, "params": params,
                  "date": t0.strftime("%Y-%m-%d %H:%M UTC"), "device": device_description(params["device"],
                                                                                          params.get("cpu_threads", 0)),
                  "seconds": round(seconds, 1)}
        (tmp / "record.json").write_text(json.dumps(record, indent=1) + "\n")
        files[f"{report}.inputs.json"] = tmp / "record.json"
        dest.mkdir(parents=True, exist_ok=True)
        staged = []
        for name, path in files.items():  # stage beside the destination, then move all into place
            fd, part = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            shutil.copyfile(path, part)
            os.chmod(part, 0o644)  # mkstemp makes it private; these files are for committing
            staged.append((part, dest / name))
        for part, final in staged:
            os.replace(part, final)
    log(f"[{report}] companion ({profile} profile) stored in {dest}; commit these files:")
    for name in files:
        log(f"    {dest / name}")
    return dest


# --------------------------------------------------------------------------------------- publish

def _labels(nb) -> set[str]:
    """Labels a notebook defines: MyST-NB figure names, ``:name:`` options, ``(label)=`` targets."""
    found = set()
    for cell in nb.cells:
        fig = cell.metadata.get("mystnb", {}).get("figure", {})
        if fig.get("name"):
            found.add(fig["name"])
        texts = [cell.source] + [o.get("data", {}).get("text/markdown", "") for o in cell.get("outputs", [])]
        for t in texts:
            t = "".join(t) if isinstance(t, list) else t
            found.update(re.findall(r"^:name:\s*(\S+)\s*$", t, flags=re.M))
            found.update(re.findall(r"^\(([A-Za-z][\w-]*)\)=\s*$", t, flags=re.M))
    return found


def _relabel(text: str, labels: set[str], suffix: str) -> str:
    for lab in sorted(labels, key=len, reverse=True):
        text = re.sub(rf"(?<![\w-]){re.escape(lab)}(?![\w-])", lab + suffix, text)
    return text


def banner(c: Companion) -> str:
    """The admonition on top of a companion page: where it comes from, and whether it is stale."""
    from .provenance import rerun_command

    rec = c.record
    book = f"{{doc}}`the book-profile page </reports/{c.report}>`"
    where = (f"produced at commit `{rec['commit']}` with the `{c.profile}` profile on {rec['date']}"
             + (f" ({rec['device']})" if rec.get("device") else ""))
    rerun = (f"`{rerun_command(c.report, rec['params'], 'companion')}` (the same run as "
             f"`{rerun_command(c.report, rec['params'])}`, stored in `book/scale/` for committing)")
    if c.stale:
        return (f":::{{admonition}} Stale: the library has changed since this page was produced\n:class: warning\n\n"
                f"This page was {where}; the book build does not re-execute it. The library has changed "
                f"since: the runner's input key recorded with it, `{rec['key'][:16]}…`, differs from the key "
                f"of the current inputs for the same report and parameters, `{c.current_key[:16]}…`. "
                f"Its numbers may no longer be what the current code gives. Rerun with {rerun}.\n"
                f"Compare with {book}.\n:::\n")
    return (f":::{{admonition}} Executed elsewhere with the `{c.profile}` profile\n:class: note\n\n"
            f"This page was {where}; the book build does not re-execute it. Its recorded input key "
            f"`{rec['key'][:16]}…` equals the key of the current inputs, so the current library would run the "
            f"same computation. Compare with {book}; rerun with {rerun}.\n:::\n")


def page(c: Companion):
    """The companion notebook as the book shows it: title marked with the profile, labels made unique
    (suffix ``-<profile>``), and :func:`banner` right under the title."""
    import nbformat

    nb = nbformat.read(c.notebook, as_version=4)
    labels, suffix = _labels(nb), f"-{c.profile}"
    title_at, rest = None, ""
    for i, cell in enumerate(nb.cells):
        fig = cell.metadata.get("mystnb", {}).get("figure", {})
        if fig.get("name") in labels:
            fig["name"] = fig["name"] + suffix
        if cell.cell_type == "markdown":
            cell.source = _relabel(cell.source, labels, suffix)
            if title_at is None and re.match(r"\s*# ", cell.source):
                first, _, rest = cell.source.lstrip().partition("\n")
                cell.source = f"{first} (`{c.profile}` profile)"
                title_at = i
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md is not None:
                out["data"]["text/markdown"] = _relabel("".join(md) if isinstance(md, list) else md, labels, suffix)
    note = nbformat.v4.new_markdown_cell(banner(c))
    note.metadata["tags"] = ["companion-banner"]
    at = 0 if title_at is None else title_at + 1
    # the title cell is split: its heading, the banner, then the rest of the cell
    nb.cells[at:at] = [note] + ([nbformat.v4.new_markdown_cell(rest.lstrip("\n"))] if rest.strip() else [])
    return nb


def publish(output_dir: Path | str, directory: Path | str | None = None) -> list[Path]:
    """Write every companion as a book page into ``<output_dir>/scale/<profile>/`` (replacing what an
    earlier build left there), with its ledger, source and record (plus ``current_key`` and ``stale``)."""
    import nbformat

    out_root = Path(output_dir) / "scale"
    companions = find(directory)
    if out_root.exists():
        shutil.rmtree(out_root)
    pages = []
    for c in companions:
        dest = out_root / c.profile
        dest.mkdir(parents=True, exist_ok=True)
        nbformat.write(page(c), dest / c.notebook.name)
        for f in (c.ledger, c.source):
            if f.exists():
                shutil.copyfile(f, dest / f.name)
        (dest / f"{c.report}.inputs.json").write_text(
            json.dumps({**c.record, "current_key": c.current_key, "stale": c.stale}, indent=1) + "\n")
        pages.append(dest / c.notebook.name)
    return pages


# --------------------------------------------------------------------------------------- scorecard

def published(output_dir: Path | str) -> list[Companion]:
    """The companions :func:`publish` wrote into ``output_dir`` (their records carry ``stale``)."""
    root = Path(output_dir) / "scale"
    return find(root) if root.exists() else []


def _counts_cells(ledger: Path) -> tuple[int, list[int]]:
    from .claims import count, read_ledger

    n = count(read_ledger(ledger))
    return n["claims"], [n["reproduced"], n["partly"], n["not reproduced"], n["indistinguishable"]]


def profile_columns(rows: list[dict], output_dir: Path | str) -> list[str]:
    """The scorecard's verdicts side by side, one column group per profile: the profile of the book's
    own pages (the ledgers in ``output_dir``), then each companion profile present in ``output_dir``.
    Per group: the report's claims counted (a companion's links its page and says *stale* when its
    inputs changed since) and reproduced / partly / not reproduced / indistinguishable. Returns the
    lines to append to ``scorecard.md`` (a blank line and a titled table), none without companions."""
    from .pages import titled_table

    comps = [c for c in published(output_dir) if c.ledger.exists()]
    if not comps:
        return []
    output_dir = Path(output_dir)
    own = sorted({p.strip() for r in rows for p in r.get("profile", "").split(",") if p.strip()}) or ["book"]
    profiles = sorted({c.profile for c in comps}, key=PROFILES.index)
    by = {(c.report, c.profile): c for c in comps}
    verdicts = "reproduced / partly / not reproduced / indistinguishable"
    head = "| report | " + f"`{', '.join(own)}` (the report pages): claims | {verdicts} |"
    head += "".join(f" `{p}` (companion pages): claims | {verdicts} |" for p in profiles)
    lines = [head, "|---|" + "---|---|" * (1 + len(profiles))]
    sums = {p: [0, 0, 0, 0, 0] for p in ["", *profiles]}

    def cells(key: str, ledger: Path, link: str = "", stale: bool = False) -> str:
        n, v = _counts_cells(ledger)
        sums[key] = [a + b for a, b in zip(sums[key], [n, *v])]
        first = f"{{doc}}`{n} <{link}>`" if link else str(n)
        return f" {first}{' (**stale**)' if stale else ''} | {' / '.join(map(str, v))} |"

    for r in rows:
        own_ledger = output_dir / f"{r['report']}.claims.json"
        line = f"| {{doc}}`{r['title']} </reports/{r['report']}>` |"
        line += cells("", own_ledger) if r["ledger"] else " no ledger yet | |"  # stamped ledgers only
        for p in profiles:
            c = by.get((r["report"], p))
            line += cells(p, c.ledger, f"/{c.docname}", bool(c.record.get("stale"))) if c else " — | — |"
        lines.append(line)
    lines.append("| **all reports** |" + "".join(
        f" **{sums[k][0]}** | **{' / '.join(map(str, sums[k][1:]))}** |" for k in ["", *profiles]))
    title = "The report's claims under each profile, side by side (companion pages: runs at another scale)"
    return ["", titled_table(title, "tab-scorecard-profiles", "\n".join(lines)).rstrip("\n")]
