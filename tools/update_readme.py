"""Rewrite README.md's generated `pipeline.toml` reference (everything after its heading) from the config.

    python tools/update_readme.py

The reference is the last section of the README; `tests/pipeline/test_cli.py` fails when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HEADING = "## pipeline.toml reference"


def main() -> int:
    from pipeline.config_docs import config_reference_markdown

    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, sep, tail = text.partition(HEADING)
    if not sep:
        print(f"README.md has no {HEADING!r} heading", file=sys.stderr)
        return 1
    intro = tail.split("\n### ", 1)[0]  # the paragraph between the heading and the first section
    readme.write_text(head + HEADING + intro.rstrip("\n") + "\n\n" + config_reference_markdown().strip() + "\n", encoding="utf-8")
    print("README.md: pipeline.toml reference regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
