"""Box parsing, IoU, and box injections that land inside the configured IoU band in the answer's own notation."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.perturb.boxes import box_iou, box_skeleton, coordinate_bounds, parse_box_text, place_in_band


def _raster_iou(a, b) -> float:
    cells_a = {(x, y) for x in range(a[0], a[2]) for y in range(a[1], a[3])}
    cells_b = {(x, y) for x in range(b[0], b[2]) for y in range(b[1], b[3])}
    union = cells_a | cells_b
    return len(cells_a & cells_b) / len(union) if union else 0.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (0, 0, 5, 5), 0.25),  # contained
        ((0, 0, 0, 10), (0, 0, 10, 10), 0.0),  # no area
    ],
)
def test_box_iou_known_values(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)


_coord = st.integers(0, 12)


@st.composite
def _int_box(draw):
    x1, x2 = sorted(draw(st.lists(_coord, min_size=2, max_size=2, unique=True)))
    y1, y2 = sorted(draw(st.lists(_coord, min_size=2, max_size=2, unique=True)))
    return (x1, y1, x2, y2)


@settings(max_examples=150, deadline=None)
@given(_int_box(), _int_box())
def test_box_iou_matches_rasterized_iou(a, b):
    assert box_iou(a, b) == pytest.approx(_raster_iou(a, b))


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        ("[10, 20, 110, 220]", [(10, 20, 110, 220)]),
        ("(0.12,0.30),(0.50,0.77)", [(0.12, 0.30, 0.50, 0.77)]),
        ("<box>100 200 300 400</box>", [(100, 200, 300, 400)]),
        ("[[5.5, 6.25, 60.75, 80.0], [100, 120, 300, 260]]", [(5.5, 6.25, 60.75, 80.0), (100, 120, 300, 260)]),
        ("person 1: [10, 20, 30, 40]", [(10, 20, 30, 40)]),  # the "1" of the label is not a coordinate
    ],
)
def test_parse_box_text_finds_each_box(text, boxes):
    parsed = parse_box_text(text)
    assert parsed is not None and parsed.boxes == [tuple(float(v) for v in b) for b in boxes]
    assert parsed.with_boxes(parsed.boxes) == text  # writing the same values back is the identity


def test_parse_box_text_none_without_boxes():
    assert parse_box_text("a red circle") is None
    assert parse_box_text("[1, 2, 3]") is None


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
    bounds = coordinate_bounds(parsed.values, 640, 480)
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
    ("values", "size", "expected"),
    [
        ((0.1, 0.2, 0.5, 0.9), (640, 480), (1.0, 1.0)),
        ((10, 20, 600, 400), (640, 480), (640.0, 480.0)),
        ((10, 20, 900, 700), (640, 480), (1000.0, 1000.0)),
        ((10, 20, 1500, 700), (None, None), (2250.0, 1050.0)),
    ],
)
def test_coordinate_bounds_guesses_the_frame(values, size, expected):
    assert coordinate_bounds(values, *size) == expected
