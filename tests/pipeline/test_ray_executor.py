"""The Ray executor: the same resume rules as in-process, shards as Ray tasks, failures retried then named."""

from __future__ import annotations

import pytest

from pipeline import config as config_module
from pipeline.config import load_config
from pipeline.errors import StageFailedError
from pipeline.runner import run_pipeline
from pipeline.store import RunStore
from stages import registry
from tests.pipeline import fake_stages

pytestmark = pytest.mark.ray


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(registry, "stage_specs", lambda: fake_stages.SPECS)
    config_module.pipeline_config_cls.cache_clear()
    yield
    config_module.pipeline_config_cls.cache_clear()


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
