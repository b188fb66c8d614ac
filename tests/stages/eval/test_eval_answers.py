"""Answering held-out tasks and scoring the answers with the pipeline's rewards and the task types' metrics."""

from __future__ import annotations

import json

import pytest

from data_schemas.tables import validate_table
from stages.eval.answers import TASK_METRICS, answer_and_score
from stages.sample.config import SamplingSettings
from stages.score.config import ScoreConfig
from tests.stages.eval.conftest import ScriptedSampler


def _answer(tasks, sampler=None, greedy=True, n=3, score=ScoreConfig()):
    sampler = sampler or ScriptedSampler()
    rows, quarantine = answer_and_score(
        sampler, tasks, role="trained", greedy=greedy, settings=SamplingSettings(n=n, max_tokens=8), score=score
    )
    return {(r["task_id"], r["decoding"], r["sample_index"]): r for r in rows}, quarantine, sampler


def test_greedy_and_sampled_answers_are_scored_with_the_same_rewards(eval_tasks):
    rows, quarantine, sampler = _answer(eval_tasks)
    assert quarantine == [] and len(rows) == 4 * (1 + 3)
    validate_table(list(rows.values()), "eval")
    assert {r.temperature for r in sampler.requests} == {0.0, 1.0}
    assert rows[("g1", "greedy", 0)]["reward"] == 1.0 and rows[("g1", "sample", 2)]["parse_ok"] is False
    assert rows[("v1", "greedy", 0)]["reward"] == 1.0 and rows[("v1", "sample", 0)]["reward"] == 0.0
    assert rows[("o1", "sample", 0)]["reward"] == 1.0 and rows[("o1", "greedy", 0)]["reward_kind"] == "ocr"


def test_task_metrics_iou_accuracy_edit_similarity_anls_accuracy(eval_tasks):
    rows, _, _ = _answer(eval_tasks)
    metrics = {k: json.loads(r["metrics"]) for k, r in rows.items()}
    assert metrics[("g1", "greedy", 0)] == {"iou_at_0.5": 1.0}
    assert metrics[("g2", "greedy", 0)] == {"iou_at_0.5": 1.0}
    assert metrics[("g2", "sample", 0)] == {"iou_at_0.5": 0.0}  # one box of two: not a correct answer
    ocr = metrics[("o1", "greedy", 0)]  # "hello 42" vs "HELLO 42": 5 of 8 characters differ in case
    assert ocr["edit_similarity"] == pytest.approx(3 / 8) and ocr["anls"] == 1.0  # ANLS ignores case
    # "HELL0" vs "HELLO 42": 4 edits of 8, edit similarity 0.5; ANLS is 0 at a normalized distance of 0.5
    assert metrics[("o1", "sample", 1)] == {"edit_similarity": pytest.approx(0.5), "anls": 0.0}
    assert metrics[("v1", "greedy", 0)] == {"accuracy": 1.0}
    assert set(TASK_METRICS) == {"grounding", "ocr", "vqa"}


def test_score_settings_apply_to_eval_answers(eval_tasks):
    rows, _, _ = _answer(eval_tasks, score=ScoreConfig(reward_kinds={"ocr": "anls"}))
    assert rows[("o1", "greedy", 0)]["reward_kind"] == "anls" and rows[("o1", "greedy", 0)]["reward"] == 1.0


def test_a_rejected_task_is_quarantined_with_none_of_its_answers(eval_tasks):
    rows, quarantine, _ = _answer(eval_tasks, sampler=ScriptedSampler(reject=("v1",)))
    assert {k[0] for k in rows} == {"g1", "g2", "o1"}
    assert [(q["row_ref"], q["reason"]) for q in quarantine] == [("v1", "image_rejected")]


def test_bad_ground_truth_is_quarantined_not_scored(eval_tasks):
    broken = eval_tasks.to_pylist()
    broken[0]["boxes"] = None
    rows, quarantine, _ = _answer(validate_table(broken, "eval_tasks"), greedy=False, n=1)
    assert "g1" not in {k[0] for k in rows} and quarantine[0]["reason"] == "bad_ground_truth"
