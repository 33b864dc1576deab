"""tools/check_offline.py (issue 16, defect 9): every way a page can fetch from the network is
caught, plain hyperlinks are not, and local scripts and stylesheets must exist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paramspace.data import project_root

TOOL = project_root() / "tools" / "check_offline.py"

CLEAN = """<html><head>
<script src="_static/local.js?v=1"></script>
<script src="_static/mathjax/MathJax.js"></script>
<link rel="stylesheet" href="_static/site.css?digest=ab">
<style>body { background: url('_static/bg.png') }</style>
<script type="module">import {a} from "./_static/local.js"; import("./_static/local.js");</script>
</head><body>
<a href="https://example.org/paper.pdf">a hyperlink is fine</a>
<img src="_static/bg.png" srcset="_static/bg.png 1x, _static/bg.png 2x">
<object data="_static/bg.png"></object>
</body></html>"""


def _site(tmp_path, body: str):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "MathJax.js").write_text("// mathjax")
    (tmp_path / "_static" / "local.js").write_text("// js")
    (tmp_path / "_static" / "site.css").write_text("body {}")
    (tmp_path / "_static" / "bg.png").write_bytes(b"png")
    (tmp_path / "index.html").write_text(body)
    return tmp_path


def _check(site):
    proc = subprocess.run([sys.executable, str(TOOL), str(site)], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_clean_site_passes(tmp_path):
    rc, out = _check(_site(tmp_path, CLEAN))
    assert rc == 0, out


@pytest.mark.parametrize("snippet", [
    '<script src="https:/cdn.example.org/x.js"></script>',  # one slash: browsers still fetch it
    '<script src="https:cdn.example.org/x.js"></script>',
    '<script src="HTTPS://cdn.example.org/x.js"></script>',
    '<script src="  ht\ttps://cdn.example.org/x.js"></script>',
    '<script src="//cdn.example.org/x.js"></script>',
    '<script src="\\\\cdn.example.org\\x.js"></script>',
    '<img src="_static/bg.png" srcset="_static/bg.png 1x, https://cdn.example.org/b.png 2x">',
    '<picture><source srcset="https://cdn.example.org/b.webp"></picture>',
    '<object data="https://cdn.example.org/plot.svg"></object>',
    '<video src="_static/bg.png" poster="https://cdn.example.org/p.png"></video>',
    '<svg><image href="https://cdn.example.org/i.png"/></svg>',
    '<base href="https://cdn.example.org/">',
    '<link rel="preconnect" href="https://fonts.example.org">',
    '<script>import "https://cdn.example.org/mod.js";</script>',
    '<script type="module">import { x } from "https://cdn.example.org/mod.js";</script>',
    "<script>const m = await import('https://cdn.example.org/mod.js');</script>",
    '<style>@import url("https:/fonts.example.org/f.css");</style>',
    '<div style="background: url(https:/cdn.example.org/bg.png)"></div>',
])
def test_remote_fetch_is_caught(tmp_path, snippet):
    rc, out = _check(_site(tmp_path, CLEAN.replace("</body>", snippet + "</body>")))
    assert rc == 1 and "example.org" in out, out


@pytest.mark.parametrize("snippet,missing", [
    ('<script src="_static/nowhere.js"></script>', "nowhere.js"),
    ('<script src="/_static/absent.js?v=2"></script>', "absent.js"),
    ('<link rel="stylesheet" href="_static/gone.css">', "gone.css"),
])
def test_missing_local_script_or_stylesheet_is_caught(tmp_path, snippet, missing):
    rc, out = _check(_site(tmp_path, CLEAN.replace("</head>", snippet + "</head>")))
    assert rc == 1 and missing in out and "missing" in out, out


def test_missing_mathjax_and_missing_build(tmp_path):
    site = _site(tmp_path / "a", CLEAN)
    (site / "_static" / "mathjax" / "MathJax.js").unlink()
    rc, out = _check(site)
    assert rc == 1 and "MathJax" in out
    assert _check(tmp_path / "nothing")[0] == 2
