"""Planning: turn the corpus into shards of records, cheaply (no image is decoded).

Duplicates. A task is a duplicate of an earlier one when it has the same image, task type and prompt
(whitespace collapsed, case folded). The image is identified at plan time by what is known without
decoding: the resolved file path, the sha256 of embedded Parquet bytes, the demo index. The first
occurrence is kept and the others are quarantined as ``duplicate`` here, so duplicates are caught
across shards. Inside a shard, ``run_shard`` also drops repeated ``task_id`` (content hashes of the
decoded bytes), which catches byte-identical images under different file names within the shard; the
same picture under two file names in two different shards is not detected (that would need every file
hashed at plan time).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason
from stages.base import quarantine_row
from stages.ingest.adapters import get_adapter
from stages.ingest.config import IngestConfig
from stages.ingest.records import RECORDS_SCHEMA, Planned, encode_record
from stages.ingest.tasks import dedupe_prompt

__all__ = ["IngestPlan", "plan_shards"]


@dataclass
class IngestPlan:
    """What the runner needs before any shard runs: one records table per shard, and the rows refused while planning."""

    shards: list[pa.Table] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_records(self) -> int:
        """Records over all shards (each becomes a task unless its image or boxes fail in the shard)."""
        return sum(t.num_rows for t in self.shards)


def _duplicate_key(item: Planned) -> bytes:
    text = f"{item.image_key}\x1f{item.task.task_type}\x1f{dedupe_prompt(item.task.prompt)}"
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _table(rows: list[tuple[str, str]]) -> pa.Table:
    records = pa.array([r for r, _ in rows], pa.string())
    sources = pa.array([s for _, s in rows], pa.string())
    return pa.Table.from_arrays([records, sources], schema=RECORDS_SCHEMA)


def plan_shards(config: IngestConfig) -> IngestPlan:
    """Read the corpus named by ``config`` and cut it into shards of ``config.shard_size`` records.

    Raises :class:`~stages.lib.errors.ConfigError` for an unknown format and
    :class:`~stages.lib.errors.CorpusError` when the corpus cannot be read at all (missing path, not JSON,
    no Parquet files, missing image column), always before any shard exists. Row-level problems
    (malformed line, unknown task type, bad box, missing image file, duplicate) become quarantine rows.
    Shards are filled in corpus order; the same corpus and config give the same shards.
    """
    adapter = get_adapter(config.format)
    plan = IngestPlan()
    first_seen: dict[bytes, str] = {}
    pending: list[tuple[str, str]] = []
    for item in adapter(config):
        if not isinstance(item, Planned):
            plan.quarantine.append(item)
            continue
        try:
            key = _duplicate_key(item)
            record = encode_record(item)
            record.encode("utf-8"), item.source.encode("utf-8")
        except UnicodeEncodeError as exc:  # backstop: the adapters' checks already catch lone surrogates
            message = f"record is not valid UTF-8 text: {exc.reason} at position {exc.start}"
            plan.quarantine.append(quarantine_row(item.source, QuarantineReason.MALFORMED_RECORD, message))
            continue
        if key in first_seen:
            message = f"same image, task type and prompt as {first_seen[key]} (the first is kept)"
            plan.quarantine.append(quarantine_row(item.source, QuarantineReason.DUPLICATE, message, item.record()))
            continue
        first_seen[key] = item.source
        pending.append((record, item.source))
        if len(pending) == config.shard_size:
            plan.shards.append(_table(pending))
            pending = []
    if pending:
        plan.shards.append(_table(pending))
    return plan
