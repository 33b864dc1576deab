"""The runner (issue 16): a run is one unit (notebook, the files it writes, the stamp vouching for
them), the skip check and the scorecard trust only what a matching stamp vouches for, one run of a
report per output folder at a time, the cache key covers every input, failures are named.

A tiny fake report (one printed line, a ledger, one extra file) keeps the notebook runs short."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paramspace import claims as C
from paramspace import reports, runner
from paramspace.reports import ProfileError
from paramspace.reports.spec import COMMON, Param, Report
from paramspace.runner import ReportFailed, current_outputs, input_key, run_report

NAME = "fake_report"
MODES = ("ok", "fail", "die", "no_ledger", "no_source")

NOTEBOOK = '''# %%
import os
import signal
from pathlib import Path

# %% tags=["parameters"]
profile = "smoke"
device = "cpu"
seed = 0
n_seeds = 1
mode = "ok"

# %%
from paramspace import claims as C

if mode != "no_ledger":
    C.write_ledger("fake_report", [C.Claim(f"seed {seed}", "r", str(seed), "reproduced", seeds=[seed],
                                           profile=profile, deck="slide 1")])
if mode != "no_source":
    (Path(os.environ["PARAMSPACE_OUTPUT_DIR"]) / "fake_report.py").write_text(f"# source, seed {seed}\\n")

# %%
if mode == "fail":
    raise ValueError("planned failure")
if mode == "die":
    os.kill(os.getpid(), signal.SIGKILL)
print("done")
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    nb = tmp_path / "fake_report.py"
    nb.write_text(NOTEBOOK)
    values = dict(profile="smoke", device="cpu", seed=0, n_seeds=1, mode="ok")
    rep = Report(name=NAME, title="Fake report", author="tests", seed_id="000", notebook=str(nb),
                 params={**COMMON, "mode": Param(str, "what the notebook does", lambda v: v in MODES,
                                                 f"one of {', '.join(MODES)}")},
                 profiles={p: {**values, "profile": p} for p in reports.PROFILES})
    monkeypatch.setitem(reports.REPORTS, NAME, rep)
    out = tmp_path / "out"
    return out


def _run(out, logs=None, **overrides):
    logs = [] if logs is None else logs
    return run_report(NAME, "smoke", overrides, out, progress=False, log=logs.append)


def _private_dirs(out: Path) -> list[Path]:
    return list(out.glob(f".{NAME}.run-*"))


def _scorecard_row(out: Path) -> dict:
    return {r["report"]: r for r in C.scorecard(out)}[NAME]


def test_stale_ledger_never_outlives_its_run(fake):
    """Issue 16, defects 1, 2 and 6 (dead kernel): a run killed after writing its ledger leaves the
    served notebook, ledger and stamp of the last complete run; a deleted ledger is regenerated."""
    out = fake
    _run(out)
    stamp = current_outputs(out, NAME)
    assert stamp is not None
    assert set(stamp["files"]) == {f"{NAME}.ipynb", f"{NAME}.claims.json", f"{NAME}.py"}
    assert C.read_ledger(out / f"{NAME}.claims.json")[0].claim == "seed 0"
    assert (out / f"{NAME}.py").read_text() == "# source, seed 0\n"
    assert not _private_dirs(out) and not (out / f".{NAME}.partial.ipynb").exists()
    row = _scorecard_row(out)
    assert row["ledger"] and row["reproduced"] == 1

    # the repro: another seed, killed once its ledger is written (here: the kernel dies)
    with pytest.raises(ReportFailed) as exc:
        _run(out, seed=1, mode="die")
    msg = str(exc.value)
    assert NAME in msg and "died" in msg
    assert (out / f".{NAME}.failed.ipynb").exists() and not (out / f".{NAME}.partial.ipynb").exists()
    assert not _private_dirs(out)
    assert C.read_ledger(out / f"{NAME}.claims.json")[0].claim == "seed 0"  # untouched
    assert current_outputs(out, NAME, stamp["key"]) is not None
    logs = []
    _run(out, logs)  # seed 0 again: its outputs are current, so it is skipped
    assert any("skipping" in m for m in logs)
    assert C.read_ledger(out / f"{NAME}.claims.json")[0].claim == "seed 0"

    # a deleted ledger is not current: the next run regenerates it
    (out / f"{NAME}.claims.json").unlink()
    assert current_outputs(out, NAME) is None and not _scorecard_row(out)["ledger"]
    logs = []
    _run(out, logs)
    assert not any("skipping" in m for m in logs)
    assert C.read_ledger(out / f"{NAME}.claims.json")[0].claim == "seed 0"
    assert not (out / f".{NAME}.failed.ipynb").exists()  # a success clears the failed notebook

    # a ledger that is not the one the stamp vouches for is never counted
    C.write_ledger(NAME, [C.Claim("seed 1", "r", "1", "not reproduced", profile="smoke", deck="slide 1")], out)
    assert current_outputs(out, NAME) is None
    assert not _scorecard_row(out)["ledger"]
    assert "no ledger yet" in C.write_scorecard(out).read_text()


def test_failing_cell_is_named_kept_as_failed_and_nothing_cached(fake):
    out = fake
    with pytest.raises(ReportFailed) as exc:
        _run(out, mode="fail")
    msg = str(exc.value)
    assert NAME in msg and "cell 4" in msg and "ValueError: planned failure" in msg
    assert (out / f".{NAME}.failed.ipynb").exists()
    assert not (out / f".{NAME}.partial.ipynb").exists() and not _private_dirs(out)
    assert not runner.stamp_path(out, NAME).exists()
    assert not (out / f"{NAME}.claims.json").exists()  # the failed run's ledger stayed private
    assert current_outputs(out, NAME) is None


@pytest.mark.parametrize("mode,missing", [("no_ledger", "fake_report.claims.json"), ("no_source", "fake_report.py")])
def test_a_run_without_its_ledger_or_source_copy_is_refused_and_the_old_outputs_stay(fake, mode, missing):
    out = fake
    _run(out, seed=1)  # a good run first: its outputs are served
    good = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ReportFailed) as exc:
        run_report(NAME, "smoke", {"seed": 2, "mode": mode}, out, force=True, progress=False, log=lambda m: None)
    assert missing in str(exc.value) and "nothing was installed" in str(exc.value)
    assert (out / f".{NAME}.failed.ipynb").exists() and not _private_dirs(out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")} == \
        {k: v for k, v in good.items() if not k.startswith(".")}  # the seed-1 outputs, untouched
    assert runner.expected_outputs(reports.REPORTS[NAME]) == ["fake_report.py", "fake_report.claims.json"]


def _fake_private(tmp_path: Path, seed: int) -> Path:
    private = tmp_path / f"private{seed}"
    private.mkdir()
    (private / f"{NAME}.ipynb").write_text(f"notebook {seed}")
    C.write_ledger(NAME, [C.Claim(f"seed {seed}", "r", str(seed), "reproduced", profile="smoke", deck="s")], private)
    return private


def test_interrupted_install_leaves_nothing_current(fake, tmp_path, monkeypatch):
    """Defect 2: the outputs and the stamp are one unit.  Interrupted after the ledger moved but
    before the notebook and the stamp, nothing of the report counts (skip check, scorecard)."""
    out = fake
    out.mkdir()
    runner._install(_fake_private(tmp_path, 0), out, NAME, {"version": runner.STAMP_VERSION, "key": "k0"})
    assert current_outputs(out, NAME, "k0") is not None and _scorecard_row(out)["ledger"]

    calls = []
    real_move = runner._move

    def interrupted(src, dest):
        calls.append(dest.name)
        if dest.name == f"{NAME}.ipynb":
            raise KeyboardInterrupt
        real_move(src, dest)

    monkeypatch.setattr(runner, "_move", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner._install(_fake_private(tmp_path, 1), out, NAME, {"version": runner.STAMP_VERSION, "key": "k1"})
    assert calls == [f"{NAME}.claims.json", f"{NAME}.ipynb"]
    assert current_outputs(out, NAME, "k0") is None and current_outputs(out, NAME, "k1") is None
    assert not _scorecard_row(out)["ledger"]


def test_stamp_records_hashes_and_drops_files_the_new_run_did_not_write(fake, tmp_path):
    out = fake
    out.mkdir()
    private = _fake_private(tmp_path, 0)
    (private / "extra.txt").write_text("x")
    runner._install(private, out, NAME, {"version": runner.STAMP_VERSION, "key": "k0"})
    assert (out / "extra.txt").exists()
    runner._install(_fake_private(tmp_path, 1), out, NAME, {"version": runner.STAMP_VERSION, "key": "k1"})
    assert not (out / "extra.txt").exists()
    stamp = json.loads(runner.stamp_path(out, NAME).read_text())
    assert stamp["files"][f"{NAME}.ipynb"] == runner.sha256(out / f"{NAME}.ipynb")
    (out / f"{NAME}.ipynb").write_text("edited")
    assert current_outputs(out, NAME) is None


# --- the lock --------------------------------------------------------------------------------------

HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from paramspace.runner import report_lock
with report_lock(Path({out!r}), {name!r}, log=lambda m: None):
    print("held", flush=True)
    time.sleep({seconds})
"""


