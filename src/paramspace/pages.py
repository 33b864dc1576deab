"""Helpers for what a report page displays: numbered, titled Markdown tables (MyST)."""

from __future__ import annotations

import re


#: classes of the block around a wide table (see ``book/_static/paramspace.css``): sphinx-book-theme's
#: ``full-width`` lets it take the right-hand margin (the page's contents fold into a menu while it is
#: on screen), ``wide-table`` sets it in smaller type with the verdict column kept readable
WIDE_CLASSES = "full-width wide-table"


def titled_table(title: str, name: str, markdown: str, wide: bool = False) -> str:
    """Wrap a Markdown table in a MyST ``table`` directive: the book numbers it ("Table N"),
    shows ``title`` above it, and ``{numref}`name``` refers to it from the text.

    ``name`` must be a label: letters, digits, ``-`` and ``_``.  ``wide`` (for tables of many
    columns of prose, such as the claims tables) puts the table in a block of :data:`WIDE_CLASSES`,
    so that it uses the page's margin instead of scrolling sideways in the text column.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise ValueError(f"table name {name!r} must start with a letter and hold only letters, digits, '-' or '_'")
    if not markdown.lstrip().startswith("|"):
        raise ValueError("titled_table expects a Markdown table (lines starting with '|')")
    table = f":::{{table}} {title}\n:name: {name}\n\n{markdown.strip()}\n:::\n"
    return f"::::{{div}} {WIDE_CLASSES}\n{table}::::\n" if wide else table
