"""tools/bench_runs.py: runs grouped by the plan keys that vary (seed left out); the summary's least wall
time on two cores is max(total / 2, longest run); saved measurements join into one table."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_runs  # noqa: E402


def test_groups_by_the_keys_that_vary_without_the_seed():
    runs = [dict(kind="separate", lam=0.1, seed=0, lr=0.01), dict(kind="separate", lam=1.0, seed=0, lr=0.01),
            dict(kind="linear", seed=1, lr=0.01, lambdas=[0.1, 1.0])]
    keys = bench_runs.group_keys(runs)
    assert keys == ["kind", "lam", "lambdas"]  # lr never varies, seed is left out
    assert bench_runs.label(runs[0], keys) == "kind=separate, lam=0.1"  # lambdas unset: left out
    assert bench_runs.label(runs[2], keys) == "kind=linear, lambdas=[0.1, 1.0]"
    assert bench_runs.label(dict(a=1), []) == "(all alike)"
    assert bench_runs._short(list(range(30))).endswith("...") and len(bench_runs._short(list(range(30)))) == 24


def test_summary_by_hand_and_join_of_saved_files(tmp_path):
    a = dict(report="r_a", profile="book", runs=[dict(label="x", seed=0, seconds=10.0),
                                                  dict(label="x", seed=1, seconds=30.0),
                                                  dict(label="y", seed=0, seconds=100.0)])
    b = dict(report="r_b", profile="book", runs=[dict(label="(all alike)", seed=0, seconds=4.0)] * 3)
    text = bench_runs.markdown([a, b], "header")
    # r_a: total 140, longest 100 -> max(70, 100) = 100; r_b: total 12, longest 4 -> 6; all: 152 / 2 = 76
    assert "| r_a | 3 | 140 s | 100 s | 100 s |" in text
    assert "| r_b | 3 | 12 s | 4 s | 6 s |" in text
    assert "| **all** | | **152 s** | | **76 s** |" in text
    assert "| r_a | x | 2 | 20.0 s | 40 s |" in text  # median of 10 and 30
    assert text.index("| r_a | y |") < text.index("| r_a | x |")  # the costliest group first
    for name, res in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(dict(header="header", results=[res])))
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_runs.py"), "--from",
                           str(tmp_path / "a.json"), str(tmp_path / "b.json")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == text
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_runs.py"), "--from", str(tmp_path / "c.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no such measurement file" in bad.stderr
