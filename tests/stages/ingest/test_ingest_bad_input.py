"""Every kind of bad input is quarantined with its reason and the run goes on."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from data_schemas.tables import validate_table
from data_schemas.quarantine import QuarantineReason
from stages.ingest import IngestConfig


def _noisy_jpeg() -> bytes:
    img = Image.frombytes("RGB", (70, 60), bytes((i * 7919) % 251 for i in range(70 * 60 * 3)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


VQA = {"task_type": "vqa", "answer": "yes"}

# line -> expected reason (None: becomes a task)
CASES: list[tuple[object, str | None]] = [
    ({"image": "good.png", "prompt": "Is it red?", **VQA}, None),
    ({"image": "nope.png", "prompt": "Q1", **VQA}, QuarantineReason.MISSING_IMAGE),
    ({"image": "folder", "prompt": "Q2", **VQA}, QuarantineReason.MISSING_IMAGE),
    ({"image": "empty.png", "prompt": "Q3", **VQA}, QuarantineReason.EMPTY_IMAGE),
    ({"image": "truncated.jpg", "prompt": "Q4", **VQA}, QuarantineReason.CORRUPT_IMAGE),
    ({"image": "text.png", "prompt": "Q5", **VQA}, QuarantineReason.NOT_AN_IMAGE),
    ({"image": "big.png", "prompt": "Q6", **VQA}, QuarantineReason.IMAGE_TOO_LARGE),
    ({"image": "good.png", "task_type": "grounding", "prompt": "Q7", "boxes": [[0, 0, 100, 10]]}, QuarantineReason.BAD_BOX),
    ({"image": "good.png", "task_type": "grounding", "prompt": "Q8", "boxes": [[20, 0, 10, 10]]}, QuarantineReason.BAD_BOX),
    ('{"image": "good.png", "task_type": "grounding", "prompt": "Q9", "boxes": [[NaN, 0, 10, 10]]}', QuarantineReason.BAD_BOX),
    ({"image": "good.png", "prompt": "", **VQA}, QuarantineReason.EMPTY_PROMPT),
    ({"image": "good.png", "task_type": "ocr", "prompt": "Q11", "answer": ""}, QuarantineReason.EMPTY_ANSWER),
    ({"image": "good.png", "task_type": "detection", "prompt": "Q12", "answer": "x"}, QuarantineReason.UNKNOWN_TASK_TYPE),
    ('{"image": "good.png", "prompt": "Q13", ', QuarantineReason.MALFORMED_RECORD),
    ("[1, 2, 3]", QuarantineReason.MALFORMED_RECORD),
    ({"prompt": "Q15", **VQA}, QuarantineReason.MALFORMED_RECORD),  # no image field
    ({"image": "good.png", "task_type": "vqa", "prompt": "Pick.", "answer": "Z", "choices": ["a", "b"]}, QuarantineReason.BAD_CHOICES),
    ({"image": "good.png", "prompt": "  is IT red? ", **VQA}, QuarantineReason.DUPLICATE),  # same image + prompt as line 1
    ({"image": "same1.png", "prompt": "Same bytes?", **VQA}, None),
    ({"image": "same2.png", "prompt": "Same bytes?", **VQA}, QuarantineReason.DUPLICATE),  # other name, identical bytes
    ({"image": "good.png", "prompt": "Still going?", **VQA}, None),
]


@pytest.fixture
def bad_corpus(tmp_path, image_bytes, write_jsonl):
    good = image_bytes(size=(40, 30))
    (tmp_path / "good.png").write_bytes(good)
    (tmp_path / "same1.png").write_bytes(image_bytes(color=(1, 2, 3)))
    (tmp_path / "same2.png").write_bytes(image_bytes(color=(1, 2, 3)))
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(_noisy_jpeg()[:-400])
    (tmp_path / "text.png").write_bytes(b"this is not a picture")
    (tmp_path / "big.png").write_bytes(image_bytes(size=(100, 100)))
    manifest = write_jsonl(tmp_path / "m.jsonl", [line for line, _ in CASES])
    return IngestConfig(format="jsonl", path=manifest, max_pixels=5000, shard_size=64)


def test_each_bad_row_is_quarantined_with_its_reason(bad_corpus, run_ingest):
    run = run_ingest(bad_corpus)
    expected = {f"{bad_corpus.path}:{i}": reason for i, (_, reason) in enumerate(CASES, start=1) if reason is not None}
    assert run.reasons() == expected
    assert run.tasks.column("prompt").to_pylist() == ["Is it red?", "Same bytes?", "Still going?"]


def test_nothing_is_dropped_silently(bad_corpus, run_ingest):
    run = run_ingest(bad_corpus)
    assert run.tasks.num_rows + len(run.quarantine) == len(CASES)


def test_quarantine_rows_explain_themselves_and_fit_the_schema(bad_corpus, run_ingest):
    run = run_ingest(bad_corpus)
    assert set(QuarantineReason) >= {q["reason"] for q in run.quarantine}
    for q in run.quarantine:
        assert q["message"], q
        assert json.loads(q["record"]) is not None
    validate_table([{**q, "stage": "ingest", "shard": 0} for q in run.quarantine], "quarantine")


def test_duplicate_message_names_the_kept_row(bad_corpus, run_ingest):
    run = run_ingest(bad_corpus)
    dup = next(q for q in run.quarantine if q["row_ref"].endswith(":18"))
    assert f"{bad_corpus.path}:1 (the first is kept)" in dup["message"]
    in_shard = next(q for q in run.quarantine if q["row_ref"].endswith(":20"))
    assert "same image bytes" in in_shard["message"] and f"{bad_corpus.path}:19" in in_shard["message"]


def test_image_deleted_after_planning_is_quarantined_in_the_shard(bad_corpus, tmp_path, run_ingest):
    from stages.base import ShardInputs, ShardOutput
    from stages.ingest import plan_shards, run_shard

    plan = plan_shards(bad_corpus)
    (tmp_path / "good.png").unlink()
    result = run_shard(ShardInputs({"records": plan.shards[0]}), ShardOutput("ingest", 0, tmp_path), bad_corpus)
    missing = [q["row_ref"].rsplit(":", 1)[1] for q in result.quarantine if q["reason"] == "missing_image"]
    assert missing == ["1", "8", "21"]  # every planned row on good.png
    assert result.tables["tasks"].column("prompt").to_pylist() == ["Same bytes?"]
