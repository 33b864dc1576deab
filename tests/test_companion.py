"""Companion pages: a report run with another profile, committed, shown beside the book page.

The fixture ``tests/fixtures/scale/smoke/parameter_relevance.*`` is a real smoke run of report 5 on
one data set, stored with ``python -m paramspace companion parameter_relevance --profile smoke --set
datasets=[wine]`` from a working tree with uncommitted changes on top of commit 6ee964c (its record
says so). Its claims rows of kind ``report`` carry the placeholder ``deck`` "(deck location pending)":
report 5's notebook did not yet give ``deck=`` and a local patch, not committed, filled it in so the
run could finish. The library has changed since, so its recorded input key no longer matches and its
page must carry the stale banner. It is a test fixture only; the book does not show it.
"""

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from paramspace import companion as CP
from paramspace import runner
from paramspace.__main__ import main, parse_sets
from paramspace.claims import count, read_ledger, write_scorecard
from paramspace.data import project_root
from paramspace.reports import REPORTS, ProfileError, resolve
from paramspace.provenance import rerun_command

FIXTURE = Path(__file__).parent / "fixtures" / "scale"
R = "parameter_relevance"


def _fresh_copy(tmp_path: Path) -> Path:
    """The fixture with its recorded key set to the current inputs' key (as if just produced)."""
    d = tmp_path / "scale"
    shutil.copytree(FIXTURE, d)
    rec_path = d / "smoke" / f"{R}.inputs.json"
    rec = json.loads(rec_path.read_text())
    rec["key"] = runner.input_key(R, rec["params"])
    rec_path.write_text(json.dumps(rec))
    return d


def test_fixture_is_a_complete_smoke_companion():
    (c,) = CP.find(FIXTURE)
    assert (c.report, c.profile) == (R, "smoke")
    # stored with the smoke profile's parameters, on one data set (a smaller fixture); a parameter the
    # report gained since the fixture was made (e.g. condition_index) is simply absent from the record
    now = resolve(R, "smoke", {"datasets": ["wine"]})
    assert c.record["params"]["datasets"] == ["wine"] and c.record["params"]["profile"] == "smoke"
    assert {k: v for k, v in c.record["params"].items() if k in now} == {k: now[k] for k in c.record["params"] if k in now}
    assert set(c.record["params"]) <= set(now)
    assert c.notebook.exists() and c.ledger.exists() and c.source.exists()
    assert len(c.record["key"]) == 64 and c.record["commit"]


def test_stale_fixture_page_carries_the_banner(tmp_path):
    (c,) = CP.find(FIXTURE)
    assert c.stale and c.record["key"] != runner.input_key(R, c.record["params"])
    pages = CP.publish(tmp_path, FIXTURE)
    assert pages == [tmp_path / "scale" / "smoke" / f"{R}.ipynb"]
    nb = nbformat.read(pages[0], as_version=4)
    banners = [cell for cell in nb.cells if "companion-banner" in cell.metadata.get("tags", [])]
    assert len(banners) == 1
    text = banners[0].source
    assert text.startswith(":::{admonition} Stale: the library has changed") and ":class: warning" in text
    assert f"produced at commit `{c.record['commit']}` with the `smoke` profile" in text
    assert "the library has changed" in text.lower()
    assert f'`make report NAME={R} PROFILE=smoke SET="datasets=[wine]"`' in text
    assert f'`make companion NAME={R} PROFILE=smoke SET="datasets=[wine]"`' in text
    # the banner comes right after the title, which names the profile
    i = nb.cells.index(banners[0])
    assert nb.cells[i - 1].source.lstrip().startswith("# ") and nb.cells[i - 1].source.endswith("(`smoke` profile)")
    # nothing of the notebook is lost: its markdown, less the profile mark and the banner, is the original's
    orig = nbformat.read(c.notebook, as_version=4)
    md = lambda cells: "".join(x.source.replace(" (`smoke` profile)", "").replace("\n", "")  # noqa: E731
                               for x in cells if x.cell_type == "markdown")
    assert md(nb.cells[:i] + nb.cells[i + 1:]) == md(orig.cells)
    assert sum(x.cell_type == "code" for x in nb.cells) == sum(x.cell_type == "code" for x in orig.cells)
    rec = json.loads((tmp_path / "scale" / "smoke" / f"{R}.inputs.json").read_text())
    assert rec["stale"] is True and rec["current_key"] == runner.input_key(R, c.record["params"])
    # the ledger and the source travel with the page (the footer's download link needs the .py)
    assert (tmp_path / "scale" / "smoke" / f"{R}.claims.json").exists()
    assert (tmp_path / "scale" / "smoke" / f"{R}.py").read_text() == c.source.read_text()


