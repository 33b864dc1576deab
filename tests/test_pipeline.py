"""End to end: every notebook through the runner in the smoke profile, then the book from those outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from paramspace import reports
from paramspace.reports.spec import COMMON, Report
from paramspace.claims import KINDS, VERDICTS, count, read_ledger, rule_verdict, verdict_boolean, write_scorecard
from paramspace.data import project_root
from paramspace.runner import ReportFailed, run_report

ROOT = project_root()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _runs_in_process_uncached():
    """Every report's runs in the kernel's (or this) process and none from or into the per-run cache:
    a Ray start-up per notebook costs more than a smoke run here (tests/test_engine.py runs the engine
    on real Ray), and a cached run would hide a nondeterministic one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARAMSPACE_ENGINE", "serial")
        mp.setenv("PARAMSPACE_RUN_CACHE", "off")
        yield


@pytest.fixture(scope="module")
def smoke_outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    logs = []
    for name in reports.REPORTS:
        run_report(name, "smoke", output_dir=out, force=True, progress=False, log=logs.append)
    write_scorecard(out)
    return out


def _cell_outputs(path: Path) -> list:
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_every_notebook_runs_in_smoke_profile(smoke_outputs):
    for name in reports.REPORTS:
        nb = smoke_outputs / f"{name}.ipynb"
        assert nb.exists(), f"{name}: no executed notebook"
        outs = _cell_outputs(nb)
        assert not [o for o in outs if o.output_type == "error"], f"{name}: error output"
        assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outs), \
            f"{name}: no figure"
        if reports.REPORTS[name].claims:
            ledger = read_ledger(smoke_outputs / f"{name}.claims.json")
            assert ledger and all(c.verdict in VERDICTS for c in ledger)
        # the provenance footer names the profile and the commit
        text = json.dumps([o.get("data", {}).get("text/markdown", "") for o in outs])
        assert "provenance" in text and "`smoke`" in text and "git commit" in text


def test_every_report_emits_a_ledger_whose_verdicts_follow_from_its_numbers(smoke_outputs):
    with_claims = [name for name, r in reports.REPORTS.items() if r.claims]
    assert len(with_claims) >= 3
    for name in with_claims:
        ledger = read_ledger(smoke_outputs / f"{name}.claims.json")
        assert ledger, f"{name}: empty ledger"
        assert any(c.kind == "report" for c in ledger), f"{name}: no claim of the report itself"
        for c in ledger:
            assert c.profile == "smoke" and c.kind in KINDS
            if c.kind == "report":  # a claim of the report says where it stands in the deck
                assert c.deck.strip(), c.claim
            if c.rule == "paired":
                assert c.evidence and len(c.evidence) == len(c.seeds)
                assert c.verdict == rule_verdict(c), c.claim
            else:
                assert c.rule == "exact" and c.verdict in (verdict_boolean(True), verdict_boolean(False))
    card = (smoke_outputs / "scorecard.md").read_text()
    for name in with_claims:
        ledger = read_ledger(smoke_outputs / f"{name}.claims.json")
        n = count(ledger)["claims"]  # only the report's own claims, no timing rows
        assert n == sum(c.kind == "report" and not c.timing for c in ledger)
        assert f"</reports/{name}>` | {n} |" in card


def test_smoke_runs_are_deterministic(smoke_outputs, tmp_path):
    name = "parameter_relevance"
    run_report(name, "smoke", output_dir=tmp_path, force=True, progress=False, log=lambda *_: None)
    a = json.loads((smoke_outputs / f"{name}.claims.json").read_text())
    b = json.loads((tmp_path / f"{name}.claims.json").read_text())
    assert a == b

    # the tables behind every figure are identical too (timings excluded: they are wall times)
    params = reports.resolve(name, "smoke")
    r1, r2 = reports.run_all(name, params), reports.run_all(name, params)
    for key in ("curves", "noise", "models"):
        assert r1[key].equals(r2[key]), key


def test_runner_skips_unchanged_inputs(smoke_outputs):
    logs = []
    name = "parameter_relevance"
    before = (smoke_outputs / f"{name}.ipynb").stat().st_mtime_ns
    run_report(name, "smoke", output_dir=smoke_outputs, progress=False, log=logs.append)
    assert any("skipping" in m for m in logs)
    assert (smoke_outputs / f"{name}.ipynb").stat().st_mtime_ns == before


def test_failing_notebook_names_report_and_cell(tmp_path, monkeypatch):
    nb = tmp_path / "failing.py"
    nb.write_text('# %% tags=["parameters"]\nprofile = "smoke"\ndevice = "cpu"\nseed = 0\nn_seeds = 1\n\n'
                  '# %%\nx = 1\n\n# %%\nraise ValueError("boom from the fixture")\n')
    rep = Report("failing_fixture", "fixture", "nobody", "999", dict(COMMON),
                          {p: dict(profile=p, device="cpu", seed=0, n_seeds=1) for p in reports.PROFILES},
                          notebook=str(nb))
    monkeypatch.setitem(reports.REPORTS, rep.name, rep)
    out = tmp_path / "out"
    with pytest.raises(ReportFailed) as err:
        run_report(rep.name, "smoke", output_dir=out, progress=False, log=lambda *_: None)
    msg = str(err.value)
    # the third cell of the source notebook (papermill's injected cell is not counted), quoted
    assert "failing_fixture" in msg and "cell 3 (`raise ValueError" in msg and "boom from the fixture" in msg
    assert not (out / "failing_fixture.ipynb").exists()  # no half-written output
    assert (out / ".failing_fixture.failed.ipynb").exists()


def test_book_builds_from_smoke_outputs_with_warnings_as_errors(smoke_outputs, tmp_path):
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "reports"))
    shutil.copytree(smoke_outputs, book / "reports")
    jb = Path(sys.executable).with_name("jupyter-book")
    res = subprocess.run([str(jb), "build", str(book), "--warningiserror", "--keep-going"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    html = book / "_build" / "html"
    page = (html / "reports" / "parameter_relevance.html").read_text()
    assert "Claims and verdicts" in page and "<img" in page
    # the claims table is set wide (book/_static/paramspace.css, linked on every page and copied)
    block = page[page.index('class="full-width wide-table'):]
    assert block.index('id="tab-r5-claims"') < block.index("</table>")
    assert 'href="../_static/paramspace.css' in page and (html / "_static" / "paramspace.css").is_file()
    scorecard = (html / "intro.html").read_text().split('id="scorecard"', 1)[1]
    assert scorecard.index('class="full-width wide-table') < scorecard.index("<table")  # the scorecard too
    chk = subprocess.run([sys.executable, str(ROOT / "tools" / "check_offline.py"), str(html)],
                         capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr


def test_unavailable_cuda_fails_before_running(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="cuda"):
        run_report("parameter_relevance", "smoke", {"device": "cuda"}, output_dir=tmp_path, progress=False,
                   log=lambda *_: None)
    assert not list(tmp_path.glob("*.ipynb"))
