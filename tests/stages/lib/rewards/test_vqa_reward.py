"""VQA reward: soft accuracy (both forms), exact match, multiple choice extraction."""

from __future__ import annotations

import pytest

from stages.lib.rewards.result import GroundTruthError
from stages.lib.rewards.vqa import SOFT_ACCURACY_MODES, extract_choice, prepare_vqa, score_vqa, score_vqa_batch, vqa_reward

TEN = ["2"] * 4 + ["two"] + ["3"] * 5  # ten annotators, five of them say 2 (one in words)


@pytest.mark.parametrize(
    ("text", "answers", "expected"),
    [
        ("2", TEN, 1.0),  # 5 matches -> min(5/3, 1)
        ("Two.", TEN, 1.0),  # number words normalized on both sides
        ("4", TEN, 0.0),
        ("yes", ["yes", "no", "no", "no"], 1 / 3),
        ("yes", ["yes", "yes", "no"], 2 / 3),
        ("Yes", "yes", 1.0),  # one answer: exact match after normalization
        ("yes sir", "yes", 0.0),
        ("Answer: yes.", "yes", 1.0),  # a leading answer label is dropped
        ("The answer is 3", ["3", "3", "3"], 1.0),
        ("a red car", ["red car", "the red car"], 2 / 3),
        ("dont know", ["don't know"], 1.0),
    ],
)
def test_open_ended(text, answers, expected):
    res = vqa_reward(text, answers)
    assert res.reward == pytest.approx(expected) and res.parse_ok


@pytest.mark.parametrize(
    ("matches", "expected"),
    # official VQA: mean over the 10 leave-one-out subsets of min(#matches among 9 / 3, 1)
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_leave_one_out_soft_accuracy(matches, expected):
    answers = ["cat"] * matches + ["dog"] * (10 - matches)
    assert vqa_reward("cat", answers, soft="leave_one_out").reward == pytest.approx(expected)


def test_min3_is_the_default():
    assert vqa_reward("cat", ["cat"] + ["dog"] * 9).reward == pytest.approx(1 / 3)


@pytest.mark.parametrize("text", ["", "   ", "the", "a.", "!!"])
def test_empty_after_normalization_is_a_parse_failure(text):
    res = vqa_reward(text, ["yes", "no"])
    assert res.reward == 0.0 and not res.parse_ok and "empty" in res.detail["reason"]


CHOICES = ["cat", "dog", "red car", "red"]


@pytest.mark.parametrize(
    ("text", "letter", "rule"),
    [
        ("B", "B", "letter"),
        ("b", "B", "letter"),
        ("(B)", "B", "letter"),
        ("B.", "B", "letter"),
        ("B)", "B", "letter"),
        ("B. dog", "B", "letter"),
        ("(b) dog", "B", "letter"),
        ("Answer: B", "B", "cue"),
        ("The answer is (b).", "B", "cue"),
        ("answer: c.", "C", "cue"),
        ("I would pick option D because", "D", "cue"),
        ("dog", "B", "text"),
        ("The dog.", "B", "text"),
        ("a red car", "C", "text"),  # "red" is inside "red car": the longer option wins
        ("red", "D", "text"),
        ("the answer is a cat", "A", "text"),  # lower-case "a" before a word is an article
    ],
)
def test_choice_extraction(text, letter, rule):
    res = vqa_reward(text, "C", CHOICES)
    assert res.parse_ok and res.detail["choice"] == letter and res.detail["rule"] == rule
    assert res.reward == (1.0 if letter == "C" else 0.0)


@pytest.mark.parametrize("text", ["", "E", "(Z)", "cat or dog", "no idea"])
def test_choice_not_recognized(text):
    res = vqa_reward(text, "C", CHOICES)
    assert res.reward == 0.0 and not res.parse_ok and res.detail["reason"]


@pytest.mark.parametrize("answer", ["C", "(c)", "red car", "C. red car"])
def test_correct_choice_from_letter_or_text(answer):
    assert prepare_vqa(answer, CHOICES).correct == 2


def test_counts_as_choices_in_digits_or_words():
    assert vqa_reward("three", "B", ["2", "3", "4"]).reward == 1.0
    assert vqa_reward("3", "three", ["two", "three", "four"]).reward == 1.0


@pytest.mark.parametrize(
    ("answers", "choices", "match"),
    [
        ([], None, "no ground-truth answer"),
        (None, None, "no ground-truth answer"),
        (["", "  "], None, "no ground-truth answer"),
        (["the", "a."], None, "empty after VQA normalization"),
        ("horse", CHOICES, "neither a letter nor the text of one of 4 choices"),
        ("F", CHOICES, "neither a letter"),
    ],
)
def test_bad_ground_truth_raises(answers, choices, match):
    with pytest.raises(GroundTruthError, match=match):
        prepare_vqa(answers, choices)


def test_unknown_soft_mode_raises():
    with pytest.raises(ValueError, match="unknown soft accuracy 'max'; available: min3, leave_one_out"):
        prepare_vqa("yes", soft="max")
    assert SOFT_ACCURACY_MODES == ("min3", "leave_one_out")


def test_extract_choice_direct():
    assert extract_choice("Option: b", ["x", "y"]) == (1, "cue")
    assert extract_choice("", ["x"]) == (None, "empty")


def test_batch_matches_single_calls():
    truths = [prepare_vqa(TEN), prepare_vqa("C", CHOICES), prepare_vqa(TEN), prepare_vqa("yes")]
    texts = ["two", "(c)", "two", ""]
    for got, text, truth in zip(score_vqa_batch(texts, truths), texts, truths):
        assert got == score_vqa(text, truth)
