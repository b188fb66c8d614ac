"""Shard files checked against their recorded sha256 where they are read: a same-size corruption is not
trusted, the shard that wrote the file is redone, and the results equal an uncorrupted run's."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from pipeline.shard_check import ShardHashError, mismatched_files, read_checked
from pipeline.status import format_status, run_status
from pipeline.store import RunStore
from stages.lib.files import file_sha256
from tests.pipeline import fake_stages
from tools.compare_runs import table_hashes


def flip_byte(path: Path) -> None:
    """Corrupt ``path`` without changing its size: invert one byte in the middle (inside the column data)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _run(run_dir: Path, overrides=(), **kwargs):
    cfg = load_config(None, list(overrides))
    fake_stages.CALLS.clear()
    return run_pipeline(cfg, run_dir, use_ray=kwargs.pop("use_ray", False), progress=False, **kwargs)


def _ran(stage: str) -> list[int]:
    return sorted(i for s, i in fake_stages.CALLS if s == stage)


def test_read_checked_refuses_a_same_size_flip(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(100))}), path)
    sha = file_sha256(path)
    assert read_checked(path, sha).column("x").to_pylist() == list(range(100))
    flip_byte(path)
    with pytest.raises(ShardHashError, match="t.parquet does not match the sha256 its manifest recorded"):
        read_checked(path, sha)
    assert mismatched_files({str(path): sha, str(tmp_path / "gone.parquet"): sha}) == sorted(
        [str(path), str(tmp_path / "gone.parquet")]
    )


def test_the_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(ShardHashError("/r/a.parquet", "a" * 64, "b" * 64)))
    assert (err.path, err.expected, err.actual) == ("/r/a.parquet", "a" * 64, "b" * 64)


def test_the_manifest_records_each_file_sha256(fake_registry, tmp_path):
    _run(tmp_path)
    rec = RunStore(tmp_path).read_manifest("upper").shards[1]
    assert rec.hashes == {"upper/part-00001.parquet": file_sha256(tmp_path / "upper" / "part-00001.parquet")}


def test_a_damaged_input_redoes_its_writer_then_the_reader(fake_registry, tmp_path, caplog):
    clean = tmp_path / "clean"
    _run(clean)
    run = tmp_path / "run"
    _run(run, stages=["src", "upper"])
    flip_byte(run / "upper" / "part-00001.parquet")
    with caplog.at_level(logging.WARNING, logger="pipeline.runner"):
        summaries = _run(run)  # summary (fan-in) reads every upper shard: shard 1 fails its check
    assert _ran("src") == [] and _ran("upper") == [1] and _ran("summary") == [0]
    lines = [r.getMessage() for r in caplog.records if "sha256" in r.getMessage()]
    assert lines == [
        "shard file upper/part-00001.parquet does not match the sha256 recorded when stage upper wrote it "
        "(shard 1); redoing that shard"
    ]
    assert [s.shards_run for s in summaries] == [0, 1, 1]  # one summary per stage, the repair counted
    assert table_hashes(run) == table_hashes(clean)


def test_a_damaged_input_of_a_shard_to_shard_stage(fake_registry, tmp_path):
    clean = tmp_path / "clean"
    _run(clean)
    run = tmp_path / "run"
    _run(run, stages=["src"])
    flip_byte(run / "src" / "part-00002.parquet")
    _run(run)
    assert _ran("src") == [2] and _ran("upper") == [0, 1, 2]
    assert table_hashes(run) == table_hashes(clean)


def test_a_damaged_shard_of_the_last_stage_is_redone(fake_registry, tmp_path):
    clean = tmp_path / "clean"
    _run(clean)
    run = tmp_path / "run"
    _run(run)
    flip_byte(run / "summary" / "part-00000.parquet")
    _run(run)
    assert _ran("src") == [] and _ran("upper") == [] and _ran("summary") == [0]
    assert table_hashes(run) == table_hashes(clean)
    _run(run)
    assert fake_stages.CALLS == []  # verified and intact: nothing redone


def test_run_verify_redoes_a_damaged_intermediate_shard_nobody_reads(fake_registry, tmp_path):
    """A finished run whose upper shard is damaged: a plain resume reads nothing (every shard is done),
    `--verify` hashes every shard first and redoes the damaged one (its readers' inputs are unchanged)."""
    clean = tmp_path / "clean"
    _run(clean)
    run = tmp_path / "run"
    _run(run)
    flip_byte(run / "upper" / "part-00000.parquet")
    _run(run)
    assert fake_stages.CALLS == []
    _run(run, verify=True)
    assert _ran("upper") == [0] and _ran("summary") == []
    assert table_hashes(run) == table_hashes(clean)


