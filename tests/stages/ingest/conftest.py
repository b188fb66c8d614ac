"""Fixtures of the ingest tests: image bytes on demand, and plan + all shards run in-process."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pytest
from PIL import Image

from data_schemas.tables import empty_table
from stages.base import ShardInputs, ShardOutput
from stages.ingest import IngestConfig, plan_shards, run_shard


def _image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (40, 30),
    color: tuple[int, ...] = (200, 30, 30),
    mode: str = "RGB",
    orientation: int | None = None,
) -> bytes:
    img = Image.new(mode, size, color)
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def image_bytes() -> Callable[..., bytes]:
    """``image_bytes(fmt="PNG", size=(40, 30), color=..., mode="RGB", orientation=None)`` -> encoded image."""
    return _image_bytes


@pytest.fixture
def write_jsonl() -> Callable[[Path, list[Any]], Path]:
    """Write dicts (as JSON) or raw strings, one per line."""

    def write(path: Path, lines: list[Any]) -> Path:
        path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
        return path

    return write


@dataclass
class IngestRun:
    tasks: pa.Table
    quarantine: list[dict[str, Any]]
    n_shards: int
    eval_tasks: pa.Table | None = None

    def reasons(self) -> dict[str, str]:
        """row_ref -> reason of every quarantined row."""
        return {q["row_ref"]: q["reason"] for q in self.quarantine}


@pytest.fixture
def run_ingest(tmp_path: Path) -> Callable[[IngestConfig], IngestRun]:
    """Plan ``config`` and run every shard in-process, as the runner would (minus the run store)."""

    def run(config: IngestConfig) -> IngestRun:
        plan = plan_shards(config)
        tables, held_out, quarantine = [], [], list(plan.quarantine)
        for i, shard in enumerate(plan.shards):
            out = ShardOutput(stage="ingest", index=i, scratch_dir=tmp_path / "scratch")
            result = run_shard(ShardInputs({"records": shard}), out, config)
            tables.append(result.tables["tasks"])
            held_out.append(result.tables["eval_tasks"])
            quarantine += result.quarantine
        tasks = pa.concat_tables(tables) if tables else empty_table("tasks")
        eval_tasks = pa.concat_tables(held_out) if held_out else empty_table("eval_tasks")
        return IngestRun(tasks, quarantine, len(plan.shards), eval_tasks)

    return run
