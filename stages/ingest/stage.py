"""``run_shard`` of the ingest stage: records in, ``tasks`` rows and quarantine rows out."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import empty_table, validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec, quarantine_row
from stages.ingest.config import IngestConfig
from stages.ingest.plan import plan_shards
from stages.ingest.fetch import ImageFetcher
from stages.ingest.decode import normalize_image
from stages.ingest.rejected import Rejected
from stages.ingest.records import decode_record
from stages.ingest.split import EVAL, assign_split
from stages.ingest.tasks import fit_to_image, task_row

__all__ = ["SPEC", "run_shard"]

# Rows are moved into Arrow this many at a time, so the image bytes of a shard are held once (in Arrow),
# not twice (Python rows + Arrow), at the peak.
_ROWS_PER_BATCH = 32


def _record_for_quarantine(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"record": text[:500]}


def run_shard(inputs: ShardInputs, output: ShardOutput, config: IngestConfig) -> ShardResult:
    """Decode and check every record of ``inputs.tables["records"]`` (from :func:`plan_shards`) and return
    the ``tasks`` table (validated against ``data_schemas.TASKS``) and the held-out ``eval_tasks`` (same
    schema): each row's ``split`` is set by :func:`stages.ingest.split.assign_split`.

    Each record's image is read, fully decoded, size-capped, made upright RGB and stored (see
    :mod:`stages.ingest.decode`); boxes are checked against the real size. A record that fails becomes a
    quarantine row with its :class:`~data_schemas.quarantine.QuarantineReason`; a second record with the
    same ``task_id`` in the shard is a ``duplicate``. Images are handled one at a time: memory is one
    shard's output plus one image.
    """
    records = inputs.table("records")
    tables: dict[str, list[pa.Table]] = {"tasks": [], "eval_tasks": []}
    rows: dict[str, list[dict[str, Any]]] = {"tasks": [], "eval_tasks": []}
    quarantine: list[dict[str, Any]] = []
    first_seen: dict[str, str] = {}
    reencoded = image_bytes = 0
    with ImageFetcher(config.max_bytes) as fetcher:
        for text, source in zip(records.column("record").to_pylist(), records.column("source").to_pylist()):
            try:
                ref, spec = decode_record(text)
                data, name = fetcher.fetch(ref)
                image = normalize_image(data, max_pixels=config.max_pixels, jpeg_quality=config.jpeg_quality, name=name)
                del data
                row = task_row(fit_to_image(spec, image, config.box_tolerance), image, source)
            except Rejected as rej:
                quarantine.append(quarantine_row(source, rej.reason, rej.message, _record_for_quarantine(text)))
                continue
            first = first_seen.get(row["task_id"])
            if first is not None:
                message = f"task_id {row['task_id']} (same image bytes, task type and prompt) already made by {first}"
                quarantine.append(quarantine_row(source, QuarantineReason.DUPLICATE, message, _record_for_quarantine(text)))
                continue
            first_seen[row["task_id"]] = source
            reencoded += image.reencoded
            image_bytes += len(image.data)
            row["split"] = assign_split(row["task_id"], row["split"], config.eval_fraction)
            name = "eval_tasks" if row["split"] == EVAL else "tasks"
            rows[name].append(row)
            if len(rows[name]) == _ROWS_PER_BATCH:
                tables[name].append(validate_table(rows[name], name))
                rows[name] = []
    out: dict[str, pa.Table] = {}
    for name, parts in tables.items():
        if rows[name]:
            parts.append(validate_table(rows[name], name))
        out[name] = pa.concat_tables(parts) if parts else empty_table(name)
    metrics = {
        "records": float(records.num_rows),
        "tasks": float(out["tasks"].num_rows),
        "eval_tasks": float(out["eval_tasks"].num_rows),
        "quarantined": float(len(quarantine)),
        "images_reencoded": float(reencoded),
        "image_bytes": float(image_bytes),
    }
    return ShardResult(tables=out, quarantine=quarantine, metrics=metrics)


SPEC = StageSpec(
    name="ingest",
    config_cls=IngestConfig,
    reads=(),
    writes=("tasks", "eval_tasks"),
    run_shard=run_shard,
    plan=plan_shards,
    description="Read a corpus with ground truth (demo, coco, jsonl, parquet), decode and check every image, "
    "and write the tasks table (and the held-out eval_tasks, see eval_fraction).",
)