def test_a_file_damaged_again_after_its_redo_is_an_error(fake_registry, tmp_path, monkeypatch):
    """If the redone file fails its check again (a disk that corrupts what it stores), the run stops
    with the error instead of redoing forever."""
    run = tmp_path / "run"
    _run(run, stages=["src", "upper"])
    import pipeline.store as store_module

    real = store_module.RunStore.commit_staged

    def commit_then_damage(self, manifest, index, *args, **kwargs):
        record = real(self, manifest, index, *args, **kwargs)
        if manifest.stage == "upper" and index == 1:
            flip_byte(self.run_dir / record.files[0])
        return record

    flip_byte(run / "upper" / "part-00001.parquet")
    monkeypatch.setattr(store_module.RunStore, "commit_staged", commit_then_damage)
    with pytest.raises(ShardHashError, match="upper/part-00001.parquet does not match"):
        _run(run)


def test_status_lists_damaged_files(fake_registry, tmp_path):
    _run(tmp_path)
    flip_byte(tmp_path / "upper" / "part-00001.parquet")
    (tmp_path / "src" / "part-00000.parquet").write_bytes(b"short")
    assert {st.stage: st.damaged for st in run_status(tmp_path)}["src"] == [
        "src/part-00000.parquet (missing or resized; the next run redoes its shard)"
    ]
    assert {st.stage: st.damaged for st in run_status(tmp_path)}["upper"] == []  # no hashing without verify
    verified = run_status(tmp_path, verify=True)
    assert {st.stage: st.damaged for st in verified}["upper"] == [
        "upper/part-00001.parquet (sha256 mismatch; the next run that reads it, or `run --verify`, redoes its shard)"
    ]
    assert "damaged: upper/part-00001.parquet" in format_status(tmp_path, verified)


@pytest.mark.ray
def test_workers_check_the_hashes_and_the_driver_reads_no_shard(fake_registry, ray_session, tmp_path, monkeypatch):
    """On Ray, the input check and the final tables' check run in workers: the driver hashes no shard
    file and decodes none, yet both damaged files are found and their shards redone."""
    import pipeline.shard_check as shard_check

    clean = tmp_path / "clean"
    _run(clean, use_ray=True)
    run = tmp_path / "run"
    _run(run, stages=["src", "upper"], use_ray=True)

    in_driver: list[str] = []
    for name in ("read_checked", "file_sha256"):
        real = getattr(shard_check, name)
        monkeypatch.setattr(shard_check, name, lambda path, *a, _real=real, **kw: in_driver.append(str(path)) or _real(path, *a, **kw))
    opened: list[str] = []
    for name in ("read_table", "ParquetFile", "read_metadata"):
        real = getattr(pq, name)
        monkeypatch.setattr(pq, name, lambda path, *a, _real=real, **kw: opened.append(str(path)) or _real(path, *a, **kw))
    flip_byte(run / "upper" / "part-00002.parquet")
    _run(run, use_ray=True)  # summary's worker finds it
    assert table_hashes(run) == table_hashes(clean)
    flip_byte(run / "summary" / "part-00000.parquet")
    _run(run, use_ray=True)  # a verify task finds it
    assert in_driver == []
    assert [p for p in opened if "/_quarantine/" not in p and "/quarantine/" not in p] == []
    assert table_hashes(run) == table_hashes(clean)


def _real_settings(model_dir) -> list[str]:
    """ingest -> sample -> score with the tiny model, 2 shards of 3 tasks (perturb and later stages off)."""
    off = ["perturb", "rank", "reference", "train", "eval"]
    return [
        "run.progress=false", "ingest.n_tasks=6", "ingest.shard_size=3", f'sample.engine.model="{model_dir}"',
        "sample.n=2", "sample.max_tokens=6", *[f"{stage}.enabled=false" for stage in off],
    ]


@pytest.mark.slow
def test_a_damaged_sample_shard_is_redone_with_the_real_stages(tiny_model_dir, tmp_path):
    """A same-size flip in a sample shard: the score shard reading it finds it, sample redoes that shard,
    score runs, and every table equals an uncorrupted run's; a flip in the last stage's shard is redone too."""
    cfg = load_config(None, _real_settings(tiny_model_dir))
    clean, run = tmp_path / "clean", tmp_path / "run"
    run_pipeline(cfg, clean, use_ray=False)
    run_pipeline(cfg, run, stages=["ingest", "sample"], use_ray=False)
    flip_byte(run / "sample" / "part-00001.parquet")
    ran = {s.stage: s.shards_run for s in run_pipeline(cfg, run, use_ray=False)}
    assert ran == {"ingest": 0, "sample": 1, "score": 2}
    assert table_hashes(run) == table_hashes(clean)
    flip_byte(run / "score" / "part-00000.parquet")
    ran = {s.stage: s.shards_run for s in run_pipeline(cfg, run, use_ray=False)}
    assert ran == {"ingest": 0, "sample": 0, "score": 1}
    assert table_hashes(run) == table_hashes(clean)
