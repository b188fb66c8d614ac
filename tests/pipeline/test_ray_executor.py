"""The Ray executor: the same resume rules as in-process, shards as Ray tasks, failures retried then named."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.config import load_config
from stages.lib.errors import StageFailedError
from pipeline.runner import run_pipeline
from pipeline.store import RunStore
from tests.pipeline import fake_stages

pytestmark = pytest.mark.ray


def test_ray_run_matches_in_process_run(fake_registry, ray_session, tmp_path):
    cfg = load_config(None, ["src.n_rows=13"])
    local = run_pipeline(cfg, tmp_path / "local", use_ray=False, progress=False)
    remote = run_pipeline(cfg, tmp_path / "ray", use_ray=True, progress=False)
    assert [s.shards_run for s in remote] == [s.shards_run for s in local] == [4, 4, 1]
    for stage, table in (("src", "pairs"), ("upper", "pairs"), ("summary", "groups")):
        a = RunStore(tmp_path / "local").read_table(stage, table, table)
        b = RunStore(tmp_path / "ray").read_table(stage, table, table)
        assert a.equals(b)
    again = run_pipeline(cfg, tmp_path / "ray", use_ray=True, progress=False)
    assert [s.shards_run for s in again] == [0, 0, 0]


def test_ray_failure_names_shard_after_retries(fake_registry, ray_session, tmp_path):
    cfg = load_config(None, ["upper.fail_shards=[0]", "run.max_retries=1"])
    with pytest.raises(StageFailedError, match=r"stage upper: shard 0 failed after 2 attempt\(s\): RuntimeError: boom in shard 0"):
        run_pipeline(cfg, tmp_path, use_ray=True, progress=False)
    manifest = RunStore(tmp_path).read_manifest("upper")
    assert sorted(manifest.shards) == [1, 2]


def test_ray_input_that_cannot_be_read_is_a_shard_failure(fake_registry, ray_session, tmp_path):
    """A shard whose input file the worker cannot read (damaged behind the manifest's back) is retried
    and reported like any failing shard, not raised as a traceback; the other shards still commit."""
    import pyarrow.parquet as pq

    from pipeline.executor import RayExecutor, ShardJob
    from stages.base import ShardOutput

    spec = fake_stages.SPECS[1]
    cfg = load_config(None)
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"task_id": ["t0"], "prompt": ["a"], "chosen": ["c"], "rejected": ["r"]}), good)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    jobs = [
        ShardJob(i, "fp", ShardOutput("upper", i, tmp_path / f"s{i}"), tmp_path, {"pairs": [bad if i == 1 else good]})
        for i in range(3)
    ]
    done = []
    with pytest.raises(StageFailedError, match=r"shard 1 failed after 2 attempt\(s\): ArrowInvalid: "):
        RayExecutor().run(spec, cfg.upper, jobs, lambda job, result, seconds: done.append(job.index), max_retries=1)
    assert sorted(done) == [0, 2]


def _model_jobs(tmp_path, n):
    from pipeline.executor import ShardJob
    from stages.base import ShardOutput

    table = pa.table({"task_id": ["t0"], "prompt": ["a"], "chosen": ["c"], "rejected": ["r"]})
    return [
        ShardJob(i, "fp", ShardOutput("upper", i, tmp_path / f"s{i}"), tmp_path, input_tables={"pairs": table})
        for i in range(n)
    ]


def test_workers_stage_their_output_in_the_run_folder_and_return_no_table(ray_session, tmp_path):
    """What comes back from a worker is file names and counters: the tables are already in the run folder."""
    from pipeline.executor import RayExecutor, ShardDone

    results: list = []
    RayExecutor().run(fake_stages.MODEL_SPEC, fake_stages.ModelConfig(), _model_jobs(tmp_path, 2),
                      lambda job, done, seconds: results.append(done), max_retries=0)
    assert len(results) == 2 and all(isinstance(d, ShardDone) and d.node for d in results)
    for done in results:
        staged = done.staged.tables["pairs"]
        assert staged.path.startswith("upper/part-0000") and (tmp_path / staged.temp).is_file()
        assert not (tmp_path / staged.path).exists()  # in place only when the driver commits it
        assert done.staged.rows == {"pairs": 1}


def test_a_stage_whose_actors_no_node_can_host_fails_in_one_line(ray_session, tmp_path):
    """Custom resources no node has: the stage fails after the start timeout instead of waiting forever."""
    from pipeline.executor import RayExecutor

    executor = RayExecutor(resources={"upper": {"no_such_accelerator": 1}}, actor_start_timeout_s=3)
    with pytest.raises(StageFailedError, match=r"stage upper: no actor could start within 3s; .*no_such_accelerator=1"):
        executor.run(fake_stages.MODEL_SPEC, fake_stages.ModelConfig(), _model_jobs(tmp_path, 1), lambda *a: None, 0)


@pytest.mark.parametrize("die_once", [True, False], ids=["transient", "every-attempt"])
def test_ray_actor_that_dies_only_fails_its_own_shard(ray_session, tmp_path, die_once):
    """An actor process that dies mid-shard (OOM killer, segfault) is replaced: a transient death is retried
    to success, a shard that kills every actor fails alone, and every other shard still commits."""
    from pipeline.executor import RayExecutor

    spec = fake_stages.MODEL_SPEC
    cfg = fake_stages.ModelConfig(die_shards=[0, 1], die_once=die_once)
    done: list[int] = []

    def on_done(job, result, seconds):
        done.append(job.index)

    if die_once:
        RayExecutor().run(spec, cfg, _model_jobs(tmp_path, 4), on_done, max_retries=1)
        assert sorted(done) == [0, 1, 2, 3]
    else:
        with pytest.raises(StageFailedError, match=r"shard 0 failed after 3 attempt\(s\).*\(and 1 other shard\(s\)\)"):
            RayExecutor().run(spec, cfg, _model_jobs(tmp_path, 4), on_done, max_retries=2)
        assert sorted(done) == [2, 3]


def test_the_driver_reads_no_shard_file_on_ray(fake_registry, ray_session, tmp_path, monkeypatch):
    """Workers read their inputs and write their outputs: the driver opens no Parquet shard (only the
    quarantine files it merges), so no image byte of a corpus passes through it."""
    import pyarrow.parquet as pq

    opened: list[str] = []
    for name in ("read_table", "ParquetFile", "read_metadata"):
        real = getattr(pq, name)
        monkeypatch.setattr(pq, name, lambda path, *a, _real=real, **kw: opened.append(str(path)) or _real(path, *a, **kw))
    cfg = load_config(None, ["src.n_rows=13", 'upper.quarantine_ids=["t3"]'])
    run_pipeline(cfg, tmp_path, use_ray=True, progress=False)
    assert RunStore(tmp_path).read_manifest("summary").complete
    shards = [p for p in opened if "/_quarantine/" not in p and "/quarantine/" not in p]
    assert shards == [], shards
    assert any("/upper/_quarantine/" in p for p in opened)  # the quarantine merge did read in the driver
