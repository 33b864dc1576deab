#!/usr/bin/env python3
"""``make data``: verify every data file against ``SHA256SUMS`` and restore the missing, empty or
corrupt ones from the collection's offline mirror (stdlib only).

The mirror is the collection's shared data folder, by default ``../shared/data`` next to the
repository (set ``DATA_MIRROR`` or ``--mirror`` for another place); a file is taken from it only if
its checksum is the expected one.  The data folder is ``$PARAMSPACE_DATA`` if set, else ``data/``.

Exit status: 0 when every file matches, 1 when some file could not be restored (each is named,
with where the mirror was looked for).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from paramspace.checksums import parse_sums, sha256  # noqa: E402  (stdlib only, like this script)


def state(path: Path, expected: str) -> str:
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty"
    return "ok" if sha256(path) == expected else "corrupt"


def restore(data: Path, mirror: Path, log=print) -> int:
    sums = data / "SHA256SUMS"
    if not sums.is_file():
        log(f"data: the checksum list {sums} is missing; restore it with `git checkout -- data/SHA256SUMS`"
            f" (or copy {mirror / 'SHA256SUMS'})")
        return 1
    table = parse_sums(sums)
    problems = []
    for rel, digest in table.items():
        target = data / rel
        st = state(target, digest)
        if st == "ok":
            continue
        source = mirror / rel
        if not mirror.is_dir():
            problems.append(f"data/{rel} is {st}")
            continue
        if not source.is_file() or sha256(source) != digest:
            problems.append(f"data/{rel} is {st}, and the mirror's copy {source} is "
                            f"{'missing' if not source.is_file() else 'not the expected file either'}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        log(f"restored data/{rel} (it was {st}) from {source}")
    if problems:
        where = (f"the offline mirror {mirror} does not exist" if not mirror.is_dir()
                 else f"the offline mirror is {mirror}")
        log(f"data: {len(problems)} of {len(table)} file(s) cannot be restored: {where}. The mirror is the "
            "collection's shared data folder (../shared/data next to the repository, or set DATA_MIRROR=<folder>); "
            "data/README.md says where each data set comes from.")
        for p in problems:
            log(f"  {p}")
        return 1
    log(f"data: all {len(table)} files match {sums}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("PARAMSPACE_DATA") or str(ROOT / "data"))
    ap.add_argument("--mirror", default=os.environ.get("DATA_MIRROR") or str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    return restore(Path(args.data), Path(args.mirror))


if __name__ == "__main__":
    sys.exit(main())
