"""README's supported-families table is generated from the registry and kept current."""

from __future__ import annotations

from pathlib import Path

from stages.lib.family_docs import FAMILIES_END, FAMILIES_START, families_markdown
from stages.lib.families import FAMILIES


def test_every_family_has_a_row():
    table = families_markdown()
    for name in FAMILIES:
        assert f"| `{name}` |" in table


def test_readme_table_is_current():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    start = readme.index(FAMILIES_START) + len(FAMILIES_START) + 1
    assert readme[start : readme.index(FAMILIES_END)] == families_markdown(), "run: python tools/update_readme.py"
