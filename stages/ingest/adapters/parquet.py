"""Adapter ``parquet``: Parquet files with embedded images, as Hub datasets ship them.

``path`` is one ``.parquet`` file or a folder searched recursively (files in sorted order). The image
column (``image_column``) is the ``datasets`` Image struct ``{bytes, path}``, plain binary, or a path
string; a struct with no bytes but a path is read from ``image_root`` (default: the Parquet file's folder).
Other fields come through the ``*_column`` names; a missing optional column is simply absent.

Planning streams the rows in small batches and hashes each embedded image (no decoding) so that the
same picture with the same prompt is found as a duplicate across files and shards, and so that a shard's
fingerprint changes exactly when one of its images does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import CorpusError
from stages.base import quarantine_row
from stages.ingest.adapters.common import PlanItem, confined_image_path, existing_path, image_name, mapped_fields
from stages.ingest.config import IngestConfig
from stages.ingest.rejected import Rejected
from stages.ingest.records import ImageKind, Planned, file_ref
from stages.ingest.tasks import parse_task

__all__ = ["plan_parquet", "parquet_files", "BATCH_ROWS"]

BATCH_ROWS = 64  # rows held in memory at once while planning (each with its image bytes)


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files at ``path`` (a file, or a folder searched recursively), sorted; none is a CorpusError."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise CorpusError(f"[ingest] path = '{path}' holds no .parquet files")
    return files


def _image_kind(dtype: pa.DataType) -> str:
    if pa.types.is_struct(dtype) and dtype.get_field_index("bytes") >= 0:
        return "struct"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "binary"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "path"
    return ""


def _open(file: Path, config: IngestConfig) -> tuple[pq.ParquetFile, list[str], str]:
    try:
        pf = pq.ParquetFile(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"'{file}' is not a readable Parquet file: {exc}") from None
    schema = pf.schema_arrow
    for setting in ("image_column", "prompt_column"):
        column = getattr(config, setting)
        if column not in schema.names:
            raise CorpusError(
                f"'{file}' has no column {column!r} ([ingest] {setting}); columns present: {', '.join(schema.names)}"
            )
    kind = _image_kind(schema.field(config.image_column).type)
    if not kind:
        raise CorpusError(
            f"column {config.image_column!r} of '{file}' has type {schema.field(config.image_column).type}; "
            "expected an image struct {bytes, path}, binary, or a path string"
        )
    wanted = [
        getattr(config, f"{name}_column")
        for name in ("image", "prompt", "task_type", "answer", "boxes", "answers", "choices", "meta")
    ]
    return pf, [c for c in dict.fromkeys(wanted) if c in schema.names], kind


def _image_ref(cell: Any, kind: str, file: Path, row: int, config: IngestConfig) -> tuple[dict, str]:
    """Return ``(image ref, duplicate key)`` of one image cell."""
    data, name = (cell.get("bytes"), cell.get("path")) if kind == "struct" and cell is not None else (None, None)
    if kind == "binary":
        data = cell
    elif kind == "path":
        name = cell
    if data is None and isinstance(name, str) and name:
        path = confined_image_path(name, config.image_root or file.parent, config)
        return file_ref(path, image_name(name), max_bytes=config.max_bytes), f"file:{path}"
    if data is None:
        raise Rejected(QuarantineReason.MISSING_IMAGE, f"row {row} has no image (neither bytes nor path)")
    if not data:
        raise Rejected(QuarantineReason.EMPTY_IMAGE, f"row {row} has an empty (0-byte) image")
    if len(data) > config.max_bytes:
        message = f"row {row} has a {len(data)}-byte image, over [ingest] max_bytes = {config.max_bytes}"
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, message)
    digest = hashlib.sha256(data).hexdigest()
    ref = {
        "kind": ImageKind.PARQUET.value,
        "path": str(file.resolve()),
        "row": row,
        "column": config.image_column,
        "sha256": digest,
        "name": name,
    }
    return ref, f"sha256:{digest}"


def plan_parquet(config: IngestConfig) -> Iterator[PlanItem]:
    """Yield a planned task or a quarantine row for every row of every Parquet file at ``config.path``."""
    root = existing_path(config.path, "a Parquet file or a folder of Parquet files")
    for file in parquet_files(root):
        pf, columns, kind = _open(file, config)
        with pf:
            row = 0
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                for values in batch.to_pylist():
                    yield _plan_row(values, kind, file, row, config)
                    row += 1


def _plan_row(values: dict[str, Any], kind: str, file: Path, row: int, config: IngestConfig) -> PlanItem:
    source = f"{file}:row={row}"
    try:
        task = parse_task(
            mapped_fields(values, config), default_task_type=config.default_task_type, box_layout=config.box_layout
        )
        ref, key = _image_ref(values.get(config.image_column), kind, file, row, config)
    except Rejected as rej:
        return quarantine_row(source, rej.reason, rej.message, values)
    return Planned(image=ref, task=task, source=source, image_key=key)
