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


# --- issue 11: one legal row never stops a run, no file outside the corpus root is read


def _sparse(path, size: int):
    with path.open("wb") as f:
        f.truncate(size)  # a hole: no disk used, reads as zeros
    return path


def test_huge_file_named_jpg_is_quarantined_from_its_size_without_being_read(tmp_path, write_jsonl, run_ingest):
    _sparse(tmp_path / "huge.jpg", 1 << 30)
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"image": "huge.jpg", "prompt": "Q", **VQA}])
    run = run_ingest(IngestConfig(format="jsonl", path=manifest))
    [q] = run.quarantine
    assert q["reason"] == QuarantineReason.IMAGE_TOO_LARGE and "[ingest] max_bytes" in q["message"]


def test_bytes_read_are_capped_when_a_file_grows_after_planning(tmp_path, image_bytes, write_jsonl, run_ingest):
    (tmp_path / "a.png").write_bytes(image_bytes())
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"image": "a.png", "prompt": "Q", **VQA}])
    config = IngestConfig(format="jsonl", path=manifest, max_bytes=4096)
    from stages.base import ShardInputs, ShardOutput
    from stages.ingest import plan_shards, run_shard

    plan = plan_shards(config)
    _sparse(tmp_path / "a.png", 1 << 20)
    result = run_shard(ShardInputs({"records": plan.shards[0]}), ShardOutput("ingest", 0, tmp_path), config)
    [q] = result.quarantine
    assert q["reason"] == QuarantineReason.IMAGE_TOO_LARGE and "4096" in q["message"]


def _writable(quarantine: list[dict]) -> None:
    """The quarantine rows fit the schema and can be written as Parquet (valid UTF-8 everywhere)."""
    import io

    import pyarrow.parquet as pq

    pq.write_table(validate_table([{**q, "stage": "ingest", "shard": 0} for q in quarantine], "quarantine"), io.BytesIO())


LONE = "\ud800"  # a lone surrogate: legal escaped JSON, not encodable as UTF-8


@pytest.mark.parametrize(
    "bad",
    [
        {"prompt": f"Is it red? {LONE}"},
        {"answer": f"ye{LONE}s"},
        {"answers": ["yes", LONE]},
        {"image": f"good{LONE}.png"},
        {"meta": {f"note{LONE}": 1}},
    ],
    ids=["prompt", "answer", "answers", "image", "meta"],
)
def test_lone_surrogate_in_a_jsonl_row_is_a_malformed_record(tmp_path, image_bytes, write_jsonl, run_ingest, bad):
    (tmp_path / "good.png").write_bytes(image_bytes())
    line = {"image": "good.png", "prompt": "Is it red?", **VQA, **bad}
    manifest = write_jsonl(tmp_path / "m.jsonl", [line, {"image": "good.png", "prompt": "Is it blue?", **VQA}])
    run = run_ingest(IngestConfig(format="jsonl", path=manifest))
    assert run.reasons() == {f"{manifest}:1": QuarantineReason.MALFORMED_RECORD}
    assert "UTF-8" in run.quarantine[0]["message"]
    assert run.tasks.column("prompt").to_pylist() == ["Is it blue?"]
    _writable(run.quarantine)


def test_lone_surrogate_in_coco_names_and_refcoco_sentences_is_a_malformed_record(tmp_path, image_bytes, run_ingest):
    (tmp_path / "a.png").write_bytes(image_bytes(size=(40, 30)))
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": f"b{LONE}.png", "width": 40, "height": 30}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
                        {"id": 6, "image_id": 1, "category_id": 2, "bbox": [2, 2, 10, 10]},
                        {"id": 7, "image_id": 2, "category_id": 1, "bbox": [2, 2, 10, 10]}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": f"d{LONE}g"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    run = run_ingest(IngestConfig(format="coco", path=path))
    assert run.tasks.num_rows == 1
    assert sorted(run.reasons().values()) == ["malformed_record", "malformed_record"]
    _writable(run.quarantine)

    refs = [{"ref_id": 1, "image_id": 1, "ann_id": 5, "sentences": [{"sent": f"left {LONE} cat", "sent_id": 1},
                                                                    {"sent": "the cat", "sent_id": 2}]}]
    refs_path = tmp_path / "refs.json"
    refs_path.write_text(json.dumps(refs))
    run = run_ingest(IngestConfig(format="coco", path=path, refs_path=refs_path))
    assert run.reasons() == {f"{refs_path}:ref=1,sent=1": QuarantineReason.MALFORMED_RECORD}
    assert run.tasks.num_rows == 1
    _writable(run.quarantine)


