"""Coordinate frames: the one guessing rule, each frame's extent, conversion to pixels."""

from __future__ import annotations

import pytest

from stages.lib.boxes import CoordFrame, frame_extent, infer_frame, to_pixel_box

W, H = 640, 480


@pytest.mark.parametrize(
    ("raws", "expected"),
    [
        ([(0.1, 0.2, 0.5, 1.0)], CoordFrame.NORM1),  # every coordinate <= 1
        ([(0, 0, 1, 1)], CoordFrame.NORM1),  # ambiguous on purpose: <= 1 wins
        ([(100, 200, 900, 750)], CoordFrame.NORM1000),  # x beyond the width, all <= 1000
        ([(10, 500, 20, 600)], CoordFrame.NORM1000),  # y beyond the height
        ([(100, 200, 1200, 400)], CoordFrame.PIXEL),  # > 1000: pixels (clipped later)
        ([(100, 200, 600, 400)], CoordFrame.PIXEL),  # fits the image
        ([(1, 2, 30, 40), (800, 20, 900, 30)], CoordFrame.NORM1000),  # decided on all boxes at once
    ],
)
def test_infer_frame(raws, expected):
    assert infer_frame(raws, W, H) == expected


@pytest.mark.parametrize(
    ("frame", "extent"),
    [(CoordFrame.PIXEL, (640.0, 480.0)), (CoordFrame.NORM1, (1.0, 1.0)), (CoordFrame.NORM1000, (1000.0, 1000.0))],
)
def test_frame_extent(frame, extent):
    assert frame_extent(frame, W, H) == extent
    assert frame_extent(frame.value, W, H) == extent


@pytest.mark.parametrize(
    ("raw", "frame", "expected"),
    [
        ((100, 200, 500, 400), "pixel", [100, 200, 500, 400]),
        ((0.5, 0.5, 2, 2), "norm1", [320, 240, 640, 480]),  # clipped to the image
        ((100, 200, 500, 750), "norm1000", [64, 96, 320, 360]),
        ((300, 400, 10, 20), "pixel", [10, 20, 300, 400]),  # swapped corners reordered
        ((-50, -10, 100, 100), "pixel", [0, 0, 100, 100]),  # negative clipped
        ((700, 10, 800, 30), "pixel", None),  # entirely right of the image
        ((10, 20, 10, 30), "pixel", None),  # no width
    ],
)
def test_to_pixel_box(raw, frame, expected):
    got = to_pixel_box(raw, frame, float(W), float(H))
    assert got == (None if expected is None else pytest.approx(expected))
