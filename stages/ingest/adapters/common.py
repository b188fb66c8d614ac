"""Helpers shared by the corpus adapters: path checks, image path resolution, field mapping."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import CorpusError
from stages.ingest.config import IngestConfig
from stages.ingest.records import Planned
from stages.ingest.rejected import Rejected
from stages.ingest.tasks import check_utf8

__all__ = [
    "Adapter",
    "PlanItem",
    "existing_path",
    "resolve_image_path",
    "confined_image_path",
    "image_name",
    "mapped_fields",
]

# An adapter yields one item per corpus row: a Planned task, or a quarantine row (``quarantine_row(...)``).
PlanItem = Planned | dict[str, Any]
Adapter = Callable[[IngestConfig], Iterator[PlanItem]]


def existing_path(path: Path | None, what: str, setting: str = "path") -> Path:
    """Return ``path`` if it exists; else raise :class:`CorpusError` naming the ``[ingest]`` setting and what was
    expected."""
    if path is None:
        raise CorpusError(f"[ingest] {setting} is not set; expected {what}")
    if not path.exists():
        raise CorpusError(f"[ingest] {setting} = '{path}' does not exist; expected {what}")
    return path


def resolve_image_path(value: str, root: Path) -> Path:
    """Absolute path of an image named ``value`` (absolute, ``~``, or relative to ``root``); no filesystem access.
    A name that is not valid UTF-8 text raises ``Rejected(malformed_record)``."""
    check_utf8(value, "image path")
    p = Path(value).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else root / p))


def confined_image_path(value: str, base: Path, config: IngestConfig) -> Path:
    """The real path (symlinks resolved) of image ``value`` named relative to ``base``; unless
    ``[ingest] allow_outside_root``, one outside :meth:`IngestConfig.corpus_root` (``..``, an absolute path,
    a symlink pointing out) raises ``Rejected(outside_root)`` and is never opened."""
    path = Path(os.path.realpath(resolve_image_path(value, base)))
    if config.allow_outside_root:
        return path
    root = Path(os.path.realpath(config.corpus_root()))
    if not path.is_relative_to(root):
        message = (
            f"image {value!r} resolves to {path}, outside the corpus root {root}; "
            "set [ingest] allow_outside_root = true to read it"
        )
        raise Rejected(QuarantineReason.OUTSIDE_ROOT, message)
    return path


def image_name(value: str) -> str:
    """Name kept in the image cell's ``path``: the path as written when relative, the file name when absolute."""
    p = Path(value)
    return p.name if p.is_absolute() else p.as_posix()


def mapped_fields(row: Mapping[str, Any], config: IngestConfig) -> dict[str, Any]:
    """Read a JSONL/Parquet row through the configured column names into the canonical task field names."""
    names = {
        "task_type": config.task_type_column,
        "prompt": config.prompt_column,
        "answer": config.answer_column,
        "boxes": config.boxes_column,
        "answers": config.answers_column,
        "choices": config.choices_column,
        "meta": config.meta_column,
        "split": config.split_column,
    }
    return {canonical: row.get(column) for canonical, column in names.items()}
