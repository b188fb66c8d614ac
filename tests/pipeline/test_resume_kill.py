"""Resume, proven: SIGKILL the CLI in the middle of a multi-shard model stage, run again, compare.

The interrupted-then-resumed run must end with the same tables as an uninterrupted run: no row
lost or duplicated, no partial file left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.store import RunStore

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _write_config(path: Path, model_dir: Path) -> Path:
    path.write_text(
        f"""
[run]
progress = false
export = false
report = false
[ray]
num_cpus = 2
[ingest]
format = "demo"
n_tasks = 24
shard_size = 3
[sample]
model = "{model_dir}"
n = 2
max_tokens = 12
[perturb]
enabled = false
[score]
enabled = false
[rank]
enabled = false
[reference]
enabled = false
[train]
enabled = false
"""
    )
    return path


def _cli(config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "run", "--config", str(config), "--run-dir", str(run_dir)]


def _manifest_shards(run_dir: Path, stage: str) -> int:
    path = run_dir / stage / "_manifest.json"
    try:
        return len(json.loads(path.read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return 0


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_sigkill_mid_sample_then_resume_equals_uninterrupted(tiny_model_dir, tmp_path):
    config = _write_config(tmp_path / "p.toml", tiny_model_dir)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}

    clean = tmp_path / "clean"
    subprocess.run(_cli(config, clean), cwd=REPO, env=env, check=True, capture_output=True, timeout=600)

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(
        _cli(config, crashed), cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while _manifest_shards(crashed, "sample") < 2:
            assert proc.poll() is None, "the run finished before it could be interrupted"
            assert time.monotonic() < deadline, "sampling never started"
            time.sleep(0.05)
    finally:
        _kill_group(proc)
    done_before = _manifest_shards(crashed, "sample")
    assert 2 <= done_before < 8, done_before

    result = subprocess.run(_cli(config, crashed), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"reused {done_before} of 8" in result.stderr

    for stage, table in (("ingest", "tasks"), ("sample", "candidates")):
        a = RunStore(clean).read_table(stage, table, table)
        b = RunStore(crashed).read_table(stage, table, table)
        assert a.num_rows == b.num_rows > 0
        assert a.equals(b), f"{stage} differs after resume"
    ids = RunStore(crashed).read_table("sample", "candidates", "candidates").column("cand_id").to_pylist()
    assert len(ids) == len(set(ids))
    leftovers = [p for p in crashed.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    for part in (crashed / "sample").glob("part-*.parquet"):
        pq.read_metadata(part)  # every file on disk is a whole Parquet file
