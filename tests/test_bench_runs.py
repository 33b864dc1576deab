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
    # lr never varies, seed is left out; lambdas is set by one run only, whose kind already tells it apart
    assert keys == ["kind", "lam"]
    assert bench_runs.label(runs[0], keys) == "kind=separate, lam=0.1"
    assert bench_runs.label(runs[2], keys) == "kind=linear"  # lam unset: left out
    # a key set by only some runs of one group is kept (report 3's collapse study)
    runs2 = [dict(method="a", seed=0), dict(method="a", seed=1, collapse={"eta": 1}), dict(method="b", seed=0)]
    keys2 = bench_runs.group_keys(runs2)
    assert keys2 == ["collapse", "method"]
    assert [bench_runs.label(r, keys2) for r in runs2] == ["method=a", 'collapse={"eta": 1}, method=a', "method=b"]
    assert bench_runs.label(dict(a=1), []) == "(all alike)"
    assert bench_runs._short(list(range(30))).endswith("...") and len(bench_runs._short(list(range(30)))) == 24


def test_summary_by_hand_and_join_of_saved_files(tmp_path):
    def row(seed, seconds, **run):
        return dict(seconds=seconds, run=dict(seed=seed, lr=0.1, **run))

    a = dict(report="r_a", profile="book", runs=[row(0, 10.0, m="x"), row(1, 30.0, m="x"), row(0, 100.0, m="y")])
    b = dict(report="r_b", profile="book", runs=[row(s, 4.0) for s in range(3)])
    text = bench_runs.markdown([a, b], "header")
    # r_a: total 140, longest 100 -> max(70, 100) = 100; r_b: total 12, longest 4 -> 6;
    # all: total 152, longest 100 -> max(76, 100) = 100 (one run cannot be split over two cores)
    assert "| r_a | 3 | 140 s | 100 s | 100 s |" in text
    assert "| r_b | 3 | 12 s | 4 s | 6 s |" in text
    assert "| **all** | | **152 s** | 100 s | **100 s** |" in text
    assert "| r_a | m=x | 2 | 20.0 s | 40 s |" in text  # median of 10 and 30
    assert "| r_b | (all alike) | 3 | 4.0 s | 12 s |" in text
    assert text.index("| r_a | m=y |") < text.index("| r_a | m=x |")  # the costliest group first
    for name, res in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(dict(header="header", results=[res])))
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_runs.py"), "--from",
                           str(tmp_path / "a.json"), str(tmp_path / "b.json")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == text
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_runs.py"), "--from", str(tmp_path / "c.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no such measurement file" in bad.stderr