def test_fresh_companion_gets_a_note_not_a_warning(tmp_path):
    d = _fresh_copy(tmp_path)
    (c,) = CP.find(d)
    assert not c.stale
    text = CP.banner(c)
    assert text.startswith(":::{admonition} Executed elsewhere with the `smoke` profile\n:class: note")
    assert "warning" not in text and "changed" not in text


def test_publish_replaces_what_an_earlier_build_left(tmp_path):
    old = tmp_path / "out" / "scale" / "paper" / "metric_analysis.ipynb"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    CP.publish(tmp_path / "out", FIXTURE)
    assert not old.exists() and (tmp_path / "out" / "scale" / "smoke" / f"{R}.ipynb").exists()
    empty = tmp_path / "none"
    empty.mkdir()
    assert CP.publish(tmp_path / "out", empty) == [] and not (tmp_path / "out" / "scale").exists()


def test_labels_are_made_unique_on_the_companion_page():
    nb = nbformat.v4.new_notebook()
    fig = nbformat.v4.new_code_cell("plot()")
    fig.metadata["mystnb"] = {"figure": {"caption": "c", "name": "fig-r5-curves"}}
    table = nbformat.v4.new_code_cell("show()")
    table.outputs = [nbformat.v4.new_output("display_data", {"text/markdown": ":::{table} Claims\n:name: tab-r5-claims\n\n|a|\n|-|\n|1|\n:::\n"})]
    text = nbformat.v4.new_markdown_cell("# Title\nSee {numref}`fig-r5-curves` and {numref}`tab-r5-claims`; "
                                         "not fig-r5-curves-other.")
    nb.cells = [text, fig, table]
    labels = CP._labels(nb)
    assert labels == {"fig-r5-curves", "tab-r5-claims"}
    out = CP._relabel(text.source, labels, "-paper")
    assert "{numref}`fig-r5-curves-paper`" in out and "{numref}`tab-r5-claims-paper`" in out
    assert "fig-r5-curves-other" in out  # a longer label that merely starts the same is left alone


def test_scorecard_gains_a_column_group_per_companion_profile(tmp_path):
    CP.publish(tmp_path, FIXTURE)
    own = tmp_path / "metric_analysis.claims.json"  # a book-profile ledger for one report
    shutil.copyfile(FIXTURE / "smoke" / f"{R}.claims.json", own)
    text = write_scorecard(tmp_path, stamped=False).read_text()  # no run stamp in this folder
    table = text[text.index(":::{table}"):]
    assert ":name: tab-scorecard-profiles" in table
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    assert "`smoke` (the report pages): claims" in lines[0] and "`smoke` (companion pages): claims" in lines[0]
    n = count(read_ledger(FIXTURE / "smoke" / f"{R}.claims.json"))
    verdicts = f"{n['reproduced']} / {n['partly']} / {n['not reproduced']} / {n['indistinguishable']}"
    row = next(ln for ln in lines if f"</reports/{R}>" in ln)
    assert row.endswith(f" no ledger yet | | {{doc}}`{n['claims']} </reports/scale/smoke/{R}>` (**stale**) | {verdicts} |")
    ma = next(ln for ln in lines if "</reports/metric_analysis>" in ln)
    assert ma.endswith(f" {n['claims']} | {verdicts} | — | — |")
    assert lines[-1] == f"| **all reports** | **{n['claims']}** | **{verdicts}** | **{n['claims']}** | **{verdicts}** |"
    assert len({ln.count("|") for ln in lines}) == 1  # every line has the same number of cells


