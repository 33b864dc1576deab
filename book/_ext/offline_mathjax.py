"""Serve MathJax 2.7 locally so the built book works without internet access.

MathJax is taken from the PyPI package ``jupyter-server-mathjax`` (its
``static/`` folder is a complete MathJax 2.7 distribution with the
``TeX-AMS-MML_HTMLorMML-full`` combined config and STIX-Web fonts). It is
copied into ``<outdir>/_static/mathjax`` when the HTML build finishes; it is
never vendored into git.

What this extension does:

* ``config-inited``: fail early (with a clear message) if
  ``jupyter_server_mathjax`` is missing; force ``mathjax_path`` to
  ``mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full``. Sphinx resolves a
  relative ``mathjax_path`` against ``_static/`` and writes it page-relative,
  i.e. ``_static/mathjax/...`` on ``index.html`` and
  ``../_static/mathjax/...`` on ``reports/x.html``.
* ``builder-inited`` (after myst-parser, which writes a MathJax-3 config):
  drop ``mathjax3_config`` and set an equivalent ``mathjax2_config``.
* ``build-finished``: copy the MathJax tree into ``_static/mathjax``.

Registered from ``_config.yml``::

    sphinx:
      local_extensions:
        offline_mathjax: _ext
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError
from sphinx.util import logging

logger = logging.getLogger(__name__)

MATHJAX_DIRNAME = "mathjax"
# Sphinx treats a relative mathjax_path as relative to _static/ and renders it
# page-relative, e.g. "../_static/mathjax/MathJax.js?config=..." on reports/x.html.
MATHJAX_PATH = f"{MATHJAX_DIRNAME}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"

# Same classes myst-parser uses for MathJax 3 ("processHtmlClass"); myst marks
# each document's top-level section with tex2jax_ignore/mathjax_ignore, so only
# elements Sphinx/myst emit for math (class "math") and notebook outputs are typeset.
DEFAULT_PROCESS_CLASS = "tex2jax_process|mathjax_process|math|output_area"


def mathjax_static_dir() -> Path:
    """Return the MathJax 2.7 root shipped by jupyter-server-mathjax."""
    try:
        spec = importlib.util.find_spec("jupyter_server_mathjax")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise ConfigError(
            "offline_mathjax: the Python package 'jupyter-server-mathjax' is not "
            "installed, so MathJax cannot be served offline. Install it into the "
            "build environment (pip install jupyter-server-mathjax)."
        )
    static = Path(spec.origin).resolve().parent / "static"
    if not (static / "MathJax.js").is_file():
        raise ConfigError(
            f"offline_mathjax: {static / 'MathJax.js'} not found; the "
            "jupyter-server-mathjax installation looks broken."
        )
    return static


def _config_inited(app: Sphinx, config: Config) -> None:
    mathjax_static_dir()  # fail early with a clear message
    config.mathjax_path = MATHJAX_PATH
    config.mathjax_options = {}


def _builder_inited(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    mj3 = app.config.mathjax3_config or {}
    process_class = (
        mj3.get("options", {}).get("processHtmlClass") or DEFAULT_PROCESS_CLASS
    )
    user_mj2 = dict(app.config.mathjax2_config or {})
    tex2jax = {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
        "processClass": process_class,
        "ignoreClass": "tex2jax_ignore|mathjax_ignore",
    }
    tex2jax.update(user_mj2.pop("tex2jax", {}))
    mj2 = {
        "tex2jax": tex2jax,
        "TeX": {"equationNumbers": {"autoNumber": "none"}},
        # jupyter-server-mathjax ships only STIX-Web fonts (no TeX/image fonts).
        "HTML-CSS": {
            "availableFonts": [],
            "preferredFont": None,
            "webFont": "STIX-Web",
            "imageFont": None,
            "linebreaks": {"automatic": True},
        },
        "SVG": {"font": "STIX-Web"},
        "menuSettings": {"zoom": "None"},
        "showMathMenu": True,
        "messageStyle": "none",
    }
    mj2.update(user_mj2)
    app.config.mathjax2_config = mj2
    # A non-empty mathjax3_config would emit `window.MathJax = {...}` and make
    # Sphinx load MathJax with `defer`; MathJax 2 must get MathJax.Hub.Config.
    app.config.mathjax3_config = None
    app.config.mathjax_path = MATHJAX_PATH


def _build_finished(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src = mathjax_static_dir()
    dest = Path(app.outdir) / "_static" / MATHJAX_DIRNAME
    logger.info("offline_mathjax: copying MathJax 2.7 from %s to %s", src, dest)
    shutil.copytree(src, dest, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _config_inited, priority=900)
    # myst-parser's override_mathjax runs at the default priority (500).
    app.connect("builder-inited", _builder_inited, priority=900)
    app.connect("build-finished", _build_finished)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
