"""The reward registry: every kind scores through the same interface; task-type defaults."""

from __future__ import annotations

import pytest

from data_schemas.tables import TASK_TYPES
from stages.lib.rewards import (
    DEFAULT_REWARD_BY_TASK,
    REWARDS,
    GroundTruth,
    GroundTruthError,
    RewardKind,
    RewardOptions,
    get_reward,
    reward_kind_for,
    score_batch,
)

# A ground truth every kind can read, and an output that is perfect for each kind.
GT = GroundTruth(width=100, height=100, answer="hello world", boxes=[[10, 10, 50, 50]], answers=["hello world"] * 3)
PERFECT = {RewardKind.IOU: "[10, 10, 50, 50]", RewardKind.OCR: "hello world", RewardKind.ANLS: "Hello World", RewardKind.VQA: "Hello, world."}


def test_every_task_type_has_a_default_kind():
    assert set(DEFAULT_REWARD_BY_TASK) == set(TASK_TYPES)
    assert DEFAULT_REWARD_BY_TASK == {"grounding": "iou", "ocr": "ocr", "vqa": "vqa", "caption": "none"}


def test_every_kind_but_none_is_registered():
    assert set(REWARDS) == set(RewardKind) - {RewardKind.NONE}


@pytest.mark.parametrize("kind", list(REWARDS))
def test_each_kind_scores_perfect_and_garbage(kind):
    good, bad, empty = score_batch(kind, [PERFECT[kind], "zzzz qqqq", ""], [GT, GT, GT])
    assert good.reward == pytest.approx(1.0) and good.parse_ok
    assert bad.reward < 0.5
    assert empty.reward == 0.0 and not empty.parse_ok and empty.detail["reason"]
    assert REWARDS[kind].kind is kind and REWARDS[kind].description


@pytest.mark.parametrize("kind", list(REWARDS))
def test_each_kind_rejects_empty_ground_truth(kind):
    with pytest.raises(GroundTruthError):
        score_batch(kind, ["x"], [GroundTruth(width=100, height=100)])


def test_options_reach_the_rewards():
    gt = GroundTruth(width=1000, height=1000, boxes=[[100, 100, 200, 200]], answer="Hello")
    assert score_batch("iou", ["[100, 100, 200, 200]"], [gt], RewardOptions(box_format="norm1000"))[0].reward == 1.0
    assert score_batch("iou", ["[0.1, 0.1, 0.2, 0.2]"], [gt], RewardOptions(box_format="pixel"))[0].reward == 0.0
    assert score_batch("ocr", ["hello"], [gt], RewardOptions(ocr_ignore_case=True))[0].reward == 1.0
    assert score_batch("ocr", ["hello"], [gt])[0].reward == pytest.approx(0.8)
    assert score_batch("anls", ["help"], [gt], RewardOptions(anls_threshold=0.3))[0].reward == 0.0
    vqa_gt = GroundTruth(answers=["12"] * 3)
    assert score_batch("vqa", ["twelve"], [vqa_gt], RewardOptions(vqa_extended_numbers=True))[0].reward == 1.0
    assert score_batch("vqa", ["twelve"], [vqa_gt])[0].reward == 0.0


def test_vqa_reads_answer_when_answers_is_empty_and_choices_from_answer():
    assert score_batch("vqa", ["Yes"], [GroundTruth(answer="yes", answers=[])])[0].reward == 1.0
    mc = GroundTruth(answer="B", answers=["A", "A"], choices=["cat", "dog"])
    assert score_batch("vqa", ["dog"], [mc])[0].reward == 1.0


def test_ocr_takes_the_best_of_answer_and_answers():
    gt = GroundTruth(answer="colour", answers=["color"])
    assert score_batch("ocr", ["color"], [gt])[0].reward == 1.0


def test_lookups_name_the_alternatives():
    with pytest.raises(KeyError, match="unknown reward kind 'bleu'; available: iou, ocr, anls, vqa"):
        get_reward("bleu")
    with pytest.raises(KeyError, match="unknown reward kind 'none'"):
        get_reward("none")
    with pytest.raises(KeyError, match="unknown task type 'detection'; known: grounding, ocr, vqa, caption"):
        reward_kind_for("detection")
    assert reward_kind_for("ocr", {"ocr": RewardKind.ANLS}) is RewardKind.ANLS
    assert reward_kind_for("vqa", {"ocr": RewardKind.ANLS}) is RewardKind.VQA
