"""Saving a model and its processor as one folder that appears whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.lib.files import atomic_folder

__all__ = ["save_model_folder"]


def save_model_folder(model: Any, processor: Any, out: Path, extra_files: dict[str, str] | None = None) -> Path:
    """``save_pretrained`` ``model`` and ``processor`` (plus ``extra_files``: name -> text) into ``out``.

    Everything is written into a temporary sibling folder that then replaces ``out``
    (:func:`stages.lib.files.atomic_folder`), so an interrupted save never leaves a half-written
    model that ``from_pretrained`` would load.
    """
    out = Path(out)
    with atomic_folder(out) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
    return out
