"""The text scan: which spellings are boxes, tagged or not, and where each coordinate sits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.boxes import scan_boxes


@pytest.mark.parametrize(
    ("text", "tagged", "untagged"),
    [
        ("[10, 20, 30, 40]", [], [(10, 20, 30, 40)]),
        ("(10,20),(30,40)", [], [(10, 20, 30, 40)]),
        ("10 20 30 40", [], [(10, 20, 30, 40)]),
        ("a 10 20 30 40", [], []),  # bare numbers only when they are the whole text
        ("[1, 2, 3]", [], []),
        ("[a, b, c, d]", [], []),
        ("<box>[[1,2,3,4],[5,6,7,8]]</box> and [9, 10, 11, 12]", [(1, 2, 3, 4), (5, 6, 7, 8)], [(9, 10, 11, 12)]),
        ("<|box_start|>(1,2),(3,4)<|box_end|>", [(1, 2, 3, 4)], []),
    ],
)
def test_what_is_a_box(text, tagged, untagged):
    scan = scan_boxes(text)
    assert [m.raw for m in scan.tagged] == tagged and [m.raw for m in scan.untagged] == untagged
    assert all(m.tagged for m in scan.tagged) and not any(m.tagged for m in scan.untagged)


def test_malformed_tag_is_reported():
    scan = scan_boxes("<|box_start|>(1,2),(3)<|box_end|>")
    assert scan.tagged == [] and scan.malformed == [("<|box_start|>(1,2),(3)<|box_end|>", "box tag holds 3 numbers, not 4k")]


def test_spans_point_at_each_coordinate_in_the_original_text():
    text = "<ref>dog</ref><box>(1,2),(3,4)</box> then [ 50 , 60, 70,80 ] and <box>[5, 6, 7, 8]</box> (9,10),(11,12)"
    scan = scan_boxes(text, spans=True)
    numbers = [text[s:e] for m in scan.in_text_order for s, e in m.spans]
    assert numbers == ["1", "2", "3", "4", "50", "60", "70", "80", "5", "6", "7", "8", "9", "10", "11", "12"]


def test_spans_are_empty_unless_asked_for():
    assert scan_boxes("[1, 2, 3, 4]").untagged[0].spans == ()


_piece = st.one_of(
    st.tuples(*[st.integers(0, 999)] * 4).map(lambda c: "[{}, {}, {}, {}]".format(*c)),
    st.tuples(*[st.integers(0, 999)] * 4).map(lambda c: "({},{}),({},{})".format(*c)),
    st.tuples(*[st.integers(0, 999)] * 4).map(lambda c: "<|box_start|>({},{}),({},{})<|box_end|>".format(*c)),
    st.tuples(*[st.integers(0, 999)] * 4).map(lambda c: "<box>{} {} {} {}</box>".format(*c)),
    st.sampled_from(["the dog", "<ref>cat</ref>", " ", "<", "]"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_piece, max_size=6).map(" ".join))
def test_spans_read_back_the_raw_numbers(text):
    scan = scan_boxes(text, spans=True)
    for m in scan.tagged + scan.untagged:
        assert tuple(float(text[s:e]) for s, e in m.spans) == m.raw
    assert [m.raw for m in scan_boxes(text).tagged + scan_boxes(text).untagged] == [m.raw for m in scan.tagged + scan.untagged]
