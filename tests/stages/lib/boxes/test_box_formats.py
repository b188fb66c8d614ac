"""Every family's documented grounding output scores right under its box format, decoded with and
without special tokens; a ground-truth candidate the pipeline writes in a family's format scores 1.0."""

from __future__ import annotations

import pytest
from family_cases import CASES, MOLMO_POINTS, PHOTO, Case, without_special_tokens
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.lib.boxes import FORMATS, GENERIC_FORMATS, BoxFormat, box_iou, get_format, parse_boxes, smart_resize
from stages.lib.rewards import iou_reward

FAMILY_FORMATS = [f for f in BoxFormat if f not in GENERIC_FORMATS]


def _matches_each(parsed: list[list[float]], gt, tol: float) -> bool:
    """True when ``parsed`` has one box per ground-truth box, each equal to it within ``tol``."""
    return len(parsed) == len(gt) and all(got == pytest.approx(list(want), abs=tol) for got, want in zip(parsed, gt))


def _tol(case: Case) -> float:
    if case.family == "florence2":
        return 1.0  # transformers' Florence-2 dequantize truncates the bin centre to int
    if case.family == "qwen2_5_vl":
        return 1.5  # the model writes whole pixels of the resized input (~1.37 px of the photo)
    return 1e-6


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_documented_output_reads_as_the_documented_boxes(case):
    w, h = case.size
    parsed = parse_boxes(case.text, w, h, case.family)
    assert _matches_each(parsed, case.gt, _tol(case)), (parsed, case.gt)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_documented_output_scores_right(case):
    """The answer is the ground truth as the family writes it: reward 1 up to the family's own
    rounding (the truth is compared on the family's grid)."""
    w, h = case.size
    result = iou_reward(case.text, [list(b) for b in case.gt], w, h, box_format=case.family)
    assert result.parse_ok and result.reward >= 0.97, result.detail
    assert result.detail["format"] == case.family and result.detail["n_pred"] == len(case.gt)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_documented_output_decoded_without_special_tokens(case):
    """skip_special_tokens=True removes the family's tags; boxes carried by plain-text numbers still
    score right. Where skipping destroys the coordinates (Florence-2's <loc_N> are special tokens;
    MiniCPM-V's adjacent <box> tags glue two boxes' numbers together) no answer scores as if right:
    the samplers must keep those tokens (the family profile's keep_tokens)."""
    w, h = case.size
    text = without_special_tokens(case)
    result = iou_reward(text, [list(b) for b in case.gt], w, h, box_format=case.family)
    if case.boxes_survive_skipping:
        assert result.parse_ok and result.reward >= 0.97, (text, result.detail)
    elif case.family == "florence2":
        assert not result.parse_ok and result.reward == 0.0 and result.detail["reason"] == "no box found in the output"
    else:
        assert result.reward < 0.97, (text, result.detail)


def test_skipping_special_tokens_really_removes_the_tags():
    stripped = {c.family: without_special_tokens(c) for c in reversed(CASES)}  # the first case of each family
    assert stripped["qwen2_vl"].startswith("the dog(100,200),(500,750)")
    assert stripped["internvl"] == "the dog[[100, 200, 500, 750]]"
    assert stripped["minicpm_v"] == "the dog100 200 500 750"
    assert stripped["deepseek_vl2"] == "The giraffe at the back.[[580, 270, 999, 900]]"
    assert stripped["florence2"] == "</s><s>car</s>"


def test_minicpm_tagless_runs_split_into_boxes():
    # "<box>100 200 500 750</box>" without the tags glued to the label: one run of four numbers per box.
    for text in ("the dog 100 200 500 750", "the dog100 200 500 750", "the dog: 100, 200, 500, 750."):
        assert parse_boxes(text, 1280, 960, "minicpm_v") == [pytest.approx([128.0, 192.0, 640.0, 720.0])]


def test_qwen2_5_vl_reads_the_resized_frame_that_auto_gets_wrong():
    """The issue's case: a 6000x4000 photo's perfect Qwen2.5-VL box."""
    case = next(c for c in CASES if c.family == "qwen2_5_vl")
    gt = [list(b) for b in case.gt]
    assert iou_reward(case.text, gt, *PHOTO, box_format="qwen2_5_vl").reward >= 0.99
    assert iou_reward(case.text, gt, *PHOTO, box_format="auto").reward < 0.7


def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

    for h, w in [(4000, 6000), (480, 640), (37, 2000), (28, 28), (10, 10), (3000, 3000), (9000, 200)]:
        assert smart_resize(h, w) == hf_smart_resize(h, w, 28, 3136, 12845056)


@pytest.mark.parametrize("text", MOLMO_POINTS)
def test_molmo_points_are_not_boxes(text):
    result = iou_reward(text, [[10, 10, 50, 50]], 100, 100, box_format="molmo")
    assert not result.parse_ok and result.reward == 0.0
    assert result.detail["dropped"][0]["reason"] == "a point, not a box (molmo)"


def test_molmo_never_reads_numbers_as_boxes():
    assert iou_reward("[10, 10, 50, 50]", [[10, 10, 50, 50]], 100, 100, box_format="molmo").reward == 0.0


def test_every_format_has_a_source_and_a_summary():
    assert set(FORMATS) == set(BoxFormat)
    for spec in FORMATS.values():
        assert spec.source and spec.summary
    assert "OUR CHOICE" in FORMATS[BoxFormat.MINICPM_V].source


def test_unknown_format_is_a_value_error():
    with pytest.raises(ValueError, match="unknown box_format 'qwen'"):
        get_format("qwen")


# --- the pipeline's own candidates, written in each family's format


@st.composite
def _boxes(draw, width: int, height: int):
    """1-3 boxes of at least a tenth of the image per side (so no grid collapses them)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        x1 = draw(st.floats(0, width * 0.85))
        y1 = draw(st.floats(0, height * 0.85))
        x2 = draw(st.floats(x1 + width * 0.1, width))
        y2 = draw(st.floats(y1 + height * 0.1, height))
        out.append([round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)])
    return out


@pytest.mark.parametrize("fmt", [f for f in BoxFormat if FORMATS[f].write is not None])
@pytest.mark.parametrize("size", [(640, 480), (6000, 4000), (333, 999)])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_ground_truth_written_in_a_format_scores_one(fmt, size, data):
    boxes = data.draw(_boxes(*size))
    text = FORMATS[fmt].write(boxes, *size)
    result = iou_reward(text, boxes, *size, box_format=fmt)
    assert result.parse_ok and result.reward == pytest.approx(1.0, abs=1e-9), (text, result.detail)


@pytest.mark.parametrize("fmt", [f for f in FAMILY_FORMATS if FORMATS[f].write is not None])
def test_writing_keeps_boxes_close(fmt):
    """What a family writes means (nearly) the box it was given: the grid costs little IoU."""
    spec = FORMATS[fmt]
    box = [100.0, 80.0, 420.0, 400.0]
    (back,) = parse_boxes(spec.write([box], 640, 480), 640, 480, fmt)
    assert box_iou(box, back) > (0.8 if fmt == BoxFormat.KOSMOS2 else 0.97)
