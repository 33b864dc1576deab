"""Number figures and tables per page: each report page reads like a paper ("Fig. 1", "Table 1", ...).

Sphinx's ``numfig`` numbers figures, tables and code blocks with one counter per section number;
this book's toctree is not numbered, so every page shares one counter and report 5's first figure
would be "Fig. 23". After Sphinx assigns its numbers (``env-get-updated``, in document order), this
extension restarts them at 1 on every page, keeping any section-number prefix, so that
``{numref}`fig-r5-...``` on a page gives the number printed under that figure on the same page.
A ``{numref}`` from another page gives the target page's own number.

Registered from ``_config.yml`` (``sphinx.local_extensions`` and ``sphinx.config.extensions``).
"""

from __future__ import annotations

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

Numbers = dict[str, dict[str, dict[str, tuple[int, ...]]]]  # docname -> figtype -> id -> number


def per_page(fignumbers: Numbers) -> Numbers:
    """Restart every page's numbers at 1 per figure type (and section prefix), keeping their order."""
    out: Numbers = {}
    for doc, types in fignumbers.items():
        out[doc] = {}
        for figtype, ids in types.items():
            counters: dict[tuple[int, ...], int] = {}
            renumbered = {}
            for fid, num in sorted(ids.items(), key=lambda kv: kv[1]):
                prefix = tuple(num[:-1])
                counters[prefix] = counters.get(prefix, 0) + 1
                renumbered[fid] = (*prefix, counters[prefix])
            out[doc][figtype] = renumbered
    return out


def _renumber(app: Sphinx, env: BuildEnvironment) -> list[str]:
    old = getattr(env, "paramspace_per_page_numbers", {})
    env.toc_fignumbers = per_page(env.toc_fignumbers)
    env.paramspace_per_page_numbers = env.toc_fignumbers
    return [doc for doc, nums in env.toc_fignumbers.items() if nums != old.get(doc)]


def setup(app: Sphinx) -> dict:
    # after Sphinx's own TocTreeCollector (default priority 500), which assigns the shared numbers
    app.connect("env-get-updated", _renumber, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
