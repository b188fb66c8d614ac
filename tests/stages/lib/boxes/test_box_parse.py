"""Box parsing: every accepted spelling, the frame rule, sanitizing, and what gets dropped."""

from __future__ import annotations

import numpy as np
import pytest

from stages.lib.boxes import BOX_FORMATS, parse_boxes, parse_boxes_detailed

W, H = 640, 480


def assert_boxes(actual: list[list[float]], expected: list[list[float]]) -> None:
    assert np.asarray(actual, dtype=float).reshape(-1, 4).shape == np.asarray(expected, dtype=float).reshape(-1, 4).shape
    np.testing.assert_allclose(np.asarray(actual, dtype=float).reshape(-1, 4), np.asarray(expected, dtype=float).reshape(-1, 4), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[10, 20, 300, 400]", [[10, 20, 300, 400]]),
        ("(10, 20, 300, 400)", [[10, 20, 300, 400]]),
        ("The dog is at [10.5,20.25,300,400].", [[10.5, 20.25, 300, 400]]),
        ("(10,20),(300,400)", [[10, 20, 300, 400]]),
        ("10 20 300 400", [[10, 20, 300, 400]]),
        ("10, 20, 300, 400", [[10, 20, 300, 400]]),
        ('{"bbox_2d": [10, 20, 300, 400], "label": "dog"}', [[10, 20, 300, 400]]),
        (
            '```json\n[\n  {"bbox_2d": [10, 20, 300, 400], "label": "dog"},\n  {"bbox_2d": [50, 60, 70, 80], "label": "cat"}\n]\n```',
            [[10, 20, 300, 400], [50, 60, 70, 80]],
        ),
        ('[{"bbox_2d": [10, 20, 300, 400]}, {"bbox_2d": [50, 60, 70', [[10, 20, 300, 400]]),  # truncated JSON
        ("[[10, 20, 300, 400], [50, 60, 70, 80]]", [[10, 20, 300, 400], [50, 60, 70, 80]]),
        ("[1e1, 2E1, 3.0e2, 4e+2]", [[10, 20, 300, 400]]),
    ],
)
def test_pixel_spellings(text, expected):
    assert_boxes(parse_boxes(text, W, H), expected)
    assert parse_boxes_detailed(text, W, H).fmt == "pixel"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Qwen2-VL tags are 0-1000 even when the numbers would fit the image as pixels.
        ("<|object_ref_start|>dog<|object_ref_end|><|box_start|>(100,200),(500,750)<|box_end|>", [[64, 96, 320, 360]]),
        ("<box>[[100, 200, 500, 750]]</box>", [[64, 96, 320, 360]]),
        ("<ref>dog</ref><box>(100,200),(500,750)</box>", [[64, 96, 320, 360]]),
        ("<box>[[100,200,500,750],[0,0,1000,1000]]</box>", [[64, 96, 320, 360], [0, 0, 640, 480]]),
    ],
)
def test_qwen_tags_are_0_1000(text, expected):
    parse = parse_boxes_detailed(text, W, H)
    assert_boxes(parse.boxes, expected)
    assert parse.fmt == "norm1000"


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("[0.1, 0.2, 0.5, 1.0]", "norm1", [[64, 96, 320, 480]]),  # every coordinate <= 1
        ("[0, 0, 1, 1]", "norm1", [[0, 0, 640, 480]]),  # ambiguous on purpose: <= 1 wins
        ("[100, 200, 900, 750]", "norm1000", [[64, 96, 576, 360]]),  # x beyond width, all <= 1000
        ("[10, 500, 20, 600]", "norm1000", [[6.4, 240, 12.8, 288]]),  # y beyond height
        ("[100, 200, 1200, 400]", "pixel", [[100, 200, 640, 400]]),  # > 1000: pixels, clipped
        ("[100, 200, 600, 400]", "pixel", [[100, 200, 600, 400]]),  # fits the image: pixels
        # one scale per answer: the 900 makes the small box 0-1000 too
        ("[1, 2, 30, 40] [800, 20, 900, 30]", "norm1000", [[0.64, 0.96, 19.2, 19.2], [512, 9.6, 576, 14.4]]),
    ],
)
def test_auto_scale_rule(text, fmt, expected):
    parse = parse_boxes_detailed(text, W, H)
    assert parse.fmt == fmt
    assert_boxes(parse.boxes, expected)


