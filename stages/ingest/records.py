"""Plan records: one corpus item as the planner hands it to a shard (image *reference*, never image bytes).

A record is JSON ``{"image": <ref>, "task": <TaskSpec.to_record()>}``. The runner fingerprints the
records table of a shard, so a ref carries what identifies the image's content cheaply: a file's size
and mtime, an embedded image's sha256, a demo task's seed and index.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason
from stages.ingest.rejected import Rejected
from stages.ingest.tasks import TaskSpec

__all__ = ["ImageKind", "Planned", "RECORDS_SCHEMA", "encode_record", "decode_record", "file_ref"]

RECORDS_SCHEMA = pa.schema(
    [pa.field("record", pa.string(), nullable=False), pa.field("source", pa.string(), nullable=False)]
)


class ImageKind(StrEnum):
    """Where a record's image bytes come from (the ``kind`` of an image ref)."""

    FILE = "file"  # {path, size, mtime_ns, name}
    PARQUET = "parquet"  # {path, row, column, sha256, name}
    DEMO = "demo"  # {seed, index, name, version}


@dataclass(frozen=True)
class Planned:
    """One corpus item that passed the plan-time checks.

    ``image_key`` identifies the image for duplicate detection (a resolved file path, the sha256 of
    embedded bytes, a demo index).
    """

    image: dict[str, Any]
    task: TaskSpec
    source: str
    image_key: str

    def record(self) -> dict[str, Any]:
        """The JSON-able record (also what a quarantine row shows)."""
        return {"image": self.image, "task": self.task.to_record()}


def encode_record(item: Planned) -> str:
    """Canonical JSON of ``item``'s record (sorted keys, so equal records fingerprint equally)."""
    return json.dumps(item.record(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode_record(text: str) -> tuple[dict[str, Any], TaskSpec]:
    """Return ``(image_ref, task)`` from a record; raises ``Rejected(malformed_record)`` for anything else."""
    try:
        data = json.loads(text)
        return dict(data["image"]), TaskSpec.from_record(data["task"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise Rejected(QuarantineReason.MALFORMED_RECORD, f"unreadable plan record: {type(exc).__name__}: {exc}") from None


def file_ref(path: Path, name: str | None, *, max_bytes: int) -> dict[str, Any]:
    """Return the image ref of a file, after a ``stat``: missing (or not a file) raises
    ``Rejected(missing_image)``, zero bytes ``Rejected(empty_image)``, over ``max_bytes``
    ``Rejected(image_too_large)`` (the file is not read)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise Rejected(QuarantineReason.MISSING_IMAGE, f"image file not found: {path}") from None
    except OSError as exc:
        raise Rejected(QuarantineReason.MISSING_IMAGE, f"cannot stat image file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise Rejected(QuarantineReason.MISSING_IMAGE, f"image path is not a regular file: {path}")
    if st.st_size == 0:
        raise Rejected(QuarantineReason.EMPTY_IMAGE, f"image file is empty (0 bytes): {path}")
    if st.st_size > max_bytes:
        message = f"image file {path} has {st.st_size} bytes, over [ingest] max_bytes = {max_bytes}"
        raise Rejected(QuarantineReason.IMAGE_TOO_LARGE, message)
    return {
        "kind": ImageKind.FILE.value,
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "name": name,
    }
