"""tools/bench_gpu.py: one measurement drives a report's whole plan in a fresh process; failures are reported
per cell; without CUDA the tool says so and measures nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_gpu  # noqa: E402


@pytest.mark.slow
def test_one_measurement_runs_the_whole_plan_on_the_cpu():
    m = bench_gpu.measure("parameter_relevance", "smoke", "cpu", 1)
    from paramspace import reports

    P = reports.resolve("parameter_relevance", "smoke")
    assert m["runs"] == len(reports.module("parameter_relevance").plan(P)) == 6
    assert m["seconds"] > 0


def test_a_failing_cell_carries_its_error():
    m = bench_gpu.measure("parameter_relevance", "smoke", "tpu", 1)  # not a device: refused before any compute
    assert "seconds" not in m and "device" in m["error"]
    assert bench_gpu.cell(m).startswith("failed: ")
    assert bench_gpu.cell({"seconds": 12.4}) == "12 s"


def test_without_cuda_it_measures_nothing_and_succeeds():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py")], capture_output=True, text=True)
    assert proc.returncode == 0 and "CUDA is not available" in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py"), "--cpu-threads", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--cpu-threads must be >= 1" in bad.stderr


# --- within a device session's budget: the CPU side from the 2-core machine's table, cells bounded ----------

RUNS_SECTION = """<!-- bench:runs:start -->
Measured 2026-12-03 12:19 UTC at commit `0dc763fe` (started) on AMD EPYC, 2 cores, 24 GiB RAM, Python 3.11.7; `python tools/bench_runs.py`. Profile `book`, 1 torch/BLAS thread(s), one process, no Ray, no cache.

| report | runs | serial total (one core) | longest run | least wall time on 2 cores |
|---|---|---|---|---|
| variational_complexity | 30 | 919 s | 94 s | 460 s |
| metric_analysis | 26 | 234 s | 22 s | 117 s |
| **all** | | **1153 s** | 94 s | **577 s** |

