"""Model output never crashes a reward: arbitrary text, huge text, adversarial text for the
regexes (each must stay linear), non-finite and odd coordinates. Every detail is valid JSON."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.lib.rewards import REWARDS, GroundTruth, RewardKind, encode_detail, score_batch

GTS = {
    RewardKind.IOU: GroundTruth(width=640, height=480, boxes=[[10, 20, 300, 400], [50, 50, 60, 60]]),
    RewardKind.OCR: GroundTruth(answer="The quick brown fox"),
    RewardKind.ANLS: GroundTruth(answer="The quick brown fox", answers=["quick fox"]),
    RewardKind.VQA: GroundTruth(answers=["2", "two", "3"]),
}
MC = GroundTruth(answer="B", choices=["cat", "dog", "red car"])

ADVERSARIAL = {
    "digits": "1" * 100_000,
    "open_brackets": "[" * 100_000,
    "open_parens": "(" * 100_000,
    "unclosed_boxes": "[1, " * 25_000,
    "point_pairs": "(1,2) " * 20_000,
    "spaces_after_pair": "(1,2)" + " " * 100_000 + "x",
    "spaces_in_box": "[1" + " " * 100_000,
    "unclosed_tags": "<|box_start|>" * 10_000,
    "long_box_tag": "<box>" + "1," * 50_000,
    "nan_runs": "[nan" * 20_000,
    "exponents": "[1e" * 30_000,
    "many_boxes": "[1,2,3,4]" * 10_000,
    "answer_then_spaces": "answer" + " " * 100_000 + "1",
    "option_cues": "option " * 15_000,
    "punctuation": "-,.!?" * 20_000,
    "words": "the a an two dont " * 6_000,
    "unicode": "日本語🙂\u200b\ufeff" * 20_000,
}


def _check(results, n):
    assert len(results) == n
    for r in results:
        assert 0.0 <= r.reward <= 1.0 and isinstance(r.parse_ok, bool)
        assert r.parse_ok or r.reward == 0.0
        json.loads(encode_detail(r.detail))


@pytest.mark.parametrize("kind", list(REWARDS))
@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_inputs_are_fast_and_safe(kind, name):
    start = time.perf_counter()
    results = score_batch(kind, [ADVERSARIAL[name]], [GTS[kind]])
    elapsed = time.perf_counter() - start
    _check(results, 1)
    assert elapsed < 1.0, f"{kind} on {name!r} took {elapsed:.2f}s"
    assert len(encode_detail(results[0].detail)) < 5_000  # details never echo huge outputs


def test_multiple_choice_adversarial():
    texts = list(ADVERSARIAL.values())
    start = time.perf_counter()
    _check(score_batch("vqa", texts, [MC] * len(texts)), len(texts))
    assert time.perf_counter() - start < 2.0


ODD = ["", " ", "\x00", "NaN", "inf", "[nan, nan, nan, nan]", "[inf, -inf, 1, 2]", "[-1e308, -1e308, 1e308, 1e308]",
       "[1e999, 0, 1, 1]", "[-5, -5, -1, -1]", "[0, 0, 0, 0]", "[3, 3, 1, 1]", "None", "null", "{}", "[]", "\ud800"]


@pytest.mark.parametrize("kind", list(REWARDS))
def test_odd_outputs(kind):
    _check(score_batch(kind, ODD, [GTS[kind]] * len(ODD)), len(ODD))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(REWARDS)), st.text(max_size=200))
def test_any_text_scores(kind, text):
    _check(score_batch(kind, [text], [GTS[kind]]), 1)


_coord = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_coord, _coord, _coord, _coord), max_size=4), st.sampled_from(["[{}, {}, {}, {}]", "({},{}),({},{})", "<box>{} {} {} {}</box>"]))
def test_any_coordinates_score(coords, template):
    text = " ".join(template.format(*c) for c in coords)
    results = score_batch("iou", [text], [GTS[RewardKind.IOU]])
    _check(results, 1)
    for box in results[0].detail["boxes"]:
        assert 0 <= box[0] < box[2] <= 640 and 0 <= box[1] < box[3] <= 480
