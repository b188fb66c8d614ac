"""The quarantine reason registry: complete, used by every stage instead of string literals, in README."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from data_schemas.quarantine import QUARANTINE_REASONS, QuarantineReason, quarantine_reasons_markdown
from stages.registry import STAGE_MODULES

REPO = Path(__file__).resolve().parents[2]
STAGE_NAMES = {m.rsplit(".", 1)[1] for m in STAGE_MODULES}
# Calls whose argument at this position (or keyword ``reason``) is a quarantine reason.
REASON_ARGUMENT = {"quarantine_row": 1, "Rejected": 0, "failed": 1}


@pytest.mark.parametrize("reason", list(QuarantineReason))
def test_every_reason_has_stages_and_a_one_line_description(reason):
    info = QUARANTINE_REASONS[reason]
    assert info.description and "\n" not in info.description
    assert info.stages and set(info.stages) <= STAGE_NAMES


def test_registry_lists_each_reason_once():
    assert list(QUARANTINE_REASONS) == list(QuarantineReason)


def _reason_literals(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name not in REASON_ARGUMENT:
            continue
        args = list(node.args)
        position = REASON_ARGUMENT[name]
        candidates = [kw.value for kw in node.keywords if kw.arg == "reason"]
        candidates += args[position : position + 1]
        found += [f"{path.relative_to(REPO)}:{node.lineno}" for a in candidates if isinstance(a, ast.Constant)]
    return found


def test_stages_take_reasons_from_the_registry_not_string_literals():
    literals = [hit for path in sorted((REPO / "stages").rglob("*.py")) for hit in _reason_literals(path)]
    assert literals == [], "use data_schemas.quarantine.QuarantineReason instead of a string"


def test_readme_lists_every_quarantine_reason():
    """README.md embeds the generated table; regenerate it with `python -m data_schemas.quarantine`."""
    readme = (REPO / "README.md").read_text()
    assert quarantine_reasons_markdown() in readme, "run: python -m data_schemas.quarantine, paste into README.md"


def test_markdown_has_one_row_per_reason():
    rows = quarantine_reasons_markdown().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [r.value for r in QuarantineReason]
