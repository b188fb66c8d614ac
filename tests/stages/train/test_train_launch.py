"""``python -m stages.train``: which stages it reads, and one-line errors (exit 2) for user mistakes."""

from __future__ import annotations

import pytest

from pipeline.config import config_to_toml, load_config
from stages.lib.errors import ConfigError
from pipeline.store import Manifest, RunStore
from stages.train.launch import main, resolve_inputs

from train_tables import make_listwise, make_tasks


def _finish(store: RunStore, stage: str, table_name: str, table) -> None:
    store.commit_shard(Manifest(stage=stage, n_shards=1), 0, f"{stage}-fp", {table_name: table}, table_name, None, {}, [], 0.0)


@pytest.fixture()
def run_dir(tmp_path):
    """A run folder with ingest and rank finished (reference not yet) and a config snapshot."""
    store = RunStore(tmp_path / "run")
    _finish(store, "ingest", "tasks", make_tasks())
    _finish(store, "rank", "listwise", make_listwise())
    (store.run_dir / "config.toml").write_text(config_to_toml(load_config(None)))
    return store.run_dir


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_a_missing_run_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "nope")]) == 2
    assert "no such folder" in _error_line(capsys)


def test_a_run_folder_without_config_snapshot_asks_for_config(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["--run-dir", str(tmp_path / "run")]) == 2
    assert "pass --config" in _error_line(capsys)


def test_an_unfinished_upstream_stage_is_named(run_dir, capsys):
    assert main(["--run-dir", str(run_dir)]) == 2
    assert "from stage reference, which has not finished" in _error_line(capsys)


def test_a_bad_override_names_the_key(run_dir, capsys):
    assert main(["--run-dir", str(run_dir), "--set", "train.learning_rat=1"]) == 2
    assert "learning_rat" in _error_line(capsys)


def test_inputs_follow_the_enabled_stages(run_dir):
    store = RunStore(run_dir)
    with pytest.raises(ConfigError, match="reference"):
        resolve_inputs(store, load_config(run_dir / "config.toml"))
    # reference disabled: the lists come from rank, as `perpo-pipeline run` would give them
    inputs = resolve_inputs(store, load_config(run_dir / "config.toml", ["reference.enabled=false"]))
    assert inputs.producers == {"tasks": "ingest", "listwise": "rank"}
    assert inputs.tables["listwise"].num_rows == 3 and inputs.tables["tasks"].num_rows == 3
    other = resolve_inputs(store, load_config(run_dir / "config.toml", ["reference.enabled=false", "train.beta=0.5"]))
    assert other.fingerprint != inputs.fingerprint  # a changed train setting is another shard
    with pytest.raises(ConfigError, match="no enabled stage before it writes"):
        resolve_inputs(store, load_config(run_dir / "config.toml", ["reference.enabled=false", "rank.enabled=false"]))


def test_one_process_trains_into_the_stage_folder_and_records_it(run_dir, tiny_model_dir, capsys):
    args = ["--set", "reference.enabled=false", "--set", "train.loss='leanpo'", "--set", f"train.model='{tiny_model_dir}'",
            "--set", "train.device='cpu'", "--set", "train.max_steps=2"]
    assert main(["--run-dir", str(run_dir), *args]) == 0
    assert "trained 2 step(s) on 3 lists from rank with 1 process(es)" in capsys.readouterr().out
    artifacts = run_dir / "train" / "artifacts"
    assert (artifacts / "model" / "config.json").is_file() and (artifacts / "train_log.jsonl").is_file()
    record = RunStore(run_dir).read_manifest("train").shards[0]
    assert record.metrics["steps"] == 2 and record.artifacts == [str(artifacts / "model"), str(artifacts / "train_log.jsonl")]
