"""The run store's promises: atomic shards the manifest trusts only when whole, one owner of every path."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_schemas import SCHEMA_VERSION
from pipeline.store import Manifest, RunStore, ShardRecord
from stages.base import quarantine_row
from stages.lib.errors import ConfigError, SchemaError


def _pairs(*ids: str) -> pa.Table:
    return pa.table({"task_id": list(ids), "prompt": ["p"] * len(ids), "chosen": ["c"] * len(ids), "rejected": ["r"] * len(ids)})


def _quarantine(stage: str, shard: int, *refs: str) -> pa.Table:
    rows = [{"stage": stage, "shard": shard, **quarantine_row(ref, "bad_row", "test")} for ref in refs]
    return pa.Table.from_pylist(rows)


def _commit(store: RunStore, manifest: Manifest, index: int, fingerprint: str = "fp", quarantine=None, **kw) -> ShardRecord:
    tables = {"pairs": _pairs(f"t{index}")}
    return store.commit_shard(manifest, index, fingerprint, tables, "pairs", quarantine, {"rows": 1.0}, [], 0.5, **kw)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "run")


def test_every_path_lies_inside_the_run_folder_as_documented(store):
    run = store.run_dir
    assert store.shard_path("rank", "listwise", 3, "listwise") == run / "rank" / "part-00003.parquet"
    assert store.shard_path("rank", "pairs", 3, "listwise") == run / "rank" / "pairs" / "part-00003.parquet"
    assert store.quarantine_shard_path("score", 2) == run / "score" / "_quarantine" / "part-00002.parquet"
    assert store.plan_quarantine_path("ingest") == run / "ingest" / "_quarantine" / "plan.parquet"
    assert store.quarantine_path("score") == run / "quarantine" / "score.parquet"
    assert store.scratch_dir("perturb", 4) == run / "perturb" / "_scratch" / "00004"
    assert store.scratch_dir("train", 0, fan_in=True) == run / "train" / "artifacts"
    assert (store.report_dir, store.stats_path) == (run / "report", run / "report" / "stats.json")
    assert (store.export_dir, store.config_path, store.lock_path) == (run / "export", run / "config.toml", run / ".lock")


def test_committed_shard_is_valid_only_with_its_fingerprint(store):
    manifest = Manifest(stage="upper", n_shards=1)
    rec = _commit(store, manifest, 0, "fp-a")
    assert rec.files == ["upper/part-00000.parquet"] and rec.rows == {"pairs": 1}
    assert rec.sizes == {"upper/part-00000.parquet": (store.run_dir / "upper/part-00000.parquet").stat().st_size}
    assert store.shard_is_valid("upper", 0, "fp-a")  # the manifest on disk
    assert not store.shard_is_valid("upper", 0, "fp-b")
    assert not store.shard_is_valid("upper", 1, "fp-a")
    assert store.read_manifest("upper").complete


@pytest.mark.parametrize("damage", ["truncate", "delete", "grow"])
def test_a_damaged_shard_file_is_not_valid(store, damage):
    manifest = Manifest(stage="upper", n_shards=1)
    _commit(store, manifest, 0)
    path = store.run_dir / "upper" / "part-00000.parquet"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes() + b"\0")
    assert store.damaged_file(manifest.shards[0]) == "upper/part-00000.parquet"
    assert not store.shard_is_valid("upper", 0, "fp")


def test_commit_without_manifest_write_is_not_trusted_until_written(store):
    manifest = Manifest(stage="upper", n_shards=2)
    _commit(store, manifest, 0, write_manifest=False)
    assert (store.run_dir / "upper" / "part-00000.parquet").is_file()  # the file is whole
    assert not store.shard_is_valid("upper", 0, "fp")  # but a crash now would redo it
    store.write_manifest(manifest)
    assert store.shard_is_valid("upper", 0, "fp")


def test_commit_leaves_no_temporary_and_whole_parquet(store):
    manifest = Manifest(stage="upper", n_shards=1)
    _commit(store, manifest, 0, quarantine=_quarantine("upper", 0, "t9"))
    assert not list(store.run_dir.rglob(".*.tmp-*"))
    assert pq.read_table(store.quarantine_shard_path("upper", 0)).column("row_ref").to_pylist() == ["t9"]
    assert manifest.shards[0].quarantined == 1 and len(manifest.shards[0].files) == 2


def test_commit_rejects_a_table_that_breaks_its_schema(store):
    manifest = Manifest(stage="upper", n_shards=1)
    with pytest.raises(SchemaError, match="pairs"):
        store.commit_shard(manifest, 0, "fp", {"pairs": pa.table({"task_id": ["t"]})}, "pairs", None, {}, [], 0.0)
    assert manifest.shards == {} and not (store.run_dir / "upper" / "_manifest.json").exists()


def test_recommitting_without_quarantine_removes_the_old_quarantine_file(store):
    manifest = Manifest(stage="upper", n_shards=1)
    _commit(store, manifest, 0, quarantine=_quarantine("upper", 0, "t9"))
    _commit(store, manifest, 0)
    assert not store.quarantine_shard_path("upper", 0).exists()
    assert manifest.shards[0].quarantined == 0


def test_manifest_round_trips_and_an_unreadable_one_reads_as_never_run(store):
    manifest = Manifest(stage="upper", n_shards=2)
    _commit(store, manifest, 1)
    again = store.read_manifest("upper")
    assert again == manifest and again.schema_version == SCHEMA_VERSION and not again.complete
    (store.stage_dir("upper") / "_manifest.json").write_text("{not json")
    assert store.read_manifest("upper") == Manifest(stage="upper")
    assert store.read_manifest("never") == Manifest(stage="never") and Manifest(stage="x").complete is False


def test_forget_and_drop_delete_files_and_records(store):
    manifest = Manifest(stage="upper", n_shards=3)
    for i in range(3):
        _commit(store, manifest, i)
    store.forget_shards(manifest, [0])
    store.drop_shards_from(manifest, 2)
    assert sorted(store.read_manifest("upper").shards) == [1]
    assert sorted(p.name for p in store.stage_dir("upper").glob("part-*")) == ["part-00001.parquet"]


def test_read_table_concatenates_in_shard_order_and_is_empty_with_schema_when_nothing_ran(store):
    manifest = Manifest(stage="upper", n_shards=3)
    for i in (2, 0, 1):
        _commit(store, manifest, i)
    assert store.read_table("upper", "pairs", "pairs").column("task_id").to_pylist() == ["t0", "t1", "t2"]
    assert store.read_table("upper", "pairs", "pairs", columns=["task_id"]).column_names == ["task_id"]
    empty = store.read_table("nothing", "pairs", "pairs")
    assert empty.num_rows == 0 and "chosen" in empty.column_names


def test_quarantine_merge_puts_plan_rows_first_and_counts(store):
    manifest = Manifest(stage="src", n_shards=2)
    _commit(store, manifest, 1, quarantine=_quarantine("src", 1, "b"))
    _commit(store, manifest, 0, quarantine=_quarantine("src", 0, "a"))
    store.write_plan_quarantine("src", [quarantine_row("row 7", "bad_row", "planning")])
    assert store.merge_quarantine("src") == 3
    merged = pq.read_table(store.quarantine_path("src")).to_pylist()
    assert [(r["row_ref"], r["shard"]) for r in merged] == [("row 7", -1), ("a", 0), ("b", 1)]
    assert store.quarantined_rows("src") == 3 and store.quarantined_rows("other") == 0
    assert store.read_quarantine().num_rows == 3


def test_quarantine_merge_without_rows_removes_the_merged_file(store):
    store.write_plan_quarantine("src", [quarantine_row("row 7", "bad_row")])
    assert store.merge_quarantine("src") == 1
    store.write_plan_quarantine("src", [])
    assert not store.plan_quarantine_path("src").exists()
    assert store.merge_quarantine("src") == 0 and not store.quarantine_path("src").exists()


def test_reset_stage_removes_its_folder_and_quarantine(store):
    manifest = Manifest(stage="upper", n_shards=1)
    _commit(store, manifest, 0, quarantine=_quarantine("upper", 0, "x"))
    store.merge_quarantine("upper")
    store.reset_stage("upper")
    assert not store.stage_dir("upper").exists() and not store.quarantine_path("upper").exists()


def test_stale_temporaries_are_removed(store):
    folder = store.stage_dir("upper") / "pairs"
    folder.mkdir(parents=True)
    (folder / ".part-00000.parquet.tmp-123-abcd").write_bytes(b"partial")
    (folder / "part-00000.parquet").write_bytes(b"kept")
    assert store.remove_stale_temporaries("upper") == 1
    assert [p.name for p in folder.iterdir()] == ["part-00000.parquet"]


def test_scratch_of_another_fingerprint_is_emptied_and_an_empty_one_dropped(store):
    scratch = store.scratch_dir("perturb", 0)
    store.prepare_scratch(scratch, "key-a")
    (scratch / "kept.png").write_bytes(b"x")
    store.prepare_scratch(scratch, "key-a")
    assert (scratch / "kept.png").exists()
    store.prepare_scratch(scratch, "key-b")
    assert not (scratch / "kept.png").exists() and (scratch / ".fingerprint").read_text() == "key-b"
    store.drop_empty_scratch(scratch)
    assert not scratch.exists() and not scratch.parent.exists()


def test_a_second_writer_is_refused_while_the_lock_is_held(store):
    with store.lock():
        with pytest.raises(ConfigError, match="is being written by another perpo-pipeline process"):
            with RunStore(Path(store.run_dir)).lock():
                pass
    with store.lock():  # released
        pass


def test_config_snapshot_is_replaced_atomically(store):
    store.write_config_snapshot("[run]\nname = \"a\"\n")
    store.write_config_snapshot("[run]\nname = \"b\"\n")
    assert store.config_path.read_text() == "[run]\nname = \"b\"\n"
    assert not list(store.run_dir.glob(".*.tmp-*"))
