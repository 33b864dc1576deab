#!/usr/bin/env python3
"""Check that the built Jupyter Book works offline (stdlib only).

Scans every HTML page under the build directory for resources that would be
fetched from the network:

* ``<script src="http(s)://...">`` or protocol-relative ``//...``;
* ``<link href="http(s)://..." rel="stylesheet|preload|modulepreload|...">``;
* ``<iframe>``/``<img>`` sources and CSS ``@import``/``url()`` pointing off-site.

Plain ``<a href="https://...">`` hyperlinks are fine and are not reported.
Also verifies that ``_static/mathjax/MathJax.js`` exists in the build and that
every page's MathJax ``<script>`` points at a file that exists.

Usage: python tools/check_offline.py [BUILD_HTML_DIR]
       (default: book/_build/html relative to the repository root)
Exit status: 0 if clean, 1 if offenders were found, 2 if the build is missing.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

REMOTE = re.compile(r"^\s*(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//")
# rel values on <link> that make the browser fetch the resource.
FETCHING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon",
                 "shortcut", "apple-touch-icon", "manifest", "import"}
CSS_REMOTE = re.compile(r"""(?:@import\s+|url\(\s*)['"]?\s*((?:https?:)?//[^'")\s]+)""", re.I)


def is_remote(url: str | None) -> bool:
    return bool(url) and bool(REMOTE.match(url)) and not url.strip().lower().startswith("file:")


class Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.offenders: list[str] = []
        self.local_scripts: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        line = self.getpos()[0]
        if tag == "script":
            src = a.get("src")
            if is_remote(src):
                self.offenders.append(f"line {line}: <script src={src!r}>")
            elif src:
                self.local_scripts.append(src)
        elif tag == "link":
            rels = set(a.get("rel", "").lower().split())
            href = a.get("href")
            if rels & FETCHING_RELS and is_remote(href):
                self.offenders.append(f"line {line}: <link rel={a.get('rel')!r} href={href!r}>")
        elif tag in {"iframe", "img", "embed", "source", "audio", "video"}:
            src = a.get("src")
            if is_remote(src):
                self.offenders.append(f"line {line}: <{tag} src={src!r}>")
        elif tag == "style":
            self._in_style = True
        style = a.get("style")
        if style:
            for url in CSS_REMOTE.findall(style):
                self.offenders.append(f"line {line}: inline style url({url!r})")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            for url in CSS_REMOTE.findall(data):
                self.offenders.append(f"line {self.getpos()[0]}: <style> {url!r}")


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    build = Path(argv[1]) if len(argv) > 1 else root / "book" / "_build" / "html"
    if not (build / "index.html").is_file():
        print(f"check_offline: no built site at {build} (index.html missing)", file=sys.stderr)
        return 2

    problems: list[str] = []
    pages = sorted(build.rglob("*.html"))
    # MathJax's own bundled HTML files are not pages of the book.
    pages = [p for p in pages if "_static/mathjax" not in p.relative_to(build).as_posix()]
    for page in pages:
        scanner = Scanner()
        scanner.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(build).as_posix()
        problems += [f"{rel}: {o}" for o in scanner.offenders]
        for src in scanner.local_scripts:
            if "MathJax.js" in src:
                target = (page.parent / unquote(urlsplit(src).path)).resolve()
                if not target.is_file():
                    problems.append(f"{rel}: MathJax script {src!r} -> missing {target}")

    # Stylesheets shipped with the theme must not pull remote fonts/CSS either.
    for css in sorted(build.glob("_static/**/*.css")):
        rel = css.relative_to(build).as_posix()
        if rel.startswith("_static/mathjax/"):
            continue
        for url in CSS_REMOTE.findall(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{rel}: remote CSS resource {url!r}")

    mathjax = build / "_static" / "mathjax" / "MathJax.js"
    if not mathjax.is_file():
        problems.append(f"missing {mathjax.relative_to(build)} (offline MathJax not copied)")

    if problems:
        print(f"check_offline: {len(problems)} problem(s) in {build}:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"check_offline: OK ({len(pages)} pages, no remote scripts/stylesheets, "
          f"MathJax at {mathjax.relative_to(build)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
