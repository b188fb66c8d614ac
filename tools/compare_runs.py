"""Compare the Parquet tables of two run folders byte for byte.

    python tools/compare_runs.py RUN_A RUN_B

Prints one line per table file that differs or exists in one run only, then a summary line; exits 1
when any file differs. Manifests, reports and logs hold timings and are not compared. Used to show
that a refactor changes no output byte (issue: one orchestrator, one layout).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def table_hashes(run_dir: Path) -> dict[str, str]:
    """Map each ``*.parquet`` under ``run_dir`` (relative path) to its sha256; ``_models`` and temporaries excluded."""
    out: dict[str, str] = {}
    for path in sorted(run_dir.rglob("*.parquet")):
        rel = path.relative_to(run_dir).as_posix()
        if path.name.startswith("."):
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = (table_hashes(Path(p)) for p in argv)
    different = [k for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    for k in different:
        print(f"differs: {k}")
    for k in only_a:
        print(f"only in {argv[0]}: {k}")
    for k in only_b:
        print(f"only in {argv[1]}: {k}")
    same = len(a.keys() & b.keys()) - len(different)
    print(f"{same} identical, {len(different)} different, {len(only_a)} + {len(only_b)} in one run only")
    return 1 if different or only_a or only_b else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
