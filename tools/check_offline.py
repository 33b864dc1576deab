#!/usr/bin/env python3
"""Check that the built Jupyter Book works offline (stdlib only).

Scans every HTML page under the build directory for resources that would be
fetched from the network:

* ``<script src>``, ``<img src/srcset>``, ``<source src/srcset>``, ``<iframe>``, ``<embed>``,
  ``<audio>``/``<video>`` (and ``poster``), ``<track>``, ``<input type=image>``, ``<object data>``,
  SVG ``<image>``/``<use>`` ``href``, ``<base href>``;
* ``<link href>`` with a fetching ``rel`` (stylesheet, preload, modulepreload, icon, preconnect, ...);
* CSS ``@import``/``url()`` in ``<style>``, ``style=`` attributes and the theme's stylesheets;
* inline ``<script>`` code that imports a remote module (``import ... from "https://..."``,
  ``import "https://..."``, ``import("https://...")``, ``importScripts("https://...")``).

A URL is remote if it names any scheme but ``file:``, ``data:``, ``blob:``, ``about:``,
``javascript:``, ``mailto:`` and ``tel:`` (so ``https:/host/x.js`` with one slash and ``https:host``
count, as browsers read them), or starts with two slashes or backslashes; tabs and newlines inside
a URL are ignored, as browsers do.  Plain ``<a href="https://...">`` hyperlinks are fine and are
not reported.

Also verifies that every local script and stylesheet a page loads exists in the build, that
``_static/mathjax/MathJax.js`` exists, and that every page's MathJax ``<script>`` points at it.

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

LOCAL_SCHEMES = {"file", "data", "blob", "about", "javascript", "mailto", "tel"}
SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# rel values on <link> that make the browser fetch the resource or connect to its host.
FETCHING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut", "apple-touch-icon",
                 "manifest", "import", "preconnect", "dns-prefetch", "prerender", "mask-icon"}
URL_TOKEN = r"""['"]?\s*((?:[a-zA-Z][a-zA-Z0-9+.-]*:|[/\\]{2})[^'")\s]*)"""
CSS_REMOTE = re.compile(r"(?:@import\s+(?:url\(\s*)?|url\(\s*)" + URL_TOKEN, re.I)
JS_IMPORT = re.compile(r"""(?:\bimport\s*\(\s*|\bimport\s+(?:[\w*{}\s,$]+\s+from\s*)?|\bimportScripts\s*\(\s*|"""
                       r"""\bfrom\s*)(['"`])([^'"`]+)\1""")
# attributes that load a resource, per tag
SRC_ATTRS = {"script": ("src",), "img": ("src",), "iframe": ("src",), "embed": ("src",), "source": ("src",),
             "audio": ("src",), "video": ("src", "poster"), "track": ("src",), "input": ("src",),
             "object": ("data",), "image": ("href", "xlink:href"), "use": ("href", "xlink:href"),
             "base": ("href",), "frame": ("src",)}


def is_remote(url: str | None) -> bool:
    if not url:
        return False
    u = re.sub(r"[\t\n\r]", "", url).lstrip(" \x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
                                             "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
    if re.match(r"^[/\\]{2}", u):
        return True
    m = SCHEME.match(u)
    return bool(m) and m.group(1).lower() not in LOCAL_SCHEMES


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` (comma-separated candidates ``URL [descriptor]``)."""
    return [c.split()[0] for c in re.split(r",\s+|,(?=\S*:|/)", value.strip()) if c.split()]


class Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.offenders: list[str] = []
        self.local_scripts: list[str] = []
        self.local_styles: list[str] = []
        self._in_style = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        line = self.getpos()[0]
        for attr in SRC_ATTRS.get(tag, ()):
            url = a.get(attr)
            if is_remote(url):
                self.offenders.append(f"line {line}: <{tag} {attr}={url!r}>")
        if "srcset" in a:
            for url in srcset_urls(a["srcset"]):
                if is_remote(url):
                    self.offenders.append(f"line {line}: <{tag} srcset> {url!r}")
        if tag == "script":
            src = a.get("src")
            if src and not is_remote(src) and not src.lower().startswith("data:"):
                self.local_scripts.append(src)
            self._in_script = not src
        elif tag == "link":
            rels = set(a.get("rel", "").lower().split())
            href = a.get("href")
            if rels & FETCHING_RELS and is_remote(href):
                self.offenders.append(f"line {line}: <link rel={a.get('rel')!r} href={href!r}>")
            if "stylesheet" in rels and href and not is_remote(href) and not href.lower().startswith("data:"):
                self.local_styles.append(href)
            if "imagesrcset" in a:
                for url in srcset_urls(a["imagesrcset"]):
                    if is_remote(url):
                        self.offenders.append(f"line {line}: <link imagesrcset> {url!r}")
        elif tag == "style":
            self._in_style = True
        style = a.get("style")
        if style:
            for url in CSS_REMOTE.findall(style):
                if is_remote(url):
                    self.offenders.append(f"line {line}: inline style url({url!r})")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in ("script", "style"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            for url in CSS_REMOTE.findall(data):
                if is_remote(url):
                    self.offenders.append(f"line {self.getpos()[0]}: <style> {url!r}")
        if self._in_script:
            for _, url in JS_IMPORT.findall(data):
                if is_remote(url):
                    self.offenders.append(f"line {self.getpos()[0]}: inline <script> imports {url!r}")


def local_target(build: Path, page: Path, url: str) -> Path:
    path = unquote(urlsplit(url).path)
    return (build / path.lstrip("/")) if path.startswith("/") else (page.parent / path)


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    build = Path(argv[1]) if len(argv) > 1 else root / "book" / "_build" / "html"
    if not (build / "index.html").is_file():
        print(f"check_offline: no built site at {build} (index.html missing)", file=sys.stderr)
        return 2

    problems: list[str] = []
    pages = sorted(build.rglob("*.html"))
    # HTML under _static/ (MathJax's bundled files, the themes' Jinja macro templates) is not a page.
    pages = [p for p in pages if not p.relative_to(build).as_posix().startswith("_static/")]
    for page in pages:
        scanner = Scanner()
        scanner.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(build).as_posix()
        problems += [f"{rel}: {o}" for o in scanner.offenders]
        for kind, urls in (("script", scanner.local_scripts), ("stylesheet", scanner.local_styles)):
            for src in urls:
                target = local_target(build, page, src).resolve()
                if not target.is_file():
                    what = "MathJax script" if "MathJax.js" in src else f"local {kind}"
                    problems.append(f"{rel}: {what} {src!r} -> missing {target}")

    # Stylesheets shipped with the theme must not pull remote fonts/CSS either.
    for css in sorted(build.glob("_static/**/*.css")):
        rel = css.relative_to(build).as_posix()
        if rel.startswith("_static/mathjax/"):
            continue
        for url in CSS_REMOTE.findall(css.read_text(encoding="utf-8", errors="replace")):
            if is_remote(url):
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
