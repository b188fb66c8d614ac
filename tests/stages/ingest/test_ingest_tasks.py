"""Ground-truth parsing and checks (stages/ingest/tasks.py)."""

from __future__ import annotations

import json
import math

import pytest

from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import TASK_TYPES
from stages.ingest.decode import StoredImage
from stages.ingest.rejected import Rejected
from stages.ingest.tasks import TaskSpec, annotation_boxes, check_task, dedupe_prompt, fit_to_image, parse_task, task_id
from stages.lib.boxes import BoxLayout, pixel_boxes_text

VALID = {
    "grounding": {"prompt": "Find the cat.", "boxes": [[1, 2, 10, 12]]},
    "ocr": {"prompt": "Read it.", "answer": "STOP"},
    "vqa": {"prompt": "How many?", "answer": 3},
    "caption": {"prompt": "Describe the image.", "answers": ["a cat", "a small cat"]},
}


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_every_task_type_parses(task_type):
    spec = parse_task({"task_type": task_type, **VALID[task_type]})
    assert spec.task_type == task_type and spec.prompt


def test_vqa_number_answer_becomes_text_and_answers_default_to_it():
    spec = parse_task({"task_type": "vqa", **VALID["vqa"]})
    assert spec.answer == "3" and spec.answers == ["3"]


def test_answer_defaults_to_the_most_common_annotator_answer():
    spec = parse_task({"task_type": "vqa", "prompt": "Colour?", "answers": ["red", "blue", "red", {"answer": "red"}]})
    assert spec.answer == "red" and spec.answers == ["red", "blue", "red", "red"]


@pytest.mark.parametrize(
    ("fields", "reason", "match"),
    [
        ({"task_type": "segmentation", "prompt": "x", "answer": "y"}, QuarantineReason.UNKNOWN_TASK_TYPE, "unknown task_type 'segmentation'"),
        ({"prompt": "x", "answer": "y"}, QuarantineReason.UNKNOWN_TASK_TYPE, "default_task_type is unset"),
        ({"task_type": "vqa", "prompt": "   ", "answer": "y"}, QuarantineReason.EMPTY_PROMPT, "prompt is empty"),
        ({"task_type": "vqa", "answer": "y"}, QuarantineReason.EMPTY_PROMPT, "prompt is empty"),
        ({"task_type": "vqa", "prompt": "x", "answer": " "}, QuarantineReason.EMPTY_ANSWER, "neither answer nor answers"),
        ({"task_type": "ocr", "prompt": "x"}, QuarantineReason.EMPTY_ANSWER, "no answer text"),
        ({"task_type": "grounding", "prompt": "x", "boxes": []}, QuarantineReason.EMPTY_ANSWER, "no boxes"),
        ({"task_type": "grounding", "prompt": "x", "boxes": [[5, 5, 2, 9]]}, QuarantineReason.BAD_BOX, "inverted"),
        ({"task_type": "grounding", "prompt": "x", "boxes": [[5, 5, 5, 9]]}, QuarantineReason.BAD_BOX, "empty"),
        ({"task_type": "grounding", "prompt": "x", "boxes": [[1, math.nan, 4, 9]]}, QuarantineReason.BAD_BOX, "non-finite"),
        ({"task_type": "grounding", "prompt": "x", "boxes": [[1, 2, 3]]}, QuarantineReason.BAD_BOX, "4 numbers"),
        ({"task_type": "grounding", "prompt": "x", "boxes": [[1, 2, "3", 4]]}, QuarantineReason.BAD_BOX, "4 numbers"),
        ({"task_type": "grounding", "prompt": "x", "boxes": "1,2,3,4"}, QuarantineReason.BAD_BOX, "list"),
        ({"task_type": "vqa", "prompt": ["x"], "answer": "y"}, QuarantineReason.MALFORMED_RECORD, "prompt must be text"),
        ({"task_type": "vqa", "prompt": "x", "answer": "y", "meta": "{oops"}, QuarantineReason.MALFORMED_RECORD, "meta is not valid JSON"),
        ({"task_type": "vqa", "prompt": "x", "answer": "y", "meta": [1]}, QuarantineReason.MALFORMED_RECORD, "JSON object"),
        ({"task_type": "vqa", "prompt": "x", "answer": "E", "choices": ["a", "b"]}, QuarantineReason.BAD_CHOICES, "neither a letter A-B"),
        ({"task_type": "vqa", "prompt": "x", "answer": "A", "choices": ["a"]}, QuarantineReason.BAD_CHOICES, "2-26"),
        ({"task_type": "vqa", "prompt": "x", "answer": "A", "choices": ["a", ""]}, QuarantineReason.BAD_CHOICES, "2-26"),
        ({"task_type": "ocr", "prompt": "x", "answer": "A", "choices": ["a", "b"]}, QuarantineReason.BAD_CHOICES, "only used by vqa"),
    ],
)
def test_bad_fields_are_rejected_with_their_reason(fields, reason, match):
    with pytest.raises(Rejected, match=match) as err:
        parse_task(fields)
    assert err.value.reason == reason


def test_default_task_type_fills_rows_without_one():
    assert parse_task({"prompt": "x", "answer": "y"}, default_task_type="vqa").task_type == "vqa"


