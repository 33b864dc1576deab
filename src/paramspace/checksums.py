"""SHA-256 of files and ``SHA256SUMS`` lists, with the standard library only.

Torch-free on purpose: the runner's skip check and ``make data`` (tools/restore_data.py, run before
the virtual environment exists) use it as well as the data loaders.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def parse_sums(path: Path) -> dict[str, str]:
    """``{relative path: digest}`` from a ``sha256sum``-style list (``*`` binary markers dropped)."""
    table = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            table[name.strip().lstrip("*")] = digest
    return table
