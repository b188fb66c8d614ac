"""Adapter ``jsonl``: a manifest with one task per line.

Each line is a JSON object ``{image, prompt, task_type, answer | boxes | answers | choices, meta?}`` (field
names configurable, see ``*_column``); ``image`` is a path relative to the manifest's folder (or to
``image_root``). Blank lines are skipped; every other line becomes a task or a quarantine row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import CorpusError
from stages.base import quarantine_row
from stages.ingest.adapters.common import PlanItem, confined_image_path, existing_path, image_name, mapped_fields
from stages.ingest.config import IngestConfig
from stages.ingest.rejected import Rejected
from stages.ingest.records import Planned, file_ref
from stages.ingest.tasks import parse_task

__all__ = ["plan_jsonl"]


def _parse_line(raw: bytes) -> dict:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"line is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"line is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"line must be a JSON object, got {type(obj).__name__}")
    return obj


def plan_jsonl(config: IngestConfig) -> Iterator[PlanItem]:
    """Yield a planned task or a quarantine row for every non-blank line of the manifest at ``config.path``."""
    manifest = existing_path(config.path, "a JSONL manifest file")
    if manifest.is_dir():
        raise CorpusError(f"[ingest] path = '{manifest}' is a folder; format = 'jsonl' needs the manifest file")
    root = config.image_root or manifest.parent
    with manifest.open("rb") as lines:
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            source = f"{config.path}:{lineno}"
            obj = None
            try:
                obj = _parse_line(raw)
                task = parse_task(
                    mapped_fields(obj, config), default_task_type=config.default_task_type, box_layout=config.box_layout
                )
                image = obj.get(config.image_column)
                if not isinstance(image, str) or not image.strip():
                    message = f"field {config.image_column!r} must be an image path, got {image!r:.80}"
                    raise Rejected(QuarantineReason.MALFORMED_RECORD, message)
                path = confined_image_path(image, root, config)
                ref = file_ref(path, image_name(image), max_bytes=config.max_bytes)
            except Rejected as rej:
                record = obj if obj is not None else {"line": raw.decode("utf-8", "replace")[:500]}
                yield quarantine_row(source, rej.reason, rej.message, record)
                continue
            yield Planned(image=ref, task=task, source=source, image_key=f"file:{path}")
