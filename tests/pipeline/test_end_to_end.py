"""The whole chain on Ray with the tiny model: every stage, the report, the export, then a partial redo."""

from __future__ import annotations

import json

import pytest

from pipeline.config import load_config
from stages.lib.errors import ConfigError
from pipeline.outputs import finalize_run, publish_run
from pipeline.runner import run_pipeline
from pipeline.store import RunStore

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _settings(model_dir) -> list[str]:
    return [
        "run.progress=false",
        "ingest.n_tasks=12",
        "ingest.shard_size=4",
        f'sample.engine.model="{model_dir}"',
        "sample.n=2",
        "sample.max_tokens=8",
        "perturb.max_tokens=8",
        "perturb.distortion.n_answers=1",
        'perturb.distortion.distortions=[{ name = "diffusion", label = "diffusion" }]',
        "train.max_steps=2",
        "train.save_every=1",
    ]


# The held-out split and the eval stage: 2 of the 12 demo tasks (seed 0: a grounding and a vqa task) are held out.
EVAL = ["ingest.eval_fraction=0.25", "eval.enabled=true", "eval.n=2", "eval.max_tokens=8", "eval.bootstrap_samples=200"]


def test_full_chain_then_reward_change_redoes_only_downstream(ray_session, tiny_model_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    run_dir = tmp_path / "run"
    cfg = load_config(None, [*_settings(tiny_model_dir), *EVAL])
    first = {s.stage: s for s in run_pipeline(cfg, run_dir)}
    assert list(first) == ["ingest", "sample", "perturb", "score", "rank", "reference", "train", "eval"]
    assert all(s.shards_run == s.shards_total for s in first.values())
    assert first["ingest"].rows == {"tasks": 10, "eval_tasks": 2}
    # 2 policy + 1 ground truth per training task from sample; perturb adds hallucinations and distorted-image answers
    assert first["sample"].rows == {"candidates": 30}
    assert first["perturb"].rows["candidates"] > 30
    held_out = set(RunStore(run_dir).read_table("ingest", "eval_tasks", "tasks")["task_id"].to_pylist())
    listed = set(RunStore(run_dir).read_table("reference", "listwise", "listwise")["task_id"].to_pylist())
    assert held_out and not held_out & listed  # no held-out task reaches the training lists
    assert first["eval"].rows == {"eval": 2 * 2 * (1 + 2)}  # start + trained, 2 tasks, greedy + 2 samples
    assert first["score"].rows["scored"] == first["perturb"].rows["candidates"]
    assert first["rank"].rows["listwise"] > 0

    finalize_run(cfg, run_dir, ran=list(first))
    stats = json.loads((run_dir / "report" / "stats.json").read_text())
    assert stats["tasks"]["in"] == 10
    summary = json.loads((run_dir / "report" / "eval.json").read_text())
    assert summary["tasks"] and set(summary["models"]) == {"start", "trained"}
    assert (run_dir / "report" / "eval.png").is_file() and (run_dir / "report" / "benchmarks.md").is_file()
    assert "## Evaluation" in (run_dir / "export" / "README.md").read_text()
    assert (run_dir / "report" / "distortions.png").stat().st_size > 0
    pairs = datasets.load_dataset(str(run_dir / "export"), "pairs", split="train", cache_dir=str(tmp_path / "hf"))
    assert pairs.num_rows == first["rank"].rows["pairs"]
    assert pairs[0]["images"][0].size[0] > 0
    model_dir = run_dir / "train" / "artifacts" / "model"
    assert (model_dir / "config.json").is_file()
    with pytest.raises(ConfigError, match="pass --repo-id ORG/NAME or set \\[export\\] repo_id"):
        publish_run(run_dir, dry_run=True)
    listing = publish_run(run_dir, "org/prefs", dry_run=True).splitlines()
    assert listing[0].startswith("would upload")
    assert any(line.startswith("  README.md  (") for line in listing)

    changed = load_config(None, [*_settings(tiny_model_dir), *EVAL, 'score.reward_kinds={ ocr = "anls" }'])
    second = {s.stage: s for s in run_pipeline(changed, run_dir)}
    assert [second[s].shards_run for s in ("ingest", "sample", "perturb")] == [0, 0, 0]
    assert second["score"].shards_run == second["score"].shards_total == 3
    kinds = set(RunStore(run_dir).read_table("score", "scored", "scored", columns=["reward_kind"])["reward_kind"].to_pylist())
    assert "anls" in kinds
    assert second["rank"].shards_run == 3 and second["train"].shards_run == 1
    assert second["eval"].shards_run == 1  # the held-out answers are scored with the new reward too


def test_bad_model_path_fails_before_any_sample_shard(ray_session, tmp_path):
    from stages.lib.errors import ModelError

    cfg = load_config(None, ["run.progress=false", "ingest.n_tasks=4", f'sample.engine.model="{tmp_path / "missing"}"'])
    with pytest.raises(ModelError, match="does not exist"):
        run_pipeline(cfg, tmp_path / "run")
    assert RunStore(tmp_path / "run").read_manifest("sample").shards == {}


def test_more_train_steps_resume_from_the_checkpoints(tiny_model_dir, tmp_path):
    """train.max_steps is resume-neutral: raising it redoes the train shard, which continues from its checkpoint."""
    settings = [*_settings(tiny_model_dir), "ingest.n_tasks=6", "train.max_steps=2"]
    run_dir = tmp_path / "run"
    run_pipeline(load_config(None, settings), run_dir, use_ray=False)
    first = RunStore(run_dir).read_manifest("train").shards[0].metrics
    assert first["steps"] == 2 and first["resumed_from"] == 0
    summary = {s.stage: s for s in run_pipeline(load_config(None, [*settings, "train.max_steps=3"]), run_dir, use_ray=False)}
    assert summary["train"].shards_run == 1 and summary["reference"].shards_run == 0
    second = RunStore(run_dir).read_manifest("train").shards[0].metrics
    assert second["resumed_from"] == 2 and second["steps"] == 3
    changed = [*settings, "train.max_steps=3", "train.learning_rate=1e-4"]  # not resume-neutral: starts over
    run_pipeline(load_config(None, changed), run_dir, use_ray=False)
    assert RunStore(run_dir).read_manifest("train").shards[0].metrics["resumed_from"] == 0
