"""Box geometry: IoU against known values and a rasterized count, the matrix and row-wise forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.boxes import box_iou, iou_matrix, paired_ious


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
        ((0, 0, 10, 10), (2, 2, 4, 4), 4 / 100),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
        ((0, 0, 0, 10), (0, 0, 10, 10), 0.0),  # no area
        ((10, 0, 0, 10), (0, 0, 10, 10), 0.0),  # inverted: no area
    ],
)
def test_box_iou_known_values(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)
    assert iou_matrix(np.array([a], float), np.array([b], float))[0, 0] == pytest.approx(expected)


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
    assert box_iou(a, b) == pytest.approx(box_iou(b, a))
    assert box_iou(a, a) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(_int_box(), _int_box()), min_size=1, max_size=6))
def test_matrix_and_paired_forms_equal_box_iou(pairs):
    pred = np.array([p for p, _ in pairs], dtype=float)
    gt = np.array([g for _, g in pairs], dtype=float)
    want = [box_iou(p, g) for p, g in pairs]
    assert paired_ious(pred, gt) == pytest.approx(want, abs=1e-12)
    matrix = iou_matrix(pred, gt)
    assert matrix.shape == (len(pairs), len(pairs))
    assert np.diag(matrix).tolist() == pytest.approx(want, abs=1e-12)