@pytest.mark.parametrize(
    ("box_format", "expected"),
    [("pixel", [[100, 200, 500, 400]]), ("norm1000", [[64, 96, 320, 192]]), ("auto", [[100, 200, 500, 400]])],
)
def test_box_format_forces_the_scale(box_format, expected):
    assert_boxes(parse_boxes("[100, 200, 500, 400]", W, H, box_format=box_format), expected)


def test_forced_format_applies_to_tags_too():
    assert_boxes(parse_boxes("<|box_start|>(10,20),(30,40)<|box_end|>", W, H, box_format="pixel"), [[10, 20, 30, 40]])


def test_norm1_forced_on_large_numbers_clips():
    assert_boxes(parse_boxes("[0.5, 0.5, 2, 2]", W, H, box_format="norm1"), [[320, 240, 640, 480]])


def test_swapped_corners_are_reordered():
    assert_boxes(parse_boxes("[300, 400, 10, 20]", W, H), [[10, 20, 300, 400]])


def test_negative_coordinates_are_clipped():
    assert_boxes(parse_boxes("[-50, -10, 100, 100]", W, H), [[0, 0, 100, 100]])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[nan, 10, 20, 30]", "non-finite"),
        ("[10, inf, 20, 30]", "non-finite"),
        ("[10, 20, 1e999, 30]", "non-finite"),
        ("[10, 20, 10, 30]", "zero area"),
        ("[1200, 10, 1300, 30]", "zero area"),  # > 1000 so pixels, entirely right of the image
        ("<|box_start|>(1,2),(3)<|box_end|>", "not 4k"),
    ],
)
def test_unusable_boxes_are_dropped_with_a_reason(text, reason):
    parse = parse_boxes_detailed(text, W, H)
    assert parse.boxes == []
    assert len(parse.dropped) == 1 and reason in parse.dropped[0]["reason"]
    assert parse.n_found == 1


def test_valid_boxes_survive_next_to_dropped_ones():
    parse = parse_boxes_detailed("[nan, 1, 2, 3] [10, 20, 30, 40]", W, H)
    assert_boxes(parse.boxes, [[10, 20, 30, 40]])
    assert parse.n_found == 2 and parse.dropped[0]["text"] == "[nan, 1, 2, 3]"


@pytest.mark.parametrize("text", ["", "   ", "no box here", "[1, 2, 3]", "[a, b, c, d]", "1 2 3", "banana infinity"])
def test_no_box(text):
    parse = parse_boxes_detailed(text, W, H)
    assert parse.boxes == [] and parse.n_found == 0 and parse.fmt == "none"


def test_nan_word_inside_text_is_not_a_number():
    assert_boxes(parse_boxes("a nanny at [10, 20, 30, 40]", W, H), [[10, 20, 30, 40]])


def test_unknown_box_format_and_bad_size_raise():
    with pytest.raises(ValueError, match="unknown box_format 'xywh'; available: auto, pixel, norm1, norm1000, qwen2_vl"):
        parse_boxes("[1, 2, 3, 4]", W, H, box_format="xywh")
    with pytest.raises(ValueError, match="image size must be positive"):
        parse_boxes("[1, 2, 3, 4]", 0, H)


def test_box_formats_registry():
    assert BOX_FORMATS[:4] == ("auto", "pixel", "norm1", "norm1000")
    families = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "llava", "cogvlm", "shikra", "kosmos2", "paligemma",
                "florence2", "minicpm_v", "deepseek_vl2", "gemini", "molmo"}
    assert set(BOX_FORMATS[4:]) == families
