"""tools/bench_gpu.py: one measurement drives a report's whole plan in a fresh process; failures are reported
per cell; without CUDA the tool says so and measures nothing."""

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
