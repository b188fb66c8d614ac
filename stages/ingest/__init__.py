"""Ingest: read a corpus with ground truth (demo, COCO/RefCOCO, JSONL, Parquet) into the ``tasks`` table.

Ingest is the source stage: it reads no table. The runner first calls :func:`plan_shards` (cheap: no
image decoded) to get one small ``records`` table per shard plus the rows refused while planning,
fingerprints each records table, then calls :func:`run_shard` per shard with
``inputs.tables["records"]``; it decodes and checks each image and returns ``tasks``.
"""

from __future__ import annotations

from stages.ingest.adapters import ADAPTERS, get_adapter
from stages.ingest.config import CorpusFormat, IngestConfig
from stages.ingest.demo_corpus import write_demo_corpus
from stages.ingest.plan import IngestPlan, plan_shards
from stages.ingest.records import RECORDS_SCHEMA
from stages.ingest.stage import SPEC, run_shard

__all__ = [
    "SPEC",
    "IngestConfig",
    "CorpusFormat",
    "IngestPlan",
    "RECORDS_SCHEMA",
    "ADAPTERS",
    "get_adapter",
    "plan_shards",
    "run_shard",
    "write_demo_corpus",
]
