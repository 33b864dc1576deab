"""Helpers for what a report page displays: numbered, titled Markdown tables (MyST)."""

from __future__ import annotations

import re


def titled_table(title: str, name: str, markdown: str) -> str:
    """Wrap a Markdown table in a MyST ``table`` directive: the book numbers it ("Table N"),
    shows ``title`` above it, and ``{numref}`name``` refers to it from the text.

    ``name`` must be a label: letters, digits, ``-`` and ``_``.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise ValueError(f"table name {name!r} must start with a letter and hold only letters, digits, '-' or '_'")
    if not markdown.lstrip().startswith("|"):
        raise ValueError("titled_table expects a Markdown table (lines starting with '|')")
    return f":::{{table}} {title}\n:name: {name}\n\n{markdown.strip()}\n:::\n"
