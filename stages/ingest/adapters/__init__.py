"""Corpus adapters: one planner per :class:`CorpusFormat`, looked up by :func:`get_adapter`.

An adapter turns ``IngestConfig`` into a stream of plan items (a :class:`Planned` task or a quarantine
row) without decoding any image; ``plan_shards`` dedupes and cuts the stream into shards.
"""

from __future__ import annotations

from stages.lib.errors import ConfigError
from stages.ingest.adapters.coco import plan_coco
from stages.ingest.adapters.common import Adapter, PlanItem
from stages.ingest.adapters.demo import plan_demo
from stages.ingest.adapters.jsonl import plan_jsonl
from stages.ingest.adapters.parquet import plan_parquet
from stages.ingest.config import CorpusFormat

__all__ = ["ADAPTERS", "Adapter", "PlanItem", "get_adapter"]

ADAPTERS: dict[CorpusFormat, Adapter] = {
    CorpusFormat.DEMO: plan_demo,
    CorpusFormat.COCO: plan_coco,
    CorpusFormat.JSONL: plan_jsonl,
    CorpusFormat.PARQUET: plan_parquet,
}


def get_adapter(fmt: str) -> Adapter:
    """Return the adapter of format ``fmt``; an unknown name raises :class:`ConfigError` listing the formats."""
    try:
        return ADAPTERS[CorpusFormat(fmt)]
    except (ValueError, KeyError):
        available = ", ".join(f.value for f in ADAPTERS)
        raise ConfigError(f"unknown [ingest] format {fmt!r}; available: {available}") from None
