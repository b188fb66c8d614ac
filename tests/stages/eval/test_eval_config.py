"""``[eval]`` as the pipeline config resolves it: the rewards of [score], and held-out splits that cannot be empty."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from stages.lib.errors import ConfigError

ON = ["eval.enabled=true", "ingest.eval_fraction=0.25"]


def test_eval_scores_with_the_score_section_unless_it_sets_its_own():
    cfg = load_config(None, [*ON, 'score.reward_kinds={ ocr = "anls" }', "score.box_format=norm1000"])
    assert cfg.eval.score == cfg.score and cfg.eval.score is not cfg.score
    own = load_config(None, [*ON, "score.box_format=norm1000", "eval.score.box_format=pixel"])
    assert own.eval.score.box_format == "pixel"


def test_the_starting_policy_defaults_to_the_sample_model():
    assert load_config(None, [*ON, 'sample.engine.model="some/vlm"', 'sample.family="generic"']).eval.engine.model == "some/vlm"


def test_eval_without_any_way_to_hold_tasks_out_is_refused():
    with pytest.raises(ConfigError, match="eval_fraction = 0 and format = 'demo'"):
        load_config(None, ["eval.enabled=true"])
    load_config(None, ["eval.enabled=true", "ingest.format=jsonl", 'ingest.path="m.jsonl"'])  # a split column may


def test_eval_without_training_is_refused():
    with pytest.raises(ConfigError, match="train\\] enabled = false; add --set eval.enabled=false"):
        load_config(None, [*ON, "train.enabled=false"])
