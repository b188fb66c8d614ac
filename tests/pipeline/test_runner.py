"""The runner's resume rules, on three fake stages run in-process (no Ray, no models)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from stages.lib.errors import ConfigError, StageFailedError
from pipeline.runner import run_pipeline
from pipeline.status import run_status
from pipeline.store import RunStore
from tests.pipeline import fake_stages


def _run(run_dir: Path, overrides=(), **kwargs):
    cfg = load_config(None, list(overrides))
    fake_stages.CALLS.clear()
    return run_pipeline(cfg, run_dir, use_ray=False, progress=False, **kwargs)


def _ran(stage: str) -> list[int]:
    return sorted(i for s, i in fake_stages.CALLS if s == stage)


def test_second_run_reuses_every_shard(fake_registry, tmp_path):
    first = _run(tmp_path)
    assert [s.shards_run for s in first] == [3, 3, 1]
    second = _run(tmp_path)
    assert [s.shards_run for s in second] == [0, 0, 0]
    assert fake_stages.CALLS == []
    groups = RunStore(tmp_path).read_table("summary", "groups", "groups")
    assert groups.column("chosen").to_pylist() == [["C0!", "C1!"]]


def test_changed_setting_redoes_that_stage_and_after_not_before(fake_registry, tmp_path):
    _run(tmp_path)
    _run(tmp_path, ["upper.suffix=?"])
    assert _ran("src") == []
    assert _ran("upper") == [0, 1, 2]
    assert _ran("summary") == [0]
    assert RunStore(tmp_path).read_table("upper", "pairs", "pairs").column("chosen").to_pylist()[0] == "C0?"


def test_resource_fields_do_not_redo(fake_registry, tmp_path):
    _run(tmp_path)
    _run(tmp_path, ["upper.batch_size=1"])
    assert fake_stages.CALLS == []


def test_changed_input_redoes_only_affected_shards(fake_registry, tmp_path, monkeypatch):
    _run(tmp_path)
    monkeypatch.setattr(fake_stages, "CORPUS_EXTRA_ROWS", [10])  # the corpus grows: only the last shard changes
    _run(tmp_path)
    assert _ran("src") == [2]
    assert _ran("upper") == [2]
    assert _ran("summary") == [0]


def test_fewer_shards_drop_stale_files(fake_registry, tmp_path):
    _run(tmp_path, ["src.n_rows=10"])
    _run(tmp_path, ["src.n_rows=4"])
    store = RunStore(tmp_path)
    assert store.read_table("upper", "pairs", "pairs").num_rows == 4
    assert not (tmp_path / "upper" / "part-00002.parquet").exists()
    assert [st.shards_done for st in run_status(tmp_path)] == [1, 1, 1]


def test_force_redoes_stage_and_followers(fake_registry, tmp_path):
    _run(tmp_path)
    _run(tmp_path, force=["upper"])
    assert _ran("src") == []
    assert _ran("upper") == [0, 1, 2]
    assert _ran("summary") == [0]


def test_stages_subset_needs_finished_inputs(fake_registry, tmp_path):
    with pytest.raises(ConfigError, match="needs table 'pairs' from stage upper, which has not finished"):
        _run(tmp_path, stages=["src", "summary"])
    _run(tmp_path)
    _run(tmp_path, ["summary.k=1"], stages=["summary"])
    assert _ran("summary") == [0] and _ran("upper") == []


def test_unknown_stage_names_are_config_errors(fake_registry, tmp_path):
    with pytest.raises(ConfigError, match="--force 'nope': unknown stage; available: src, upper, summary"):
        _run(tmp_path, force=["nope"])


def test_failed_shard_keeps_others_and_names_the_cause(fake_registry, tmp_path):
    with pytest.raises(StageFailedError, match=r"stage upper: shard 1 failed after 3 attempt\(s\): RuntimeError: boom"):
        _run(tmp_path, ["upper.fail_shards=[1]"])
    assert _ran("upper").count(1) == 3
    manifest = RunStore(tmp_path).read_manifest("upper")
    assert sorted(manifest.shards) == [0, 2] and not manifest.complete
    _run(tmp_path)  # fail_shards no longer set: a changed config, so all of upper is redone
    assert RunStore(tmp_path).read_manifest("upper").complete


def test_quarantine_rows_are_merged_and_counted(fake_registry, tmp_path):
    _run(tmp_path, ["src.bad_rows=[3]", 'upper.quarantine_ids=["t0", "t9"]'])
    store = RunStore(tmp_path)
    src_q = pq.read_table(tmp_path / "quarantine" / "src.parquet").to_pylist()
    assert [(r["row_ref"], r["reason"], r["shard"]) for r in src_q] == [("row 3", "bad_row", -1)]
    upper_q = pq.read_table(tmp_path / "quarantine" / "upper.parquet").to_pylist()
    assert sorted(r["row_ref"] for r in upper_q) == ["t0", "t9"]
    counts = {st.stage: st.quarantined for st in run_status(tmp_path)}
    assert counts == {"src": 1, "upper": 2, "summary": 0}
    assert store.read_table("upper", "pairs", "pairs").num_rows == 7  # 10 - 1 planned out - 2 set aside


def test_unlisted_shard_file_is_not_trusted(fake_registry, tmp_path):
    """A shard whose file exists but that the manifest does not list (crash before the manifest write) is redone."""
    _run(tmp_path)
    store = RunStore(tmp_path)
    manifest = store.read_manifest("upper")
    del manifest.shards[1]
    store.write_manifest(manifest)
    _run(tmp_path)
    assert _ran("upper") == [1]
    assert not list(tmp_path.rglob(".*.tmp-*"))


def test_redone_stage_forgets_outdated_shards_until_they_are_redone(fake_registry, tmp_path):
    """A changed setting whose run fails on one shard must not leave that shard's old output counted as done."""
    _run(tmp_path)
    with pytest.raises(StageFailedError, match="shard 1 failed"):
        _run(tmp_path, ["upper.suffix=?", "upper.fail_shards=[1]"])
    manifest = RunStore(tmp_path).read_manifest("upper")
    assert sorted(manifest.shards) == [0, 2] and not manifest.complete
    assert not (tmp_path / "upper" / "part-00001.parquet").exists()
    assert {st.stage: st.shards_done for st in run_status(tmp_path)}["upper"] == 2
    with pytest.raises(ConfigError, match="needs table 'pairs' from stage upper, which has not finished"):
        _run(tmp_path, ["upper.suffix=?"], stages=["summary"])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def test_truncated_shard_file_is_redone(fake_registry, tmp_path):
    """A shard file listed in the manifest but cut short (disk full, a bad copy) is not trusted."""
    _run(tmp_path)
    _truncate(tmp_path / "src" / "part-00001.parquet")
    _run(tmp_path)
    assert _ran("src") == [1]
    assert _ran("upper") == []  # the redone shard has the same content: nothing downstream changes
    assert RunStore(tmp_path).read_table("src", "pairs", "pairs").num_rows == 10


