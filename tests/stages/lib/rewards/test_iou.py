"""IoU reward: known values, one-to-one matching, ground-truth checks, and properties."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.boxes import box_iou, parse_boxes
from stages.lib.rewards.iou import iou_reward, prepare_iou, score_iou, score_iou_batch
from stages.lib.rewards.result import GroundTruthError, encode_detail

W, H = 640, 480


@st.composite
def boxes(draw, width: float = W, height: float = H):
    """A pixel box of at least 1 x 1 inside the image."""
    x1 = draw(st.floats(0, width - 1, allow_nan=False))
    y1 = draw(st.floats(0, height - 1, allow_nan=False))
    x2 = draw(st.floats(x1 + 1, width, allow_nan=False))
    y2 = draw(st.floats(y1 + 1, height, allow_nan=False))
    return [x1, y1, x2, y2]


def test_single_box_reward_is_iou():
    res = iou_reward("The box is [5, 0, 15, 10].", [[0, 0, 10, 10]], W, H)
    assert res.parse_ok and res.reward == pytest.approx(1 / 3)
    assert res.detail["ious"] == [pytest.approx(1 / 3)] and res.detail["matches"] == [[0, 0]]


@pytest.mark.parametrize(
    ("text", "gt", "expected"),
    [
        ("[0,0,10,10] [20,20,30,30]", [[20, 20, 30, 30], [0, 0, 10, 10]], 1.0),  # order does not matter
        ("[0,0,10,10] [20,20,30,30]", [[0, 0, 10, 10]], 0.5),  # an extra box costs
        ("[0,0,10,10]", [[0, 0, 10, 10], [20, 20, 30, 30]], 0.5),  # a missing box costs
        ("[0,0,10,10] [nan,0,5,5]", [[0, 0, 10, 10]], 0.5),  # an unusable box counts as an extra one
        ("[0,0,10,10] [0,0,10,10]", [[0, 0, 10, 10]], 0.5),  # one-to-one: a duplicate cannot match twice
    ],
)
def test_multi_box_matching(text, gt, expected):
    assert iou_reward(text, gt, W, H).reward == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "no box", "[nan, nan, nan, nan]", "[1200, 0, 1300, 10]", "x" * 10_000])
def test_no_usable_box_gives_zero_and_a_reason(text):
    res = iou_reward(text, [[0, 0, 10, 10]], W, H)
    assert res.reward == 0.0 and not res.parse_ok and res.detail["reason"]
    json.loads(encode_detail(res.detail))


@pytest.mark.parametrize(
    ("gt", "width", "match"),
    [
        ([], W, "no ground-truth boxes"),
        (None, W, "no ground-truth boxes"),
        ([[0, 0, 10]], W, "not 4 finite numbers"),
        ([[0, 0, float("nan"), 10]], W, "not 4 finite numbers"),
        ([[700, 0, 800, 10]], W, "no area inside the 640x480 image"),
        ([[0, 0, 10, 10]], 0, "image size must be positive"),
    ],
)
def test_bad_ground_truth_raises(gt, width, match):
    with pytest.raises(GroundTruthError, match=match):
        prepare_iou(gt, width, H)


def test_ground_truth_is_clipped_like_predictions():
    assert iou_reward("[0, 0, 640, 480]", [[-10, -10, 700, 500]], W, H).reward == pytest.approx(1.0)


def test_batch_matches_single_calls():
    texts = ["[0,0,10,10]", "[5,0,15,10]", "", "[0,0,10,10] [20,20,30,30]", "<box>[[0,0,500,500]]</box>", "[nan,1,2,3]"]
    truths = [prepare_iou([[0, 0, 10, 10]], W, H)] * 5 + [prepare_iou([[0, 0, 10, 10], [20, 20, 30, 30]], W, H)]
    batch = score_iou_batch(texts, truths)
    for text, truth, got in zip(texts, truths, batch):
        want = score_iou(text, truth)
        assert got.reward == pytest.approx(want.reward) and got.parse_ok == want.parse_ok and got.detail == want.detail


# --- properties


def _fmt(box: list[float], scale: str) -> str:
    x1, y1, x2, y2 = box
    if scale == "norm1":
        x1, x2, y1, y2 = x1 / W, x2 / W, y1 / H, y2 / H
    elif scale == "norm1000":
        x1, x2, y1, y2 = x1 * 1000 / W, x2 * 1000 / W, y1 * 1000 / H, y2 * 1000 / H
    return f"[{x1!r}, {y1!r}, {x2!r}, {y2!r}]"


@settings(max_examples=100, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=3), st.lists(boxes(), min_size=1, max_size=3))
def test_reward_invariant_to_coordinate_format(pred, gt):
    rewards = [
        iou_reward(" ".join(_fmt(b, scale) for b in pred), gt, W, H, box_format=scale).reward
        for scale in ("pixel", "norm1", "norm1000")
    ]
    assert rewards == pytest.approx([rewards[0]] * 3, abs=1e-6)
    assert 0.0 <= rewards[0] <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=4), st.lists(boxes(), min_size=1, max_size=4))
def test_hungarian_equals_best_permutation(pred, gt):
    reward = iou_reward(" ".join(_fmt(b, "pixel") for b in pred), gt, W, H, box_format="pixel").reward
    small, large = (pred, gt) if len(pred) <= len(gt) else (gt, pred)
    best = max(sum(box_iou(a, b) for a, b in zip(small, perm)) for perm in itertools.permutations(large, len(small)))
    assert reward == pytest.approx(best / max(len(pred), len(gt)), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(boxes(), st.sampled_from(["bracket", "paren", "pairs", "json", "bare", "norm1", "norm1000", "qwen_tag", "box_tag"]))
def test_printed_box_parses_back(box, spelling):
    x1, y1, x2, y2 = box
    q = [round(x1 * 1000 / W), round(y1 * 1000 / H), round(x2 * 1000 / W), round(y2 * 1000 / H)]
    text, box_format, tol = {
        "bracket": (f"[{x1:.2f}, {y1:.2f}, {x2:.2f}, {y2:.2f}]", "pixel", 0.01),
        "paren": (f"({x1:.2f}, {y1:.2f}, {x2:.2f}, {y2:.2f})", "pixel", 0.01),
        "pairs": (f"({x1:.2f},{y1:.2f}),({x2:.2f},{y2:.2f})", "pixel", 0.01),
        "json": (json.dumps([{"bbox_2d": [round(v, 2) for v in box], "label": "x"}]), "pixel", 0.01),
        "bare": (f"{x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f}", "pixel", 0.01),
        "norm1": (f"[{x1 / W:.6f}, {y1 / H:.6f}, {x2 / W:.6f}, {y2 / H:.6f}]", "norm1", 0.001),
        "norm1000": (f"[{q[0]}, {q[1]}, {q[2]}, {q[3]}]", "norm1000", 0.5 * W / 1000),
        "qwen_tag": (f"<|box_start|>({q[0]},{q[1]}),({q[2]},{q[3]})<|box_end|>", "auto", 0.5 * W / 1000),
        "box_tag": (f"<box>[[{q[0]}, {q[1]}, {q[2]}, {q[3]}]]</box>", "auto", 0.5 * W / 1000),
    }[spelling]
    parsed = parse_boxes(text, W, H, box_format=box_format)
    if parsed:  # rounding to 0-1000 can collapse a 1-pixel box to zero area
        assert len(parsed) == 1
        np.testing.assert_allclose(parsed[0], box, atol=tol + 1e-9)
    else:
        assert spelling in ("norm1000", "qwen_tag", "box_tag") and (q[0] == q[2] or q[1] == q[3])
