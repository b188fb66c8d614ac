"""OCR reward: edit similarity and ANLS with known values, normalization switches, references."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.rewards.ocr import normalize_ocr_text, ocr_reward, prepare_ocr, score_ocr, score_ocr_batch
from stages.lib.rewards.result import GroundTruthError


@pytest.mark.parametrize(
    ("text", "gt", "expected", "dist"),
    [
        ("kitten", "sitting", 1 - 3 / 7, 3),
        ("hello world", "hello world", 1.0, 0),
        ("abc", "xyz", 0.0, 3),
        ("ab", "abcd", 0.5, 2),
        ("héllo wörld", "hello world", 1 - 2 / 11, 2),
        ("日本語", "日本", 1 - 1 / 3, 1),
    ],
)
def test_edit_similarity_known_values(text, gt, expected, dist):
    res = ocr_reward(text, gt)
    assert res.reward == pytest.approx(expected) and res.parse_ok
    assert res.detail["edit_distance"] == dist and res.detail["metric"] == "edit"


@pytest.mark.parametrize(
    ("text", "gt", "options", "expected"),
    [
        ("Hello World", "hello world", {}, 1 - 2 / 11),  # 'ocr' is case-sensitive by default
        ("Hello World", "hello world", {"ignore_case": True}, 1.0),
        ("  hello \n\t world ", "hello world", {}, 1.0),  # whitespace collapsed by default
        ("hello  world", "hello world", {"normalize_whitespace": False}, 1 - 1 / 12),
        ("Hello World", "hello world", {"anls": True}, 1.0),  # ANLS folds case (DocVQA)
        ("Hello World", "hello world", {"anls": True, "ignore_case": False}, 1 - 2 / 11),
        ("kitten", "sitting", {"anls": True}, 1 - 3 / 7),  # nd 0.43 < 0.5: kept
        ("abcd", "abxy", {"anls": True}, 0.0),  # nd 0.5 >= 0.5: zero
        ("abcd", "abxy", {"anls": True, "anls_threshold": 0.6}, 0.5),
    ],
)
def test_normalization_and_anls(text, gt, options, expected):
    assert ocr_reward(text, gt, **options).reward == pytest.approx(expected)


def test_best_of_several_references():
    res = ocr_reward("colour", ["color", "colour", None, ""])
    assert res.reward == 1.0 and res.detail["ref_index"] == 1


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_output_is_a_parse_failure(text):
    res = ocr_reward(text, "hello")
    assert res.reward == 0.0 and not res.parse_ok and res.detail["reason"] == "empty output"


@pytest.mark.parametrize("gt", ["", "   ", None, [], [None, ""]])
def test_empty_ground_truth_raises(gt):
    with pytest.raises(GroundTruthError, match="no non-empty ground-truth text"):
        prepare_ocr(gt)


def test_bad_threshold_raises():
    with pytest.raises(ValueError, match="anls_threshold must be in"):
        prepare_ocr("x", anls=True, anls_threshold=1.5)


def test_normalize_ocr_text():
    assert normalize_ocr_text(" A\u3000 b\n", ignore_case=True, normalize_whitespace=True) == "a b"
    assert normalize_ocr_text(" A b", ignore_case=False, normalize_whitespace=False) == " A b"


def test_batch_matches_single_calls():
    truths = [prepare_ocr("hello world"), prepare_ocr(["a", "abc"], anls=True), prepare_ocr("x")]
    texts = ["hello wrld", "abd", ""]
    for got, text, truth in zip(score_ocr_batch(texts, truths), texts, truths):
        assert got == score_ocr(text, truth)


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=30), st.text(min_size=1, max_size=30).filter(lambda s: s.split()))
def test_matches_textbook_levenshtein(text, gt):
    res = ocr_reward(text, gt, normalize_whitespace=False)
    assert 0.0 <= res.reward <= 1.0
    if text:
        assert res.reward == pytest.approx(1 - _levenshtein(text, gt) / max(len(text), len(gt)))