def test_truncated_input_of_a_stages_subset_is_a_config_error(fake_registry, tmp_path):
    """--stages with a damaged upstream shard names the stage to run again instead of failing every retry."""
    _run(tmp_path)
    _truncate(tmp_path / "src" / "part-00001.parquet")
    with pytest.raises(ConfigError, match=r"stage upper needs table 'pairs' from stage src, whose shard 1 .*src/part-00001"):
        _run(tmp_path, ["upper.suffix=?"], stages=["upper"])
    assert _ran("upper") == []


def test_stages_subset_refuses_an_input_made_from_older_upstream_output(fake_registry, tmp_path):
    """--stages summary after only src was redone would read upper's pairs made from the old src output."""
    _run(tmp_path)
    _run(tmp_path, ["src.tag=b"], stages=["src"])
    with pytest.raises(ConfigError, match=r"stage upper was last run on an older output of stage src; add upper to --stages"):
        _run(tmp_path, ["src.tag=b"], stages=["summary"])
    assert _ran("summary") == []
    _run(tmp_path, ["src.tag=b"], stages=["upper", "summary"])
    assert _ran("upper") == [0, 1, 2] and _ran("summary") == [0]
    _run(tmp_path, ["src.tag=b"], stages=["summary"])  # consistent again: nothing to redo
    assert fake_stages.CALLS == []


def test_many_shards_write_the_manifest_in_batches_and_flush_at_the_end(fake_registry, tmp_path, monkeypatch):
    writes: list[int] = []
    original = RunStore.write_manifest

    def counting(self, manifest):
        if manifest.stage == "src":
            writes.append(len(manifest.shards))
        original(self, manifest)

    monkeypatch.setattr(RunStore, "write_manifest", counting)
    _run(tmp_path, ["src.n_rows=250", "src.shard_size=1"])
    shard_writes = [n for n in writes if n > 0]
    assert len(shard_writes) <= 130  # one per 2 shards (250 // 100), plus the final flush
    assert shard_writes[-1] == 250
    assert RunStore(tmp_path).read_manifest("src").complete


def test_failing_stage_still_records_finished_shards_when_batched(fake_registry, tmp_path):
    with pytest.raises(StageFailedError):
        _run(tmp_path, ["src.n_rows=300", "src.shard_size=1", "upper.fail_shards=[5]", "run.max_retries=0"])
    manifest = RunStore(tmp_path).read_manifest("upper")
    assert len(manifest.shards) == 299 and 5 not in manifest.shards


def test_scratch_folders_of_shards_without_artifacts_are_removed(fake_registry, tmp_path):
    _run(tmp_path)
    assert not (tmp_path / "upper" / "_scratch").exists()


def test_a_run_folder_of_an_older_table_schema_is_redone_with_a_message(fake_registry, tmp_path, caplog):
    import json

    _run(tmp_path)
    manifest = tmp_path / "upper" / "_manifest.json"
    data = json.loads(manifest.read_text())
    data["schema_version"] = "2"
    manifest.write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="pipeline.runner"):
        _run(tmp_path)
    assert _ran("upper") == [0, 1, 2]
    assert any("written with table schema '2'" in r.getMessage() and "redone" in r.getMessage() for r in caplog.records)
