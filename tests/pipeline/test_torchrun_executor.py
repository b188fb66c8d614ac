"""The torchrun executor: real torchrun processes run a shard; rank 0's result comes back, failures are named."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from pipeline.executor import ShardJob
from pipeline.torchrun_executor import TorchrunExecutor
from stages.base import ShardOutput
from stages.lib.errors import ConfigError, StageFailedError
from tests.pipeline.torchrun_stages import RANK_SPEC, RankConfig

PAIRS = pa.table({"task_id": ["t0", "t1"], "prompt": ["a", "b"], "chosen": ["c", "d"], "rejected": ["r", "s"]})


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _jobs(tmp_path, n: int = 1) -> list[ShardJob]:
    return [
        ShardJob(i, f"fp{i}", ShardOutput("ranks", i, tmp_path / f"scratch{i}"), tmp_path, input_tables={"pairs": PAIRS})
        for i in range(n)
    ]


def _staged_rows(tmp_path, done) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(tmp_path / done.staged.tables["pairs"].temp).to_pylist()


def _run(tmp_path, nproc: int, cfg: RankConfig, jobs: list[ShardJob], max_retries: int = 0) -> dict:
    done: dict = {}
    TorchrunExecutor(nproc).run(RANK_SPEC, cfg, jobs, lambda job, result, s: done.setdefault(job.index, result), max_retries)
    return done


def test_rank_zero_result_comes_back_from_two_processes(tmp_path):
    done = _run(tmp_path, 2, RankConfig(), _jobs(tmp_path))
    (row,) = _staged_rows(tmp_path, done[0])  # rank 0 staged its table for the runner to commit
    assert {k: row[k] for k in ("task_id", "prompt", "chosen", "rejected")} == {
        "task_id": "rank 0", "prompt": "world 2", "chosen": "rank sum 1", "rejected": "rows 2"}
    assert done[0].metrics == {"rank": 0.0} and done[0].artifacts == [str(tmp_path / "scratch0")]
    assert done[0].staged.rows == {"pairs": 1}
    assert not list(tmp_path.glob(".scratch0.tmp-*"))  # the job folder is gone


def test_a_user_error_on_any_rank_is_raised_as_is_without_retry(tmp_path):
    with pytest.raises(ConfigError, match="rank 1 says the config is wrong"):
        _run(tmp_path, 2, RankConfig(fail="config_on_rank_1"), _jobs(tmp_path), max_retries=2)
    assert (tmp_path / "scratch0" / "attempts-1").read_text() == "x"  # one attempt


def test_failures_are_retried_then_named(tmp_path):
    # shard 0 fails on its first attempt only, then succeeds on the retry
    done = _run(tmp_path, 1, RankConfig(fail="once"), _jobs(tmp_path), max_retries=1)
    assert (tmp_path / "scratch0" / "attempts-0").read_text() == "xx" and done[0].staged.rows == {"pairs": 1}
    # a process that dies (as under the OOM killer) leaves no result: the shard is named with the exit code
    killed = tmp_path / "killed"
    with pytest.raises(StageFailedError, match=r"shard 0 failed after 1 attempt\(s\): RuntimeError: torchrun with 2 "
                       r"process\(es\) exited with code \d+ and no result"):
        _run(killed, 2, RankConfig(fail="kill_rank_1"), _jobs(killed), max_retries=0)
    assert sorted(os.listdir(killed)) == ["scratch0"]  # no job folder left behind
