"""The pipeline's own ground-truth spelling of pixel boxes parses back exactly."""

from __future__ import annotations

import pytest

from stages.lib.boxes import format_coordinate, parse_boxes, pixel_boxes_text


@pytest.mark.parametrize(("value", "text"), [(10.0, "10"), (0.4, "0.4"), (20.204, "20.2"), (-0.001, "0"), (5.125, "5.12")])
def test_format_coordinate(value, text):
    assert format_coordinate(value) == text


def test_pixel_boxes_text_parses_back():
    boxes = [[0.4, 1.5, 10.0, 20.2], [100, 120, 300.25, 260]]
    text = pixel_boxes_text(boxes)
    assert text == "[0.4, 1.5, 10, 20.2], [100, 120, 300.25, 260]"
    assert parse_boxes(text, 640, 480, "pixel") == boxes
