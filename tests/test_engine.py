"""The run engine (issue 14): a report's runs as Ray tasks on a real local Ray instance, results in plan
order, the per-run cache (one changed parameter recomputes one run, an interrupted plan resumes, a
corrupt entry is recomputed, a failed run caches nothing and is named), and ``--address``.

The toy report is ``tests/fixtures/engine_toy.py``, imported as ``fixtures.engine_toy`` (a dotted
module path, which the engine imports as is): pytest puts ``tests/`` on this process's path, and the
Ray instance below is started with ``tests/`` on ``PYTHONPATH`` so that its workers import it too.
Each execution of a toy run leaves a file, so the tests count executions across processes.
One module-scoped Ray instance (2 CPUs) serves every Ray test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paramspace import engine, reports, runner
from paramspace.engine import RunFailed, execute_plan

TOY = "fixtures.engine_toy"
TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), *([saved] if saved else [])])
    try:
        address = engine.init_ray(num_cpus=2)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    yield address
    engine.shutdown_ray()


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("PARAMSPACE_RUN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PARAMSPACE_ENGINE", raising=False)
    d = tmp_path / "log"
    d.mkdir()
    return d


def runs(log, xs, **extra):
    return [{"x": x, "log": str(log), **extra} for x in xs]


def executed(log) -> list[int]:
    """The x of every execution so far (in no particular order), and forget them."""
    out = []
    for f in log.glob("ran-*"):
        out.append(int(f.name.split("-")[1]))
        f.unlink()
    return sorted(out)


def entries(report=TOY) -> list[Path]:
    return sorted((engine.cache_root() / report).glob("*.pkl"))


# --- on the real local Ray instance ---------------------------------------------------------------------


def test_ray_results_in_plan_order_equal_the_serial_results(ray_address, log, monkeypatch):
    plan = runs(log, [3, 1, 2, 0, 5])
    on_ray = execute_plan(TOY, plan, cache=False, progress=False)
    assert [r["x2"] for r in on_ray] == [9, 1, 4, 0, 25]
    assert all(r["pid"] != os.getpid() for r in on_ray)  # computed by Ray workers
    monkeypatch.setenv("PARAMSPACE_ENGINE", "serial")
    serial = execute_plan(TOY, plan, cache=False, progress=False)
    assert [r["x2"] for r in serial] == [r["x2"] for r in on_ray]
    assert {r["pid"] for r in serial} == {os.getpid()}
    assert executed(log) == [0, 0, 1, 1, 2, 2, 3, 3, 5, 5] and not entries()  # cache=False: nothing kept


def test_changing_one_parameter_recomputes_only_that_run(ray_address, log):
    assert [r["x2"] for r in execute_plan(TOY, runs(log, [1, 2, 3]), progress=False)] == [1, 4, 9]
    assert executed(log) == [1, 2, 3] and len(entries()) == 3
    assert [r["x2"] for r in execute_plan(TOY, runs(log, [1, 2, 3]), progress=False)] == [1, 4, 9]
    assert executed(log) == []  # all three from the cache
    assert [r["x2"] for r in execute_plan(TOY, runs(log, [1, 7, 3]), progress=False)] == [1, 49, 9]
    assert executed(log) == [7]


def test_interrupted_plan_caches_the_others_names_the_failure_and_resumes(ray_address, log):
    (log / "fail-2").touch()
    with pytest.raises(RunFailed) as err:
        execute_plan(TOY, runs(log, [1, 2, 3, 4]), progress=False)
    msg = str(err.value)
    assert "\n" not in msg and TOY in msg and "run 2/4" in msg
    assert '"x":2' in msg and "ValueError: planned failure of x=2" in msg
    assert executed(log) == [1, 3, 4] and len(entries()) == 3  # the failed run cached nothing
    (log / "fail-2").unlink()
    assert [r["x2"] for r in execute_plan(TOY, runs(log, [1, 2, 3, 4]), progress=False)] == [1, 4, 9, 16]
    assert executed(log) == [2]  # resumed: only the missing run


def test_corrupt_or_foreign_cache_entries_are_recomputed(ray_address, log):
    plan = runs(log, [1, 2, 3])
    execute_plan(TOY, plan, progress=False)
    executed(log)
    keys = [engine.run_key(TOY, r, engine.plan_inputs()) for r in plan]
    engine.cache_path(TOY, keys[0]).write_bytes(b"not a pickle")
    engine.cache_path(TOY, keys[1]).write_bytes(engine.cache_path(TOY, keys[2]).read_bytes())  # another key's
    assert [r["x2"] for r in execute_plan(TOY, plan, progress=False)] == [1, 4, 9]
    assert executed(log) == [1, 2]
    assert engine.cache_load(TOY, keys[0])["x2"] == 1 and engine.cache_load(TOY, keys[1])["x2"] == 4
    assert not list((engine.cache_root() / TOY).glob("*.tmp"))  # atomic writes leave no temporary file


def test_a_worker_with_another_source_tree_is_an_error_not_a_result(ray_address, log, monkeypatch):
    monkeypatch.setattr(runner, "library_digest", lambda: "another tree")
    with pytest.raises(RunFailed, match="differs from this one"):
        execute_plan(TOY, runs(log, [1, 2]), progress=False)
    assert not entries()


def test_a_gpu_run_on_a_cluster_without_gpus_is_an_error_before_any_task(ray_address, log):
    import ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray instance has a GPU")
    with pytest.raises(RunFailed, match="GPU"):
        execute_plan(TOY, runs(log, [1], device="cuda"), progress=False)
    assert executed(log) == []


def test_address_connects_to_the_existing_cluster(ray_address, log):
    """A second process given the address runs its tasks on this process's instance (its workers
    report that cluster's address) instead of starting its own."""
    code = ("import json, sys; from paramspace.engine import execute_plan; "
            "print(json.dumps(execute_plan(sys.argv[1], json.loads(sys.argv[2]), address=sys.argv[3], "
            "cache=False, progress=False)))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-c", code, TOY, json.dumps(runs(log, [4, 5], where=True)), ray_address],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["x2"] for r in out] == [16, 25] and {r["gcs"] for r in out} == {ray_address}


