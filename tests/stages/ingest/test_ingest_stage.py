"""The stage as the runner sees it: SPEC, plan_shards, run_shard, and what they promise."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

import stages.ingest
from data_schemas.tables import validate_table
from stages.base import ShardInputs, ShardOutput
from stages.ingest import RECORDS_SCHEMA, IngestConfig, plan_shards, run_shard


def test_spec_declares_a_source_stage_with_a_planner():
    spec = stages.ingest.SPEC
    assert (spec.name, spec.reads, spec.writes) == ("ingest", (), ("tasks", "eval_tasks"))
    assert spec.config_cls is IngestConfig and spec.run_shard is run_shard and spec.description
    assert callable(stages.ingest.plan_shards)


def test_shards_follow_shard_size_and_do_not_change_the_tasks(run_ingest):
    plan = plan_shards(IngestConfig(n_tasks=10, shard_size=4))
    assert [t.num_rows for t in plan.shards] == [4, 4, 2] and plan.n_records == 10
    assert all(t.schema.equals(RECORDS_SCHEMA) for t in plan.shards)
    sharded = run_ingest(IngestConfig(n_tasks=10, shard_size=4)).tasks
    whole = run_ingest(IngestConfig(n_tasks=10, shard_size=100)).tasks
    assert sharded.equals(whole)


def test_planning_is_deterministic():
    a, b = plan_shards(IngestConfig(n_tasks=9, shard_size=4)), plan_shards(IngestConfig(n_tasks=9, shard_size=4))
    assert all(x.equals(y) for x, y in zip(a.shards, b.shards, strict=True))


def test_a_changed_image_changes_only_its_shards_records(tmp_path, image_bytes, write_jsonl):
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(image_bytes(color=(i, 0, 0)))
    lines = [{"image": f"{i}.png", "task_type": "vqa", "prompt": "Colour?", "answer": "red"} for i in range(6)]
    config = IngestConfig(format="jsonl", path=write_jsonl(tmp_path / "m.jsonl", lines), shard_size=2)
    before = plan_shards(config).shards
    (tmp_path / "3.png").write_bytes(image_bytes(size=(41, 30)))
    os.utime(tmp_path / "3.png", ns=(1, 1))  # a new mtime whatever the filesystem's clock resolution
    after = plan_shards(config).shards
    assert [x.equals(y) for x, y in zip(before, after, strict=True)] == [True, False, True]


def test_run_shard_output_is_a_valid_tasks_table_with_metrics(tmp_path):
    config = IngestConfig(n_tasks=6)
    (shard,) = plan_shards(config).shards
    result = run_shard(ShardInputs({"records": shard}), ShardOutput("ingest", 0, tmp_path), config)
    tasks = result.tables["tasks"]
    assert set(result.tables) == {"tasks", "eval_tasks"} and validate_table(tasks, "tasks").equals(tasks)
    assert result.tables["eval_tasks"].num_rows == 0 and set(tasks.column("split").to_pylist()) == {"train"}
    assert result.metrics["records"] == result.metrics["tasks"] == 6 and result.metrics["quarantined"] == 0
    assert result.metrics["image_bytes"] == sum(len(r["image"]["bytes"]) for r in tasks.to_pylist())
    assert not any(tmp_path.iterdir())  # a shard never writes into the run folder
    for row in tasks.to_pylist():
        assert json.loads(row["meta"])["demo"]["index"] >= 0


def test_a_shard_with_no_good_rows_returns_an_empty_valid_table(tmp_path, write_jsonl, image_bytes):
    (tmp_path / "ok.png").write_bytes(image_bytes(size=(100, 100)))
    config = IngestConfig(
        format="jsonl",
        path=write_jsonl(tmp_path / "m.jsonl", [{"image": "ok.png", "task_type": "ocr", "prompt": "Read.", "answer": "x"}]),
        max_pixels=100,
    )
    (shard,) = plan_shards(config).shards
    result = run_shard(ShardInputs({"records": shard}), ShardOutput("ingest", 0, tmp_path), config)
    assert result.tables["tasks"].num_rows == 0 and validate_table(result.tables["tasks"], "tasks") is not None
    assert [q["reason"] for q in result.quarantine] == ["image_too_large"]


def test_image_cells_are_the_datasets_image_struct_and_decode(run_ingest):
    datasets = pytest.importorskip("datasets")
    tasks = run_ingest(IngestConfig(n_tasks=3)).tasks
    feature = datasets.Image()
    assert tasks.schema.field("image").type == feature.pa_type
    assert json.loads(tasks.schema.metadata[b"huggingface"])["info"]["features"]["image"] == {"_type": "Image"}
    for row in tasks.to_pylist():
        img = feature.decode_example(row["image"])
        assert img.size == (row["width"], row["height"])
    # with the column typed as Image, a datasets.Dataset decodes it
    ds = datasets.Dataset.from_dict({"image": tasks.column("image").to_pylist()}, features=datasets.Features(image=feature))
    assert ds[0]["image"].size == (tasks.column("width")[0].as_py(), tasks.column("height")[0].as_py())


def test_records_table_not_made_by_the_planner_is_quarantined_not_raised(tmp_path):
    records = pa.Table.from_pylist([{"record": "{not json", "source": "x:1"}], schema=RECORDS_SCHEMA)
    result = run_shard(ShardInputs({"records": records}), ShardOutput("ingest", 0, tmp_path), IngestConfig())
    assert [q["reason"] for q in result.quarantine] == ["malformed_record"]
