"""The batch box parser gives exactly the row-by-row result."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.boxes import BOX_FORMATS, parse_boxes_batch, parse_boxes_detailed

W, H = 640, 480


_coord = st.one_of(
    st.integers(-50, 1500).map(str),
    st.floats(-0.5, 1.5, allow_nan=False).map(lambda v: f"{v:.3f}"),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "x1", " 12 ", "+.5", "7."]),
)
_piece = st.one_of(
    st.tuples(_coord, _coord, _coord, _coord).map(lambda c: "[{}, {}, {}, {}]".format(*c)),
    st.tuples(_coord, _coord, _coord, _coord).map(lambda c: "({},{}),({},{})".format(*c)),
    st.tuples(_coord, _coord, _coord, _coord).map(lambda c: '{{"bbox_2d": [{}, {}, {}, {}]}}'.format(*c)),
    st.tuples(_coord, _coord, _coord, _coord).map(lambda c: "<|box_start|>({},{}),({},{})<|box_end|>".format(*c)),
    st.tuples(_coord, _coord, _coord, _coord).map(lambda c: "{} {} {} {}".format(*c)),
    st.sampled_from(["", "the dog", "[1, 2, 3", "]", "(", "\x00", "<box>", "\n"]),
    st.text(max_size=8),
)
_row = st.tuples(
    st.lists(_piece, max_size=4).map(" ".join),
    st.sampled_from([(640, 480), (100, 1000), (1, 1), (2000, 1500)]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_row, max_size=12), st.sampled_from(BOX_FORMATS))
def test_batch_parser_equals_row_parser(rows, box_format):
    texts = [t for t, _ in rows]
    widths = [wh[0] for _, wh in rows]
    heights = [wh[1] for _, wh in rows]
    batch = parse_boxes_batch(texts, widths, heights, box_format)
    assert batch == [parse_boxes_detailed(t, w, h, box_format) for t, w, h in zip(texts, widths, heights)]


def test_batch_parser_keeps_rows_apart():
    # a box split across two outputs must not be found
    assert parse_boxes_batch(["[1, 2,", "3, 4]", "[5, 6, 7, 8]"], [W] * 3, [H] * 3)[:2] == [
        parse_boxes_detailed("[1, 2,", W, H),
        parse_boxes_detailed("3, 4]", W, H),
    ]
    assert parse_boxes_batch([], [], []) == []
    with pytest.raises(ValueError, match="unknown box_format"):
        parse_boxes_batch(["[1,2,3,4]"], [W], [H], "xywh")
