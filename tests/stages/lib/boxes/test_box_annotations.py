"""Ground-truth boxes as annotations give them: layouts and checks against the image."""

from __future__ import annotations

import math

import pytest

from stages.lib.boxes import BadBox, BoxLayout, boxes_from_annotation, check_pixel_box


@pytest.mark.parametrize(
    ("value", "layout", "expected"),
    [
        ([10, 20, 30, 40], BoxLayout.XYXY, [[10, 20, 30, 40]]),  # one flat box
        ([[10, 20, 30, 40], [1, 2, 3, 4]], BoxLayout.XYXY, [[10, 20, 30, 40], [1, 2, 3, 4]]),
        ([10, 20, 5, 6], BoxLayout.XYWH, [[10, 20, 15, 26]]),
        (None, BoxLayout.XYXY, None),
    ],
)
def test_layouts(value, layout, expected):
    assert boxes_from_annotation(value, layout) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("10 20 30 40", "boxes must be a list"),
        ([[1, 2, 3]], "a box must be 4 numbers"),
        ([[1, 2, 3, True]], "a box must be 4 numbers"),
        ([[1, 2, 3, "4"]], "a box must be 4 numbers"),
    ],
)
def test_bad_annotations_raise(value, match):
    with pytest.raises(BadBox, match=match):
        boxes_from_annotation(value, BoxLayout.XYXY)


def test_check_pixel_box_clips_within_tolerance_and_refuses_the_rest():
    assert check_pixel_box([-0.5, 0, 100.5, 50], (100, 50), 1.0) == [0.0, 0, 100.0, 50]
    assert check_pixel_box([5, 5, 500, 500], None, 1.0) == [5, 5, 500, 500]
    with pytest.raises(BadBox, match="lies outside the 100x50 image"):
        check_pixel_box([0, 0, 102, 50], (100, 50), 1.0)
    with pytest.raises(BadBox, match="empty or inverted"):
        check_pixel_box([10, 0, 5, 50], (100, 50), 1.0)
    with pytest.raises(BadBox, match="non-finite"):
        check_pixel_box([0, 0, math.nan, 50], (100, 50), 1.0)