# --- without Ray --------------------------------------------------------------------------------------


def test_serial_engine_same_cache_and_failure_rules(log, monkeypatch):
    monkeypatch.setenv("PARAMSPACE_ENGINE", "serial")
    (log / "fail-1").touch()
    with pytest.raises(RunFailed, match=r"run 1/2 .*\"x\":1.*planned failure") as err:
        execute_plan(TOY, runs(log, [1, 2]), progress=False)
    assert isinstance(err.value.__cause__, ValueError)  # the traceback of the run itself
    assert executed(log) == [2] and len(entries()) == 1
    (log / "fail-1").unlink()
    assert [r["x2"] for r in execute_plan(TOY, runs(log, [1, 2]), progress=False)] == [1, 4]
    assert executed(log) == [1]


def test_run_cache_off_recomputes_and_stores_nothing(log, monkeypatch):
    monkeypatch.setenv("PARAMSPACE_ENGINE", "serial")
    execute_plan(TOY, runs(log, [1, 2]), progress=False)
    executed(log)
    monkeypatch.setenv("PARAMSPACE_RUN_CACHE", "off")
    assert [r["x2"] for r in execute_plan(TOY, runs(log, [1, 2, 3]), progress=False)] == [1, 4, 9]
    assert executed(log) == [1, 2, 3] and not Path("off").exists()


def test_failure_line_of_a_worker_without_this_engine():
    exc = RuntimeError("The remote function failed to import on the worker. This may be because ...\nmore")
    line = engine._describe("r", 0, 3, {"x": 1}, exc)
    assert line.startswith('report \'r\': run 1/3 {"x":1} failed: RuntimeError: the worker cannot import')
    assert engine.source_dir() in line and "\n" not in line


