"""Rewrite README.md's generated sections: the `pipeline.toml` reference (everything after its heading)
from the config, and the supported-families table (between its markers) from the family registry.

    python tools/update_readme.py

The reference is the last section of the README; `tests/pipeline/test_cli.py` fails when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HEADING = "## pipeline.toml reference"


def _replace_families(text: str) -> str:
    """The README with its supported-families table (between the families markers) regenerated."""
    from stages.lib.family_docs import FAMILIES_END, FAMILIES_START, families_markdown

    before, sep, rest = text.partition(FAMILIES_START)
    if not sep:
        return text
    _, end, after = rest.partition(FAMILIES_END)
    if not end:
        raise SystemExit(f"README.md has {FAMILIES_START!r} but no {FAMILIES_END!r}")
    return before + FAMILIES_START + "\n" + families_markdown() + FAMILIES_END + after


def main() -> int:
    from pipeline.config_docs import config_reference_markdown

    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, sep, tail = text.partition(HEADING)
    if not sep:
        print(f"README.md has no {HEADING!r} heading", file=sys.stderr)
        return 1
    intro = tail.split("\n### ", 1)[0]  # the paragraph between the heading and the first section
    text = head + HEADING + intro.rstrip("\n") + "\n\n" + config_reference_markdown().strip() + "\n"
    text = _replace_families(text)
    readme.write_text(text, encoding="utf-8")
    print("README.md: pipeline.toml reference and supported-families table regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