@pytest.mark.parametrize(("answer", "letter"), [("B", "B"), ("b", "B"), ("(B)", "B"), ("B.", "B"), ("Square", "B")])
def test_multiple_choice_answers_become_letters(answer, letter):
    spec = parse_task({"task_type": "vqa", "prompt": "Which?", "answer": answer, "choices": ["circle", "square", "triangle"]})
    assert spec.answer == letter and spec.answers == [letter]


def test_xywh_boxes_and_a_single_flat_box():
    spec = parse_task({"task_type": "grounding", "prompt": "x", "boxes": [10, 20, 5, 6]}, box_layout=BoxLayout.XYWH)
    assert spec.boxes == [[10.0, 20.0, 15.0, 26.0]]


def test_boxes_are_clipped_within_tolerance_and_rejected_beyond():
    spec = TaskSpec("grounding", "x", boxes=[[-0.5, 0, 40.8, 30]])
    assert check_task(spec, size=(40, 30), tolerance=1.0).boxes == [[0.0, 0.0, 40.0, 30.0]]
    with pytest.raises(Rejected, match="outside the 40x30 image") as err:
        check_task(TaskSpec("grounding", "x", boxes=[[0, 0, 45, 30]]), size=(40, 30), tolerance=1.0)
    assert err.value.reason == QuarantineReason.BAD_BOX


def _stored(width=40, height=30, raw=None, orientation=1) -> StoredImage:
    return StoredImage(b"x", "0" * 64, width, height, None, raw or (width, height), orientation, "PNG", "PNG", orientation != 1)


def test_fit_to_image_writes_grounding_answer_from_boxes():
    spec = fit_to_image(TaskSpec("grounding", "x", boxes=[[1.4, 2, 10, 12], [20, 5, 30.6, 9]]), _stored(), 1.0)
    assert spec.answer == "[1.4, 2, 10, 12], [20, 5, 30.6, 9]" == pixel_boxes_text(spec.boxes)


def test_ground_truth_text_of_fractional_boxes_scores_iou_one():
    """COCO boxes are fractional pixels (xywh, summed in floats): the answer text must score 1.0 against the stored boxes."""
    from stages.lib.rewards import iou_reward

    boxes = annotation_boxes([[10.4, 20.4, 5.3, 5.0], [100.25, 50.75, 80.254, 69.75]], BoxLayout.XYWH)
    spec = fit_to_image(TaskSpec("grounding", "x", boxes=boxes), _stored(640, 480), 1.0)
    assert spec.answer == "[10.4, 20.4, 15.7, 25.4], [100.25, 50.75, 180.5, 120.5]"
    result = iou_reward(spec.answer, spec.boxes, 640, 480, box_format="pixel")
    assert result.reward == 1.0 and result.detail["boxes"] == spec.boxes


def test_declared_raw_size_rotates_boxes_with_the_image():
    # a 40x30 file shown upright as 30x40 (EXIF 6); the annotation says 40x30: boxes are on raw pixels
    spec = TaskSpec("grounding", "x", boxes=[[5, 3, 15, 9]], declared_size=(40, 30))
    fitted = fit_to_image(spec, _stored(30, 40, raw=(40, 30), orientation=6), 1.0)
    assert fitted.boxes == [[21.0, 5.0, 27.0, 15.0]]
    assert json.dumps(fitted.meta) == '{"ingest": {"boxes_rotated_by_exif": 6}}'
    # declared upright size: boxes already upright
    upright = TaskSpec("grounding", "x", boxes=[[5, 3, 15, 9]], declared_size=(30, 40))
    assert fit_to_image(upright, _stored(30, 40, raw=(40, 30), orientation=6), 1.0).boxes == [[5.0, 3.0, 15.0, 9.0]]


def test_declared_size_matching_neither_orientation_is_a_size_mismatch():
    spec = TaskSpec("grounding", "x", boxes=[[1, 1, 5, 5]], declared_size=(640, 480))
    with pytest.raises(Rejected, match="declares a 640x480 image") as err:
        fit_to_image(spec, _stored(), 1.0)
    assert err.value.reason == QuarantineReason.SIZE_MISMATCH


def test_task_id_is_a_stable_content_hash():
    a = task_id("ab" * 32, "vqa", "How many?")
    assert a == task_id("ab" * 32, "vqa", "How many?") and len(a) == 16
    assert len({a, task_id("ab" * 32, "ocr", "How many?"), task_id("cd" * 32, "vqa", "How many?"), task_id("ab" * 32, "vqa", "How many")}) == 4


def test_dedupe_prompt_ignores_case_and_spacing():
    assert dedupe_prompt("  How  many\tcats? ") == dedupe_prompt("how many cats?")


def test_record_round_trip():
    spec = parse_task({"task_type": "grounding", "prompt": "x", "boxes": [[1, 2, 3, 4]], "meta": {"k": 1}})
    spec = TaskSpec.from_record(json.loads(json.dumps(TaskSpec(**{**spec.__dict__, "declared_size": (9, 8)}).to_record())))
    assert spec.declared_size == (9, 8) and spec.boxes == [[1.0, 2.0, 3.0, 4.0]] and spec.meta == {"k": 1}
