"""The eval stage: one fan-in shard comparing the starting policy and the trained model, resumable per model."""

from __future__ import annotations

import json

import pytest

from data_schemas.tables import empty_table, validate_table
from stages.base import ShardInputs, ShardOutput
from stages.eval import SPEC, EvalConfig
from stages.lib.errors import ConfigError
from tests.stages.eval.conftest import ScriptedSampler


@pytest.fixture
def samplers(monkeypatch):
    """make_sampler replaced by scripted samplers, one per model loaded (in load order)."""
    made: list[ScriptedSampler] = []

    def make(engine, stage, **kwargs):
        assert stage == "eval"
        made.append(ScriptedSampler(engine.model))
        return made[-1]

    monkeypatch.setattr("stages.vlm.engines.make_sampler", make)
    return made


def _model_table(path="trained-dir"):
    return validate_table([{"model_dir": path, "weights_sha256": "0" * 64, "loss": "perpo", "steps": 3}], "model")


def _run(tasks, scratch, **config):
    inputs = ShardInputs({"eval_tasks": tasks, "model": _model_table()})
    cfg = EvalConfig(enabled=True, engine={"model": "start-dir"}, n=2, bootstrap_samples=100, **config)
    return SPEC.run_shard(inputs, ShardOutput("eval", 0, scratch), cfg)


def test_spec_reads_the_held_out_tasks_and_the_trained_model():
    assert SPEC.name == "eval" and SPEC.fan_in and SPEC.uses_model
    assert SPEC.reads == ("eval_tasks", "model") and SPEC.writes == ("eval",)


def test_both_models_answer_and_the_summary_lands_in_scratch(eval_tasks, samplers, tmp_path):
    result = _run(eval_tasks, tmp_path)
    assert [s.model_name for s in samplers] == ["start-dir", "trained-dir"]
    table = result.tables["eval"]
    assert table.num_rows == 2 * 4 * (1 + 2) and set(table.column("model_role").to_pylist()) == {"start", "trained"}
    summary = json.loads((tmp_path / "eval.json").read_text())
    assert summary["models"] == {"start": "start-dir", "trained": "trained-dir"}
    assert summary["metrics"]["grounding"]["reward"]["change"]["mean"] == 0.0  # the same scripted answers
    assert {p.rsplit("/", 1)[-1] for p in result.artifacts} >= {"eval.json", "eval.png", "eval.txt"}
    assert result.metrics["trained.vqa.reward"] == 1.0 and result.metrics["tasks"] == 4


def test_a_retried_shard_reuses_the_model_that_finished(eval_tasks, samplers, tmp_path):
    first = _run(eval_tasks, tmp_path)
    (tmp_path / "trained.parquet").unlink()  # as if the shard died while the trained model answered
    second = _run(eval_tasks, tmp_path)
    assert [s.model_name for s in samplers] == ["start-dir", "trained-dir", "trained-dir"]
    assert second.tables["eval"].equals(first.tables["eval"])


def test_no_held_out_tasks_or_no_trained_model_is_a_config_error(eval_tasks, samplers, tmp_path):
    with pytest.raises(ConfigError, match="held-out split has no tasks"):
        _run(empty_table("eval_tasks"), tmp_path)
    inputs = ShardInputs({"eval_tasks": eval_tasks, "model": empty_table("model")})
    with pytest.raises(ConfigError, match="no trained model"):
        SPEC.run_shard(inputs, ShardOutput("eval", 0, tmp_path), EvalConfig(enabled=True, engine={"model": "m"}))
    assert samplers == []


def test_compare_start_off_evaluates_the_trained_model_alone(eval_tasks, samplers, tmp_path):
    result = _run(eval_tasks, tmp_path, compare_start=False, greedy=False)
    assert [s.model_name for s in samplers] == ["trained-dir"]
    assert set(result.tables["eval"].column("decoding").to_pylist()) == {"sample"}
