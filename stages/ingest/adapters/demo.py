"""Adapter ``demo``: the synthetic corpus, planned from ``n_tasks`` and ``seed`` (no files)."""

from __future__ import annotations

from collections.abc import Iterator

from stages.ingest.adapters.common import PlanItem
from stages.ingest.config import IngestConfig
from stages.ingest.demo_corpus import DEMO_VERSION, demo_items
from stages.ingest.records import ImageKind, Planned

__all__ = ["plan_demo"]


def plan_demo(config: IngestConfig) -> Iterator[PlanItem]:
    """Yield one planned task per demo index; the shard renders the image from ``(seed, index)``."""
    for item in demo_items(config.n_tasks, config.seed):
        ref = {
            "kind": ImageKind.DEMO.value,
            "seed": item.seed,
            "index": item.index,
            "name": item.name,
            "version": DEMO_VERSION,
        }
        source = f"demo:seed={item.seed}:index={item.index}"
        yield Planned(image=ref, task=item.task, source=source, image_key=f"demo:{item.seed}:{item.index}")
