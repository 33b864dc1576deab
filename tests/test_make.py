"""The Makefile passes its variables to the shell quoted (issue 16, defect 8): `SET` with spaces
and brackets reaches the command line as written, and `NAME` cannot run shell code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paramspace.data import project_root

ROOT = project_root()
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _make(*args: str) -> subprocess.CompletedProcess:
    # -o: never (re)build the virtual environment here; BIN: the Python running these tests
    return subprocess.run(["make", "-s", "-C", str(ROOT), "-o", ".venv/.installed", f"BIN={Path(sys.executable).parent}",
                           *args], capture_output=True, text=True, timeout=120)


def test_make_set_with_spaces_and_brackets():
    proc = _make("show", "NAME=parameter_relevance", "PROFILE=smoke", "SET=hidden=[8, 8] lr=0.5 datasets=[wine]")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["hidden"] == [8, 8] and shown["lr"] == 0.5 and shown["datasets"] == ["wine"]
    assert shown["profile"] == "smoke"


def test_make_name_is_not_pasted_into_the_shell(tmp_path):
    marker = tmp_path / "injected"
    proc = _make("show", f"NAME=x; touch {marker}", "PROFILE=smoke")
    assert proc.returncode != 0 and not marker.exists()
    assert "unknown report" in proc.stderr and "Traceback" not in proc.stderr
    proc = _make("show", "NAME=parameter_relevance", f"SET=lr=0.5 $(touch {marker})")
    assert not marker.exists()