| report | runs alike (seed left out) | runs | median | total |
|---|---|---|---|---|
| variational_complexity | kind=lowrank | 3 | 77.9 s | 245 s |
<!-- bench:runs:end -->
"""


def test_the_cpu_baseline_is_the_runs_tables_least_wall_time_on_two_cores():
    base, head, profile = bench_gpu.runs_baseline("# Benchmarks\n\n" + RUNS_SECTION)
    # the summary table's last column only: not the 'all' row, not the per-group table below it
    assert base == {"variational_complexity": 460.0, "metric_analysis": 117.0}
    assert head == "measured 2026-12-03 12:19 UTC at commit `0dc763fe` on AMD EPYC, 2 cores, 24 GiB RAM, Python 3.11.7"
    assert profile == "book"
    with pytest.raises(ValueError, match="no 'runs' section"):
        bench_gpu.runs_baseline("# Benchmarks\n")
    no_summary = RUNS_SECTION.replace("least wall time on 2 cores", "something else")
    with pytest.raises(ValueError, match="no summary table"):
        bench_gpu.runs_baseline(no_summary)
    # the committed table has a row for every report, so the GPU machine needs no CPU re-timing
    from paramspace import reports

    committed, _, _ = bench_gpu.runs_baseline((ROOT / "BENCHMARKS.md").read_text())
    assert set(committed) == set(reports.NAMES)


def test_cells_and_speed_ups_of_stopped_and_skipped_cells():
    assert bench_gpu.cell({"timeout": 240.0}) == "> 240 s (stopped)"
    assert bench_gpu.cell({"skipped": "budget"}) == "not run (budget)"
    assert bench_gpu.ratio({"seconds": 460.0}, {"seconds": 46.0}) == "10.00x"
    # a stopped cell's limit also counts its start-up, which a finished cell's clock leaves out: no ratio
    assert bench_gpu.ratio({"seconds": 460.0}, {"timeout": 230.0}) == "-"
    assert bench_gpu.ratio({"timeout": 100.0}, {"seconds": 20.0}) == "-"
    assert bench_gpu.ratio({"seconds": 1.0}, {"error": "x"}) == "-"
    assert bench_gpu.cell({"running_since": 12.3}) == "still running (since 12 s)"
    # an error's text cannot break the Markdown table
    assert bench_gpu.cell({"error": "a | b `c`"}) == "failed: `a / b 'c'`"


def test_jobs_come_in_priority_order_with_the_habits_last():
    todo = bench_gpu.jobs(["metric_analysis", "frame_regularization"], ["variational_complexity"], True, "book")
    assert [j["key"] for j in todo] == [
        "metric_analysis|book", "frame_regularization|book", "variational_complexity|paper",
        'frame_regularization|book|{"amp": "bf16"}', 'frame_regularization|book|{"channels_last": true}',
        'frame_regularization|book|{"cudnn_benchmark": true}']
    assert [j["extra"] for j in todo[-3:]] == [dict(h) for h in bench_gpu.HABITS]
    # each habit against the report's own book cell (no habits): its time, the ratio, that cell's time
    results = {j["key"]: {"seconds": 10.0} for j in todo} | {"frame_regularization|book": {"seconds": 30.0}}
    rows = bench_gpu.table(todo, results, {"metric_analysis": {"seconds": 117.0},
                                           "frame_regularization": {"seconds": 361.0}}, "H200", "2 CPU cores")
    assert rows[2] == "| metric_analysis | book | 117 s | 10 s | 11.70x |"
    assert rows[3] == "| frame_regularization | book | 361 s | 30 s | 12.03x |"
    assert rows[4] == "| variational_complexity | paper | not run | 10 s | - |"
    assert rows[5] == "| frame_regularization, amp=bf16 | book | - | 10 s | 3.00x vs none (30 s) |"


def test_jobs_run_in_parallel_within_the_cell_limit_and_the_budget(overlap):
    import time

    seen = []

    def fake(report, profile, device, threads, extra, timeout):
        with overlap:
            seen.append((report, timeout))
            time.sleep(1.5)
        return {"seconds": 1.5, "runs": 1}

    todo = [dict(key=k, report=k, profile="book", extra={}) for k in ("a", "b", "c", "d")]
    saved = []
    res = bench_gpu.run_jobs(todo, "cuda", 1, 2, 8.0, 7.5, on_done=lambda r, k: saved.append((k, r[k])),
                             measure_fn=fake)
    # two at a time: a and b start at once, bounded by the 7.5 s budget (below the 8 s cell limit); c and d
    # 1.5 s later, bounded by the 6 s then left
    assert overlap.peak == 2 and [r for r, _ in seen] == ["a", "b", "c", "d"]
    assert all(7.0 < t <= 7.5 for _, t in seen[:2]) and all(5.0 < t <= 6.0 for _, t in seen[2:])
    assert list(res) == ["a", "b", "c", "d"] and all(m == {"seconds": 1.5, "runs": 1} for m in res.values())
    # saved when each cell starts (so a killed command shows what was running) and when it ends
    assert [k for k, m in saved if "running_since" in m] == ["a", "b", "c", "d"]
    assert [k for k, m in saved if "seconds" in m] in (["a", "b", "c", "d"], ["b", "a", "c", "d"],
                                                       ["a", "b", "d", "c"], ["b", "a", "d", "c"])

    # a budget that runs out: the last jobs are not run, and say why
    seen.clear()
    res = bench_gpu.run_jobs(todo, "cuda", 1, 1, None, 6.0, measure_fn=fake)
    assert [r for r, _ in seen] == ["a"]  # after 1.5 s, 4.5 s are left: under the 5 s a cell needs
    assert res["a"]["seconds"] == 1.5 and all(res[k] == {"skipped": "budget"} for k in "bcd")
    # a cell is not started on less than a quarter of the cell limit: it would time little more than start-up
    seen.clear()
    res = bench_gpu.run_jobs(todo, "cuda", 1, 1, 40.0, 12.0, measure_fn=fake)
    assert [r for r, _ in seen] == ["a", "b"]  # b starts on 10.5 s (>= 10), c would on 9
    assert all(res[k] == {"skipped": "budget"} for k in "cd")


def test_a_cell_that_raises_is_its_error_and_the_others_still_run():
    def flaky(report, profile, device, threads, extra, timeout):
        if report == "b":
            raise ValueError("no JSON on the last line")
        return {"seconds": 1.0, "runs": 1}

    todo = [dict(key=k, report=k, profile="book", extra={}) for k in ("a", "b", "c")]
    res = bench_gpu.run_jobs(todo, "cuda", 1, 2, None, None, measure_fn=flaky)
    assert res["b"] == {"error": "ValueError: no JSON on the last line"}
    assert res["a"] == res["c"] == {"seconds": 1.0, "runs": 1}


@pytest.mark.slow
def test_a_cell_past_its_limit_is_stopped_and_the_table_says_so(tmp_path):
    # the whole command as a device session runs it, here on the CPU: the smoke profile, its CPU side
    # measured, two cells at once, the paper cell (hours of work here) stopped at the 30 s cell limit
    js, md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py"), "--device", "cpu", "--profile", "smoke",
                           "--baseline", "measure", "--report", "parameter_relevance", "--paper", "parameter_relevance",
                           "--cpu-threads", "1", "--parallel", "2", "--cell-timeout", "30", "--budget", "120",
                           "--json", str(js), "--markdown", str(md)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(js.read_text())
    smoke = data["results"]["parameter_relevance|smoke"]
    assert smoke["runs"] == 6 and 0 < smoke["seconds"] < 30
    assert data["results"]["parameter_relevance|paper"] == {"timeout": 30.0}
    text = md.read_text()
    assert "up to 2 of its 2 cells at once" in text and "CPU (1 thread, this machine)" in text
    assert "1 torch/BLAS thread per process" in text and "--cpu-threads 1 --parallel 2" in text  # as it ran
    assert "bench_gpu: parameter_relevance|paper: > 30 s (stopped)" in proc.stdout  # each cell as it ends
    assert "| parameter_relevance | paper | not run | > 30 s (stopped) | - |" in text
    row = next(line for line in text.splitlines() if line.startswith("| parameter_relevance | smoke |"))
    assert row.endswith("x |") and row.count(" s |") == 2  # CPU time, device time, speed-up


def test_bad_options_are_refused_before_any_compute():
    tool = [sys.executable, str(ROOT / "tools" / "bench_gpu.py")]
    for args, msg in ((["--parallel", "0"], "--parallel must be >= 1"),
                      (["--budget", "-1"], "--budget must be > 0"),
                      (["--cell-timeout", "0"], "--cell-timeout must be > 0"),
                      (["--profile", "smoke"], "is of profile 'book', not 'smoke'; use --baseline measure")):
        bad = subprocess.run(tool + args, capture_output=True, text=True)
        assert bad.returncode == 2 and msg in bad.stderr, (args, bad.stderr)


def test_the_commit_travels_to_a_copy_without_git(tmp_path, monkeypatch):
    import benchmarks_md

    monkeypatch.setattr(benchmarks_md, "ROOT", tmp_path)  # a copy of the tree, no .git (the device machine's)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("PARAMSPACE_COMMIT", "0123456789ab plus uncommitted changes")
    assert benchmarks_md.commit() == "0123456789ab plus uncommitted changes"
    monkeypatch.delenv("PARAMSPACE_COMMIT")
    assert benchmarks_md.commit() == "unknown"
    monkeypatch.setattr(benchmarks_md, "ROOT", ROOT)  # in the repository, git answers, whatever the variable says
    monkeypatch.setenv("PARAMSPACE_COMMIT", "not this")
    assert benchmarks_md.commit() not in ("not this", "unknown")