def test_unknown_engine_is_an_error(log, monkeypatch):
    monkeypatch.setenv("PARAMSPACE_ENGINE", "threads")
    with pytest.raises(ValueError, match="local-ray, serial"):
        execute_plan(TOY, runs(log, [1]), progress=False)


def test_run_key_follows_parameters_device_source_and_data(monkeypatch, tmp_path):
    inputs = engine.plan_inputs()
    base = engine.run_key("r", {"x": 1, "y": [1, 2]}, inputs)
    assert base == engine.run_key("r", {"y": [1, 2], "x": 1}, inputs)  # key order does not matter
    assert base != engine.run_key("r", {"x": 2, "y": [1, 2]}, inputs)
    assert base != engine.run_key("other", {"x": 1, "y": [1, 2]}, inputs)
    assert base != engine.run_key("r", {"x": 1, "y": [1, 2]}, {**inputs, "library": "changed"})
    assert inputs["library"] == runner.library_digest() and inputs["data_checksums"] == runner.data_checksums()
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  x\n")
    monkeypatch.setenv("PARAMSPACE_DATA", str(tmp_path))
    assert engine.plan_inputs()["data_checksums"] != inputs["data_checksums"]
    import torch

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert engine.run_device({"device": "auto"}) == auto and engine.run_device({}) is None
    here = engine.run_key("r", {"device": "auto"}, inputs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: auto == "cpu")  # the other machine
    assert engine.run_device({"device": "auto"}) != auto and engine.run_key("r", {"device": "auto"}, inputs) != here
    with pytest.raises(TypeError, match="JSON"):
        engine.canonical_json({"t": torch.zeros(1)})


def test_library_digest_covers_the_source_and_the_lock():
    names = {f.name for f in runner.library_files()}
    assert {"requirements.lock", "engine.py", "runner.py", "__init__.py"} <= names


def test_default_resources_and_a_reports_own():
    class Plain:
        pass

    class Own:
        @staticmethod
        def resources(run):
            return {"num_cpus": run["threads"], "num_gpus": 0.5}

    assert engine.resources(Plain, {"device": "cpu"}) == {"num_cpus": 1, "num_gpus": 0}
    assert engine.resources(Plain, {"device": "cuda:1"}) == {"num_cpus": 1, "num_gpus": 0.25}
    assert engine.resources(Plain, {}) == {"num_cpus": 1, "num_gpus": 0}
    assert engine.resources(Own, {"threads": 4}) == {"num_cpus": 4, "num_gpus": 0.5}
    # a run computing with n torch threads holds n CPUs; 0 (torch's default) and nonsense count as 1
    assert engine.resources(Plain, {"device": "cpu", "cpu_threads": 2}) == {"num_cpus": 2, "num_gpus": 0}
    assert engine.resources(Plain, {"cpu_threads": 0}) == {"num_cpus": 1, "num_gpus": 0}
    assert engine.resources(Plain, {"cpu_threads": True}) == {"num_cpus": 1, "num_gpus": 0}


def test_reports_run_all_goes_through_the_engine(log, monkeypatch):
    import importlib

    toy = importlib.import_module(TOY)
    monkeypatch.setenv("PARAMSPACE_ENGINE", "serial")
    monkeypatch.setattr(reports, "module", lambda name: toy)
    monkeypatch.setattr(engine, "report_module", lambda name: toy)
    P = {"xs": [2, 3], "log": str(log)}
    assert reports.run_all("metric_analysis", P, progress=False) == [4, 9]
    assert len(entries("metric_analysis")) == 2 and executed(log) == [2, 3]
    assert reports.run_all("metric_analysis", P, progress=False) == [4, 9] and executed(log) == []


def test_collection_reports_resolve_by_name():
    assert engine.report_module("metric_analysis") is reports.module("metric_analysis")
    with pytest.raises(reports.ProfileError, match="unknown report"):
        engine.report_module("no_such_report")


