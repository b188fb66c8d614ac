"""On-policy rounds on the tiny model: round 2 samples from round 1's model; resume per round; a changed round redone."""

from __future__ import annotations

import json
import tomllib

import pytest

from pipeline.config import load_config
from pipeline.eval_report import evaluate_model_dir, trained_model_dir
from pipeline.outputs import finalize_run
from pipeline.rounds import round_dir, run_rounds
from pipeline.runner import run_pipeline
from pipeline.status import format_run_status

pytestmark = pytest.mark.slow


def _settings(model_dir) -> list[str]:
    return [
        "run.progress=false", "run.export=false", "run.rounds=2",
        "ingest.n_tasks=6", "ingest.shard_size=6", "ingest.eval_fraction=0.4",
        f'sample.engine.model="{model_dir}"', "sample.n=2", "sample.max_tokens=4",
        "perturb.enabled=false", "train.max_steps=1", "train.loss=sft",
        "eval.enabled=true", "eval.n=1", "eval.max_tokens=4", "eval.bootstrap_samples=100",
    ]


def _run(cfg, run_dir):
    ran = {}

    def one_round(round_cfg, folder, force):
        summaries = run_pipeline(round_cfg, folder, force=force, use_ray=False)
        finalize_run(round_cfg, folder, ran=[s.stage for s in summaries])
        ran[folder.name] = {s.stage: s.shards_run for s in summaries}
        return summaries

    run_rounds(cfg, run_dir, one_round, trained_model_dir)
    return ran


def _round_config(run_dir, index):
    return tomllib.loads((round_dir(run_dir, index) / "config.toml").read_text())


def test_rounds_sample_the_previous_model_resume_per_round_and_redo_a_changed_round(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    settings = _settings(tiny_model_dir)
    first = _run(load_config(None, settings), run_dir)
    assert set(first) == {"round-01", "round-02"} and all(n > 0 for n in first["round-02"].values())
    model_1 = trained_model_dir(round_dir(run_dir, 1))
    second_cfg = _round_config(run_dir, 2)
    assert {second_cfg[s]["engine"]["model"] for s in ("sample", "reference", "eval")} | {second_cfg["train"]["model"]} == {model_1}
    assert _round_config(run_dir, 1)["sample"]["engine"]["model"] == str(tiny_model_dir)
    rounds = json.loads((run_dir / "report" / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [1, 2] and all(r["eval"]["models"]["trained"] for r in rounds)
    assert rounds[1]["eval"]["models"]["start"] == model_1
    assert (round_dir(run_dir, 2) / "report" / "eval.json").is_file()
    assert "held-out eval per round" in format_run_status(run_dir)

    # a crash in round 2 (its eval unfinished): the rerun redoes nothing of round 1 and only eval of round 2
    (round_dir(run_dir, 2) / "eval" / "_manifest.json").unlink()
    resumed = _run(load_config(None, settings), run_dir)
    assert set(resumed["round-01"].values()) == {0}
    assert {s: n for s, n in resumed["round-02"].items() if n} == {"eval": 1}

    # round 1 retrained to other weights: round 2 started from a model that is gone, so it is redone after ingest
    changed = _run(load_config(None, [*settings, "train.learning_rate=1e-3"]), run_dir)
    assert changed["round-01"]["train"] == 1 and changed["round-01"]["sample"] == 0
    assert changed["round-02"]["ingest"] == 0 and changed["round-02"]["sample"] == 1

    # `perpo-pipeline eval`: any model against the round's starting policy on its held-out tasks
    summary, folder = evaluate_model_dir(load_config(round_dir(run_dir, 2) / "config.toml"), round_dir(run_dir, 2), model_1)
    assert summary["models"] == {"trained": model_1, "start": model_1} and (folder / "eval.png").is_file()
