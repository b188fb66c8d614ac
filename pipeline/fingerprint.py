"""Shard fingerprints: what a shard's output depends on, hashed.

fingerprint(shard) = sha256(stage name, schema version, the stage's config section minus resource
fields, the content hashes of the input shards it reads). A changed setting, schema or input
changes the fingerprint and redoes that shard; downstream shards see a new input content hash
only if the redone shard's output actually changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from data_schemas import SCHEMA_VERSION

__all__ = ["shard_fingerprint", "table_hash"]


def shard_fingerprint(stage: str, section: dict[str, Any], input_hashes: list[str]) -> str:
    """Return the hex fingerprint of one shard of ``stage`` given its config section and input hashes."""
    payload = json.dumps(
        {"stage": stage, "schema": SCHEMA_VERSION, "config": section, "inputs": input_hashes},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def table_hash(table: pa.Table) -> str:
    """Return a content hash of a small table (used for a source stage's planned records)."""
    digest = hashlib.sha256()
    digest.update(str(table.schema).encode())
    for row in table.to_pylist():
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()