@pytest.fixture
def corpus_and_outside(tmp_path, image_bytes):
    """``corpus/`` with an image and a symlink to one outside it; ``outside.png`` beside the corpus folder."""
    corpus = tmp_path / "corpus"
    (corpus / "img").mkdir(parents=True)
    (corpus / "img" / "in.png").write_bytes(image_bytes(color=(1, 1, 1)))
    (tmp_path / "outside.png").write_bytes(image_bytes(color=(2, 2, 2)))
    (corpus / "img" / "link_out.png").symlink_to(tmp_path / "outside.png")
    (corpus / "img" / "link_in.png").symlink_to(corpus / "img" / "in.png")
    return corpus, tmp_path / "outside.png"


OUTSIDE_NAMES = ["../outside.png", "img/../../outside.png", "img/link_out.png", "/etc/passwd"]


def test_images_outside_the_corpus_root_are_quarantined(corpus_and_outside, write_jsonl, run_ingest):
    """Relative escapes, absolute paths and symlinks pointing out are never read (issue 11, item 3)."""
    corpus, outside = corpus_and_outside
    names = OUTSIDE_NAMES + [str(outside), "img/in.png", "img/link_in.png"]
    lines = [{"image": name, "prompt": f"Q{i}", **VQA} for i, name in enumerate(names)]
    manifest = write_jsonl(corpus / "m.jsonl", lines)
    run = run_ingest(IngestConfig(format="jsonl", path=manifest))
    expected = {f"{manifest}:{i}": QuarantineReason.OUTSIDE_ROOT for i in range(1, len(OUTSIDE_NAMES) + 2)}
    assert run.reasons() == expected
    assert run.tasks.column("prompt").to_pylist() == ["Q5", "Q6"]
    assert all("allow_outside_root" in q["message"] for q in run.quarantine)


def test_allow_outside_root_reads_them(corpus_and_outside, write_jsonl, run_ingest):
    corpus, outside = corpus_and_outside
    manifest = write_jsonl(corpus / "m.jsonl", [{"image": "../outside.png", "prompt": "Q", **VQA}])
    run = run_ingest(IngestConfig(format="jsonl", path=manifest, allow_outside_root=True))
    assert run.quarantine == [] and run.tasks.num_rows == 1


def test_image_root_is_the_corpus_root_when_set(corpus_and_outside, write_jsonl, run_ingest):
    corpus, outside = corpus_and_outside
    manifest = write_jsonl(corpus / "m.jsonl", [{"image": "in.png", "prompt": "Q", **VQA},
                                               {"image": "../m.jsonl", "prompt": "Q2", **VQA}])
    run = run_ingest(IngestConfig(format="jsonl", path=manifest, image_root=corpus / "img"))
    assert run.reasons() == {f"{manifest}:2": QuarantineReason.OUTSIDE_ROOT} and run.tasks.num_rows == 1


def test_coco_file_name_and_parquet_path_cells_are_confined(corpus_and_outside, run_ingest):
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus, outside = corpus_and_outside
    coco = {
        "images": [{"id": 1, "file_name": "../outside.png"}, {"id": 2, "file_name": str(outside)},
                   {"id": 3, "file_name": "img/in.png"}],
        "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]} for i in (1, 2, 3)],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (corpus / "instances.json").write_text(json.dumps(coco))
    run = run_ingest(IngestConfig(format="coco", path=corpus / "instances.json"))
    assert sorted(run.reasons().values()) == ["outside_root", "outside_root"] and run.tasks.num_rows == 1

    cells = [{"bytes": None, "path": str(outside)}, {"bytes": None, "path": "/etc/passwd"},
             {"bytes": None, "path": "img/in.png"}]
    table = pa.table({"image": cells, "prompt": ["a", "b", "c"], "task_type": ["vqa"] * 3, "answer": ["x"] * 3})
    pq.write_table(table, corpus / "data.parquet")
    run = run_ingest(IngestConfig(format="parquet", path=corpus / "data.parquet"))
    assert sorted(run.reasons().values()) == ["outside_root", "outside_root"] and run.tasks.num_rows == 1
