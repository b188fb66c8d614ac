"""Tiny builds of real VLM families (stages/lib/models/tiny_families.py), built once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_family_dir(name)``: the folder of the tiny build of family ``name``, built on first use
    and reused for the rest of the session (under the session's pytest tmp dir)."""
    from stages.lib.models.tiny_families import build_tiny_family

    root = tmp_path_factory.mktemp("tiny-families")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_tiny_family(name, root / name, seed=0)
        return built[name]

    return get