# --- the runner and the command line ----------------------------------------------------------------------


def test_command_line_address_reaches_the_runner(monkeypatch):
    from paramspace.__main__ import main

    seen = {}
    monkeypatch.setattr(runner, "run_report", lambda *a, **kw: seen.setdefault("run", kw.get("address")))
    monkeypatch.setattr(runner, "run_all", lambda *a, **kw: seen.setdefault("all", kw.get("address")))
    assert main(["run", "metric_analysis", "--profile", "smoke", "--address", "10.0.0.5:6379"]) == 0
    assert main(["all", "--profile", "smoke", "--address", "10.0.0.6:6379"]) == 0
    assert seen == {"run": "10.0.0.5:6379", "all": "10.0.0.6:6379"}


NOTEBOOK = '''# %% tags=["parameters"]
profile = "smoke"
device = "cpu"
seed = 0
n_seeds = 1

# %%
import os
from pathlib import Path

(Path(os.environ["PARAMSPACE_OUTPUT_DIR"]) / "address.txt").write_text(os.environ.get("RAY_ADDRESS", "<none>"))
(Path(os.environ["PARAMSPACE_OUTPUT_DIR"]) / "addr_report.py").write_text("# the source copy every page links")
'''


def test_runner_gives_the_kernel_the_address(tmp_path, monkeypatch):
    from paramspace.reports.spec import COMMON, Report

    nb = tmp_path / "addr_report.py"
    nb.write_text(NOTEBOOK)
    values = dict(profile="smoke", device="cpu", seed=0, n_seeds=1)
    rep = Report(name="addr_report", title="Address", author="tests", seed_id="000", notebook=str(nb),
                 params=dict(COMMON), profiles={p: {**values, "profile": p} for p in reports.PROFILES},
                 claims=False)
    monkeypatch.setitem(reports.REPORTS, "addr_report", rep)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    runner.run_report("addr_report", "smoke", None, out, progress=False, log=lambda m: None,
                      address="10.0.0.7:6379")
    assert (out / "address.txt").read_text() == "10.0.0.7:6379"
    assert "RAY_ADDRESS" not in os.environ  # restored after the run


def test_cluster_for_kernels(ray_address, monkeypatch):
    """The runner's instance for the kernels: a given address as is; none in serial mode; else the local
    instance, reused when this process already has one, and then left running."""
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("PARAMSPACE_ENGINE", raising=False)  # the default engine (conftest sets serial)
    with engine.cluster_for_kernels("10.0.0.8:6379") as addr:
        assert addr == "10.0.0.8:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    with engine.cluster_for_kernels() as addr:
        assert addr == "10.0.0.9:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    with monkeypatch.context() as mp:
        mp.setenv("PARAMSPACE_ENGINE", "serial")
        with engine.cluster_for_kernels() as addr:
            assert addr is None
    with engine.cluster_for_kernels() as addr:
        assert addr == ray_address
    assert ray.is_initialized()  # not started here, so not stopped here


def test_runner_gives_a_cluster_only_to_reports_that_use_the_engine(ray_address, log, monkeypatch):
    import importlib

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("PARAMSPACE_ENGINE", raising=False)
    with runner._kernels_cluster("fake_report", {}, None) as addr:  # not a report module: no Ray
        assert addr is None
    monkeypatch.setattr(reports, "module", lambda name: importlib.import_module(TOY))  # a module with plan
    P = {"xs": [1, 2], "log": str(log)}
    with runner._kernels_cluster("metric_analysis", P, None) as addr:
        assert addr == ray_address
    monkeypatch.setenv("PARAMSPACE_ENGINE", "serial")
    reports.run_all("metric_analysis", P, progress=False)
    monkeypatch.delenv("PARAMSPACE_ENGINE")
    assert engine.all_cached("metric_analysis", importlib.import_module(TOY).plan(P))
    with runner._kernels_cluster("metric_analysis", P, None) as addr:  # every run cached: no Ray needed
        assert addr is None
