"""Box injections land inside the configured IoU band in the answer's own notation and frame."""

from __future__ import annotations

import random
import re

import pytest

from stages.lib.boxes import box_iou, box_skeleton, parse_box_text
from stages.perturb.box_band import place_in_band, written_bounds


@pytest.mark.parametrize(
    "text",
    [
        "[10, 20, 110, 220]",
        "(0.12,0.30),(0.50,0.77)",
        "<box>100 200 300 400</box>",
        "[[5.5, 6.25, 60.75, 80.0], [100, 120, 300, 260]]",
        "The cup: [412, 87, 540, 230].",
    ],
)
@pytest.mark.parametrize("band", [(0.1, 0.5), (0.5, 0.9), (0.05, 0.2)])
def test_place_in_band_lands_in_band_and_keeps_notation(text, band):
    parsed = parse_box_text(text)
    bounds = written_bounds(parsed, 640, 480)
    for seed in range(15):
        placed = place_in_band(parsed, band, random.Random(seed), bounds)
        assert placed is not None
        new_text, ious = placed
        new = parse_box_text(new_text)
        assert box_skeleton(new_text) == box_skeleton(text)
        assert new.decimals == parsed.decimals  # each number keeps its decimals
        for old_box, new_box, iou in zip(parsed.boxes, new.boxes, ious):
            assert band[0] <= box_iou(old_box, new_box) <= band[1]
            assert box_iou(old_box, new_box) == pytest.approx(iou)
            assert all(0 <= v for v in new_box)
            assert new_box[2] <= bounds[0] and new_box[3] <= bounds[1]
        assert re.sub(r"[\d.]", "", new_text) == re.sub(r"[\d.]", "", text)


def test_place_in_band_gives_up_when_impossible():
    # a 1x1 integer box can only reach IoU 0, 1/4, 1/2 ... never inside (0.6, 0.7)
    parsed = parse_box_text("[5, 5, 6, 6]")
    assert place_in_band(parsed, (0.6, 0.7), random.Random(0), (100.0, 100.0)) is None
    degenerate = parse_box_text("[5, 5, 5, 9]")
    assert place_in_band(degenerate, (0.1, 0.5), random.Random(0), (100.0, 100.0)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[0.1, 0.2, 0.5, 0.9]", (1.0, 1.0)),
        ("[10, 20, 600, 400]", (640.0, 480.0)),
        ("[10, 20, 900, 700]", (1000.0, 1000.0)),
        ("[10, 20, 1500, 700]", (640.0, 480.0)),  # > 1000: pixels, as the reward reads them
    ],
)
def test_written_bounds_follow_the_reward_frame_rule(text, expected):
    assert written_bounds(parse_box_text(text), 640, 480) == expected
