import json

import pytest
from PIL import Image

from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import validate_table
from stages.sample.config import SamplingSettings
from stages.sample.rows import (
    SampleItem,
    cand_id,
    format_boxes,
    ground_truth_rows,
    ground_truth_text,
    items_from_tasks,
    sample_rows,
)
from stages.vlm.requests import SampledText, SampleResult
from stages.vlm.seeds import request_seed


class FakeSampler:
    """Echoes each request: output i is '<prompt>#i'; requests whose prompt says 'reject' fail."""

    model_name = "fake-vlm"
    backend = "hf"

    def __init__(self):
        self.requests = []

    def sample(self, requests):
        self.requests.extend(requests)
        results = []
        for r in requests:
            if "reject" in r.prompt:
                results.append(SampleResult.failed(r.request_id, QuarantineReason.IMAGE_REJECTED, "bad image"))
            else:
                outs = [SampledText(f"{r.prompt}#{i}", 3, -1.5, "length" if i else "stop") for i in range(r.n)]
                results.append(SampleResult(r.request_id, outs))
        return results


def test_items_from_tasks_decodes_images_and_quarantines_broken_ones(tasks_table):
    rows = tasks_table.to_pylist()
    rows[1]["image"] = {"bytes": b"not a png", "path": "x.png"}
    items, quarantine = items_from_tasks(rows)
    assert [i.task_id for i in items] == ["t-ground", "t-ocr"]
    assert items[0].image.mode == "RGB" and items[0].image.size == (48, 40)
    assert len(quarantine) == 1 and quarantine[0]["row_ref"] == "t-vqa"
    assert quarantine[0]["reason"] == "corrupt_image"
    assert "bytes" not in json.loads(quarantine[0]["record"])


def test_sample_rows_fill_the_candidates_schema():
    sampler = FakeSampler()
    items = [SampleItem("a", "p1", Image.new("RGB", (4, 4))), SampleItem("b", "p2", None)]
    rows, quarantine = sample_rows(sampler, items, SamplingSettings(n=3, temperature=0.8, top_p=0.95, max_tokens=7, seed=5))
    assert quarantine == []
    table = validate_table(rows, "candidates")
    assert table.num_rows == 6
    assert [r["cand_id"] for r in rows] == ["a:policy:0", "a:policy:1", "a:policy:2", "b:policy:0", "b:policy:1", "b:policy:2"]
    first = rows[0]
    assert first["text"] == "p1#0" and first["origin"] == "policy" and first["model"] == "fake-vlm"
    assert first["seed"] == request_seed(5, "a", "policy") == sampler.requests[0].seed
    assert json.loads(first["sampling"]) == {"backend": "hf", "max_tokens": 7, "n": 3, "temperature": 0.8, "top_p": 0.95}
    assert [r["sample_index"] for r in rows[:3]] == [0, 1, 2]
    assert rows[1]["finish_reason"] == "length" and first["distortion"] is None


def test_sample_rows_with_origin_key_and_distortion():
    items = [SampleItem("a", "p", Image.new("RGB", (4, 4)), key="blur", distortion='{"name": "blur"}')]
    rows, _ = sample_rows(FakeSampler(), items, SamplingSettings(n=1), origin="distorted_image")
    assert rows[0]["cand_id"] == cand_id("a", "distorted_image", 0, "blur") == "a:distorted_image:blur:0"
    assert rows[0]["distortion"] == '{"name": "blur"}'
    assert rows[0]["seed"] == request_seed(0, "a", "distorted_image", "blur")


def test_rejected_requests_become_quarantine_rows():
    items = [SampleItem("a", "ok", None), SampleItem("b", "reject me", None)]
    rows, quarantine = sample_rows(FakeSampler(), items, SamplingSettings(n=2))
    assert {r["task_id"] for r in rows} == {"a"}
    assert [(q["row_ref"], q["reason"], q["message"]) for q in quarantine] == [("b", "image_rejected", "bad image")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"answer": "HELLO"}, "HELLO"),
        ({"answer": "[1, 2, 3, 4]", "boxes": [[9.0, 9.0, 9.0, 9.0]]}, "[1, 2, 3, 4]"),
        ({"boxes": [[4.0, 6.4, 24.6, 20.0], [1, 2, 3, 4]]}, "[4, 6.4, 24.6, 20], [1, 2, 3, 4]"),
        ({"answers": ["navy", "blue", "blue"]}, "blue"),
        ({}, None),
    ],
)
def test_ground_truth_text(fields, expected):
    assert ground_truth_text({"answer": None, "boxes": None, "answers": None, **fields}) == expected


def test_ground_truth_rows(tasks_table):
    rows = ground_truth_rows(tasks_table)
    validate_table(rows, "candidates")
    assert [(r["cand_id"], r["text"]) for r in rows] == [
        ("t-ground:ground_truth:0", "[4, 6, 24, 20]"),
        ("t-vqa:ground_truth:0", "blue"),
        ("t-ocr:ground_truth:0", "HELLO 42"),
    ]
    assert all(r["origin"] == "ground_truth" and r["finish_reason"] == "annotation" for r in rows)


def test_format_boxes():
    assert format_boxes([[0.4, 1.5, 10.0, 20.2]]) == "[0.4, 1.5, 10, 20.2]"


def test_ground_truth_of_grounding_is_written_in_the_policy_format():
    task = {"task_type": "grounding", "answer": "[64, 48, 320, 240]", "boxes": [[64.0, 48.0, 320.0, 240.0]],
            "width": 640, "height": 480, "answers": None}
    assert ground_truth_text(task) == "[64, 48, 320, 240]"  # generic: the ingest text, pixels
    assert ground_truth_text(task, "pixel") == ground_truth_text(task, "auto") == "[64, 48, 320, 240]"
    assert ground_truth_text(task, "qwen2_vl") == "<|box_start|>(100,100),(500,500)<|box_end|>"
    assert ground_truth_text(task, "paligemma") == "<loc0102><loc0102><loc0512><loc0512>"
    assert ground_truth_text({**task, "task_type": "vqa", "answer": "yes"}, "qwen2_vl") == "yes"  # boxes only