def _hold_lock(out: Path, seconds: float) -> subprocess.Popen:
    src = str(Path(runner.__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(src=src, out=str(out), name=NAME, seconds=seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_of_a_report_says_who_holds_the_lock(tmp_path):
    proc = _hold_lock(tmp_path, 30)
    try:
        with pytest.raises(ReportFailed) as exc:
            with runner.report_lock(tmp_path, NAME, wait=False):
                pass
        assert f"pid {proc.pid}" in str(exc.value) and NAME in str(exc.value)
    finally:
        proc.kill()
        proc.wait()
    with runner.report_lock(tmp_path, NAME, wait=False):  # released when its holder dies
        pass


def test_second_run_waits_for_the_first(tmp_path):
    proc = _hold_lock(tmp_path, 1.5)
    logs, t0 = [], time.perf_counter()
    with runner.report_lock(tmp_path, NAME, log=logs.append):
        waited = time.perf_counter() - t0
    proc.wait()
    assert waited > 0.5 and any("waiting" in m and f"pid {proc.pid}" in m for m in logs)


def test_the_lock_serialises_threads_of_one_process_too(tmp_path):
    order = []

    def hold(tag):
        with runner.report_lock(tmp_path, NAME, log=lambda m: None):
            order.append(f"{tag} in")
            time.sleep(0.3)
            order.append(f"{tag} out")

    threads = [threading.Thread(target=hold, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


# --- the cache key (defect 3) -----------------------------------------------------------------------

R = "parameter_relevance"


@pytest.fixture
def smoke():
    return reports.resolve(R, "smoke")


def test_key_covers_the_data_folder_actually_read(smoke, tmp_path, monkeypatch):
    base = input_key(R, smoke)
    other = tmp_path / "data"
    other.mkdir()
    (other / "SHA256SUMS").write_text("0" * 64 + "  wine/wine.csv\n")
    monkeypatch.setenv("PARAMSPACE_DATA", str(other))
    assert input_key(R, smoke) != base
    monkeypatch.delenv("PARAMSPACE_DATA")
    assert input_key(R, smoke) == base


def test_key_reads_the_folder_the_loaders_read(tmp_path, monkeypatch):
    from paramspace import data

    assert runner.data_dir() == data.data_dir() and runner.project_root() == data.project_root()
    monkeypatch.setenv("PARAMSPACE_DATA", str(tmp_path))
    assert runner.data_dir() == data.data_dir() == tmp_path


def test_key_covers_installed_versions(smoke, monkeypatch):
    from importlib import metadata

    base = input_key(R, smoke)
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda n: "0.0.0-other" if n == "numpy" else real(n))
    assert input_key(R, smoke) != base


def test_key_covers_the_resolved_device(smoke, monkeypatch):
    auto = dict(smoke, device="auto")
    base = input_key(R, auto)
    monkeypatch.setattr(runner, "resolved_device", lambda d: "cuda:0 Some GPU")
    assert input_key(R, auto) != base


def test_key_covers_the_thread_count_when_cpu_threads_is_0(monkeypatch):
    lb = reports.resolve("compression_leaderboard", "smoke", {"cpu_threads": 0})
    fixed = reports.resolve("compression_leaderboard", "smoke", {"cpu_threads": 2})
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    a, b = input_key("compression_leaderboard", lb), input_key("compression_leaderboard", fixed)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert input_key("compression_leaderboard", lb) != a  # torch's default follows it
    assert input_key("compression_leaderboard", fixed) == b  # an explicit count does not


def test_absent_cuda_index_is_an_error_before_compute(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ProfileError, match=r"cuda:3.*1 CUDA device"):
        runner.resolved_device("cuda:3")


# --- errors are one line (defect 6) ------------------------------------------------------------------


def test_out_pointing_at_a_file(tmp_path, capsys):
    from paramspace.__main__ import main

    f = tmp_path / "a_file"
    f.write_text("x")
    assert main(["run", "compression_leaderboard", "--profile", "smoke", "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a_file" in err and "is a file" in err


def test_output_folder_that_cannot_be_created(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ProfileError, match="cannot be created"):
        runner.output_folder(f / "sub")


def test_interrupted_runner_leaves_the_served_outputs(fake, monkeypatch):
    """The issue's repro with the runner itself interrupted (Ctrl-C) after the notebook wrote its
    ledger, and with a run killed outright (its private folder left behind): the served outputs,
    the skip check and the scorecard are those of the last complete run."""
    import papermill

    out = fake
    _run(out)  # seed 0, complete
    key0 = current_outputs(out, NAME)["key"]
    real = papermill.execute_notebook

    def interrupted(nb_in, nb_out, **kw):
        private = Path(kw["kernel_manager_class"].extra_env["PARAMSPACE_OUTPUT_DIR"])  # the kernel's folder
        C.write_ledger(NAME, [C.Claim("seed 1", "r", "1", "not reproduced", profile="smoke", deck="s")], private)
        Path(nb_out).write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(out, seed=1)
    assert not _private_dirs(out) and "PARAMSPACE_OUTPUT_DIR" not in os.environ
    assert C.read_ledger(out / f"{NAME}.claims.json")[0].claim == "seed 0"
    assert current_outputs(out, NAME, key0) is not None and _scorecard_row(out)["reproduced"] == 1

    # killed outright: the private folder stays until the next run of this report removes it
    stale = out / f".{NAME}.run-killed"
    stale.mkdir()
    C.write_ledger(NAME, [C.Claim("seed 1", "r", "1", "not reproduced", profile="smoke", deck="s")], stale)
    assert _scorecard_row(out)["reproduced"] == 1
    monkeypatch.setattr(papermill, "execute_notebook", real)
    logs = []
    _run(out, logs)  # seed 0: current, so skipped (the stale folder is removed by the next real run)
    assert any("skipping" in m for m in logs)
    def stop(*a, **kw):
        raise RuntimeError("stopped before any kernel")

    monkeypatch.setattr(papermill, "execute_notebook", stop)
    with pytest.raises(RuntimeError, match="stopped"):
        _run(out, seed=1)  # a run that gets the lock removes what killed runs left
    assert not stale.exists() and not _private_dirs(out)


def test_all_checks_every_report_before_running_any(tmp_path, capsys):
    from paramspace.__main__ import main

    assert main(["all", "--profile", "smoke", "--device", "cuda:zz", "--out", str(tmp_path)]) == 2
    assert "cuda:N" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --- several notebooks at once (make book JOBS=2) ----------------------------------------------------


def test_notebooks_at_once_each_write_into_their_own_folder(tmp_path, monkeypatch):
    """Two notebooks run by two threads of one runner (``make book JOBS=2``): each kernel gets its own
    private output folder, so each report's ledger and source land beside its own notebook.  (With the
    folder passed through the process-wide environment, report 2's kernel once started with report 1's
    folder; its ledger and source were never served and the book build failed.)"""
    from concurrent.futures import ThreadPoolExecutor

    names = ("fake_a", "fake_b")
    for name in names:
        nb = tmp_path / f"{name}.py"
        # each kernel also records the private folder it was given
        record = (f"(Path(os.environ['PARAMSPACE_OUTPUT_DIR']) / '{name}.folder')"
                  ".write_text(Path(os.environ['PARAMSPACE_OUTPUT_DIR']).name)\n")
        nb.write_text(NOTEBOOK.replace('"fake_report"', repr(name)).replace("fake_report.py", f"{name}.py")
                      .replace("from paramspace import claims as C", record + "from paramspace import claims as C"))
        values = dict(profile="smoke", device="cpu", seed=0, n_seeds=1, mode="ok")
        rep = Report(name=name, title=name, author="tests", seed_id="000", notebook=str(nb),
                     params={**COMMON, "mode": Param(str, "what the notebook does", lambda v: v in ("ok",), "ok")},
                     profiles={p: {**values, "profile": p} for p in reports.PROFILES})
        monkeypatch.setitem(reports.REPORTS, name, rep)
    import threading

    import papermill

    real, both_ready = papermill.execute_notebook, threading.Barrier(2, timeout=60)

    def together(*a, **kw):  # both runners are past their set-up before either kernel starts: the race
        both_ready.wait()
        return real(*a, **kw)

    monkeypatch.setattr(papermill, "execute_notebook", together)
    out = tmp_path / "out"
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda n: run_report(n, "smoke", {}, out, progress=False, log=lambda *_: None), names))
    for name in names:
        assert (out / f"{name}.folder").read_text().startswith(f".{name}.run-")  # its own, not the other's
        assert (out / f"{name}.py").read_text() == "# source, seed 0\n"
        assert C.read_ledger(out / f"{name}.claims.json")[0].claim == "seed 0"
        assert current_outputs(out, name) is not None
    assert not list(out.glob(".*.run-*")) and "PARAMSPACE_OUTPUT_DIR" not in os.environ


def test_run_all_with_jobs_runs_notebooks_at_once_and_raises_the_first_failure_in_order(tmp_path, monkeypatch,
                                                                                       overlap):
    calls = []

    def fake_run_report(name, profile, overrides, output_dir, force, progress=True, log=print, address=None):
        with overlap:
            calls.append((name, progress))
            time.sleep(0.3)
        if name in ("frame_regularization", "compression_leaderboard"):
            raise runner.ReportFailed(f"{name} failed on purpose")
        return Path(output_dir) / f"{name}.ipynb"

    monkeypatch.setattr(runner, "run_report", fake_run_report)
    with pytest.raises(runner.ReportFailed, match="frame_regularization failed"):  # the first in report order
        runner.run_all("smoke", tmp_path, jobs=3, log=lambda *_: None)
    assert sorted(n for n, _ in calls) == sorted(reports.NAMES)  # the others still ran to the end
    assert overlap.peak >= 2 and not any(progress for _, progress in calls)  # at once, without interleaved bars
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        runner.run_all("smoke", tmp_path, jobs=0)
