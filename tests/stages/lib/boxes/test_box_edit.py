"""Rewriting a text's boxes in place: the boxes the reward reads, each number keeping its decimals."""

from __future__ import annotations

import pytest

from stages.lib.boxes import box_skeleton, parse_box_text, parse_boxes


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        ("[10, 20, 110, 220]", [(10, 20, 110, 220)]),
        ("(0.12,0.30),(0.50,0.77)", [(0.12, 0.30, 0.50, 0.77)]),
        ("<box>100 200 300 400</box>", [(100, 200, 300, 400)]),
        ("[[5.5, 6.25, 60.75, 80.0], [100, 120, 300, 260]]", [(5.5, 6.25, 60.75, 80.0), (100, 120, 300, 260)]),
        ("person 1: [10, 20, 30, 40]", [(10, 20, 30, 40)]),  # the "1" of the label is not a coordinate
        ("[9, 9, 19, 19] <|box_start|>(1,2),(3,4)<|box_end|>", [(9, 9, 19, 19), (1, 2, 3, 4)]),  # text order
        ("10 20 30 40", [(10, 20, 30, 40)]),
    ],
)
def test_parse_box_text_finds_each_box(text, boxes):
    parsed = parse_box_text(text)
    assert parsed is not None and parsed.boxes == [tuple(float(v) for v in b) for b in boxes]
    assert parsed.with_boxes(parsed.boxes) == text  # writing the same values back is the identity


@pytest.mark.parametrize("text", ["a red circle", "[1, 2, 3]", "box 10 20 30 40 here", "[1e1, 2, 3, 4]", "[nan, 2, 3, 4]"])
def test_parse_box_text_none_without_plain_boxes(text):
    assert parse_box_text(text) is None


def test_rewritten_boxes_are_what_the_reward_reads():
    parsed = parse_box_text("The cup: [412, 87, 540, 230].")
    new = parsed.with_boxes([(400.4, 80, 500, 200)])
    assert new == "The cup: [400, 80, 500, 200]."
    assert parse_boxes(new, 640, 480) == [[400, 80, 500, 200]]


def test_with_boxes_needs_as_many_boxes():
    with pytest.raises(ValueError, match="expected 1 boxes, got 2"):
        parse_box_text("[1, 2, 3, 4]").with_boxes([(1, 2, 3, 4), (1, 2, 3, 4)])


def test_skeleton_is_the_notation_without_values():
    assert box_skeleton("The cup:  [412, 87, 540, 230].") == "The cup: [#, #, #, #]."
    assert box_skeleton("[1, 2, 3, 4]") == box_skeleton("[10.5, 20, 30, 40]")
    assert box_skeleton("[1, 2, 3, 4]") != box_skeleton("(1, 2, 3, 4)")
    assert box_skeleton("no box") == "no box"