def test_scorecard_unchanged_without_companions(tmp_path):
    shutil.copyfile(FIXTURE / "smoke" / f"{R}.claims.json", tmp_path / f"{R}.claims.json")
    text = write_scorecard(tmp_path).read_text()
    assert "tab-scorecard-profiles" not in text and CP.profile_columns([], tmp_path) == []


def test_find_rejects_a_misplaced_or_incomplete_companion(tmp_path):
    d = tmp_path / "scale"
    shutil.copytree(FIXTURE, d)
    shutil.move(d / "smoke", d / "book")
    with pytest.raises(ProfileError, match="other than 'book'"):
        CP.find(d)
    shutil.move(d / "book", d / "paper")
    with pytest.raises(ProfileError, match="records report 'parameter_relevance', profile 'smoke'"):
        CP.find(d)
    shutil.move(d / "paper", d / "smoke")
    (d / "smoke" / f"{R}.ipynb").unlink()
    with pytest.raises(ProfileError, match="executed notebook"):
        CP.find(d)


def test_store_refuses_the_book_profile_before_any_compute(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "run_report", lambda *a, **k: pytest.fail("ran a report"))
    with pytest.raises(ProfileError, match="other than 'book'"):
        CP.store(R, "book", directory=tmp_path)
    with pytest.raises(ProfileError, match="n_seeds"):
        CP.store(R, "paper", {"n_seeds": 0}, directory=tmp_path)
    assert main(["companion", R, "--profile", "book", "--dir", str(tmp_path)]) == 2


def test_store_writes_the_four_files_with_the_inputs_key(monkeypatch, tmp_path):
    """``store`` with the notebook run replaced by a stand-in that writes what a run writes."""
    def fake_run(report, profile, overrides, output_dir, force, log=print):
        out = Path(output_dir)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# A report")]
        nbformat.write(nb, out / f"{report}.ipynb")
        shutil.copyfile(FIXTURE / "smoke" / f"{R}.claims.json", out / f"{report}.claims.json")
        (out / f"{report}.py").write_text("# source\n")
        return out / f"{report}.ipynb"

    monkeypatch.setattr(runner, "run_report", fake_run)
    dest = CP.store(R, "paper", {"n_seeds": 3}, directory=tmp_path, log=lambda *a: None)
    assert dest == tmp_path / "paper"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        f"{R}.{ext}" for ext in ("ipynb", "claims.json", "py", "inputs.json"))
    rec = json.loads((dest / f"{R}.inputs.json").read_text())
    params = resolve(R, "paper", {"n_seeds": 3})
    assert rec["params"] == params and rec["key"] == runner.input_key(R, params)
    assert rec["profile"] == "paper" and rec["report"] == R and rec["date"].endswith("UTC")
    (c,) = CP.find(tmp_path)
    assert not c.stale and c.record == rec


def test_rerun_command_reads_back_to_the_same_parameters():
    assert rerun_command(R, resolve(R, "paper")) == f"make report NAME={R} PROFILE=paper"
    params = resolve(R, "smoke", {"n_seeds": 3, "hidden": [32, 32], "lr": 0.001, "datasets": ["wine", "boston"],
                                  "noise_sigmas": [0.0, 1e-3]})
    cmd = rerun_command(R, params)
    assert cmd.startswith(f"make report NAME={R} PROFILE=smoke SET=\"")
    assert 'SET="n_seeds=3 datasets=[wine,boston] hidden=[32,32] lr=0.001 noise_sigmas=[0.0,0.001]"' in cmd
    sets = cmd.split('SET="', 1)[1].rstrip('"').split(" ")  # make splits SET on spaces
    assert resolve(R, "smoke", parse_sets(sets)) == params
    assert rerun_command(R, params, target="companion").startswith("make companion ")


def test_toc_puts_companion_pages_under_every_report():
    toc = yaml.safe_load((project_root() / "book" / "_toc.yml").read_text())
    chapters = [ch for part in toc["parts"] for ch in part["chapters"]]
    for name in REPORTS:  # the companions come right after the report's own page
        i = chapters.index({"file": f"reports/{name}"})
        assert chapters[i + 1] == {"glob": f"reports/scale/*/{name}"}, name
    conf = yaml.safe_load((project_root() / "book" / "_config.yml").read_text())
    assert "etoc.glob" in conf["sphinx"]["config"]["suppress_warnings"]

